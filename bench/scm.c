/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/scm: fd throughput of cpr_fds_send/recv and of a whole cpr-transfer
 * against raw sendmsg()/recvmsg() of 253-fd batches, in the same run, to a
 * receiver in another process.
 *
 *   raw_fds_per_s       sendmsg of CPR_SCM_MAX_FDS fds + 1 byte, recvmsg
 *   raw_fstat_fds_per_s the same plus one fstat() per received fd: the
 *                       floor for a receiver that checks each fd's kind
 *   fds_per_s           cpr_fds_send / cpr_fds_recv (chunk headers, checks)
 *   transfer_fds_per_s  cpr_transfer_send .. wait_ack: encode, send, parse,
 *                       check every fd's kind, adopt, ack
 *
 * A round is timed from the first byte sent to the receiver's "all
 * received" reply; the receiver closes its fds after replying.  Medians of
 * --rounds rounds (15), modes interleaved.
 *
 * Usage: scm [--json] [--fds N] [--rounds N]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cpr/cpr.h>

#define ROUNDS_MAX 64

enum mode { RAW, RAW_FSTAT, FDS, TRANSFER, N_MODES };
static const char *const mode_names[] = { "raw", "raw+fstat", "fds", "transfer" };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "scm: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(111);
}

/* ---------------------------------------------------------------- raw SCM_RIGHTS */

static void raw_send(int sock, const int *fds, size_t n)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * CPR_SCM_MAX_FDS)];
	} control;

	for (size_t off = 0; off < n; off += CPR_SCM_MAX_FDS) {
		size_t k = n - off < CPR_SCM_MAX_FDS ? n - off : CPR_SCM_MAX_FDS;
		struct iovec iov = { .iov_base = (void *)"x", .iov_len = 1 };
		struct msghdr msg = { .msg_iov = &iov,
				      .msg_iovlen = 1,
				      .msg_control = control.buf,
				      .msg_controllen = CMSG_SPACE(sizeof(int) * k) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * k);
		memcpy(CMSG_DATA(c), fds + off, sizeof(int) * k);
		if (sendmsg(sock, &msg, MSG_NOSIGNAL) != 1)
			die("sendmsg", errno);
	}
}

static void raw_recv(int sock, int *fds, size_t n)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * CPR_SCM_MAX_FDS)];
	} control;
	size_t got = 0;

	while (got < n) {
		char b;
		struct iovec iov = { .iov_base = &b, .iov_len = 1 };
		struct msghdr msg = { .msg_iov = &iov,
				      .msg_iovlen = 1,
				      .msg_control = control.buf,
				      .msg_controllen = sizeof(control.buf) };
		struct cmsghdr *c;

		if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
			die("recvmsg", errno);
		c = CMSG_FIRSTHDR(&msg);
		if (!c || c->cmsg_type != SCM_RIGHTS || (msg.msg_flags & MSG_CTRUNC))
			die("recvmsg", EPROTO);
		memcpy(fds + got, CMSG_DATA(c), c->cmsg_len - CMSG_LEN(0));
		got += (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	}
}

/* ---------------------------------------------------------------- the receiver */

static void receive_transfer(int sock)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	int r;

	if (cpr_ctx_new(&ctx) < 0)
		die("cpr_ctx_new", ENOMEM);
	r = cpr_transfer_recv(ctx, sock, &err);
	if (r < 0) {
		fprintf(stderr, "scm: receiver: %s\n", err.message);
		exit(1);
	}
	r = cpr_transfer_ack(ctx, sock, &err);
	if (r < 0)
		die("cpr_transfer_ack", r);
	cpr_ctx_free(ctx); /* closes every fd nobody claimed */
}

/* Serve rounds: the mode byte arrives on @ctl, the fds on @sock. */
static void receiver(int sock, int ctl, size_t n)
{
	int *fds = malloc(n * sizeof(int));
	char m;

	if (!fds)
		die("malloc", ENOMEM);
	while (read(ctl, &m, 1) == 1) {
		if (m == TRANSFER) {
			receive_transfer(sock);
			continue;
		}
		if (m == RAW || m == RAW_FSTAT)
			raw_recv(sock, fds, n);
		else if (cpr_fds_recv(sock, NULL, 0, fds, n, 10000) < 0)
			die("cpr_fds_recv", EPROTO);
		for (size_t i = 0; m == RAW_FSTAT && i < n; i++) {
			struct stat st;

			if (fstat(fds[i], &st) < 0)
				die("fstat", errno);
		}
		if (write(sock, "k", 1) != 1)
			die("write", errno);
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
	}
	exit(0);
}

/* ---------------------------------------------------------------- the sender */

struct bench {
	int sock, ctl;
	int *fds;
	size_t n;
	struct cpr_ctx *ctx; /* the n memfds saved, for TRANSFER */
};

static double round_ns(struct bench *b, enum mode m)
{
	struct cpr_error err = { 0 };
	char c = (char)m;
	uint64_t t0;
	int r;

	if (write(b->ctl, &c, 1) != 1)
		die("write", errno);
	t0 = now_ns();
	if (m == TRANSFER) {
		r = cpr_transfer_send(b->ctx, b->sock, &err);
		if (r == 0)
			r = cpr_transfer_wait_ack(b->ctx, b->sock, 60000, &err);
		if (r < 0) {
			fprintf(stderr, "scm: transfer: %s\n", err.message);
			exit(1);
		}
		return (double)(now_ns() - t0);
	}
	if (m == RAW || m == RAW_FSTAT)
		raw_send(b->sock, b->fds, b->n);
	else if ((r = cpr_fds_send(b->sock, NULL, 0, b->fds, b->n)) < 0)
		die("cpr_fds_send", r);
	if (read(b->sock, &c, 1) != 1)
		die("read", errno);
	return (double)(now_ns() - t0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void setup(struct bench *b, size_t n)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < n + 64)
		die("RLIMIT_NOFILE too low for --fds", EMFILE);
	b->n = n;
	b->fds = malloc(n * sizeof(int));
	if (!b->fds || cpr_ctx_new(&b->ctx) < 0)
		die("setup", ENOMEM);
	for (size_t i = 0; i < n; i++) {
		int r;

		b->fds[i] = memfd_create("bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (b->fds[i] < 0)
			die("memfd_create", errno);
		r = cpr_fd_save(b->ctx, "bench", (int32_t)i, b->fds[i], CPR_FD_MEMFD, NULL);
		if (r < 0)
			die("cpr_fd_save", r);
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: scm [--json] [--fds N] [--rounds N]\n");
	return 100;
}

int main(int argc, char **argv)
{
	double t[N_MODES][ROUNDS_MAX], med[N_MODES], rate[N_MODES];
	size_t n = 10000;
	int rounds = 15, sv[2], ctl[2], status;
	struct bench b = { 0 };
	bool json = false;
	pid_t pid;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--fds") == 0 && i + 1 < argc)
			n = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else
			return usage();
	}
	if (n == 0 || n > CPR_FDS_MAX || rounds < 1 || rounds > ROUNDS_MAX)
		return usage();
	setup(&b, n);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(ctl, O_CLOEXEC) < 0)
		die("socketpair", errno);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		for (size_t i = 0; i < n; i++)
			close(b.fds[i]);
		close(sv[0]);
		close(ctl[1]);
		receiver(sv[1], ctl[0], n);
	}
	close(sv[1]);
	close(ctl[0]);
	b.sock = sv[0];
	b.ctl = ctl[1];
	for (int m = 0; m < N_MODES; m++) /* warm up both processes */
		(void)round_ns(&b, (enum mode)m);
	for (int i = 0; i < rounds; i++)
		for (int m = 0; m < N_MODES; m++)
			t[m][i] = round_ns(&b, (enum mode)m);
	close(b.ctl);
	waitpid(pid, &status, 0);
	for (int m = 0; m < N_MODES; m++) {
		qsort(t[m], (size_t)rounds, sizeof(double), cmp_double);
		med[m] = t[m][rounds / 2];
		rate[m] = (double)n / (med[m] / 1e9);
	}
	if (json) {
		printf("{\"bench\": \"scm\", \"fds\": %zu, \"rounds\": %d, \"raw_fds_per_s\": "
		       "%.0f, "
		       "\"raw_fstat_fds_per_s\": %.0f, \"fds_per_s\": %.0f, "
		       "\"transfer_fds_per_s\": %.0f, \"ratio\": %.3f, \"transfer_ratio\": %.3f, "
		       "\"raw_fstat_ratio\": %.3f, \"target_ratio\": 0.7}\n",
		       n, rounds, rate[RAW], rate[RAW_FSTAT], rate[FDS], rate[TRANSFER],
		       rate[FDS] / rate[RAW], rate[TRANSFER] / rate[RAW],
		       rate[RAW_FSTAT] / rate[RAW]);
	} else {
		for (int m = 0; m < N_MODES; m++)
			printf("%-9s %6zu fds  median %8.3f ms  %11.0f fds/s  %.3fx raw\n",
			       mode_names[m], n, med[m] / 1e6, rate[m], rate[m] / rate[RAW]);
		printf("target: fds and transfer >= 0.7x raw; a receiver that fstat()s each fd,\n"
		       "as the kind check must, can reach %.3fx raw here\n",
		       rate[RAW_FSTAT] / rate[RAW]);
	}
	cpr_ctx_free(b.ctx);
	for (size_t i = 0; i < n; i++)
		close(b.fds[i]);
	free(b.fds);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
