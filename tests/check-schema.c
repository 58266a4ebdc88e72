/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The schema is frozen per released level: the table in libcpr/schema.c must
 * produce exactly the committed libcpr/schema-level*.json, those files are
 * sealed by checksum here, and each level only appends to the one before
 * (no renumbered type, moved or resized field, shrunk fixed part, reused bit).
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "cpr/state.h"
#include "internal.h"
#include "json.h"
#include "schema.h"
#include "test-util.h"

/* CRC32C of each released level's committed schema file. */
#include "schema-seal.h"

static struct json_object *committed(uint32_t level, uint32_t *ret_crc)
{
	char path[4096];
	void *buf = NULL;
	long len;
	struct json_object *o;

	snprintf(path, sizeof(path), "%s/libcpr/schema-level%u.json", test_srcdir(), level);
	len = test_read_file(path, &buf);
	ck_assert_msg(len > 0, "cannot read %s", path);
	*ret_crc = cpr_crc32c(0, buf, (size_t)len);
	o = json_tokener_parse(buf);
	ck_assert_ptr_nonnull(o);
	free(buf);
	return o;
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *x = NULL;

	ck_assert_msg(json_object_object_get_ex(o, key, &x), "missing '%s'", key);
	return x;
}

static struct json_object *find(struct json_object *arr, const char *key, struct json_object *like)
{
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *x = json_object_array_get_idx(arr, i);
		if (json_object_equal(get(x, key), get(like, key)))
			return x;
	}
	return NULL;
}

static int64_t num(struct json_object *o, const char *key)
{
	return json_object_get_int64(get(o, key));
}

START_TEST(test_schema_matches_committed)
{
	int nfds = test_count_fds();

	for (uint32_t level = CPR_LEVEL_MIN; level <= CPR_LEVEL_MAX; level++) {
		uint32_t crc;
		struct json_object *file = committed(level, &crc), *now = json_schema(level);
		ck_assert_msg(json_object_equal(file, now),
			      "libcpr/schema.c no longer produces schema-level%u.json", level);
		ck_assert_msg(crc == schema_seal[level],
			      "schema-level%u.json changed (crc %08x, sealed %08x)", level, crc,
			      schema_seal[level]);
		json_object_put(file);
		json_object_put(now);
	}
	test_assert_no_fd_leak(nfds);
}
END_TEST

static void check_fields_grow(struct json_object *a, struct json_object *b, const char *rname)
{
	struct json_object *fa = get(a, "fields"), *fb = get(b, "fields");

	ck_assert_msg(num(b, "fixed_len") >= num(a, "fixed_len"), "%s: fixed part shrank", rname);
	for (size_t i = 0; i < json_object_array_length(fa); i++) {
		struct json_object *x = json_object_array_get_idx(fa, i), *y = NULL;
		const char *name = json_object_get_string(get(x, "name"));
		for (size_t j = 0; j < json_object_array_length(fb); j++) {
			struct json_object *c = json_object_array_get_idx(fb, j);
			if (num(c, "offset") == num(x, "offset"))
				y = c;
		}
		ck_assert_msg(y, "%s.%s: field at offset %lld vanished", rname, name,
			      (long long)num(x, "offset"));
		ck_assert_msg(num(y, "size") == num(x, "size"), "%s.%s: field resized", rname,
			      name);
		if (strncmp(name, "reserved", 8) != 0)
			ck_assert_msg(json_object_equal(x, y), "%s.%s: field changed", rname, name);
	}
	for (size_t j = 0; j < json_object_array_length(fb); j++) {
		struct json_object *y = json_object_array_get_idx(fb, j);
		bool old = false;
		for (size_t i = 0; i < json_object_array_length(fa); i++)
			old |= num(json_object_array_get_idx(fa, i), "offset") == num(y, "offset");
		ck_assert_msg(old || num(y, "offset") >= num(a, "fixed_len"),
			      "%s.%s: new field not appended", rname,
			      json_object_get_string(get(y, "name")));
	}
}

static void check_flags_grow(struct json_object *a, struct json_object *b, const char *rname)
{
	struct json_object *fa = get(a, "flags"), *fb = get(b, "flags");

	for (size_t i = 0; i < json_object_array_length(fa); i++) {
		struct json_object *x = json_object_array_get_idx(fa, i), *y = find(fb, "name", x);
		ck_assert_msg(y && json_object_equal(x, y), "%s: flag %s changed", rname,
			      json_object_get_string(get(x, "name")));
	}
	for (size_t i = 0; i < json_object_array_length(fb); i++)
		for (size_t j = i + 1; j < json_object_array_length(fb); j++) {
			struct json_object *x = json_object_array_get_idx(fb, i);
			struct json_object *y = json_object_array_get_idx(fb, j);
			ck_assert_msg(!(json_object_equal(get(x, "word"), get(y, "word")) &&
					num(x, "bit") == num(y, "bit")),
				      "%s: bit reused", rname);
		}
}

/* Every level appends to the level before it, and nothing else. */
START_TEST(test_schema_levels_only_append)
{
	int nfds = test_count_fds();

	for (uint32_t level = CPR_LEVEL_MIN; level < CPR_LEVEL_MAX; level++) {
		uint32_t crc;
		struct json_object *a = committed(level, &crc), *b = committed(level + 1, &crc);
		struct json_object *ra = get(a, "records"), *rb = get(b, "records");
		struct json_object *ka = get(a, "fd_kinds"), *kb = get(b, "fd_kinds");

		json_object_object_foreach(get(a, "limits"), lname, lval)
		{
			struct json_object *nv = get(get(b, "limits"), lname);
			ck_assert_msg(json_object_get_int64(nv) >= json_object_get_int64(lval),
				      "limit %s shrank", lname);
		}
		for (size_t i = 0; i < json_object_array_length(ra); i++) {
			struct json_object *x = json_object_array_get_idx(ra, i),
					   *y = find(rb, "type", x);
			const char *name = json_object_get_string(get(x, "name"));
			ck_assert_msg(y, "record %s vanished", name);
			ck_assert_str_eq(json_object_get_string(get(y, "name")), name);
			static const char *const fixed_attrs[] = { "critical", "singleton",
								   "dense",    "string",
								   "must_off", "hint_off" };
			for (size_t k = 0; k < ARRAY_SIZE(fixed_attrs); k++)
				ck_assert_msg(json_object_equal(get(x, fixed_attrs[k]),
								get(y, fixed_attrs[k])),
					      "%s: %s changed", name, fixed_attrs[k]);
			check_fields_grow(x, y, name);
			check_flags_grow(x, y, name);
		}
		for (size_t i = 0; i < json_object_array_length(ka); i++) {
			struct json_object *x = json_object_array_get_idx(ka, i),
					   *y = find(kb, "value", x);
			ck_assert_msg(y && json_object_equal(x, y), "fd kind %lld changed",
				      (long long)num(x, "value"));
		}
		json_object_put(a);
		json_object_put(b);
	}
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The writer and the reader copy each record's fixed part through the
 * bindings of libcpr/layout.c: every field with a meaning is bound, once, to
 * the member of its name, wide enough for it; reserved fields and the
 * string's length are not.  A field added to the table but not bound would
 * be silently written as zero and never read. */
START_TEST(test_schema_layout_binds_every_field)
{
	int nfds = test_count_fds();

	for (unsigned i = 0; i < schema_record_count(); i++) {
		const struct schema_record *r = schema_record_at(i);
		unsigned n, bound = 0;
		const struct schema_bind *b = layout_binds(r->type, &n);

		if (r->type == CPR_REC_END)
			continue; /* the framing's: record_count, checked by the walk */
		for (unsigned j = 0; j < r->n_fields; j++) {
			const struct schema_field *f = &r->fields[j];
			const struct schema_bind *hit = NULL;

			for (unsigned k = 0; k < n; k++)
				if (b[k].field == j) {
					ck_assert_msg(!hit, "%s.%s is bound twice", r->name,
						      f->name);
					hit = &b[k];
				}
			if (f->kind == SF_RESERVED || (r->string && !strcmp(f->name, r->string))) {
				ck_assert_msg(!hit, "%s.%s is bound but has no member", r->name,
					      f->name);
				continue;
			}
			ck_assert_msg(hit, "%s.%s is not bound to a member", r->name, f->name);
			ck_assert_str_eq(hit->name, f->name);
			ck_assert_msg(hit->size >= f->size, "%s.%s: a %u-byte member for %u bytes",
				      r->name, f->name, hit->size, f->size);
			bound++;
		}
		ck_assert_uint_eq(bound, n);
	}
	test_assert_no_fd_leak(nfds);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("schema");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_schema_matches_committed);
	tcase_add_test(tc, test_schema_levels_only_append);
	tcase_add_test(tc, test_schema_layout_binds_every_field);
	suite_add_tcase(s, tc);
	return test_run(s);
}
