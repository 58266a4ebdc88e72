/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The outgoing state: built from the registry, the RAM blocks and the
 * private records once the blockers allow it, and cpr_check(), which asks
 * the same questions without building anything to send. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>

#include "ctx.h"
#include "internal.h"
#include "stream.h"

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
	return dma_records(ctx, st);
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
	r = blocker_collect(ctx, mode, level, keep_first, &f, NULL);
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

static void level_diag(void *userdata, const struct cpr_error *diag)
{
	(void)userdata;
	(void)diag; /* droppable elements: warnings, not reasons */
}

/* Anything the stream writer would refuse for this target, said through
 * @fn unless a level reason (@n_level of them) already said it per fd:
 * 1 if it said something, 0 if not, or -ENOMEM. */
static int check_state(struct cpr_ctx *ctx, enum cpr_mode mode, uint32_t level, int n_level,
		       cpr_diag_fn fn, void *userdata)
{
	struct cpr_error err = { 0 };
	struct cpr_state *st;
	int *fds, r;
	size_t n;

	r = ctx_build(ctx, mode, &st, &fds, &n, &err);
	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		free(fds);
		r = cpr_state_check(st, level, level_diag, NULL, &err);
		cpr_state_free(st);
		if (r == -ENOMEM)
			return r;
	}
	if (r >= 0 || (r == -EPROTONOSUPPORT && n_level > 0))
		return 0; /* nothing to say, or already said per fd */
	if (!err.message[0])
		cpr_error_set(&err, r, err.record_type, err.instance, UINT64_MAX, "%s",
			      strerror(-r));
	err.code = r;
	err.offset = UINT64_MAX;
	if (fn)
		fn(userdata, &err);
	return 1;
}

CPR_EXPORT int cpr_check(struct cpr_ctx *ctx, enum cpr_mode mode, uint32_t target_level,
			 cpr_diag_fn fn, void *userdata)
{
	int n_level = 0, r, n;

	if (!ctx || (mode != CPR_MODE_EXEC && mode != CPR_MODE_TRANSFER))
		return -EINVAL;
	if (target_level == 0)
		target_level = cpr_ctx_get_target_level(ctx);
	if (target_level < CPR_LEVEL_MIN || target_level > CPR_LEVEL_MAX)
		return -EPROTONOSUPPORT;
	r = blocker_collect(ctx, mode, target_level, fn, userdata, &n_level);
	if (r < 0)
		return r;
	/* The whole state judged as the writer would; a hand-off skips this,
	 * since the encode that follows makes the same judgement. */
	n = check_state(ctx, mode, target_level, n_level, fn, userdata);
	if (n < 0)
		return n;
	return r + n > 0 ? -EBUSY : 0;
}
