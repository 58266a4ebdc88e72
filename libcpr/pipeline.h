/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one hand-off pipeline (pipeline.c).  Every carrier (cpr-exec,
 * cpr-transfer, a hand-off over the caller's own channel) exports and
 * imports through it and only moves the bytes and the fds.  Not installed.
 */
#ifndef CPR_PIPELINE_H
#define CPR_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctx.h"

/* What a carrier hands on: the encoded state and its fds in slot order. */
struct pipe_out {
	struct cpr_state *st;
	void *buf; /* the encoded stream, malloc()ed */
	size_t len;
	int *fds; /* borrowed: the context keeps owning them */
	size_t n_fds;
	uint8_t id[16]; /* the stream id a carrier's token repeats */
};

/*
 * Export for @mode (CPR_MODE_EXEC: slot = fd number; CPR_MODE_TRANSFER:
 * slot = index): the hand-off state of the context, the blockers of @mode,
 * the target level, every registered fd still the file it was, then the
 * encode, whose dropped-element warnings go to the context's log, prefixed
 * with @carrier.  On failure @err says why; pipeline_export_done() frees
 * @out on every path.
 */
int pipeline_export(struct cpr_ctx *ctx, enum cpr_mode mode, const char *carrier,
		    struct pipe_out *out, struct cpr_error *err);
void pipeline_export_done(struct pipe_out *out);

/* How an import maps the FD records' slots to the fds that came. */
enum pipe_slots {
	PIPE_SLOT_INDEX, /* slot i is the i-th fd the carrier delivered */
	PIPE_SLOT_FD,	 /* slot is the fd number (inherited across execve()) */
};

/* One import in progress; pipeline_import_done() frees it on every path. */
struct pipe_in {
	struct cpr_ctx *ctx;
	enum pipe_slots slots;
	int exclude_fd;	       /* PIPE_SLOT_FD: a number no record may name, or -1 */
	struct cpr_state *st;  /* parsed; NULL once the context adopted it */
	uint32_t *rec_of_slot; /* PIPE_SLOT_INDEX: the FD record of each slot */
	int *fds;	       /* PIPE_SLOT_FD: the fd of each FD record */
	size_t n_fds;
};

/* The context holds no incoming state yet: -EALREADY otherwise.  A carrier
 * asks before it takes anything; pipeline_import_parse() asks again. */
int pipeline_import_ready(struct pipe_in *in, struct cpr_error *err);
/*
 * Import, phase one, on bytes the carrier read into private memory: the
 * context holds no incoming state yet, the stream parses (cpr_state_parse()
 * validates every record), its id is @expect_id (when not NULL), it names
 * exactly the @n_fds fds that came (PIPE_SLOT_FD: the fds it names are
 * open), and each slot maps to one of them.
 */
int pipeline_import_parse(struct pipe_in *in, const void *buf, size_t len, const uint8_t *expect_id,
			  size_t n_fds, struct cpr_error *err);
/* The fd of slot @slot, checked as soon as it arrives (kind, key free). */
int pipeline_import_check_fd(struct pipe_in *in, size_t slot, int fd, struct cpr_error *err);
/*
 * Phase two: the environment checks, then adoption.  @fds are the fds the
 * carrier delivered in slot order (ignored for PIPE_SLOT_FD); they are put
 * in FD record order.  @checked: pipeline_import_check_fd() ran on each.
 * On success the context owns the state and every fd; on failure nothing
 * changed and the carrier still owns them.
 */
int pipeline_import_adopt(struct pipe_in *in, int *fds, bool checked, struct cpr_error *err);
void pipeline_import_done(struct pipe_in *in);

/* cpr_errno_filter() and cpr_error_finish() (internal.h) for the carriers. */
static inline int pipeline_errno(int r, struct cpr_error *e, const int *allowed, int other)
{
	return cpr_errno_filter(r, e, allowed, other);
}

static inline int pipeline_finish(int r, struct cpr_error *e, struct cpr_error *ret_err,
				  const int *allowed, int other)
{
	return cpr_error_finish(r, e, ret_err, allowed, other);
}

#endif
