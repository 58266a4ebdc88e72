/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprctl commands that change bundles: store (create + put + seal on one
 * connection, since an open bundle lives with its connection), claim, ack,
 * release, renew, drop.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client.h"
#include "cprctl.h"
#include "cprctl-ops.h"
#include "scm.h"

#define STORE_FDS_MAX 16384u

struct store_args {
	const char *socket;
	const char *stream;
	struct json_object *opts;
	int fds[STORE_FDS_MAX];
	size_t n_fds;
};

static int add_id(struct json_object *opts, const char *key, const char *s)
{
	struct json_object *c, *a;
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v >= UINT32_MAX)
		return -EINVAL;
	if (!json_object_object_get_ex(opts, "consumers", &c)) {
		c = json_object_new_object();
		json_object_object_add(opts, "consumers", c);
	}
	if (!json_object_object_get_ex(c, key, &a)) {
		a = json_object_new_array();
		json_object_object_add(c, key, a);
	}
	return json_object_array_add(a, json_object_new_int64((int64_t)v));
}

static int open_for_bundle(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);

	if (fd < 0 && (errno == EACCES || errno == EISDIR || errno == EROFS))
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	return fd < 0 ? -errno : fd;
}

static int store_fd_arg(struct store_args *a, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || !*s || *end || v < 0 || v > INT32_MAX || fcntl((int)v, F_GETFD) < 0)
		return -EBADF;
	if (a->n_fds == STORE_FDS_MAX)
		return -E2BIG;
	a->fds[a->n_fds] = fcntl((int)v, F_DUPFD_CLOEXEC, 3);
	return a->fds[a->n_fds] < 0 ? -errno : (int)a->n_fds++;
}

static int store_parse(int argc, char *argv[], struct store_args *a)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "stream", required_argument, NULL, 'S' },
		{ "consumer-uid", required_argument, NULL, 'u' },
		{ "consumer-gid", required_argument, NULL, 'g' },
		{ "ttl", required_argument, NULL, 't' },
		{ "tie", no_argument, NULL, 'T' },
		{ "durable", no_argument, NULL, 'D' },
		{ "fd", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, CPRCTL_OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:S:u:g:t:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			a->socket = optarg;
			break;
		case 'S':
			a->stream = optarg;
			break;
		case 'u':
			if (add_id(a->opts, "uids", optarg) < 0)
				return cprctl_usage_error("store: bad uid '%s'", optarg);
			break;
		case 'g':
			if (add_id(a->opts, "gids", optarg) < 0)
				return cprctl_usage_error("store: bad gid '%s'", optarg);
			break;
		case 't':
			json_object_object_add(a->opts, "ttl_ms",
					       json_object_new_int64(strtoll(optarg, NULL, 10)));
			break;
		case 'T':
			json_object_object_add(a->opts, "tie", json_object_new_boolean(1));
			break;
		case 'D':
			json_object_object_add(a->opts, "durable", json_object_new_boolean(1));
			break;
		case 'f':
			if (store_fd_arg(a, optarg) < 0)
				return cprctl_usage_error("store: --fd %s: not an open fd", optarg);
			break;
		case CPRCTL_OPT_JSON:
			cprctl_opts.json = true;
			break;
		case 'h':
			cprctl_print_usage(stdout, "store");
			exit(0);
		default:
			return cprctl_usage_error("store: invalid option");
		}
	}
	if (argc - optind < 1 || !a->stream)
		return cprctl_usage_error("store: NAME and --stream FILE are required");
	return 0;
}

int cprctl_store_main(int argc, char *argv[])
{
	struct store_args *a = calloc(1, sizeof(*a));
	struct json_object *reply = NULL;
	int sock = -1, stream = -1, r, ret = CPRCTL_EXIT_OK;
	const char *name;

	if (!a)
		return CPRCTL_EXIT_TEMP;
	a->opts = json_object_new_object();
	ret = store_parse(argc, argv, a);
	if (ret)
		goto out;
	name = argv[optind];
	for (int i = optind + 1; i < argc; i++) {
		int fd = a->n_fds < STORE_FDS_MAX ? open_for_bundle(argv[i]) : -E2BIG;

		if (fd < 0) {
			cprctl_warnx("store: %s: %s", argv[i], strerror(-fd));
			ret = CPRCTL_EXIT_FAILED;
			goto out;
		}
		a->fds[a->n_fds++] = fd;
	}
	stream = open(a->stream, O_RDONLY | O_CLOEXEC);
	if (stream < 0) {
		cprctl_warnx("store: %s: %s", a->stream, strerror(errno));
		ret = CPRCTL_EXIT_FAILED;
		goto out;
	}
	if (cprctl_connect(a->socket, &sock) < 0) {
		ret = CPRCTL_EXIT_TEMP;
		goto out;
	}
	r = cprd_store(sock, name, a->opts, stream, a->fds, a->n_fds, &reply);
	if (r < 0) {
		ret = cprctl_fail("store", r, reply);
		reply = NULL;
	} else if (cprctl_opts.json) {
		cprctl_print_json(reply);
	} else {
		printf("stored %s: %zu fds\n", name, a->n_fds);
	}
out:
	json_object_put(reply);
	json_object_put(a->opts);
	for (size_t i = 0; i < a->n_fds; i++)
		close(a->fds[i]);
	if (stream >= 0)
		close(stream);
	if (sock >= 0)
		close(sock);
	free(a);
	return ret;
}

/* Copy the contents of @fd (a memfd or a file) to DIR/NAME. */
static int save_fd(int dirfd, const char *name, int fd)
{
	char buf[65536];
	off_t off = 0;
	int out = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = 0;

	if (out < 0)
		return -errno;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);

		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		if (write(out, buf, (size_t)n) != n) {
			r = -EIO;
			break;
		}
		off += n;
	}
	close(out);
	return r;
}

static int save_all(int dirfd, int stream, const int *fds, size_t n)
{
	char name[32];
	int r = save_fd(dirfd, "stream", stream);

	for (size_t i = 0; r == 0 && i < n; i++) {
		snprintf(name, sizeof(name), "fd-%zu", i);
		r = save_fd(dirfd, name, fds[i]);
	}
	return r;
}

/*
 * Run PROG with the stream at fd 3 and the bundle's fds from fd 4 on, in
 * slot order; CPRD_BUNDLE, CPRD_TOKEN and CPRD_FDS describe them.
 */
static int exec_with_fds(char **prog, const char *name, const char *token, int stream, int *fds,
			 size_t n)
{
	int *high = calloc(n + 1, sizeof(int));
	char num[32];

	if (!high)
		return -ENOMEM;
	for (size_t i = 0; i <= n; i++) {
		int src = i == 0 ? stream : fds[i - 1];

		high[i] = fcntl(src, F_DUPFD_CLOEXEC, (int)n + 8);
		if (high[i] < 0)
			return -errno;
		close(src);
	}
	for (size_t i = 0; i <= n; i++)
		if (dup2(high[i], 3 + (int)i) < 0)
			return -errno;
	snprintf(num, sizeof(num), "%zu", n);
	setenv("CPRD_BUNDLE", name, 1);
	setenv("CPRD_TOKEN", token, 1);
	setenv("CPRD_FDS", num, 1);
	execvp(prog[0], prog);
	return -errno;
}

struct claim_args {
	const char *socket;
	const char *save;
	unsigned long long lease;
	bool ack;
	bool take; /* claim with "ack": true, acked once saved or handed to PROG */
	char **prog;
	int dirfd; /* --save, opened before the claim */
};

static int claim_parse(int argc, char *argv[], struct claim_args *a)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "lease", required_argument, NULL, 'l' },
		{ "save", required_argument, NULL, 'd' },
		{ "ack", no_argument, NULL, 'a' },
		{ "take", no_argument, NULL, 't' },
		{ "json", no_argument, NULL, CPRCTL_OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "+s:l:d:ath", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			a->socket = optarg;
			break;
		case 'l':
			errno = 0;
			a->lease = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-' || a->lease == 0)
				return cprctl_usage_error("claim: --lease: '%s' is not a number "
							  "of milliseconds",
							  optarg);
			break;
		case 'd':
			a->save = optarg;
			break;
		case 'a':
			a->ack = true;
			break;
		case 't':
			a->take = true;
			break;
		case CPRCTL_OPT_JSON:
			cprctl_opts.json = true;
			break;
		case 'h':
			cprctl_print_usage(stdout, "claim");
			exit(0);
		default:
			return cprctl_usage_error("claim: invalid option");
		}
	}
	if (argc - optind < 1)
		return cprctl_usage_error("claim: NAME is required");
	if (a->take && a->ack)
		return cprctl_usage_error("claim: --take acknowledges by itself: no --ack with it");
	a->prog = optind + 1 < argc ? argv + optind + 1 : NULL;
	return 0;
}

/* Is @prog something execvp() can run? Checked before anything is claimed. */
static int prog_runnable(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0 ? 0 : -errno;
	if (!*prog)
		return -ENOENT;
	for (path = path ? path : "/usr/bin:/bin"; *path;) {
		size_t n = strcspn(path, ":");

		if (snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, n ? path : ".", prog) <
			    (int)sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return 0;
		path += n + (path[n] == ':');
	}
	return -ENOENT;
}

static int claim_refuse(const char *what, const char *arg, int r)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s %s: %s; nothing claimed", what, arg, strerror(-r));
	if (cprctl_opts.json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "ok", json_object_new_boolean(0));
		json_object_object_add(o, "op", json_object_new_string("claim"));
		json_object_object_add(o, "message", json_object_new_string(msg));
		json_object_object_add(o, "claimed", json_object_new_boolean(0));
		cprctl_print_json(o);
		json_object_put(o);
	}
	cprctl_warnx("claim: %s", msg);
	return CPRCTL_EXIT_USAGE;
}

/* Everything that can fail without the daemon, checked before the claim. */
static int claim_validate(struct claim_args *a)
{
	int r;

	if (a->save) {
		a->dirfd = open(a->save, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (a->dirfd < 0 || faccessat(a->dirfd, ".", W_OK, AT_EACCESS) < 0)
			return claim_refuse("--save", a->save, -errno);
	}
	if (a->prog && (r = prog_runnable(a->prog[0])) < 0)
		return claim_refuse("program", a->prog[0], r);
	return 0;
}

/* After a failure past the claim: give it back, and say so (--json too). */
static int claim_undo(int sock, const char *name, const char *token, const char *what, int r)
{
	/* a claim of --take would also end with the connection: say so now */
	bool released = token && cprd_token_op(sock, "release", name, token, NULL) == 0;

	if (cprctl_opts.json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "ok", json_object_new_boolean(0));
		json_object_object_add(o, "op", json_object_new_string("claim"));
		json_object_object_add(o, "name", json_object_new_string(name));
		json_object_object_add(o, "message", json_object_new_string(what));
		json_object_object_add(o, "released", json_object_new_boolean(released));
		if (!released && token)
			json_object_object_add(o, "token", json_object_new_string(token));
		cprctl_print_json(o);
		json_object_put(o);
	}
	if (released)
		cprctl_warnx("claim: %s: %s; the claim is given back", what, strerror(-r));
	else
		cprctl_warnx("claim: %s: %s; the claim stays, token %s", what, strerror(-r),
			     token ? token : "?");
	return cprctl_errno_exit(r);
}

static void claim_print(const struct claim_args *a, struct json_object *reply, const char *name,
			size_t n, const char *token)
{
	if (cprctl_opts.json)
		cprctl_print_json(reply);
	else if (a->take)
		printf("taken %s: %zu fds, acknowledged\n", name, n);
	else
		printf("claimed %s: %zu fds, token %s, lease %lld ms%s\n", name, n, token,
		       (long long)json_object_get_int64(json_object_object_get(reply, "lease_ms")),
		       a->ack ? ", acknowledged" : "");
}

int cprctl_claim_main(int argc, char *argv[])
{
	struct claim_args a = { .dirfd = -1 };
	struct json_object *reply = NULL;
	int sock, stream = -1, *fds = NULL, r;
	size_t n = 0;
	const char *name, *token;

	r = claim_parse(argc, argv, &a);
	if (r == 0)
		r = claim_validate(&a);
	if (r) {
		if (a.dirfd >= 0)
			close(a.dirfd);
		return r;
	}
	name = argv[optind];
	if (cprctl_connect(a.socket, &sock) < 0)
		return CPRCTL_EXIT_TEMP;
	if (a.take)
		r = cprd_claim_take(sock, name, &reply, &stream, &fds, &n);
	else
		r = cprd_claim(sock, name, a.lease, &reply, &stream, &fds, &n);
	if (r < 0) {
		close(sock);
		if (a.dirfd >= 0)
			close(a.dirfd);
		return cprctl_fail("claim", r, reply);
	}
	token = cprd_reply_token(reply);
	if (a.save) {
		r = save_all(a.dirfd, stream, fds, n);
		close(a.dirfd);
		if (r < 0)
			r = claim_undo(sock, name, token, "saving the bundle", r);
	}
	/* taken: acknowledged once saved, or right before PROG gets the fds */
	if (r == 0 && (a.ack || a.take)) {
		r = token ? cprd_token_op(sock, "ack", name, token, NULL) : -EPROTO;
		if (r < 0)
			r = claim_undo(sock, name, token, "acknowledging", r);
	}
	close(sock);
	if (r == 0 && !a.prog)
		claim_print(&a, reply, name, n, token);
	if (r == 0 && a.prog) {
		r = exec_with_fds(a.prog, name, a.take ? "" : token, stream, fds, n);
		cprctl_warnx("claim: %s: %s", a.prog[0], strerror(-r));
		r = cprctl_errno_exit(r);
	}
	close(stream);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	json_object_put(reply);
	return r;
}

static int token_cmd(int argc, char *argv[], const char *op)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "lease", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, CPRCTL_OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct json_object *reply = NULL, *req;
	const char *sockpath = NULL;
	long long lease = 0;
	int sock, c, r;

	while ((c = getopt_long(argc, argv, "s:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sockpath = optarg;
			break;
		case 'l':
			lease = strtoll(optarg, NULL, 10);
			break;
		case CPRCTL_OPT_JSON:
			cprctl_opts.json = true;
			break;
		case 'h':
			cprctl_print_usage(stdout, op);
			exit(0);
		default:
			return cprctl_usage_error("%s: invalid option", op);
		}
	}
	if (argc - optind != 2)
		return cprctl_usage_error("%s: NAME and TOKEN are required", op);
	if (cprctl_connect(sockpath, &sock) < 0)
		return CPRCTL_EXIT_TEMP;
	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string(op));
	json_object_object_add(req, "name", json_object_new_string(argv[optind]));
	json_object_object_add(req, "token", json_object_new_string(argv[optind + 1]));
	if (lease)
		json_object_object_add(req, "lease_ms", json_object_new_int64(lease));
	r = cprd_call(sock, req, NULL, 0, &reply);
	json_object_put(req);
	close(sock);
	if (r < 0)
		return cprctl_fail(op, r, reply);
	if (cprctl_opts.json)
		cprctl_print_json(reply);
	else
		printf("%s %s: done\n", op, argv[optind]);
	json_object_put(reply);
	return 0;
}

int cprctl_ack_main(int argc, char *argv[])
{
	return token_cmd(argc, argv, "ack");
}

int cprctl_release_main(int argc, char *argv[])
{
	return token_cmd(argc, argv, "release");
}

int cprctl_renew_main(int argc, char *argv[])
{
	return token_cmd(argc, argv, "renew");
}

int cprctl_drop_main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, CPRCTL_OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct json_object *reply = NULL;
	const char *sockpath = NULL;
	int sock, c, r;

	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sockpath = optarg;
			break;
		case CPRCTL_OPT_JSON:
			cprctl_opts.json = true;
			break;
		case 'h':
			cprctl_print_usage(stdout, "drop");
			exit(0);
		default:
			return cprctl_usage_error("drop: invalid option");
		}
	}
	if (argc - optind != 1)
		return cprctl_usage_error("drop: NAME is required");
	if (cprctl_connect(sockpath, &sock) < 0)
		return CPRCTL_EXIT_TEMP;
	r = cprd_call_name(sock, "drop", argv[optind], &reply);
	close(sock);
	if (r < 0)
		return cprctl_fail("drop", r, reply);
	if (cprctl_opts.json)
		cprctl_print_json(reply);
	else
		printf("dropped %s\n", argv[optind]);
	json_object_put(reply);
	return 0;
}
