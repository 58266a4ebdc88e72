/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the reader.  Built with CPR_FUZZING, which skips the
 * CRC comparison so mutations reach the record parser.  Properties: never a
 * crash, leak or sanitizer report; an accepted stream re-encodes at its own
 * level into one that is accepted again; the JSON dump never fails on a
 * stream the reader accepted.
 */
#include <stdlib.h>

#include "cpr/state.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cpr_state *st = NULL, *again = NULL;
	struct cpr_state_info info;
	struct cpr_error err;
	struct json_object *o = NULL;
	void *buf = NULL;
	size_t len;

	if (cpr_state_parse(data, size, 0, &st, &err) < 0) {
		(void)cpr_state_parse(data, size, 1, &st, &err);
		cpr_state_free(st);
		return 0;
	}
	if (json_dump_stream(data, size, &o, &err) < 0)
		abort();
	json_object_put(o);
	cpr_state_get_info(st, &info);
	if (cpr_state_encode(st, info.emit_level, NULL, NULL, &buf, &len, &err) == 0) {
		if (cpr_state_parse(buf, len, 0, &again, &err) < 0)
			abort();
		cpr_state_free(again);
		free(buf);
	}
	cpr_state_free(st);
	return 0;
}
