/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for cprdump's decoder of QEMU's CPR state.  Properties:
 * never a crash, leak or sanitizer report, whatever the fd encoding; a
 * refusal names an offset inside the input; an accepted stream turns into
 * JSON, and its entries lie inside the input in order.
 */
#include <stdlib.h>
#include <string.h>

#include "qemu-cpr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size, enum qcpr_fd_encoding enc)
{
	struct qcpr_state *st = NULL;
	struct qcpr_error err;
	struct json_object *o;
	size_t last = 0;

	if (qcpr_parse(data, size, enc, &st, &err) < 0) {
		if (err.offset > size || !memchr(err.message, 0, sizeof(err.message)))
			abort();
		return;
	}
	for (size_t i = 0; i < st->n_fds; i++) {
		if (st->fds[i].offset < last || st->fds[i].fd_offset >= size)
			abort();
		last = st->fds[i].fd_offset;
	}
	if (st->markers && st->markers != st->n_fds)
		abort();
	o = qcpr_to_json(st);
	if (!o || !json_object_to_json_string(o))
		abort();
	json_object_put(o);
	qcpr_free(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size, QCPR_FD_AUTO);
	one(data, size, QCPR_FD_MARKER);
	one(data, size, QCPR_FD_BE32);
	return 0;
}
