/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Load against a real cprd: 1,000 connections at once while peers stall
 * (one connected and silent, one that pipelines requests and never reads a
 * reply), and the daemon serves every other client throughout; afterwards
 * it holds exactly the fds it held before.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "scm.h"
#include "client.h"
#include "cprd-test.h"
#include "test-util.h"

#define N_CONNS 1000

static const char hello[] = "{\"op\":\"hello\"}";

/* Pipeline hellos on @s and read nothing, until the daemon stops reading
 * (our send queue stays full): a peer that stalls on its replies. */
static unsigned fill_unread(int s)
{
	unsigned sent = 0;

	while (send(s, hello, strlen(hello), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
		sent++;
	ck_assert_int_eq(errno, EAGAIN);
	return sent;
}

/* Read one reply on @s: it must say "ok". */
static void expect_ok(int s)
{
	struct json_object *reply = NULL;
	int fds[4];
	size_t n = 0;

	ck_assert_int_eq(cprd_recv(s, cprd_timeout(), &reply, fds, 4, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert(json_object_get_boolean(json_object_object_get(reply, "ok")));
	json_object_put(reply);
}

START_TEST(test_1000_connections_with_stalled_peers)
{
	struct rlimit rl;
	struct cprd_daemon d;
	int nfds, base, silent, unread, *socks = calloc(N_CONNS, sizeof(int));
	unsigned pipelined;
	char token[64];

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < N_CONNS + 512)
		test_skip_case("RLIMIT_NOFILE hard limit %llu is below %d",
			       (unsigned long long)rl.rlim_max, N_CONNS + 512);
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	nfds = test_count_fds();
	cprd_daemon_start(&d, NULL, "max-connections = 1100\nidle-timeout-ms = 0\n", NULL);
	base = cprd_daemon_fds(&d);
	silent = cprd_test_connect(&d);
	unread = cprd_test_connect(&d);
	pipelined = fill_unread(unread);
	ck_assert_uint_gt(pipelined, 0);
	/* 1,000 more: each asks at once, then each reads its answer */
	for (int i = 0; i < N_CONNS; i++)
		socks[i] = cprd_test_connect(&d);
	for (int i = 0; i < N_CONNS; i++)
		ck_assert_int_eq(send(socks[i], hello, strlen(hello), MSG_NOSIGNAL),
				 (ssize_t)strlen(hello));
	for (int i = 0; i < N_CONNS; i++)
		expect_ok(socks[i]);
	/* a whole hand-off while both stalled peers are still there */
	ck_assert_int_eq(cprd_test_store(socks[0], "load", 3, "load", NULL), 0);
	ck_assert_int_eq(
		cprd_test_claim_verify(socks[1], "load", 3, "load", 0, token, sizeof(token)), 0);
	ck_assert_int_eq(cprd_token_op(socks[1], "ack", "load", token, NULL), 0);
	/* the peer that did not read gets every reply, in order, once it reads */
	for (unsigned i = 0; i < pipelined; i++)
		expect_ok(unread);
	for (int i = 0; i < N_CONNS; i++)
		close(socks[i]);
	close(silent);
	close(unread);
	free(socks);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *cprd_load_suite(void)
{
	Suite *s = suite_create("cprd-load");
	TCase *tc = tcase_create("load");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_1000_connections_with_stalled_peers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(cprd_load_suite());
}
