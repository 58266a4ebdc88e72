/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The receiving side of check-transfer: a fresh process that receives a
 * state and its fds, adopts every RAM block and fd, reports what it got on
 * stdout, and acknowledges -- or dies at a chosen stage, or refuses.
 *
 *   helper-transfer MODE SOCKFD|PATH
 *
 * MODE: good, listen (PATH: listen there, print "ready", accept), rlimit
 * (fd table nearly full), die-before-header, die-mid-stream, die-mid-fds,
 * die-before-ack (SIGKILL itself at that point).
 * Output lines: "fd ID INODE SUM", "rb IDSTR INODE USED SUM", "acked",
 * "refused CODE MESSAGE", "leak BEFORE AFTER".
 * Exit: 0 done, 1 refused, 2 usage or setup error, 3 fd leak.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "scm.h"
#include "test-util.h"
#include "transfer.h"

/* FNV-1a over @len bytes: the sender computes the same. */
static uint64_t sum(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static int report_fd(int fd, int32_t id)
{
	struct stat st;
	uint8_t *p;

	if (fstat(fd, &st) < 0)
		return -errno;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	printf("fd %d %lu %016llx\n", (int)id, (unsigned long)st.st_ino,
	       (unsigned long long)sum(p, (size_t)st.st_size));
	munmap(p, (size_t)st.st_size);
	return 0;
}

static void die_here(void)
{
	fflush(stdout);
	kill(getpid(), SIGKILL);
	_exit(2);
}

/* Read raw protocol bytes up to the chosen stage, then die. */
static int die_at(int sock, const char *stage)
{
	uint8_t pre[XFER_PREAMBLE_SIZE], h[SCM_CHUNK_SIZE], *stream;
	int fds[CPR_SCM_MAX_FDS];
	size_t n;

	if (strcmp(stage, "die-before-header") == 0)
		die_here();
	if (scm_read_exact(sock, pre, sizeof(pre), NULL, 0, &n, -1, "preamble", NULL) < 0)
		return 2;
	if (strcmp(stage, "die-mid-stream") == 0) {
		if (scm_read_exact(sock, pre, 16, NULL, 0, &n, -1, "stream", NULL) < 0)
			return 2;
		die_here();
	}
	stream = malloc(le64_load(pre + 16));
	if (!stream ||
	    scm_read_exact(sock, stream, le64_load(pre + 16), NULL, 0, &n, -1, "stream", NULL) < 0)
		return 2;
	if (scm_read_exact(sock, h, sizeof(h), fds, CPR_SCM_MAX_FDS, &n, -1, "chunk", NULL) < 0)
		return 2;
	die_here(); /* die-mid-fds: holding the first chunk's fds */
	return 2;
}

static int adopt_all(struct cpr_ctx *ctx, struct cpr_ramblock **rbs, int *fds)
{
	const struct cpr_state *st = cpr_ctx_incoming_state(ctx);
	size_t n_rbs = cpr_state_ramblock_count(st), n_fds = cpr_state_fd_count(st);
	struct stat s;

	for (size_t i = 0; i < n_fds; i++) {
		const struct cpr_state_fd *f = cpr_state_fd_get(st, i);

		if (f->id == -1)
			continue; /* a RAM block's memfd: adopted below */
		if (cpr_fd_claim(ctx, f->name, f->id, (enum cpr_fd_kind)f->kind, &fds[i], NULL) <
			    0 ||
		    report_fd(fds[i], f->id) < 0)
			return -1;
	}
	for (size_t i = 0; i < n_rbs; i++) {
		const struct cpr_state_ramblock *r = cpr_state_ramblock_get(st, i);
		unsigned fl =
			CPR_RAMBLOCK_TAKE_RECORDED |
			(r->must_flags & CPR_STATE_RB_RESIZEABLE ? CPR_RAMBLOCK_RESIZEABLE : 0);
		int e = cpr_ramblock_new(ctx, r->idstr, r->used_length, r->max_length, r->align, fl,
					 &rbs[i], NULL);

		if (e < 0 || cpr_ramblock_adopted(rbs[i]) != 1 ||
		    fstat(cpr_ramblock_fd(rbs[i]), &s) < 0) {
			printf("adoption of %s failed: %d\n", r->idstr, e);
			return -1;
		}
		printf("rb %s %lu %llu %016llx\n", r->idstr, (unsigned long)s.st_ino,
		       (unsigned long long)cpr_ramblock_used_length(rbs[i]),
		       (unsigned long long)sum(cpr_ramblock_host(rbs[i]),
					       cpr_ramblock_used_length(rbs[i])));
	}
	return 0;
}

/* Leave room for only a few fds above the ones open now. */
static void fill_fd_table(struct rlimit *saved)
{
	struct rlimit low;
	int top = dup(0);

	getrlimit(RLIMIT_NOFILE, saved);
	low = *saved;
	low.rlim_cur = (rlim_t)top + 6;
	close(top);
	setrlimit(RLIMIT_NOFILE, &low);
}

static int receive(int sock, const char *mode)
{
	struct cpr_error err = { 0 };
	struct cpr_ramblock *rbs[CPR_RAMBLOCKS_MAX] = { 0 };
	struct cpr_ctx *ctx = NULL;
	struct rlimit saved;
	int *fds, before = test_count_fds(), r, ret = 0;

	fds = malloc(CPR_FDS_MAX * sizeof(int));
	if (!fds || cpr_ctx_new(&ctx) < 0)
		return 2;
	for (size_t i = 0; i < CPR_FDS_MAX; i++)
		fds[i] = -EBADF;
	if (strcmp(mode, "rlimit") == 0)
		fill_fd_table(&saved);
	r = cpr_transfer_recv(ctx, sock, &err);
	if (strcmp(mode, "rlimit") == 0)
		setrlimit(RLIMIT_NOFILE, &saved);
	if (r < 0) {
		printf("refused %d %s\n", r, err.message);
		ret = 1;
	} else if (adopt_all(ctx, rbs, fds) < 0) {
		printf("adoption failed\n");
		ret = 2;
	} else {
		if (strcmp(mode, "die-before-ack") == 0)
			die_here();
		r = cpr_transfer_ack(ctx, sock, &err);
		printf(r == 0 ? "acked\n" : "ack failed %d: %s\n", r, err.message);
		ret = r == 0 ? 0 : 2;
	}
	for (size_t i = 0; i < CPR_RAMBLOCKS_MAX; i++)
		cpr_ramblock_free(rbs[i]);
	cpr_ctx_free(ctx);
	for (size_t i = 0; i < CPR_FDS_MAX; i++)
		cpr_close(fds[i]);
	free(fds);
	if (test_count_fds() != before) {
		printf("leak %d %d\n", before, test_count_fds());
		ret = 3;
	}
	return ret;
}

static int listen_and_receive(const char *path)
{
	int lfd, sock, r;

	if (cpr_transfer_listen(path, &lfd) < 0)
		return 2;
	printf("ready\n");
	fflush(stdout);
	r = cpr_transfer_accept(lfd, 10000, &sock);
	close(lfd);
	unlink(path);
	if (r < 0)
		return 2;
	r = receive(sock, "good");
	close(sock);
	return r;
}

int main(int argc, char **argv)
{
	int sock, r;

	if (argc != 3)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "listen") == 0)
		return listen_and_receive(argv[2]);
	sock = atoi(argv[2]);
	(void)fcntl(sock, F_SETFD, FD_CLOEXEC);
	if (strncmp(argv[1], "die-", 4) == 0 && strcmp(argv[1], "die-before-ack") != 0)
		return die_at(sock, argv[1]);
	r = receive(sock, argv[1]);
	close(sock);
	return r;
}
