/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The record layout comes from the schema table alone.  This binary is
 * linked with its own build of the writer, the reader and the table
 * (libcpr/{schema,layout,encode,parse}.c with SCHEMA_TEST_MOVED), in which
 * fields of the same size trade places: FD slot and id, kind and name_len,
 * RAMBLOCK align and fd_offset, used_length and max_length, PRODUCER's two
 * versions.  A writer or a reader that restates an offset instead of taking
 * it from the table puts or finds a value at the released place, not at the
 * table's, and fails here.
 */
#include <check.h>
#include <string.h>

#include "cpr/state.h"
#include "internal.h"
#include "schema.h"
#include "state-fixture.h"
#include "stream.h"
#include "test-util.h"

struct seen {
	const struct cpr_state *st;
	unsigned checked;
};

static uint64_t member(const void *obj, const struct schema_bind *b)
{
	uint32_t v32;
	uint64_t v64;

	if (b->size == 4) {
		memcpy(&v32, (const uint8_t *)obj + b->member, 4);
		return v32;
	}
	memcpy(&v64, (const uint8_t *)obj + b->member, 8);
	return v64;
}

static const void *object_of(const struct cpr_state *st, const struct stream_rec *rec,
			     struct cpr_state_info *info, const char **ret_str)
{
	if (rec->type == CPR_REC_FD) {
		*ret_str = cpr_state_fd_get(st, rec->instance)->name;
		return cpr_state_fd_get(st, rec->instance);
	}
	if (rec->type == CPR_REC_RAMBLOCK) {
		*ret_str = cpr_state_ramblock_get(st, rec->instance)->idstr;
		return cpr_state_ramblock_get(st, rec->instance);
	}
	cpr_state_get_info(st, info);
	info->libcpr_version = CPR_LIBCPR_VERSION;
	*ret_str = info->producer;
	return info;
}

/* Every bound member is in the stream where the table puts it, at its size. */
static int check_record(void *userdata, const struct stream_rec *rec, struct cpr_error *err)
{
	struct seen *s = userdata;
	const struct schema_record *r = schema_record(rec->type);
	struct cpr_state_info info;
	const struct schema_bind *b;
	const char *str;
	const void *obj;
	unsigned n;

	(void)err;
	if (!r || rec->type == CPR_REC_END)
		return 0;
	obj = object_of(s->st, rec, &info, &str);
	b = layout_binds(rec->type, &n);
	for (unsigned i = 0; i < n; i++) {
		const struct schema_field *f = &r->fields[b[i].field];
		uint64_t want = member(obj, &b[i]);

		if (f->size < 8)
			want &= (1ull << (8 * f->size)) - 1;
		ck_assert_msg(schema_get(f, rec->fixed, rec->fixed_len) == want,
			      "%s#%u.%s is not at offset %u", r->name, rec->instance, f->name,
			      f->offset);
		s->checked++;
	}
	ck_assert_uint_eq(schema_get(schema_field(r, r->string), rec->fixed, rec->fixed_len),
			  strlen(str));
	return 0;
}

/* The moved table is the one this binary was built with. */
static void assert_moved(void)
{
	ck_assert_uint_eq(schema_record(CPR_REC_FD)->fields[FD_SLOT].offset, 8);
	ck_assert_uint_eq(schema_record(CPR_REC_FD)->fields[FD_NAME_LEN].offset, 4);
	ck_assert_uint_eq(schema_record(CPR_REC_RAMBLOCK)->fields[RB_ALIGN].offset, 32);
	ck_assert_uint_eq(schema_record(CPR_REC_RAMBLOCK)->fields[RB_MAX_LENGTH].offset, 8);
	ck_assert_uint_eq(schema_record(CPR_REC_PRODUCER)->fields[PRODUCER_VMM_VERSION].offset, 0);
}

START_TEST(test_layout_encode_moved_fields)
{
	int nfds = test_count_fds();
	struct cpr_state *st = fixture_state(FIXTURE_LEVEL2_GMEM);
	struct seen s = { .st = st };
	struct cpr_error err;
	void *buf;
	size_t len;

	assert_moved();
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &buf, &len, &err), 0);
	ck_assert_int_eq(stream_walk(buf, len, check_record, &s, &err), 0);
	/* 1 PRODUCER x 2, 5 FD x 5, 2 RAMBLOCK x 10 */
	ck_assert_uint_eq(s.checked, 2 + 5 * 5 + 2 * 10);
	free(buf);
	cpr_state_free(st);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static void same_members(uint32_t type, const void *got, const void *want)
{
	unsigned n;
	const struct schema_bind *b = layout_binds(type, &n);

	for (unsigned i = 0; i < n; i++)
		ck_assert_msg(member(got, &b[i]) == member(want, &b[i]), "%s: %s read back wrong",
			      schema_record(type)->name, b[i].name);
}

/* The reader finds every member where the table says: the same state back. */
START_TEST(test_layout_parse_moved_fields)
{
	int nfds = test_count_fds();
	struct cpr_state *st = fixture_state(FIXTURE_LEVEL2_GMEM), *back = NULL;
	struct cpr_state_info a, b;
	struct cpr_error err;
	void *buf;
	size_t len;

	assert_moved();
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &buf, &len, &err), 0);
	ck_assert_msg(cpr_state_parse(buf, len, 0, &back, &err) == 0, "%s", err.message);
	ck_assert_uint_eq(cpr_state_fd_count(back), cpr_state_fd_count(st));
	ck_assert_uint_eq(cpr_state_ramblock_count(back), cpr_state_ramblock_count(st));
	for (size_t i = 0; i < cpr_state_fd_count(st); i++) {
		same_members(CPR_REC_FD, cpr_state_fd_get(back, i), cpr_state_fd_get(st, i));
		ck_assert_str_eq(cpr_state_fd_get(back, i)->name, cpr_state_fd_get(st, i)->name);
	}
	for (size_t i = 0; i < cpr_state_ramblock_count(st); i++) {
		same_members(CPR_REC_RAMBLOCK, cpr_state_ramblock_get(back, i),
			     cpr_state_ramblock_get(st, i));
		ck_assert_str_eq(cpr_state_ramblock_get(back, i)->idstr,
				 cpr_state_ramblock_get(st, i)->idstr);
	}
	cpr_state_get_info(st, &a);
	cpr_state_get_info(back, &b);
	ck_assert_uint_eq(b.vmm_version, a.vmm_version);
	ck_assert_uint_eq(b.libcpr_version, CPR_LIBCPR_VERSION);
	free(buf);
	cpr_state_free(back);
	cpr_state_free(st);
	test_assert_no_fd_leak(nfds);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("layout");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_layout_encode_moved_fields);
	tcase_add_test(tc, test_layout_parse_moved_fields);
	suite_add_tcase(s, tc);
	return test_run(s);
}
