/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fixtures of check-transfer: see transfer-fixture.h. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
#include "transfer-fixture.h"
#include "transfer.h"

static uint64_t sum(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t fd_sum(int fd)
{
	struct stat st;
	uint8_t *p;
	uint64_t h;

	ck_assert_int_eq(fstat(fd, &st), 0);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	h = sum(p, (size_t)st.st_size);
	munmap(p, (size_t)st.st_size);
	return h;
}

unsigned long fd_ino(int fd)
{
	struct stat st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	return (unsigned long)st.st_ino;
}

void raise_nofile(void)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 4096 && rl.rlim_max >= 4096)
		rl.rlim_cur = 4096;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_msg(rl.rlim_cur >= 2200, "RLIMIT_NOFILE hard limit below 2200");
}

static void fill(struct cpr_ramblock *rb, uint8_t seed)
{
	uint8_t *p = cpr_ramblock_host(rb);

	for (uint64_t i = 0; i < cpr_ramblock_used_length(rb); i += 512)
		p[i] = (uint8_t)(seed + i / 512);
}

/* A context with three RAM blocks (one resizeable, one 2 MiB aligned) and
 * @n memfds saved in the registry as ("dev", i). */
struct sender *sender_new(size_t n)
{
	struct sender *s = calloc(1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(cpr_ctx_new(&s->ctx), 0);
	ck_assert_int_eq(cpr_ramblock_new(s->ctx, "pc.ram", 4 * MIB, 0, 0, 0, &s->rb[0], NULL), 0);
	ck_assert_int_eq(cpr_ramblock_new(s->ctx, "vga.vram", 1 * MIB, 4 * MIB, 0,
					  CPR_RAMBLOCK_RESIZEABLE, &s->rb[1], NULL),
			 0);
	ck_assert_int_eq(
		cpr_ramblock_new(s->ctx, "pc.bios", 2 * MIB, 0, 2 * MIB, 0, &s->rb[2], NULL), 0);
	for (size_t i = 0; i < 3; i++)
		fill(s->rb[i], (uint8_t)(17 * i + 1));
	s->n_fds = n;
	s->fds = calloc(n ? n : 1, sizeof(int));
	ck_assert_ptr_nonnull(s->fds);
	for (size_t i = 0; i < n; i++) {
		char text[32];
		int len = snprintf(text, sizeof(text), "device %zu", i);

		s->fds[i] = test_memfd("dev", 4096);
		ck_assert_int_ge(s->fds[i], 0);
		ck_assert_int_eq(pwrite(s->fds[i], text, (size_t)len, 0), len);
		ck_assert_int_eq(
			cpr_fd_save(s->ctx, "dev", (int32_t)i, s->fds[i], CPR_FD_MEMFD, NULL), 0);
	}
	return s;
}

void sender_free(struct sender *s)
{
	cpr_ctx_free(s->ctx);
	for (size_t i = 0; i < s->n_fds; i++)
		cpr_close(s->fds[i]);
	free(s->fds);
	free(s);
}

/* The lines a receiver that adopted everything prints. */
char *sender_expect(const struct sender *s)
{
	size_t cap = 64 * (s->n_fds + 8), off = 0;
	char *e = malloc(cap);

	ck_assert_ptr_nonnull(e);
	for (size_t i = 0; i < s->n_fds; i++)
		off += (size_t)snprintf(e + off, cap - off, "fd %zu %lu %016llx\n", i,
					fd_ino(s->fds[i]), (unsigned long long)fd_sum(s->fds[i]));
	for (size_t i = 0; i < 3; i++)
		off += (size_t)snprintf(
			e + off, cap - off, "rb %s %lu %llu %016llx\n",
			cpr_ramblock_idstr(s->rb[i]), fd_ino(cpr_ramblock_fd(s->rb[i])),
			(unsigned long long)cpr_ramblock_used_length(s->rb[i]),
			(unsigned long long)sum(cpr_ramblock_host(s->rb[i]),
						cpr_ramblock_used_length(s->rb[i])));
	snprintf(e + off, cap - off, "acked\n");
	return e;
}

/* ---------------------------------------------------------------- the receiver process */

struct helper helper_spawn(const char *mode, const char *path)
{
	struct helper h = { .sock = -EBADF };
	int sv[2] = { -1, -1 }, pipefd[2];
	char arg[16];

	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	if (!path)
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	h.pid = fork();
	ck_assert_int_ge(h.pid, 0);
	if (h.pid == 0) {
		const char *bin = test_build_path("tests/helper-transfer");

		if (dup2(pipefd[1], 1) < 0)
			_exit(2);
		if (!path) {
			fcntl(sv[1], F_SETFD, 0);
			snprintf(arg, sizeof(arg), "%d", sv[1]);
		}
		execl(bin, bin, mode, path ? path : arg, (char *)NULL);
		_exit(2);
	}
	cpr_close(pipefd[1]);
	cpr_close(sv[1]);
	h.sock = sv[0];
	h.out = pipefd[0];
	return h;
}

/* Everything the helper printed, and its wait status. */
char *helper_finish(struct helper *h, int *ret_status)
{
	size_t cap = 1 << 20, off = 0;
	char *buf = malloc(cap);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	while ((n = read(h->out, buf + off, cap - 1 - off)) > 0)
		off += (size_t)n;
	buf[off] = 0;
	ck_assert_int_eq(waitpid(h->pid, ret_status, 0), h->pid);
	h->sock = cpr_close(h->sock);
	h->out = cpr_close(h->out);
	return buf;
}

/* A complete transfer to a fresh receiver: same inodes, same bytes, acked. */
void transfer_ok(struct sender *s)
{
	struct cpr_error err = { 0 };
	struct helper h = helper_spawn("good", NULL);
	char *expect = sender_expect(s), *got;
	int status;

	ck_assert_msg(cpr_transfer_send(s->ctx, h.sock, &err) == 0, "send: %s", err.message);
	ck_assert_msg(cpr_transfer_wait_ack(s->ctx, h.sock, 20000, &err) == 0, "ack: %s",
		      err.message);
	got = helper_finish(&h, &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "receiver: %s", got);
	ck_assert_str_eq(got, expect);
	free(got);
	free(expect);
}

/* The sender still holds every fd and every byte. */
void sender_assert_intact(const struct sender *s, const char *expect)
{
	char *now = sender_expect(s);

	for (size_t i = 0; i < s->n_fds; i++)
		ck_assert_int_ge(fcntl(s->fds[i], F_GETFD), 0);
	ck_assert_str_eq(now, expect);
	free(now);
}

/* ---------------------------------------------------------------- forged senders */

/* A real stream from a real context with @n fds (slots 0..n-1). */
struct forged forge_stream(size_t n)
{
	struct forged f = { 0 };
	struct sender *s = sender_new(n);
	struct cpr_state *st;
	struct cpr_state_info info;

	cpr_ramblock_free(s->rb[0]);
	cpr_ramblock_free(s->rb[1]);
	cpr_ramblock_free(s->rb[2]);
	ck_assert_int_eq(cpr_ctx_build_state(s->ctx, &st), 0);
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &f.stream, &f.len, NULL), 0);
	ck_assert_int_eq(cpr_state_get_info(st, &info), 0);
	memcpy(f.id, info.stream_id, 16);
	cpr_state_free(st);
	sender_free(s);
	return f;
}

/* Preamble (@claim_fds), stream, and @attach memfds in one chunk claiming
 * @claim_chunk; then receive in this process and read the NAK. */
int forge_and_recv(const struct forged *f, uint32_t claim_fds, size_t attach, uint16_t claim_chunk,
		   const uint8_t *preamble, size_t stream_len, char *ret_nak, size_t nak_len)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	uint8_t pre[XFER_PREAMBLE_SIZE], h[SCM_CHUNK_SIZE], reply[XFER_REPLY_SIZE + XFER_MSG_MAX];
	int sv[2], fds[8], r;
	size_t n;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	xfer_preamble_store(pre, f->len, claim_fds, f->id);
	ck_assert_int_eq(write(sv[0], preamble ? preamble : pre, sizeof(pre)),
			 (ssize_t)sizeof(pre));
	ck_assert_int_eq(write(sv[0], f->stream, stream_len), (ssize_t)stream_len);
	for (size_t i = 0; i < attach; i++)
		fds[i] = test_memfd("dev", 4096);
	le32_store(h, SCM_CHUNK_MAGIC);
	le32_store(h + 4, 0);
	le16_store(h + 8, claim_chunk);
	le16_store(h + 10, 0);
	le32_store(h + 12, 0);
	if (stream_len == f->len)
		ck_assert_int_eq(scm_send(sv[0], h, sizeof(h), fds, attach), (ssize_t)sizeof(h));
	for (size_t i = 0; i < attach; i++)
		cpr_close(fds[i]);
	shutdown(sv[0], SHUT_WR); /* a short sender ends here */
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	r = cpr_transfer_recv(ctx, sv[1], &err);
	ck_assert_int_eq(cpr_ctx_incoming(ctx), 0);
	cpr_ctx_free(ctx);
	/* The NAK carries the same errno and message. */
	ck_assert_int_eq(
		scm_read_exact(sv[0], reply, XFER_REPLY_SIZE, NULL, 0, &n, 1000, "nak", NULL), 0);
	ck_assert_int_eq(-(int)le32_load(reply + 8), r);
	n = le16_load(reply + 12);
	ck_assert_uint_gt(n, 0);
	ck_assert_int_eq(read(sv[0], ret_nak, nak_len - 1), (ssize_t)n);
	ret_nak[n] = 0;
	ck_assert_msg(strncmp(err.message, ret_nak, n) == 0, "%s / %s", err.message, ret_nak);
	cpr_close(sv[0]);
	cpr_close(sv[1]);
	return r;
}
