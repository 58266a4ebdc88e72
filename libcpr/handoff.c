/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A hand-off over a channel of the caller's own: what cpr-transfer would
 * send (the encoded state and its fds, in slot order), handed to the caller
 * to carry through a broker such as cprd; and, on the other side, the
 * import cpr_transfer_recv() runs, on what the caller got back.  A carrier
 * like the others: the rules are the pipeline's (pipeline.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <cpr/cpr.h>

#include "ctx.h"
#include "pipeline.h"

/* The errnos cpr_handoff_export(3) lists; anything else is EIO. */
static const int export_errnos[] = { EINVAL,	      EALREADY, EBUSY,	E2BIG,
				     EPROTONOSUPPORT, EBADF,	ENOMEM, 0 };
static const int import_errnos[] = { EINVAL, E2BIG,	  EALREADY, EBADMSG, EPROTONOSUPPORT,
				     EPROTO, EMEDIUMTYPE, EBADF,    EEXIST,  ENOMEM,
				     0 };

CPR_EXPORT int cpr_handoff_export(struct cpr_ctx *ctx, void **ret_stream, size_t *ret_len,
				  int **ret_fds, size_t *ret_n_fds, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;
	struct pipe_out o = { .st = NULL };
	int r;

	if (!ctx || !ret_stream || !ret_len || !ret_fds || !ret_n_fds)
		return pipeline_finish(cpr_fail(&e, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
						"missing context or result pointer"),
				       &e, ret_err, export_errnos, -EIO);
	r = pipeline_export(ctx, CPR_MODE_TRANSFER, "hand-off", &o, &e);
	if (r >= 0)
		r = dma_refuse_type1(ctx, "hand-off over the caller's channel", &e);
	if (r >= 0) {
		*ret_stream = TAKE_PTR(o.buf);
		*ret_len = o.len;
		*ret_fds = TAKE_PTR(o.fds);
		*ret_n_fds = o.n_fds;
	}
	pipeline_export_done(&o);
	return pipeline_finish(r, &e, ret_err, export_errnos, -EIO);
}

static int import(struct cpr_ctx *ctx, const void *stream, size_t len, const int *fds, size_t n_fds,
		  struct cpr_error *e)
{
	struct pipe_in in = { .ctx = ctx, .slots = PIPE_SLOT_INDEX, .exclude_fd = -1 };
	_cleanup_free_ int *ordered = NULL;
	int r;

	if (!ctx || !stream || (n_fds && !fds))
		return cpr_fail(e, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"missing context, stream or fds");
	if (n_fds > CPR_FDS_MAX)
		return cpr_fail(e, -E2BIG, NO_TYPE, NO_INST, UINT64_MAX,
				"%zu fds, more than the %u a state may name", n_fds, CPR_FDS_MAX);
	ordered = malloc((n_fds ? n_fds : 1) * sizeof(int));
	if (!ordered)
		return cpr_fail(e, -ENOMEM, NO_TYPE, NO_INST, UINT64_MAX, "out of memory");
	if (n_fds)
		memcpy(ordered, fds, n_fds * sizeof(int));
	r = pipeline_import_parse(&in, stream, len, NULL, n_fds, e);
	if (r >= 0)
		r = pipeline_import_adopt(&in, ordered, false, e);
	pipeline_import_done(&in);
	return r;
}

CPR_EXPORT int cpr_handoff_import(struct cpr_ctx *ctx, const void *stream, size_t len,
				  const int *fds, size_t n_fds, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;
	int r = import(ctx, stream, len, fds, n_fds, &e);

	r = pipeline_finish(r, &e, ret_err, import_errnos, -EIO);
	if (r < 0)
		ctx_log(ctx, LOG_ERR, "hand-off: refused: %s", e.message);
	else
		ctx_log(ctx, LOG_INFO, "hand-off: adopted a %zu-byte state and %zu fds", len,
			n_fds);
	return r;
}
