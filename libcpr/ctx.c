/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The context: settings, private records, and building the outgoing state. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>
#include <unistd.h>

#include "ctx.h"
#include "internal.h"
#include "stream.h"

uint64_t ctx_page_size(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

uint32_t ctx_page_shift(void)
{
	return (uint32_t)__builtin_ctzll(ctx_page_size());
}

void ctx_log(struct cpr_ctx *ctx, int priority, const char *fmt, ...)
{
	va_list ap;

	if (!ctx || !ctx->log_fn)
		return;
	va_start(ap, fmt);
	ctx->log_fn(ctx->log_userdata, priority, fmt, ap);
	va_end(ap);
}

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

CPR_EXPORT int cpr_ctx_set_target_level(struct cpr_ctx *ctx, uint32_t level)
{
	if (!ctx)
		return -EINVAL;
	if (level != 0 && (level < CPR_LEVEL_MIN || level > CPR_LEVEL_MAX))
		return -EPROTONOSUPPORT;
	ctx->target_level = level;
	return 0;
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

	if (!ctx || type < CPR_REC_PRIVATE_FIRST || type > CPR_REC_PRIVATE_LAST)
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

static int add_fd_record(struct cpr_state *st, enum cpr_mode mode, size_t index, int fd,
			 uint32_t kind, const char *name, int32_t id)
{
	struct cpr_state_fd rec = {
		.slot = mode == CPR_MODE_EXEC ? (uint32_t)fd : (uint32_t)index,
		.kind = kind,
		.id = id,
	};

	/* Registered names are at most CPR_NAME_MAX bytes: they fit. */
	memcpy(rec.name, name, strnlen(name, CPR_NAME_MAX) + 1);
	return cpr_state_add_fd(st, &rec);
}

static int build_header(struct cpr_ctx *ctx, struct cpr_state *st)
{
	struct cpr_state_info in;
	uint8_t sid[16];
	uint32_t gen = 1;
	int r;

	if (getrandom(sid, sizeof(sid), 0) != (ssize_t)sizeof(sid))
		return -errno ?: -EIO;
	r = cpr_state_set_stream_id(st, sid);
	if (r < 0)
		return r;
	if (ctx->incoming && cpr_state_get_info(ctx->incoming, &in) >= 0)
		gen = in.generation + 1;
	r = cpr_state_set_generation(st, gen);
	if (r < 0)
		return r;
	r = cpr_state_set_page_shift(st, ctx_page_shift());
	if (r < 0)
		return r;
	return cpr_state_set_producer(st, ctx->producer ?: "libcpr", ctx->vmm_version);
}

/* An unclaimed incoming RAM block memfd: carry its RAMBLOCK record on. */
static int carry_ramblock(struct cpr_ctx *ctx, struct cpr_state *st, uint32_t rec,
			  uint32_t fd_index)
{
	size_t n = cpr_state_ramblock_count(ctx->incoming);

	for (size_t i = 0; i < n; i++) {
		struct cpr_state_ramblock rb = *cpr_state_ramblock_get(ctx->incoming, i);

		if (rb.fd_index != rec)
			continue;
		rb.fd_index = fd_index;
		return cpr_state_add_ramblock(st, &rb);
	}
	return 0;
}

static int build_records(struct cpr_ctx *ctx, enum cpr_mode mode, struct cpr_state *st, int *fds)
{
	size_t n = 0;
	int r;

	for (size_t i = 0; i < ctx->n_fds; i++, n++) {
		struct cpr_fd_entry *e = &ctx->fds[i];

		r = add_fd_record(st, mode, n, e->fd, e->kind, e->name, e->id);
		if (r < 0)
			return r;
		fds[n] = e->fd;
		if (e->incoming && e->owned &&
		    (r = carry_ramblock(ctx, st, e->rec, (uint32_t)n)) < 0)
			return r;
	}
	for (size_t i = 0; i < ctx->n_rbs; i++, n++) {
		struct cpr_ramblock *rb = ctx->rbs[i];
		struct cpr_state_ramblock rec;

		r = add_fd_record(st, mode, n, rb->fd, CPR_FD_MEMFD, rb->idstr, -1);
		if (r < 0)
			return r;
		fds[n] = rb->fd;
		ramblock_record(rb, &rec);
		rec.fd_index = (uint32_t)n;
		r = cpr_state_add_ramblock(st, &rec);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < ctx->n_privs; i++) {
		struct cpr_private *p = &ctx->privs[i];

		r = cpr_state_add_private(st, p->type, p->instance, p->data, p->len);
		if (r < 0)
			return r;
	}
	return 0;
}

int ctx_build(struct cpr_ctx *ctx, enum cpr_mode mode, struct cpr_state **ret_state, int **ret_fds,
	      size_t *ret_n_fds, struct cpr_error *ret_err)
{
	size_t n = ctx->n_fds + ctx->n_rbs;
	struct cpr_state *st = NULL;
	_cleanup_free_ int *fds = NULL;
	int r;

	if (n > CPR_FDS_MAX) {
		cpr_error_set(ret_err, -E2BIG, CPR_REC_FD, UINT32_MAX, UINT64_MAX,
			      "%zu fds to preserve, more than the limit of %u", n, CPR_FDS_MAX);
		return -E2BIG;
	}
	r = fdreg_verify(ctx, ret_err);
	if (r < 0)
		return r;
	if (n > 0 && !(fds = calloc(n, sizeof(int))))
		return -ENOMEM;
	r = cpr_state_new(&st);
	if (r < 0)
		return r;
	r = state_reserve(st, n, ctx->n_rbs); /* sized once, never regrown */
	if (r >= 0)
		r = build_header(ctx, st);
	if (r >= 0)
		r = build_records(ctx, mode, st, fds);
	if (r < 0) {
		cpr_error_set(ret_err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "cannot build the outgoing state: %s", strerror(-r));
		cpr_state_free(st);
		return r;
	}
	*ret_state = st;
	*ret_fds = TAKE_PTR(fds);
	*ret_n_fds = n;
	return 0;
}

struct first_reason {
	struct cpr_error first;
	unsigned n;
};

static void keep_first(void *userdata, const struct cpr_error *diag)
{
	struct first_reason *f = userdata;

	if (f->n++ == 0)
		f->first = *diag;
}

int ctx_outgoing(struct cpr_ctx *ctx, enum cpr_mode mode, uint32_t level,
		 struct cpr_state **ret_state, int **ret_fds, size_t *ret_n_fds,
		 struct cpr_error *ret_err)
{
	struct first_reason f = { .n = 0 };
	struct cpr_state *st;
	int *fds;
	size_t n;
	int r;

	if (!ctx || (mode != CPR_MODE_EXEC && mode != CPR_MODE_TRANSFER) || !ret_state ||
	    !ret_fds || !ret_n_fds)
		return -EINVAL;
	if (ctx->handed_off) {
		cpr_error_set(ret_err, -EALREADY, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "this context's state was handed off: a receiver acknowledged it "
			      "and owns it now");
		return -EALREADY;
	}
	if (ctx->sent_pending) {
		cpr_error_set(ret_err, -EBUSY, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "a transfer sent from this context awaits its ack "
			      "(cpr_transfer_wait_ack()); a second hand-off would make two owners");
		return -EBUSY;
	}
	if (level == 0)
		level = cpr_ctx_get_target_level(ctx);
	if (level < CPR_LEVEL_MIN || level > CPR_LEVEL_MAX) {
		cpr_error_set(ret_err, -EPROTONOSUPPORT, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "target level %u is not one this library writes (%u..%u)", level,
			      CPR_LEVEL_MIN, CPR_LEVEL_MAX);
		return -EPROTONOSUPPORT;
	}
	r = blocker_collect(ctx, mode, level, false, keep_first, &f);
	if (r < 0)
		return r;
	if (f.n > 0) {
		cpr_error_set(ret_err,
			      f.first.code == -E2BIG || f.first.code == -EPROTONOSUPPORT
				      ? f.first.code
				      : -EBUSY,
			      f.first.record_type, f.first.instance, UINT64_MAX, "%s%s",
			      f.first.message, f.n > 1 ? " (and more: see cpr_check())" : "");
		ctx_log(ctx, LOG_ERR, "cpr: refused: %s", f.first.message);
		/* A state that cannot be written says why; anything else is a blocker. */
		if (f.first.code == -EPROTONOSUPPORT || f.first.code == -E2BIG)
			return f.first.code;
		return -EBUSY;
	}
	/* Level refusals come from the caller's cpr_state_encode(), which judges
	 * every element exactly as cpr_state_check() would. */
	r = ctx_build(ctx, mode, &st, &fds, &n, ret_err);
	if (r < 0)
		return r;
	*ret_state = st;
	*ret_fds = fds;
	*ret_n_fds = n;
	return 0;
}

CPR_EXPORT int cpr_ctx_build_state(struct cpr_ctx *ctx, struct cpr_state **ret_state)
{
	struct cpr_state *st;
	int *fds;
	size_t n;
	int r;

	if (!ctx || !ret_state)
		return -EINVAL;
	r = ctx_build(ctx, CPR_MODE_TRANSFER, &st, &fds, &n, NULL);
	if (r < 0)
		return r;
	free(fds);
	*ret_state = st;
	return 0;
}
