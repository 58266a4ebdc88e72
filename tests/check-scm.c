/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SCM_RIGHTS primitives and cpr_fds_send/recv over real socketpairs with
 * real memfds: chunk boundaries, ownership on every failure, MSG_CTRUNC from
 * a full fd table, MSG_TRUNC, unwanted control messages, timeouts.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "scm.h"
#include "test-util.h"

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif

static void pair(int type, int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
}

/* Raise the soft fd limit to the hard one: 1,000-fd cases hold two copies. */
static void raise_nofile(void)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 4096 && rl.rlim_max >= 4096)
		rl.rlim_cur = 4096;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_msg(rl.rlim_cur >= 2200,
		      "RLIMIT_NOFILE hard limit below 2200: cannot hold 2x1000 fds");
}

static int *memfds(size_t n)
{
	int *fds = calloc(n ? n : 1, sizeof(int));

	ck_assert_ptr_nonnull(fds);
	for (size_t i = 0; i < n; i++) {
		fds[i] = test_memfd("scm", 4096);
		ck_assert_int_ge(fds[i], 0);
	}
	return fds;
}

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cpr_close(fds[i]);
	free(fds);
}

static ino_t ino(int fd)
{
	struct stat st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	return st.st_ino;
}

static void assert_same_files(const int *a, const int *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_ne(a[i], b[i]);
		ck_assert_uint_eq(ino(a[i]), ino(b[i]));
		ck_assert_int_eq(fcntl(b[i], F_GETFD), FD_CLOEXEC);
	}
}

/* ---------------------------------------------------------------- scm_send / scm_recv */

START_TEST(test_scm_recv_basic)
{
	int before = test_count_fds(), sv[2], got[CPR_SCM_MAX_FDS];
	int *fds;
	size_t n = 0;
	char buf[8];

	pair(SOCK_STREAM, sv);
	fds = memfds(3);
	ck_assert_int_eq(scm_send(sv[0], "abc", 3, fds, 3), 3);
	ck_assert_int_eq(scm_recv(sv[1], buf, sizeof(buf), got, 3, &n, 0), 3);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(buf, "abc", 3);
	assert_same_files(fds, got, 3);
	scm_close_all(got, n);
	close_all(fds, 3);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_scm_recv_more_fds_than_max)
{
	int before = test_count_fds(), sv[2], got[4] = { -1, -1, -1, -1 };
	int *fds;
	size_t n = 99;
	char buf[4];

	pair(SOCK_STREAM, sv);
	fds = memfds(5);
	ck_assert_int_eq(scm_send(sv[0], "x", 1, fds, 5), 1);
	close_all(fds, 5);
	ck_assert_int_eq(scm_recv(sv[1], buf, sizeof(buf), got, 4, &n, 0), -EPROTO);
	ck_assert_uint_eq(n, 99); /* untouched on failure */
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

/* The fd table is full: the kernel installs what fits and sets MSG_CTRUNC. */
START_TEST(test_scm_recv_ctrunc)
{
	int before, sv[2], got[CPR_SCM_MAX_FDS];
	struct rlimit rl, low;
	int *fds;
	size_t n = 0;
	char buf[4];

	pair(SOCK_STREAM, sv);
	fds = memfds(20);
	ck_assert_int_eq(scm_send(sv[0], "x", 1, fds, 20), 1);
	close_all(fds, 20);
	before = test_count_fds();
	/* Room for about 8 of the 20 fds. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = (rlim_t)before + 8;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	ck_assert_int_eq(scm_recv(sv[1], buf, sizeof(buf), got, CPR_SCM_MAX_FDS, &n, 0), -EPROTO);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_int_eq(test_count_fds(), before);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
}
END_TEST

/* A datagram larger than the buffer: MSG_TRUNC, and its fds are closed. */
START_TEST(test_scm_recv_msg_trunc)
{
	int before = test_count_fds(), sv[2], got[CPR_SCM_MAX_FDS];
	int *fds;
	size_t n = 0;
	char buf[4];

	pair(SOCK_SEQPACKET, sv);
	fds = memfds(2);
	ck_assert_int_eq(scm_send(sv[0], "too long", 8, fds, 2), 8);
	close_all(fds, 2);
	ck_assert_int_eq(scm_recv(sv[1], buf, sizeof(buf), got, 2, &n, 0), -EMSGSIZE);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

/* SO_PASSPIDFD makes the kernel attach an SCM_PIDFD: refused and closed. */
START_TEST(test_scm_recv_pidfd_cmsg)
{
	int before = test_count_fds(), sv[2], got[CPR_SCM_MAX_FDS], one = 1;
	int *fds;
	size_t n = 0;
	char buf[4];

	pair(SOCK_STREAM, sv);
	if (setsockopt(sv[1], SOL_SOCKET, SO_PASSPIDFD, &one, sizeof(one)) < 0) {
		ck_assert_int_eq(errno, ENOPROTOOPT);
		cpr_close(sv[0]);
		cpr_close(sv[1]);
		test_skip_case("SO_PASSPIDFD: kernel before 6.5, no pidfd to refuse");
	}
	fds = memfds(2);
	ck_assert_int_eq(scm_send(sv[0], "x", 1, fds, 2), 1);
	close_all(fds, 2);
	ck_assert_int_eq(scm_recv(sv[1], buf, sizeof(buf), got, 2, &n, 0), -EPROTO);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

/* SO_PASSCRED attaches credentials to every message: they carry no fd and
 * are ignored, the fds still arrive. */
START_TEST(test_scm_recv_credentials)
{
	int before = test_count_fds(), sv[2], got[CPR_SCM_MAX_FDS], one = 1;
	int *fds;
	size_t n = 0;
	char buf[4];

	pair(SOCK_STREAM, sv);
	ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
	fds = memfds(2);
	ck_assert_int_eq(scm_send(sv[0], "x", 1, fds, 2), 1);
	ck_assert_int_eq(scm_recv(sv[1], buf, sizeof(buf), got, 2, &n, 0), 1);
	ck_assert_uint_eq(n, 2);
	assert_same_files(fds, got, 2);
	scm_close_all(got, n);
	close_all(fds, 2);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_scm_recv_eof)
{
	int before = test_count_fds(), sv[2], got[1];
	size_t n = 7;
	char buf[4];

	pair(SOCK_STREAM, sv);
	cpr_close(sv[0]);
	ck_assert_int_eq(scm_recv(sv[1], buf, sizeof(buf), got, 1, &n, 0), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(scm_recv(-1, buf, sizeof(buf), got, 1, &n, 0), -EBADF);
	ck_assert_int_eq(scm_recv(sv[1], buf, sizeof(buf), got, CPR_SCM_MAX_FDS + 1, &n, 0),
			 -EINVAL);
	ck_assert_int_eq(scm_recv(sv[1], buf, sizeof(buf), got, 1, &n, MSG_DONTWAIT), 0);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_scm_recv_eagain)
{
	int before = test_count_fds(), sv[2], got[1];
	size_t n = 0;
	char buf[4];

	pair(SOCK_STREAM, sv);
	ck_assert_int_eq(scm_recv(sv[1], buf, sizeof(buf), got, 1, &n, MSG_DONTWAIT), -EAGAIN);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_scm_send_invalid)
{
	int before = test_count_fds(), sv[2], fds[CPR_SCM_MAX_FDS + 1];

	pair(SOCK_STREAM, sv);
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		fds[i] = sv[0];
	ck_assert_int_eq(scm_send(sv[0], "x", 1, fds, CPR_SCM_MAX_FDS + 1), -EINVAL);
	ck_assert_int_eq(scm_send(sv[0], "x", 0, fds, 1), -EINVAL);
	ck_assert_int_eq(scm_send(sv[0], NULL, 1, NULL, 0), -EINVAL);
	ck_assert_int_eq(scm_send(-1, "x", 1, NULL, 0), -EBADF);
	cpr_close(sv[1]);
	/* The peer is gone: EPIPE, and no SIGPIPE kills us (MSG_NOSIGNAL). */
	ck_assert_int_eq(scm_send(sv[0], "x", 1, fds, 1), -EPIPE);
	cpr_close(sv[0]);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_scm_wait_timeout)
{
	int before = test_count_fds(), sv[2];

	pair(SOCK_STREAM, sv);
	ck_assert_int_eq(scm_wait(sv[1], 10), -ETIMEDOUT);
	ck_assert_int_eq(scm_wait(sv[1], 0), -ETIMEDOUT);
	ck_assert_int_eq(write(sv[0], "x", 1), 1);
	ck_assert_int_eq(scm_wait(sv[1], -1), 0);
	ck_assert_int_eq(scm_wait(-1, 0), -EBADF);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

/* ---------------------------------------------------------------- cpr_fds_send / recv */

static const size_t chunk_counts[] = { 0, 1, 252, 253, 254, 506, 507, 1000 };

START_TEST(test_cpr_fds_recv_chunks)
{
	size_t n = chunk_counts[_i];
	int before, sv[2], *fds, *got;
	char data[64] = "chunk boundaries", back[64];

	raise_nofile();
	before = test_count_fds();
	pair(SOCK_STREAM, sv);
	fds = memfds(n);
	got = calloc(n ? n : 1, sizeof(int));
	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(cpr_fds_send(sv[0], data, sizeof(data), fds, n), 0);
	ck_assert_int_eq(cpr_fds_recv(sv[1], back, sizeof(back), got, n, 1000), 0);
	ck_assert_mem_eq(data, back, sizeof(data));
	assert_same_files(fds, got, n); /* in order, same inodes, CLOEXEC */
	/* Nothing is left behind in the socket. */
	ck_assert_int_eq(scm_wait(sv[1], 0), -ETIMEDOUT);
	close_all(got, n);
	close_all(fds, n);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

/* The per-chunk callback sees each chunk as it arrives, in order; a refusal
 * from it closes every fd received so far. */
struct chunk_log {
	size_t calls, seen, stop_at;
};

static int log_chunk(void *userdata, const int *fds, size_t first, size_t count,
		     struct cpr_error *err)
{
	struct chunk_log *l = userdata;

	ck_assert_uint_eq(first, l->seen);
	ck_assert_uint_le(count, CPR_SCM_MAX_FDS);
	for (size_t i = first; i < first + count; i++)
		ck_assert_int_ge(fcntl(fds[i], F_GETFD), 0);
	l->seen += count;
	if (++l->calls == l->stop_at) {
		cpr_error_set(err, -EMEDIUMTYPE, UINT32_MAX, UINT32_MAX, UINT64_MAX, "refused");
		return -EMEDIUMTYPE;
	}
	return 0;
}

START_TEST(test_scm_recv_fds_each)
{
	size_t n = 600; /* three chunks */
	int before, sv[2], *fds, *got;

	raise_nofile();
	before = test_count_fds();
	fds = memfds(n);
	got = calloc(n, sizeof(int));
	ck_assert_ptr_nonnull(got);
	for (size_t stop = 0; stop <= 3; stop++) {
		struct chunk_log l = { .stop_at = stop };
		struct cpr_error err = { 0 };
		int r;

		pair(SOCK_STREAM, sv);
		ck_assert_int_eq(cpr_fds_send(sv[0], NULL, 0, fds, n), 0);
		r = scm_recv_fds_each(sv[1], NULL, 0, got, n, -1, log_chunk, &l, &err);
		if (stop == 0) {
			ck_assert_int_eq(r, 0);
			ck_assert_uint_eq(l.calls, 3);
			ck_assert_uint_eq(l.seen, n);
			assert_same_files(fds, got, n);
			for (size_t i = 0; i < n; i++)
				got[i] = cpr_close(got[i]);
		} else {
			ck_assert_int_eq(r, -EMEDIUMTYPE);
			ck_assert_str_eq(err.message, "refused");
			ck_assert_uint_eq(l.calls, stop);
			for (size_t i = 0; i < n; i++)
				ck_assert_int_eq(got[i], -EBADF);
		}
		cpr_close(sv[0]);
		cpr_close(sv[1]);
		test_assert_no_fd_leak(before + (int)n);
	}
	free(got);
	close_all(fds, n);
	test_assert_no_fd_leak(before);
}
END_TEST

/* Forge one chunk: header claims @claim fds, @attach ride along. */
static void forge_chunk(int sock, uint32_t first, uint16_t claim, uint32_t data_len, const int *fds,
			size_t attach)
{
	uint8_t h[SCM_CHUNK_SIZE];

	le32_store(h, SCM_CHUNK_MAGIC);
	le32_store(h + 4, first);
	le16_store(h + 8, claim);
	le16_store(h + 10, 0);
	le32_store(h + 12, data_len);
	ck_assert_int_eq(scm_send(sock, h, sizeof(h), fds, attach), (ssize_t)sizeof(h));
}

/* Expect @n fds: the peer's message is forged by @forge. */
static void expect_refusal(void (*forge)(int sock, const int *fds), size_t n, int code)
{
	int before = test_count_fds(), sv[2], *fds, *got;
	char buf[8];

	pair(SOCK_STREAM, sv);
	fds = memfds(n + 2);
	got = calloc(n, sizeof(int));
	ck_assert_ptr_nonnull(got);
	forge(sv[0], fds);
	close_all(fds, n + 2);
	ck_assert_int_eq(cpr_fds_recv(sv[1], buf, sizeof(buf), got, n, 200), code);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(got[i], -EBADF);
	free(got);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before); /* every fd that arrived was closed */
}

static void forge_missing(int sock, const int *fds)
{
	forge_chunk(sock, 0, 3, 8, fds, 2); /* claims 3, carries 2 */
	ck_assert_int_eq(write(sock, "12345678", 8), 8);
}

static void forge_extra(int sock, const int *fds)
{
	forge_chunk(sock, 0, 3, 8, fds, 4); /* claims 3, carries 4 */
	ck_assert_int_eq(write(sock, "12345678", 8), 8);
}

static void forge_fewer_claimed(int sock, const int *fds)
{
	forge_chunk(sock, 0, 2, 8, fds, 2); /* honest, but 3 were expected */
	ck_assert_int_eq(write(sock, "12345678", 8), 8);
}

static void forge_short(int sock, const int *fds)
{
	forge_chunk(sock, 0, 3, 8, fds, 3);
	ck_assert_int_eq(write(sock, "1234", 4), 4); /* then EOF */
	shutdown(sock, SHUT_WR);
}

static void forge_fds_in_data(int sock, const int *fds)
{
	forge_chunk(sock, 0, 3, 8, fds, 3);
	ck_assert_int_eq(scm_send(sock, "12345678", 8, fds + 3, 1), 8);
}

static void forge_bad_magic(int sock, const int *fds)
{
	ck_assert_int_eq(scm_send(sock, "garbage garbage!", 16, fds, 3), 16);
}

static void forge_out_of_order(int sock, const int *fds)
{
	forge_chunk(sock, 253, 3, 8, fds, 3);
	ck_assert_int_eq(write(sock, "12345678", 8), 8);
}

static void forge_silence(int sock, const int *fds)
{
	(void)sock;
	(void)fds;
}

START_TEST(test_cpr_fds_recv_missing_fds)
{
	expect_refusal(forge_missing, 3, -EPROTO);
}
END_TEST

START_TEST(test_cpr_fds_recv_extra_fds)
{
	expect_refusal(forge_extra, 3, -EPROTO);
}
END_TEST

START_TEST(test_cpr_fds_recv_count_mismatch)
{
	expect_refusal(forge_fewer_claimed, 3, -EPROTO);
}
END_TEST

START_TEST(test_cpr_fds_recv_short_read)
{
	expect_refusal(forge_short, 3, -ECONNRESET);
}
END_TEST

START_TEST(test_cpr_fds_recv_fds_in_data)
{
	expect_refusal(forge_fds_in_data, 3, -EPROTO);
}
END_TEST

START_TEST(test_cpr_fds_recv_bad_header)
{
	expect_refusal(forge_bad_magic, 3, -EPROTO);
	expect_refusal(forge_out_of_order, 3, -EPROTO);
}
END_TEST

START_TEST(test_cpr_fds_recv_timeout)
{
	expect_refusal(forge_silence, 3, -ETIMEDOUT);
}
END_TEST

/* The second chunk goes wrong: the first chunk's fds are closed too. */
START_TEST(test_cpr_fds_recv_second_chunk_missing)
{
	int before, sv[2], *fds, *got;

	raise_nofile();
	before = test_count_fds();
	pair(SOCK_STREAM, sv);
	fds = memfds(300);
	got = calloc(300, sizeof(int));
	ck_assert_ptr_nonnull(got);
	forge_chunk(sv[0], 0, CPR_SCM_MAX_FDS, 0, fds, CPR_SCM_MAX_FDS);
	forge_chunk(sv[0], CPR_SCM_MAX_FDS, 47, 0, fds + CPR_SCM_MAX_FDS, 46);
	close_all(fds, 300);
	ck_assert_int_eq(cpr_fds_recv(sv[1], NULL, 0, got, 300, 200), -EPROTO);
	free(got);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_fds_send_invalid)
{
	int before = test_count_fds(), sv[2], bad[2];
	char big[1];

	pair(SOCK_STREAM, sv);
	bad[0] = sv[0];
	bad[1] = -1;
	ck_assert_int_eq(cpr_fds_send(-1, "x", 1, NULL, 0), -EBADF);
	ck_assert_int_eq(cpr_fds_send(sv[0], "x", 1, bad, 2), -EBADF);
	ck_assert_int_eq(cpr_fds_send(sv[0], NULL, 1, NULL, 0), -EINVAL);
	ck_assert_int_eq(cpr_fds_send(sv[0], "x", 1, NULL, 1), -EINVAL);
	ck_assert_int_eq(cpr_fds_send(sv[0], big, (size_t)UINT32_MAX + 1, NULL, 0), -EMSGSIZE);
	ck_assert_int_eq(cpr_fds_recv(-1, big, 1, bad, 0, 0), -EBADF);
	ck_assert_int_eq(cpr_fds_recv(sv[1], NULL, 1, bad, 0, 0), -EINVAL);
	ck_assert_int_eq(cpr_fds_recv(sv[1], big, 1, NULL, 1, 0), -EINVAL);
	ck_assert_int_eq(cpr_fds_recv(sv[1], big, 1, bad, 0, -2), -EINVAL);
	ck_assert_int_eq(cpr_fds_recv(sv[1], big, (size_t)UINT32_MAX + 1, bad, 0, 0), -EMSGSIZE);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

START_TEST(test_cpr_fds_send_epipe)
{
	int before = test_count_fds(), sv[2], *fds;

	pair(SOCK_STREAM, sv);
	fds = memfds(1);
	cpr_close(sv[1]);
	ck_assert_int_eq(cpr_fds_send(sv[0], "x", 1, fds, 1), -EPIPE); /* alive: no SIGPIPE */
	close_all(fds, 1);
	cpr_close(sv[0]);
	test_assert_no_fd_leak(before);
}
END_TEST

/* A stalled receiver: SO_SNDTIMEO expires as ETIMEDOUT, no endless wait. */
START_TEST(test_cpr_fds_send_timeout)
{
	int before = test_count_fds(), sv[2];
	struct timeval tv = { .tv_usec = 50000 };
	size_t len = 16u << 20;
	char *big = calloc(1, len);

	ck_assert_ptr_nonnull(big);
	pair(SOCK_STREAM, sv);
	ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	ck_assert_int_eq(cpr_fds_send(sv[0], big, len, NULL, 0), -ETIMEDOUT);
	free(big);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

/* A non-blocking sender waits for room instead of failing with EAGAIN. */
START_TEST(test_cpr_fds_send_nonblocking)
{
	int before = test_count_fds(), sv[2];
	size_t len = 4u << 20;
	char *big = calloc(1, len), *back = malloc(len);
	pid_t pid;
	int status;

	ck_assert_ptr_nonnull(big);
	ck_assert_ptr_nonnull(back);
	memset(big, 0x5a, len);
	pair(SOCK_STREAM, sv);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fl = fcntl(sv[0], F_GETFL);
		fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
		_exit(cpr_fds_send(sv[0], big, len, NULL, 0) == 0 ? 0 : 1);
	}
	ck_assert_int_eq(cpr_fds_recv(sv[1], back, len, NULL, 0, 10000), 0);
	ck_assert_mem_eq(big, back, len);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(big);
	free(back);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	test_assert_no_fd_leak(before);
}
END_TEST

static Suite *scm_suite(void)
{
	Suite *s = suite_create("scm");
	TCase *tc = tcase_create("scm");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_scm_recv_basic);
	tcase_add_test(tc, test_scm_recv_more_fds_than_max);
	tcase_add_test(tc, test_scm_recv_ctrunc);
	tcase_add_test(tc, test_scm_recv_msg_trunc);
	tcase_add_test(tc, test_scm_recv_pidfd_cmsg);
	tcase_add_test(tc, test_scm_recv_credentials);
	tcase_add_test(tc, test_scm_recv_eof);
	tcase_add_test(tc, test_scm_recv_eagain);
	tcase_add_test(tc, test_scm_send_invalid);
	tcase_add_test(tc, test_scm_wait_timeout);
	tcase_add_loop_test(tc, test_cpr_fds_recv_chunks, 0, (int)ARRAY_SIZE(chunk_counts));
	tcase_add_test(tc, test_cpr_fds_recv_missing_fds);
	tcase_add_test(tc, test_cpr_fds_recv_extra_fds);
	tcase_add_test(tc, test_cpr_fds_recv_count_mismatch);
	tcase_add_test(tc, test_cpr_fds_recv_short_read);
	tcase_add_test(tc, test_cpr_fds_recv_fds_in_data);
	tcase_add_test(tc, test_cpr_fds_recv_bad_header);
	tcase_add_test(tc, test_cpr_fds_recv_timeout);
	tcase_add_test(tc, test_cpr_fds_recv_second_chunk_missing);
	tcase_add_test(tc, test_scm_recv_fds_each);
	tcase_add_test(tc, test_cpr_fds_send_invalid);
	tcase_add_test(tc, test_cpr_fds_send_epipe);
	tcase_add_test(tc, test_cpr_fds_send_timeout);
	tcase_add_test(tc, test_cpr_fds_send_nonblocking);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(scm_suite());
}
