/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bundles through a real cprd: producers and consumers in separate
 * processes, access by uid and gid, leases, expiry, chunked bundles, many
 * clients at once, and many cycles without growth in the daemon.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "client.h"
#include "cprd-test.h"
#include "test-util.h"

static struct cprd_daemon d;

/* Run @fn in a child (optionally as @uid/@gid); its exit status. */
static int in_child(int (*fn)(void *), void *arg, uid_t uid, gid_t gid)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (uid != (uid_t)-1)
			cprd_test_become(uid, gid);
		_exit(fn(arg));
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static struct json_object *consumers(int uid, int gid)
{
	struct json_object *o = json_object_new_object(), *c = json_object_new_object();

	if (uid >= 0) {
		json_object_object_add(c, "uids", json_object_new_array());
		json_object_array_add(json_object_object_get(c, "uids"), json_object_new_int(uid));
	}
	if (gid >= 0) {
		json_object_object_add(c, "gids", json_object_new_array());
		json_object_array_add(json_object_object_get(c, "gids"), json_object_new_int(gid));
	}
	json_object_object_add(o, "consumers", c);
	return o;
}

struct job {
	const char *name;
	size_t n;
	struct json_object *opts;
	uint64_t lease_ms;
	bool ack;
	int want;
};

static int job_store(void *arg)
{
	struct job *j = arg;
	int sock;

	if (cprd_connect(d.sock, &sock) < 0)
		return 90;
	return cprd_test_store(sock, j->name, j->n, "payload", j->opts) == j->want ? 0 : 1;
}

static int job_claim(void *arg)
{
	struct job *j = arg;
	char token[64];
	int sock, r;

	if (cprd_connect(d.sock, &sock) < 0)
		return 90;
	r = cprd_test_claim_verify(sock, j->name, j->n, "payload", j->lease_ms, token,
				   sizeof(token));
	if (r != j->want)
		return 1;
	if (r == 0 && j->ack && cprd_token_op(sock, "ack", j->name, token, NULL) < 0)
		return 2;
	return 0;
}

static int bundle_count(void)
{
	struct json_object *reply = NULL, *b;
	int sock = cprd_test_connect(&d), n;

	ck_assert_int_eq(cprd_call_name(sock, "list", NULL, &reply), 0);
	ck_assert(json_object_object_get_ex(reply, "bundles", &b));
	n = (int)json_object_array_length(b);
	json_object_put(reply);
	close(sock);
	return n;
}

START_TEST(test_store_producer_consumer_processes)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d);
	struct job p = { .name = "vm1", .n = 8, .want = 0 };
	struct job c = { .name = "vm1", .n = 8, .ack = true, .want = 0 };

	ck_assert_int_eq(in_child(job_store, &p, (uid_t)-1, 0), 0);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "vm1"), "sealed");
	ck_assert_int_eq(cprd_daemon_fds(&d), base + 8 + 1); /* fds and the stream */
	ck_assert_int_eq(in_child(job_claim, &c, (uid_t)-1, 0), 0);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "vm1"), "absent");
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_claim_other_uid_refused)
{
	int nfds = test_count_fds();
	struct job p = { .name = "mine", .n = 2, .want = 0 };
	struct job c = { .name = "mine", .n = 2, .want = -ENOENT };

	ck_assert_int_eq(in_child(job_store, &p, (uid_t)-1, 0), 0);
	ck_assert_int_eq(in_child(job_claim, &c, OTHER_UID, OTHER_GID), 0);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "mine"), "sealed");
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_claim_allowed_uid)
{
	int nfds = test_count_fds();
	struct job p = { .name = "shared", .n = 3, .opts = consumers(OTHER_UID, -1), .want = 0 };
	struct job c = { .name = "shared", .n = 3, .ack = true, .want = 0 };
	struct job x = { .name = "shared", .n = 3, .want = -ENOENT };

	ck_assert_int_eq(in_child(job_store, &p, (uid_t)-1, 0), 0);
	ck_assert_int_eq(in_child(job_claim, &x, THIRD_UID, THIRD_GID), 0);
	ck_assert_int_eq(in_child(job_claim, &c, OTHER_UID, OTHER_GID), 0);
	json_object_put(p.opts);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_claim_allowed_gid)
{
	int nfds = test_count_fds();
	struct job p = { .name = "bygroup", .n = 1, .opts = consumers(-1, THIRD_GID), .want = 0 };
	struct job c = { .name = "bygroup", .n = 1, .ack = true, .want = 0 };

	ck_assert_int_eq(in_child(job_store, &p, (uid_t)-1, 0), 0);
	ck_assert_int_eq(in_child(job_claim, &c, OTHER_UID, THIRD_GID), 0);
	json_object_put(p.opts);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_claim_root_not_implicit)
{
	int nfds = test_count_fds();
	struct job p = { .name = "users", .n = 2, .want = 0 };
	struct job c = { .name = "users", .n = 2, .want = -EACCES }; /* seen, not taken */
	struct job o = { .name = "users", .n = 2, .ack = true, .want = 0 };

	ck_assert_int_eq(in_child(job_store, &p, OTHER_UID, OTHER_GID), 0);
	ck_assert_int_eq(in_child(job_claim, &c, (uid_t)-1, 0), 0);	    /* root */
	ck_assert_int_eq(in_child(job_claim, &o, OTHER_UID, OTHER_GID), 0); /* the owner */
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_lease_lapses_after_consumer_death)
{
	int nfds = test_count_fds();
	struct job p = { .name = "lease", .n = 4, .want = 0 };
	struct job c1 = { .name = "lease", .n = 4, .lease_ms = 200, .want = 0 };
	struct job c2 = { .name = "lease", .n = 4, .ack = true, .want = 0 };
	struct job busy = { .name = "lease", .n = 4, .want = -EBUSY };

	ck_assert_int_eq(in_child(job_store, &p, (uid_t)-1, 0), 0);
	ck_assert_int_eq(in_child(job_claim, &c1, (uid_t)-1, 0), 0); /* dies without ack */
	ck_assert_str_eq(cprd_test_bundle_state(&d, "lease"), "claimed");
	ck_assert_int_eq(in_child(job_claim, &busy, (uid_t)-1, 0), 0);
	usleep(400000); /* past the lease: debug processes its lapse */
	cprd_daemon_sync(&d);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "lease"), "sealed");
	ck_assert_int_eq(in_child(job_claim, &c2, (uid_t)-1, 0), 0);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "lease"), "absent");
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_release_and_tokens)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	char token[64], bad[] = "00000000000000000000000000000000";

	ck_assert_int_eq(cprd_test_store(sock, "rb", 2, "x", NULL), 0);
	ck_assert_int_eq(cprd_test_claim_verify(sock, "rb", 2, "x", 0, token, sizeof(token)), 0);
	ck_assert_int_eq(cprd_token_op(sock, "ack", "rb", bad, NULL), -ESTALE);
	ck_assert_int_eq(cprd_call_name(sock, "drop", "rb", NULL), -EBUSY);
	ck_assert_int_eq(cprd_token_op(sock, "release", "rb", token, NULL), 0);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "rb"), "sealed");
	ck_assert_int_eq(cprd_token_op(sock, "ack", "rb", token, NULL), -ESTALE);
	ck_assert_int_eq(cprd_test_claim_verify(sock, "rb", 2, "x", 0, token, sizeof(token)), 0);
	ck_assert_int_eq(cprd_token_op(sock, "ack", "rb", token, NULL), 0);
	ck_assert_int_eq(cprd_token_op(sock, "ack", "rb", token, NULL), -ENOENT);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static int job_drop(void *arg)
{
	int sock;

	if (cprd_connect(d.sock, &sock) < 0)
		return 90;
	return cprd_call_name(sock, "drop", arg, NULL) == -EACCES ? 0 : 1;
}

START_TEST(test_drop_owner_only)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	struct json_object *o = consumers(OTHER_UID, -1);

	ck_assert_int_eq(cprd_test_store(sock, "dropme", 1, "x", o), 0);
	ck_assert_int_eq(in_child(job_drop, (void *)"dropme", OTHER_UID, OTHER_GID), 0);
	ck_assert_int_eq(cprd_call_name(sock, "drop", "dropme", NULL), 0);
	ck_assert_int_eq(cprd_call_name(sock, "drop", "dropme", NULL), -ENOENT);
	json_object_put(o);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_create_exists)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);

	ck_assert_int_eq(cprd_test_store(sock, "dup", 1, "x", NULL), 0);
	ck_assert_int_eq(cprd_call_name(sock, "create", "dup", NULL), -EEXIST);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_ttl_expires)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ttl_ms", json_object_new_int(200));
	ck_assert_int_eq(cprd_test_store(sock, "short", 1, "x", o), 0);
	ck_assert_int_eq(bundle_count(), 1);
	usleep(400000); /* past the ttl: debug processes the expiry */
	cprd_daemon_sync(&d);
	ck_assert_int_eq(bundle_count(), 0);
	json_object_put(o);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static int job_store_tied(void *arg)
{
	struct json_object *o = json_object_new_object();
	int sock, r;

	json_object_object_add(o, "tie", json_object_new_boolean(1));
	if (cprd_connect(d.sock, &sock) < 0)
		return 90;
	r = cprd_test_store(sock, arg, 1, "x", o);
	json_object_put(o);
	return r == 0 ? 0 : 1;
}

START_TEST(test_tie_dies_with_owner)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d);

	ck_assert_int_eq(in_child(job_store_tied, (void *)"tied", (uid_t)-1, 0), 0);
	cprd_daemon_sync(&d); /* the owner's exit processed */
	ck_assert_str_eq(cprd_test_bundle_state(&d, "tied"), "absent");
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_open_bundle_private_and_abandoned)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	int *fds = cprd_test_memfds(3, "open");
	struct json_object *req = json_object_new_object();

	ck_assert_int_eq(cprd_call_name(sock, "create", "wip", NULL), 0);
	json_object_object_add(req, "op", json_object_new_string("put"));
	json_object_object_add(req, "name", json_object_new_string("wip"));
	ck_assert_int_eq(cprd_call(sock, req, fds, 3, NULL), 0);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "wip"), "open"); /* the owner (root) sees it */
	ck_assert_int_eq(cprd_call_name(cprd_test_connect(&d), "claim", "wip", NULL), -EBUSY);
	close(sock); /* abandoned before seal: gone */
	cprd_daemon_sync(&d);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "wip"), "absent");
	/* what is left: the connection leaked above and its peer pidfd */
	ck_assert_int_eq(cprd_daemon_fds(&d), base + 2);
	json_object_put(req);
	cprd_test_close_fds(fds, 3);
	test_assert_no_fd_leak(nfds + 1); /* the connection leaked on purpose above */
}
END_TEST

static int job_show(void *arg)
{
	struct job *j = arg;
	int sock;

	if (cprd_connect(d.sock, &sock) < 0)
		return 90;
	return cprd_call_name(sock, "show", j->name, NULL) == j->want ? 0 : 1;
}

/* A consumer sees a bundle only once it is sealed, whatever was put before. */
START_TEST(test_open_invisible_to_consumers)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	int *fds = cprd_test_memfds(300, "vis"), stream = cprd_test_stream(300);
	struct json_object *create = consumers(OTHER_UID, -1), *put = json_object_new_object();
	struct json_object *seal = json_object_new_object();
	struct job hidden = { .name = "vis", .want = -ENOENT }, seen = { .name = "vis" };

	json_object_object_add(create, "op", json_object_new_string("create"));
	json_object_object_add(create, "name", json_object_new_string("vis"));
	ck_assert_int_eq(cprd_call(sock, create, NULL, 0, NULL), 0);
	json_object_object_add(put, "op", json_object_new_string("put"));
	json_object_object_add(put, "name", json_object_new_string("vis"));
	ck_assert_int_eq(cprd_call(sock, put, fds, 253, NULL), 0);
	ck_assert_int_eq(in_child(job_show, &hidden, OTHER_UID, OTHER_GID), 0);
	ck_assert_int_eq(cprd_call(sock, put, fds + 253, 47, NULL), 0);
	ck_assert_int_eq(in_child(job_show, &hidden, OTHER_UID, OTHER_GID), 0);
	json_object_object_add(seal, "op", json_object_new_string("seal"));
	json_object_object_add(seal, "name", json_object_new_string("vis"));
	ck_assert_int_eq(cprd_call(sock, seal, &stream, 1, NULL), 0);
	ck_assert_int_eq(in_child(job_show, &seen, OTHER_UID, OTHER_GID), 0);
	json_object_put(create);
	json_object_put(put);
	json_object_put(seal);
	close(stream);
	cprd_test_close_fds(fds, 300);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_seal_refuses_bad_streams)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	int *fds = cprd_test_memfds(2, "s"), wrong = cprd_test_stream(3),
	    good = cprd_test_stream(2);
	int junk = test_memfd("junk", 100);
	struct json_object *req = json_object_new_object(), *seal = json_object_new_object();

	ck_assert_int_eq(cprd_call_name(sock, "create", "strm", NULL), 0);
	json_object_object_add(req, "op", json_object_new_string("put"));
	json_object_object_add(req, "name", json_object_new_string("strm"));
	ck_assert_int_eq(cprd_call(sock, req, fds, 2, NULL), 0);
	json_object_object_add(seal, "op", json_object_new_string("seal"));
	json_object_object_add(seal, "name", json_object_new_string("strm"));
	ck_assert_int_eq(cprd_call(sock, seal, &junk, 1, NULL), -EBADMSG);
	ck_assert_int_eq(cprd_call(sock, seal, &wrong, 1, NULL), -EBADMSG);
	ck_assert_int_eq(cprd_call(sock, seal, &sock, 1, NULL), -EBADFD); /* a socket */
	ck_assert_str_eq(cprd_test_bundle_state(&d, "strm"), "open");
	ck_assert_int_eq(cprd_call(sock, seal, &good, 1, NULL), 0);
	ck_assert_int_eq(cprd_call(sock, seal, &good, 1, NULL), -EBUSY);
	ck_assert_int_eq(cprd_test_claim_verify(sock, "strm", 2, "s", 0, (char[64]){ 0 }, 64), 0);
	json_object_put(req);
	json_object_put(seal);
	close(junk);
	close(wrong);
	close(good);
	cprd_test_close_fds(fds, 2);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The stream says memfd: a pipe in that slot is refused at seal. */
START_TEST(test_seal_checks_fd_kinds)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d), p[2];
	int *fds = cprd_test_memfds(1, "k"), stream = cprd_test_stream(2), two[2];
	struct json_object *req = json_object_new_object(), *seal = json_object_new_object(),
			   *reply = NULL;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	two[0] = fds[0];
	two[1] = p[0];
	ck_assert_int_eq(cprd_call_name(sock, "create", "kinds", NULL), 0);
	json_object_object_add(req, "op", json_object_new_string("put"));
	json_object_object_add(req, "name", json_object_new_string("kinds"));
	ck_assert_int_eq(cprd_call(sock, req, two, 2, NULL), 0);
	json_object_object_add(seal, "op", json_object_new_string("seal"));
	json_object_object_add(seal, "name", json_object_new_string("kinds"));
	ck_assert_int_eq(cprd_call(sock, seal, &stream, 1, &reply), -EBADMSG);
	ck_assert_msg(strstr(cprd_reply_message(reply), "slot 1 is not a memfd"), "%s",
		      cprd_reply_message(reply));
	json_object_put(reply);
	json_object_put(req);
	json_object_put(seal);
	close(p[0]);
	close(p[1]);
	close(stream);
	cprd_test_close_fds(fds, 1);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_chunked_1000_fds)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	char token[64];

	ck_assert_int_eq(cprd_test_store(sock, "big", 1000, "chunk", NULL), 0);
	/* + this connection and its peer pidfd */
	ck_assert_int_eq(cprd_daemon_fds(&d), base + 1001 + 2);
	ck_assert_int_eq(
		cprd_test_claim_verify(sock, "big", 1000, "chunk", 0, token, sizeof(token)), 0);
	ck_assert_int_eq(cprd_token_op(sock, "ack", "big", token, NULL), 0);
	close(sock);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	test_assert_no_fd_leak(nfds);
}
END_TEST

#define N_CLIENTS 200

/* 200 connections at once, requests interleaved across them. */
START_TEST(test_200_concurrent_clients)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), socks[N_CLIENTS];
	char name[32], token[64];

	for (int i = 0; i < N_CLIENTS; i++)
		socks[i] = cprd_test_connect(&d);
	for (int i = 0; i < N_CLIENTS; i++)
		ck_assert_int_eq(cprd_call_name(socks[i], "hello", NULL, NULL), 0);
	for (int i = 0; i < N_CLIENTS; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		ck_assert_int_eq(cprd_test_store(socks[i], name, 2, name, NULL), 0);
	}
	ck_assert_int_eq(bundle_count(), N_CLIENTS);
	for (int i = 0; i < N_CLIENTS; i++) { /* each claims its neighbour's */
		snprintf(name, sizeof(name), "c%d", (i + 1) % N_CLIENTS);
		ck_assert_int_eq(
			cprd_test_claim_verify(socks[i], name, 2, name, 0, token, sizeof(token)),
			0);
		ck_assert_int_eq(cprd_token_op(socks[i], "ack", name, token, NULL), 0);
	}
	for (int i = 0; i < N_CLIENTS; i++)
		close(socks[i]);
	cprd_daemon_sync(&d);
	ck_assert_int_eq(bundle_count(), 0);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	test_assert_no_fd_leak(nfds);
}
END_TEST

#define N_PROCS 8

/* Each of 8 processes opens 25 connections and cycles bundles on all of them. */
static int job_parallel(void *arg)
{
	int base = (int)(intptr_t)arg, socks[N_CLIENTS / N_PROCS];
	char name[32], token[64];

	for (int i = 0; i < N_CLIENTS / N_PROCS; i++)
		if (cprd_connect(d.sock, &socks[i]) < 0)
			return 90;
	for (int round = 0; round < 5; round++)
		for (int i = 0; i < N_CLIENTS / N_PROCS; i++) {
			snprintf(name, sizeof(name), "p%d-%d", base, i);
			if (cprd_test_store(socks[i], name, 3, name, NULL) < 0)
				return 1;
			if (cprd_test_claim_verify(socks[i], name, 3, name, 0, token,
						   sizeof(token)) < 0)
				return 2;
			if (cprd_token_op(socks[i], "ack", name, token, NULL) < 0)
				return 3;
		}
	return 0;
}

START_TEST(test_200_clients_parallel_processes)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), status;
	pid_t pids[N_PROCS];

	for (int p = 0; p < N_PROCS; p++) {
		pids[p] = fork();
		ck_assert_int_ge(pids[p], 0);
		if (pids[p] == 0)
			_exit(job_parallel((void *)(intptr_t)p));
	}
	for (int p = 0; p < N_PROCS; p++) {
		ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "client process %d: status 0x%x", p, status);
	}
	ck_assert_int_eq(bundle_count(), 0);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static void cycle(int sock, int *fds, int stream)
{
	struct json_object *reply = NULL, *t;
	int got_stream = -1, *got = NULL;
	size_t n_got = 0;

	ck_assert_int_eq(cprd_store(sock, "cycle", NULL, stream, fds, 2, NULL), 0);
	ck_assert_int_eq(cprd_claim(sock, "cycle", 0, &reply, &got_stream, &got, &n_got), 0);
	ck_assert(json_object_object_get_ex(reply, "token", &t));
	ck_assert_int_eq(cprd_token_op(sock, "ack", "cycle", json_object_get_string(t), NULL), 0);
	json_object_put(reply);
	close(got_stream);
	cprd_test_close_fds(got, n_got);
}

/* 10,000 store/claim/ack cycles: no fd and no memory growth in the daemon. */
START_TEST(test_10000_cycles_no_growth)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	int *fds = cprd_test_memfds(2, "cyc"), stream = cprd_test_stream(2);
	long rss0, rss1;

	for (int i = 0; i < 1000; i++) /* warm up the allocator */
		cycle(sock, fds, stream);
	rss0 = cprd_daemon_rss_kb(&d);
	for (int i = 0; i < 9000; i++)
		cycle(sock, fds, stream);
	rss1 = cprd_daemon_rss_kb(&d);
	/* + this connection and its peer pidfd */
	ck_assert_int_eq(cprd_daemon_fds(&d), base + 2);
#ifdef __SANITIZE_ADDRESS__
	/* ASan's allocator keeps metadata and a quarantine: a looser bound */
	ck_assert_msg(rss1 - rss0 <= 4096, "VmRSS grew from %ld to %ld kB", rss0, rss1);
#else
	ck_assert_msg(rss1 - rss0 <= 256, "VmRSS grew from %ld to %ld kB", rss0, rss1);
#endif
	close(stream);
	cprd_test_close_fds(fds, 2);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/*
 * The lifecycle once more without the seccomp filter: in a sanitizer build
 * this is where LeakSanitizer checks the daemon at exit (it cannot run under
 * the filter); everywhere, --no-sandbox must not change behaviour.
 */
START_TEST(test_store_lifecycle_no_sandbox)
{
	static const char *const args[] = { "--no-sandbox", NULL };
	struct cprd_daemon x;
	int nfds = test_count_fds(), sock;
	char token[64];

	cprd_daemon_start(&x, NULL, NULL, args);
	sock = cprd_test_connect(&x);
	ck_assert_int_eq(cprd_test_store(sock, "a", 300, "ns", NULL), 0);
	ck_assert_int_eq(cprd_test_claim_verify(sock, "a", 300, "ns", 100, token, sizeof(token)),
			 0);
	ck_assert_int_eq(cprd_token_op(sock, "release", "a", token, NULL), 0);
	ck_assert_int_eq(cprd_test_claim_verify(sock, "a", 300, "ns", 100, token, sizeof(token)),
			 0);
	ck_assert_int_eq(cprd_token_op(sock, "ack", "a", token, NULL), 0);
	ck_assert_int_eq(cprd_test_store(sock, "b", 2, "ns", NULL), 0); /* held at exit */
	ck_assert_int_eq(cprd_test_claim_verify(sock, "b", 2, "ns", 50, token, sizeof(token)), 0);
	usleep(150000);							/* the lease lapses */
	ck_assert_int_eq(cprd_call_name(sock, "create", "c", NULL), 0); /* open at exit */
	close(cprd_test_connect(&x));
	close(sock);
	cprd_daemon_stop(&x);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *cprd_store_suite(void)
{
	Suite *s = suite_create("cprd-store");
	TCase *tc = tcase_create("store");

	cprd_test_fixture(tc, &d);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_store_producer_consumer_processes);
	tcase_add_test(tc, test_claim_other_uid_refused);
	tcase_add_test(tc, test_claim_allowed_uid);
	tcase_add_test(tc, test_claim_allowed_gid);
	tcase_add_test(tc, test_claim_root_not_implicit);
	tcase_add_test(tc, test_lease_lapses_after_consumer_death);
	tcase_add_test(tc, test_release_and_tokens);
	tcase_add_test(tc, test_drop_owner_only);
	tcase_add_test(tc, test_create_exists);
	tcase_add_test(tc, test_ttl_expires);
	tcase_add_test(tc, test_tie_dies_with_owner);
	tcase_add_test(tc, test_open_bundle_private_and_abandoned);
	tcase_add_test(tc, test_open_invisible_to_consumers);
	tcase_add_test(tc, test_seal_refuses_bad_streams);
	tcase_add_test(tc, test_seal_checks_fd_kinds);
	tcase_add_test(tc, test_chunked_1000_fds);
	tcase_add_test(tc, test_200_concurrent_clients);
	tcase_add_test(tc, test_200_clients_parallel_processes);
	tcase_add_test(tc, test_10000_cycles_no_growth);
	tcase_add_test(tc, test_store_lifecycle_no_sandbox);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(cprd_store_suite());
}
