/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Client side of cprd-protocol(7). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <json-c/json.h>

#include "internal.h"
#include "scm.h"
#include "client.h"
#include "errnames.h"

#define CLIENT_MSG_FDS 253u

static int client_timeout_ms = CPRD_CLIENT_TIMEOUT_MS;

int cprd_set_timeout(int timeout_ms)
{
	if (timeout_ms <= 0)
		return -EINVAL;
	client_timeout_ms = timeout_ms;
	return 0;
}

int cprd_timeout(void)
{
	return client_timeout_ms;
}

const char *cprd_socket_path(const char *path)
{
	const char *e = getenv(CPRD_SOCKET_ENV);

	if (path && *path)
		return path;
	return e && *e ? e : RUNDIR "/cprd.sock";
}

int cprd_connect(const char *path, int *ret_fd)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = client_timeout_ms / 1000,
			      .tv_usec = (client_timeout_ms % 1000) * 1000 };

	path = cprd_socket_path(path);
	if (fd < 0)
		return -errno;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	/* SO_SNDTIMEO bounds connect() to a full backlog and every send;
	 * cprd_recv() waits in recvmsg() itself, bounded by SO_RCVTIMEO. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int cprd_send(int sock, struct json_object *req, const int *fds, size_t n_fds)
{
	size_t len;
	const char *s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
	ssize_t n = scm_send(sock, s, len, fds, n_fds);

	return n < 0 ? (int)n : 0;
}

static int client_parse(const char *buf, size_t len, struct json_object **ret)
{
	/* one tokener per thread, kept and reset: a reply costs no allocation */
	static __thread struct json_tokener *tok;
	struct json_object *o;

	if (!tok && !(tok = json_tokener_new()))
		return -ENOMEM;
	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -EPROTO;
	}
	*ret = o;
	return 0;
}

int cprd_recv(int sock, int timeout_ms, struct json_object **ret, int *fds, size_t max_fds,
	      size_t *ret_n_fds)
{
	/* one buffer per thread, kept: a reply costs no mmap/munmap */
	static __thread char *buf;
	size_t n_fds = 0;
	ssize_t n;
	int r;

	if (!buf && !(buf = malloc(CPRD_CLIENT_REPLY_MAX)))
		return -ENOMEM;
	if (timeout_ms == client_timeout_ms) {
		/* A socket of cprd_connect() waits in recvmsg(), up to its
		 * SO_RCVTIMEO of the same length; any other says EAGAIN at once
		 * and is polled. */
		int64_t t0 = scm_now_ms();

		n = scm_recv(sock, buf, CPRD_CLIENT_REPLY_MAX, fds, max_fds, &n_fds, 0);
		if (n == -EAGAIN &&
		    scm_now_ms() - t0 >=
			    client_timeout_ms -
				    (client_timeout_ms > 2000 ? 1000 : client_timeout_ms / 2))
			return -ETIMEDOUT;
		if (n != -EAGAIN)
			goto got;
	}
	r = scm_wait(sock, timeout_ms);
	if (r < 0)
		return r;
	n = scm_recv(sock, buf, CPRD_CLIENT_REPLY_MAX, fds, max_fds, &n_fds, MSG_DONTWAIT);
got:
	if (n < 0)
		return (int)n;
	if (n == 0)
		return -ECONNRESET;
	r = client_parse(buf, (size_t)n, ret);
	if (r < 0) {
		scm_close_all(fds, n_fds);
		return r;
	}
	*ret_n_fds = n_fds;
	return 0;
}

const char *cprd_reply_message(struct json_object *reply)
{
	struct json_object *m;

	if (reply && json_object_object_get_ex(reply, "message", &m))
		return json_object_get_string(m);
	return "";
}

/* 0 for "ok": true, else the -errno named by "error". */
static int client_status(struct json_object *reply)
{
	struct json_object *ok, *err;

	if (!json_object_object_get_ex(reply, "ok", &ok) ||
	    !json_object_is_type(ok, json_type_boolean))
		return -EPROTO;
	if (json_object_get_boolean(ok))
		return 0;
	if (!json_object_object_get_ex(reply, "error", &err))
		return -EPROTO;
	return -cprd_errno_from_name(json_object_get_string(err));
}

int cprd_call(int sock, struct json_object *req, const int *fds, size_t n_fds,
	      struct json_object **ret_reply)
{
	struct json_object *reply = NULL;
	int got[CLIENT_MSG_FDS];
	size_t n_got = 0;
	int r = cprd_send(sock, req, fds, n_fds);

	if (r < 0)
		return r;
	r = cprd_recv(sock, client_timeout_ms, &reply, got, CLIENT_MSG_FDS, &n_got);
	if (r < 0)
		return r;
	scm_close_all(got, n_got); /* no op of this kind answers with fds */
	r = client_status(reply);
	if (ret_reply)
		*ret_reply = reply;
	else
		json_object_put(reply);
	return r;
}

int cprd_call_name(int sock, const char *op, const char *name, struct json_object **ret_reply)
{
	struct json_object *req = json_object_new_object();
	int r;

	if (!req)
		return -ENOMEM;
	json_object_object_add(req, "op", json_object_new_string(op));
	if (name)
		json_object_object_add(req, "name", json_object_new_string(name));
	r = cprd_call(sock, req, NULL, 0, ret_reply);
	json_object_put(req);
	return r;
}

static struct json_object *client_req(const char *op, const char *name)
{
	struct json_object *req = json_object_new_object();

	if (req) {
		json_object_object_add(req, "op", json_object_new_string(op));
		json_object_object_add(req, "name", json_object_new_string(name));
	}
	return req;
}

/* Read @n replies; the first failure is returned, every reply is read. */
static int client_replies(int sock, size_t n, struct json_object **ret_last)
{
	int first = 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *reply = NULL;
		int got[CLIENT_MSG_FDS];
		size_t n_got = 0;
		int r = cprd_recv(sock, client_timeout_ms, &reply, got, CLIENT_MSG_FDS, &n_got);

		if (r < 0)
			return first ? first : r;
		scm_close_all(got, n_got);
		r = client_status(reply);
		if (r < 0 && !first)
			first = r;
		if (i + 1 == n && ret_last) {
			*ret_last = reply;
			reply = NULL;
		}
		json_object_put(reply);
	}
	return first;
}

/* "store": create + put + seal in one message, for up to 252 fds. */
static int client_store_one(int sock, const char *name, struct json_object *opts, int stream_fd,
			    const int *fds, size_t n_fds, struct json_object **ret_reply)
{
	struct json_object *req = client_req("store", name);
	int all[CLIENT_MSG_FDS];
	int r;

	if (!req)
		return -ENOMEM;
	if (opts) {
		json_object_object_foreach(opts, k, v)
			json_object_object_add(req, k, json_object_get(v));
	}
	all[0] = stream_fd;
	if (n_fds)
		memcpy(all + 1, fds, n_fds * sizeof(int));
	r = cprd_call(sock, req, all, n_fds + 1, ret_reply);
	json_object_put(req);
	return r;
}

/*
 * create, put in chunks of 253, and seal, pipelined: every request is sent
 * before the replies are read (cprd-protocol(7) allows it; replies come in
 * order, and a refused create makes the rest fail with ENOENT or EBUSY).
 */
static int client_store_chunked(int sock, const char *name, struct json_object *opts, int stream_fd,
				const int *fds, size_t n_fds, struct json_object **ret_reply)
{
	struct json_object *create = client_req("create", name), *put = client_req("put", name),
			   *seal = client_req("seal", name), *reply = NULL;
	size_t sent = 0;
	int r = create && put && seal ? 0 : -ENOMEM;

	if (r == 0 && opts) {
		json_object_object_foreach(opts, k, v)
			json_object_object_add(create, k, json_object_get(v));
	}
	if (r == 0) {
		r = cprd_send(sock, create, NULL, 0);
		sent += r == 0;
	}
	for (size_t off = 0; r == 0 && off < n_fds; off += CLIENT_MSG_FDS, sent++)
		r = cprd_send(sock, put, fds + off,
			      n_fds - off < CLIENT_MSG_FDS ? n_fds - off : CLIENT_MSG_FDS);
	if (r == 0) {
		r = cprd_send(sock, seal, &stream_fd, 1);
		sent += r == 0;
	}
	json_object_put(create);
	json_object_put(put);
	json_object_put(seal);
	if (r < 0)
		client_replies(sock, sent, NULL);
	else
		r = client_replies(sock, sent, &reply);
	if (r < 0 && r != -EEXIST) /* best effort: an open bundle dies with its connection */
		cprd_call_name(sock, "drop", name, NULL);
	if (ret_reply)
		*ret_reply = reply;
	else
		json_object_put(reply);
	return r;
}

int cprd_store(int sock, const char *name, struct json_object *opts, int stream_fd, const int *fds,
	       size_t n_fds, struct json_object **ret_reply)
{
	if (n_fds < CLIENT_MSG_FDS)
		return client_store_one(sock, name, opts, stream_fd, fds, n_fds, ret_reply);
	return client_store_chunked(sock, name, opts, stream_fd, fds, n_fds, ret_reply);
}

static int64_t client_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

/*
 * The chunks after a claim reply: fds @off to @n - 1 in messages of <= 253.
 * On error every fd of @fds received so far (0 to @off - 1 included) is closed.
 */
static int client_chunks(int sock, int *fds, size_t off, size_t n)
{
	while (off < n) {
		struct json_object *o = NULL;
		size_t got = 0;
		int r = cprd_recv(sock, client_timeout_ms, &o, fds + off, CLIENT_MSG_FDS, &got);

		if (r == 0 &&
		    (client_int(o, "first") != (int64_t)off ||
		     client_int(o, "count") != (int64_t)got || got == 0 || got > n - off)) {
			scm_close_all(fds + off, got);
			r = -EPROTO;
		}
		json_object_put(o);
		if (r < 0) {
			scm_close_all(fds, off);
			return r;
		}
		off += got;
	}
	return 0;
}

static int client_claim(int sock, struct json_object *req, struct json_object **ret_reply,
			int *ret_stream_fd, int **ret_fds, size_t *ret_n_fds)
{
	struct json_object *reply = NULL;
	int first[CLIENT_MSG_FDS], *fds = NULL;
	size_t n_first = 0;
	int64_t n, n_inline;
	int r = cprd_send(sock, req, NULL, 0);

	if (r == 0)
		r = cprd_recv(sock, client_timeout_ms, &reply, first, CLIENT_MSG_FDS, &n_first);
	if (r < 0)
		return r;
	r = client_status(reply);
	n = client_int(reply, "fds");
	n_inline =
		json_object_object_get_ex(reply, "inline", NULL) ? client_int(reply, "inline") : 0;
	if (r == 0 && (n < 0 || n > (1 << 24) || n_inline < 0 || n_inline > n ||
		       n_first != 1 + (size_t)n_inline))
		r = -EPROTO;
	if (r == 0 && !(fds = malloc(((size_t)n ? (size_t)n : 1) * sizeof(int))))
		r = -ENOMEM;
	if (r == 0) {
		memcpy(fds, first + 1, (size_t)n_inline * sizeof(int));
		r = client_chunks(sock, fds, (size_t)n_inline, (size_t)n);
		if (r < 0)
			n_first = 1; /* the inline fds were closed with the others */
	}
	if (r < 0) {
		scm_close_all(first, n_first);
		free(fds);
	} else {
		*ret_stream_fd = first[0];
		*ret_fds = fds;
		*ret_n_fds = (size_t)n;
	}
	if (ret_reply)
		*ret_reply = reply;
	else
		json_object_put(reply);
	return r;
}

int cprd_claim(int sock, const char *name, uint64_t lease_ms, struct json_object **ret_reply,
	       int *ret_stream_fd, int **ret_fds, size_t *ret_n_fds)
{
	struct json_object *req = client_req("claim", name);
	int r;

	if (!req)
		return -ENOMEM;
	if (lease_ms)
		json_object_object_add(req, "lease_ms", json_object_new_int64((int64_t)lease_ms));
	r = client_claim(sock, req, ret_reply, ret_stream_fd, ret_fds, ret_n_fds);
	json_object_put(req);
	return r;
}

int cprd_claim_take(int sock, const char *name, struct json_object **ret_reply, int *ret_stream_fd,
		    int **ret_fds, size_t *ret_n_fds)
{
	struct json_object *req = client_req("claim", name);
	int r;

	if (!req)
		return -ENOMEM;
	json_object_object_add(req, "ack", json_object_new_boolean(1));
	r = client_claim(sock, req, ret_reply, ret_stream_fd, ret_fds, ret_n_fds);
	json_object_put(req);
	return r;
}

const char *cprd_reply_token(struct json_object *reply)
{
	struct json_object *t;

	if (!reply || !json_object_object_get_ex(reply, "token", &t) ||
	    !json_object_is_type(t, json_type_string))
		return NULL;
	return json_object_get_string(t);
}

int cprd_claim_ack(int sock, const char *name, struct json_object **ret_reply, int *ret_stream_fd,
		   int **ret_fds, size_t *ret_n_fds)
{
	struct json_object *reply = NULL;
	int stream = -EBADF, *fds = NULL, r;
	const char *token;
	size_t n = 0;

	r = cprd_claim_take(sock, name, &reply, &stream, &fds, &n);
	/* every fd arrived: confirm, and the daemon forgets the bundle */
	if (r == 0) {
		token = cprd_reply_token(reply);
		r = token ? cprd_token_op(sock, "ack", name, token, NULL) : -EPROTO;
		if (r < 0) {
			cpr_close(stream);
			scm_close_all(fds, n);
			free(fds);
		}
	}
	if (ret_reply)
		*ret_reply = reply;
	else
		json_object_put(reply);
	if (r == 0) {
		*ret_stream_fd = stream;
		*ret_fds = fds;
		*ret_n_fds = n;
	}
	return r;
}

int cprd_token_op(int sock, const char *op, const char *name, const char *token,
		  struct json_object **ret_reply)
{
	struct json_object *req = json_object_new_object();
	int r;

	if (!req)
		return -ENOMEM;
	json_object_object_add(req, "op", json_object_new_string(op));
	json_object_object_add(req, "name", json_object_new_string(name));
	json_object_object_add(req, "token", json_object_new_string(token));
	r = cprd_call(sock, req, NULL, 0, ret_reply);
	json_object_put(req);
	return r;
}
