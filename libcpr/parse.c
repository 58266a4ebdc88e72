/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reader, semantic half: turns records into a state (phase 2 contents)
 * and checks them against each other (phase 3).  Pure: no system calls, the
 * caller's buffer is not kept, and either a complete state is returned or
 * nothing.
 */
#include <stdio.h>

#include "cpr/state.h"
#include "internal.h"
#include "schema.h"
#include "stream.h"

/* A set of u32 (FD slots) with open addressing; 0 is stored as UINT32_MAX+1 via +1 in u64. */
struct u32set {
	uint64_t *slots;
	size_t cap, n;
};

static int u32set_add(struct u32set *s, uint32_t v)
{
	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		uint64_t *old = s->slots, *n = calloc(cap, sizeof(*n));
		size_t ocap = s->cap;
		if (!n)
			return -ENOMEM;
		s->slots = n;
		s->cap = cap;
		s->n = 0;
		for (size_t i = 0; i < ocap; i++)
			if (old[i])
				u32set_add(s, (uint32_t)(old[i] - 1));
		free(old);
	}
	/* High bits of a 64-bit multiply: crafted slots (multiples of the
	 * table size) must not share a probe chain. */
	for (size_t h = (size_t)(((uint64_t)v * 0x9e3779b97f4a7c15ull) >> 40) & (s->cap - 1);;
	     h = (h + 1) & (s->cap - 1)) {
		if (!s->slots[h]) {
			s->slots[h] = (uint64_t)v + 1;
			s->n++;
			return 0;
		}
		if (s->slots[h] == (uint64_t)v + 1)
			return -EEXIST;
	}
}

static int u32set_reserve(struct u32set *s, size_t n)
{
	size_t cap = 256;

	while (cap < 2 * n + 2)
		cap *= 2;
	s->slots = calloc(cap, sizeof(*s->slots));
	if (!s->slots)
		return -ENOMEM;
	s->cap = cap;
	return 0;
}

struct parser {
	struct cpr_state *st;
	uint32_t max_level;
	struct cpr_state_info info;
	bool have_producer;
	struct u32set slots;
	const struct schema_field *fd_name_len; /* looked up once, used per record */
	const struct schema_field *rb_idstr_len;
	uint64_t rb_off[CPR_RAMBLOCKS_MAX]; /* stream offset of each RAMBLOCK, for errors */
	uint32_t need_level;		    /* highest level of a required element in use */
	const char *need_what;		    /* that element, for the message */
	uint32_t need_type, need_inst;
	char pbuf[CPR_PRODUCER_MAX * 4 + 8];
};

/* "; stream from 'qemu 11' (level 2)" for refusals that depend on the producer. */
static const char *from(struct parser *p)
{
	char q[CPR_PRODUCER_MAX * 4 + 4];

	snprintf(p->pbuf, sizeof(p->pbuf), "'%s' (level %u)",
		 p->have_producer ? cpr_quote(q, sizeof(q), p->info.producer, CPR_PRODUCER_MAX)
				  : "unknown producer",
		 p->info.producer_level);
	return p->pbuf;
}

/* Note a required element of @level in use: the stream's emit_level must cover it. */
static void need(struct parser *p, uint32_t level, const char *what, const struct stream_rec *rec)
{
	if (level <= p->need_level)
		return;
	p->need_level = level;
	p->need_what = what;
	p->need_type = rec->type;
	p->need_inst = rec->instance;
}

static int check_fixed(struct parser *p, const struct schema_record *r,
		       const struct stream_rec *rec, uint8_t *fixed, struct cpr_error *err)
{
	uint16_t max = schema_fixed_len(r, CPR_LEVEL_MAX);
	uint16_t n = rec->fixed_len < max ? rec->fixed_len : max;

	if (rec->fixed_len < schema_fixed_len(r, r->level))
		return cpr_fail(
			err, -EBADMSG, rec->type, rec->instance, rec->offset,
			"%s#%u: fixed part of %u bytes is shorter than the %u its level needs",
			r->name, rec->instance, rec->fixed_len, schema_fixed_len(r, r->level));
	if (!schema_fixed_len_valid(r, rec->fixed_len))
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"%s#%u: fixed part of %u bytes ends inside a field", r->name,
				rec->instance, rec->fixed_len);
	memset(fixed, 0, CPR_FIXED_MAX);
	memcpy(fixed, rec->fixed, n);
	if (!mem_is_zero(rec->fixed + n, rec->fixed_len - n)) {
		size_t at = n;
		while (!rec->fixed[at])
			at++;
		return cpr_fail(
			err, -EPROTONOSUPPORT, rec->type, rec->instance, rec->offset,
			"%s#%u uses a field at offset %zu unknown to this libcpr; stream from %s",
			r->name, rec->instance, at, from(p));
	}
	for (unsigned i = 0; i < r->n_fields; i++) {
		const struct schema_field *f = &r->fields[i];
		if ((f->kind != SF_RESERVED && f->level <= p->max_level &&
		     f->policy != SP_REQUIRED) ||
		    !schema_get(f, fixed, CPR_FIXED_MAX))
			continue;
		if (f->policy == SP_REQUIRED && f->level <= p->max_level) {
			need(p, f->level, f->name, rec);
			continue;
		}
		if (f->kind == SF_RESERVED)
			return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
					"%s#%u: reserved bytes at offset %u are not zero", r->name,
					rec->instance, f->offset);
		if (f->level > p->max_level)
			return cpr_fail(
				err, -EPROTONOSUPPORT, rec->type, rec->instance, rec->offset,
				"%s#%u uses '%s' (level %u) but this reader supports level %u; "
				"stream from %s",
				r->name, rec->instance, f->name, f->level, p->max_level, from(p));
	}
	return 0;
}

static int check_must(struct parser *p, const struct schema_record *r, const struct stream_rec *rec,
		      const uint8_t *fixed, struct cpr_error *err)
{
	uint32_t word, unknown;
	const struct schema_flag *f;
	unsigned bit;

	if (r->must_off < 0)
		return 0;
	word = le32_load(fixed + r->must_off);
	for (unsigned i = 0; i < r->n_flags; i++)
		if (r->flags[i].word == SW_MUST && r->flags[i].level <= p->max_level &&
		    word & (1u << r->flags[i].bit))
			need(p, r->flags[i].level, r->flags[i].name, rec);
	unknown = word & ~schema_known_bits(r, SW_MUST, p->max_level);
	if (!unknown)
		return 0;
	bit = (unsigned)__builtin_ctz(unknown);
	f = schema_flag_at(r, SW_MUST, bit);
	return cpr_fail(err, -EPROTONOSUPPORT, rec->type, rec->instance, rec->offset,
			"%s#%u requires flag %s%s%s (bit %u) unknown to this reader (level %u); "
			"stream from %s",
			r->name, rec->instance, f ? "'" : "", f ? f->name : "", f ? "'" : "", bit,
			p->max_level, from(p));
}

/* Which bytes names and producer text may contain. */
#define BC_NAME 1
#define BC_TEXT 2
/* Generated: BC_NAME for 0x21..0x7e except " ' \\, BC_TEXT for 0x20..0x7e. */
static const uint8_t byte_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 2, 3, 2, 3, 3, 3, 3, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	3, 3, 3, 3, 3, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* The one string of a record: its length field must account for the whole variable part. */
static int get_string(const struct schema_record *r, const struct schema_field *f,
		      const struct stream_rec *rec, const uint8_t *fixed, char *out, size_t max,
		      bool name_rules, struct cpr_error *err)
{
	uint64_t n = schema_get(f, fixed, CPR_FIXED_MAX);

	if (n != rec->var_len)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"%s#%u: %s %llu does not match the %u bytes of variable part",
				r->name, rec->instance, f->name, (unsigned long long)n,
				rec->var_len);
	if (n > max || (name_rules && n == 0))
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"%s#%u: %s %llu is outside [%u, %zu]", r->name, rec->instance,
				f->name, (unsigned long long)n, name_rules ? 1 : 0, max);
	memcpy(out, rec->var, n);
	out[n] = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];
		if (!(byte_class[c] & (name_rules ? BC_NAME : BC_TEXT)))
			return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
					"%s#%u: byte 0x%02x at position %zu of the %s string is "
					"not allowed",
					r->name, rec->instance, c, i, r->name);
	}
	return 0;
}

static int on_producer(struct parser *p, const struct schema_record *r,
		       const struct stream_rec *rec, const uint8_t *fixed, struct cpr_error *err)
{
	int k;

	if (p->have_producer)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"PRODUCER appears twice");
	k = get_string(r, schema_field(r, r->string), rec, fixed, p->info.producer,
		       CPR_PRODUCER_MAX, false, err);
	if (k < 0)
		return k;
	layout_load(r, fixed, &p->info);
	p->have_producer = true;
	return 0;
}

static int limit_or_dup(struct cpr_error *err, int k, const struct stream_rec *rec,
			const char *what, const char *key, int32_t id)
{
	if (k == -E2BIG)
		return cpr_fail(err, -E2BIG, rec->type, rec->instance, rec->offset,
				"more than %u %s records",
				rec->type == CPR_REC_FD ? CPR_FDS_MAX : CPR_RAMBLOCKS_MAX, what);
	if (k == -EEXIST && rec->type == CPR_REC_FD)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"FD#%u: key '%s'/%d appears twice", rec->instance, key, id);
	if (k == -EEXIST)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"RAMBLOCK#%u: idstr '%s' appears twice", rec->instance, key);
	if (k < 0)
		return cpr_fail(err, k, rec->type, rec->instance, rec->offset, "out of memory");
	return k;
}

/* Built in place in the state's array; committed only when whole. */
static int on_fd(struct parser *p, const struct schema_record *r, const struct stream_rec *rec,
		 const uint8_t *fixed, struct cpr_error *err)
{
	const struct schema_value *kind;
	struct cpr_state_fd *fd;
	int k = 0;

	fd = state_next_fd(p->st, &k);
	if (!fd)
		return limit_or_dup(err, k, rec, "FD", NULL, 0);
	layout_load(r, fixed, fd);
	k = get_string(r, p->fd_name_len, rec, fixed, fd->name, CPR_NAME_MAX, true, err);
	if (k < 0)
		return k;
	kind = schema_fd_kind(fd->kind);
	if (!kind || kind->level > p->max_level)
		return cpr_fail(err, -EPROTONOSUPPORT, rec->type, rec->instance, rec->offset,
				"FD#%u '%s' has kind %u%s%s%s unknown to this reader (level %u); "
				"stream from %s",
				rec->instance, fd->name, fd->kind, kind ? " (" : "",
				kind ? kind->name : "", kind ? ")" : "", p->max_level, from(p));
	if (kind->policy == SP_REQUIRED)
		need(p, kind->level, kind->name, rec);
	if (fd->slot > INT32_MAX)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"FD#%u '%s': slot %u is out of range", rec->instance, fd->name,
				fd->slot);
	k = u32set_add(&p->slots, fd->slot);
	if (k == -EEXIST)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"FD#%u '%s' reuses slot %u", rec->instance, fd->name, fd->slot);
	if (k < 0)
		return limit_or_dup(err, k, rec, "FD", fd->name, fd->id);
	return limit_or_dup(err, state_commit_fd(p->st), rec, "FD", fd->name, fd->id);
}

static int on_ramblock(struct parser *p, const struct schema_record *r,
		       const struct stream_rec *rec, const uint8_t *fixed, struct cpr_error *err)
{
	struct cpr_state_ramblock *rb;
	int k = 0;

	rb = state_next_ramblock(p->st, &k);
	if (!rb)
		return limit_or_dup(err, k, rec, "RAMBLOCK", NULL, 0);
	p->rb_off[cpr_state_ramblock_count(p->st)] = rec->offset;
	layout_load(r, fixed, rb);
	k = get_string(r, p->rb_idstr_len, rec, fixed, rb->idstr, CPR_NAME_MAX, true, err);
	if (k < 0)
		return k;
	return limit_or_dup(err, state_commit_ramblock(p->st), rec, "RAMBLOCK", rb->idstr, 0);
}

static int on_private(struct parser *p, const struct stream_rec *rec, struct cpr_error *err)
{
	void *copy;
	int k;

	if (rec->rflags & CPR_RFLAG_CRITICAL)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"VMM-private record 0x%x is marked CRITICAL", rec->type);
	copy = malloc(rec->body_len ? rec->body_len : 1);
	if (!copy)
		return cpr_fail(err, -ENOMEM, rec->type, rec->instance, rec->offset,
				"out of memory");
	memcpy(copy, rec->fixed, rec->body_len);
	k = state_add_private_owned(p->st, rec->type, rec->instance, copy, rec->body_len);
	if (k < 0)
		free(copy);
	if (k == -EEXIST)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"VMM-private record 0x%x instance %u appears twice", rec->type,
				rec->instance);
	if (k == -E2BIG)
		return cpr_fail(err, -E2BIG, rec->type, rec->instance, rec->offset,
				"more than %u VMM-private records", CPR_PRIVATE_MAX);
	return k;
}

static int on_known(struct parser *p, const struct schema_record *r, const struct stream_rec *rec,
		    struct cpr_error *err)
{
	uint8_t fixed[CPR_FIXED_MAX];
	size_t seen =
		r->type == CPR_REC_FD ? cpr_state_fd_count(p->st) : cpr_state_ramblock_count(p->st);
	int k;

	if (!!(rec->rflags & CPR_RFLAG_CRITICAL) != r->critical)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"%s#%u must %sbe CRITICAL", r->name, rec->instance,
				r->critical ? "" : "not ");
	if ((r->dense && rec->instance != seen) || (r->singleton && rec->instance != 0))
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, rec->offset,
				"%s has instance %u where %zu is expected", r->name, rec->instance,
				r->dense ? seen : 0);
	k = check_fixed(p, r, rec, fixed, err);
	if (k < 0)
		return k;
	k = check_must(p, r, rec, fixed, err);
	if (k < 0)
		return k;
	switch (r->type) {
	case CPR_REC_PRODUCER:
		return on_producer(p, r, rec, fixed, err);
	case CPR_REC_FD:
		return on_fd(p, r, rec, fixed, err);
	default:
		return on_ramblock(p, r, rec, fixed, err);
	}
}

static int on_record(void *userdata, const struct stream_rec *rec, struct cpr_error *err)
{
	struct parser *p = userdata;
	const struct schema_record *r = schema_record(rec->type);

	if (rec->type == CPR_REC_END)
		return 0; /* judged by the walk */
	if (r && r->level <= p->max_level)
		return on_known(p, r, rec, err);
	if (rec->type >= CPR_REC_PRIVATE_FIRST && rec->type <= CPR_REC_PRIVATE_LAST)
		return on_private(p, rec, err);
	if (rec->rflags & CPR_RFLAG_CRITICAL)
		return cpr_fail(err, -EPROTONOSUPPORT, rec->type, rec->instance, rec->offset,
				"unknown critical record type 0x%x (instance %u); stream from %s",
				rec->type, rec->instance, from(p));
	return 0; /* unknown, not critical: skipped */
}

static int rb_fail(struct cpr_error *err, int code, size_t i, const struct cpr_state_ramblock *rb,
		   uint64_t offset, const char *what)
{
	return cpr_fail(err, code, CPR_REC_RAMBLOCK, (uint32_t)i, offset, "RAMBLOCK#%zu '%s': %s",
			i, rb->idstr, what);
}

/* Phase 3 for one block: numbers, flags and references. */
static int check_ramblock(const struct cpr_state *st, size_t i, uint64_t page, uint64_t off,
			  struct cpr_error *err)
{
	const struct cpr_state_ramblock *rb = cpr_state_ramblock_get(st, i);
	const struct cpr_state_fd *fd = cpr_state_fd_get(st, rb->fd_index);
	uint64_t unit = rb->must_flags & CPR_STATE_RB_HUGETLB ? 2u << 20 : page;

	if (!rb->align || rb->align & (rb->align - 1) || rb->align < page ||
	    rb->align > CPR_ALIGN_MAX)
		return rb_fail(err, -EBADMSG, i, rb, off,
			       "align is not a power of two between the page size and 1 GiB");
	if (!rb->max_length || rb->max_length > CPR_BLOCK_MAX || rb->max_length % unit)
		return rb_fail(err, -EBADMSG, i, rb, off,
			       "max_length is zero, over the limit, or not a page multiple");
	if (!rb->used_length || rb->used_length > rb->max_length || rb->used_length % unit)
		return rb_fail(err, -EBADMSG, i, rb, off,
			       "used_length is zero, over max_length, or not a page multiple");
	if (!(rb->must_flags & CPR_STATE_RB_RESIZEABLE) && rb->used_length != rb->max_length)
		return rb_fail(
			err, -EBADMSG, i, rb, off,
			"used_length differs from max_length on a block that is not resizeable");
	if (rb->fd_offset % unit || rb->fd_offset > (1ull << 62) - rb->max_length)
		return rb_fail(err, -EBADMSG, i, rb, off,
			       "fd_offset is not a page multiple or overflows");
	if (!fd || fd->kind != CPR_FD_MEMFD)
		return rb_fail(err, -EBADMSG, i, rb, off,
			       "fd_index does not name a memfd FD record");
	if (rb->must_flags & CPR_STATE_RB_MAP_AT_ADDR &&
	    (!rb->host_addr || rb->host_addr % rb->align ||
	     rb->host_addr > (1ull << 47) - rb->max_length))
		return rb_fail(err, -EBADMSG, i, rb, off,
			       "host_addr is not an aligned user-space range");
	if (rb->gmem_fd_ref) {
		const struct cpr_state_fd *g = cpr_state_fd_get(st, rb->gmem_fd_ref - 1);
		if (!g || g->kind != CPR_FD_GUEST_MEMFD)
			return rb_fail(err, -EBADMSG, i, rb, off,
				       "gmem_fd_ref does not name a guest-memfd FD record");
		if (rb->gmem_offset % page || rb->gmem_offset > (1ull << 62) - rb->max_length)
			return rb_fail(err, -EBADMSG, i, rb, off,
				       "gmem_offset is not a page multiple or overflows");
	} else if (rb->gmem_offset) {
		return rb_fail(err, -EBADMSG, i, rb, off, "gmem_offset is set without gmem_fd_ref");
	}
	return 0;
}

/* Extents of blocks in one backing file: the memfd, or the guest_memfd. */
struct extents {
	const struct cpr_state *st;
	bool gmem;
};

static void extent(const struct extents *x, uint32_t i, uint32_t *file, uint64_t *off)
{
	const struct cpr_state_ramblock *rb = cpr_state_ramblock_get(x->st, i);

	*file = x->gmem ? rb->gmem_fd_ref : rb->fd_index;
	*off = x->gmem ? rb->gmem_offset : rb->fd_offset;
}

static int cmp_extent(const void *a, const void *b, void *arg)
{
	uint32_t fa, fb;
	uint64_t oa, ob;

	extent(arg, *(const uint32_t *)a, &fa, &oa);
	extent(arg, *(const uint32_t *)b, &fb, &ob);
	if (fa != fb)
		return fa < fb ? -1 : 1;
	return oa < ob ? -1 : oa > ob;
}

/* No two blocks overlap in one memfd, nor in one guest_memfd. */
static int check_overlaps(struct parser *p, bool gmem, uint32_t *order, struct cpr_error *err)
{
	struct extents x = { .st = p->st, .gmem = gmem };
	size_t n = 0;

	for (uint32_t i = 0; i < cpr_state_ramblock_count(p->st); i++)
		if (!gmem || cpr_state_ramblock_get(p->st, i)->gmem_fd_ref)
			order[n++] = i;
	qsort_r(order, n, sizeof(*order), cmp_extent, &x);
	for (size_t i = 1; i < n; i++) {
		const struct cpr_state_ramblock *b = cpr_state_ramblock_get(p->st, order[i]);
		uint32_t fa, fb;
		uint64_t oa, ob;

		extent(&x, order[i - 1], &fa, &oa);
		extent(&x, order[i], &fb, &ob);
		if (fa == fb && oa + cpr_state_ramblock_get(p->st, order[i - 1])->max_length > ob)
			return rb_fail(err, -EBADMSG, order[i], b, p->rb_off[order[i]],
				       gmem ? "overlaps another block in the same guest_memfd"
					    : "overlaps another block in the same memfd");
	}
	return 0;
}

/* Phase 3: every block on its own, then the overlaps. */
static int parse_ramblocks(struct parser *p, struct cpr_error *err)
{
	size_t n = cpr_state_ramblock_count(p->st);
	_cleanup_free_ uint32_t *order = NULL;
	int k;

	for (size_t i = 0; i < n; i++) {
		k = check_ramblock(p->st, i, 1ull << p->info.page_shift, p->rb_off[i], err);
		if (k < 0)
			return k;
	}
	if (n < 2)
		return 0;
	order = calloc(n, sizeof(*order));
	if (!order)
		return cpr_fail(err, -ENOMEM, NO_TYPE, NO_INST, UINT64_MAX, "out of memory");
	k = check_overlaps(p, false, order, err);
	return k < 0 ? k : check_overlaps(p, true, order, err);
}

/* What on_fd() judges beyond a record's bytes, for FD @i of the state. */
static int check_fd_rules(struct parser *p, const struct schema_record *r, size_t i,
			  struct cpr_error *err)
{
	const struct cpr_state_fd *fd = cpr_state_fd_get(p->st, i);
	const struct schema_value *kind = schema_fd_kind(fd->kind);
	struct stream_rec rec = { .type = CPR_REC_FD,
				  .instance = (uint32_t)i,
				  .offset = UINT64_MAX };
	uint8_t fixed[CPR_FIXED_MAX] = { 0 };
	int k;

	if (!kind || kind->level > p->max_level)
		return cpr_fail(err, -EPROTONOSUPPORT, rec.type, rec.instance, rec.offset,
				"FD#%u '%s' has kind %u%s%s%s unknown to this reader (level %u); "
				"stream from %s",
				rec.instance, fd->name, fd->kind, kind ? " (" : "",
				kind ? kind->name : "", kind ? ")" : "", p->max_level, from(p));
	le32_store(fixed + r->must_off, fd->must_flags);
	k = check_must(p, r, &rec, fixed, err);
	if (k < 0)
		return k;
	if (fd->slot > INT32_MAX)
		return cpr_fail(err, -EBADMSG, rec.type, rec.instance, rec.offset,
				"FD#%u '%s': slot %u is out of range", rec.instance, fd->name,
				fd->slot);
	k = u32set_add(&p->slots, fd->slot);
	if (k == -EEXIST)
		return cpr_fail(err, -EBADMSG, rec.type, rec.instance, rec.offset,
				"FD#%u '%s' reuses slot %u", rec.instance, fd->name, fd->slot);
	return k < 0 ? cpr_fail(err, k, rec.type, rec.instance, rec.offset, "out of memory") : 0;
}

static int check_ramblock_flags(struct parser *p, const struct schema_record *r, size_t i,
				struct cpr_error *err)
{
	struct stream_rec rec = { .type = CPR_REC_RAMBLOCK,
				  .instance = (uint32_t)i,
				  .offset = UINT64_MAX };
	uint8_t fixed[CPR_FIXED_MAX] = { 0 };

	p->rb_off[i] = UINT64_MAX;
	le32_store(fixed + r->must_off, cpr_state_ramblock_get(p->st, i)->must_flags);
	return check_must(p, r, &rec, fixed, err);
}

int state_check(const struct cpr_state *st, uint32_t max_level, struct cpr_error *err)
{
	struct parser p = { .st = (struct cpr_state *)st,
			    .max_level = max_level,
			    .have_producer = true };
	size_t n_fds = cpr_state_fd_count(st), n_rbs = cpr_state_ramblock_count(st);
	int k;

	cpr_state_get_info(st, &p.info);
	k = u32set_reserve(&p.slots, n_fds);
	if (k < 0)
		return cpr_fail(err, k, NO_TYPE, NO_INST, UINT64_MAX, "out of memory");
	for (size_t i = 0; k >= 0 && i < n_fds; i++)
		k = check_fd_rules(&p, schema_record(CPR_REC_FD), i, err);
	for (size_t i = 0; k >= 0 && i < n_rbs; i++)
		k = check_ramblock_flags(&p, schema_record(CPR_REC_RAMBLOCK), i, err);
	if (k >= 0)
		k = parse_ramblocks(&p, err);
	free(p.slots.slots);
	return k;
}

CPR_EXPORT int cpr_state_parse(const void *buf, size_t len, uint32_t max_level,
			       struct cpr_state **ret_state, struct cpr_error *ret_err)
{
	struct parser p = { .max_level = max_level ? max_level : CPR_LEVEL_MAX };
	int k;

	if (!buf || !ret_state)
		return cpr_fail(ret_err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"no buffer or no place for the state");
	if (p.max_level < CPR_LEVEL_MIN || p.max_level > CPR_LEVEL_MAX)
		return cpr_fail(ret_err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"reader level %u is outside %u..%u", p.max_level, CPR_LEVEL_MIN,
				CPR_LEVEL_MAX);
	if (len >= CPR_HEADER_SIZE)
		stream_header_info(buf, &p.info);
	p.fd_name_len = schema_field(schema_record(CPR_REC_FD), schema_record(CPR_REC_FD)->string);
	p.rb_idstr_len = schema_field(schema_record(CPR_REC_RAMBLOCK),
				      schema_record(CPR_REC_RAMBLOCK)->string);
	k = cpr_state_new(&p.st);
	if (k < 0)
		return cpr_fail(ret_err, k, NO_TYPE, NO_INST, UINT64_MAX, "out of memory");
	/* An FD record takes at least 48 bytes and a RAMBLOCK 88: bound the
	 * tables by the stream length (and the limits) and size them once. */
	k = state_reserve(p.st, len / 48 < CPR_FDS_MAX ? len / 48 : CPR_FDS_MAX,
			  len / 88 < CPR_RAMBLOCKS_MAX ? len / 88 : CPR_RAMBLOCKS_MAX);
	if (k >= 0)
		k = u32set_reserve(&p.slots, len / 48 < CPR_FDS_MAX ? len / 48 : CPR_FDS_MAX);
	if (k < 0) {
		cpr_state_free(p.st);
		return cpr_fail(ret_err, k, NO_TYPE, NO_INST, UINT64_MAX, "out of memory");
	}
	k = stream_walk(buf, len, on_record, &p, ret_err);
	if (k >= 0 && p.need_level > p.info.emit_level)
		k = cpr_fail(ret_err, -EBADMSG, p.need_type, p.need_inst, UINT64_MAX,
			     "the stream declares level %u but uses '%s' (level %u): a writer for "
			     "level %u cannot have produced it",
			     p.info.emit_level, p.need_what, p.need_level, p.info.emit_level);
	if (k >= 0)
		k = parse_ramblocks(&p, ret_err);
	free(p.slots.slots);
	if (k < 0) {
		cpr_state_free(p.st);
		return k;
	}
	state_set_info(p.st, &p.info);
	*ret_state = p.st;
	return 0;
}
