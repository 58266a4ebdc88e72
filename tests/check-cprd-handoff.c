/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The short hand-off through a real cprd: "store" (create + put + seal in
 * one request, all or nothing) and "claim" with "ack": true (the bundle is
 * taken for good once the consumer acks on the same connection), with their access rules, limits
 * and hostile variants, and a producer's sealed stream memfd kept without a copy.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "scm.h"
#include "client.h"
#include "cprd-test.h"
#include "test-util.h"

static struct cprd_daemon d;

/* A "store" request as the protocol has it: fd 0 the stream, then @fds. */
static int store_req(int sock, const char *name, int stream, const int *fds, size_t n,
		     struct json_object **ret_reply)
{
	struct json_object *req = json_object_new_object();
	int all[253], r;

	ck_assert_uint_le(n, 252);
	all[0] = stream;
	if (n)
		memcpy(all + 1, fds, n * sizeof(int));
	json_object_object_add(req, "op", json_object_new_string("store"));
	json_object_object_add(req, "name", json_object_new_string(name));
	r = cprd_call(sock, req, all, n + 1, ret_reply);
	json_object_put(req);
	return r;
}

/* claim with "ack": true; check the contents; the reply's "inline" count. */
static int claim_ack_verify(int sock, const char *name, size_t n, const char *tag,
			    int *ret_stream_ino)
{
	struct json_object *reply = NULL, *v;
	int stream = -1, *fds = NULL, r;
	size_t got = 0;
	struct stat st;

	r = cprd_claim_ack(sock, name, &reply, &stream, &fds, &got);
	if (r < 0) {
		json_object_put(reply);
		return r;
	}
	ck_assert_uint_eq(got, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(cprd_test_memfd_is(fds[i], i, tag), "fd %zu has the wrong content",
			      i);
	ck_assert(json_object_object_get_ex(reply, "token", &v));
	ck_assert_uint_eq(strlen(json_object_get_string(v)), 32);
	ck_assert(json_object_object_get_ex(reply, "inline", &v));
	r = json_object_get_int(v);
	ck_assert_int_eq(r, (int)(n < 252 ? n : 252));
	ck_assert_int_eq(fstat(stream, &st), 0);
	if (ret_stream_ino)
		*ret_stream_ino = (int)st.st_ino;
	json_object_put(reply);
	close(stream);
	cprd_test_close_fds(fds, got);
	return r;
}

START_TEST(test_store_one_request)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	int *fds = cprd_test_memfds(5, "one"), stream = cprd_test_stream(5), empty;
	struct json_object *reply = NULL, *v;
	char token[64];

	ck_assert_int_eq(store_req(sock, "one", stream, fds, 5, &reply), 0);
	ck_assert(json_object_object_get_ex(reply, "fds", &v));
	ck_assert_int_eq(json_object_get_int(v), 5);
	ck_assert(json_object_object_get_ex(reply, "stream_bytes", &v));
	ck_assert_int_gt(json_object_get_int(v), 0);
	ck_assert(json_object_object_get_ex(reply, "name", &v));
	ck_assert_str_eq(json_object_get_string(v), "one");
	json_object_put(reply);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "one"), "sealed");
	/* + this connection, its peer pidfd, the fds and the stream */
	ck_assert_int_eq(cprd_daemon_fds(&d), base + 2 + 6);
	ck_assert_int_eq(cprd_test_claim_verify(sock, "one", 5, "one", 0, token, sizeof(token)), 0);
	ck_assert_int_eq(cprd_token_op(sock, "ack", "one", token, NULL), 0);
	/* the stream alone: a bundle without fds */
	empty = cprd_test_stream(0);
	ck_assert_int_eq(store_req(sock, "empty", empty, NULL, 0, NULL), 0);
	ck_assert_int_eq(claim_ack_verify(sock, "empty", 0, "x", NULL), 0);
	close(sock);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	close(empty);
	close(stream);
	cprd_test_close_fds(fds, 5);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Nothing is left of a refused store; its fds are closed; the name is free. */
START_TEST(test_store_all_or_nothing)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	int *fds = cprd_test_memfds(3, "aon"), wrong = cprd_test_stream(2),
	    good = cprd_test_stream(3);
	int p[2], kinds[3];
	struct json_object *reply = NULL;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(store_req(sock, "aon", wrong, fds, 3, &reply), -EBADMSG);
	ck_assert(!json_object_object_get_ex(reply, "closing", NULL)); /* not malformed */
	json_object_put(reply);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "aon"), "absent");
	kinds[0] = fds[0];
	kinds[1] = p[0]; /* the stream says memfd */
	kinds[2] = fds[2];
	ck_assert_int_eq(store_req(sock, "aon", good, kinds, 3, NULL), -EBADMSG);
	ck_assert_int_eq(store_req(sock, "aon", sock, fds, 3, NULL), -EBADFD); /* a socket */
	ck_assert_str_eq(cprd_test_bundle_state(&d, "aon"), "absent");
	/* + this connection and its peer pidfd: every fd of the refused stores closed */
	ck_assert_int_eq(cprd_daemon_fds(&d), base + 2);
	ck_assert_int_eq(store_req(sock, "aon", good, fds, 3, NULL), 0);
	ck_assert_int_eq(store_req(sock, "aon", good, fds, 3, NULL), -EEXIST);
	ck_assert_int_eq(cprd_call_name(sock, "create", "aon", NULL), -EEXIST);
	ck_assert_int_eq(claim_ack_verify(sock, "aon", 3, "aon", NULL), 3);
	close(sock);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	close(p[0]);
	close(p[1]);
	close(wrong);
	close(good);
	cprd_test_close_fds(fds, 3);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Options of create ride on store: consumers, ttl_ms, tie. */
START_TEST(test_store_options)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	struct json_object *o = json_object_new_object(), *c = json_object_new_object(),
			   *u = json_object_new_array();
	pid_t pid;
	int status;

	json_object_array_add(u, json_object_new_int(OTHER_UID));
	json_object_object_add(c, "uids", u);
	json_object_object_add(o, "consumers", c);
	json_object_object_add(o, "ttl_ms", json_object_new_int(300));
	ck_assert_int_eq(cprd_test_store(sock, "opt", 2, "opt", o), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int s;

		cprd_test_become(THIRD_UID, THIRD_GID);
		if (cprd_connect(d.sock, &s) < 0)
			_exit(90);
		/* not a consumer: the bundle does not exist for it */
		if (cprd_claim_ack(s, "opt", NULL, &(int){ 0 }, &(int *){ NULL }, &(size_t){ 0 }) !=
		    -ENOENT)
			_exit(1);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "opt"), "sealed");
	usleep(500000); /* past the ttl: debug processes the expiry */
	cprd_daemon_sync(&d);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "opt"), "absent");
	json_object_put(o);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static int job_claim_ack(const char *name, size_t n, uid_t uid, gid_t gid)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int s, r;

		if (uid != (uid_t)-1)
			cprd_test_become(uid, gid);
		if (cprd_connect(d.sock, &s) < 0)
			_exit(90);
		r = claim_ack_verify(s, name, n, name, NULL);
		_exit(r >= 0 ? 0 : r == -ENOENT ? 2 : r == -EACCES ? 3 : r == -EBUSY ? 4 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Store @n fds as @uid in a child. */
static void store_as(uid_t uid, gid_t gid, const char *name, size_t n)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int s;

		cprd_test_become(uid, gid);
		if (cprd_connect(d.sock, &s) < 0)
			_exit(90);
		_exit(cprd_test_store(s, name, n, name, NULL) == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
}

/* claim with ack follows claim's rules, then the bundle is gone for good. */
START_TEST(test_claim_ack_rules)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	char token[64];

	ck_assert_int_eq(cprd_test_store(sock, "take", 4, "take", NULL), 0);
	ck_assert_int_eq(job_claim_ack("take", 4, OTHER_UID, OTHER_GID), 2); /* not visible */
	ck_assert_str_eq(cprd_test_bundle_state(&d, "take"), "sealed");
	ck_assert_int_eq(cprd_test_claim_verify(sock, "take", 4, "take", 0, token, sizeof(token)),
			 0);
	ck_assert_int_eq(job_claim_ack("take", 4, (uid_t)-1, 0), 4); /* claimed: EBUSY */
	ck_assert_int_eq(cprd_token_op(sock, "release", "take", token, NULL), 0);
	ck_assert_int_eq(job_claim_ack("take", 4, (uid_t)-1, 0), 0);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "take"), "absent");
	ck_assert_int_eq(job_claim_ack("take", 4, (uid_t)-1, 0), 2);
	ck_assert_int_eq(cprd_token_op(sock, "ack", "take", token, NULL), -ENOENT);
	/* root sees another user's bundle but may not take it; the owner may */
	store_as(OTHER_UID, OTHER_GID, "users", 2);
	ck_assert_int_eq(job_claim_ack("users", 2, (uid_t)-1, 0), 3);
	ck_assert_int_eq(job_claim_ack("users", 2, OTHER_UID, OTHER_GID), 0);
	/* an open bundle cannot be taken */
	ck_assert_int_eq(cprd_call_name(sock, "create", "open", NULL), 0);
	ck_assert_int_eq(job_claim_ack("open", 0, (uid_t)-1, 0), 4);
	close(sock);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Up to 252 fds ride on the reply; the others follow in chunks, in order. */
START_TEST(test_claim_ack_sizes)
{
	static const size_t sizes[] = { 1, 251, 252, 253, 505, 506, 1000 };
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	char name[16], tag[16];

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		snprintf(name, sizeof(name), "n%zu", sizes[i]);
		snprintf(tag, sizeof(tag), "t%zu", sizes[i]);
		ck_assert_int_eq(cprd_test_store(sock, name, sizes[i], tag, NULL), 0);
		ck_assert_int_eq(claim_ack_verify(sock, name, sizes[i], tag, NULL),
				 (int)(sizes[i] < 252 ? sizes[i] : 252));
		ck_assert_str_eq(cprd_test_bundle_state(&d, name), "absent");
	}
	close(sock);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/*
 * A consumer that claims with "ack" and hangs up without acknowledging
 * (here unread: up to 252 fds ride on the reply) takes nothing: the bundle
 * is sealed again at once, for the next consumer.
 */
START_TEST(test_claim_ack_consumer_gone)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	int c = cprd_test_connect(&d);
	struct json_object *req = json_object_new_object();

	ck_assert_int_eq(cprd_test_store(sock, "lost", 200, "lost", NULL), 0);
	json_object_object_add(req, "op", json_object_new_string("claim"));
	json_object_object_add(req, "name", json_object_new_string("lost"));
	json_object_object_add(req, "ack", json_object_new_boolean(1));
	ck_assert_int_eq(cprd_send(c, req, NULL, 0), 0);
	ck_assert_int_eq(scm_wait(c, 5000), 0);
	close(c); /* the reply and the chunks unread */
	cprd_daemon_sync(&d);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "lost"), "sealed");
	ck_assert_int_eq(claim_ack_verify(sock, "lost", 200, "lost", NULL), 200);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "lost"), "absent");
	close(sock);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	json_object_put(req);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/*
 * A consumer whose fd table cannot hold the bundle (RLIMIT_NOFILE: the
 * kernel truncates the control data, MSG_CTRUNC) gets an error, sends no
 * ack, and the bundle is sealed again when it hangs up: nothing is lost.
 */
START_TEST(test_claim_ack_fd_table_full)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	int status;
	pid_t pid;

	ck_assert_int_eq(cprd_test_store(sock, "big", 100, "big", NULL), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit rl = { 40, 40 };
		int s, stream, *fds, r;
		size_t n;

		if (cprd_connect(d.sock, &s) < 0 || setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(90);
		r = cprd_claim_ack(s, "big", NULL, &stream, &fds, &n);
		_exit(r == -EPROTO ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	cprd_daemon_sync(&d);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "big"), "sealed");
	ck_assert_int_eq(claim_ack_verify(sock, "big", 100, "big", NULL), 100);
	ck_assert_str_eq(cprd_test_bundle_state(&d, "big"), "absent");
	close(sock);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static int sealed_stream(size_t n, unsigned seals)
{
	int fd = cprd_test_stream(n);

	ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* A stream memfd sealed against any change is kept; any other is copied. */
START_TEST(test_sealed_stream_kept)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	int *fds = cprd_test_memfds(2, "st"), ino;
	int frozen = sealed_stream(2, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW);
	int partly = sealed_stream(2, F_SEAL_WRITE | F_SEAL_SHRINK), open = cprd_test_stream(2);
	struct json_object *reply = NULL;
	int stream = -1, *got = NULL;
	size_t n_got = 0;
	struct stat st;

	ck_assert_int_eq(cprd_store(sock, "frozen", NULL, frozen, fds, 2, NULL), 0);
	ck_assert_int_eq(claim_ack_verify(sock, "frozen", 2, "st", &ino), 2);
	ck_assert_int_eq(fstat(frozen, &st), 0);
	ck_assert_int_eq((int)st.st_ino, ino);
	ck_assert_int_eq(cprd_store(sock, "partly", NULL, partly, fds, 2, NULL), 0);
	ck_assert_int_eq(cprd_store(sock, "open", NULL, open, fds, 2, NULL), 0);
	ck_assert_int_eq(write(open, "x", 1), 1); /* after the store: the copy does not see it */
	ck_assert_int_eq(cprd_claim_ack(sock, "open", &reply, &stream, &got, &n_got), 0);
	ck_assert_int_eq(fstat(stream, &st), 0);
	ck_assert_int_eq((int)st.st_size,
			 (int)json_object_get_int(json_object_object_get(reply, "stream_bytes")));
	ck_assert_int_eq(fcntl(stream, F_GET_SEALS) & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW),
			 F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW);
	close(stream);
	cprd_test_close_fds(got, n_got);
	json_object_put(reply);
	ck_assert_int_eq(claim_ack_verify(sock, "partly", 2, "st", &ino), 2);
	ck_assert_int_eq(fstat(partly, &st), 0);
	ck_assert_int_ne((int)st.st_ino, ino);
	{
		/* Larger than the daemon's first read of a frozen stream. */
		int *many = cprd_test_memfds(100, "big");
		int big = sealed_stream(100, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW);

		ck_assert_int_eq(fstat(big, &st), 0);
		ck_assert_int_gt(st.st_size, 4096);
		ck_assert_int_eq(cprd_store(sock, "big", NULL, big, many, 100, NULL), 0);
		ck_assert_int_eq(claim_ack_verify(sock, "big", 100, "big", &ino), 100);
		ck_assert_int_eq((int)st.st_ino, ino);
		close(big);
		cprd_test_close_fds(many, 100);
	}
	close(sock);
	ck_assert_int_eq(cprd_daemon_fds(&d), base);
	close(frozen);
	close(partly);
	close(open);
	cprd_test_close_fds(fds, 2);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* show parses the kept stream again: what it describes, for any size. */
START_TEST(test_show_describes_stream)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	struct json_object *reply = NULL, *b, *st, *v, *rec;

	ck_assert_int_eq(cprd_test_store(sock, "shown", 600, "shown", NULL), 0);
	ck_assert_int_eq(cprd_call_name(sock, "show", "shown", &reply), 0);
	ck_assert(json_object_object_get_ex(reply, "bundle", &b));
	ck_assert(json_object_object_get_ex(b, "stream", &st));
	ck_assert(json_object_object_get_ex(st, "bytes", &v));
	ck_assert_int_gt(json_object_get_int(v), 600 * 8);
	ck_assert(json_object_object_get_ex(st, "producer", &v));
	ck_assert_str_eq(json_object_get_string(v), "cprd-test");
	ck_assert(json_object_object_get_ex(st, "fd_records", &v));
	ck_assert_uint_eq(json_object_array_length(v), 512);
	rec = json_object_array_get_idx(v, 511);
	ck_assert_int_eq(json_object_get_int(json_object_object_get(rec, "slot")), 511);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(rec, "kind")), "memfd");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(rec, "name")), "ram");
	ck_assert(json_object_object_get_ex(st, "fd_records_truncated", &v) &&
		  json_object_get_boolean(v));
	json_object_put(reply);
	ck_assert_int_eq(claim_ack_verify(sock, "shown", 600, "shown", NULL), 252);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* store + claim with ack, 10,000 times: no fd and no memory growth. */
START_TEST(test_10000_takes_no_growth)
{
	int nfds = test_count_fds(), base = cprd_daemon_fds(&d), sock = cprd_test_connect(&d);
	int *fds = cprd_test_memfds(3, "cyc"), stream = cprd_test_stream(3);
	long rss0 = 0, rss1;

	for (int i = 0; i < 10000; i++) {
		int got_stream = -1, *got = NULL;
		size_t n_got = 0;

		if (i == 1000) /* the allocator is warm */
			rss0 = cprd_daemon_rss_kb(&d);
		ck_assert_int_eq(cprd_store(sock, "cyc", NULL, stream, fds, 3, NULL), 0);
		ck_assert_int_eq(cprd_claim_ack(sock, "cyc", NULL, &got_stream, &got, &n_got), 0);
		close(got_stream);
		cprd_test_close_fds(got, n_got);
	}
	rss1 = cprd_daemon_rss_kb(&d);
	ck_assert_int_eq(cprd_daemon_fds(&d), base + 2);
#ifdef __SANITIZE_ADDRESS__
	ck_assert_msg(rss1 - rss0 <= 4096, "VmRSS grew from %ld to %ld kB", rss0, rss1);
#else
	ck_assert_msg(rss1 - rss0 <= 256, "VmRSS grew from %ld to %ld kB", rss0, rss1);
#endif
	close(stream);
	cprd_test_close_fds(fds, 3);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A quota reached by a store: EDQUOT, and nothing is left of it. */
START_TEST(test_store_limits_all_or_nothing)
{
	struct cprd_daemon x;
	int nfds = test_count_fds(), sock, base;

	cprd_daemon_start(&x, NULL, "quota = 0 4 1\n", NULL);
	base = cprd_daemon_fds(&x);
	sock = cprd_test_connect(&x);
	ck_assert_int_eq(cprd_test_store(sock, "q1", 4, "q", NULL), -EDQUOT); /* 4 + the stream */
	ck_assert_int_eq(cprd_test_store(sock, "q1", 3, "q", NULL), 0);
	ck_assert_int_eq(cprd_test_store(sock, "q2", 1, "q", NULL), -EDQUOT); /* one bundle */
	ck_assert_int_eq(cprd_call_name(sock, "show", "q2", NULL), -ENOENT);
	ck_assert_int_eq(cprd_daemon_fds(&x), base + 2 + 4);
	close(sock);
	cprd_daemon_stop(&x);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The client waits for a reply in recvmsg() on its own blocking socket; a
 * socket the caller made non-blocking is polled instead, and still gets
 * every reply and every fd. */
START_TEST(test_client_nonblocking_socket)
{
	int nfds = test_count_fds(), sock = cprd_test_connect(&d);
	int *fds = cprd_test_memfds(3, "nb");
	int stream = cprd_test_stream(3);

	ck_assert_int_eq(fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK), 0);
	ck_assert_int_eq(cprd_call_name(sock, "hello", NULL, NULL), 0);
	ck_assert_int_eq(cprd_store(sock, "nb", NULL, stream, fds, 3, NULL), 0);
	ck_assert_int_eq(claim_ack_verify(sock, "nb", 3, "nb", NULL), 3);
	close(stream);
	cprd_test_close_fds(fds, 3);
	close(sock);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *cprd_handoff_suite(void)
{
	Suite *s = suite_create("cprd-handoff");
	TCase *tc = tcase_create("handoff");

	cprd_test_fixture(tc, &d);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_store_one_request);
	tcase_add_test(tc, test_store_all_or_nothing);
	tcase_add_test(tc, test_store_options);
	tcase_add_test(tc, test_claim_ack_rules);
	tcase_add_test(tc, test_claim_ack_sizes);
	tcase_add_test(tc, test_claim_ack_consumer_gone);
	tcase_add_test(tc, test_claim_ack_fd_table_full);
	tcase_add_test(tc, test_sealed_stream_kept);
	tcase_add_test(tc, test_show_describes_stream);
	tcase_add_test(tc, test_10000_takes_no_growth);
	tcase_add_test(tc, test_store_limits_all_or_nothing);
	tcase_add_test(tc, test_client_nonblocking_socket);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(cprd_handoff_suite());
}
