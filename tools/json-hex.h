/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprdump prints record types, offsets and addresses in hex ("0x0010",
 * "0x1000"); cprgen reads them back.  Names and other values stay as
 * json_dump_stream() gives them.
 */
#ifndef CPR_JSON_HEX_H
#define CPR_JSON_HEX_H

#include <json-c/json.h>

/* A stream dump: each record's "type" in hex (its name as "type_name"),
 * offsets and addresses in hex. */
void json_hex_dump(struct json_object *dump);
/* A json_error() object: "offset" in hex, a numeric "record" in hex. */
void json_hex_error(struct json_object *err);
/* The inverse of json_hex_dump(), for cprgen; -EINVAL on a malformed hex value. */
int json_hex_undo(struct json_object *dump);

#endif
