/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the reader.  Built with CPR_FUZZING, which skips the
 * CRC comparison so mutations reach the record parser.  Properties: never a
 * crash, leak or sanitizer report; an accepted stream re-encodes at its own
 * level (or the newest this library writes) into one that is accepted again;
 * the JSON dump of an accepted stream generates the same bytes back.
 */
#include <stdlib.h>
#include <string.h>

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
	/* cprgen(cprdump(s)) == s: the CRC is the one field the fuzz build does
	 * not check, and the generator writes it as dumped. */
	if (json_gen_stream(o, &buf, &len, &err) < 0 || len != size || memcmp(buf, data, size) != 0)
		abort();
	free(buf);
	json_object_put(o);
	cpr_state_get_info(st, &info);
	if (cpr_state_encode(st, info.emit_level < CPR_LEVEL_MAX ? info.emit_level : CPR_LEVEL_MAX,
			     NULL, NULL, &buf, &len, &err) < 0)
		abort();
	if (cpr_state_parse(buf, len, 0, &again, &err) < 0)
		abort();
	cpr_state_free(again);
	free(buf);
	cpr_state_free(st);
	return 0;
}
