/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpr_handoff_export/import: the state and fds of a hand-off carried by the
 * caller's own channel (here: a pipe for the stream and SCM_RIGHTS for the
 * fds, into a forked process), adopted there without a copy; every refusal
 * leaves the importer's fds with the caller and its context untouched.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "test-util.h"

#define RAM_SIZE (4u << 20)
#define PATTERN 0x5a

struct old_vmm {
	struct cpr_ctx *ctx;
	struct cpr_ramblock *rb;
	int ev;
};

static void old_vmm_new(struct old_vmm *o)
{
	ck_assert_int_eq(cpr_ctx_new(&o->ctx), 0);
	ck_assert_int_eq(
		cpr_ramblock_new(o->ctx, "pc.ram", RAM_SIZE, RAM_SIZE, 4096, 0, &o->rb, NULL), 0);
	memset(cpr_ramblock_host(o->rb), PATTERN, RAM_SIZE);
	o->ev = eventfd(7, EFD_CLOEXEC);
	ck_assert_int_ge(o->ev, 0);
	ck_assert_int_eq(cpr_fd_save(o->ctx, "irq", 3, o->ev, CPR_FD_EVENTFD, NULL), 0);
}

static void old_vmm_free(struct old_vmm *o)
{
	cpr_ramblock_free(o->rb);
	cpr_ctx_free(o->ctx);
	close(o->ev);
}

static bool all_open(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fcntl(fds[i], F_GETFD) < 0)
			return false;
	return true;
}

/* The new VMM: stream from @pipe_fd, fds from @sock; adopt; check. */
static int new_vmm(int pipe_fd, int sock, size_t len, size_t n, ino_t ram_ino)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx = NULL;
	struct cpr_ramblock *rb = NULL;
	uint8_t *buf = malloc(len);
	int fds[8], ev = -1, ok = 1;
	struct stat st;
	uint64_t v = 0;

	if (!buf || n > 8 || read(pipe_fd, buf, len) != (ssize_t)len ||
	    cpr_fds_recv(sock, NULL, 0, fds, n, 5000) < 0 || cpr_ctx_new(&ctx) < 0)
		return 10;
	if (cpr_handoff_import(ctx, buf, len, fds, n, &err) < 0)
		return 11;
	if (cpr_ctx_incoming(ctx) != 1)
		return 12;
	/* The same memfd, the same bytes: nothing was copied. */
	if (cpr_ramblock_new(ctx, "pc.ram", RAM_SIZE, RAM_SIZE, 4096, 0, &rb, NULL) < 0 ||
	    !cpr_ramblock_adopted(rb))
		return 13;
	if (fstat(cpr_ramblock_fd(rb), &st) < 0 || st.st_ino != ram_ino)
		return 14;
	for (size_t i = 0; i < RAM_SIZE; i += 4096)
		ok &= ((uint8_t *)cpr_ramblock_host(rb))[i] == PATTERN;
	if (!ok)
		return 15;
	if (cpr_fd_claim(ctx, "irq", 3, CPR_FD_EVENTFD, &ev, NULL) < 0 ||
	    read(ev, &v, sizeof(v)) != sizeof(v) || v != 7)
		return 16;
	close(ev);
	cpr_ramblock_free(rb);
	cpr_ctx_free(ctx);
	free(buf);
	return 0;
}

START_TEST(test_cpr_handoff_to_another_process)
{
	int nfds = test_count_fds();
	struct cpr_error err = { 0 };
	struct old_vmm o;
	void *stream = NULL;
	size_t len = 0, n = 0;
	int *fds = NULL, p[2], sv[2], status;
	struct stat st;
	pid_t pid;

	old_vmm_new(&o);
	ck_assert_int_eq(fstat(cpr_ramblock_fd(o.rb), &st), 0);
	ck_assert_int_eq(cpr_handoff_export(o.ctx, &stream, &len, &fds, &n, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_gt(len, 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[1]);
		close(sv[0]);
		_exit(new_vmm(p[0], sv[1], len, n, st.st_ino));
	}
	close(p[0]);
	close(sv[1]);
	ck_assert_int_eq(write(p[1], stream, len), (ssize_t)len);
	ck_assert_int_eq(cpr_fds_send(sv[0], NULL, 0, fds, n), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "new VMM failed: %d",
		      WEXITSTATUS(status));
	/* Exported fds are borrowed: the old context still holds them. */
	ck_assert(all_open(fds, n));
	close(p[1]);
	close(sv[0]);
	free(stream);
	free(fds);
	old_vmm_free(&o);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Export, then duplicate the fds as a broker would hand them back. */
static void exported(struct old_vmm *o, void **stream, size_t *len, int *dup_fds, size_t *n)
{
	int *fds = NULL;

	old_vmm_new(o);
	ck_assert_int_eq(cpr_handoff_export(o->ctx, stream, len, &fds, n, NULL), 0);
	for (size_t i = 0; i < *n; i++) {
		dup_fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
		ck_assert_int_ge(dup_fds[i], 0);
	}
	free(fds);
}

/* Refused: @r and a message; nothing adopted; the caller keeps its fds. */
static void refused(struct cpr_ctx *ctx, const void *stream, size_t len, const int *fds, size_t n,
		    int r, const char *needle)
{
	struct cpr_error err = { 0 };

	ck_assert_int_eq(cpr_handoff_import(ctx, stream, len, fds, n, &err), r);
	ck_assert_msg(strstr(err.message, needle), "message \"%s\" lacks \"%s\"", err.message,
		      needle);
	ck_assert_int_eq(cpr_ctx_incoming(ctx), 0);
	ck_assert(all_open(fds, n));
}

START_TEST(test_cpr_handoff_import_refusals)
{
	int nfds = test_count_fds();
	struct old_vmm o;
	struct cpr_ctx *ctx;
	void *stream = NULL;
	size_t len = 0, n = 0;
	int fds[4], swapped[4], bogus;
	uint8_t *bad;

	exported(&o, &stream, &len, fds, &n);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	/* One fd too few, one too many. */
	refused(ctx, stream, len, fds, n - 1, -EPROTO,
		"the stream has 2 FD records, 1 fds came with it"); /* as every carrier says */
	bogus = eventfd(0, EFD_CLOEXEC);
	fds[n] = bogus;
	refused(ctx, stream, len, fds, n + 1, -EPROTO, "FD records");
	/* The right count, the wrong kinds: the memfd where the eventfd goes. */
	swapped[0] = fds[1];
	swapped[1] = fds[0];
	refused(ctx, stream, len, swapped, n, -EMEDIUMTYPE, "\"irq\" id 3 is not a");
	/* A stream that is not one, and one with a flipped bit. */
	refused(ctx, "not a stream", 12, fds, n, -EBADMSG, "shorter than the 80-byte header");
	bad = malloc(len);
	memcpy(bad, stream, len);
	bad[len / 2] ^= 0x10;
	refused(ctx, bad, len, fds, n, -EBADMSG, "CRC32C mismatch");
	free(bad);
	/* Arguments. */
	ck_assert_int_eq(cpr_handoff_import(NULL, stream, len, fds, n, NULL), -EINVAL);
	ck_assert_int_eq(cpr_handoff_import(ctx, NULL, len, fds, n, NULL), -EINVAL);
	ck_assert_int_eq(cpr_handoff_import(ctx, stream, len, NULL, n, NULL), -EINVAL);
	ck_assert_int_eq(cpr_handoff_import(ctx, stream, len, fds, CPR_FDS_MAX + 1, NULL), -E2BIG);
	/* After all that, the real thing still works, once. */
	ck_assert_int_eq(cpr_handoff_import(ctx, stream, len, fds, n, NULL), 0);
	ck_assert_int_eq(cpr_ctx_incoming(ctx), 1);
	{
		struct cpr_error err = { 0 };

		ck_assert_int_eq(cpr_handoff_import(ctx, stream, len, &bogus, 0, &err), -EALREADY);
		ck_assert_ptr_nonnull(strstr(err.message, "already holds incoming state"));
	}
	close(bogus);
	cpr_ctx_free(ctx); /* closes the adopted fds */
	free(stream);
	old_vmm_free(&o);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A stream whose memfd records "a" and "b" name slots @sa and @sb. */
static void *slot_stream(uint32_t sa, uint32_t sb, size_t *ret_len)
{
	struct cpr_state_fd f = { .kind = CPR_FD_MEMFD };
	struct cpr_state *st;
	void *buf = NULL;

	ck_assert_int_eq(cpr_state_new(&st), 0);
	ck_assert_int_eq(cpr_state_set_page_shift(st, (uint32_t)__builtin_ctz(getpagesize())), 0);
	strcpy(f.name, "a");
	f.slot = sa;
	ck_assert_int_ge(cpr_state_add_fd(st, &f), 0);
	strcpy(f.name, "b");
	f.slot = sb;
	ck_assert_int_ge(cpr_state_add_fd(st, &f), 0);
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &buf, ret_len, NULL), 0);
	cpr_state_free(st);
	return buf;
}

static ino_t ino_of(int fd)
{
	struct stat st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	return st.st_ino;
}

/* fds[] is in slot order, whatever order the records come in. */
START_TEST(test_cpr_handoff_import_slot_order)
{
	int nfds = test_count_fds();
	struct cpr_ctx *ctx;
	size_t len;
	void *stream = slot_stream(1, 0, &len);
	int fds[2] = { test_memfd("for-b", 4096), test_memfd("for-a", 4096) };
	ino_t ino_a = ino_of(fds[1]), ino_b = ino_of(fds[0]);
	int a, b;

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_handoff_import(ctx, stream, len, fds, 2, NULL), 0);
	ck_assert_int_eq(cpr_fd_claim(ctx, "a", 0, CPR_FD_MEMFD, &a, NULL), 0);
	ck_assert_int_eq(cpr_fd_claim(ctx, "b", 0, CPR_FD_MEMFD, &b, NULL), 0);
	ck_assert_uint_eq(ino_of(a), ino_a);
	ck_assert_uint_eq(ino_of(b), ino_b);
	close(a);
	close(b);
	cpr_ctx_free(ctx);
	free(stream);
	/* A slot beyond the fds: refused, and the fds are still ours. */
	stream = slot_stream(0, 5, &len);
	fds[0] = test_memfd("x", 4096);
	fds[1] = test_memfd("y", 4096);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	refused(ctx, stream, len, fds, 2, -EPROTO, "not a slot below 2");
	close(fds[0]);
	close(fds[1]);
	cpr_ctx_free(ctx);
	free(stream);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_handoff_export_refusals)
{
	int nfds = test_count_fds();
	struct cpr_error err = { 0 };
	struct old_vmm o;
	void *stream = NULL;
	size_t len = 0, n = 0;
	int *fds = NULL;
	uint32_t id;

	old_vmm_new(&o);
	ck_assert_int_eq(
		cpr_blocker_add(o.ctx, CPR_MODE_TRANSFER, "a device that cannot move", &id, NULL),
		0);
	ck_assert_int_eq(cpr_handoff_export(o.ctx, &stream, &len, &fds, &n, &err), -EBUSY);
	ck_assert_ptr_nonnull(strstr(err.message, "a device that cannot move"));
	ck_assert_ptr_null(stream);
	ck_assert_ptr_null(fds);
	/* An exec-only blocker does not stop a hand-off. */
	ck_assert_int_eq(cpr_blocker_remove(o.ctx, id), 0);
	ck_assert_int_eq(cpr_blocker_add(o.ctx, CPR_MODE_EXEC, "exec only", NULL, NULL), 0);
	ck_assert_int_eq(cpr_handoff_export(o.ctx, &stream, &len, &fds, &n, NULL), 0);
	free(stream);
	free(fds);
	err = (struct cpr_error){ 0 };
	ck_assert_int_eq(cpr_handoff_export(NULL, &stream, &len, &fds, &n, &err), -EINVAL);
	ck_assert_int_eq(err.code, -EINVAL);
	ck_assert_str_ne(err.message, "");
	ck_assert_int_eq(cpr_handoff_export(o.ctx, NULL, &len, &fds, &n, NULL), -EINVAL);
	ck_assert_int_eq(cpr_handoff_export(o.ctx, &stream, &len, NULL, &n, NULL), -EINVAL);
	old_vmm_free(&o);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *handoff_suite(void)
{
	Suite *s = suite_create("handoff");
	TCase *tc = tcase_create("handoff");

	tcase_add_test(tc, test_cpr_handoff_to_another_process);
	tcase_add_test(tc, test_cpr_handoff_import_refusals);
	tcase_add_test(tc, test_cpr_handoff_import_slot_order);
	tcase_add_test(tc, test_cpr_handoff_export_refusals);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(handoff_suite());
}
