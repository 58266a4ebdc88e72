/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The context: its life, settings and private records. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctx.h"
#include "internal.h"
#include "stream.h"

CPR_EXPORT int cpr_ctx_new(struct cpr_ctx **ret_ctx)
{
	struct cpr_ctx *ctx;

	if (!ret_ctx)
		return -EINVAL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->next_blocker_id = 1;
	ctx->release_fd = -EBADF;
	ctx->reaper_pidfd = -EBADF;
	ctx->rbw = (struct rollback_window){ -EBADF, -EBADF, -EBADF, { 0 }, 0 };
	*ret_ctx = ctx;
	return 0;
}

CPR_EXPORT void cpr_ctx_free(struct cpr_ctx *ctx)
{
	if (!ctx)
		return;
	/* RAM blocks still alive are freed (unmapped, memfd closed) here. */
	while (ctx->n_rbs > 0)
		cpr_ramblock_free(ctx->rbs[ctx->n_rbs - 1]);
	free(ctx->rbs);
	fdreg_free_all(ctx);
	blocker_free_all(ctx);
	for (size_t i = 0; i < ctx->n_privs; i++)
		free(ctx->privs[i].data);
	free(ctx->privs);
	cpr_state_free(ctx->incoming);
	rollback_window_close(ctx);
	teardown_reap(ctx, true);
	free(ctx->producer);
	free(ctx);
}

CPR_EXPORT void cpr_ctx_set_log_fn(struct cpr_ctx *ctx, cpr_log_fn fn, void *userdata)
{
	if (!ctx)
		return;
	ctx->log_fn = fn;
	ctx->log_userdata = userdata;
}

CPR_EXPORT int cpr_ctx_set_producer(struct cpr_ctx *ctx, const char *name, uint32_t vmm_version)
{
	char *copy;

	if (!ctx || !name || !*name || strlen(name) > CPR_PRODUCER_MAX)
		return -EINVAL;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	free(ctx->producer);
	ctx->producer = copy;
	ctx->vmm_version = vmm_version;
	return 0;
}

/* cpr_ctx_new(3) ERRORS of cpr_ctx_set_target_level(). */
static const int target_level_errnos[] = { EINVAL, EPROTONOSUPPORT, 0 };

static int set_target_level(struct cpr_ctx *ctx, uint32_t level, struct cpr_error *err)
{
	if (!ctx)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "ctx is NULL");
	if (level != 0 && (level < CPR_LEVEL_MIN || level > CPR_LEVEL_MAX))
		return cpr_fail(err, -EPROTONOSUPPORT, NO_TYPE, NO_INST, UINT64_MAX,
				"target level %" PRIu32
				" is not one this library writes (%u to %u)",
				level, CPR_LEVEL_MIN, CPR_LEVEL_MAX);
	ctx->target_level = level;
	return 0;
}

CPR_EXPORT int cpr_ctx_set_target_level(struct cpr_ctx *ctx, uint32_t level,
					struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;

	return cpr_error_finish(set_target_level(ctx, level, &e), &e, ret_err, target_level_errnos,
				-EIO);
}

CPR_EXPORT uint32_t cpr_ctx_get_target_level(const struct cpr_ctx *ctx)
{
	if (!ctx)
		return CPR_LEVEL_MAX;
	if (ctx->target_level)
		return ctx->target_level;
	if (ctx->sticky_level)
		return ctx->sticky_level;
	return CPR_LEVEL_MAX;
}

CPR_EXPORT int cpr_ctx_incoming(const struct cpr_ctx *ctx)
{
	return ctx && ctx->incoming ? 1 : 0;
}

CPR_EXPORT const struct cpr_state *cpr_ctx_incoming_state(const struct cpr_ctx *ctx)
{
	return ctx ? ctx->incoming : NULL;
}

static struct cpr_private *private_lookup(struct cpr_ctx *ctx, uint32_t type, uint32_t instance)
{
	for (size_t i = 0; i < ctx->n_privs; i++)
		if (ctx->privs[i].type == type && ctx->privs[i].instance == instance)
			return &ctx->privs[i];
	return NULL;
}

/* data == NULL with len == 0 removes the record. */
CPR_EXPORT int cpr_ctx_set_private(struct cpr_ctx *ctx, uint32_t type, uint32_t instance,
				   const void *data, size_t len)
{
	struct cpr_private *p;
	void *copy = NULL;

	if (!ctx || type < CPR_REC_PRIVATE_FIRST || type > CPR_REC_PRIVATE_LAST ||
	    type == CPR_REC_DMA) /* libcpr's own */
		return -EINVAL;
	if ((!data && len) || len > CPR_RECORD_MAX)
		return -EINVAL;
	p = private_lookup(ctx, type, instance);
	if (!data) {
		if (!p)
			return -ENOENT;
		free(p->data);
		*p = ctx->privs[--ctx->n_privs];
		return 0;
	}
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, data, len);
	if (!p) {
		if (ctx->n_privs >= CPR_PRIVATE_MAX) {
			free(copy);
			return -E2BIG;
		}
		if (ctx->n_privs == ctx->cap_privs) {
			size_t cap = ctx->cap_privs ? ctx->cap_privs * 2 : 8;
			struct cpr_private *n = reallocarray(ctx->privs, cap, sizeof(*n));

			if (!n) {
				free(copy);
				return -ENOMEM;
			}
			ctx->privs = n;
			ctx->cap_privs = cap;
		}
		p = &ctx->privs[ctx->n_privs++];
		p->type = type;
		p->instance = instance;
	} else {
		free(p->data);
	}
	p->data = copy;
	p->len = len;
	return 0;
}
