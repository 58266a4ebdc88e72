/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The wire protocol (cprd-protocol(7)): strict JSON requests, replies. */
#ifndef CPRD_PROTO_H
#define CPRD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

/* Parse one request: a JSON object, nothing before or after it. */
int proto_parse(const char *buf, size_t len, unsigned max_depth, struct json_object **ret,
		char *why, size_t why_len);

/* Refuse keys other than "op" and @allowed (NULL-terminated). */
int proto_check_keys(struct json_object *req, const char *const *allowed, char *why,
		     size_t why_len);
/* Typed fields: -ENOENT absent (when !required it returns 0 and leaves *ret),
 * -EINVAL wrong type or out of range. */
int proto_get_str(struct json_object *req, const char *key, bool required, size_t max_len,
		  const char **ret);
int proto_get_u64(struct json_object *req, const char *key, bool required, uint64_t max,
		  uint64_t *ret);
int proto_get_bool(struct json_object *req, const char *key, bool required, bool *ret);
struct json_object *proto_get_obj(struct json_object *req, const char *key);

/* Bundle names: 1..CPRD_BUNDLE_NAME_MAX of [A-Za-z0-9._:@+=-] and '/'. */
bool proto_name_valid(const char *s);

struct json_object *proto_reply_new(const char *op);
struct json_object *proto_error_new(const char *op, int err, const char *message, bool fatal);
/* Serialise compactly; *ret_len excludes the NUL. */
const char *proto_format(struct json_object *o, size_t *ret_len);

#endif
