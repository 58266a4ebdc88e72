/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprd-protocol(7) against a real daemon: well-formed requests, and
 * malformed ones, each refused with an error reply, its fds closed and the
 * connection closed, while the daemon keeps serving everyone else; and
 * "debug", the point the other suites synchronise on.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "scm.h"
#include "client.h"
#include "cprd-test.h"
#include "test-util.h"

static struct cprd_daemon d;

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t len = strlen(head) + strlen(unit) * n + strlen(tail) + 1;
	char *s = malloc(len), *p = s;

	p = stpcpy(p, head);
	for (size_t i = 0; i < n; i++)
		p = stpcpy(p, unit);
	strcpy(p, tail);
	return s;
}

struct bad {
	const char *what;
	const char *json; /* NULL: built by the case */
	size_t n_fds;
	const char *error;
};

#define TOKEN "0123456789abcdef0123456789abcdef"
/* The request object and 15 arrays: the default max-json-depth, 16. */
#define OPEN15 "[[[[[[[[[[[[[[["
#define CLOSE15 "]]]]]]]]]]]]]]]"
#define DEEP(inner, extra_open, extra_close) \
	"{\"op\":\"hello\",\"client\":" extra_open OPEN15 inner CLOSE15 extra_close "}"
static const struct bad bads[] = {
	{ "truncated object", "{\"op\":", 0, "EPROTO" },
	{ "array", "[]", 0, "EPROTO" },
	{ "null", "null", 0, "EPROTO" },
	{ "number", "42", 0, "EPROTO" },
	{ "string", "\"hello\"", 0, "EPROTO" },
	{ "trailing garbage", "{\"op\":\"hello\"} x", 0, "EPROTO" },
	{ "two objects", "{\"op\":\"hello\"}{\"op\":\"hello\"}", 0, "EPROTO" },
	{ "empty object", "{}", 0, "EPROTO" },
	{ "op not a string", "{\"op\":1}", 0, "EPROTO" },
	{ "op too long", "{\"op\":\"hellohellohellohellohellohellohello\"}", 0, "EPROTO" },
	{ "unknown op", "{\"op\":\"nope\"}", 0, "EOPNOTSUPP" },
	{ "op case", "{\"op\":\"HELLO\"}", 0, "EOPNOTSUPP" },
	{ "single quotes", "{'op':'hello'}", 0, "EPROTO" },
	{ "trailing comma", "{\"op\":\"hello\",}", 0, "EPROTO" },
	{ "comment", "/* x */{\"op\":\"hello\"}", 0, "EPROTO" },
	{ "NaN", "{\"op\":\"hello\",\"version\":NaN}", 0, "EINVAL" },
	{ "bad UTF-8", "{\"op\":\"hello\",\"client\":\"\xff\xfe\"}", 0, "EPROTO" },
	{ "overlong UTF-8", "{\"op\":\"hello\",\"client\":\"\xc0\xaf\"}", 0, "EPROTO" },
	{ "UTF-8 surrogate", "{\"op\":\"hello\",\"client\":\"\xed\xa0\x80\"}", 0, "EPROTO" },
	{ "escaped NUL in the op", "{\"op\":\"hello\\u0000junk\"}", 0, "EPROTO" },
	{ "escaped NUL in a name", "{\"op\":\"create\",\"name\":\"a\\u0000b\"}", 0, "EPROTO" },
	{ "escaped NUL in a key", "{\"op\":\"hello\",\"cl\\u0000x\":\"a\"}", 0, "EPROTO" },
	{ "unknown field", "{\"op\":\"hello\",\"x\":1}", 0, "EINVAL" },
	{ "version a string", "{\"op\":\"hello\",\"version\":\"1\"}", 0, "EINVAL" },
	{ "version negative", "{\"op\":\"hello\",\"version\":-1}", 0, "EINVAL" },
	{ "version fraction", "{\"op\":\"hello\",\"version\":1.5}", 0, "EINVAL" },
	{ "version overflow", "{\"op\":\"hello\",\"version\":99999999999999999999}", 0, "EINVAL" },
	{ "status with a name", "{\"op\":\"status\",\"name\":\"a\"}", 0, "EINVAL" },
	{ "create without name", "{\"op\":\"create\"}", 0, "EINVAL" },
	{ "create empty name", "{\"op\":\"create\",\"name\":\"\"}", 0, "EINVAL" },
	{ "create name with blank", "{\"op\":\"create\",\"name\":\"a b\"}", 0, "EINVAL" },
	{ "create name dot-first", "{\"op\":\"create\",\"name\":\"..\"}", 0, "EINVAL" },
	{ "create name a number", "{\"op\":\"create\",\"name\":7}", 0, "EINVAL" },
	{ "consumers an array", "{\"op\":\"create\",\"name\":\"a\",\"consumers\":[]}", 0,
	  "EINVAL" },
	{ "consumer uids a string",
	  "{\"op\":\"create\",\"name\":\"a\",\"consumers\":{\"uids\":\"0\"}}", 0, "EINVAL" },
	{ "consumer uid negative",
	  "{\"op\":\"create\",\"name\":\"a\",\"consumers\":{\"uids\":[-1]}}", 0, "EINVAL" },
	{ "consumer uid -1 as u32",
	  "{\"op\":\"create\",\"name\":\"a\",\"consumers\":{\"uids\":[4294967295]}}", 0, "EINVAL" },
	{ "consumers unknown key",
	  "{\"op\":\"create\",\"name\":\"a\",\"consumers\":{\"pids\":[1]}}", 0, "EINVAL" },
	{ "ttl a string", "{\"op\":\"create\",\"name\":\"a\",\"ttl_ms\":\"5\"}", 0, "EINVAL" },
	{ "tie a number", "{\"op\":\"create\",\"name\":\"a\",\"tie\":1}", 0, "EINVAL" },
	{ "claim lease a bool", "{\"op\":\"claim\",\"name\":\"a\",\"lease_ms\":true}", 0,
	  "EINVAL" },
	{ "claim ack a number", "{\"op\":\"claim\",\"name\":\"a\",\"ack\":1}", 0, "EINVAL" },
	{ "claim ack a string", "{\"op\":\"claim\",\"name\":\"a\",\"ack\":\"true\"}", 0, "EINVAL" },
	{ "claim ack with a token",
	  "{\"op\":\"claim\",\"name\":\"a\",\"ack\":true,\"token\":\"" TOKEN "\"}", 0, "EINVAL" },
	{ "claim ack with an fd", "{\"op\":\"claim\",\"name\":\"a\",\"ack\":true}", 1, "EBADF" },
	{ "store without fds", "{\"op\":\"store\",\"name\":\"a\"}", 0, "EBADF" },
	{ "store without name", "{\"op\":\"store\"}", 2, "EINVAL" },
	{ "store name a number", "{\"op\":\"store\",\"name\":7}", 1, "EINVAL" },
	{ "store name with blank", "{\"op\":\"store\",\"name\":\"a b\"}", 3, "EINVAL" },
	{ "store unknown field", "{\"op\":\"store\",\"name\":\"a\",\"fds\":2}", 2, "EINVAL" },
	{ "store token field", "{\"op\":\"store\",\"name\":\"a\",\"token\":\"" TOKEN "\"}", 1,
	  "EINVAL" },
	{ "store consumers an array", "{\"op\":\"store\",\"name\":\"a\",\"consumers\":[]}", 1,
	  "EINVAL" },
	{ "store consumer uid negative",
	  "{\"op\":\"store\",\"name\":\"a\",\"consumers\":{\"gids\":[-5]}}", 1, "EINVAL" },
	{ "store ttl negative", "{\"op\":\"store\",\"name\":\"a\",\"ttl_ms\":-1}", 1, "EINVAL" },
	{ "store ttl overflow", "{\"op\":\"store\",\"name\":\"a\",\"ttl_ms\":4294967296}", 1,
	  "EINVAL" },
	{ "store tie a string", "{\"op\":\"store\",\"name\":\"a\",\"tie\":\"yes\"}", 1, "EINVAL" },
	{ "store with 253 fds, no name", "{\"op\":\"store\"}", 253, "EINVAL" },
	{ "ack without token", "{\"op\":\"ack\",\"name\":\"a\"}", 0, "EINVAL" },
	{ "ack short token", "{\"op\":\"ack\",\"name\":\"a\",\"token\":\"abc\"}", 0, "EINVAL" },
	{ "renew lease a string",
	  "{\"op\":\"renew\",\"name\":\"a\",\"token\":\"" TOKEN "\",\"lease_ms\":\"1\"}", 0,
	  "EINVAL" },
	{ "list prefix a number", "{\"op\":\"list\",\"prefix\":5}", 0, "EINVAL" },
	{ "hello with an fd", "{\"op\":\"hello\"}", 1, "EBADF" },
	{ "create with fds", "{\"op\":\"create\",\"name\":\"a\"}", 3, "EBADF" },
	{ "put without fds", "{\"op\":\"put\",\"name\":\"a\"}", 0, "EBADF" },
	{ "seal without fd", "{\"op\":\"seal\",\"name\":\"a\"}", 0, "EBADF" },
	{ "seal with 2 fds", "{\"op\":\"seal\",\"name\":\"a\"}", 2, "EBADF" },
	{ "claim with an fd", "{\"op\":\"claim\",\"name\":\"a\"}", 1, "EBADF" },
	{ "ack with 253 fds", "{\"op\":\"ack\",\"name\":\"a\",\"token\":\"" TOKEN "\"}", 253,
	  "EBADF" },
	{ "nesting at the limit, innermost empty", DEEP("", "", ""), 0, "EINVAL" },
	{ "nesting at the limit, innermost a value", DEEP("1", "", ""), 0, "EINVAL" },
	{ "nesting past the limit, innermost empty", DEEP("", "[", "]"), 0, "EPROTO" },
	{ "nesting past the limit, innermost a value", DEEP("1", "[", "]"), 0, "EPROTO" },
	{ "op twice", "{\"op\":\"hello\",\"op\":\"hello\"}", 0, "EPROTO" },
	{ "member twice, deeper",
	  "{\"op\":\"create\",\"name\":\"a\",\"consumers\":{\"uids\":[1],\"uids\":[2]}}", 0,
	  "EPROTO" },
	{ "NUL inside", NULL, 0, "EPROTO" },
	{ "nesting deeper than max-json-depth", NULL, 0, "EPROTO" },
	{ "larger than max-request", NULL, 0, "EMSGSIZE" },
	{ "long string in an allowed field", NULL, 0, "EINVAL" },
};

static char *bad_payload(const struct bad *b, size_t *ret_len)
{
	char *s;

	if (b->json) {
		*ret_len = strlen(b->json);
		return strdup(b->json);
	}
	if (strcmp(b->what, "NUL inside") == 0) {
		s = strdup("{\"op\":\"hello\"}");
		s[5] = 0;
		*ret_len = 14;
		return s;
	}
	if (strncmp(b->what, "nesting", 7) == 0)
		s = repeat("{\"op\":\"hello\",\"client\":", "[", 100, "");
	else if (strncmp(b->what, "larger", 6) == 0)
		s = repeat("{\"op\":\"hello\",\"client\":\"", "x", 70000, "\"}");
	else
		s = repeat("{\"op\":\"hello\",\"client\":\"", "x", 200, "\"}");
	*ret_len = strlen(s);
	return s;
}

/* Send one malformed request; expect the error, then the connection closed. */
static void check_bad(const struct bad *b)
{
	int sock = cprd_test_connect(&d), *fds = cprd_test_memfds(b->n_fds, "bad"), got[4];
	struct json_object *reply = NULL, *closing;
	size_t len, n_got = 0;
	char *payload = bad_payload(b, &len), buf[16];

	ck_assert_int_ge(scm_send(sock, payload, len, fds, b->n_fds), 0);
	cprd_test_close_fds(fds, b->n_fds);
	free(payload);
	ck_assert_msg(cprd_recv(sock, 5000, &reply, got, 4, &n_got) == 0, "%s: no reply", b->what);
	ck_assert_uint_eq(n_got, 0);
	ck_assert_msg(strcmp(cprd_test_error(reply), b->error) == 0, "%s: got %s (%s), want %s",
		      b->what, cprd_test_error(reply), cprd_reply_message(reply), b->error);
	ck_assert_msg(json_object_object_get_ex(reply, "closing", &closing) &&
			      json_object_get_boolean(closing),
		      "%s: not closing", b->what);
	json_object_put(reply);
	ck_assert_int_eq(scm_wait(sock, 5000), 0);
	ck_assert_int_eq(recv(sock, buf, sizeof(buf), 0), 0); /* closed by the daemon */
	close(sock);
}

START_TEST(test_proto_malformed_each_refused)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock;

	ck_assert_int_ge(ARRAY_SIZE(bads), 40);
	for (size_t i = 0; i < ARRAY_SIZE(bads); i++)
		check_bad(&bads[i]);
	/* the daemon is still up and serves a well-formed client */
	sock = cprd_test_connect(&d);
	ck_assert_int_eq(cprd_call_name(sock, "hello", NULL, NULL), 0);
	ck_assert_int_eq(cprd_test_store(sock, "after-bad", 2, "ok", NULL), 0);
	ck_assert_int_eq(cprd_call_name(sock, "drop", "after-bad", NULL), 0);
	close(sock);
	ck_assert_int_eq(cprd_daemon_fds(&d), base); /* every fd sent was closed */
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* What the strictness checks must not refuse: characters of every UTF-8
 * length, an escaped backslash before "u0000", which is text, and colons
 * and escaped quotes inside a string. */
START_TEST(test_proto_valid_text_accepted)
{
	static const char req[] = "{\"op\":\"hello\",\"client\":\"caf\xc3\xa9 \xe2\x82\xac "
				  "\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \\\\u0000 a:b \\\" c:\"}";
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	struct json_object *reply = NULL;
	int got[4];
	size_t n_got;

	ck_assert_int_ge(scm_send(sock, req, sizeof(req) - 1, NULL, 0), 0);
	ck_assert_int_eq(cprd_recv(sock, 5000, &reply, got, 4, &n_got), 0);
	ck_assert_uint_eq(n_got, 0);
	ck_assert_msg(strcmp(cprd_test_error(reply), "") == 0, "refused: %s (%s)",
		      cprd_test_error(reply), cprd_reply_message(reply));
	json_object_put(reply);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_proto_empty_message_closes)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	char buf[16];

	ck_assert_int_eq(send(sock, "", 0, 0), 0);
	ck_assert_int_eq(scm_wait(sock, 5000), 0);
	ck_assert_int_eq(recv(sock, buf, sizeof(buf), 0), 0);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_proto_semantic_error_keeps_connection)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	struct json_object *reply = NULL, *closing;

	ck_assert_int_eq(cprd_call_name(sock, "show", "absent", &reply), -ENOENT);
	ck_assert(!json_object_object_get_ex(reply, "closing", &closing));
	json_object_put(reply);
	ck_assert_int_eq(cprd_call_name(sock, "hello", NULL, NULL), 0);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static bool array_has(struct json_object *a, const char *s)
{
	for (size_t i = 0; i < json_object_array_length(a); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(a, i)), s) == 0)
			return true;
	return false;
}

START_TEST(test_proto_hello_reports)
{
	static const char *const ops[] = { "hello",  "status",	"list",	       "show",
					   "create", "put",	"seal",	       "store",
					   "claim",  "ack",	"release",     "renew",
					   "drop",   "upgrade", "qemu-listen", "qemu-deliver" };
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	struct json_object *reply = NULL, *v, *lim;

	ck_assert_int_eq(cprd_call_name(sock, "hello", NULL, &reply), 0);
	ck_assert(json_object_object_get_ex(reply, "protocol", &v));
	ck_assert_int_eq(json_object_get_int(v), 3);
	ck_assert(json_object_object_get_ex(reply, "version", &v));
	ck_assert_int_eq(json_object_get_int(v), 3);
	ck_assert(json_object_object_get_ex(reply, "levels", &v));
	ck_assert_uint_eq(json_object_array_length(v), 2);
	ck_assert(json_object_object_get_ex(reply, "ops", &v));
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		ck_assert_msg(array_has(v, ops[i]), "op %s not reported", ops[i]);
	ck_assert(json_object_object_get_ex(reply, "limits", &lim));
	ck_assert(json_object_object_get_ex(lim, "max_request", &v));
	ck_assert_int_eq(json_object_get_int(v), 65536);
	ck_assert(json_object_object_get_ex(reply, "peer", &v));
	ck_assert(json_object_object_get_ex(v, "pid", &v));
	ck_assert_int_eq(json_object_get_int(v), getpid());
	json_object_put(reply);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* One request on a connection that first said hello with @version. */
static int versioned_call(unsigned version, const char *req_json, struct json_object **ret_hello,
			  struct json_object **ret_reply)
{
	struct json_object *hello = json_object_new_object(), *req = json_tokener_parse(req_json);
	int sock = cprd_test_connect(&d), r;

	json_object_object_add(hello, "op", json_object_new_string("hello"));
	json_object_object_add(hello, "version", json_object_new_int((int)version));
	ck_assert_int_eq(cprd_call(sock, hello, NULL, 0, ret_hello), 0);
	r = cprd_call(sock, req, NULL, 0, ret_reply);
	json_object_put(hello);
	json_object_put(req);
	close(sock);
	return r;
}

/*
 * "hello" agrees on the lower of the two versions for the connection: an
 * op newer than that is refused naming the op and its version, and an
 * unknown op is named in the refusal.
 */
START_TEST(test_proto_versions)
{
	int nfds = test_count_fds();
	struct json_object *hello = NULL, *reply = NULL, *v;

	ck_assert_int_eq(versioned_call(1, "{\"op\":\"store\",\"name\":\"x\"}", &hello, &reply),
			 -EOPNOTSUPP);
	ck_assert(json_object_object_get_ex(hello, "version", &v));
	ck_assert_int_eq(json_object_get_int(v), 1);
	ck_assert(json_object_object_get_ex(hello, "protocol", &v));
	ck_assert_int_eq(json_object_get_int(v), 3);
	ck_assert(json_object_object_get_ex(hello, "ops", &v));
	ck_assert(array_has(v, "claim") && !array_has(v, "store"));
	ck_assert_msg(strstr(cprd_reply_message(reply), "op \"store\" is protocol 2"),
		      "message: %s", cprd_reply_message(reply));
	json_object_put(hello);
	json_object_put(reply);
	ck_assert_int_eq(
		versioned_call(2, "{\"op\":\"qemu-deliver\",\"name\":\"x\"}", &hello, &reply),
		-EOPNOTSUPP);
	ck_assert(json_object_object_get_ex(hello, "ops", &v));
	ck_assert(array_has(v, "store") && !array_has(v, "qemu-listen"));
	json_object_put(hello);
	json_object_put(reply);
	ck_assert_int_eq(versioned_call(7, "{\"op\":\"frobnicate\"}", &hello, &reply), -EOPNOTSUPP);
	ck_assert(json_object_object_get_ex(hello, "version", &v));
	ck_assert_int_eq(json_object_get_int(v), 3);
	ck_assert_msg(strstr(cprd_reply_message(reply), "unknown op \"frobnicate\""), "message: %s",
		      cprd_reply_message(reply));
	json_object_put(hello);
	json_object_put(reply);
	ck_assert_int_eq(versioned_call(9, "{\"op\":\"hello\",\"version\":0}", &hello, &reply),
			 -EINVAL);
	json_object_put(hello);
	json_object_put(reply);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/*
 * A passed listening socket with SO_PASSCRED (a socket unit's
 * PassCredentials=) has it turned off, so that credentials a client
 * attaches never reach the daemon; the request is served.
 */
START_TEST(test_proto_passcred_off)
{
	int nfds = test_count_fds(), one = 1, v = 1, l, s = -1, status;
	char dir[] = "/tmp/cprd-passcred-XXXXXX", conf[64], cprd[4096];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t sl = sizeof(v);
	pid_t pid;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", dir);
	snprintf(conf, sizeof(conf), "%s/conf", dir);
	close(open(conf, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	snprintf(cprd, sizeof(cprd), "%s", test_build_path("cprd/cprd"));
	l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(l, 8), 0);
	ck_assert_int_eq(setsockopt(l, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char num[16];

		snprintf(num, sizeof(num), "%d", getpid());
		if (dup2(l, 3) < 0 || setenv("LISTEN_FDS", "1", 1) < 0 ||
		    setenv("LISTEN_PID", num, 1) < 0)
			_exit(126);
		execl(cprd, "cprd", "--no-sandbox", "--config", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && s < 0; i++) {
		if (cprd_connect(sa.sun_path, &s) == 0 &&
		    cprd_call_name(s, "hello", NULL, NULL) < 0)
			s = cpr_close(s);
		if (s < 0)
			usleep(10000);
	}
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(getsockopt(l, SOL_SOCKET, SO_PASSCRED, &v, &sl), 0);
	ck_assert_int_eq(v, 0);
	close(s);
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	close(l);
	unlink(sa.sun_path);
	unlink(conf);
	rmdir(dir);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_proto_upgrade_needs_admin)
{
	int nfds = test_count_fds();
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int sock;

		cprd_test_become(65534, 65534);
		if (cprd_connect(d.sock, &sock) < 0)
			_exit(2);
		_exit(cprd_call_name(sock, "upgrade", NULL, NULL) == -EPERM ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The daemon's fds as /proc shows them: only when it is idle. */
static int proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *dd;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dd = opendir(path);
	ck_assert_ptr_nonnull(dd);
	while ((de = readdir(dd)))
		n += de->d_name[0] != '.';
	closedir(dd);
	return n;
}

/* debug counts what the daemon holds: its fds, bundles, connections. */
START_TEST(test_proto_debug_counts)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	struct cprd_debug a, b;
	char token[64];

	cprd_test_debug(sock, &a);
	/* nothing else is going on: the count holds still once answered */
	ck_assert_int_eq(a.fds_open, proc_fds(d.pid));
	ck_assert_int_eq(a.fds_held, 0);
	ck_assert_int_eq(a.fds_queued, 0);
	ck_assert_int_eq(a.bundles, 0);
	ck_assert_int_eq(a.connections, 1);
	ck_assert_int_eq(cprd_test_store(sock, "dbg", 3, "dbg", NULL), 0);
	cprd_test_debug(sock, &b);
	ck_assert_int_eq(b.fds_open, a.fds_open + 4); /* 3 fds and the stream */
	ck_assert_int_eq(b.fds_held, 4);
	ck_assert_int_eq(b.bundles, 1);
	ck_assert_int_eq(b.fds_open, proc_fds(d.pid));
	ck_assert_int_eq(cprd_test_claim_verify(sock, "dbg", 3, "dbg", 0, token, sizeof(token)), 0);
	ck_assert_int_eq(cprd_token_op(sock, "ack", "dbg", token, NULL), 0);
	/* the ack's closes run after its reply, and before the next reply */
	cprd_test_debug(sock, &b);
	ck_assert_int_eq(b.fds_open, a.fds_open);
	ck_assert_int_eq(b.fds_held, 0);
	ck_assert_int_eq(b.bundles, 0);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Connections that hung up are closed before the reply, with what they held. */
START_TEST(test_proto_debug_after_hangups)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d), others[8];
	struct cprd_debug a, b;

	cprd_test_debug(sock, &a);
	for (size_t i = 0; i < ARRAY_SIZE(others); i++) {
		others[i] = cprd_test_connect(&d);
		ck_assert_int_eq(cprd_call_name(others[i], "hello", NULL, NULL), 0);
	}
	ck_assert_int_eq(cprd_call_name(others[0], "create", "wip", NULL), 0);
	cprd_test_debug(sock, &b);
	ck_assert_int_eq(b.connections, 1 + (int)ARRAY_SIZE(others));
	ck_assert_int_eq(b.bundles, 1);
	for (size_t i = 0; i < ARRAY_SIZE(others); i++)
		close(others[i]);
	cprd_test_debug(sock, &b); /* at once: no wait for the daemon to notice */
	ck_assert_int_eq(b.connections, 1);
	ck_assert_int_eq(b.bundles, 0); /* the open bundle went with its connection */
	ck_assert_int_eq(b.fds_open, a.fds_open);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Requests sent behind a debug are answered after it, in order. */
START_TEST(test_proto_debug_in_order)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	struct json_object *req = json_object_new_object(), *reply = NULL, *op;
	size_t n = 0;

	json_object_object_add(req, "op", json_object_new_string("debug"));
	ck_assert_int_eq(cprd_send(sock, req, NULL, 0), 0);
	json_object_object_add(req, "op", json_object_new_string("status"));
	ck_assert_int_eq(cprd_send(sock, req, NULL, 0), 0);
	json_object_object_add(req, "op", json_object_new_string("debug"));
	ck_assert_int_eq(cprd_send(sock, req, NULL, 0), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(cprd_recv(sock, 5000, &reply, NULL, 0, &n), 0);
		ck_assert(json_object_object_get_ex(reply, "op", &op));
		ck_assert_str_eq(json_object_get_string(op), i == 1 ? "status" : "debug");
		json_object_put(reply);
	}
	json_object_put(req);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Members or fds are malformed (the connection closes); other uids are refused. */
START_TEST(test_proto_debug_errors)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d), fd = test_memfd("dbg", 0);
	struct json_object *req = json_object_new_object();
	pid_t pid;
	int status;

	json_object_object_add(req, "op", json_object_new_string("debug"));
	ck_assert_int_eq(cprd_call(sock, req, &fd, 1, NULL), -EBADF);
	close(sock);
	sock = cprd_test_connect(&d);
	json_object_object_add(req, "verbose", json_object_new_boolean(1));
	ck_assert_int_eq(cprd_call(sock, req, NULL, 0, NULL), -EINVAL);
	close(sock);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int s;

		cprd_test_become(OTHER_UID, OTHER_GID);
		if (cprd_connect(d.sock, &s) < 0)
			_exit(90);
		if (cprd_call_name(s, "debug", NULL, NULL) != -EPERM)
			_exit(1);
		/* not malformed: the connection goes on */
		_exit(cprd_call_name(s, "hello", NULL, NULL) == 0 ? 0 : 2);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	json_object_put(req);
	close(fd);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *cprd_proto_suite(void)
{
	Suite *s = suite_create("cprd-proto");
	TCase *tc = tcase_create("proto");

	cprd_test_fixture(tc, &d);
	tcase_add_test(tc, test_proto_malformed_each_refused);
	tcase_add_test(tc, test_proto_valid_text_accepted);
	tcase_add_test(tc, test_proto_empty_message_closes);
	tcase_add_test(tc, test_proto_semantic_error_keeps_connection);
	tcase_add_test(tc, test_proto_hello_reports);
	tcase_add_test(tc, test_proto_versions);
	tcase_add_test(tc, test_proto_passcred_off);
	tcase_add_test(tc, test_proto_upgrade_needs_admin);
	tcase_add_test(tc, test_proto_debug_counts);
	tcase_add_test(tc, test_proto_debug_after_hangups);
	tcase_add_test(tc, test_proto_debug_in_order);
	tcase_add_test(tc, test_proto_debug_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(cprd_proto_suite());
}
