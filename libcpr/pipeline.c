/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one hand-off pipeline.  Export: the state built from the context
 * (blockers for the mode, target level, fd identities), encoded with its
 * dropped-element warnings logged, and its fds in slot order.  Import: the
 * bytes a carrier read into private memory and the fds that came with
 * them, parsed, validated (counts, slots, kinds, environment) and only then
 * adopted.  exec.c, transfer.c and handoff.c carry bytes and fds; every
 * rule and every message of a hand-off is here, the same for all three.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <cpr/cpr.h>

#include "ctx.h"
#include "internal.h"
#include "pipeline.h"

/* ---------------------------------------------------------------- export */

struct export_warn {
	struct cpr_ctx *ctx;
	const char *carrier;
};

static void export_warn(void *userdata, const struct cpr_error *d)
{
	const struct export_warn *w = userdata;

	ctx_log(w->ctx, LOG_WARNING, "%s: %s", w->carrier, d->message);
}

int pipeline_export(struct cpr_ctx *ctx, enum cpr_mode mode, const char *carrier,
		    struct pipe_out *out, struct cpr_error *err)
{
	uint32_t level = cpr_ctx_get_target_level(ctx);
	struct export_warn w = { .ctx = ctx, .carrier = carrier };
	struct cpr_state_info info;
	int r;

	/* blockers, level, and (ctx_build) every fd still the file it was */
	r = ctx_outgoing(ctx, mode, level, &out->st, &out->fds, &out->n_fds, err);
	if (r < 0)
		return r;
	r = cpr_state_encode(out->st, level, export_warn, &w, &out->buf, &out->len, err);
	if (r < 0)
		return r;
	if (out->len > CPR_STREAM_MAX)
		return cpr_fail(err, -E2BIG, NO_TYPE, NO_INST, UINT64_MAX,
				"the outgoing state takes %zu bytes, more than the limit of %u",
				out->len, CPR_STREAM_MAX);
	r = cpr_state_get_info(out->st, &info);
	if (r < 0)
		return cpr_fail(err, r, NO_TYPE, NO_INST, UINT64_MAX, "%s", strerror(-r));
	memcpy(out->id, info.stream_id, sizeof(out->id));
	return 0;
}

void pipeline_export_done(struct pipe_out *out)
{
	cpr_state_free(out->st);
	free(out->fds);
	free(out->buf);
	*out = (struct pipe_out){ .st = NULL };
}

/* ---------------------------------------------------------------- import */

static int count_mismatch(size_t n_records, size_t n_fds, struct cpr_error *err)
{
	return cpr_fail(err, -EPROTO, CPR_REC_FD, NO_INST, UINT64_MAX,
			"the stream has %zu FD records, %zu fds came with it", n_records, n_fds);
}

/* PIPE_SLOT_INDEX: slots are exactly 0..n-1 (unique: the parser saw to it). */
static int map_slot_index(struct pipe_in *in, size_t n, struct cpr_error *err)
{
	in->rec_of_slot = malloc((n ? n : 1) * sizeof(uint32_t));
	if (!in->rec_of_slot)
		return cpr_fail(err, -ENOMEM, NO_TYPE, NO_INST, UINT64_MAX, "out of memory");
	for (size_t s = 0; s < n; s++)
		in->rec_of_slot[s] = UINT32_MAX;
	for (size_t i = 0; i < n; i++) {
		uint32_t slot = cpr_state_fd_get(in->st, i)->slot;

		if (slot >= n || in->rec_of_slot[slot] != UINT32_MAX)
			return cpr_fail(err, -EPROTO, CPR_REC_FD, (uint32_t)i, UINT64_MAX,
					"FD record %zu has slot %" PRIu32 ", not a slot below %zu",
					i, slot, n);
		in->rec_of_slot[slot] = (uint32_t)i;
	}
	return 0;
}

/* PIPE_SLOT_FD: the records name open fds (unique: the parser saw to it),
 * none of them the carrier's own. */
static int map_slot_fd(struct pipe_in *in, struct cpr_error *err)
{
	size_t n = cpr_state_fd_count(in->st), open_fds = 0;

	in->fds = malloc((n ? n : 1) * sizeof(int));
	if (!in->fds)
		return cpr_fail(err, -ENOMEM, NO_TYPE, NO_INST, UINT64_MAX, "out of memory");
	for (size_t i = 0; i < n; i++) {
		uint32_t slot = cpr_state_fd_get(in->st, i)->slot;

		in->fds[i] = (int)slot; /* at most INT32_MAX: parsed */
		if (in->fds[i] == in->exclude_fd)
			return cpr_fail(err, -EBADMSG, CPR_REC_FD, (uint32_t)i, UINT64_MAX,
					"FD record %zu names fd %" PRIu32
					", which cannot be preserved",
					i, slot);
		open_fds += fcntl(in->fds[i], F_GETFD) >= 0;
	}
	if (open_fds != n)
		return count_mismatch(n, open_fds, err);
	in->n_fds = n;
	return 0;
}

int pipeline_import_ready(struct pipe_in *in, struct cpr_error *err)
{
	if (cpr_ctx_incoming(in->ctx) > 0)
		return cpr_fail(err, -EALREADY, NO_TYPE, NO_INST, UINT64_MAX,
				"the context already holds incoming state");
	return 0;
}

int pipeline_import_parse(struct pipe_in *in, const void *buf, size_t len, const uint8_t *expect_id,
			  size_t n_fds, struct cpr_error *err)
{
	struct cpr_state_info info;
	int r;

	r = pipeline_import_ready(in, err);
	if (r < 0)
		return r;
	r = cpr_state_parse(buf, len, 0, &in->st, err);
	if (r < 0)
		return r;
	r = cpr_state_get_info(in->st, &info);
	if (r < 0)
		return cpr_fail(err, r, NO_TYPE, NO_INST, UINT64_MAX, "%s", strerror(-r));
	if (expect_id && memcmp(info.stream_id, expect_id, sizeof(info.stream_id)) != 0) {
		/* not meant for this import: what it names is nothing of ours */
		cpr_state_free(TAKE_PTR(in->st));
		return cpr_fail(err, -ESTALE, NO_TYPE, NO_INST, UINT64_MAX,
				"the stream's id is not the one its carrier announced");
	}
	if (in->slots == PIPE_SLOT_FD)
		return map_slot_fd(in, err);
	if (cpr_state_fd_count(in->st) != n_fds)
		return count_mismatch(cpr_state_fd_count(in->st), n_fds, err);
	in->n_fds = n_fds;
	return map_slot_index(in, n_fds, err);
}

int pipeline_import_check_fd(struct pipe_in *in, size_t slot, int fd, struct cpr_error *err)
{
	return ctx_adopt_check_fd(in->ctx, in->st, in->rec_of_slot[slot], fd, err);
}

/* @fds, one per slot, into FD record order. */
static int order_by_record(struct pipe_in *in, int *fds, struct cpr_error *err)
{
	size_t n = in->n_fds;
	_cleanup_free_ int *by_rec = malloc((n ? n : 1) * sizeof(int));

	if (!by_rec)
		return cpr_fail(err, -ENOMEM, NO_TYPE, NO_INST, UINT64_MAX, "out of memory");
	for (size_t s = 0; s < n; s++)
		by_rec[in->rec_of_slot[s]] = fds[s];
	if (n)
		memcpy(fds, by_rec, n * sizeof(int));
	return 0;
}

int pipeline_import_adopt(struct pipe_in *in, int *fds, bool checked, struct cpr_error *err)
{
	int r;

	if (in->slots == PIPE_SLOT_FD) {
		fds = in->fds;
	} else {
		r = order_by_record(in, fds, err);
		if (r < 0)
			return r;
	}
	r = checked ? ctx_adopt_prechecked(in->ctx, in->st, fds, in->n_fds, err)
		    : ctx_adopt(in->ctx, in->st, fds, in->n_fds, err);
	if (r < 0)
		return r;
	in->st = NULL; /* the context's now, and so is every fd */
	return 0;
}

void pipeline_import_done(struct pipe_in *in)
{
	cpr_state_free(in->st);
	free(in->rec_of_slot);
	free(in->fds);
	in->st = NULL;
	in->rec_of_slot = NULL;
	in->fds = NULL;
}
