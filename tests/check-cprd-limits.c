/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Every limit of cprd.conf(5), set through the file or --limit, reached by a
 * real client: the daemon refuses with the documented error and goes on.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "scm.h"
#include "client.h"
#include "cprd-test.h"
#include "test-util.h"

static struct cprd_daemon d;

static void start(const char *conf, const char *limit)
{
	const char *args[] = { "--limit", limit, NULL };

	cprd_daemon_start(&d, NULL, conf, limit ? args : NULL);
}

static int put(int sock, const char *name, size_t n)
{
	int *fds = cprd_test_memfds(n, "q");
	struct json_object *req = json_object_new_object();
	int r;

	json_object_object_add(req, "op", json_object_new_string("put"));
	json_object_object_add(req, "name", json_object_new_string(name));
	r = cprd_call(sock, req, fds, n, NULL);
	json_object_put(req);
	cprd_test_close_fds(fds, n);
	return r;
}

START_TEST(test_limit_max_connections)
{
	int nfds = test_count_fds(), socks[4], extra;
	struct json_object *reply = NULL;
	size_t n = 0;

	start("max-connections = 4\n", NULL);
	for (int i = 0; i < 4; i++) {
		socks[i] = cprd_test_connect(&d);
		ck_assert_int_eq(cprd_call_name(socks[i], "hello", NULL, NULL), 0);
		if (i == 0) /* start-up's probe connection is closed */
			cprd_test_debug(socks[0], &(struct cprd_debug){ 0 });
	}
	extra = cprd_test_connect(&d);
	ck_assert_int_eq(cprd_recv(extra, 5000, &reply, NULL, 0, &n), 0);
	ck_assert_str_eq(cprd_test_error(reply), "EAGAIN");
	json_object_put(reply);
	close(extra);
	close(socks[0]);
	/* once the daemon has processed its end, there is room again */
	cprd_test_debug(socks[1], &(struct cprd_debug){ 0 });
	socks[0] = cprd_test_connect(&d);
	ck_assert_int_eq(cprd_call_name(socks[0], "hello", NULL, NULL), 0);
	for (int i = 0; i < 4; i++)
		close(socks[i]);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_limit_max_fds)
{
	int nfds = test_count_fds(), sock;

	start(NULL, "max-fds=10");
	sock = cprd_test_connect(&d);
	ck_assert_int_eq(cprd_call_name(sock, "create", "a", NULL), 0);
	ck_assert_int_eq(put(sock, "a", 8), 0);
	ck_assert_int_eq(put(sock, "a", 3), -ENOSPC);
	ck_assert_int_eq(put(sock, "a", 2), 0);
	close(sock);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_limit_max_fds_per_uid_and_quota)
{
	int nfds = test_count_fds(), sock;

	start("max-fds-per-uid = 5\nquota = 65534 1 1\n", NULL);
	sock = cprd_test_connect(&d);
	ck_assert_int_eq(cprd_call_name(sock, "create", "a", NULL), 0);
	ck_assert_int_eq(put(sock, "a", 6), -EDQUOT);
	ck_assert_int_eq(put(sock, "a", 4), 0);
	ck_assert_int_eq(put(sock, "a", 1), 0);
	ck_assert_int_eq(put(sock, "a", 1), -EDQUOT);
	close(sock);
	if (fork() == 0) { /* uid 65534 has its own quota line: 1 fd */
		int s, r;

		cprd_test_become(65534, 65534);
		if (cprd_connect(d.sock, &s) < 0)
			_exit(2);
		r = cprd_call_name(s, "create", "b", NULL);
		r = r ?: put(s, "b", 2) == -EDQUOT ? 0 : 3;
		r = r ?: put(s, "b", 1);
		_exit(r ? 1 : 0);
	}
	{
		int status;

		ck_assert_int_gt(wait(&status), 0);
		ck_assert_int_eq(status, 0);
	}
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_limit_max_bundles)
{
	int nfds = test_count_fds(), sock;

	start("max-bundles = 2\n", NULL);
	sock = cprd_test_connect(&d);
	ck_assert_int_eq(cprd_call_name(sock, "create", "a", NULL), 0);
	ck_assert_int_eq(cprd_call_name(sock, "create", "b", NULL), 0);
	ck_assert_int_eq(cprd_call_name(sock, "create", "c", NULL), -ENOSPC);
	ck_assert_int_eq(cprd_call_name(sock, "drop", "a", NULL), 0);
	ck_assert_int_eq(cprd_call_name(sock, "create", "c", NULL), 0);
	close(sock);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_limit_max_bundles_per_uid)
{
	int nfds = test_count_fds(), sock;

	start(NULL, "max-bundles-per-uid=1");
	sock = cprd_test_connect(&d);
	ck_assert_int_eq(cprd_call_name(sock, "create", "a", NULL), 0);
	ck_assert_int_eq(cprd_call_name(sock, "create", "b", NULL), -EDQUOT);
	close(sock);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static const char *raw(int sock, const char *s, size_t len)
{
	static char err[32];
	struct json_object *reply = NULL;
	size_t n = 0;

	ck_assert_int_ge(scm_send(sock, s, len, NULL, 0), 0);
	ck_assert_int_eq(cprd_recv(sock, 5000, &reply, NULL, 0, &n), 0);
	snprintf(err, sizeof(err), "%s", cprd_test_error(reply));
	json_object_put(reply);
	return err;
}

START_TEST(test_limit_max_request)
{
	int nfds = test_count_fds(), sock;
	char buf[600];

	start("max-request = 512\n", NULL);
	sock = cprd_test_connect(&d);
	memset(buf, ' ', sizeof(buf));
	memcpy(buf, "{\"op\":\"hello\"}", 14); /* whitespace is legal JSON but too long */
	ck_assert_str_eq(raw(sock, buf, sizeof(buf)), "EMSGSIZE");
	close(sock);
	sock = cprd_test_connect(&d);
	ck_assert_str_eq(raw(sock, buf, 500), ""); /* within the limit: accepted */
	close(sock);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_limit_max_json_depth)
{
	int nfds = test_count_fds(), sock;
	const char *deep = "{\"op\":\"create\",\"name\":\"a\",\"consumers\":{\"uids\":[[[1]]]}}";
	const char *ok = "{\"op\":\"create\",\"name\":\"a\",\"consumers\":{\"uids\":[1]}}";

	start(NULL, "max-json-depth=3");
	sock = cprd_test_connect(&d);
	ck_assert_str_eq(raw(sock, ok, strlen(ok)), "");
	close(sock);
	sock = cprd_test_connect(&d);
	ck_assert_str_eq(raw(sock, deep, strlen(deep)), "EPROTO");
	close(sock);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_limit_max_stream)
{
	int nfds = test_count_fds(), sock, big = test_memfd("big", 8192);
	struct json_object *seal = json_object_new_object();

	start("max-stream = 4096\n", NULL);
	sock = cprd_test_connect(&d);
	ck_assert_int_eq(cprd_call_name(sock, "create", "a", NULL), 0);
	json_object_object_add(seal, "op", json_object_new_string("seal"));
	json_object_object_add(seal, "name", json_object_new_string("a"));
	ck_assert_int_eq(cprd_call(sock, seal, &big, 1, NULL), -EFBIG);
	json_object_put(seal);
	close(big);
	close(sock);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_limit_lease_max)
{
	int nfds = test_count_fds(), sock;
	struct json_object *req = json_object_new_object();

	start("lease-max-ms = 1000\n", NULL);
	sock = cprd_test_connect(&d);
	ck_assert_int_eq(cprd_test_store(sock, "a", 1, "l", NULL), 0);
	json_object_object_add(req, "op", json_object_new_string("claim"));
	json_object_object_add(req, "name", json_object_new_string("a"));
	json_object_object_add(req, "lease_ms", json_object_new_int(2000));
	ck_assert_int_eq(cprd_call(sock, req, NULL, 0, NULL), -ERANGE);
	json_object_put(req);
	close(sock);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_limit_ttl_max)
{
	int nfds = test_count_fds(), sock;
	struct json_object *req = json_object_new_object(), *reply = NULL, *b, *v;

	start("ttl-max-ms = 500\n", NULL);
	sock = cprd_test_connect(&d);
	json_object_object_add(req, "op", json_object_new_string("create"));
	json_object_object_add(req, "name", json_object_new_string("a"));
	json_object_object_add(req, "ttl_ms", json_object_new_int(1000));
	ck_assert_int_eq(cprd_call(sock, req, NULL, 0, NULL), -ERANGE);
	ck_assert_int_eq(cprd_call_name(sock, "create", "a", NULL), 0); /* gets ttl-max-ms */
	ck_assert_int_eq(cprd_call_name(sock, "show", "a", &reply), 0);
	ck_assert(json_object_object_get_ex(reply, "bundle", &b));
	ck_assert(json_object_object_get_ex(b, "ttl_ms", &v));
	ck_assert_int_eq(json_object_get_int(v), 500);
	json_object_put(reply);
	json_object_put(req);
	close(sock);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_limit_idle_timeout)
{
	int nfds = test_count_fds(), sock;
	char buf[8];

	start("idle-timeout-ms = 200\n", NULL);
	sock = cprd_test_connect(&d);
	ck_assert_int_eq(scm_wait(sock, 5000), 0); /* closed within the 1 s sweep */
	ck_assert_int_eq(recv(sock, buf, sizeof(buf), 0), 0);
	close(sock);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* check-fd-kinds = 0: a pipe where the stream says memfd is left to the consumer. */
START_TEST(test_limit_check_fd_kinds_off)
{
	int nfds = test_count_fds(), sock, p[2], stream = cprd_test_stream(1);
	struct json_object *put = json_object_new_object(), *seal = json_object_new_object();

	start("check-fd-kinds = 0\n", NULL);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	sock = cprd_test_connect(&d);
	ck_assert_int_eq(cprd_call_name(sock, "create", "a", NULL), 0);
	json_object_object_add(put, "op", json_object_new_string("put"));
	json_object_object_add(put, "name", json_object_new_string("a"));
	ck_assert_int_eq(cprd_call(sock, put, &p[0], 1, NULL), 0);
	json_object_object_add(seal, "op", json_object_new_string("seal"));
	json_object_object_add(seal, "name", json_object_new_string("a"));
	ck_assert_int_eq(cprd_call(sock, seal, &stream, 1, NULL), 0);
	json_object_put(put);
	json_object_put(seal);
	close(p[0]);
	close(p[1]);
	close(stream);
	close(sock);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A bad configuration is a permanent error: exit status 100. */
static int run_cprd(const char *conf, const char *arg)
{
	struct cprd_daemon x;
	int status;

	snprintf(x.dir, sizeof(x.dir), "/tmp/cprd-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(x.dir));
	x.pid = fork();
	if (x.pid == 0) {
		char path[4096], confpath[128], sock[128];
		FILE *f;

		snprintf(confpath, sizeof(confpath), "%s/c", x.dir);
		snprintf(sock, sizeof(sock), "%s/s", x.dir);
		f = fopen(confpath, "w");
		fputs(conf, f);
		fclose(f);
		snprintf(path, sizeof(path), "%s", test_build_path("cprd/cprd"));
		(void)!freopen("/dev/null", "w", stderr);
		execl(path, path, "--socket", sock, "--config", confpath, "--no-sandbox", arg,
		      (char *)NULL);
		_exit(127);
	}
	status = cprd_daemon_wait(&x);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", x.dir);
		(void)!system(cmd);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_limit_bad_config_exit_100)
{
	int nfds = test_count_fds();

	ck_assert_int_eq(run_cprd("max-fds = 0\n", "-v"), 100);
	ck_assert_int_eq(run_cprd("max-fds = lots\n", "-v"), 100);
	ck_assert_int_eq(run_cprd("no-such-key = 1\n", "-v"), 100);
	ck_assert_int_eq(run_cprd("quota = 1 2\n", "-v"), 100);
	ck_assert_int_eq(run_cprd("check-fd-kinds = 2\n", "-v"), 100);
	ck_assert_int_eq(run_cprd("", "--limit=max-json-depth=1000"), 100);
	ck_assert_int_eq(run_cprd("", "--bogus"), 100);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *cprd_limits_suite(void)
{
	Suite *s = suite_create("cprd-limits");
	TCase *tc = tcase_create("limits");

	tcase_add_test(tc, test_limit_max_connections);
	tcase_add_test(tc, test_limit_max_fds);
	tcase_add_test(tc, test_limit_max_fds_per_uid_and_quota);
	tcase_add_test(tc, test_limit_max_bundles);
	tcase_add_test(tc, test_limit_max_bundles_per_uid);
	tcase_add_test(tc, test_limit_max_request);
	tcase_add_test(tc, test_limit_max_json_depth);
	tcase_add_test(tc, test_limit_max_stream);
	tcase_add_test(tc, test_limit_lease_max);
	tcase_add_test(tc, test_limit_ttl_max);
	tcase_add_test(tc, test_limit_idle_timeout);
	tcase_add_test(tc, test_limit_check_fd_kinds_off);
	tcase_add_test(tc, test_limit_bad_config_exit_100);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(cprd_limits_suite());
}
