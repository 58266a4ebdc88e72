/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpr-transfer between real processes: round trips to a fork+exec'd
 * receiver (same inodes, same bytes), a receiver killed at every stage
 * (the sender keeps everything and completes a second transfer), hostile
 * senders and receivers forged byte by byte, and the rendezvous calls.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "scm.h"
#include "test-util.h"
#include "transfer-fixture.h"
#include "transfer.h"

/* ---------------------------------------------------------------- round trips */

static const size_t round_trip_fds[] = { 1, 253, 254, 1000 };

START_TEST(test_cpr_transfer_send_round_trip)
{
	struct sender *s;
	int before;

	raise_nofile();
	before = test_count_fds();
	s = sender_new(round_trip_fds[_i]);
	transfer_ok(s);
	sender_free(s);
	test_assert_no_fd_leak(before);
}
END_TEST

/* The receiver creates the path, the sender connects. */
START_TEST(test_cpr_transfer_connect_round_trip)
{
	int before = test_count_fds(), sock = -1, status;
	char path[] = "/tmp/cpr-xfer-XXXXXX", sockpath[64], *expect, *got, line[8];
	struct cpr_error err = { 0 };
	struct sender *s;
	struct helper h;

	ck_assert_ptr_nonnull(mkdtemp(path));
	snprintf(sockpath, sizeof(sockpath), "%s/s", path);
	s = sender_new(10);
	expect = sender_expect(s);
	h = helper_spawn("listen", sockpath);
	ck_assert_int_eq(read(h.out, line, 6), 6); /* "ready\n" */
	ck_assert_int_eq(cpr_transfer_connect(sockpath, &sock), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sock, &err), 0);
	ck_assert_msg(cpr_transfer_wait_ack(s->ctx, sock, 20000, &err) == 0, "%s", err.message);
	got = helper_finish(&h, &status);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_str_eq(got, expect);
	free(got);
	free(expect);
	cpr_close(sock);
	sender_free(s);
	rmdir(path);
	test_assert_no_fd_leak(before);
}
END_TEST

/* ---------------------------------------------------------------- the receiver dies */

static const char *const stages[] = { "die-before-header", "die-mid-stream", "die-mid-fds",
				      "die-before-ack" };

START_TEST(test_cpr_transfer_send_receiver_killed)
{
	struct cpr_error err = { 0 };
	struct sender *s;
	struct helper h;
	char *expect, *got, big[60000];
	int before, r, status;

	raise_nofile();
	before = test_count_fds();
	s = sender_new(300);
	/* 480 KB of VMM-private records: more than a socket buffer, so the
	 * sender is still writing the stream when the receiver dies. */
	memset(big, 0xa5, sizeof(big));
	for (uint32_t i = 0; i < 8; i++)
		ck_assert_int_eq(
			cpr_ctx_set_private(s->ctx, CPR_REC_PRIVATE_FIRST, i, big, sizeof(big)), 0);
	expect = sender_expect(s);
	h = helper_spawn(stages[_i], NULL);
	r = cpr_transfer_send(s->ctx, h.sock, &err);
	if (r == 0)
		r = cpr_transfer_wait_ack(s->ctx, h.sock, 20000, &err);
	ck_assert_msg(r == -EPIPE || r == -ECONNRESET, "%s: %d %s", stages[_i], r, err.message);
	ck_assert_int_eq(err.code, r);
	ck_assert(strstr(err.message, "receiver closed the connection"));
	got = helper_finish(&h, &status);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "%s", got);
	free(got);
	/* Nothing lost: same fds, same bytes; a fresh receiver gets all. */
	sender_assert_intact(s, expect);
	transfer_ok(s);
	free(expect);
	sender_free(s);
	test_assert_no_fd_leak(before);
}
END_TEST

/* The receiver's fd table is full: MSG_CTRUNC there, a NAK here. */
START_TEST(test_cpr_transfer_wait_ack_ctrunc)
{
	struct cpr_error err = { 0 };
	struct sender *s;
	struct helper h;
	char *expect, *got;
	int before = test_count_fds(), status;

	s = sender_new(100);
	expect = sender_expect(s);
	h = helper_spawn("rlimit", NULL);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, h.sock, &err), 0);
	ck_assert_int_eq(cpr_transfer_wait_ack(s->ctx, h.sock, 20000, &err), -ECONNREFUSED);
	ck_assert_int_eq(err.code, -EPROTO);
	ck_assert_msg(strstr(err.message, "MSG_CTRUNC"), "%s", err.message);
	got = helper_finish(&h, &status);
	/* Refused (1), and not 3: the receiver closed every fd it got. */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s", got);
	free(got);
	sender_assert_intact(s, expect);
	transfer_ok(s);
	free(expect);
	sender_free(s);
	test_assert_no_fd_leak(before);
}
END_TEST

/* A receiver that refuses before reading anything: the sender, blocked in a
 * large stream, gets EPIPE and still reports the receiver's reason. */
START_TEST(test_cpr_transfer_send_early_nak)
{
	struct cpr_error err = { 0 };
	int before = test_count_fds(), sv[2], status;
	char big[60000];
	struct sender *s;
	pid_t pid;

	s = sender_new(2);
	memset(big, 1, sizeof(big));
	for (uint32_t i = 0; i < 8; i++)
		ck_assert_int_eq(
			cpr_ctx_set_private(s->ctx, CPR_REC_PRIVATE_FIRST, i, big, sizeof(big)), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint8_t r[XFER_REPLY_SIZE + 4];

		xfer_reply_store(r, -EALREADY, 4, NULL);
		memcpy(r + XFER_REPLY_SIZE, "busy", 4);
		_exit(write(sv[1], r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
	}
	cpr_close(sv[1]);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], &err), -ECONNREFUSED);
	ck_assert_int_eq(err.code, -EALREADY);
	ck_assert_msg(strstr(err.message, "busy"), "%s", err.message);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	cpr_close(sv[0]);
	sender_free(s);
	test_assert_no_fd_leak(before);
}
END_TEST

/* ---------------------------------------------------------------- forged replies */

/* Send into a socketpair (it all fits), then answer with @reply.  A reply of
 * this protocol gets the sent stream's id unless @keep_id. */
static int answer_id(const void *reply, size_t len, int timeout_ms, bool keep_id,
		     struct cpr_error *err)
{
	uint8_t pre[XFER_PREAMBLE_SIZE], tmpl[XFER_REPLY_SIZE], *r2 = NULL;
	struct sender *s = sender_new(3);
	int sv[2], r;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], err), 0);
	ck_assert_int_eq(read(sv[1], pre, sizeof(pre)), (ssize_t)sizeof(pre));
	xfer_reply_store(tmpl, 0, 0, NULL);
	if (len >= XFER_REPLY_SIZE && !keep_id && memcmp(reply, tmpl, 8) == 0) {
		r2 = malloc(len);
		memcpy(r2, reply, len);
		memcpy(r2 + 16, pre + 32, 16);
		reply = r2;
	}
	if (len)
		ck_assert_int_eq(write(sv[1], reply, len), (ssize_t)len);
	free(r2);
	if (!reply)
		cpr_close(sv[1]);
	r = cpr_transfer_wait_ack(s->ctx, sv[0], timeout_ms, err);
	cpr_close(sv[0]);
	if (reply)
		cpr_close(sv[1]);
	sender_free(s);
	return r;
}

static int answer(const void *reply, size_t len, int timeout_ms, struct cpr_error *err)
{
	return answer_id(reply, len, timeout_ms, false, err);
}

/* An ACK must repeat the id of the stream that was sent. */
START_TEST(test_cpr_transfer_wait_ack_wrong_stream)
{
	int before = test_count_fds();
	struct cpr_error err = { 0 };
	uint8_t r[XFER_REPLY_SIZE], other[16];

	memset(other, 0xab, sizeof(other));
	xfer_reply_store(r, 0, 0, other);
	ck_assert_int_eq(answer_id(r, sizeof(r), 1000, true, &err), -EBADMSG);
	ck_assert_msg(strstr(err.message, "another stream"), "%s", err.message);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_wait_ack_nak)
{
	int before = test_count_fds();
	struct cpr_error err = { 0 };
	uint8_t r[XFER_REPLY_SIZE + 9];

	xfer_reply_store(r, -EMEDIUMTYPE, 9, NULL);
	memcpy(r + XFER_REPLY_SIZE, "bad \"kind", 9);
	ck_assert_int_eq(answer(r, sizeof(r), 1000, &err), -ECONNREFUSED);
	ck_assert_int_eq(err.code, -EMEDIUMTYPE);
	ck_assert_msg(strstr(err.message, "refused"), "%s", err.message);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_wait_ack_ack)
{
	int before = test_count_fds();
	struct cpr_error err = { 0 };
	uint8_t r[XFER_REPLY_SIZE];

	xfer_reply_store(r, 0, 0, NULL);
	ck_assert_int_eq(answer(r, sizeof(r), 1000, &err), 0);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_wait_ack_garbage)
{
	int before = test_count_fds();
	struct cpr_error err = { 0 };
	uint8_t r[XFER_REPLY_SIZE];

	memset(r, 'x', sizeof(r));
	ck_assert_int_eq(answer(r, sizeof(r), 1000, &err), -EBADMSG);
	xfer_reply_store(r, 0, 5, NULL); /* an ACK with a message */
	ck_assert_int_eq(answer(r, sizeof(r), 1000, &err), -EBADMSG);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_wait_ack_timeout)
{
	int before = test_count_fds();
	struct cpr_error err = { 0 };
	uint8_t r[XFER_REPLY_SIZE];

	ck_assert_int_eq(answer(r, 0, 50, &err), -ETIMEDOUT);
	ck_assert_int_eq(answer(NULL, 0, 1000, &err), -ECONNRESET);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_wait_ack_fds_in_reply)
{
	int before = test_count_fds(), sv[2], fd;
	struct cpr_error err = { 0 };
	struct sender *s = sender_new(1);
	uint8_t r[XFER_REPLY_SIZE];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], &err), 0);
	xfer_reply_store(r, 0, 0, NULL);
	fd = test_memfd("stray", 1);
	ck_assert_int_eq(scm_send(sv[1], r, sizeof(r), &fd, 1), (ssize_t)sizeof(r));
	cpr_close(fd);
	ck_assert_int_eq(cpr_transfer_wait_ack(s->ctx, sv[0], 1000, &err), -EPROTO);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	sender_free(s);
	test_assert_no_fd_leak(before); /* the stray fd was closed */
}
END_TEST

START_TEST(test_cpr_transfer_send_refused_locally)
{
	int before = test_count_fds(), sv[2];
	struct cpr_error err = { 0 };
	struct sender *s = sender_new(1);
	uint32_t id;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(cpr_transfer_send(NULL, sv[0], &err), -EINVAL);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, -1, &err), -EBADF);
	ck_assert_int_eq(cpr_transfer_wait_ack(NULL, sv[0], 0, &err), -EINVAL);
	ck_assert_int_eq(cpr_transfer_wait_ack(s->ctx, sv[0], -2, &err), -EINVAL);
	ck_assert_int_eq(cpr_transfer_wait_ack(s->ctx, -1, 0, &err), -EBADF);
	ck_assert_int_eq(
		cpr_blocker_add(s->ctx, CPR_MODE_TRANSFER, "a vhost-user device", &id, NULL), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], &err), -EBUSY);
	ck_assert(strstr(err.message, "vhost-user"));
	ck_assert_int_eq(scm_wait(sv[1], 0), -ETIMEDOUT); /* nothing was sent */
	ck_assert_int_eq(cpr_blocker_remove(s->ctx, id), 0);
	cpr_close(sv[1]);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], &err), -EPIPE);
	ck_assert(strstr(err.message, "preamble"));
	cpr_close(sv[0]);
	sender_free(s);
	test_assert_no_fd_leak(before);
}
END_TEST

/* A guest_memfd cannot be written for level 1: refused before a byte is sent. */
START_TEST(test_cpr_transfer_send_eprotonosupport)
{
	int before = test_count_fds(), sv[2], kvm, vm, gm;
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	char why[160];

	gm = test_guest_memfd(2u << 20, &kvm, &vm, why, sizeof(why));
	if (gm < 0)
		test_skip_case("%s", why);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "gmem", 0, gm, CPR_FD_GUEST_MEMFD, NULL), 0);
	ck_assert_int_eq(cpr_ctx_set_target_level(ctx, 1, NULL), 0);
	ck_assert_int_eq(cpr_transfer_send(ctx, sv[0], &err), -EPROTONOSUPPORT);
	ck_assert_msg(strstr(err.message, "level 1"), "%s", err.message);
	ck_assert_int_eq(scm_wait(sv[1], 0), -ETIMEDOUT); /* nothing was sent */
	cpr_ctx_free(ctx);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	cpr_close(gm);
	cpr_close(vm);
	cpr_close(kvm);
	test_assert_no_fd_leak(before);
}
END_TEST

/* A receiver that never reads: SO_SNDTIMEO ends the send, nothing is lost. */
START_TEST(test_cpr_transfer_send_timeout)
{
	int before = test_count_fds(), sv[2], pipefd[2];
	struct timeval tv = { .tv_usec = 50000 };
	struct cpr_error err = { 0 };
	struct sender *s = sender_new(2);
	char big[60000], *expect;

	memset(big, 7, sizeof(big));
	for (uint32_t i = 0; i < 8; i++)
		ck_assert_int_eq(
			cpr_ctx_set_private(s->ctx, CPR_REC_PRIVATE_FIRST, i, big, sizeof(big)), 0);
	expect = sender_expect(s);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], &err), -ETIMEDOUT);
	ck_assert_msg(strstr(err.message, "timed out sending the state stream"), "%s", err.message);
	sender_assert_intact(s, expect);
	/* Not a socket at all. */
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, pipefd[1], &err), -ENOTSOCK);
	cpr_close(pipefd[0]);
	cpr_close(pipefd[1]);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	free(expect);
	sender_free(s);
	test_assert_no_fd_leak(before);
}
END_TEST

/* ---------------------------------------------------------------- forged senders */

START_TEST(test_cpr_transfer_recv_garbage_preamble)
{
	int before = test_count_fds();
	struct forged f = forge_stream(2);
	uint8_t bad[XFER_PREAMBLE_SIZE];
	char nak[XFER_MSG_MAX + 1];

	memset(bad, 'G', sizeof(bad));
	ck_assert_int_eq(forge_and_recv(&f, 2, 2, 2, bad, f.len, nak, sizeof(nak)), -EBADMSG);
	ck_assert_msg(strstr(nak, "magic"), "%s", nak);
	xfer_preamble_store(bad, f.len, 2, f.id);
	le16_store(bad + 8, 7); /* a future protocol version */
	ck_assert_int_eq(forge_and_recv(&f, 2, 2, 2, bad, f.len, nak, sizeof(nak)),
			 -EPROTONOSUPPORT);
	ck_assert_msg(strstr(nak, "version 7"), "%s", nak);
	xfer_preamble_store(bad, (uint64_t)CPR_STREAM_MAX + 1, 2, f.id);
	ck_assert_int_eq(forge_and_recv(&f, 2, 2, 2, bad, f.len, nak, sizeof(nak)), -EMSGSIZE);
	xfer_preamble_store(bad, f.len, CPR_FDS_MAX + 1, f.id);
	ck_assert_int_eq(forge_and_recv(&f, 2, 2, 2, bad, f.len, nak, sizeof(nak)), -EMSGSIZE);
	free(f.stream);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_recv_missing_fds)
{
	int before = test_count_fds();
	struct forged f = forge_stream(3);
	char nak[XFER_MSG_MAX + 1];

	/* The chunk claims 3 but carries 2. */
	ck_assert_int_eq(forge_and_recv(&f, 3, 2, 3, NULL, f.len, nak, sizeof(nak)), -EPROTO);
	ck_assert_msg(strstr(nak, "missing fds"), "%s", nak);
	/* Honest transport, but the stream names 3 fds and 2 came. */
	ck_assert_int_eq(forge_and_recv(&f, 2, 2, 2, NULL, f.len, nak, sizeof(nak)), -EPROTO);
	ck_assert_str_eq(nak,
			 "the stream has 3 FD records, 2 fds came with it"); /* every carrier's */
	free(f.stream);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_recv_extra_fds)
{
	int before = test_count_fds();
	struct forged f = forge_stream(3);
	char nak[XFER_MSG_MAX + 1];

	ck_assert_int_eq(forge_and_recv(&f, 3, 5, 3, NULL, f.len, nak, sizeof(nak)), -EPROTO);
	ck_assert_msg(strstr(nak, "extra fds"), "%s", nak);
	ck_assert_int_eq(forge_and_recv(&f, 4, 4, 4, NULL, f.len, nak, sizeof(nak)), -EPROTO);
	ck_assert_msg(strstr(nak, "3 FD records"), "%s", nak);
	free(f.stream);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_recv_short_read)
{
	int before = test_count_fds();
	struct forged f = forge_stream(2);
	char nak[XFER_MSG_MAX + 1];

	ck_assert_int_eq(forge_and_recv(&f, 2, 2, 2, NULL, f.len / 2, nak, sizeof(nak)),
			 -ECONNRESET);
	ck_assert_msg(strstr(nak, "state stream"), "%s", nak);
	free(f.stream);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_recv_bad_stream)
{
	int before = test_count_fds();
	struct forged f = forge_stream(2);
	char nak[XFER_MSG_MAX + 1];
	int r;

	((uint8_t *)f.stream)[f.len - 1] ^= 0x40; /* CRC32C no longer matches */
	r = forge_and_recv(&f, 2, 2, 2, NULL, f.len, nak, sizeof(nak));
	ck_assert_int_lt(r, 0);
	ck_assert_int_ne(r, -EPROTO);
	((uint8_t *)f.stream)[f.len - 1] ^= 0x40;
	f.id[0] ^= 1; /* the preamble's id no longer repeats the stream's */
	ck_assert_int_eq(forge_and_recv(&f, 2, 2, 2, NULL, f.len, nak, sizeof(nak)), -ESTALE);
	ck_assert_msg(strstr(nak, "stream's id"), "%s", nak);
	free(f.stream);
	test_assert_no_fd_leak(before);
}
END_TEST

/* The fd's kind does not match its record: refused at adoption. */
START_TEST(test_cpr_transfer_recv_kind_mismatch)
{
	int before = test_count_fds(), sv[2], pipefd[2], r;
	struct forged f = forge_stream(1);
	struct cpr_error err = { 0 };
	uint8_t pre[XFER_PREAMBLE_SIZE];
	struct cpr_ctx *ctx;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	xfer_preamble_store(pre, f.len, 1, f.id);
	ck_assert_int_eq(write(sv[0], pre, sizeof(pre)), (ssize_t)sizeof(pre));
	ck_assert_int_eq(write(sv[0], f.stream, f.len), (ssize_t)f.len);
	ck_assert_int_eq(scm_send_fds(sv[0], NULL, 0, pipefd, 1), 0); /* a pipe, not a memfd */
	cpr_close(pipefd[0]);
	cpr_close(pipefd[1]);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	r = cpr_transfer_recv(ctx, sv[1], &err);
	ck_assert_int_eq(r, -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_transfer_ack(ctx, sv[1], NULL), -ENOENT);
	cpr_ctx_free(ctx);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	free(f.stream);
	test_assert_no_fd_leak(before);
}
END_TEST

/* A wrong kind in the last of three chunks: refused with that record named,
 * and every fd of the earlier chunks, already checked, closed again. */
START_TEST(test_cpr_transfer_recv_kind_mismatch_late)
{
	enum { N = 600 };
	struct cpr_state_fd f = { .kind = CPR_FD_MEMFD };
	struct cpr_error err = { 0 };
	struct cpr_state_info info;
	struct cpr_state *st;
	struct cpr_ctx *ctx;
	struct forged fo = { 0 };
	uint8_t pre[XFER_PREAMBLE_SIZE];
	int before, sv[2], pipefd[2], fds[N];

	raise_nofile();
	before = test_count_fds();
	ck_assert_int_eq(cpr_state_new(&st), 0);
	ck_assert_int_eq(cpr_state_set_page_shift(st, (uint32_t)__builtin_ctz(getpagesize())), 0);
	strcpy(f.name, "m");
	for (int i = 0; i < N; i++) {
		f.slot = (uint32_t)i;
		f.id = i;
		ck_assert_int_ge(cpr_state_add_fd(st, &f), 0);
	}
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &fo.stream, &fo.len, NULL), 0);
	ck_assert_int_eq(cpr_state_get_info(st, &info), 0);
	cpr_state_free(st);
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	for (int i = 0; i < N - 1; i++)
		fds[i] = test_memfd("m", 4096);
	fds[N - 1] = pipefd[0];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	xfer_preamble_store(pre, fo.len, N, info.stream_id);
	ck_assert_int_eq(write(sv[0], pre, sizeof(pre)), (ssize_t)sizeof(pre));
	ck_assert_int_eq(write(sv[0], fo.stream, fo.len), (ssize_t)fo.len);
	ck_assert_int_eq(scm_send_fds(sv[0], NULL, 0, fds, N), 0);
	for (int i = 0; i < N; i++)
		cpr_close(fds[i]);
	cpr_close(pipefd[1]);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_transfer_recv(ctx, sv[1], &err), -EMEDIUMTYPE);
	ck_assert_uint_eq(err.record_type, CPR_REC_FD);
	ck_assert_uint_eq(err.instance, N - 1);
	ck_assert_msg(strstr(err.message, "is not a memfd"), "%s", err.message);
	ck_assert_int_eq(cpr_ctx_incoming(ctx), 0);
	cpr_ctx_free(ctx);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	free(fo.stream);
	test_assert_no_fd_leak(before);
}
END_TEST

/* A stream whose two FD records name slots @s0 and @s1, sent with two
 * memfds; returns what cpr_transfer_recv() said, with the inode of the fd
 * adopted as "a" in *ret_ino_a. */
static int recv_slots(uint32_t s0, uint32_t s1, const int fds[2], unsigned long *ret_ino_a)
{
	struct cpr_state_fd f = { .kind = CPR_FD_MEMFD };
	struct cpr_error err = { 0 };
	struct cpr_state_info info;
	struct cpr_state *st;
	struct cpr_ctx *ctx;
	struct forged fo = { 0 };
	uint8_t pre[XFER_PREAMBLE_SIZE];
	int sv[2], r, a;

	ck_assert_int_eq(cpr_state_new(&st), 0);
	ck_assert_int_eq(cpr_state_set_page_shift(st, (uint32_t)__builtin_ctz(getpagesize())), 0);
	f.slot = s0;
	strcpy(f.name, "a");
	ck_assert_int_ge(cpr_state_add_fd(st, &f), 0);
	f.slot = s1;
	strcpy(f.name, "b");
	ck_assert_int_ge(cpr_state_add_fd(st, &f), 0);
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &fo.stream, &fo.len, NULL), 0);
	ck_assert_int_eq(cpr_state_get_info(st, &info), 0);
	cpr_state_free(st);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	xfer_preamble_store(pre, fo.len, 2, info.stream_id);
	ck_assert_int_eq(write(sv[0], pre, sizeof(pre)), (ssize_t)sizeof(pre));
	ck_assert_int_eq(write(sv[0], fo.stream, fo.len), (ssize_t)fo.len);
	ck_assert_int_eq(scm_send_fds(sv[0], NULL, 0, fds, 2), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	r = cpr_transfer_recv(ctx, sv[1], &err);
	if (r == 0) {
		ck_assert_int_eq(cpr_fd_claim(ctx, "a", 0, CPR_FD_MEMFD, &a, NULL), 0);
		*ret_ino_a = fd_ino(a);
		cpr_close(a);
	}
	ck_assert_int_eq(cpr_fd_close_unclaimed(ctx), r == 0 ? 1 : 0);
	cpr_ctx_free(ctx);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	free(fo.stream);
	return r;
}

/* Slots, not record order, say which fd is which; slots outside the fds
 * carried are refused. */
START_TEST(test_cpr_transfer_recv_slots)
{
	int before = test_count_fds(), fds[2];
	unsigned long ino = 0;

	fds[0] = test_memfd("x", 4096);
	fds[1] = test_memfd("y", 4096);
	ck_assert_int_eq(recv_slots(1, 0, fds, &ino), 0);
	ck_assert_uint_eq(ino, fd_ino(fds[1])); /* "a" named slot 1 */
	ck_assert_int_eq(recv_slots(0, 1, fds, &ino), 0);
	ck_assert_uint_eq(ino, fd_ino(fds[0]));
	ck_assert_int_eq(recv_slots(0, 5, fds, &ino), -EPROTO);
	cpr_close(fds[0]);
	cpr_close(fds[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

/* A context that already adopted a state refuses a second one. */
START_TEST(test_cpr_transfer_recv_already)
{
	int before = test_count_fds(), sv[2];
	struct cpr_error err = { 0 };
	struct sender *s = sender_new(2), *s2;
	struct cpr_ctx *ctx;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_transfer_recv(NULL, sv[1], &err), -EINVAL);
	ck_assert_int_eq(cpr_transfer_recv(ctx, -1, &err), -EBADF);
	ck_assert_int_eq(cpr_transfer_ack(NULL, sv[1], NULL), -EINVAL);
	ck_assert_int_eq(cpr_transfer_ack(ctx, -1, NULL), -EBADF);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], &err), 0);
	ck_assert_int_eq(cpr_transfer_recv(ctx, sv[1], &err), 0);
	ck_assert_int_eq(cpr_transfer_ack(ctx, sv[1], NULL), 0);
	ck_assert_int_eq(cpr_transfer_wait_ack(s->ctx, sv[0], 1000, &err), 0);
	/* handed off: the sender owns nothing to send again, by any carrier */
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], &err), -EALREADY);
	ck_assert_int_eq(err.code, -EALREADY);
	ck_assert_int_eq(cpr_transfer_wait_ack(s->ctx, sv[0], 0, &err), -ENOENT);
	/* a receiver that has state refuses a second one, and acks only once */
	s2 = sender_new(1);
	ck_assert_int_eq(cpr_transfer_send(s2->ctx, sv[0], &err), 0);
	ck_assert_int_eq(cpr_transfer_recv(ctx, sv[1], &err), -EALREADY);
	ck_assert_int_eq(cpr_transfer_wait_ack(s2->ctx, sv[0], 1000, &err), -ECONNREFUSED);
	ck_assert_int_eq(err.code, -EALREADY);
	ck_assert_int_eq(cpr_transfer_ack(ctx, sv[1], NULL), -EALREADY);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	cpr_ctx_free(ctx);
	sender_free(s2);
	sender_free(s);
	test_assert_no_fd_leak(before);
}
END_TEST

/*
 * One owner: a datagram channel is refused; a second send while the first
 * awaits its ack is refused; after an ack nothing is sent again (transfer,
 * exec) until the receiver is gone and the sender reclaims the state.
 */
START_TEST(test_cpr_transfer_one_owner)
{
	int before = test_count_fds(), sv[2], dg[2], pp[2];
	struct cpr_error err = { 0 };
	struct sender *s = sender_new(1);
	char *const argv[] = { (char *)"true", NULL };
	struct cpr_ctx *ctx;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, dg[0], &err), -ESOCKTNOSUPPORT);
	ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, pp[1], &err), -ENOTSOCK);
	cpr_close(pp[0]);
	cpr_close(pp[1]);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], &err), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], &err), -EBUSY);
	ck_assert_int_eq(cpr_transfer_recv(ctx, sv[1], &err), 0);
	ck_assert_int_eq(cpr_transfer_ack(ctx, sv[1], NULL), 0);
	ck_assert_int_eq(cpr_transfer_reclaim(s->ctx, sv[0], NULL),
			 -ENOENT); /* not handed off yet */
	ck_assert_int_eq(cpr_transfer_wait_ack(s->ctx, sv[0], 1000, &err), 0);
	ck_assert_int_eq(cpr_exec(s->ctx, "/bin/true", argv, NULL, &err), -EALREADY);
	ck_assert_ptr_nonnull(strstr(err.message, "handed off"));
	/* the receiver is still there: the state may be its */
	ck_assert_int_eq(cpr_transfer_reclaim(s->ctx, sv[0], NULL), -EBUSY);
	cpr_close(sv[1]);
	cpr_ctx_free(ctx);
	ck_assert_int_eq(cpr_transfer_reclaim(s->ctx, sv[0], NULL), 0);
	cpr_close(sv[0]);
	/* ours again: a new receiver takes it */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_transfer_send(s->ctx, sv[0], &err), 0);
	ck_assert_int_eq(cpr_transfer_recv(ctx, sv[1], &err), 0);
	ck_assert_int_eq(cpr_transfer_ack(ctx, sv[1], NULL), 0);
	ck_assert_int_eq(cpr_transfer_wait_ack(s->ctx, sv[0], 1000, &err), 0);
	cpr_fd_close_unclaimed(ctx);
	cpr_ctx_free(ctx);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	cpr_close(dg[0]);
	cpr_close(dg[1]);
	sender_free(s);
	test_assert_no_fd_leak(before);
}
END_TEST

/* SO_RCVTIMEO bounds a receive from a stalled sender. */
START_TEST(test_cpr_transfer_recv_timeout)
{
	int before = test_count_fds(), sv[2];
	struct timeval tv = { .tv_usec = 50000 };
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	ck_assert_int_eq(write(sv[0],
			       "\x89"
			       "CPR",
			       4),
			 4);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_transfer_recv(ctx, sv[1], &err), -ETIMEDOUT);
	ck_assert_msg(strstr(err.message, "timed out"), "%s", err.message);
	cpr_ctx_free(ctx);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

/* ---------------------------------------------------------------- rendezvous */

static char tmpdir[64];

/* Under the directory main() made, shared by the forked tests. */
static const char *tmp_path(const char *name)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	return p;
}

START_TEST(test_cpr_transfer_listen_mode)
{
	int before = test_count_fds(), fd, fd2;
	const char *p = tmp_path("l");
	struct stat st;

	umask(0);
	ck_assert_int_eq(cpr_transfer_listen(p, &fd), 0);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(fcntl(fd, F_GETFD), FD_CLOEXEC);
	/* A live listener is not replaced. */
	ck_assert_int_eq(cpr_transfer_listen(p, &fd2), -EADDRINUSE);
	cpr_close(fd);
	/* A stale one is. */
	ck_assert_int_eq(cpr_transfer_connect(p, &fd2), -ECONNREFUSED);
	ck_assert_int_eq(cpr_transfer_listen(p, &fd), 0);
	cpr_close(fd);
	unlink(p);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_listen_invalid)
{
	int before = test_count_fds(), fd;
	char longp[200];
	const char *p = tmp_path("file");

	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = 0;
	ck_assert_int_eq(cpr_transfer_listen(longp, &fd), -ENAMETOOLONG);
	ck_assert_int_eq(cpr_transfer_connect(longp, &fd), -ENAMETOOLONG);
	ck_assert_int_eq(cpr_transfer_listen(NULL, &fd), -EINVAL);
	ck_assert_int_eq(cpr_transfer_listen("", &fd), -EINVAL);
	ck_assert_int_eq(cpr_transfer_listen("/tmp/x", NULL), -EINVAL);
	ck_assert_int_eq(cpr_transfer_connect(NULL, &fd), -EINVAL);
	ck_assert_int_eq(cpr_transfer_connect("/tmp/x", NULL), -EINVAL);
	/* Never unlink what is not a socket. */
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	cpr_close(fd);
	ck_assert_int_eq(cpr_transfer_listen(p, &fd), -EEXIST);
	ck_assert_int_eq(access(p, F_OK), 0);
	unlink(p);
	ck_assert_int_eq(cpr_transfer_connect(p, &fd), -ENOENT);
	ck_assert_int_eq(cpr_transfer_listen("/nonexistent-dir/s", &fd), -ENOENT);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_transfer_accept_timeout)
{
	int before = test_count_fds(), lfd, fd, c;
	const char *p = tmp_path("a");

	ck_assert_int_eq(cpr_transfer_listen(p, &lfd), 0);
	ck_assert_int_eq(cpr_transfer_accept(lfd, 20, &fd), -ETIMEDOUT);
	ck_assert_int_eq(cpr_transfer_accept(-1, 20, &fd), -EBADF);
	ck_assert_int_eq(cpr_transfer_accept(lfd, -2, &fd), -EINVAL);
	ck_assert_int_eq(cpr_transfer_accept(lfd, 20, NULL), -EINVAL);
	ck_assert_int_eq(cpr_transfer_connect(p, &c), 0);
	ck_assert_int_eq(cpr_transfer_accept(lfd, 1000, &fd), 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD), FD_CLOEXEC);
	cpr_close(fd);
	cpr_close(c);
	cpr_close(lfd);
	unlink(p);
	test_assert_no_fd_leak(before);
}
END_TEST

/* Only our own user or root may connect: another uid is refused. */
START_TEST(test_cpr_transfer_accept_other_user)
{
	int before = test_count_fds(), lfd, fd, status;
	const char *p = tmp_path("u");
	pid_t pid;

	if (geteuid() != 0)
		test_skip_case("not root: cannot connect as another user");
	ck_assert_int_eq(chmod(tmpdir, 0755), 0);
	ck_assert_int_eq(cpr_transfer_listen(p, &lfd), 0);
	ck_assert_int_eq(chmod(p, 0666), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0 || cpr_transfer_connect(p, &fd) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	ck_assert_int_eq(cpr_transfer_accept(lfd, 5000, &fd), -EPERM);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	cpr_close(lfd);
	unlink(p);
	test_assert_no_fd_leak(before);
}
END_TEST

static Suite *transfer_suite(void)
{
	Suite *s = suite_create("transfer");
	TCase *tc = tcase_create("transfer");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_cpr_transfer_send_round_trip, 0,
			    (int)ARRAY_SIZE(round_trip_fds));
	tcase_add_test(tc, test_cpr_transfer_connect_round_trip);
	tcase_add_loop_test(tc, test_cpr_transfer_send_receiver_killed, 0, (int)ARRAY_SIZE(stages));
	tcase_add_test(tc, test_cpr_transfer_wait_ack_ctrunc);
	tcase_add_test(tc, test_cpr_transfer_send_early_nak);
	tcase_add_test(tc, test_cpr_transfer_wait_ack_nak);
	tcase_add_test(tc, test_cpr_transfer_wait_ack_ack);
	tcase_add_test(tc, test_cpr_transfer_wait_ack_garbage);
	tcase_add_test(tc, test_cpr_transfer_wait_ack_wrong_stream);
	tcase_add_test(tc, test_cpr_transfer_wait_ack_timeout);
	tcase_add_test(tc, test_cpr_transfer_wait_ack_fds_in_reply);
	tcase_add_test(tc, test_cpr_transfer_send_refused_locally);
	tcase_add_test(tc, test_cpr_transfer_send_timeout);
	tcase_add_test(tc, test_cpr_transfer_send_eprotonosupport);
	tcase_add_test(tc, test_cpr_transfer_recv_garbage_preamble);
	tcase_add_test(tc, test_cpr_transfer_recv_missing_fds);
	tcase_add_test(tc, test_cpr_transfer_recv_extra_fds);
	tcase_add_test(tc, test_cpr_transfer_recv_short_read);
	tcase_add_test(tc, test_cpr_transfer_recv_bad_stream);
	tcase_add_test(tc, test_cpr_transfer_recv_kind_mismatch);
	tcase_add_test(tc, test_cpr_transfer_recv_kind_mismatch_late);
	tcase_add_test(tc, test_cpr_transfer_recv_slots);
	tcase_add_test(tc, test_cpr_transfer_recv_already);
	tcase_add_test(tc, test_cpr_transfer_one_owner);
	tcase_add_test(tc, test_cpr_transfer_recv_timeout);
	tcase_add_test(tc, test_cpr_transfer_listen_mode);
	tcase_add_test(tc, test_cpr_transfer_listen_invalid);
	tcase_add_test(tc, test_cpr_transfer_accept_timeout);
	tcase_add_test(tc, test_cpr_transfer_accept_other_user);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int r;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cpr-xfer-XXXXXX");
	if (!mkdtemp(tmpdir))
		return EXIT_FAILURE;
	r = test_run(transfer_suite());
	(void)rmdir(tmpdir);
	return r;
}
