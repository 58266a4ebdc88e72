/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memfd-backed RAM blocks: create, adopt a preserved one, map, resize. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "ctx.h"
#include "internal.h"
#include "stream.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004u
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26)
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#define HUGE_2M (2ull << 20)

#define RB_FLAGS_ALL                                                                \
	(CPR_RAMBLOCK_RESIZEABLE | CPR_RAMBLOCK_HUGEPAGES | CPR_RAMBLOCK_DONTDUMP | \
	 CPR_RAMBLOCK_MAP_AT_ADDR | CPR_RAMBLOCK_TAKE_RECORDED | CPR_RAMBLOCK_POPULATE)

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* Room for one more block, so that registering cannot fail. */
static int ramblock_reserve(struct cpr_ctx *ctx)
{
	size_t cap = ctx->cap_rbs ? ctx->cap_rbs * 2 : 8;
	struct cpr_ramblock **n;

	if (ctx->n_rbs < ctx->cap_rbs)
		return 0;
	n = reallocarray(ctx->rbs, cap, sizeof(*n));
	if (!n)
		return -ENOMEM;
	ctx->rbs = n;
	ctx->cap_rbs = cap;
	return 0;
}

void ramblock_unregister(struct cpr_ctx *ctx, struct cpr_ramblock *rb)
{
	for (size_t i = 0; i < ctx->n_rbs; i++) {
		if (ctx->rbs[i] != rb)
			continue;
		memmove(&ctx->rbs[i], &ctx->rbs[i + 1], (ctx->n_rbs - i - 1) * sizeof(rb));
		ctx->n_rbs--;
		return;
	}
}

void ramblock_record(const struct cpr_ramblock *rb, struct cpr_state_ramblock *ret)
{
	*ret = (struct cpr_state_ramblock){
		.align = rb->align,
		.used_length = rb->used_length,
		.max_length = rb->max_length,
		.host_addr = (uint64_t)(uintptr_t)rb->host,
		.fd_offset = rb->fd_offset,
	};
	if (rb->flags & CPR_RAMBLOCK_RESIZEABLE)
		ret->must_flags |= CPR_STATE_RB_RESIZEABLE;
	if (rb->hugetlb)
		ret->must_flags |= CPR_STATE_RB_HUGETLB;
	if (rb->flags & CPR_RAMBLOCK_MAP_AT_ADDR)
		ret->must_flags |= CPR_STATE_RB_MAP_AT_ADDR;
	if (rb->flags & CPR_RAMBLOCK_DONTDUMP)
		ret->hint_flags |= CPR_STATE_RB_HINT_DONTDUMP;
	if (rb->thp)
		ret->hint_flags |= CPR_STATE_RB_HINT_THP;
	snprintf(ret->idstr, sizeof(ret->idstr), "%s", rb->idstr);
}

static struct cpr_ramblock *ramblock_lookup(struct cpr_ctx *ctx, const char *idstr)
{
	for (size_t i = 0; i < ctx->n_rbs; i++)
		if (strcmp(ctx->rbs[i]->idstr, idstr) == 0)
			return ctx->rbs[i];
	return NULL;
}

/* Reserve max_length (+ align) of address space, keep an aligned window. */
static int reserve_space(struct cpr_ramblock *rb, void *at)
{
	size_t len = (size_t)rb->max_length, extra = at ? 0 : (size_t)rb->align;
	int mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	uint8_t *p, *aligned;

	if (at)
		mflags |= MAP_FIXED_NOREPLACE;
	p = mmap(at, len + extra, PROT_NONE, mflags, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (at && p != at) { /* a kernel without MAP_FIXED_NOREPLACE */
		munmap(p, len);
		return -EEXIST;
	}
	aligned = extra ? (uint8_t *)(((uintptr_t)p + extra - 1) & ~(uintptr_t)(extra - 1)) : p;
	if (aligned > p)
		munmap(p, (size_t)(aligned - p));
	if (p + len + extra > aligned + len)
		munmap(aligned + len, (size_t)(p + len + extra - (aligned + len)));
	rb->reserve = aligned;
	rb->reserve_len = len;
	rb->host = aligned;
	return 0;
}

static int map_range(struct cpr_ramblock *rb, uint64_t off, uint64_t len)
{
	int mflags = MAP_SHARED | MAP_FIXED;
	void *p;

	if (rb->flags & CPR_RAMBLOCK_POPULATE)
		mflags |= MAP_POPULATE;
	p = mmap(rb->host + off, (size_t)len, PROT_READ | PROT_WRITE, mflags, rb->fd,
		 (off_t)(rb->fd_offset + off));
	if (p == MAP_FAILED)
		return -errno;
	if (rb->thp)
		(void)madvise(p, (size_t)len, MADV_HUGEPAGE);
	if (rb->flags & CPR_RAMBLOCK_DONTDUMP)
		(void)madvise(p, (size_t)len, MADV_DONTDUMP);
	return 0;
}

/* Give back [off, off+len) to a PROT_NONE reservation. */
static int unmap_range(struct cpr_ramblock *rb, uint64_t off, uint64_t len)
{
	void *p = mmap(rb->host + off, (size_t)len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

static int map_block(struct cpr_ramblock *rb, void *at)
{
	int r = reserve_space(rb, at);

	if (r < 0)
		return r;
	r = map_range(rb, 0, rb->used_length);
	if (r < 0) {
		munmap(rb->reserve, rb->reserve_len);
		rb->reserve = NULL;
		rb->host = NULL;
	}
	return r;
}

static void rb_destroy(struct cpr_ramblock *rb)
{
	dma_forget(rb);
	if (rb->reserve)
		munmap(rb->reserve, rb->reserve_len);
	cpr_close(rb->fd);
	free(rb->idstr);
	free(rb);
}

static int hugetlb_memfd(const char *idstr, uint64_t size)
{
	_cleanup_close_ int fd =
		memfd_create(idstr, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_HUGE_2MB);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -errno;
	return TAKE_FD(fd);
}

/* A fresh memfd: hugetlb when asked and possible, else shmem (+THP hint). */
static int create_memfd(struct cpr_ctx *ctx, struct cpr_ramblock *rb)
{
	int seals = F_SEAL_SHRINK | F_SEAL_GROW;
	int fd = -EBADF;

	if ((rb->flags & CPR_RAMBLOCK_HUGEPAGES) && !(rb->max_length % HUGE_2M) &&
	    !(rb->align % HUGE_2M) && (fd = hugetlb_memfd(rb->idstr, rb->max_length)) >= 0) {
		rb->hugetlb = true;
		rb->page_size = HUGE_2M;
	} else {
		if (rb->flags & CPR_RAMBLOCK_HUGEPAGES) {
			ctx_log(ctx, LOG_INFO,
				"cpr: RAM block \"%s\": no 2 MiB hugetlb memfd (%s), asking for "
				"transparent huge pages",
				rb->idstr, fd < 0 ? strerror(-fd) : "size or align not 2 MiB");
			rb->thp = true;
		}
		fd = memfd_create(rb->idstr, MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)rb->max_length) < 0) {
			int r = -errno;

			close(fd);
			return r;
		}
	}
	if (!(rb->flags & CPR_RAMBLOCK_RESIZEABLE) && fcntl(fd, F_ADD_SEALS, seals) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	rb->fd = fd;
	return 0;
}

static int new_fresh(struct cpr_ctx *ctx, struct cpr_ramblock *rb)
{
	int r = create_memfd(ctx, rb);

	if (r < 0)
		return r;
	r = map_block(rb, NULL);
	if (r == -ENOMEM && rb->hugetlb) {
		/* Not enough huge pages reserved: fall back to shmem + THP. */
		cpr_close(rb->fd);
		rb->fd = -EBADF;
		rb->hugetlb = false;
		rb->page_size = ctx_page_size();
		rb->flags &= ~(unsigned)CPR_RAMBLOCK_HUGEPAGES;
		r = create_memfd(ctx, rb);
		rb->flags |= CPR_RAMBLOCK_HUGEPAGES;
		rb->thp = true;
		if (r >= 0)
			r = map_block(rb, NULL);
	}
	return r;
}

/* Compare one requested property with the recorded one; note mismatches. */
static void prop_check(char *msg, size_t len, const char *prop, uint64_t want, uint64_t recorded)
{
	size_t used = strlen(msg);

	if (want == recorded || used >= len - 1)
		return;
	snprintf(msg + used, len - used, "%sincoming %s %#" PRIx64 " differs from %#" PRIx64,
		 used ? "; " : "", prop, recorded, want);
}

/* "RAM block 'idstr'" for messages, quoted and truncated. */
static const char *rb_name(char *buf, size_t len, const char *idstr)
{
	char q[80];

	snprintf(buf, len, "RAM block '%s'", cpr_quote(q, sizeof(q), idstr, strlen(idstr)));
	return buf;
}

static int adopt_props(struct cpr_ctx *ctx, struct cpr_ramblock *rb,
		       const struct cpr_state_ramblock *rec, uint32_t index, struct cpr_error *err)
{
	uint64_t rec_page = rec->must_flags & CPR_STATE_RB_HUGETLB ? HUGE_2M : ctx_page_size();
	bool rec_resz = rec->must_flags & CPR_STATE_RB_RESIZEABLE;
	bool want_resz = rb->flags & CPR_RAMBLOCK_RESIZEABLE;
	char msg[512] = "", who[100];

	/* Resizeable blocks take the live used_length from the record. */
	if (!(want_resz && rec_resz))
		prop_check(msg, sizeof(msg), "used_length", rb->used_length, rec->used_length);
	prop_check(msg, sizeof(msg), "max_length", rb->max_length, rec->max_length);
	prop_check(msg, sizeof(msg), "align", rb->align, rec->align);
	prop_check(msg, sizeof(msg), "resizeable", want_resz, rec_resz);
	/* A huge page request accepts hugetlb or base pages (THP is a hint). */
	if (!(rb->flags & CPR_RAMBLOCK_HUGEPAGES))
		prop_check(msg, sizeof(msg), "page_size", ctx_page_size(), rec_page);
	rb_name(who, sizeof(who), rb->idstr);
	if (msg[0] && !(rb->flags & CPR_RAMBLOCK_TAKE_RECORDED)) {
		ctx_log(ctx, LOG_ERR, "cpr: %s: %s", who, msg);
		return cpr_fail(err, -EINVAL, CPR_REC_RAMBLOCK, index, UINT64_MAX, "%s: %s", who,
				msg);
	}
	if (msg[0])
		ctx_log(ctx, LOG_INFO, "cpr: %s: taking the recorded properties (%s)", who, msg);
	rb->used_length = rec->used_length;
	rb->max_length = rec->max_length;
	rb->align = rec->align;
	rb->fd_offset = rec->fd_offset;
	rb->page_size = rec_page;
	rb->hugetlb = rec_page == HUGE_2M;
	rb->thp = !!(rec->hint_flags & CPR_STATE_RB_HINT_THP) ||
		  (!rb->hugetlb && (rb->flags & CPR_RAMBLOCK_HUGEPAGES));
	rb->flags &= ~(unsigned)(CPR_RAMBLOCK_RESIZEABLE | CPR_RAMBLOCK_MAP_AT_ADDR);
	rb->flags |= rec_resz ? CPR_RAMBLOCK_RESIZEABLE : 0;
	rb->flags |= rec->must_flags & CPR_STATE_RB_MAP_AT_ADDR ? CPR_RAMBLOCK_MAP_AT_ADDR : 0;
	rb->flags |= rec->hint_flags & CPR_STATE_RB_HINT_DONTDUMP ? CPR_RAMBLOCK_DONTDUMP : 0;
	return 0;
}

/* Adopt the preserved block @idstr: check, map the same memfd, claim it. */
static int new_adopt(struct cpr_ctx *ctx, struct cpr_ramblock *rb, int index, struct cpr_error *err)
{
	const struct cpr_state_ramblock *rec = cpr_state_ramblock_get(ctx->incoming, (size_t)index);
	bool at_addr = (rb->flags & CPR_RAMBLOCK_MAP_AT_ADDR) ||
		       (rec->must_flags & CPR_STATE_RB_MAP_AT_ADDR);
	struct cpr_fd_entry *e = fdreg_lookup_rec(ctx, rec->fd_index);
	char who[100];
	int r;

	if (!e) /* discarded, or adopted and freed since: a new block */
		return new_fresh(ctx, rb);
	rb_name(who, sizeof(who), rb->idstr);
	if (!e->owned) {
		ctx_log(ctx, LOG_ERR, "cpr: %s: its memfd was claimed as fd \"%s\" id %d", who,
			e->name, e->id);
		return cpr_fail(err, -EBUSY, CPR_REC_RAMBLOCK, (uint32_t)index, UINT64_MAX,
				"%s: its memfd was claimed as fd '%s' id %d", who, e->name, e->id);
	}
	r = adopt_props(ctx, rb, rec, (uint32_t)index, err);
	if (r < 0)
		return r;
	rb->fd = e->fd;
	r = map_block(rb, at_addr ? (void *)(uintptr_t)rec->host_addr : NULL);
	if (r < 0) {
		rb->fd = -EBADF;
		if (r == -EEXIST)
			r = -EADDRINUSE;
		ctx_log(ctx, LOG_ERR, "cpr: %s: cannot map at %#" PRIx64 ": %s", who,
			at_addr ? rec->host_addr : 0, strerror(-r));
		return cpr_fail(err, r, CPR_REC_RAMBLOCK, (uint32_t)index, UINT64_MAX,
				"%s: cannot map at %#" PRIx64 ": %s", who,
				at_addr ? rec->host_addr : 0, strerror(-r));
	}
	if (at_addr)
		rb->flags |= CPR_RAMBLOCK_MAP_AT_ADDR;
	rb->adopted = true;
	return 0;
}

static int check_lengths(const char *who, uint64_t used, uint64_t max, unsigned flags,
			 struct cpr_error *err)
{
	uint64_t ps = ctx_page_size();

	if (!used || used % ps || used > CPR_BLOCK_MAX)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"%s: used_length %#" PRIx64
				" is 0, not a multiple of the page size or above CPR_BLOCK_MAX",
				who, used);
	if (max % ps || max > CPR_BLOCK_MAX)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"%s: max_length %#" PRIx64
				" is not a multiple of the page size or above CPR_BLOCK_MAX",
				who, max);
	if ((flags & CPR_RAMBLOCK_RESIZEABLE) ? max < used : (max && max != used))
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"%s: max_length %#" PRIx64 " does not fit used_length %#" PRIx64
				" (%s)",
				who, max, used,
				flags & CPR_RAMBLOCK_RESIZEABLE ? "resizeable" : "not resizeable");
	return 0;
}

static int check_args(struct cpr_ctx *ctx, const char *idstr, uint64_t used, uint64_t max,
		      uint64_t align, unsigned flags, struct cpr_error *err)
{
	uint64_t ps = ctx_page_size();
	char who[100];

	if (!ctx || !idstr)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "RAM block: %s is NULL",
				!ctx ? "ctx" : "idstr");
	rb_name(who, sizeof(who), idstr);
	if (!state_name_valid(idstr, NULL))
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"%s: not a valid name (cpr-state(5))", who);
	if (flags & ~RB_FLAGS_ALL)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "%s: unknown flags %#x",
				who, flags & ~RB_FLAGS_ALL);
	if (align && (!is_pow2(align) || align < ps || align > CPR_ALIGN_MAX))
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"%s: align %#" PRIx64
				" is not a power of two between the page size and CPR_ALIGN_MAX",
				who, align);
	return check_lengths(who, used, max, flags, err);
}

static struct cpr_ramblock *rb_alloc(struct cpr_ctx *ctx, const char *idstr, uint64_t used_length,
				     uint64_t max_length, uint64_t align, unsigned flags)
{
	struct cpr_ramblock *rb;
	char *copy;

	copy = strdup(idstr);
	rb = calloc(1, sizeof(*rb));
	if (!rb || !copy) {
		free(copy);
		free(rb);
		return NULL;
	}
	*rb = (struct cpr_ramblock){
		.ctx = ctx,
		.idstr = copy,
		.fd = -EBADF,
		.used_length = used_length,
		.max_length = max_length ?: used_length,
		.align = align ?: ctx_page_size(),
		.page_size = ctx_page_size(),
		.flags = flags,
	};
	if ((flags & CPR_RAMBLOCK_HUGEPAGES) && rb->align < HUGE_2M)
		rb->align = HUGE_2M; /* hugetlb needs it, THP wants it */
	return rb;
}

/* Room in the context for one more block, or why not. */
static int ramblock_room(struct cpr_ctx *ctx, const char *idstr, int index, struct cpr_error *err)
{
	char who[100];

	rb_name(who, sizeof(who), idstr);
	if (ramblock_lookup(ctx, idstr))
		return cpr_fail(err, -EEXIST, NO_TYPE, NO_INST, UINT64_MAX,
				"%s: the context already has a block of that name", who);
	/* Adopting trades a registry entry for a block; a new block adds one. */
	if (index < 0 &&
	    (ctx->n_fds + ctx->n_rbs >= CPR_FDS_MAX || ctx->n_rbs >= CPR_RAMBLOCKS_MAX))
		return cpr_fail(err, -E2BIG, NO_TYPE, NO_INST, UINT64_MAX,
				"%s: the context holds CPR_RAMBLOCKS_MAX blocks or CPR_FDS_MAX "
				"fds and blocks",
				who);
	return ramblock_reserve(ctx); /* first: nothing may fail after an adoption */
}

static int ramblock_new(struct cpr_ctx *ctx, const char *idstr, uint64_t used_length,
			uint64_t max_length, uint64_t align, unsigned flags,
			struct cpr_ramblock **ret_rb, struct cpr_error *err)
{
	struct cpr_ramblock *rb;
	int index, r;

	r = check_args(ctx, idstr, used_length, max_length, align, flags, err);
	if (r < 0)
		return r;
	if (!ret_rb)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "ret_rb is NULL");
	index = ctx->incoming ? cpr_state_ramblock_find(ctx->incoming, idstr) : -ENOENT;
	r = ramblock_room(ctx, idstr, index, err);
	if (r < 0)
		return r;
	rb = rb_alloc(ctx, idstr, used_length, max_length, align, flags);
	if (!rb)
		return -ENOMEM;
	r = index >= 0 ? new_adopt(ctx, rb, index, err) : new_fresh(ctx, rb);
	if (r >= 0 && rb->adopted && (r = dma_adopt(ctx, rb)) < 0)
		rb->fd = -EBADF; /* the incoming entry still owns the memfd */
	if (r < 0) {
		rb_destroy(rb);
		return r;
	}
	ctx->rbs[ctx->n_rbs++] = rb; /* room was made */
	if (rb->adopted) {	     /* the block owns the memfd now */
		fdreg_remove(
			ctx,
			fdreg_lookup_rec(
				ctx,
				cpr_state_ramblock_get(ctx->incoming, (size_t)index)->fd_index));
		fdreg_release_if_adopted(ctx);
	}
	*ret_rb = rb;
	return 0;
}

/* cpr_ramblock_new(3) ERRORS; other failures of memfd_create(2),
 * ftruncate(2) and mmap(2) become EIO. */
static const int ramblock_new_errnos[] = { EINVAL, EEXIST, EBUSY,  EADDRINUSE, E2BIG,
					   ENOMEM, EMFILE, ENFILE, 0 };
static const int ramblock_resize_errnos[] = { EINVAL, EPERM, ERANGE, ENOMEM, 0 };

CPR_EXPORT int cpr_ramblock_new(struct cpr_ctx *ctx, const char *idstr, uint64_t used_length,
				uint64_t max_length, uint64_t align, unsigned flags,
				struct cpr_ramblock **ret_rb, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;
	int r = ramblock_new(ctx, idstr, used_length, max_length, align, flags, ret_rb, &e);

	if (r < 0 && idstr && e.message[0] == 0) {
		char who[100];

		cpr_error_set(&e, r, e.record_type, e.instance, e.offset, "%s: %s",
			      rb_name(who, sizeof(who), idstr), strerror(-r));
	}
	return cpr_error_finish(r, &e, ret_err, ramblock_new_errnos, -EIO);
}

CPR_EXPORT void cpr_ramblock_free(struct cpr_ramblock *rb)
{
	if (!rb)
		return;
	ramblock_unregister(rb->ctx, rb);
	rb_destroy(rb);
}

CPR_EXPORT void *cpr_ramblock_host(const struct cpr_ramblock *rb)
{
	return rb ? rb->host : NULL;
}

CPR_EXPORT int cpr_ramblock_fd(const struct cpr_ramblock *rb)
{
	return rb ? rb->fd : -EINVAL;
}

CPR_EXPORT uint64_t cpr_ramblock_used_length(const struct cpr_ramblock *rb)
{
	return rb ? rb->used_length : 0;
}

CPR_EXPORT uint64_t cpr_ramblock_max_length(const struct cpr_ramblock *rb)
{
	return rb ? rb->max_length : 0;
}

CPR_EXPORT uint64_t cpr_ramblock_page_size(const struct cpr_ramblock *rb)
{
	return rb ? rb->page_size : 0;
}

CPR_EXPORT int cpr_ramblock_adopted(const struct cpr_ramblock *rb)
{
	return rb && rb->adopted ? 1 : 0;
}

CPR_EXPORT const char *cpr_ramblock_idstr(const struct cpr_ramblock *rb)
{
	return rb ? rb->idstr : NULL;
}

/* Grow maps more of the memfd; shrink unmaps the tail and frees its pages. */
static int ramblock_resize(struct cpr_ramblock *rb, uint64_t used_length, struct cpr_error *err)
{
	uint64_t old = rb->used_length;
	char who[100];
	int r;

	rb_name(who, sizeof(who), rb->idstr);
	if (!used_length || used_length % rb->page_size)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"%s: used_length %#" PRIx64
				" is 0 or not a multiple of its page size %#" PRIx64,
				who, used_length, rb->page_size);
	if (!(rb->flags & CPR_RAMBLOCK_RESIZEABLE))
		return cpr_fail(err, -EPERM, NO_TYPE, NO_INST, UINT64_MAX, "%s: not resizeable",
				who);
	if (used_length > rb->max_length)
		return cpr_fail(err, -ERANGE, NO_TYPE, NO_INST, UINT64_MAX,
				"%s: used_length %#" PRIx64 " exceeds max_length %#" PRIx64, who,
				used_length, rb->max_length);
	if (used_length > old) {
		r = map_range(rb, old, used_length - old);
		if (r < 0) {
			(void)unmap_range(rb, old, used_length - old);
			return cpr_fail(err, r, NO_TYPE, NO_INST, UINT64_MAX,
					"%s: cannot map %#" PRIx64 " more bytes: %s", who,
					used_length - old, strerror(-r));
		}
	} else if (used_length < old) {
		r = unmap_range(rb, used_length, old - used_length);
		if (r < 0)
			return cpr_fail(err, r, NO_TYPE, NO_INST, UINT64_MAX,
					"%s: cannot unmap its tail: %s", who, strerror(-r));
		(void)fallocate(rb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)(rb->fd_offset + used_length), (off_t)(old - used_length));
	}
	rb->used_length = used_length;
	return 0;
}

CPR_EXPORT int cpr_ramblock_resize(struct cpr_ramblock *rb, uint64_t used_length,
				   struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;
	int r = rb ? ramblock_resize(rb, used_length, &e)
		   : cpr_fail(&e, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "RAM block: rb is NULL");

	return cpr_error_finish(r, &e, ret_err, ramblock_resize_errnos, -EIO);
}
