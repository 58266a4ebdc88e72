/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The stream: encode, parse, golden streams, levels and hostile input. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpr/state.h"
#include "internal.h"
#include "state-fixture.h"
#include "test-util.h"

static const char *golden_name[] = {
	[FIXTURE_LEVEL1] = "level1.cpr",
	[FIXTURE_LEVEL2_HINT] = "level2-thp.cpr",
	[FIXTURE_LEVEL2_GMEM] = "level2-gmem.cpr",
};

static size_t encode(struct cpr_state *st, uint32_t level, uint8_t **ret)
{
	struct cpr_error err = { 0 };
	void *buf = NULL;
	size_t len = 0;
	int k = cpr_state_encode(st, level, NULL, NULL, &buf, &len, &err);

	ck_assert_msg(k == 0, "encode: %d %s", k, err.message);
	*ret = buf;
	return len;
}

static size_t base_stream(uint8_t **ret)
{
	struct cpr_state *st = fixture_state(FIXTURE_LEVEL1);
	size_t len = encode(st, 0, ret);

	cpr_state_free(st);
	return len;
}

static long golden(enum fixture f, void **ret)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/tests/golden/%s", test_srcdir(), golden_name[f]);
	return test_read_file(path, ret);
}

static int parse(const void *buf, size_t len, uint32_t level, struct cpr_error *err)
{
	struct cpr_state *st = NULL;
	int k = cpr_state_parse(buf, len, level, &st, err);

	ck_assert(k < 0 ? st == NULL : st != NULL);
	cpr_state_free(st);
	return k;
}

START_TEST(test_state_encode_deterministic)
{
	int nfds = test_count_fds();
	struct cpr_state *st = fixture_state(FIXTURE_LEVEL1);
	uint8_t *a, *b;
	size_t la = encode(st, 0, &a), lb = encode(st, 0, &b);

	ck_assert_uint_eq(la, lb);
	ck_assert(memcmp(a, b, la) == 0);
	ck_assert_uint_eq(la % 8, 0);
	free(a);
	free(b);
	cpr_state_free(st);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_state_parse_roundtrip)
{
	int nfds = test_count_fds();
	struct cpr_state *st = fixture_state(FIXTURE_LEVEL2_GMEM), *back = NULL;
	struct cpr_error err = { 0 };
	struct cpr_state_info a, b;
	uint8_t *buf, *again;
	size_t len = encode(st, 2, &buf), len2;
	const void *data;
	size_t dlen;

	ck_assert_int_eq(cpr_state_parse(buf, len, 0, &back, &err), 0);
	ck_assert_uint_eq(cpr_state_fd_count(back), cpr_state_fd_count(st));
	for (size_t i = 0; i < cpr_state_fd_count(st); i++)
		ck_assert(memcmp(cpr_state_fd_get(st, i), cpr_state_fd_get(back, i),
				 sizeof(struct cpr_state_fd)) == 0);
	ck_assert_uint_eq(cpr_state_ramblock_count(back), 2);
	for (size_t i = 0; i < 2; i++)
		ck_assert(memcmp(cpr_state_ramblock_get(st, i), cpr_state_ramblock_get(back, i),
				 sizeof(struct cpr_state_ramblock)) == 0);
	ck_assert_int_eq(cpr_state_private_find(back, 0x8001, 0, &data, &dlen), 0);
	ck_assert_uint_eq(dlen, 36);
	ck_assert(memcmp(data, "rip=0xfff0", 10) == 0);
	cpr_state_get_info(st, &a);
	cpr_state_get_info(back, &b);
	ck_assert_str_eq(b.producer, "fixture-vmm 1.0");
	ck_assert(memcmp(a.stream_id, b.stream_id, 16) == 0);
	ck_assert_uint_eq(b.generation, 7);
	ck_assert_uint_eq(b.emit_level, 2);
	ck_assert_uint_eq(b.min_reader_level, 2);
	ck_assert_int_eq(cpr_state_fd_find(back, "gmem0", 0), 4);
	ck_assert_int_eq(cpr_state_ramblock_find(back, "/rom@etc/acpi/tables"), 1);
	len2 = encode(back, 2, &again);
	ck_assert_uint_eq(len, len2);
	ck_assert(memcmp(buf, again, len) == 0);
	free(buf);
	free(again);
	cpr_state_free(st);
	cpr_state_free(back);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The writer reproduces every golden stream byte for byte (level 1 golden at target 1). */
START_TEST(test_state_encode_golden)
{
	int nfds = test_count_fds();
	enum fixture f = (enum fixture)_i;
	struct cpr_state *st = fixture_state(f);
	uint8_t *buf;
	size_t len = encode(st, f == FIXTURE_LEVEL1 ? 1 : 2, &buf);
	void *want = NULL;
	long wlen;

	if (getenv("CPR_GOLDEN_WRITE")) {
		char path[4096];
		FILE *o;
		snprintf(path, sizeof(path), "%s/tests/golden/%s", test_srcdir(), golden_name[f]);
		o = fopen(path, "we");
		ck_assert_ptr_nonnull(o);
		ck_assert_uint_eq(fwrite(buf, 1, len, o), len);
		fclose(o);
	}
	wlen = golden(f, &want);
	ck_assert_int_gt(wlen, 0);
	ck_assert_uint_eq((size_t)wlen, len);
	ck_assert_msg(memcmp(want, buf, len) == 0, "golden %s differs", golden_name[f]);
	free(want);
	free(buf);
	cpr_state_free(st);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The reader accepts every golden stream and decodes the expected structures. */
START_TEST(test_state_parse_golden)
{
	int nfds = test_count_fds();
	enum fixture f = (enum fixture)_i;
	struct cpr_state *st = NULL, *ref = fixture_state(f);
	struct cpr_error err = { 0 };
	void *buf = NULL;
	long len = golden(f, &buf);

	ck_assert_int_gt(len, 0);
	ck_assert_msg(cpr_state_parse(buf, (size_t)len, 0, &st, &err) == 0, "%s", err.message);
	ck_assert_uint_eq(cpr_state_fd_count(st), cpr_state_fd_count(ref));
	ck_assert_uint_eq(cpr_state_ramblock_count(st), cpr_state_ramblock_count(ref));
	for (size_t i = 0; i < cpr_state_ramblock_count(ref); i++) {
		const struct cpr_state_ramblock *x = cpr_state_ramblock_get(st, i);
		const struct cpr_state_ramblock *y = cpr_state_ramblock_get(ref, i);
		ck_assert_str_eq(x->idstr, y->idstr);
		ck_assert_uint_eq(x->used_length, y->used_length);
		ck_assert_uint_eq(x->max_length, y->max_length);
		ck_assert_uint_eq(x->align, y->align);
		ck_assert_uint_eq(x->host_addr, y->host_addr);
		ck_assert_uint_eq(x->gmem_fd_ref, y->gmem_fd_ref);
		ck_assert_uint_eq(x->must_flags, y->must_flags);
		ck_assert_uint_eq(x->hint_flags, y->hint_flags);
		ck_assert_uint_eq(x->fd_index, y->fd_index);
		ck_assert_uint_eq(x->fd_offset, y->fd_offset);
		ck_assert_uint_eq(x->gmem_offset, y->gmem_offset);
	}
	for (size_t i = 0; i < cpr_state_fd_count(ref); i++) {
		const struct cpr_state_fd *x = cpr_state_fd_get(st, i),
					  *y = cpr_state_fd_get(ref, i);
		ck_assert_str_eq(x->name, y->name);
		ck_assert_uint_eq(x->slot, y->slot);
		ck_assert_uint_eq(x->kind, y->kind);
		ck_assert_int_eq(x->id, y->id);
	}
	{
		const struct cpr_state_private *x = cpr_state_private_get(st, 0);
		const struct cpr_state_private *y = cpr_state_private_get(ref, 0);
		struct cpr_state_info a, b;
		ck_assert_uint_eq(cpr_state_private_count(st), 1);
		ck_assert_uint_eq(x->type, y->type);
		ck_assert_uint_eq(x->len, y->len);
		ck_assert(memcmp(x->data, y->data, x->len) == 0);
		cpr_state_get_info(st, &a);
		cpr_state_get_info(ref, &b);
		ck_assert_str_eq(a.producer, b.producer);
		ck_assert(memcmp(a.stream_id, b.stream_id, 16) == 0);
		ck_assert_uint_eq(a.generation, b.generation);
		ck_assert_uint_eq(a.emit_level, f == FIXTURE_LEVEL1 ? 1 : 2);
	}
	free(buf);
	cpr_state_free(st);
	cpr_state_free(ref);
	test_assert_no_fd_leak(nfds);
}
END_TEST

struct warnings {
	int n;
	char last[320];
};

static void on_warn(void *userdata, const struct cpr_error *w)
{
	struct warnings *ws = userdata;

	ck_assert_int_eq(w->code, 0);
	ws->n++;
	snprintf(ws->last, sizeof(ws->last), "%s", w->message);
}

/* Rollback: a droppable level-2 hint is dropped with a warning and the output
 * is the level-1 golden stream. */
START_TEST(test_state_encode_target1_drops_hint)
{
	int nfds = test_count_fds();
	struct cpr_state *st = fixture_state(FIXTURE_LEVEL2_HINT);
	struct warnings ws = { 0 };
	struct cpr_error err = { 0 };
	void *buf = NULL, *want = NULL;
	size_t len;
	long wlen = golden(FIXTURE_LEVEL1, &want);

	ck_assert_int_eq(cpr_state_encode(st, 1, on_warn, &ws, &buf, &len, &err), 0);
	ck_assert_int_eq(ws.n, 1);
	ck_assert_ptr_nonnull(strstr(ws.last, "'thp'"));
	ck_assert_ptr_nonnull(strstr(ws.last, "target level 1"));
	ck_assert_uint_eq(len, (size_t)wlen);
	ck_assert(memcmp(buf, want, len) == 0);
	ck_assert_int_eq(cpr_state_check(st, 1, NULL, NULL, &err), 0);
	free(buf);
	free(want);
	cpr_state_free(st);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Rollback: a required level-2 element in use refuses the save, naming it and the target. */
START_TEST(test_state_encode_target1_refuses_gmem)
{
	int nfds = test_count_fds();
	struct cpr_state *st = fixture_state(FIXTURE_LEVEL2_GMEM);
	struct cpr_error err = { 0 };
	void *buf = (void *)1;
	size_t len = 99;

	ck_assert_int_eq(cpr_state_encode(st, 1, NULL, NULL, &buf, &len, &err), -EPROTONOSUPPORT);
	ck_assert_ptr_eq(buf, (void *)1);
	ck_assert_uint_eq(len, 99);
	ck_assert_int_eq(err.code, -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(err.message, "guest-memfd"));
	ck_assert_ptr_nonnull(strstr(err.message, "target level 1"));
	ck_assert_int_eq(cpr_state_check(st, 1, NULL, NULL, &err), -EPROTONOSUPPORT);
	ck_assert_int_eq(cpr_state_check(st, 2, NULL, NULL, &err), 0);
	cpr_state_free(st);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A reader capped at level 1 accepts level-2 streams that only use droppable hints. */
START_TEST(test_state_parse_capped_accepts_hint)
{
	int nfds = test_count_fds();
	struct cpr_state *st = NULL;
	struct cpr_error err = { 0 };
	void *buf = NULL;
	long len = golden(FIXTURE_LEVEL2_HINT, &buf);

	ck_assert_msg(cpr_state_parse(buf, (size_t)len, 1, &st, &err) == 0, "%s", err.message);
	/* Unknown hint bits are kept as read, with no effect on a level-1 reader. */
	ck_assert_uint_eq(cpr_state_ramblock_get(st, 0)->hint_flags,
			  CPR_STATE_RB_HINT_DONTDUMP | CPR_STATE_RB_HINT_THP);
	free(buf);
	cpr_state_free(st);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* ...and refuses, naming the element and the producer, when a required one is used. */
START_TEST(test_state_parse_capped_refuses_gmem)
{
	int nfds = test_count_fds();
	struct cpr_error err = { 0 };
	void *buf = NULL;
	long len = golden(FIXTURE_LEVEL2_GMEM, &buf);

	ck_assert_int_eq(parse(buf, (size_t)len, 1, &err), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(err.message, "guest-memfd"));
	ck_assert_ptr_nonnull(strstr(err.message, "'fixture-vmm 1.0'"));
	ck_assert_int_eq(parse(buf, (size_t)len, 2, &err), 0);
	free(buf);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The RAMBLOCK gmem fields alone (no new fd kind) are refused by a level-1 reader too. */
START_TEST(test_state_parse_capped_refuses_gmem_field)
{
	int nfds = test_count_fds();
	struct cpr_error err = { 0 };
	uint8_t *buf;
	size_t len = base_stream(&buf);
	size_t rb = fixture_record(buf, len, CPR_REC_RAMBLOCK, 0);

	le64_store(buf + rb + 16 + 64, 4096); /* gmem_offset */
	fixture_fix_crc(buf, len);
	ck_assert_int_eq(parse(buf, len, 1, &err), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(err.message, "'gmem_offset' (level 2)"));
	ck_assert_ptr_nonnull(strstr(err.message, "fixture-vmm"));
	free(buf);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A level-1 stream read by a level-2 reader: the shorter fixed part is zero-filled. */
START_TEST(test_state_parse_level1_zero_fills)
{
	int nfds = test_count_fds();
	struct cpr_state *st = NULL;
	struct cpr_error err = { 0 };
	void *buf = NULL;
	long len = golden(FIXTURE_LEVEL1, &buf);

	ck_assert_int_eq(cpr_state_parse(buf, (size_t)len, 2, &st, &err), 0);
	ck_assert_uint_eq(cpr_state_ramblock_get(st, 0)->gmem_offset, 0);
	ck_assert_uint_eq(cpr_state_ramblock_get(st, 0)->gmem_fd_ref, 0);
	free(buf);
	cpr_state_free(st);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_state_limits_values)
{
	/* A cap lost in a refactor must fail here. */
	ck_assert_uint_eq(CPR_HEADER_SIZE, 80);
	ck_assert_uint_eq(CPR_HEADER_MAX, 4096);
	ck_assert_uint_eq(CPR_STREAM_MAX, 16u << 20);
	ck_assert_uint_eq(CPR_RECORD_MAX, 65536);
	ck_assert_uint_eq(CPR_RECORDS_MAX, 65536);
	ck_assert_uint_eq(CPR_FDS_MAX, 16384);
	ck_assert_uint_eq(CPR_RAMBLOCKS_MAX, 1024);
	ck_assert_uint_eq(CPR_PRIVATE_MAX, 4096);
	ck_assert_uint_eq(CPR_NAME_MAX, 255);
	ck_assert_uint_eq(CPR_PRODUCER_MAX, 128);
}
END_TEST

/* Each count limit: the API refuses one more; a stream at the limit round-trips. */
START_TEST(test_state_limits_counts)
{
	int nfds = test_count_fds();
	struct cpr_state *st = NULL, *back = NULL;
	struct cpr_state_fd fd = { .kind = CPR_FD_MEMFD };
	struct cpr_state_ramblock rb = { .align = 4096, .used_length = 4096, .max_length = 4096 };
	struct cpr_error err = { 0 };
	void *buf = NULL;
	size_t len;
	char big[CPR_NAME_MAX + 2];

	cpr_state_new(&st);
	for (uint32_t i = 0; i < CPR_FDS_MAX; i++) {
		snprintf(fd.name, sizeof(fd.name), "fd%u", i);
		fd.slot = i;
		ck_assert_int_eq(cpr_state_add_fd(st, &fd), (int)i);
	}
	snprintf(fd.name, sizeof(fd.name), "one-more");
	ck_assert_int_eq(cpr_state_add_fd(st, &fd), -E2BIG);
	for (uint32_t i = 0; i < CPR_RAMBLOCKS_MAX; i++) {
		snprintf(rb.idstr, sizeof(rb.idstr), "rb%u", i);
		rb.fd_index = i;
		ck_assert_int_eq(cpr_state_add_ramblock(st, &rb), (int)i);
	}
	snprintf(rb.idstr, sizeof(rb.idstr), "one-more");
	ck_assert_int_eq(cpr_state_add_ramblock(st, &rb), -E2BIG);
	for (uint32_t i = 0; i < CPR_PRIVATE_MAX; i++)
		ck_assert_int_eq(cpr_state_add_private(st, 0x9000, i, "x", 1), 0);
	ck_assert_int_eq(cpr_state_add_private(st, 0x9000, CPR_PRIVATE_MAX, "x", 1), -E2BIG);
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &buf, &len, &err), 0);
	ck_assert_int_eq(cpr_state_parse(buf, len, 0, &back, &err), 0);
	ck_assert_uint_eq(cpr_state_fd_count(back), CPR_FDS_MAX);
	ck_assert_int_eq(cpr_state_fd_find(back, "fd16383", 0), 16383);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	ck_assert_int_eq(cpr_state_fd_find(back, big, 0), -ENOENT);
	free(buf);
	cpr_state_free(back);
	cpr_state_free(st);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_state_api_errors)
{
	int nfds = test_count_fds();
	struct cpr_state *st = NULL;
	struct cpr_state_fd fd = { .kind = CPR_FD_MEMFD, .name = "a" };
	struct cpr_state_ramblock rb = { .idstr = "r" };
	struct cpr_error err = { 0 };
	uint8_t id[16] = { 0 };
	char big[CPR_RECORD_MAX + 1];
	void *buf;
	size_t len;

	ck_assert_int_eq(cpr_state_new(NULL), -EINVAL);
	ck_assert_int_eq(cpr_state_new(&st), 0);
	ck_assert_int_eq(cpr_state_add_fd(st, &fd), 0);
	ck_assert_int_eq(cpr_state_add_fd(st, &fd), -EEXIST);
	fd.id = 1;
	fd.slot = 1;
	ck_assert_int_eq(cpr_state_add_fd(st, &fd), 1);
	fd.kind = 0;
	ck_assert_int_eq(cpr_state_add_fd(st, &fd), -EINVAL);
	fd.kind = CPR_FD_MEMFD;
	strcpy(fd.name, "has space");
	ck_assert_int_eq(cpr_state_add_fd(st, &fd), -EINVAL);
	fd.name[0] = 0;
	ck_assert_int_eq(cpr_state_add_fd(st, &fd), -EINVAL);
	ck_assert_int_eq(cpr_state_add_fd(NULL, &fd), -EINVAL);
	ck_assert_int_eq(cpr_state_add_ramblock(st, &rb), 0);
	ck_assert_int_eq(cpr_state_add_ramblock(st, &rb), -EEXIST);
	ck_assert_int_eq(cpr_state_add_private(st, 0x7fff, 0, "x", 1), -EINVAL);
	ck_assert_int_eq(cpr_state_add_private(st, 0xffff, 0, "x", 1), -EINVAL);
	ck_assert_int_eq(cpr_state_add_private(st, 0x8000, 0, NULL, 1), -EINVAL);
	ck_assert_int_eq(cpr_state_add_private(st, 0x8000, 0, big, sizeof(big)), -E2BIG);
	ck_assert_int_eq(cpr_state_add_private(st, 0x8000, 0, "x", 1), 0);
	ck_assert_int_eq(cpr_state_add_private(st, 0x8000, 0, "y", 1), -EEXIST);
	ck_assert_int_eq(cpr_state_private_find(st, 0x8000, 1, NULL, NULL), -ENOENT);
	ck_assert_int_eq(cpr_state_set_producer(st, "bad\ttab", 0), -EINVAL);
	ck_assert_int_eq(cpr_state_set_page_shift(st, 11), -EINVAL);
	ck_assert_int_eq(cpr_state_set_page_shift(st, 31), -EINVAL);
	ck_assert_int_eq(cpr_state_set_stream_id(st, NULL), -EINVAL);
	ck_assert_int_eq(cpr_state_set_stream_id(st, id), 0);
	ck_assert_int_eq(cpr_state_encode(st, 3, NULL, NULL, &buf, &len, &err), -EPROTONOSUPPORT);
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, NULL, &len, &err), -EINVAL);
	/* The block references nothing valid: the writer refuses what the reader would. */
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &buf, &len, &err), -EBADMSG);
	ck_assert_msg(strstr(err.message, "RAMBLOCK#0 'r'"), "%s", err.message);
	ck_assert_int_eq(cpr_state_parse(NULL, 0, 0, &st, &err), -EINVAL);
	ck_assert_int_eq(cpr_state_parse("x", 1, 9, &st, &err), -EINVAL);
	ck_assert_ptr_null(cpr_state_fd_get(st, 99));
	ck_assert_str_eq(cpr_fd_kind_to_string(CPR_FD_IOMMUFD), "iommufd");
	ck_assert_int_eq(cpr_fd_kind_from_string("vfio-cdev"), CPR_FD_VFIO_CDEV);
	ck_assert_int_eq(cpr_fd_kind_from_string("nope"), -EINVAL);
	cpr_state_free(st);
	cpr_state_free(NULL);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The writer's own check judges what the reader would, with its errors: one
 * rule broken on a valid state each time. */
enum bend { SLOT_REUSED, SLOT_RANGE, FD_MUST, RB_MUST, RB_DANGLING, RB_OVERLAP, N_BENDS };

static void bend(struct cpr_state *st, enum bend b)
{
	struct cpr_state_fd *f0 = (struct cpr_state_fd *)cpr_state_fd_get(st, 0);
	struct cpr_state_fd *f1 = (struct cpr_state_fd *)cpr_state_fd_get(st, 1);
	struct cpr_state_ramblock *r0 = (struct cpr_state_ramblock *)cpr_state_ramblock_get(st, 0);
	struct cpr_state_ramblock *r1 = (struct cpr_state_ramblock *)cpr_state_ramblock_get(st, 1);

	switch (b) {
	case SLOT_REUSED:
		f1->slot = f0->slot;
		break;
	case SLOT_RANGE:
		f1->slot = 0x80000000u;
		break;
	case FD_MUST:
		f1->must_flags = 1u << 31;
		break;
	case RB_MUST:
		r1->must_flags |= 1u << 30;
		break;
	case RB_DANGLING:
		r1->fd_index = 2;
		break; /* an eventfd */
	case RB_OVERLAP:
		r1->fd_index = r0->fd_index;
		r1->fd_offset = 0;
		break;
	default:
		break;
	}
}

START_TEST(test_state_encode_refuses_as_reader)
{
	static const struct {
		int code;
		uint32_t type, instance;
		const char *msg;
	} want[N_BENDS] = {
		[SLOT_REUSED] = { -EBADMSG, CPR_REC_FD, 1,
				  "FD#1 '/rom@etc/acpi/tables' reuses slot 0" },
		[SLOT_RANGE] = { -EBADMSG, CPR_REC_FD, 1, "slot 2147483648 is out of range" },
		[FD_MUST] = { -EPROTONOSUPPORT, CPR_REC_FD, 1, "(bit 31) unknown to this reader" },
		[RB_MUST] = { -EPROTONOSUPPORT, CPR_REC_RAMBLOCK, 1,
			      "(bit 30) unknown to this reader" },
		[RB_DANGLING] = { -EBADMSG, CPR_REC_RAMBLOCK, 1, "does not name a memfd" },
		[RB_OVERLAP] = { -EBADMSG, CPR_REC_RAMBLOCK, 1, "overlaps another block" },
	};
	struct cpr_state *st = fixture_state(FIXTURE_LEVEL1);
	struct cpr_error err = { 0 };
	void *buf = NULL;
	size_t len = 0;
	int nfds = test_count_fds();

	bend(st, (enum bend)_i);
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &buf, &len, &err), want[_i].code);
	ck_assert_ptr_null(buf);
	ck_assert_int_eq(err.code, want[_i].code);
	ck_assert_uint_eq(err.record_type, want[_i].type);
	ck_assert_uint_eq(err.instance, want[_i].instance);
	ck_assert_msg(strstr(err.message, want[_i].msg), "%s", err.message);
	ck_assert_int_eq(cpr_state_check(st, 0, NULL, NULL, &err), want[_i].code);
	cpr_state_free(st);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* ---- hostile input: one mutation of the base stream each, a specific refusal each */

enum where { HDR, REC, FIX, VAR };
struct hostile {
	const char *name;
	enum where where;
	uint32_t type, inst;
	unsigned off, width;
	uint64_t value;
	bool keep_crc; /* do not recompute the CRC */
	uint32_t level;
	int code;
	const char *substr;
};

#define H(n, o, w, v, c, s)                           \
	{                                             \
		n, HDR, 0, 0, o, w, v, false, 0, c, s \
	}
#define HK(n, o, w, v, c, s)                         \
	{                                            \
		n, HDR, 0, 0, o, w, v, true, 0, c, s \
	}
#define R(n, t, i, o, w, v, c, s)                     \
	{                                             \
		n, REC, t, i, o, w, v, false, 0, c, s \
	}
#define FX(n, t, i, o, w, v, c, s)                    \
	{                                             \
		n, FIX, t, i, o, w, v, false, 0, c, s \
	}
#define FXL(n, t, i, o, w, v, l, c, s)                \
	{                                             \
		n, FIX, t, i, o, w, v, false, l, c, s \
	}
#define V(n, t, i, o, w, v, c, s)                     \
	{                                             \
		n, VAR, t, i, o, w, v, false, 0, c, s \
	}
#define FD CPR_REC_FD
#define RB CPR_REC_RAMBLOCK
#define PR CPR_REC_PRODUCER
#define END CPR_REC_END
#define BAD -EBADMSG
#define NOSUP -EPROTONOSUPPORT

static const struct hostile hostile[] = {
	HK("magic first byte", 0, 1, 0x0a, BAD, "bad magic"),
	HK("magic CR LF mangled", 4, 1, 0x0a, BAD, "mangled"),
	HK("magic ^Z lost", 6, 1, 0x00, BAD, "mangled"),
	HK("magic last byte", 7, 1, 0x0d, BAD, "mangled"),
	HK("magic 7-bit", 0, 1, 0x09, BAD, "bad magic"),
	H("header_len 0", 8, 2, 0, BAD, "header_len"),
	H("header_len 79", 8, 2, 79, BAD, "header_len"),
	H("header_len 81", 8, 2, 81, BAD, "header_len"),
	H("header_len 4104", 8, 2, 4104, BAD, "header_len"),
	H("header_len 0xffff", 8, 2, 0xffff, BAD, "header_len"),
	H("header_len 88 non-zero tail", 8, 2, 88, NOSUP, "beyond byte 80"),
	H("format_version 0", 10, 2, 0, NOSUP, "format_version 0"),
	H("format_version 2", 10, 2, 2, NOSUP, "format_version 2"),
	H("format_version 0xffff", 10, 2, 0xffff, NOSUP, "format_version"),
	H("header_flags", 12, 4, 1, BAD, "reserved header"),
	H("header reserved byte", 77, 1, 1, BAD, "reserved header"),
	H("header reserved last byte", 79, 1, 0x80, BAD, "reserved header"),
	H("total_len 0", 16, 8, 0, BAD, "total_len"),
	H("total_len 8", 16, 8, 8, BAD, "total_len"),
	H("total_len 2^64-8", 16, 8, UINT64_MAX - 7, -E2BIG, "exceeds"),
	H("total_len cap+8", 16, 8, (16u << 20) + 8, -E2BIG, "exceeds"),
	HK("crc flipped", 24, 1, 0x00, BAD, "CRC32C"),
	H("incompat bit 0", 32, 8, 1, NOSUP, "incompatible features 0x1"),
	H("incompat bit 63", 32, 8, 1ull << 63, NOSUP, "0x8000000000000000"),
	H("compat bit accepted", 40, 8, 1ull << 5, 0, NULL),
	H("emit_level 0", 28, 4, 0, BAD, "inconsistent levels"),
	H("producer_level below emit", 48, 4, 1, BAD, "inconsistent levels"),
	H("min_reader_level 0", 52, 4, 0, BAD, "inconsistent levels"),
	H("min_reader_level above emit", 52, 4, 3, BAD, "inconsistent levels"),
	H("page_shift 11", 76, 1, 11, BAD, "page_shift"),
	H("page_shift 64", 76, 1, 64, BAD, "page_shift"),
	H("page_shift 255", 76, 1, 255, BAD, "page_shift"),
	R("rflags reserved bit", FD, 0, 4, 2, 3, BAD, "reserved rflags"),
	R("rflags all ones", RB, 1, 4, 2, 0xffff, BAD, "reserved rflags"),
	R("body_len 0xffffffff", FD, 0, 12, 4, 0xffffffffu, -E2BIG, "exceeds the limit"),
	R("body_len cap+1", FD, 1, 12, 4, 65537, -E2BIG, "exceeds the limit"),
	R("body_len past end", RB, 0, 12, 4, 60000, BAD, "runs past"),
	R("body_len short", FD, 0, 12, 4, 8, BAD, "fixed_len"),
	R("fixed_len over body", FD, 0, 6, 2, 200, BAD, "fixed_len"),
	R("fixed_len below minimum", FD, 0, 6, 2, 16, BAD, "shorter than"),
	R("fixed_len inside a field", RB, 0, 6, 2, 66, BAD, "ends inside a field"),
	R("FD not critical", FD, 0, 4, 2, 0, BAD, "must be CRITICAL"),
	R("PRODUCER critical", PR, 0, 4, 2, 1, BAD, "must not be CRITICAL"),
	R("FD instance gap", FD, 1, 8, 4, 5, BAD, "instance 5"),
	R("RAMBLOCK instance repeat", RB, 1, 8, 4, 0, BAD, "instance 0"),
	R("PRODUCER instance 1", PR, 0, 8, 4, 1, BAD, "instance 1"),
	R("END not critical", END, 0, 4, 2, 0, BAD, "END record is malformed"),
	R("END instance 1", END, 0, 8, 4, 1, BAD, "END record is malformed"),
	FX("END count high", END, 0, 0, 4, 99, BAD, "END counts 99"),
	FX("END reserved", END, 0, 4, 4, 1, BAD, "END record is malformed"),
	R("unknown critical type", FD, 3, 0, 4, 0x0777, NOSUP,
	  "unknown critical record type 0x777"),
	R("private critical", 0x8001, 0, 4, 2, 1, BAD, "marked CRITICAL"),
	FX("FD reserved", FD, 0, 20, 4, 1, BAD, "reserved bytes"),
	FX("RAMBLOCK reserved", RB, 0, 60, 2, 1, BAD, "reserved bytes"),
	FX("PRODUCER reserved", PR, 0, 12, 4, 1, BAD, "reserved bytes"),
	FX("FD kind 0", FD, 0, 4, 2, 0, NOSUP, "kind"),
	FX("FD kind 200", FD, 0, 4, 2, 200, NOSUP, "kind"),
	FX("FD unknown must bit", FD, 0, 12, 4, 1, NOSUP, "requires flag"),
	FX("RAMBLOCK unknown must bit", RB, 0, 48, 4, 1u << 7, NOSUP, "(bit 7)"),
	FX("RAMBLOCK unknown hint bit", RB, 0, 52, 4, 1u << 9, 0, NULL),
	FX("FD unknown hint bit", FD, 1, 16, 4, 0xffff0000u, 0, NULL),
	FX("FD name_len 0", FD, 0, 6, 2, 0, BAD, "does not match"),
	FX("FD name_len long", FD, 0, 6, 2, 7, BAD, "does not match"),
	FX("PRODUCER name_len", PR, 0, 8, 2, 300, BAD, "does not match"),
	V("FD name space", FD, 0, 0, 1, ' ', BAD, "not allowed"),
	V("FD name high byte", FD, 0, 1, 1, 0x80, BAD, "not allowed"),
	V("FD name NUL", FD, 0, 2, 1, 0, BAD, "not allowed"),
	V("FD name quote", FD, 0, 0, 1, '"', BAD, "not allowed"),
	V("RAMBLOCK idstr backslash", RB, 1, 3, 1, '\\', BAD, "not allowed"),
	V("PRODUCER control char", PR, 0, 0, 1, 0x1b, BAD, "not allowed"),
	FX("FD slot reused", FD, 1, 0, 4, 0, BAD, "reuses slot"),
	FX("FD slot negative", FD, 1, 0, 4, 0x80000000u, BAD, "out of range"),
	FX("align 0", RB, 0, 0, 8, 0, BAD, "align"),
	FX("align 3", RB, 0, 0, 8, 3, BAD, "align"),
	FX("align below page", RB, 1, 0, 8, 2048, BAD, "align"),
	FX("align 2 GiB", RB, 0, 0, 8, 1ull << 31, BAD, "align"),
	FX("used_length 0", RB, 0, 8, 8, 0, BAD, "used_length"),
	FX("used_length over max", RB, 1, 8, 8, 4u << 20, BAD, "used_length"),
	FX("used_length unaligned", RB, 1, 8, 8, 4097, BAD, "used_length"),
	FX("max_length 0", RB, 0, 16, 8, 0, BAD, "max_length"),
	FX("max_length 2^64-4096", RB, 0, 16, 8, UINT64_MAX - 4095, BAD, "max_length"),
	FX("not resizeable, used != max", RB, 0, 8, 8, 128u << 20, BAD, "not resizeable"),
	FX("fd_offset unaligned", RB, 0, 32, 8, 1, BAD, "fd_offset"),
	FX("fd_offset overflows", RB, 0, 32, 8, UINT64_MAX - 4095, BAD, "fd_offset"),
	FX("fd_offset ends at 2^62", RB, 0, 32, 8, (1ull << 62) - (256u << 20), 0, NULL),
	FX("fd_offset ends past 2^62", RB, 0, 32, 8, (1ull << 62) - (256u << 20) + 4096, BAD,
	   "fd_offset"),
	FX("fd_index not a memfd", RB, 0, 40, 4, 2, BAD, "fd_index"),
	FX("fd_index out of range", RB, 0, 40, 4, 99, BAD, "fd_index"),
	FX("blocks overlap in one memfd", RB, 1, 40, 4, 0, BAD, "overlaps"),
	FX("hugetlb needs 2 MiB units", RB, 1, 48, 4,
	   CPR_STATE_RB_HUGETLB | CPR_STATE_RB_RESIZEABLE, BAD, "used_length"),
	FX("map_at_addr at 0", RB, 1, 24, 8, 0, BAD, "host_addr"),
	FX("map_at_addr kernel half", RB, 1, 24, 8, 0xffff800000000000ull, BAD, "host_addr"),
	FX("map_at_addr unaligned", RB, 1, 24, 8, 0x7f1300000800ull, BAD, "host_addr"),
	FX("map_at_addr past 128 TiB", RB, 1, 24, 8, (1ull << 47) - 4096, BAD, "host_addr"),
	FX("host_addr free without map_at_addr", RB, 0, 24, 8, 0, 0, NULL),
	FX("gmem ref to a memfd", RB, 0, 44, 4, 1, BAD, "gmem_fd_ref"),
	FX("gmem ref out of range", RB, 0, 44, 4, 77, BAD, "gmem_fd_ref"),
	FX("gmem_offset without ref", RB, 0, 64, 8, 4096, BAD, "gmem_offset"),
	FXL("gmem ref, level-1 reader", RB, 0, 44, 4, 1, 1, NOSUP, "'gmem_fd_ref' (level 2)"),
	FXL("thp hint, level-1 reader", RB, 1, 52, 4, CPR_STATE_RB_HINT_THP, 1, 0, NULL),
};

static void poke(uint8_t *p, unsigned width, uint64_t v)
{
	switch (width) {
	case 1:
		*p = (uint8_t)v;
		break;
	case 2:
		le16_store(p, (uint16_t)v);
		break;
	case 4:
		le32_store(p, (uint32_t)v);
		break;
	default:
		le64_store(p, v);
		break;
	}
}

START_TEST(test_state_parse_hostile)
{
	const struct hostile *h = &hostile[_i];
	int nfds = test_count_fds();
	struct cpr_error err = { 0 };
	uint8_t *buf;
	size_t len = base_stream(&buf), at = 0;
	int k;

	if (h->where != HDR) {
		at = fixture_record(buf, len, h->type, h->inst);
		ck_assert_msg(at, "%s: record not found", h->name);
		if (h->where == FIX)
			at += 16;
		else if (h->where == VAR)
			at += 16 + le16_load(buf + at + 6);
	}
	if (h->keep_crc && h->off == 24)
		buf[24] ^= 0x40;
	else
		poke(buf + at + h->off, h->width, h->value);
	if (!h->keep_crc)
		fixture_fix_crc(buf, len);
	k = parse(buf, len, h->level, &err);
	ck_assert_msg(k == h->code, "%s: got %d (%s), want %d", h->name, k, err.message, h->code);
	if (h->substr)
		ck_assert_msg(strstr(err.message, h->substr), "%s: message '%s' lacks '%s'",
			      h->name, err.message, h->substr);
	free(buf);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Every prefix of a valid stream is refused, and a stream with bytes appended too. */
START_TEST(test_state_parse_truncated)
{
	int nfds = test_count_fds();
	struct cpr_error err = { 0 };
	uint8_t *buf, *longer;
	size_t len = base_stream(&buf);

	for (size_t n = 0; n < len; n++)
		ck_assert_int_lt(parse(buf, n, 0, &err), 0);
	/* ...also with total_len and the CRC made to match the cut: then the
	 * record framing itself must refuse every 8-byte-aligned prefix. */
	for (size_t n = 80; n < len; n += 8) {
		uint8_t *cut = malloc(n);
		memcpy(cut, buf, n);
		le64_store(cut + 16, n);
		fixture_fix_crc(cut, n);
		ck_assert_int_eq(parse(cut, n, 0, &err), -EBADMSG);
		free(cut);
	}
	longer = calloc(1, len + 8);
	memcpy(longer, buf, len);
	ck_assert_int_eq(parse(longer, len + 8, 0, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.message, "total_len"));
	free(longer);
	free(buf);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Every single-bit flip is caught by the CRC; with the CRC recomputed the
 * parser still never crashes and never half-fills a state. */
START_TEST(test_state_parse_bitflips)
{
	int nfds = test_count_fds();
	struct cpr_error err = { 0 };
	uint8_t *buf;
	size_t len = base_stream(&buf);

	for (size_t i = 0; i < len * 8; i++) {
		buf[i / 8] ^= (uint8_t)(1u << (i % 8));
		ck_assert_int_lt(parse(buf, len, 0, &err), 0);
		fixture_fix_crc(buf, len);
		(void)parse(buf, len, 0, &err);
		buf[i / 8] ^= (uint8_t)(1u << (i % 8));
		fixture_fix_crc(buf, len);
	}
	ck_assert_int_eq(parse(buf, len, 0, &err), 0);
	free(buf);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Insert a record before END: a non-critical unknown one is skipped, a critical one refused. */
static size_t insert_before_end(uint8_t **pbuf, size_t len, uint32_t type, uint16_t rflags)
{
	size_t end = fixture_record(*pbuf, len, CPR_REC_END, 0), n = len + 24;
	uint8_t *b = calloc(1, n);

	memcpy(b, *pbuf, end);
	le32_store(b + end, type);
	le16_store(b + end + 4, rflags);
	le16_store(b + end + 6, 4);
	le32_store(b + end + 12, 6);
	memcpy(b + end + 16, "\1\2\3\4\5\6", 6);
	memcpy(b + end + 24, *pbuf + end, len - end);
	le32_store(b + end + 24 + 16, le32_load(b + end + 24 + 16) + 1);
	le64_store(b + 16, n);
	fixture_fix_crc(b, n);
	free(*pbuf);
	*pbuf = b;
	return n;
}

START_TEST(test_state_parse_unknown_records)
{
	int nfds = test_count_fds();
	struct cpr_error err = { 0 };
	uint8_t *buf;
	size_t len = base_stream(&buf);

	len = insert_before_end(&buf, len, 0x0400, 0);
	ck_assert_msg(parse(buf, len, 0, &err) == 0, "%s", err.message);
	len = insert_before_end(&buf, len, 0x0401, 1);
	ck_assert_int_eq(parse(buf, len, 0, &err), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(err.message, "0x401"));
	ck_assert_ptr_nonnull(strstr(err.message, "'fixture-vmm 1.0'"));
	ck_assert_uint_eq(err.record_type, 0x401);
	free(buf);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A million tiny records cannot exhaust anything: the record count is capped. */
START_TEST(test_state_parse_record_flood)
{
	int nfds = test_count_fds();
	struct cpr_error err = { 0 };
	size_t n = 80 + (CPR_RECORDS_MAX + 1) * 16 + 24, off = 80;
	uint8_t *b = calloc(1, n), *base;

	base_stream(&base);
	memcpy(b, base, 80);
	for (uint32_t i = 0; i <= CPR_RECORDS_MAX; i++, off += 16)
		le32_store(b + off, 0x0500);
	le32_store(b + off, CPR_REC_END);
	le16_store(b + off + 4, 1);
	le16_store(b + off + 6, 8);
	le32_store(b + off + 12, 8);
	le64_store(b + 16, n);
	fixture_fix_crc(b, n);
	ck_assert_int_eq(parse(b, n, 0, &err), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err.message, "records"));
	free(b);
	free(base);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_state_encode_deterministic);
	tcase_add_test(tc, test_state_parse_roundtrip);
	tcase_add_loop_test(tc, test_state_encode_golden, FIXTURE_LEVEL1, FIXTURE_LEVEL2_GMEM + 1);
	tcase_add_loop_test(tc, test_state_parse_golden, FIXTURE_LEVEL1, FIXTURE_LEVEL2_GMEM + 1);
	tcase_add_test(tc, test_state_encode_target1_drops_hint);
	tcase_add_test(tc, test_state_encode_target1_refuses_gmem);
	tcase_add_test(tc, test_state_parse_capped_accepts_hint);
	tcase_add_test(tc, test_state_parse_capped_refuses_gmem);
	tcase_add_test(tc, test_state_parse_capped_refuses_gmem_field);
	tcase_add_test(tc, test_state_parse_level1_zero_fills);
	tcase_add_test(tc, test_state_limits_values);
	tcase_add_test(tc, test_state_limits_counts);
	tcase_add_test(tc, test_state_api_errors);
	tcase_add_loop_test(tc, test_state_encode_refuses_as_reader, 0, N_BENDS);
	tcase_add_loop_test(tc, test_state_parse_hostile, 0, (int)ARRAY_SIZE(hostile));
	tcase_add_test(tc, test_state_parse_truncated);
	tcase_add_test(tc, test_state_parse_bitflips);
	tcase_add_test(tc, test_state_parse_unknown_records);
	tcase_add_test(tc, test_state_parse_record_flood);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(state_suite());
}
