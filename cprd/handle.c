/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Request dispatch: parse, look the op up in the table, check the fields
 * and the fd count the op declares, then call handle_<op>.  A malformed
 * request gets an error reply with "closing": its fds are closed and so is
 * the connection; the daemon serves everyone else as before.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <json-c/json.h>

#include "internal.h"
#include "cprd.h"
#include "errnames.h"
#include "handle.h"
#include "log.h"
#include "proto.h"

static const char *const k_none[] = { NULL };
static const char *const k_hello[] = { "version", "client", NULL };
static const char *const k_list[] = { "prefix", NULL };
static const char *const k_name[] = { "name", NULL };
static const char *const k_create[] = { "name", "consumers", "ttl_ms", "tie", "durable", NULL };
static const char *const k_store[] = { "name", "consumers", "ttl_ms", "tie", "durable", NULL };
static const char *const k_claim[] = { "name", "lease_ms", "ack", NULL };
static const char *const k_token[] = { "name", "token", NULL };
static const char *const k_upgrade[] = { "exe", "timeout_ms", NULL };
static const char *const k_renew[] = { "name", "token", "lease_ms", NULL };
static const char *const k_qemu_listen[] = { "name", "consumers", "ttl_ms", NULL };

#ifdef CPRD_TEST_HOOKS
/* Test builds only: make a system call the sandbox forbids. */
static int handle_test_syscall(struct request *r)
{
	long v = syscall(SYS_personality, 0xffffffffUL); /* a query; harmless if allowed */

	json_object_object_add(r->reply, "personality", json_object_new_int64(v));
	return 0;
}
#endif

static const struct handler handlers[] = {
	{ "hello", handle_hello, H_FDS_NONE, k_hello, 1 },
	{ "status", handle_status, H_FDS_NONE, k_none, 1 },
	{ "list", handle_list, H_FDS_NONE, k_list, 1 },
	{ "show", handle_show, H_FDS_NONE, k_name, 1 },
	{ "create", handle_create, H_FDS_NONE, k_create, 1 },
	{ "put", handle_put, H_FDS_SOME, k_name, 1 },
	{ "seal", handle_seal, H_FDS_ONE, k_name, 1 },
	{ "store", handle_store, H_FDS_SOME, k_store, 2 },
	{ "claim", handle_claim, H_FDS_NONE, k_claim, 1 },
	{ "ack", handle_ack, H_FDS_NONE, k_token, 1 },
	{ "release", handle_release, H_FDS_NONE, k_token, 1 },
	{ "renew", handle_renew, H_FDS_NONE, k_renew, 1 },
	{ "drop", handle_drop, H_FDS_NONE, k_name, 1 },
	{ "upgrade", handle_upgrade, H_FDS_NONE | H_ADMIN, k_upgrade, 1 },
	{ "debug", handle_debug, H_FDS_NONE | H_SELF, k_none, 1 },
	{ "qemu-listen", handle_qemu_listen, H_FDS_SOME, k_qemu_listen, 3 },
	{ "qemu-deliver", handle_qemu_deliver, H_FDS_SOME, k_name, 3 },
#ifdef CPRD_TEST_HOOKS
	{ "test-syscall", handle_test_syscall, H_FDS_NONE | H_ADMIN, k_none, 1 },
#endif
};

int handle_bad_field(struct request *r, const char *key, int err)
{
	snprintf(r->why, sizeof(r->why), "field \"%s\" %s", key,
		 err == -ENOENT ? "is required" : "has the wrong type or is out of range");
	r->fatal = true;
	return -EINVAL;
}

int handle_name(struct request *r, const char **ret)
{
	struct json_object *v = proto_get_obj(r->req, "name");
	const char *why = NULL;

	if (!v)
		why = "is required";
	else if (!json_object_is_type(v, json_type_string))
		why = "must be a string";
	else if ((size_t)json_object_get_string_len(v) > CPRD_BUNDLE_NAME_MAX)
		why = "is longer than 128 bytes";
	else if (!proto_name_valid(json_object_get_string(v)))
		why = "may hold only letters, digits and ._:@+=/- and may not be empty or "
		      "start with . or -";
	if (why) {
		snprintf(r->why, sizeof(r->why), "field \"name\" %s", why);
		r->fatal = true;
		return -EINVAL;
	}
	*ret = json_object_get_string(v);
	return 0;
}

int handle_fail(struct request *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	return err;
}

unsigned handle_version(const struct conn *c)
{
	return c->version ? c->version : CPRD_PROTOCOL_VERSION;
}

struct json_object *handle_ops_json(unsigned version)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < ARRAY_SIZE(handlers); i++)
		if (handlers[i].since <= version)
			json_object_array_add(a, json_object_new_string(handlers[i].op));
	return a;
}

static const struct handler *handle_lookup(const char *op)
{
	for (size_t i = 0; i < ARRAY_SIZE(handlers); i++)
		if (strcmp(handlers[i].op, op) == 0)
			return &handlers[i];
	return NULL;
}

static int handle_check_fds(const struct handler *h, struct request *r)
{
	unsigned f = h->flags & 0xf;
	bool ok = f == H_FDS_NONE ? r->n_fds == 0 : f == H_FDS_ONE ? r->n_fds == 1 : r->n_fds > 0;

	if (ok)
		return 0;
	snprintf(r->why, sizeof(r->why), "op \"%s\" takes %s fds, %zu attached", h->op,
		 f == H_FDS_NONE  ? "no"
		 : f == H_FDS_ONE ? "exactly 1"
				  : "1 to 253",
		 r->n_fds);
	r->fatal = true;
	return -EBADF;
}

/* Parse and check everything the table says; then call the handler. */
static int handle_dispatch(struct request *r, const char *buf, size_t len)
{
	const struct handler *h;
	int ret;

	ret = proto_parse(buf, len, cprd.cfg.limits.max_depth, &r->req, r->why, sizeof(r->why));
	if (ret < 0) {
		r->fatal = true;
		return ret;
	}
	if (proto_get_str(r->req, "op", true, 32, &r->op) < 0) {
		r->op = NULL;
		r->fatal = true;
		return handle_fail(r, -EPROTO, "field \"op\" (a string) is required");
	}
	h = handle_lookup(r->op);
	if (!h || h->since > handle_version(r->conn)) {
		char q[48];

		cpr_quote(q, sizeof(q), r->op, strlen(r->op));
		r->op = NULL;
		r->fatal = true;
		if (h)
			return handle_fail(r, -EOPNOTSUPP,
					   "op \"%s\" is protocol %u; this connection agreed to %u",
					   q, h->since, handle_version(r->conn));
		return handle_fail(
			r, -EOPNOTSUPP,
			"unknown op \"%s\": this daemon speaks protocol %u (\"hello\" lists "
			"its ops)",
			q, CPRD_PROTOCOL_VERSION);
	}
	ret = proto_check_keys(r->req, h->keys, r->why, sizeof(r->why));
	if (ret == 0)
		ret = handle_check_fds(h, r);
	if (ret < 0) {
		r->fatal = true;
		return ret;
	}
	if ((h->flags & H_ADMIN) && !conf_is_admin(&cprd.cfg, r->peer->uid))
		return handle_fail(r, -EPERM, "op \"%s\" is for administrators", h->op);
	if ((h->flags & H_SELF) && r->peer->uid != 0 && r->peer->uid != geteuid())
		return handle_fail(r, -EPERM, "op \"%s\" is for root and the daemon's own uid",
				   h->op);
	r->reply = proto_reply_new(h->op);
	if (!r->reply)
		return -ENOMEM;
	return h->fn(r);
}

/* The reply, then any fds beyond out_first in chunks of 253; 0 when all went out. */
static int handle_send_reply(struct request *r)
{
	size_t first = MIN(r->out_first, r->n_out_fds), off = first;
	unsigned chunk = 0;
	int ret = control_send_json(r->conn, r->reply, r->out_fds, first);

	if (ret < 0)
		return ret;
	while (off < r->n_out_fds) {
		size_t n = MIN(r->n_out_fds - off, CPRD_MSG_FDS_MAX);
		struct json_object *o = json_object_new_object();

		if (o) {
			json_object_object_add(o, "chunk", json_object_new_int(chunk++));
			json_object_object_add(o, "first",
					       json_object_new_int64((int64_t)(off - r->out_lead)));
			json_object_object_add(o, "count", json_object_new_int((int)n));
		}
		ret = control_send_json(r->conn, o, r->out_fds + off, n);
		json_object_put(o);
		if (ret < 0)
			return ret;
		off += n;
	}
	return 0;
}

void handle_request(struct conn *c, const char *buf, size_t len, int *fds, size_t n_fds)
{
	struct request r = { .conn = c, .peer = &c->peer, .fds = fds, .n_fds = n_fds };
	int ret;

	cprd.n_requests++;
	ret = handle_dispatch(&r, buf, len);
	for (size_t i = 0; i < r.n_fds; i++)
		r.fds[i] = cpr_close(r.fds[i]);
	if (ret < 0) {
		struct json_object *e = proto_error_new(r.op, ret, r.why, r.fatal);

		log_debug("pid %d uid %u: %s: %s: %s", (int)c->peer.pid, (unsigned)c->peer.uid,
			  r.op ? r.op : "?", cprd_errno_name(ret), r.why);
		control_send_json(c, e, NULL, 0);
		json_object_put(e);
		if (r.fatal)
			c->closing = true;
	} else if (!r.no_reply) {
		ret = handle_send_reply(&r);
	}
	/* after the reply: the peer is not kept waiting while the fds are closed */
	if (r.done)
		store_remove(r.done, "acknowledged");
	free(r.out_own);
	json_object_put(r.reply);
	json_object_put(r.req);
}
