/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cprschema LEVEL: print the stream schema of a level as JSON (libcpr/schema-level*.json). */
#include <stdio.h>

#include "cpr/state.h"
#include "json.h"

int main(int argc, char *argv[])
{
	struct json_object *o;
	char *end;
	unsigned long level;

	if (argc != 2 || (level = strtoul(argv[1], &end, 10), *end) || level < CPR_LEVEL_MIN ||
	    level > CPR_LEVEL_MAX) {
		fprintf(stderr, "usage: cprschema LEVEL (%u..%u)\n", CPR_LEVEL_MIN, CPR_LEVEL_MAX);
		return 100;
	}
	o = json_schema((uint32_t)level);
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return 0;
}
