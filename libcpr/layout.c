/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The records' fixed parts as the structs of <cpr/state.h> hold them: each
 * field of the schema table bound, by its index, to a struct member.  Where
 * a field sits in the stream and how wide it is come from the schema table
 * alone; the writer and the reader both copy through these bindings, so no
 * offset of a record's fixed part is written anywhere else.
 */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "cpr/state.h"
#include "internal.h"
#include "schema.h"
#include "stream.h"

#define B(s, i, m)                                                                               \
	{                                                                                        \
		.field = i, .size = sizeof(((struct s *)0)->m), .member = offsetof(struct s, m), \
		.name = #m                                                                       \
	}

static const struct schema_bind producer_binds[] = {
	B(cpr_state_info, PRODUCER_LIBCPR_VERSION, libcpr_version),
	B(cpr_state_info, PRODUCER_VMM_VERSION, vmm_version),
};

static const struct schema_bind fd_binds[] = {
	B(cpr_state_fd, FD_SLOT, slot),
	B(cpr_state_fd, FD_KIND, kind),
	B(cpr_state_fd, FD_ID, id),
	B(cpr_state_fd, FD_MUST_FLAGS, must_flags),
	B(cpr_state_fd, FD_HINT_FLAGS, hint_flags),
};

static const struct schema_bind ramblock_binds[] = {
	B(cpr_state_ramblock, RB_ALIGN, align),
	B(cpr_state_ramblock, RB_USED_LENGTH, used_length),
	B(cpr_state_ramblock, RB_MAX_LENGTH, max_length),
	B(cpr_state_ramblock, RB_HOST_ADDR, host_addr),
	B(cpr_state_ramblock, RB_FD_OFFSET, fd_offset),
	B(cpr_state_ramblock, RB_FD_INDEX, fd_index),
	B(cpr_state_ramblock, RB_GMEM_FD_REF, gmem_fd_ref),
	B(cpr_state_ramblock, RB_MUST_FLAGS, must_flags),
	B(cpr_state_ramblock, RB_HINT_FLAGS, hint_flags),
	B(cpr_state_ramblock, RB_GMEM_OFFSET, gmem_offset),
};

const struct schema_bind *layout_binds(uint32_t type, unsigned *ret_n)
{
	switch (type) {
	case CPR_REC_PRODUCER:
		*ret_n = ARRAY_SIZE(producer_binds);
		return producer_binds;
	case CPR_REC_FD:
		*ret_n = ARRAY_SIZE(fd_binds);
		return fd_binds;
	case CPR_REC_RAMBLOCK:
		*ret_n = ARRAY_SIZE(ramblock_binds);
		return ramblock_binds;
	default:
		*ret_n = 0;
		return NULL;
	}
}

/* A field's bytes at its offset: 2, 4 or 8 bytes little-endian (reserved
 * fields are never bound, and read as "non-zero" only through layout_get). */
static inline void store_bits(uint8_t *p, unsigned size, uint64_t v)
{
	if (size == 8)
		le64_store(p, v);
	else if (size == 4)
		le32_store(p, (uint32_t)v);
	else
		le16_store(p, (uint16_t)v);
}

static inline uint64_t load_bits(const uint8_t *p, unsigned size)
{
	if (size == 8)
		return le64_load(p);
	if (size == 4)
		return le32_load(p);
	return le16_load(p);
}

void layout_put(const struct schema_record *r, unsigned field, uint8_t *fixed, uint64_t v)
{
	const struct schema_field *f = &r->fields[field];

	assert(field < r->n_fields && f->offset + f->size <= CPR_FIXED_MAX);
	if (f->kind == SF_RESERVED)
		memset(fixed + f->offset, 0, f->size);
	else
		store_bits(fixed + f->offset, f->size, v);
}

uint64_t layout_get(const struct schema_record *r, unsigned field, const uint8_t *fixed)
{
	const struct schema_field *f = &r->fields[field];

	assert(field < r->n_fields && f->offset + f->size <= CPR_FIXED_MAX);
	if (f->kind == SF_RESERVED)
		return !mem_is_zero(fixed + f->offset, f->size);
	return load_bits(fixed + f->offset, f->size);
}

/*
 * A member's low @size bytes to a field of @size bytes, and back (zero-
 * extended into the member).  Members are uint32_t, int32_t or uint64_t, at
 * least as wide as their field.  On a little-endian host the low bytes come
 * first and are copied as they are; elsewhere through the explicit stores.
 */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline void copy_out(uint8_t *p, const uint8_t *m, unsigned size)
{
	if (size == 8)
		memcpy(p, m, 8);
	else if (size == 4)
		memcpy(p, m, 4);
	else
		memcpy(p, m, 2);
}

static inline void copy_in(uint8_t *m, unsigned msize, const uint8_t *p, unsigned size)
{
	if (msize == 8)
		memset(m, 0, 8);
	else
		memset(m, 0, 4);
	copy_out(m, p, size);
}
#else
static inline void copy_out(uint8_t *p, const uint8_t *m, unsigned size)
{
	uint64_t v64;
	uint32_t v32;

	if (size == 8) {
		memcpy(&v64, m, 8);
		le64_store(p, v64);
	} else {
		memcpy(&v32, m, 4);
		store_bits(p, size, v32);
	}
}

static inline void copy_in(uint8_t *m, unsigned msize, const uint8_t *p, unsigned size)
{
	uint64_t v = load_bits(p, size);
	uint32_t v32 = (uint32_t)v;

	if (msize == 8)
		memcpy(m, &v, 8);
	else
		memcpy(m, &v32, 4);
}
#endif

/* The table's offsets are within CPR_FIXED_MAX (check-schema compares it
 * with the sealed JSON, and check-layout walks every binding). */
void layout_store(const struct schema_record *r, const void *obj, uint8_t *fixed)
{
	unsigned n;
	const struct schema_bind *b = layout_binds(r->type, &n);

	for (unsigned i = 0; i < n; i++) {
		const struct schema_field *f = &r->fields[b[i].field];

		copy_out(fixed + f->offset, (const uint8_t *)obj + b[i].member, f->size);
	}
}

void layout_load(const struct schema_record *r, const uint8_t *fixed, void *obj)
{
	unsigned n;
	const struct schema_bind *b = layout_binds(r->type, &n);

	for (unsigned i = 0; i < n; i++) {
		const struct schema_field *f = &r->fields[b[i].field];

		copy_in((uint8_t *)obj + b[i].member, b[i].size, fixed + f->offset, f->size);
	}
}
