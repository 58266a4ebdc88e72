/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for cprdump's decoder of QEMU's CPR state.  Properties:
 * never a crash, leak or sanitizer report, whatever the fd encoding; a
 * refusal names an offset inside the input; an accepted stream turns into
 * JSON, and its entries lie inside the input in order; the encoder's plan
 * of an accepted cpr-transfer stream covers every byte once, in order, and
 * sends each marker alone with its own fd.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "qemu-cpr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void plan(const uint8_t *data, size_t size, const struct qcpr_state *st)
{
	int *fds = calloc(st->n_fds + 1, sizeof(int));
	struct qcpr_writer w;
	size_t len, sent = 0, n_fd = 0;
	int fd;

	if (!fds)
		abort();
	for (size_t i = 0; i < st->n_fds; i++)
		fds[i] = 100 + (int)i;
	qcpr_writer_init(&w, data, size, st, fds);
	while ((len = qcpr_writer_next(&w, &fd)) > 0) {
		if (len > size - sent || w.off != sent)
			abort();
		if (fd >= 0 && (len != 1 || data[sent] != QCPR_MARKER || fd != 100 + (int)n_fd++))
			abort();
		qcpr_writer_advance(&w, len);
		sent += len;
	}
	if (sent != size || n_fd != st->n_fds)
		abort();
	free(fds);
}

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
	if (st->encoding == QCPR_FD_MARKER)
		plan(data, size, st);
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
