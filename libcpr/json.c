/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * JSON views: a stream as JSON (cprdump), JSON as a stream (cprgen), and the
 * schema of a level (the frozen per-level files).  The dump and the generator
 * are exact inverses on every stream whose framing is sound.
 */
#include <stdio.h>

#include "internal.h"
#include "json.h"
#include "schema.h"
#include "stream.h"

/* ------------------------------------------------------------------ helpers */

static struct json_object *hex_new(const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	_cleanup_free_ char *s = malloc(n * 2 + 1);
	struct json_object *o;

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = digits[p[i] >> 4];
		s[2 * i + 1] = digits[p[i] & 15];
	}
	s[2 * n] = 0;
	o = json_object_new_string_len(s, (int)(n * 2));
	return o;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode a hex string (whitespace ignored) into a malloc()ed buffer. */
static int hex_get(struct json_object *o, uint8_t **ret, size_t *ret_len)
{
	_cleanup_free_ uint8_t *b = NULL;
	const char *s;
	size_t n, k = 0;
	int hi = -1;

	if (!json_object_is_type(o, json_type_string))
		return -EINVAL;
	s = json_object_get_string(o);
	n = strlen(s);
	b = malloc(n / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int v;
		if (s[i] == ' ' || s[i] == '\n' || s[i] == ':')
			continue;
		v = hexval(s[i]);
		if (v < 0)
			return -EINVAL;
		if (hi < 0) {
			hi = v;
		} else {
			b[k++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0)
		return -EINVAL;
	*ret = TAKE_PTR(b);
	*ret_len = k;
	return 0;
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static bool printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return false;
	return true;
}

struct json_object *json_error(const struct cpr_error *err)
{
	struct json_object *o = json_object_new_object();
	const struct schema_record *r = schema_record(err->record_type);

	json_object_object_add(o, "code", json_object_new_int(err->code));
	json_object_object_add(
		o, "errno",
		json_object_new_string(err->code ? strerrorname_np(-err->code) ?: "?" : "0"));
	if (err->record_type != UINT32_MAX) {
		if (r)
			json_object_object_add(o, "record", json_object_new_string(r->name));
		else
			add_u64(o, "record", err->record_type);
	}
	if (err->instance != UINT32_MAX)
		add_u64(o, "instance", err->instance);
	if (err->offset != UINT64_MAX)
		add_u64(o, "offset", err->offset);
	json_object_object_add(o, "message", json_object_new_string(err->message));
	return o;
}

/* ------------------------------------------------------------------ dump */

static struct json_object *dump_header(const uint8_t *b)
{
	struct json_object *h = json_object_new_object();
	uint32_t hlen = le16_load(b + HDR_LEN);

	json_object_object_add(h, "magic", hex_new(b, 8));
	add_u64(h, "header_len", hlen);
	add_u64(h, "format_version", le16_load(b + HDR_VERSION));
	add_u64(h, "header_flags", le32_load(b + HDR_FLAGS));
	add_u64(h, "total_len", le64_load(b + HDR_TOTAL));
	add_u64(h, "crc32c", le32_load(b + HDR_CRC));
	add_u64(h, "emit_level", le32_load(b + HDR_EMIT));
	add_u64(h, "incompat_features", le64_load(b + HDR_INCOMPAT));
	add_u64(h, "compat_features", le64_load(b + HDR_COMPAT));
	add_u64(h, "producer_level", le32_load(b + HDR_PRODUCER_LEVEL));
	add_u64(h, "min_reader_level", le32_load(b + HDR_MIN_READER));
	json_object_object_add(h, "stream_id", hex_new(b + HDR_ID, 16));
	add_u64(h, "generation", le32_load(b + HDR_GENERATION));
	add_u64(h, "page_shift", b[HDR_PAGE_SHIFT]);
	if (!mem_is_zero(b + HDR_RESERVED, 3))
		json_object_object_add(h, "reserved_hex", hex_new(b + HDR_RESERVED, 3));
	if (hlen > CPR_HEADER_SIZE)
		json_object_object_add(h, "header_tail_hex",
				       hex_new(b + CPR_HEADER_SIZE, hlen - CPR_HEADER_SIZE));
	return h;
}

static const char *string_key(const struct schema_record *r)
{
	return r->type == CPR_REC_RAMBLOCK ? "idstr" : "name";
}

static void dump_flags(struct json_object *o, const struct schema_record *r, const uint8_t *fixed)
{
	struct json_object *names = json_object_new_array();

	for (unsigned i = 0; i < r->n_flags; i++) {
		const struct schema_flag *f = &r->flags[i];
		int off = f->word == SW_MUST ? r->must_off : r->hint_off;
		if (le32_load(fixed + off) & (1u << f->bit))
			json_object_array_add(names, json_object_new_string(f->name));
	}
	json_object_object_add(o, "flags", names);
}

static void dump_field(struct json_object *o, const struct schema_record *r,
		       const struct schema_field *f, const uint8_t *fixed,
		       const struct stream_rec *rec)
{
	uint64_t v = schema_get(f, fixed, CPR_FIXED_MAX);
	const char *kind;

	if (f->kind == SF_RESERVED) {
		if (v)
			json_object_object_add(o, f->name, hex_new(fixed + f->offset, f->size));
		return;
	}
	if (r->string && strcmp(f->name, r->string) == 0) {
		if (v != rec->var_len)
			add_u64(o, f->name, v);
		return;
	}
	if (r->type == CPR_REC_FD && strcmp(f->name, "kind") == 0 &&
	    (kind = cpr_fd_kind_to_string((uint32_t)v))) {
		json_object_object_add(o, "kind", json_object_new_string(kind));
		return;
	}
	if (f->kind == SF_I32)
		json_object_object_add(o, f->name, json_object_new_int((int32_t)(uint32_t)v));
	else
		add_u64(o, f->name, v);
}

static void dump_known(struct json_object *o, const struct schema_record *r,
		       const struct stream_rec *rec)
{
	uint8_t fixed[CPR_FIXED_MAX] = { 0 };
	uint16_t max = schema_fixed_len(r, CPR_LEVEL_MAX);
	uint16_t n = rec->fixed_len < max ? rec->fixed_len : max;

	memcpy(fixed, rec->fixed, n);
	for (unsigned i = 0; i < r->n_fields; i++)
		if (r->fields[i].offset + r->fields[i].size <= rec->fixed_len)
			dump_field(o, r, &r->fields[i], fixed, rec);
	if (rec->fixed_len > max)
		json_object_object_add(o, "fixed_tail_hex",
				       hex_new(rec->fixed + max, rec->fixed_len - max));
	if (r->n_flags)
		dump_flags(o, r, fixed);
	if (!r->string) {
		if (rec->var_len)
			json_object_object_add(o, "var_hex", hex_new(rec->var, rec->var_len));
	} else if (printable(rec->var, rec->var_len)) {
		json_object_object_add(
			o, string_key(r),
			json_object_new_string_len((const char *)rec->var, (int)rec->var_len));
	} else {
		json_object_object_add(o, "var_hex", hex_new(rec->var, rec->var_len));
	}
}

struct dump_ctx {
	uint32_t emit_level;
	struct json_object *records;
};

static int dump_record(void *userdata, const struct stream_rec *rec, struct cpr_error *err)
{
	struct dump_ctx *d = userdata;
	struct json_object *o = json_object_new_object();
	const struct schema_record *r = schema_record(rec->type);
	uint16_t default_fixed = r ? schema_fixed_len(r, d->emit_level) : 0;

	if (r)
		json_object_object_add(o, "type", json_object_new_string(r->name));
	else
		add_u64(o, "type", rec->type);
	json_object_object_add(o, "critical",
			       json_object_new_boolean(rec->rflags & CPR_RFLAG_CRITICAL));
	add_u64(o, "instance", rec->instance);
	if (!r || rec->fixed_len != default_fixed)
		add_u64(o, "fixed_len", rec->fixed_len);
	if (r) {
		dump_known(o, r, rec);
	} else {
		if (rec->type >= CPR_REC_PRIVATE_FIRST && rec->type <= CPR_REC_PRIVATE_LAST)
			json_object_object_add(o, "private", json_object_new_boolean(1));
		json_object_object_add(o, "fixed_hex", hex_new(rec->fixed, rec->fixed_len));
		json_object_object_add(o, "var_hex", hex_new(rec->var, rec->var_len));
	}
	json_object_array_add(d->records, o);
	return 0;
}

int json_dump_stream(const void *buf, size_t len, struct json_object **ret_obj,
		     struct cpr_error *ret_err)
{
	struct dump_ctx ctx = { 0 };
	struct json_object *o;
	int k;

	if (len >= CPR_HEADER_SIZE)
		ctx.emit_level = le32_load((const uint8_t *)buf + HDR_EMIT);
	ctx.records = json_object_new_array();
	k = stream_walk(buf, len, dump_record, &ctx, ret_err);
	if (k < 0) {
		json_object_put(ctx.records);
		return k;
	}
	o = json_object_new_object();
	json_object_object_add(o, "header", dump_header(buf));
	json_object_object_add(o, "records", ctx.records);
	*ret_obj = o;
	return 0;
}

/* ------------------------------------------------------------------ generate */

struct gen {
	uint8_t *buf;
	size_t len, cap;
	uint32_t emit_level;
	struct cpr_error *err;
};

static int gen_put(struct gen *g, const void *p, size_t n)
{
	if (n > g->cap - g->len) {
		size_t cap = (g->cap ? g->cap : 4096);
		uint8_t *b;
		while (cap - g->len < n)
			cap *= 2;
		if (cap > (size_t)CPR_STREAM_MAX * 4)
			return -E2BIG;
		b = realloc(g->buf, cap);
		if (!b)
			return -ENOMEM;
		memset(b + g->cap, 0, cap - g->cap);
		g->buf = b;
		g->cap = cap;
	}
	if (p)
		memcpy(g->buf + g->len, p, n);
	else
		memset(g->buf + g->len, 0, n);
	g->len += n;
	return 0;
}

static bool get_u64(struct json_object *o, const char *key, uint64_t *v)
{
	struct json_object *x;

	if (!json_object_object_get_ex(o, key, &x))
		return false;
	if (json_object_is_type(x, json_type_int)) {
		*v = json_object_get_int64(x) < 0 ? (uint64_t)json_object_get_int64(x)
						  : json_object_get_uint64(x);
		return true;
	}
	if (json_object_is_type(x, json_type_boolean)) {
		*v = json_object_get_boolean(x);
		return true;
	}
	return false;
}

static uint64_t opt_u64(struct json_object *o, const char *key, uint64_t dflt)
{
	uint64_t v;
	return get_u64(o, key, &v) ? v : dflt;
}

static int opt_hex(struct json_object *o, const char *key, uint8_t **ret, size_t *ret_len)
{
	struct json_object *x;

	if (!json_object_object_get_ex(o, key, &x))
		return 0;
	return hex_get(x, ret, ret_len) < 0 ? -EINVAL : 1;
}

static int gen_fail(struct gen *g, const char *what, unsigned index)
{
	return cpr_fail(g->err, -EINVAL, NO_TYPE, index, UINT64_MAX, "record %u: %s", index, what);
}

static int gen_header(struct gen *g, struct json_object *h)
{
	uint8_t b[CPR_HEADER_SIZE] = { 0 };
	_cleanup_free_ uint8_t *x = NULL;
	size_t n;
	uint64_t hlen = opt_u64(h, "header_len", CPR_HEADER_SIZE);
	int k;

	memcpy(b, cpr_magic, 8);
	if ((k = opt_hex(h, "magic", &x, &n)) < 0 || (k > 0 && n != 8))
		return cpr_fail(g->err, -EINVAL, NO_TYPE, NO_INST, 0,
				"header: magic must be 8 hex bytes");
	if (k > 0)
		memcpy(b, x, 8);
	g->emit_level = (uint32_t)opt_u64(h, "emit_level", CPR_LEVEL_MAX);
	le16_store(b + HDR_LEN, (uint16_t)hlen);
	le16_store(b + HDR_VERSION, (uint16_t)opt_u64(h, "format_version", CPR_FORMAT_VERSION));
	le32_store(b + HDR_FLAGS, (uint32_t)opt_u64(h, "header_flags", 0));
	le32_store(b + HDR_EMIT, g->emit_level);
	le64_store(b + HDR_INCOMPAT, opt_u64(h, "incompat_features", 0));
	le64_store(b + HDR_COMPAT, opt_u64(h, "compat_features", 0));
	le32_store(b + HDR_PRODUCER_LEVEL, (uint32_t)opt_u64(h, "producer_level", CPR_LEVEL_MAX));
	le32_store(b + HDR_MIN_READER, (uint32_t)opt_u64(h, "min_reader_level", CPR_LEVEL_MIN));
	le32_store(b + HDR_GENERATION, (uint32_t)opt_u64(h, "generation", 0));
	b[HDR_PAGE_SHIFT] = (uint8_t)opt_u64(h, "page_shift", 12);
	free(TAKE_PTR(x));
	if ((k = opt_hex(h, "stream_id", &x, &n)) < 0 || (k > 0 && n != 16))
		return cpr_fail(g->err, -EINVAL, NO_TYPE, NO_INST, 0,
				"header: stream_id must be 16 hex bytes");
	if (k > 0)
		memcpy(b + HDR_ID, x, 16);
	free(TAKE_PTR(x));
	if ((k = opt_hex(h, "reserved_hex", &x, &n)) < 0 || (k > 0 && n != 3))
		return cpr_fail(g->err, -EINVAL, NO_TYPE, NO_INST, 0,
				"header: reserved_hex must be 3 bytes");
	if (k > 0)
		memcpy(b + HDR_RESERVED, x, 3);
	k = gen_put(g, b, sizeof(b));
	if (k < 0)
		return k;
	free(TAKE_PTR(x));
	if ((k = opt_hex(h, "header_tail_hex", &x, &n)) < 0)
		return cpr_fail(g->err, -EINVAL, NO_TYPE, NO_INST, 0,
				"header: bad header_tail_hex");
	return k > 0 ? gen_put(g, x, n) : 0;
}

static int record_type(struct json_object *o, uint32_t *ret)
{
	struct json_object *t;
	const struct schema_record *r;

	if (!json_object_object_get_ex(o, "type", &t))
		return -EINVAL;
	if (json_object_is_type(t, json_type_string)) {
		r = schema_record_by_name(json_object_get_string(t));
		if (!r)
			return -EINVAL;
		*ret = r->type;
		return 0;
	}
	if (!json_object_is_type(t, json_type_int))
		return -EINVAL;
	*ret = (uint32_t)json_object_get_int64(t);
	return 0;
}

/* Fixed part of a known record from its named fields. */
static int gen_fixed(struct gen *g, const struct schema_record *r, struct json_object *o,
		     uint8_t *fixed, size_t var_len)
{
	for (unsigned i = 0; i < r->n_fields; i++) {
		const struct schema_field *f = &r->fields[i];
		struct json_object *x;
		uint64_t v = 0;

		if (f->kind == SF_RESERVED) {
			_cleanup_free_ uint8_t *b = NULL;
			size_t n;
			int k = opt_hex(o, f->name, &b, &n);
			if (k < 0 || (k > 0 && n != f->size))
				return -EINVAL;
			if (k > 0)
				memcpy(fixed + f->offset, b, n);
			continue;
		}
		if (r->type == CPR_REC_FD && strcmp(f->name, "kind") == 0 &&
		    json_object_object_get_ex(o, "kind", &x) &&
		    json_object_is_type(x, json_type_string)) {
			int kind = cpr_fd_kind_from_string(json_object_get_string(x));
			if (kind < 0)
				return -EINVAL;
			v = (uint64_t)kind;
		} else if (r->string && strcmp(f->name, r->string) == 0) {
			v = opt_u64(o, f->name, var_len);
		} else {
			v = opt_u64(o, f->name, 0);
		}
		schema_put(f, fixed, v);
	}
	return 0;
}

static int gen_record(struct gen *g, struct json_object *o, unsigned index, uint32_t *counts)
{
	_cleanup_free_ uint8_t *fixed = NULL, *var = NULL, *pad = NULL;
	size_t fixed_len, var_len = 0, pad_len;
	const struct schema_record *r;
	uint8_t hdr[CPR_REC_HDR_SIZE];
	struct json_object *x;
	uint32_t type;
	int k;

	if (!json_object_is_type(o, json_type_object) || record_type(o, &type) < 0)
		return gen_fail(g, "needs a \"type\" (a record name or a number)", index);
	r = schema_record(type);
	fixed_len = opt_u64(o, "fixed_len", r ? schema_fixed_len(r, g->emit_level) : 0);
	if (fixed_len > 0xffff)
		return gen_fail(g, "fixed_len over 65535", index);
	fixed = calloc(1, fixed_len > CPR_FIXED_MAX ? fixed_len : CPR_FIXED_MAX);
	if (!fixed)
		return -ENOMEM;
	if ((k = opt_hex(o, "var_hex", &var, &var_len)) < 0)
		return gen_fail(g, "bad var_hex", index);
	if (!k && r && r->string && json_object_object_get_ex(o, string_key(r), &x)) {
		if (!json_object_is_type(x, json_type_string))
			return gen_fail(g, "a string field must be a JSON string", index);
		var_len = strlen(json_object_get_string(x));
		var = (uint8_t *)strdup(json_object_get_string(x));
		if (!var)
			return -ENOMEM;
	}
	if (r && gen_fixed(g, r, o, fixed, var_len) < 0)
		return gen_fail(g, "bad field value", index);
	if (r && type == CPR_REC_END && !json_object_object_get_ex(o, "record_count", &x))
		le32_store(fixed, index);
	if (r && fixed_len > schema_fixed_len(r, CPR_LEVEL_MAX)) {
		_cleanup_free_ uint8_t *tail = NULL;
		size_t n, known = schema_fixed_len(r, CPR_LEVEL_MAX);
		if ((k = opt_hex(o, "fixed_tail_hex", &tail, &n)) < 0 ||
		    (k > 0 && n != fixed_len - known))
			return gen_fail(g,
					"fixed_tail_hex must cover fixed_len beyond the known part",
					index);
		if (k > 0)
			memcpy(fixed + known, tail, n);
	}
	{
		_cleanup_free_ uint8_t *fx = NULL;
		size_t n;
		if ((k = opt_hex(o, "fixed_hex", &fx, &n)) < 0 || (k > 0 && n != fixed_len))
			return gen_fail(g, "fixed_hex must have fixed_len bytes", index);
		if (k > 0)
			memcpy(fixed, fx, n);
	}
	le32_store(hdr, type);
	le16_store(hdr + 4, (uint16_t)opt_u64(o, "rflags",
					      opt_u64(o, "critical", r ? r->critical : 0)
						      ? CPR_RFLAG_CRITICAL
						      : 0));
	le16_store(hdr + 6, (uint16_t)fixed_len);
	le32_store(hdr + 8,
		   (uint32_t)opt_u64(o, "instance",
				     r && r->dense ? counts[r == schema_record(CPR_REC_FD) ? 0 : 1]
						   : 0));
	le32_store(hdr + 12, (uint32_t)opt_u64(o, "body_len", fixed_len + var_len));
	if (r && r->dense)
		counts[type == CPR_REC_FD ? 0 : 1]++;
	pad_len = PAD8(fixed_len + var_len);
	if ((k = opt_hex(o, "pad_hex", &pad, &pad_len)) < 0)
		return gen_fail(g, "bad pad_hex", index);
	if ((k = gen_put(g, hdr, sizeof(hdr))) < 0 || (k = gen_put(g, fixed, fixed_len)) < 0 ||
	    (k = gen_put(g, var, var_len)) < 0 || (k = gen_put(g, pad, pad_len)) < 0)
		return k;
	return 0;
}

int json_gen_stream(struct json_object *obj, void **ret_buf, size_t *ret_len,
		    struct cpr_error *ret_err)
{
	struct gen g = { .err = ret_err };
	struct json_object *h = NULL, *recs = NULL;
	_cleanup_free_ uint8_t *tail = NULL;
	uint32_t counts[2] = { 0, 0 };
	size_t n;
	uint64_t v;
	int k;

	if (!json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, "records", &recs) ||
	    !json_object_is_type(recs, json_type_array))
		return cpr_fail(ret_err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"expected an object with a \"records\" array");
	if (!json_object_object_get_ex(obj, "header", &h))
		h = NULL;
	k = gen_header(&g, h);
	for (size_t i = 0; k >= 0 && i < json_object_array_length(recs); i++)
		k = gen_record(&g, json_object_array_get_idx(recs, i), (unsigned)i, counts);
	if (k >= 0 && (k = opt_hex(obj, "trailing_hex", &tail, &n)) > 0)
		k = gen_put(&g, tail, n);
	if (k < 0) {
		free(g.buf);
		return k;
	}
	le64_store(g.buf + HDR_TOTAL, opt_u64(h, "total_len", g.len));
	le32_store(g.buf + HDR_CRC, 0);
	le32_store(g.buf + HDR_CRC,
		   get_u64(h, "crc32c", &v) ? (uint32_t)v : cpr_crc32c(0, g.buf, g.len));
	if (get_u64(obj, "truncate", &v) && v < g.len)
		g.len = v;
	*ret_buf = g.buf;
	*ret_len = g.len;
	return 0;
}

/* ------------------------------------------------------------------ schema */

static const char *const policy_names[] = { "base", "required", "droppable" };
static const char *const kind_names[] = { "u16", "u32", "i32", "u64", "reserved" };

static struct json_object *schema_field_json(const struct schema_field *f, const char *name)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(name));
	add_u64(o, "offset", f->offset);
	add_u64(o, "size", f->size);
	json_object_object_add(
		o, "kind",
		json_object_new_string(name == f->name ? kind_names[f->kind] : "reserved"));
	add_u64(o, "level", name == f->name ? f->level : 1);
	json_object_object_add(
		o, "policy",
		json_object_new_string(name == f->name ? policy_names[f->policy] : "base"));
	return o;
}

static struct json_object *schema_record_json(const struct schema_record *r, uint32_t level)
{
	struct json_object *o = json_object_new_object(), *fields = json_object_new_array();
	struct json_object *flags = json_object_new_array();
	uint16_t flen = schema_fixed_len(r, level);
	char name[64];

	add_u64(o, "type", r->type);
	json_object_object_add(o, "name", json_object_new_string(r->name));
	add_u64(o, "level", r->level);
	json_object_object_add(o, "critical", json_object_new_boolean(r->critical));
	json_object_object_add(o, "singleton", json_object_new_boolean(r->singleton));
	json_object_object_add(o, "dense", json_object_new_boolean(r->dense));
	json_object_object_add(o, "string", r->string ? json_object_new_string(r->string) : NULL);
	json_object_object_add(o, "must_off", json_object_new_int(r->must_off));
	json_object_object_add(o, "hint_off", json_object_new_int(r->hint_off));
	add_u64(o, "fixed_len", flen);
	for (unsigned i = 0; i < r->n_fields; i++) {
		const struct schema_field *f = &r->fields[i];
		if (f->level <= level) {
			json_object_array_add(fields, schema_field_json(f, f->name));
		} else if (f->offset < flen) {
			snprintf(name, sizeof(name), "reserved@%u", f->offset);
			json_object_array_add(fields, schema_field_json(f, name));
		}
	}
	json_object_object_add(o, "fields", fields);
	for (unsigned i = 0; i < r->n_flags; i++) {
		const struct schema_flag *f = &r->flags[i];
		struct json_object *x;
		if (f->level > level)
			continue;
		x = json_object_new_object();
		json_object_object_add(x, "name", json_object_new_string(f->name));
		json_object_object_add(
			x, "word", json_object_new_string(f->word == SW_MUST ? "must" : "hint"));
		add_u64(x, "bit", f->bit);
		add_u64(x, "level", f->level);
		json_object_object_add(x, "policy",
				       json_object_new_string(policy_names[f->policy]));
		json_object_array_add(flags, x);
	}
	json_object_object_add(o, "flags", flags);
	return o;
}

struct json_object *json_schema(uint32_t level)
{
	struct json_object *o = json_object_new_object(), *recs = json_object_new_array();
	struct json_object *kinds = json_object_new_array(), *limits = json_object_new_object();

	add_u64(o, "level", level);
	add_u64(o, "format_version", CPR_FORMAT_VERSION);
	add_u64(o, "header_size", CPR_HEADER_SIZE);
	add_u64(o, "record_header_size", CPR_REC_HDR_SIZE);
	for (unsigned i = 0; i < schema_record_count(); i++)
		if (schema_record_at(i)->level <= level)
			json_object_array_add(recs, schema_record_json(schema_record_at(i), level));
	json_object_object_add(o, "records", recs);
	for (unsigned i = 0; i < schema_fd_kind_count(); i++) {
		const struct schema_value *v = schema_fd_kind_at(i);
		struct json_object *x;
		if (v->level > level)
			continue;
		x = json_object_new_object();
		json_object_object_add(x, "name", json_object_new_string(v->name));
		add_u64(x, "value", v->value);
		add_u64(x, "level", v->level);
		json_object_object_add(x, "policy",
				       json_object_new_string(policy_names[v->policy]));
		json_object_array_add(kinds, x);
	}
	json_object_object_add(o, "fd_kinds", kinds);
	add_u64(limits, "stream_max", CPR_STREAM_MAX);
	add_u64(limits, "header_max", CPR_HEADER_MAX);
	add_u64(limits, "record_max", CPR_RECORD_MAX);
	add_u64(limits, "records_max", CPR_RECORDS_MAX);
	add_u64(limits, "fds_max", CPR_FDS_MAX);
	add_u64(limits, "ramblocks_max", CPR_RAMBLOCKS_MAX);
	add_u64(limits, "private_max", CPR_PRIVATE_MAX);
	add_u64(limits, "name_max", CPR_NAME_MAX);
	add_u64(limits, "producer_max", CPR_PRODUCER_MAX);
	json_object_object_add(o, "limits", limits);
	add_u64(o, "private_first", CPR_REC_PRIVATE_FIRST);
	add_u64(o, "private_last", CPR_REC_PRIVATE_LAST);
	return o;
}
