/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A hand-off over a channel of the caller's own: what cpr-transfer would
 * send (the encoded state and its fds, in slot order), handed to the caller
 * to carry through a broker such as cprd; and, on the other side, the checks
 * and the adoption cpr_transfer_recv() does, on what the caller got back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <cpr/cpr.h>

#include "ctx.h"

static void handoff_warn(void *userdata, const struct cpr_error *d)
{
	ctx_log(userdata, LOG_WARNING, "hand-off: %s", d->message);
}

/* Fill *ret_err from @e, or with @fmt when nothing said why yet. */
_cpr_printf_(4, 5) static int handoff_fail(struct cpr_error *ret_err, struct cpr_error *e, int r,
					   const char *fmt, ...)
{
	if (e->code == 0) {
		va_list ap;

		va_start(ap, fmt);
		cpr_error_setv(e, r, NO_TYPE, NO_INST, UINT64_MAX, fmt, ap);
		va_end(ap);
	}
	if (ret_err)
		*ret_err = *e;
	return r;
}

CPR_EXPORT int cpr_handoff_export(struct cpr_ctx *ctx, void **ret_stream, size_t *ret_len,
				  int **ret_fds, size_t *ret_n_fds, struct cpr_error *ret_err)
{
	struct cpr_error e = { .record_type = NO_TYPE, .instance = NO_INST, .offset = UINT64_MAX };
	uint32_t level;
	struct cpr_state *st = NULL;
	void *buf = NULL;
	size_t len = 0, n = 0;
	int *fds = NULL, r;

	if (!ctx || !ret_stream || !ret_len || !ret_fds || !ret_n_fds)
		return handoff_fail(ret_err, &e, -EINVAL, "missing context or result pointer");
	level = cpr_ctx_get_target_level(ctx);
	r = ctx_outgoing(ctx, CPR_MODE_TRANSFER, level, &st, &fds, &n, &e);
	if (r >= 0)
		r = cpr_state_encode(st, level, handoff_warn, ctx, &buf, &len, &e);
	cpr_state_free(st);
	if (r < 0) {
		free(fds);
		return handoff_fail(ret_err, &e, r, "%s", strerror(-r));
	}
	*ret_stream = buf;
	*ret_len = len;
	*ret_fds = fds;
	*ret_n_fds = n;
	return 0;
}

int ctx_map_slots(const struct cpr_state *st, size_t n, uint32_t *rec_of_slot,
		  struct cpr_error *err)
{
	for (size_t s = 0; s < n; s++)
		rec_of_slot[s] = UINT32_MAX;
	for (size_t i = 0; i < n; i++) {
		uint32_t slot = cpr_state_fd_get(st, i)->slot;

		if (slot >= n || rec_of_slot[slot] != UINT32_MAX)
			return cpr_fail(err, -EPROTO, NO_TYPE, NO_INST, UINT64_MAX,
					"FD record %zu has slot %" PRIu32
					", not a free slot below %zu",
					i, slot, n);
		rec_of_slot[slot] = (uint32_t)i;
	}
	return 0;
}

/* @fds, one per slot, into FD record order. */
static int order_fds(const struct cpr_state *st, int *fds, size_t n, struct cpr_error *err)
{
	_cleanup_free_ uint32_t *rec_of_slot = malloc((n ? n : 1) * sizeof(uint32_t));
	_cleanup_free_ int *by_rec = malloc((n ? n : 1) * sizeof(int));
	int r;

	if (!rec_of_slot || !by_rec)
		return -ENOMEM;
	r = ctx_map_slots(st, n, rec_of_slot, err);
	if (r < 0)
		return r;
	for (size_t s = 0; s < n; s++)
		by_rec[rec_of_slot[s]] = fds[s];
	if (n)
		memcpy(fds, by_rec, n * sizeof(int));
	return 0;
}

static int import_check(struct cpr_ctx *ctx, const void *stream, size_t len, int *fds, size_t n_fds,
			struct cpr_state **ret_st, struct cpr_error *e)
{
	struct cpr_state *st = NULL;
	int r;

	if (cpr_ctx_incoming(ctx) > 0)
		return cpr_fail(e, -EALREADY, NO_TYPE, NO_INST, UINT64_MAX,
				"the context already holds incoming state");
	r = cpr_state_parse(stream, len, 0, &st, e);
	if (r < 0)
		return r;
	if (cpr_state_fd_count(st) != n_fds)
		r = cpr_fail(e, -EPROTO, NO_TYPE, NO_INST, UINT64_MAX,
			     "the stream has %zu FD records, the hand-off carried %zu fds",
			     cpr_state_fd_count(st), n_fds);
	if (r >= 0)
		r = order_fds(st, fds, n_fds, e);
	if (r < 0) {
		cpr_state_free(st);
		return r;
	}
	*ret_st = st;
	return 0;
}

CPR_EXPORT int cpr_handoff_import(struct cpr_ctx *ctx, const void *stream, size_t len,
				  const int *fds, size_t n_fds, struct cpr_error *ret_err)
{
	struct cpr_error e = { .record_type = NO_TYPE, .instance = NO_INST, .offset = UINT64_MAX };
	_cleanup_free_ int *ordered = NULL;
	struct cpr_state *st = NULL;
	int r;

	if (!ctx || !stream || (n_fds && !fds))
		return handoff_fail(ret_err, &e, -EINVAL, "missing context, stream or fds");
	if (n_fds > CPR_FDS_MAX)
		return handoff_fail(ret_err, &e, -E2BIG,
				    "%zu fds, more than the %u a state may name", n_fds,
				    CPR_FDS_MAX);
	ordered = malloc((n_fds ? n_fds : 1) * sizeof(int));
	if (!ordered)
		return handoff_fail(ret_err, &e, -ENOMEM, "out of memory");
	if (n_fds)
		memcpy(ordered, fds, n_fds * sizeof(int));
	r = import_check(ctx, stream, len, ordered, n_fds, &st, &e);
	if (r >= 0) {
		r = ctx_adopt(ctx, st, ordered, n_fds, &e);
		if (r < 0)
			cpr_state_free(st);
	}
	if (r < 0) {
		handoff_fail(ret_err, &e, r, "%s", strerror(-r));
		ctx_log(ctx, LOG_ERR, "hand-off: refused: %s", e.message);
		return r;
	}
	ctx_log(ctx, LOG_INFO, "hand-off: adopted a %zu-byte state and %zu fds", len, n_fds);
	return 0;
}
