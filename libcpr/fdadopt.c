/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Adoption: taking the fds of an incoming state into the registry after
 * checking them, claiming them, and what is left unclaimed. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "ctx.h"
#include "internal.h"
#include "stream.h"

#define HUGETLBFS_MAGIC_BLKSIZE (2u << 20)

static int fd_claim(struct cpr_ctx *ctx, const char *name, int32_t id, enum cpr_fd_kind kind,
		    int *ret_fd, struct cpr_error *err)
{
	struct cpr_fd_entry *e;
	uint32_t type, inst;
	char q[80];

	if (!ctx || !ret_fd)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "fd claim: %s is NULL",
				!ctx ? "ctx" : "ret_fd");
	if (!fdreg_name_ok(name) || id == -1 || (int)kind < 0 || kind > CPR_FD_KIND_MAX)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"fd claim: the name, id %d or kind %d is not valid", id, (int)kind);
	cpr_quote(q, sizeof(q), name, strlen(name));
	e = fdreg_lookup(ctx, name, id);
	if (!e)
		return cpr_fail(err, -ENOENT, NO_TYPE, NO_INST, UINT64_MAX,
				"fd '%s' id %d: not registered", q, id);
	type = e->incoming ? CPR_REC_FD : NO_TYPE;
	inst = e->incoming ? e->rec : NO_INST;
	if (kind && e->kind != kind) {
		ctx_log(ctx, LOG_ERR, "cpr: \"%s\" id %d is a %s, not a %s", q, id,
			cpr_fd_kind_to_string(e->kind), cpr_fd_kind_to_string(kind));
		return cpr_fail(err, -EMEDIUMTYPE, type, inst, UINT64_MAX,
				"fd '%s' id %d: is a %s, not a %s", q, id,
				cpr_fd_kind_to_string(e->kind), cpr_fd_kind_to_string(kind));
	}
	e->owned = false; /* claimed: the caller owns it now */
	*ret_fd = e->fd;
	fdreg_release_if_adopted(ctx);
	return 0;
}

/* cpr_fd_save(3) ERRORS of cpr_fd_claim(). */
static const int fd_claim_errnos[] = { EINVAL, ENOENT, EMEDIUMTYPE, 0 };

CPR_EXPORT int cpr_fd_claim(struct cpr_ctx *ctx, const char *name, int32_t id,
			    enum cpr_fd_kind kind, int *ret_fd, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;

	return cpr_error_finish(fd_claim(ctx, name, id, kind, ret_fd, &e), &e, ret_err,
				fd_claim_errnos, -EIO);
}

CPR_EXPORT int cpr_fd_unclaimed(struct cpr_ctx *ctx, cpr_fd_report_fn fn, void *userdata)
{
	int n = 0;

	if (!ctx)
		return -EINVAL;
	for (size_t i = 0; i < ctx->n_fds; i++) {
		struct cpr_fd_entry *e = &ctx->fds[i];

		if (!e->owned)
			continue;
		if (fn)
			fn(userdata, e->name, e->id, (enum cpr_fd_kind)e->kind, e->fd);
		n++;
	}
	return n;
}

CPR_EXPORT int cpr_fd_close_unclaimed(struct cpr_ctx *ctx)
{
	size_t kept = 0;
	int n = 0;

	if (!ctx)
		return -EINVAL;
	/* One pass that keeps the claimed entries in order: their index
	 * slots stay valid, the closed ones' go stale. */
	for (size_t i = 0; i < ctx->n_fds; i++) {
		struct cpr_fd_entry *e = &ctx->fds[i];

		if (!e->owned) {
			ctx->fds[kept++] = *e;
			continue;
		}
		ctx_log(ctx, LOG_INFO, "cpr: closing unclaimed %s \"%s\" id %d (fd %d)",
			cpr_fd_kind_to_string(e->kind), e->name, e->id, e->fd);
		cpr_close(e->fd);
		fdreg_entry_free_name(e);
		n++;
	}
	ctx->n_fds = kept;
	fdreg_release_if_adopted(ctx);
	return n;
}

/* ---- adopting an incoming state ---- */

int ctx_adopt_check_fd(struct cpr_ctx *ctx, const struct cpr_state *st, size_t i, int fd,
		       struct cpr_error *ret_err)
{
	const struct cpr_state_fd *rec = cpr_state_fd_get(st, i);
	char q[80];
	int r;

	if (fdreg_lookup(ctx, rec->name, rec->id)) {
		cpr_error_set(ret_err, -EEXIST, CPR_REC_FD, (uint32_t)i, UINT64_MAX,
			      "incoming fd \"%s\" id %d is already registered here",
			      cpr_quote(q, sizeof(q), rec->name, strlen(rec->name)), rec->id);
		return -EEXIST;
	}
	r = fdkind_check_logged(ctx, fd, rec->kind, rec->name, rec->id);
	if (r < 0) {
		cpr_error_set(ret_err, r == -EMEDIUMTYPE ? r : -EBADF, CPR_REC_FD, (uint32_t)i,
			      UINT64_MAX, "incoming fd %d for \"%s\" id %d is not a %s", fd,
			      cpr_quote(q, sizeof(q), rec->name, strlen(rec->name)), rec->id,
			      cpr_fd_kind_to_string(rec->kind));
		return r == -EMEDIUMTYPE ? r : -EBADF;
	}
	return 0;
}

static int adopt_check_fds(struct cpr_ctx *ctx, const struct cpr_state *st, const int *fds,
			   size_t n, struct cpr_error *ret_err)
{
	for (size_t i = 0; i < n; i++) {
		int r = ctx_adopt_check_fd(ctx, st, i, fds[i], ret_err);

		if (r < 0)
			return r;
	}
	return 0;
}

static int adopt_check_ramblock(const struct cpr_state_ramblock *rb, size_t i, int fd,
				struct cpr_error *ret_err)
{
	bool want_huge = rb->must_flags & CPR_STATE_RB_HUGETLB;
	struct stat st;
	char q[80];

	cpr_quote(q, sizeof(q), rb->idstr, strlen(rb->idstr));
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < rb->fd_offset ||
	    rb->max_length > (uint64_t)st.st_size - rb->fd_offset) {
		cpr_error_set(ret_err, -EMEDIUMTYPE, CPR_REC_RAMBLOCK, (uint32_t)i, UINT64_MAX,
			      "RAM block \"%s\": memfd holds %lld bytes, the block needs %llu at "
			      "offset %llu",
			      q, (long long)st.st_size, (unsigned long long)rb->max_length,
			      (unsigned long long)rb->fd_offset);
		return -EMEDIUMTYPE;
	}
	if (((rb->used_length | rb->max_length | rb->fd_offset) &
	     ((want_huge ? HUGETLBFS_MAGIC_BLKSIZE : ctx_page_size()) - 1)) ||
	    !rb->used_length) {
		cpr_error_set(
			ret_err, -EBADMSG, CPR_REC_RAMBLOCK, (uint32_t)i, UINT64_MAX,
			"RAM block \"%s\": lengths and offset are not multiples of its %s pages", q,
			want_huge ? "2 MiB" : "base");
		return -EBADMSG;
	}
	if (want_huge != ((uint64_t)st.st_blksize == HUGETLBFS_MAGIC_BLKSIZE)) {
		cpr_error_set(
			ret_err, -EMEDIUMTYPE, CPR_REC_RAMBLOCK, (uint32_t)i, UINT64_MAX,
			"RAM block \"%s\": recorded page size %s, the memfd has %ld-byte pages", q,
			want_huge ? "2 MiB" : "base", (long)st.st_blksize);
		return -EMEDIUMTYPE;
	}
	return 0;
}

static int adopt_check_ramblocks(const struct cpr_state *st, const int *fds,
				 struct cpr_error *ret_err)
{
	size_t n = cpr_state_ramblock_count(st);

	for (size_t i = 0; i < n; i++) {
		const struct cpr_state_ramblock *rb = cpr_state_ramblock_get(st, i);
		const struct cpr_state_fd *f = cpr_state_fd_get(st, rb->fd_index);
		int r;

		if (!f || f->kind != CPR_FD_MEMFD) {
			cpr_error_set(ret_err, -EBADMSG, CPR_REC_RAMBLOCK, (uint32_t)i, UINT64_MAX,
				      "RAM block %zu refers to FD record %u, not a memfd", i,
				      rb->fd_index);
			return -EBADMSG;
		}
		r = adopt_check_ramblock(rb, i, fds[rb->fd_index], ret_err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int adopt_check(struct cpr_ctx *ctx, const struct cpr_state *st, const int *fds,
		       size_t n_fds, bool fds_checked, struct cpr_error *ret_err)
{
	struct cpr_state_info info;
	int r;

	if (ctx->incoming) {
		cpr_error_set(ret_err, -EALREADY, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "this context already adopted an incoming state");
		return -EALREADY;
	}
	r = cpr_state_get_info(st, &info);
	if (r < 0)
		return r;
	if (info.page_shift != ctx_page_shift()) {
		cpr_error_set(ret_err, -EMEDIUMTYPE, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "the state was written with %llu-byte pages, this process has %llu",
			      1ull << (info.page_shift & 63), (unsigned long long)ctx_page_size());
		return -EMEDIUMTYPE;
	}
	if (n_fds != cpr_state_fd_count(st)) {
		cpr_error_set(ret_err, -EBADMSG, CPR_REC_FD, UINT32_MAX, UINT64_MAX,
			      "%zu fds for %zu FD records", n_fds, cpr_state_fd_count(st));
		return -EBADMSG;
	}
	if (!fds_checked) {
		r = adopt_check_fds(ctx, st, fds, n_fds, ret_err);
		if (r < 0)
			return r;
	}
	return adopt_check_ramblocks(st, fds, ret_err);
}

static int adopt(struct cpr_ctx *ctx, struct cpr_state *st, int *fds, size_t n_fds,
		 bool fds_checked, struct cpr_error *ret_err)
{
	struct cpr_state_info info;
	int r;

	if (!ctx || !st || (n_fds && !fds))
		return -EINVAL;
	r = adopt_check(ctx, st, fds, n_fds, fds_checked, ret_err);
	if (r < 0)
		return r;
	r = fdreg_reserve(ctx, n_fds, true);
	if (r < 0)
		return r;
	/* Nothing can fail from here on.  The names stay in the state's FD
	 * records, which the context keeps as long as its registry. */
	for (size_t i = 0; i < n_fds; i++) {
		const struct cpr_state_fd *rec = cpr_state_fd_get(st, i);

		struct cpr_fd_entry e = {
			.name = (char *)rec->name,
			.id = rec->id,
			.kind = rec->kind,
			.fd = fds[i],
			.owned = true,
			.incoming = true,
			.rec = (uint32_t)i,
		};

		fdreg_identity(fds[i], &e.dev, &e.ino);
		fdreg_append(ctx, &e);
	}
	ctx->incoming = st;
	if (cpr_state_get_info(st, &info) >= 0)
		/* A newer writer may have targeted a level this library cannot
		 * write: the sticky default is the newest level both know. */
		ctx->sticky_level =
			info.emit_level < CPR_LEVEL_MAX ? info.emit_level : CPR_LEVEL_MAX;
	return 0;
}

int ctx_adopt(struct cpr_ctx *ctx, struct cpr_state *st, int *fds, size_t n_fds,
	      struct cpr_error *ret_err)
{
	return adopt(ctx, st, fds, n_fds, false, ret_err);
}

int ctx_adopt_prechecked(struct cpr_ctx *ctx, struct cpr_state *st, int *fds, size_t n_fds,
			 struct cpr_error *ret_err)
{
	return adopt(ctx, st, fds, n_fds, true, ret_err);
}
