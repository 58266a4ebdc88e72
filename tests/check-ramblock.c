/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RAM blocks: fresh memfd blocks, align, resize, seals, adoption. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "ctx.h"
#include "internal.h"
#include "test-util.h"

#define MiB (1ull << 20)

/* Whether @p is inaccessible: the kernel's copy from it fails with EFAULT. */
static bool touch_faults(const uint8_t *p)
{
	int fds[2];
	bool fault;

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	fault = write(fds[1], p, 1) < 0 && errno == EFAULT;
	close(fds[0]);
	close(fds[1]);
	return fault;
}

START_TEST(test_cpr_ramblock_new_fresh)
{
	struct cpr_error err;
	struct cpr_ramblock *rb;
	struct cpr_ctx *ctx;
	struct stat st;
	int nfds = test_count_fds(), seals;
	uint8_t *p;

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(
		cpr_ramblock_new(ctx, "pc.ram", 4 * MiB, 0, 0, CPR_RAMBLOCK_POPULATE, &rb, NULL),
		0);
	ck_assert_str_eq(cpr_ramblock_idstr(rb), "pc.ram");
	ck_assert_int_eq(cpr_ramblock_adopted(rb), 0);
	ck_assert_uint_eq(cpr_ramblock_used_length(rb), 4 * MiB);
	ck_assert_uint_eq(cpr_ramblock_max_length(rb), 4 * MiB);
	ck_assert_uint_eq(cpr_ramblock_page_size(rb), (uint64_t)getpagesize());
	ck_assert_int_eq(cpr_fd_check_kind(cpr_ramblock_fd(rb), CPR_FD_MEMFD), 0);
	ck_assert_int_eq(fcntl(cpr_ramblock_fd(rb), F_GETFD), FD_CLOEXEC);
	seals = fcntl(cpr_ramblock_fd(rb), F_GET_SEALS);
	ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
	ck_assert_int_eq(fstat(cpr_ramblock_fd(rb), &st), 0);
	ck_assert_int_eq(st.st_size, (off_t)(4 * MiB));
	p = cpr_ramblock_host(rb);
	memset(p, 0x5a, 4 * MiB);
	{
		uint8_t b = 0;

		ck_assert_int_eq(pread(cpr_ramblock_fd(rb), &b, 1, (off_t)(3 * MiB)), 1);
		ck_assert_int_eq(b, 0x5a); /* the mapping is the memfd */
	}
	ck_assert_int_eq(cpr_ramblock_resize(rb, 2 * MiB, &err), -EPERM);
	ck_assert_int_eq(err.code, -EPERM);
	ck_assert_str_eq(err.message, "RAM block 'pc.ram': not resizeable");
	ck_assert_int_eq(cpr_ramblock_fd(NULL), -EINVAL);
	ck_assert_ptr_null(cpr_ramblock_host(NULL));
	cpr_ramblock_free(rb);
	cpr_ramblock_free(NULL);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_ramblock_new_align)
{
	struct cpr_ramblock *rb[4];
	struct cpr_ctx *ctx;
	int nfds = test_count_fds();
	static const uint64_t aligns[] = { 2 * MiB, 64 * MiB, 1ull << 30, 16384 };

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	for (int i = 0; i < 4; i++) {
		char id[16];

		snprintf(id, sizeof(id), "b%d", i);
		ck_assert_int_eq(cpr_ramblock_new(ctx, id, 2 * MiB, 0, aligns[i], 0, &rb[i], NULL),
				 0);
		ck_assert_uint_eq((uintptr_t)cpr_ramblock_host(rb[i]) % aligns[i], 0);
		memset(cpr_ramblock_host(rb[i]), i, 2 * MiB);
	}
	for (int i = 0; i < 4; i++)
		cpr_ramblock_free(rb[i]);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_ramblock_resize)
{
	struct cpr_error err;
	struct cpr_ramblock *rb;
	struct cpr_ctx *ctx;
	int nfds = test_count_fds();
	uint8_t *p;

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "vram", 2 * MiB, 16 * MiB, 0,
					  CPR_RAMBLOCK_RESIZEABLE, &rb, NULL),
			 0);
	p = cpr_ramblock_host(rb);
	ck_assert_int_eq(fcntl(cpr_ramblock_fd(rb), F_GET_SEALS) & F_SEAL_GROW, 0);
	memset(p, 1, 2 * MiB);
	ck_assert(touch_faults(p + 2 * MiB)); /* reserved, not mapped */
	ck_assert_int_eq(cpr_ramblock_resize(rb, 8 * MiB, NULL), 0);
	ck_assert_ptr_eq(cpr_ramblock_host(rb), p); /* grows in place */
	memset(p + 2 * MiB, 2, 6 * MiB);
	ck_assert_int_eq(p[0], 1);
	ck_assert_int_eq(p[8 * MiB - 1], 2);
	ck_assert(touch_faults(p + 8 * MiB));
	ck_assert_int_eq(cpr_ramblock_resize(rb, 4 * MiB, NULL), 0);
	ck_assert(touch_faults(p + 4 * MiB));
	ck_assert_int_eq(p[4 * MiB - 1], 2);
	ck_assert_int_eq(cpr_ramblock_resize(rb, 8 * MiB, NULL), 0);
	ck_assert_int_eq(p[4 * MiB], 0); /* shrinking discarded the tail */
	ck_assert_int_eq(cpr_ramblock_resize(rb, 17 * MiB, &err), -ERANGE);
	ck_assert_int_eq(err.code, -ERANGE);
	ck_assert_uint_eq(err.record_type, UINT32_MAX);
	ck_assert_str_eq(err.message,
			 "RAM block 'vram': used_length 0x1100000 exceeds max_length 0x1000000");
	ck_assert_int_eq(cpr_ramblock_resize(rb, 4 * MiB + 1, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.message, "RAM block 'vram': used_length 0x400001"));
	ck_assert_int_eq(cpr_ramblock_resize(rb, 0, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_resize(NULL, 4 * MiB, &err), -EINVAL);
	ck_assert_int_eq(err.code, -EINVAL);
	ck_assert_uint_eq(cpr_ramblock_used_length(rb), 8 * MiB);
	cpr_ramblock_free(rb);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* hugetlb when 2 MiB pages are reserved, a THP request otherwise.  Other
 * processes may reserve or take huge pages meanwhile: check that the block
 * says truthfully which one it got. */
START_TEST(test_cpr_ramblock_new_hugepages)
{
	struct cpr_ramblock *rb;
	struct cpr_ctx *ctx;
	int nfds = test_count_fds();
	struct stat st;

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(
		cpr_ramblock_new(ctx, "huge", 4 * MiB, 0, 0, CPR_RAMBLOCK_HUGEPAGES, &rb, NULL), 0);
	ck_assert_int_eq(fstat(cpr_ramblock_fd(rb), &st), 0);
	if (cpr_ramblock_page_size(rb) == 2 * MiB)
		ck_assert_int_eq(st.st_blksize, 2 * MiB);
	else
		ck_assert_uint_eq(cpr_ramblock_page_size(rb), (uint64_t)getpagesize());
	ck_assert_int_eq(st.st_blksize == 2 * MiB, cpr_ramblock_page_size(rb) == 2 * MiB);
	ck_assert_uint_eq((uintptr_t)cpr_ramblock_host(rb) % (2 * MiB), 0);
	memset(cpr_ramblock_host(rb), 7, 4 * MiB);
	cpr_ramblock_free(rb);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_ramblock_new_einval)
{
	struct cpr_error err;
	struct cpr_ramblock *rb, *rb2;
	struct cpr_ctx *ctx;
	char longname[CPR_NAME_MAX + 2];
	int nfds = test_count_fds();
	uint64_t ps = (uint64_t)getpagesize();

	memset(longname, 'r', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_ramblock_new(NULL, "a", ps, 0, 0, 0, &rb, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, NULL, ps, 0, 0, 0, &rb, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "", ps, 0, 0, 0, &rb, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, longname, ps, 0, 0, 0, &rb, NULL), -EINVAL);
	/* what cpr-state(5) cannot carry is refused now, not at the upgrade */
	ck_assert_int_eq(cpr_ramblock_new(ctx, "pc ram", ps, 0, 0, 0, &rb, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "pc\"ram", ps, 0, 0, 0, &rb, &err), -EINVAL);
	ck_assert_int_eq(err.code, -EINVAL);
	ck_assert_str_eq(err.message, "RAM block 'pc\"ram': not a valid name (cpr-state(5))");
	/* CPR_BLOCK_MAX holds for a block that cannot grow too: EINVAL, not ENOMEM */
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", CPR_BLOCK_MAX + ps, 0, 0, 0, &rb, NULL),
			 -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", 0, 0, 0, 0, &rb, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps + 1, 0, 0, 0, &rb, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps, 2 * ps, 0, 0, &rb, &err), -EINVAL);
	ck_assert_msg(strstr(err.message, "RAM block 'a': max_length 0x") &&
			      strstr(err.message, "(not resizeable)"),
		      "%s", err.message);
	ck_assert_int_eq(
		cpr_ramblock_new(ctx, "a", 2 * ps, ps, 0, CPR_RAMBLOCK_RESIZEABLE, &rb, NULL),
		-EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps, 0, 3 * ps, 0, &rb, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps, 0, ps / 2, 0, &rb, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps, 0, CPR_ALIGN_MAX * 2, 0, &rb, NULL),
			 -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps, 0, 0, 1u << 20, &rb, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps, 0, 0, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps, CPR_BLOCK_MAX + ps, 0,
					  CPR_RAMBLOCK_RESIZEABLE, &rb, NULL),
			 -EINVAL);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps, 0, 0, 0, &rb, NULL), 0);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps, 0, 0, 0, &rb2, &err), -EEXIST);
	ck_assert_int_eq(err.code, -EEXIST);
	ck_assert_uint_eq(err.record_type, UINT32_MAX);
	ck_assert_str_eq(err.message,
			 "RAM block 'a': the context already has a block of that name");
	cpr_ctx_free(ctx); /* frees rb */
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* ---- adoption: "old" ctx -> state + dup'ed memfds -> "new" ctx ---- */

struct hop {
	struct cpr_ctx *old, *new;
	struct cpr_ramblock *a, *b;
	ino_t ino_a;
};

static void hop_init(struct hop *h)
{
	struct cpr_state *st;
	struct stat sta;
	size_t n;
	int *fds;

	ck_assert_int_eq(cpr_ctx_new(&h->old), 0);
	ck_assert_int_eq(cpr_ctx_new(&h->new), 0);
	ck_assert_int_eq(cpr_ramblock_new(h->old, "pc.ram", 8 * MiB, 0, 2 * MiB, 0, &h->a, NULL),
			 0);
	ck_assert_int_eq(cpr_ramblock_new(h->old, "vram", 2 * MiB, 8 * MiB, 0,
					  CPR_RAMBLOCK_RESIZEABLE, &h->b, NULL),
			 0);
	ck_assert_int_eq(cpr_ramblock_resize(h->b, 4 * MiB, NULL), 0);
	memset(cpr_ramblock_host(h->a), 0xa1, 8 * MiB);
	memset(cpr_ramblock_host(h->b), 0xb2, 4 * MiB);
	ck_assert_int_eq(fstat(cpr_ramblock_fd(h->a), &sta), 0);
	h->ino_a = sta.st_ino;
	ck_assert_int_eq(ctx_outgoing(h->old, CPR_MODE_TRANSFER, 0, &st, &fds, &n, NULL), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(cpr_state_ramblock_count(st), 2);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(cpr_state_fd_get(st, i)->id, -1);
		ck_assert_uint_eq(cpr_state_fd_get(st, i)->kind, CPR_FD_MEMFD);
		fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
	}
	ck_assert_int_eq(ctx_adopt(h->new, st, fds, n, NULL), 0);
	free(fds);
}

static void hop_free(struct hop *h)
{
	cpr_ctx_free(h->old);
	cpr_ctx_free(h->new);
}

START_TEST(test_cpr_ramblock_new_adopt)
{
	struct cpr_ramblock *a, *b;
	struct stat st;
	struct hop h;
	int nfds = test_count_fds();
	uint8_t *p;

	hop_init(&h);
	ck_assert_int_eq(cpr_fd_unclaimed(h.new, NULL, NULL), 2);
	ck_assert_int_eq(cpr_ramblock_new(h.new, "pc.ram", 8 * MiB, 0, 2 * MiB, 0, &a, NULL), 0);
	ck_assert_int_eq(cpr_ramblock_adopted(a), 1);
	ck_assert_int_eq(fstat(cpr_ramblock_fd(a), &st), 0);
	ck_assert_uint_eq(st.st_ino, h.ino_a);
	ck_assert_ptr_ne(cpr_ramblock_host(a), cpr_ramblock_host(h.a));
	ck_assert_uint_eq((uintptr_t)cpr_ramblock_host(a) % (2 * MiB), 0);
	p = cpr_ramblock_host(a);
	ck_assert_int_eq(p[0], 0xa1);
	ck_assert_int_eq(p[8 * MiB - 1], 0xa1);
	p[5] = 0x11; /* the same pages, not a copy */
	ck_assert_int_eq(((uint8_t *)cpr_ramblock_host(h.a))[5], 0x11);
	/* Resizeable: the live used_length comes from the record. */
	ck_assert_int_eq(cpr_ramblock_new(h.new, "vram", 2 * MiB, 8 * MiB, 0,
					  CPR_RAMBLOCK_RESIZEABLE, &b, NULL),
			 0);
	ck_assert_uint_eq(cpr_ramblock_used_length(b), 4 * MiB);
	ck_assert_int_eq(((uint8_t *)cpr_ramblock_host(b))[4 * MiB - 1], 0xb2);
	ck_assert_int_eq(cpr_ramblock_resize(b, 8 * MiB, NULL), 0);
	ck_assert_int_eq(cpr_fd_unclaimed(h.new, NULL, NULL), 0);
	hop_free(&h);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static char last_log[512];

_cpr_printf_(3, 0) static void keep_log(void *userdata, int priority, const char *fmt, va_list ap)
{
	(void)userdata;
	(void)priority;
	vsnprintf(last_log, sizeof(last_log), fmt, ap);
}

START_TEST(test_cpr_ramblock_new_adopt_mismatch)
{
	struct cpr_error err;
	struct cpr_ramblock *a;
	struct hop h;
	int nfds = test_count_fds();

	hop_init(&h);
	cpr_ctx_set_log_fn(h.new, keep_log, NULL);
	ck_assert_int_eq(cpr_ramblock_new(h.new, "pc.ram", 4 * MiB, 0, 2 * MiB, 0, &a, &err),
			 -EINVAL);
	ck_assert_int_eq(err.code, -EINVAL);
	ck_assert_uint_eq(err.record_type, CPR_REC_RAMBLOCK);
	ck_assert_int_eq((int)err.instance,
			 cpr_state_ramblock_find(cpr_ctx_incoming_state(h.new), "pc.ram"));
	ck_assert_str_eq(err.message,
			 "RAM block 'pc.ram': incoming used_length 0x800000 differs from 0x400000; "
			 "incoming max_length 0x800000 differs from 0x400000");
	ck_assert_ptr_nonnull(strstr(last_log, err.message));
	ck_assert_int_eq(cpr_ramblock_new(h.new, "pc.ram", 8 * MiB, 0, 0, 0, &a, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(last_log, "align"));
	ck_assert_msg(strstr(err.message, "RAM block 'pc.ram': incoming align 0x200000 differs"),
		      "%s", err.message);
	ck_assert_int_eq(cpr_ramblock_new(h.new, "pc.ram", 8 * MiB, 16 * MiB, 2 * MiB,
					  CPR_RAMBLOCK_RESIZEABLE, &a, NULL),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(last_log, "resizeable"));
	/* Nothing was consumed by the refusals. */
	ck_assert_int_eq(cpr_fd_unclaimed(h.new, NULL, NULL), 2);
	ck_assert_int_eq(cpr_ramblock_new(h.new, "pc.ram", 4 * MiB, 0, 0,
					  CPR_RAMBLOCK_TAKE_RECORDED, &a, NULL),
			 0);
	ck_assert_uint_eq(cpr_ramblock_used_length(a), 8 * MiB);
	ck_assert_uint_eq((uintptr_t)cpr_ramblock_host(a) % (2 * MiB), 0);
	ck_assert_int_eq(cpr_fd_unclaimed(h.new, NULL, NULL), 1);
	ck_assert_int_eq(cpr_fd_close_unclaimed(h.new), 1);
	ck_assert_int_eq(cpr_fd_unclaimed(h.new, NULL, NULL), 0);
	hop_free(&h);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_ramblock_new_map_at_addr)
{
	struct cpr_ramblock *a;
	struct hop h;
	int nfds = test_count_fds();
	void *old;

	hop_init(&h);
	old = cpr_ramblock_host(h.a);
	/* The old block still occupies the address in this process. */
	ck_assert_int_eq(cpr_ramblock_new(h.new, "pc.ram", 8 * MiB, 0, 2 * MiB,
					  CPR_RAMBLOCK_MAP_AT_ADDR, &a, NULL),
			 -EADDRINUSE);
	cpr_ramblock_free(h.a);
	ck_assert_int_eq(cpr_ramblock_new(h.new, "pc.ram", 8 * MiB, 0, 2 * MiB,
					  CPR_RAMBLOCK_MAP_AT_ADDR, &a, NULL),
			 0);
	ck_assert_ptr_eq(cpr_ramblock_host(a), old);
	ck_assert_int_eq(((uint8_t *)old)[100], 0xa1);
	hop_free(&h);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A block adopted and not resized travels on: a second hop from "new". */
START_TEST(test_cpr_ramblock_carried_unclaimed)
{
	struct cpr_state *st;
	struct hop h;
	int nfds = test_count_fds();

	hop_init(&h);
	ck_assert_int_eq(cpr_ctx_build_state(h.new, &st), 0);
	ck_assert_uint_eq(cpr_state_fd_count(st), 2);
	ck_assert_uint_eq(cpr_state_ramblock_count(st), 2);
	ck_assert_int_ge(cpr_state_ramblock_find(st, "vram"), 0);
	cpr_state_free(st);
	hop_free(&h);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Another producer named the block's memfd as an ordinary fd, and the caller
 * claimed it: the block cannot take it too. */
START_TEST(test_cpr_ramblock_new_memfd_claimed)
{
	struct cpr_state_ramblock rec = {
		.used_length = 2 * MiB, .max_length = 2 * MiB, .fd_index = 0, .idstr = "ram"
	};
	struct cpr_state_fd f = { .slot = 0, .kind = CPR_FD_MEMFD, .id = 5, .name = "mem" };
	struct cpr_error err;
	struct cpr_ramblock *rb;
	struct cpr_state *st;
	struct cpr_ctx *ctx;
	int nfds = test_count_fds(), m = test_memfd("mem", 2 * MiB), fd;

	rec.align = (uint64_t)getpagesize();
	ck_assert_int_eq(cpr_state_new(&st), 0);
	ck_assert_int_eq(cpr_state_set_page_shift(st, (uint32_t)__builtin_ctz(getpagesize())), 0);
	ck_assert_int_eq(cpr_state_add_fd(st, &f), 0);
	ck_assert_int_eq(cpr_state_add_ramblock(st, &rec), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(ctx_adopt(ctx, st, &m, 1, NULL), 0);
	ck_assert_int_eq(cpr_fd_claim(ctx, "mem", 5, CPR_FD_MEMFD, &fd, NULL), 0);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "ram", 2 * MiB, 0, 0, 0, &rb, &err), -EBUSY);
	ck_assert_int_eq(err.code, -EBUSY);
	ck_assert_uint_eq(err.record_type, CPR_REC_RAMBLOCK);
	ck_assert_uint_eq(err.instance, 0);
	ck_assert_str_eq(err.message, "RAM block 'ram': its memfd was claimed as fd 'mem' id 5");
	ck_assert_int_eq(cpr_fd_delete(ctx, "mem", 5), 0);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "ram", 2 * MiB, 0, 0, 0, &rb, NULL), 0);
	ck_assert_int_eq(cpr_ramblock_adopted(rb), 0); /* given up: a fresh one */
	cpr_ctx_free(ctx);
	close(fd);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_ramblock_new_e2big)
{
	struct cpr_ramblock *rb;
	struct cpr_ctx *ctx;
	int nfds = test_count_fds();
	uint64_t ps = (uint64_t)getpagesize();
	struct rlimit rl;
	char id[32];

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	for (uint32_t i = 0; i < CPR_RAMBLOCKS_MAX; i++) {
		snprintf(id, sizeof(id), "rom%u", i);
		ck_assert_int_eq(cpr_ramblock_new(ctx, id, ps, 0, 0, 0, &rb, NULL), 0);
	}
	ck_assert_int_eq(cpr_ramblock_new(ctx, "one-too-many", ps, 0, 0, 0, &rb, NULL), -E2BIG);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *ramblock_suite(void)
{
	Suite *s = suite_create("ramblock");
	TCase *tc = tcase_create("ramblock");

	tcase_add_test(tc, test_cpr_ramblock_new_fresh);
	tcase_add_test(tc, test_cpr_ramblock_new_align);
	tcase_add_test(tc, test_cpr_ramblock_resize);
	tcase_add_test(tc, test_cpr_ramblock_new_hugepages);
	tcase_add_test(tc, test_cpr_ramblock_new_einval);
	tcase_add_test(tc, test_cpr_ramblock_new_adopt);
	tcase_add_test(tc, test_cpr_ramblock_new_adopt_mismatch);
	tcase_add_test(tc, test_cpr_ramblock_new_map_at_addr);
	tcase_add_test(tc, test_cpr_ramblock_carried_unclaimed);
	tcase_add_test(tc, test_cpr_ramblock_new_memfd_claimed);
	tcase_add_test(tc, test_cpr_ramblock_new_e2big);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(ramblock_suite());
}
