/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON views of streams and of the schema (json-c).  Used by the tools and cprd. */
#ifndef CPR_JSON_H
#define CPR_JSON_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "cpr/state.h"

/*
 * Stream -> JSON: the header and every record in stream order, known records
 * decoded by the schema, unknown ones as hex.  The framing must be sound
 * (stream_walk); record contents need not be.
 */
int json_dump_stream(const void *buf, size_t len, struct json_object **ret_obj,
		     struct cpr_error *ret_err);
/*
 * JSON -> stream, byte for byte as described: derived values (lengths,
 * counts, CRC) are computed unless the JSON gives them, so deliberately
 * broken streams can be written.  No validation.
 */
int json_gen_stream(struct json_object *obj, void **ret_buf, size_t *ret_len,
		    struct cpr_error *ret_err);
/* The schema of @level: record types, fields, flags, fd kinds. */
struct json_object *json_schema(uint32_t level);
/* A struct cpr_error as a JSON object. */
struct json_object *json_error(const struct cpr_error *err);

#endif
