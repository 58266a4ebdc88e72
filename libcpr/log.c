/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging through the context's log function: every runtime file's. */
#include <stdarg.h>

#include "ctx.h"

void ctx_log(struct cpr_ctx *ctx, int priority, const char *fmt, ...)
{
	va_list ap;

	if (!ctx || !ctx->log_fn)
		return;
	va_start(ap, fmt);
	ctx->log_fn(ctx->log_userdata, priority, fmt, ap);
	va_end(ap);
}
