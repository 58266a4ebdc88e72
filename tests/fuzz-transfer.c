/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the cpr-transfer receiver: the input is what a
 * hostile sender writes (preamble, stream, chunk headers; no fds), then it
 * hangs up.  Properties: never a crash, leak, hang or sanitizer report; a
 * refusal always leaves the context without incoming state and answers with
 * a NAK; an acceptance leaves the context holding the state.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "scm.h"
#include "transfer.h"

#define FUZZ_INPUT_MAX (64u << 10) /* fits a socket buffer: no writer thread */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cpr_error err;
	struct cpr_ctx *ctx;
	uint8_t reply[XFER_REPLY_SIZE];
	int sv[2], r;
	size_t none;

	if (size > FUZZ_INPUT_MAX || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (scm_write_all(sv[0], data, size) < 0 || shutdown(sv[0], SHUT_WR) < 0 ||
	    cpr_ctx_new(&ctx) < 0)
		abort();
	r = cpr_transfer_recv(ctx, sv[1], &err);
	if ((r < 0) == (cpr_ctx_incoming(ctx) == 1))
		abort();
	if (r < 0 &&
	    (scm_read_exact(sv[0], reply, sizeof(reply), NULL, 0, &none, 0, "nak", NULL) < 0 ||
	     -(int)le32_load(reply + 8) != r))
		abort();
	cpr_ctx_free(ctx);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
