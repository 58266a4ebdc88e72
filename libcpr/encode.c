/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The writer.  Deterministic: records in a fixed order (PRODUCER, FDs,
 * RAMBLOCKs, VMM-private, END), every reserved byte zero, so the same state
 * and target level always give the same bytes.  Elements newer than the
 * target level are judged from the schema alone: unused ones are omitted,
 * droppable ones are dropped with a warning, required ones refuse the encode
 * before anything irreversible has happened.
 */
#include <stdio.h>

#include "cpr/state.h"
#include "internal.h"
#include "schema.h"
#include "stream.h"

struct writer {
	uint8_t *buf; /* NULL while sizing */
	size_t len;
	uint32_t target;
	uint32_t min_reader;
	uint32_t records;
	cpr_diag_fn warn;
	void *userdata;
	struct cpr_error *err;
};

static void put_bytes(struct writer *w, const void *p, size_t n)
{
	if (w->buf && n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void put_record(struct writer *w, uint32_t type, bool critical, uint32_t instance,
		       const uint8_t *fixed, uint16_t fixed_len, const void *var, uint32_t var_len)
{
	uint8_t hdr[CPR_REC_HDR_SIZE];
	static const uint8_t zero[8];
	uint32_t body = fixed_len + var_len;

	le32_store(hdr, type);
	le16_store(hdr + 4, critical ? CPR_RFLAG_CRITICAL : 0);
	le16_store(hdr + 6, fixed_len);
	le32_store(hdr + 8, instance);
	le32_store(hdr + 12, body);
	put_bytes(w, hdr, sizeof(hdr));
	put_bytes(w, fixed, fixed_len);
	put_bytes(w, var, var_len);
	put_bytes(w, zero, PAD8(body));
	w->records++;
}

/* The record an element belongs to: named in messages only, formatted only
 * when one is written. */
struct owner {
	const struct schema_record *r;
	uint32_t instance;
	const char *key; /* FD name or RAM block idstr */
	int32_t id;	 /* FD id; RAM blocks have none */
};

/* "'name'/3" for an FD, "'idstr'" for a RAM block; "flag 'x'" for a flag. */
struct words {
	char label[CPR_NAME_MAX + 16];
	char what[64];
};

static void describe(const struct owner *o, const char *what, bool flag, struct words *d)
{
	if (o->r->type == CPR_REC_FD)
		snprintf(d->label, sizeof(d->label), "'%s'/%d", o->key, o->id);
	else
		snprintf(d->label, sizeof(d->label), "'%s'", o->key);
	snprintf(d->what, sizeof(d->what), flag ? "flag '%s'" : "%s", what);
}

static void warn_drop(struct writer *w, const struct owner *o, const char *what, bool flag,
		      unsigned level)
{
	struct cpr_error d;
	struct words s;

	if (!w->warn || !w->buf)
		return;
	describe(o, what, flag, &s);
	cpr_error_set(&d, 0, o->r->type, o->instance, UINT64_MAX,
		      "%s %s: dropping %s (level %u) for target level %u", o->r->name, s.label,
		      s.what, level, w->target);
	w->warn(w->userdata, &d);
}

static int refuse(struct writer *w, const struct owner *o, const char *what, bool flag,
		  unsigned level)
{
	struct words s;

	describe(o, what, flag, &s);
	cpr_error_set(w->err, -EPROTONOSUPPORT, o->r->type, o->instance, UINT64_MAX,
		      "%s %s uses %s, introduced at level %u and required when used; "
		      "target level %u cannot carry it",
		      o->r->name, s.label, s.what, level, w->target);
	return -EPROTONOSUPPORT;
}

/* Judge one element newer than the target: keep, drop, or refuse. */
static int judge(struct writer *w, const struct owner *o, const char *what, bool flag,
		 unsigned level, unsigned policy, bool *drop)
{
	*drop = false;
	if (level <= w->target) {
		if (policy == SP_REQUIRED && level > w->min_reader)
			w->min_reader = level;
		return 0;
	}
	if (policy == SP_DROPPABLE) {
		warn_drop(w, o, what, flag, level);
		*drop = true;
		return 0;
	}
	return refuse(w, o, what, flag, level);
}

static int apply_flags(struct writer *w, const struct owner *o, uint8_t *fixed)
{
	const struct schema_record *r = o->r;

	for (unsigned i = 0; i < r->n_flags; i++) {
		const struct schema_flag *f = &r->flags[i];
		int off = f->word == SW_MUST ? r->must_off : r->hint_off;
		uint32_t word = le32_load(fixed + off);
		bool drop;
		int k;

		if (!(word & (1u << f->bit)))
			continue;
		k = judge(w, o, f->name, true, f->level, f->policy, &drop);
		if (k < 0)
			return k;
		if (drop)
			le32_store(fixed + off, word & ~(1u << f->bit));
	}
	return 0;
}

/* Apply the target level to a fixed part built at the newest level. */
static int apply_target(struct writer *w, const struct owner *o, uint8_t *fixed)
{
	for (unsigned i = 0; i < o->r->n_fields; i++) {
		const struct schema_field *f = &o->r->fields[i];
		bool drop;
		int k;

		if (f->policy == SP_BASE || !schema_get(f, fixed, CPR_FIXED_MAX))
			continue;
		k = judge(w, o, f->name, false, f->level, f->policy, &drop);
		if (k < 0)
			return k;
		if (drop)
			schema_put(f, fixed, 0);
	}
	return apply_flags(w, o, fixed);
}

static void put_producer(struct writer *w, const struct cpr_state_info *info)
{
	const struct schema_record *r = schema_record(CPR_REC_PRODUCER);
	uint8_t fixed[CPR_FIXED_MAX] = { 0 };
	uint32_t n = (uint32_t)strlen(info->producer);
	struct cpr_state_info own = *info;

	/* This writer's own version, whatever state it re-encodes. */
	own.libcpr_version = CPR_LIBCPR_VERSION;
	layout_store(r, &own, fixed);
	layout_put(r, PRODUCER_NAME_LEN, fixed, n);
	put_record(w, r->type, false, 0, fixed, schema_fixed_len(r, w->target), info->producer, n);
}

static int put_fd(struct writer *w, const struct cpr_state_fd *fd, uint32_t i)
{
	const struct schema_record *r = schema_record(CPR_REC_FD);
	const struct schema_value *kind = schema_fd_kind(fd->kind);
	const struct owner o = { .r = r, .instance = i, .key = fd->name, .id = fd->id };
	uint8_t fixed[CPR_FIXED_MAX] = { 0 };
	uint32_t n = (uint32_t)strlen(fd->name);
	bool drop;
	int k;

	if (!kind) {
		cpr_error_set(w->err, -EINVAL, r->type, i, UINT64_MAX,
			      "FD '%s'/%d has unknown kind %u", fd->name, fd->id, fd->kind);
		return -EINVAL;
	}
	k = judge(w, &o, kind->name, false, kind->level, kind->policy, &drop);
	if (k < 0)
		return k;
	layout_store(r, fd, fixed);
	layout_put(r, FD_NAME_LEN, fixed, n);
	k = apply_target(w, &o, fixed);
	if (k < 0)
		return k;
	put_record(w, r->type, true, i, fixed, schema_fixed_len(r, w->target), fd->name, n);
	return 0;
}

static int put_ramblock(struct writer *w, const struct cpr_state_ramblock *rb, uint32_t i)
{
	const struct schema_record *r = schema_record(CPR_REC_RAMBLOCK);
	const struct owner o = { .r = r, .instance = i, .key = rb->idstr };
	uint8_t fixed[CPR_FIXED_MAX] = { 0 };
	uint32_t n = (uint32_t)strlen(rb->idstr);
	int k;

	layout_store(r, rb, fixed);
	layout_put(r, RB_IDSTR_LEN, fixed, n);
	k = apply_target(w, &o, fixed);
	if (k < 0)
		return k;
	put_record(w, r->type, true, i, fixed, schema_fixed_len(r, w->target), rb->idstr, n);
	return 0;
}

static void put_end(struct writer *w)
{
	const struct schema_record *r = schema_record(CPR_REC_END);
	uint8_t fixed[CPR_FIXED_MAX] = { 0 };

	layout_put(r, END_RECORD_COUNT, fixed, w->records);
	put_record(w, r->type, true, 0, fixed, schema_fixed_len(r, w->target), NULL, 0);
}

static void put_header(struct writer *w, const struct cpr_state_info *info)
{
	uint8_t h[CPR_HEADER_SIZE] = { 0 };

	memcpy(h + HDR_MAGIC, cpr_magic, sizeof(cpr_magic));
	le16_store(h + HDR_LEN, CPR_HEADER_SIZE);
	le16_store(h + HDR_VERSION, CPR_FORMAT_VERSION);
	le32_store(h + HDR_EMIT, w->target);
	/* Only features this writer implements (none yet), even when it
	 * re-encodes a state parsed from a newer writer's stream. */
	le64_store(h + HDR_COMPAT, info->compat_features & SCHEMA_COMPAT_KNOWN);
	le32_store(h + HDR_PRODUCER_LEVEL, CPR_LEVEL_MAX);
	le32_store(h + HDR_MIN_READER, w->min_reader);
	memcpy(h + HDR_ID, info->stream_id, 16);
	le32_store(h + HDR_GENERATION, info->generation);
	h[HDR_PAGE_SHIFT] = (uint8_t)info->page_shift;
	put_bytes(w, h, sizeof(h));
}

static int put_all(struct writer *w, const struct cpr_state *st)
{
	struct cpr_state_info info;
	int k;

	cpr_state_get_info(st, &info);
	w->len = 0;
	w->records = 0;
	put_header(w, &info);
	put_producer(w, &info);
	for (size_t i = 0; i < cpr_state_fd_count(st); i++) {
		k = put_fd(w, cpr_state_fd_get(st, i), (uint32_t)i);
		if (k < 0)
			return k;
	}
	for (size_t i = 0; i < cpr_state_ramblock_count(st); i++) {
		k = put_ramblock(w, cpr_state_ramblock_get(st, i), (uint32_t)i);
		if (k < 0)
			return k;
	}
	for (size_t i = 0; i < cpr_state_private_count(st); i++) {
		const struct cpr_state_private *p = cpr_state_private_get(st, i);
		put_record(w, p->type, false, p->instance, NULL, 0, p->data, (uint32_t)p->len);
	}
	put_end(w);
	return 0;
}

/* Patch the fields only known at the end: total length and CRC. */
static void finish(struct writer *w)
{
	le64_store(w->buf + HDR_TOTAL, w->len);
	le32_store(w->buf + HDR_MIN_READER, w->min_reader);
	le32_store(w->buf + HDR_CRC, cpr_crc32c(0, w->buf, w->len));
}

/*
 * Never hand out a stream the reader would refuse: that would only be
 * discovered after the point of no return.  The reader's framing half runs on
 * the bytes (header, CRC, records, END); its semantic half on the state they
 * were written from, which is what it would rebuild: the same verdict as
 * cpr_state_parse() at @level without building a second state.
 */
static int self_check(const struct cpr_state *st, const void *buf, size_t len, uint32_t level,
		      struct cpr_error *err)
{
	int k = stream_walk(buf, len, NULL, NULL, err);

	return k < 0 ? k : state_check(st, level, err);
}

CPR_EXPORT int cpr_state_encode(const struct cpr_state *st, uint32_t target_level, cpr_diag_fn warn,
				void *userdata, void **ret_buf, size_t *ret_len,
				struct cpr_error *ret_err)
{
	struct writer w = { .warn = warn, .userdata = userdata, .err = ret_err };
	int k;

	if (!st || !ret_buf || !ret_len)
		return -EINVAL;
	w.target = target_level ? target_level : CPR_LEVEL_MAX;
	if (w.target < CPR_LEVEL_MIN || w.target > CPR_LEVEL_MAX) {
		cpr_error_set(ret_err, -EPROTONOSUPPORT, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "target level %u is outside the levels this libcpr writes (%u..%u)",
			      w.target, CPR_LEVEL_MIN, CPR_LEVEL_MAX);
		return -EPROTONOSUPPORT;
	}
	/* Sizing pass: judges every element and refuses before allocating. */
	w.min_reader = CPR_LEVEL_MIN;
	k = put_all(&w, st);
	if (k < 0)
		return k;
	if (w.len > CPR_STREAM_MAX) {
		cpr_error_set(ret_err, -E2BIG, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "stream of %zu bytes exceeds the limit of %u", w.len, CPR_STREAM_MAX);
		return -E2BIG;
	}
	w.buf = calloc(1, w.len);
	if (!w.buf)
		return -ENOMEM;
	w.min_reader = CPR_LEVEL_MIN;
	put_all(&w, st);
	finish(&w);
	k = self_check(st, w.buf, w.len, w.target, ret_err);
	if (k < 0) {
		free(w.buf);
		return k;
	}
	*ret_buf = w.buf;
	*ret_len = w.len;
	return 0;
}

CPR_EXPORT int cpr_state_check(const struct cpr_state *st, uint32_t target_level, cpr_diag_fn warn,
			       void *userdata, struct cpr_error *ret_err)
{
	_cleanup_free_ void *buf = NULL;
	size_t len;

	return cpr_state_encode(st, target_level, warn, userdata, &buf, &len, ret_err);
}
