/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hex views of types, offsets and addresses in the JSON of a stream. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-hex.h"
#include "schema.h"

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Keys whose values are byte offsets or addresses. */
static bool is_offset_key(const char *key)
{
	return strcmp(key, "offset") == 0 || ends_with(key, "_offset") || ends_with(key, "_addr");
}

static struct json_object *hex_string(uint64_t v, int width)
{
	char s[24];

	snprintf(s, sizeof(s), "0x%0*" PRIx64, width, v);
	return json_object_new_string(s);
}

static struct json_object *hex_of(struct json_object *v, int width)
{
	if (!json_object_is_type(v, json_type_int))
		return json_object_get(v);
	return hex_string(json_object_get_uint64(v), width);
}

/* A copy of record @r, keys in the same order, with the hex views. */
static struct json_object *record_hex(struct json_object *r)
{
	struct json_object *o = json_object_new_object();

	json_object_object_foreach(r, key, val)
	{
		const struct schema_record *s;

		if (strcmp(key, "type") == 0 && json_object_is_type(val, json_type_string) &&
		    (s = schema_record_by_name(json_object_get_string(val)))) {
			json_object_object_add(o, "type", hex_string(s->type, 4));
			json_object_object_add(o, "type_name", json_object_get(val));
		} else if (strcmp(key, "type") == 0) {
			json_object_object_add(o, "type", hex_of(val, 4));
		} else if (is_offset_key(key)) {
			json_object_object_add(o, key, hex_of(val, 0));
		} else {
			json_object_object_add(o, key, json_object_get(val));
		}
	}
	return o;
}

void json_hex_dump(struct json_object *dump)
{
	struct json_object *recs;

	if (!json_object_object_get_ex(dump, "records", &recs) ||
	    !json_object_is_type(recs, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(recs); i++) {
		struct json_object *r = json_object_array_get_idx(recs, i);
		if (json_object_is_type(r, json_type_object))
			json_object_array_put_idx(recs, i, record_hex(r));
	}
}

void json_hex_error(struct json_object *err)
{
	struct json_object *v;

	if (json_object_object_get_ex(err, "offset", &v))
		json_object_object_add(err, "offset", hex_of(v, 0));
	if (json_object_object_get_ex(err, "record", &v) && json_object_is_type(v, json_type_int))
		json_object_object_add(err, "record", hex_of(v, 4));
}

/* "0x..." to a number in place; other values are left alone. */
static int unhex(struct json_object *o, const char *key)
{
	struct json_object *v;
	const char *s;
	char *end;
	uint64_t n;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return 0;
	s = json_object_get_string(v);
	if (strncmp(s, "0x", 2) != 0 && strncmp(s, "0X", 2) != 0)
		return 0;
	errno = 0;
	n = strtoull(s + 2, &end, 16);
	if (!s[2] || *end || errno)
		return -EINVAL;
	json_object_object_add(o, key, json_object_new_uint64(n));
	return 0;
}

static int record_unhex(struct json_object *r)
{
	struct json_object *name;
	int k = unhex(r, "type");

	if (k < 0)
		return k;
	/* A record given only by its name. */
	if (!json_object_object_get_ex(r, "type", NULL) &&
	    json_object_object_get_ex(r, "type_name", &name))
		json_object_object_add(r, "type", json_object_get(name));
	json_object_object_foreach(r, key, val)
	{
		(void)val;
		if (is_offset_key(key) && (k = unhex(r, key)) < 0)
			return k;
	}
	return 0;
}

int json_hex_undo(struct json_object *dump)
{
	struct json_object *recs;
	int k;

	if (!json_object_object_get_ex(dump, "records", &recs) ||
	    !json_object_is_type(recs, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(recs); i++) {
		struct json_object *r = json_object_array_get_idx(recs, i);
		if (json_object_is_type(r, json_type_object) && (k = record_unhex(r)) < 0)
			return k;
	}
	return 0;
}
