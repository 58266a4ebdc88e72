/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reasons that forbid CPR, per mode, reported all at once. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ctx.h"
#include "internal.h"

#define BLOCKER_REASON_MAX 256u

static int blocker_args(struct cpr_ctx *ctx, unsigned modes, const char *reason,
			struct cpr_error *err)
{
	if (!ctx || !reason)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "blocker: %s is NULL",
				!ctx ? "ctx" : "reason");
	if (!modes || (modes & ~CPR_MODES_ALL))
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"blocker: modes %#x is 0 or has unknown bits", modes);
	if (!*reason || strlen(reason) >= BLOCKER_REASON_MAX)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"blocker: the reason is empty or %zu bytes or longer",
				(size_t)BLOCKER_REASON_MAX);
	return 0;
}

static int blocker_add(struct cpr_ctx *ctx, unsigned modes, const char *reason, uint32_t *ret_id,
		       struct cpr_error *err)
{
	struct cpr_blocker *b;
	char *copy;
	int r = blocker_args(ctx, modes, reason, err);

	if (r < 0)
		return r;
	if (ctx->n_blockers == ctx->cap_blockers) {
		size_t cap = ctx->cap_blockers ? ctx->cap_blockers * 2 : 8;
		struct cpr_blocker *n = reallocarray(ctx->blockers, cap, sizeof(*n));

		if (!n)
			return -ENOMEM;
		ctx->blockers = n;
		ctx->cap_blockers = cap;
	}
	copy = strdup(reason);
	if (!copy)
		return -ENOMEM;
	b = &ctx->blockers[ctx->n_blockers++];
	*b = (struct cpr_blocker){ .id = ctx->next_blocker_id++, .modes = modes, .reason = copy };
	if (ctx->next_blocker_id == 0) /* ids are never 0 */
		ctx->next_blocker_id = 1;
	if (ret_id)
		*ret_id = b->id;
	return 0;
}

/* cpr_check(3) ERRORS of cpr_blocker_add(). */
static const int blocker_add_errnos[] = { EINVAL, ENOMEM, 0 };

CPR_EXPORT int cpr_blocker_add(struct cpr_ctx *ctx, unsigned modes, const char *reason,
			       uint32_t *ret_id, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;

	return cpr_error_finish(blocker_add(ctx, modes, reason, ret_id, &e), &e, ret_err,
				blocker_add_errnos, -EIO);
}

CPR_EXPORT int cpr_blocker_remove(struct cpr_ctx *ctx, uint32_t id)
{
	if (!ctx)
		return -EINVAL;
	for (size_t i = 0; i < ctx->n_blockers; i++) {
		if (ctx->blockers[i].id != id)
			continue;
		free(ctx->blockers[i].reason);
		memmove(&ctx->blockers[i], &ctx->blockers[i + 1],
			(ctx->n_blockers - i - 1) * sizeof(struct cpr_blocker));
		ctx->n_blockers--;
		return 0;
	}
	return -ENOENT;
}

void blocker_free_all(struct cpr_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_blockers; i++)
		free(ctx->blockers[i].reason);
	free(ctx->blockers);
	ctx->blockers = NULL;
	ctx->n_blockers = ctx->cap_blockers = 0;
}

static const char *mode_name(enum cpr_mode mode)
{
	return mode == CPR_MODE_EXEC ? "cpr-exec" : "cpr-transfer";
}

struct reasons {
	cpr_diag_fn fn;
	void *userdata;
	int n;
	int n_level; /* of which about the target level */
};

static void reason(struct reasons *rs, int code, uint32_t type, uint32_t instance, const char *fmt,
		   ...) _cpr_printf_(5, 6);

static void reason(struct reasons *rs, int code, uint32_t type, uint32_t instance, const char *fmt,
		   ...)
{
	struct cpr_error e;
	va_list ap;

	va_start(ap, fmt);
	cpr_error_setv(&e, code, type, instance, UINT64_MAX, fmt, ap);
	va_end(ap);
	rs->n++;
	if (rs->fn)
		rs->fn(rs->userdata, &e);
}

/* The level that introduced an fd kind: guest_memfd arrived with level 2. */
static uint32_t kind_level(uint32_t kind)
{
	return kind == CPR_FD_GUEST_MEMFD ? 2 : 1;
}

/* Kernel features a kind needs to survive either mode. */
static int kind_feature(uint32_t kind, char *why, size_t len)
{
	switch (kind) {
	case CPR_FD_VFIO_GROUP:
	case CPR_FD_VFIO_CONTAINER:
		return cpr_probe_vfio(why, len);
	case CPR_FD_VFIO_CDEV:
	case CPR_FD_IOMMUFD:
		return cpr_probe_iommufd(why, len);
	default:
		return 1;
	}
}

static void check_fds(struct cpr_ctx *ctx, uint32_t level, struct reasons *rs)
{
	for (size_t i = 0; i < ctx->n_fds; i++) {
		struct cpr_fd_entry *e = &ctx->fds[i];
		const char *kname = cpr_fd_kind_to_string(e->kind);
		char q[80], why[200];

		if (kind_level(e->kind) > level && ++rs->n_level)
			reason(rs, -EPROTONOSUPPORT, CPR_REC_FD, (uint32_t)i,
			       "fd \"%s\" id %d is a %s, which level %u cannot carry (it needs "
			       "level %u)",
			       cpr_quote(q, sizeof(q), e->name, strlen(e->name)), e->id, kname,
			       level, kind_level(e->kind));
		if (kind_feature(e->kind, why, sizeof(why)) == 0)
			reason(rs, -EOPNOTSUPP, CPR_REC_FD, (uint32_t)i,
			       "fd \"%s\" id %d is a %s, but this kernel cannot preserve it: %s",
			       cpr_quote(q, sizeof(q), e->name, strlen(e->name)), e->id, kname,
			       why);
	}
}

/* cpr-exec needs sealed memfds for the state; probe once per check. */
static void check_exec_kernel(struct reasons *rs)
{
	int fd = memfd_create("cpr-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0) {
		reason(rs, -EOPNOTSUPP, UINT32_MAX, UINT32_MAX,
		       "cpr-exec needs sealable memfds, and memfd_create() fails here: %s",
		       strerror(errno));
		return;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		reason(rs, -EOPNOTSUPP, UINT32_MAX, UINT32_MAX,
		       "cpr-exec needs memfd seals, and F_ADD_SEALS fails here: %s",
		       strerror(errno));
	close(fd);
}

int blocker_collect(struct cpr_ctx *ctx, enum cpr_mode mode, uint32_t level, cpr_diag_fn fn,
		    void *userdata, int *ret_n_level)
{
	struct reasons rs = { .fn = fn, .userdata = userdata };

	for (size_t i = 0; i < ctx->n_blockers; i++) {
		struct cpr_blocker *b = &ctx->blockers[i];

		if (b->modes & (unsigned)mode)
			reason(&rs, -EBUSY, UINT32_MAX, b->id, "%s blocked: %s", mode_name(mode),
			       b->reason);
	}
	check_fds(ctx, level, &rs);
	if (mode == CPR_MODE_EXEC)
		check_exec_kernel(&rs);
	if (ret_n_level)
		*ret_n_level = rs.n_level;
	return rs.n;
}
