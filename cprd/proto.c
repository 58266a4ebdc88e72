/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Requests are single JSON objects, parsed strictly by json-c with a bounded
 * nesting depth after the size was checked by the caller; replies are
 * objects with "ok".  Field access is typed: a wrong type is an error, never
 * a conversion.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"
#include "cprd.h"
#include "errnames.h"
#include "proto.h"

/* One tokener for every request, reset after each: no allocation per request. */
static struct json_tokener *proto_tokener(unsigned max_depth)
{
	static struct json_tokener *tok;
	static unsigned depth;

	if (tok && depth == max_depth)
		return tok;
	if (tok) /* json-c's free does not take NULL */
		json_tokener_free(tok);
	/* json-c counts the level being opened too: @max_depth levels need one more */
	tok = json_tokener_new_ex((int)max_depth + 1);
	depth = tok ? max_depth : 0;
	if (tok)
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	return tok;
}

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF.  Bytes above 0x7f are only valid inside strings, so the
 * whole message can be checked before it is parsed. */
static bool utf8_valid(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t n;
		unsigned char lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) { /* E0: no overlong; ED: no surrogate */
			n = 2;
			lo = c == 0xe0 ? 0xa0 : 0x80;
			hi = c == 0xed ? 0x9f : 0xbf;
		} else if (c >= 0xf0 && c <= 0xf4) { /* F0: no overlong; F4: <= U+10FFFF */
			n = 3;
			lo = c == 0xf0 ? 0x90 : 0x80;
			hi = c == 0xf4 ? 0x8f : 0xbf;
		} else {
			return false; /* a continuation byte, C0, C1 or F5..FF */
		}
		if (n > len - i - 1 || p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		i += n + 1;
	}
	return true;
}

/* One pass over the raw bytes, before parsing: refuses an escaped NUL
 * (\u0000), which would cut a string or member name short wherever it is
 * used as a C string, and counts the members of every object (one ':'
 * outside strings each), so that a duplicate member, which the tokener
 * silently replaces, shows as a member missing from the parsed tree.  A
 * backslash outside strings is a syntax error the tokener refuses. */
static int raw_scan(const char *buf, size_t len, size_t *ret_members)
{
	size_t members = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		if (!in_string) {
			members += buf[i] == ':';
			in_string = buf[i] == '"';
		} else if (buf[i] == '"') {
			in_string = false;
		} else if (buf[i] == '\\' && i + 1 < len) {
			if (buf[i + 1] == 'u' && len - i >= 6 &&
			    memcmp(buf + i + 2, "0000", 4) == 0)
				return -EPROTO;
			i++; /* the escaped character */
		}
	}
	*ret_members = members;
	return 0;
}

/* Containers on the deepest path, the request object counting as 1, and
 * the members of every object in @members.  The tokener already stopped
 * anything deeper than one past the limit, so the recursion is bounded. */
static unsigned json_walk(struct json_object *o, size_t *members)
{
	unsigned d = 0;

	if (json_object_is_type(o, json_type_object)) {
		*members += (size_t)json_object_object_length(o);
		json_object_object_foreach(o, key, val)
		{
			unsigned v = json_walk(val, members);

			(void)key;
			d = v > d ? v : d;
		}
		return d + 1;
	}
	if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			unsigned v = json_walk(json_object_array_get_idx(o, i), members);

			d = v > d ? v : d;
		}
		return d + 1;
	}
	return 0;
}

int proto_parse(const char *buf, size_t len, unsigned max_depth, struct json_object **ret,
		char *why, size_t why_len)
{
	struct json_tokener *tok;
	struct json_object *o;
	enum json_tokener_error jerr;
	size_t end, raw_members = 0, members = 0;
	unsigned depth;

	if (len == 0) {
		snprintf(why, why_len, "empty message");
		return -EPROTO;
	}
	if (memchr(buf, 0, len)) {
		snprintf(why, why_len, "NUL byte in request");
		return -EPROTO;
	}
	if (!utf8_valid((const unsigned char *)buf, len)) {
		snprintf(why, why_len, "request is not valid UTF-8");
		return -EPROTO;
	}
	if (raw_scan(buf, len, &raw_members) < 0) {
		snprintf(why, why_len, "escaped NUL (\\u0000) in a string");
		return -EPROTO;
	}
	tok = proto_tokener(max_depth);
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_reset(tok);
	if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		snprintf(why, why_len, "bad JSON: %s",
			 jerr == json_tokener_continue ? "truncated"
						       : json_tokener_error_desc(jerr));
		return -EPROTO;
	}
	if (end != len) {
		json_object_put(o);
		snprintf(why, why_len, "trailing bytes after the JSON object");
		return -EPROTO;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		snprintf(why, why_len, "request is not a JSON object");
		return -EPROTO;
	}
	/* json-c lets an empty innermost container one level past its limit. */
	depth = json_walk(o, &members);
	if (depth > max_depth) {
		json_object_put(o);
		snprintf(why, why_len, "bad JSON: nesting too deep");
		return -EPROTO;
	}
	if (members != raw_members) {
		json_object_put(o);
		snprintf(why, why_len, "bad JSON: a member name repeated in one object");
		return -EPROTO;
	}
	*ret = o;
	return 0;
}

int proto_check_keys(struct json_object *req, const char *const *allowed, char *why, size_t why_len)
{
	json_object_object_foreach(req, key, val)
	{
		bool ok = strcmp(key, "op") == 0;

		(void)val;
		for (size_t i = 0; !ok && allowed && allowed[i]; i++)
			ok = strcmp(key, allowed[i]) == 0;
		if (!ok) {
			char q[64];

			snprintf(why, why_len, "unknown field %s",
				 cpr_quote(q, sizeof(q), key, strlen(key)));
			return -EINVAL;
		}
	}
	return 0;
}

static int proto_field(struct json_object *req, const char *key, bool required, enum json_type type,
		       struct json_object **ret)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return required ? -ENOENT : 0;
	if (!json_object_is_type(v, type))
		return -EINVAL;
	*ret = v;
	return 1;
}

int proto_get_str(struct json_object *req, const char *key, bool required, size_t max_len,
		  const char **ret)
{
	struct json_object *v;
	int r = proto_field(req, key, required, json_type_string, &v);

	if (r <= 0)
		return r;
	if ((size_t)json_object_get_string_len(v) > max_len)
		return -EINVAL;
	*ret = json_object_get_string(v);
	return 0;
}

int proto_get_u64(struct json_object *req, const char *key, bool required, uint64_t max,
		  uint64_t *ret)
{
	struct json_object *v;
	int64_t i;
	int r = proto_field(req, key, required, json_type_int, &v);

	if (r <= 0)
		return r;
	errno = 0;
	i = json_object_get_int64(v);
	/* json-c saturates out-of-range integers; refuse them */
	if (i < 0 || (uint64_t)i > max || i == INT64_MAX)
		return -EINVAL;
	*ret = (uint64_t)i;
	return 0;
}

int proto_get_bool(struct json_object *req, const char *key, bool required, bool *ret)
{
	struct json_object *v;
	int r = proto_field(req, key, required, json_type_boolean, &v);

	if (r <= 0)
		return r;
	*ret = json_object_get_boolean(v);
	return 0;
}

struct json_object *proto_get_obj(struct json_object *req, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(req, key, &v) ? v : NULL;
}

bool proto_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CPRD_BUNDLE_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("._:@+=/-", c)))
			return false;
	}
	return true;
}

struct json_object *proto_reply_new(const char *op)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	if (op)
		json_object_object_add(o, "op", json_object_new_string(op));
	return o;
}

struct json_object *proto_error_new(const char *op, int err, const char *message, bool fatal)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	if (op)
		json_object_object_add(o, "op", json_object_new_string(op));
	json_object_object_add(o, "error", json_object_new_string(cprd_errno_name(err)));
	json_object_object_add(o, "message", json_object_new_string(message ? message : ""));
	if (fatal)
		json_object_object_add(o, "closing", json_object_new_boolean(1));
	return o;
}

const char *proto_format(struct json_object *o, size_t *ret_len)
{
	size_t len;
	const char *s = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

	*ret_len = len;
	return s;
}
