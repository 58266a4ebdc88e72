/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The schema table.  Rules for changing it (cpr-state(5), COMPATIBILITY):
 * append fields and bits, never move, resize, renumber or reuse one; give
 * every new element its level and policy; all-zero keeps the old meaning.
 * tests/check-schema compares this table with the frozen JSON of every
 * released level.
 */
#include <string.h>

#include "cpr/state.h"
#include "internal.h"
#include "schema.h"

#define F(n, o, s, k, l, p)                                                           \
	{                                                                             \
		.name = n, .offset = o, .size = s, .kind = k, .level = l, .policy = p \
	}

/*
 * tests/check-layout builds the writer and the reader over a table whose
 * fields of the same size trade places (SCHEMA_TEST_MOVED): whatever still
 * writes or reads the released offsets shows there.
 */
#ifdef SCHEMA_TEST_MOVED
#define AT(released, moved) (moved)
#else
#define AT(released, moved) (released)
#endif

static const struct schema_field end_fields[] = {
	[END_RECORD_COUNT] = F("record_count", 0, 4, SF_U32, 1, SP_BASE),
	[END_RESERVED0] = F("reserved0", 4, 4, SF_RESERVED, 1, SP_BASE),
};

static const struct schema_field producer_fields[] = {
	[PRODUCER_LIBCPR_VERSION] = F("libcpr_version", AT(0, 4), 4, SF_U32, 1, SP_BASE),
	[PRODUCER_VMM_VERSION] = F("vmm_version", AT(4, 0), 4, SF_U32, 1, SP_BASE),
	[PRODUCER_NAME_LEN] = F("name_len", 8, 2, SF_U16, 1, SP_BASE),
	[PRODUCER_RESERVED0] = F("reserved0", 10, 2, SF_RESERVED, 1, SP_BASE),
	[PRODUCER_RESERVED1] = F("reserved1", 12, 4, SF_RESERVED, 1, SP_BASE),
};

static const struct schema_field fd_fields[] = {
	[FD_SLOT] = F("slot", AT(0, 8), 4, SF_U32, 1, SP_BASE),
	[FD_KIND] = F("kind", AT(4, 6), 2, SF_U16, 1, SP_BASE),
	[FD_NAME_LEN] = F("name_len", AT(6, 4), 2, SF_U16, 1, SP_BASE),
	[FD_ID] = F("id", AT(8, 0), 4, SF_I32, 1, SP_BASE),
	[FD_MUST_FLAGS] = F("must_flags", 12, 4, SF_U32, 1, SP_BASE),
	[FD_HINT_FLAGS] = F("hint_flags", 16, 4, SF_U32, 1, SP_BASE),
	[FD_RESERVED0] = F("reserved0", 20, 4, SF_RESERVED, 1, SP_BASE),
};

static const struct schema_field ramblock_fields[] = {
	[RB_ALIGN] = F("align", AT(0, 32), 8, SF_U64, 1, SP_BASE),
	[RB_USED_LENGTH] = F("used_length", AT(8, 16), 8, SF_U64, 1, SP_BASE),
	[RB_MAX_LENGTH] = F("max_length", AT(16, 8), 8, SF_U64, 1, SP_BASE),
	[RB_HOST_ADDR] = F("host_addr", 24, 8, SF_U64, 1, SP_BASE),
	[RB_FD_OFFSET] = F("fd_offset", AT(32, 0), 8, SF_U64, 1, SP_BASE),
	[RB_FD_INDEX] = F("fd_index", 40, 4, SF_U32, 1, SP_BASE),
	/* Reserved (must be zero) at level 1; a guest_memfd reference from level 2. */
	[RB_GMEM_FD_REF] = F("gmem_fd_ref", 44, 4, SF_U32, 2, SP_REQUIRED),
	[RB_MUST_FLAGS] = F("must_flags", 48, 4, SF_U32, 1, SP_BASE),
	[RB_HINT_FLAGS] = F("hint_flags", 52, 4, SF_U32, 1, SP_BASE),
	[RB_IDSTR_LEN] = F("idstr_len", 56, 2, SF_U16, 1, SP_BASE),
	[RB_RESERVED0] = F("reserved0", 58, 6, SF_RESERVED, 1, SP_BASE),
	/* Level 2 grows the fixed part by 8 bytes. */
	[RB_GMEM_OFFSET] = F("gmem_offset", 64, 8, SF_U64, 2, SP_REQUIRED),
};

#define FL(n, w, b, l, p)                                               \
	{                                                               \
		.name = n, .word = w, .bit = b, .level = l, .policy = p \
	}

static const struct schema_flag ramblock_flags[] = {
	FL("resizeable", SW_MUST, 0, 1, SP_BASE),  FL("hugetlb", SW_MUST, 1, 1, SP_BASE),
	FL("map_at_addr", SW_MUST, 2, 1, SP_BASE), FL("dontdump", SW_HINT, 0, 1, SP_BASE),
	FL("thp", SW_HINT, 1, 2, SP_DROPPABLE),
};

static const struct schema_record records[] = {
	{
		.type = CPR_REC_END,
		.name = "END",
		.level = 1,
		.critical = true,
		.singleton = true,
		.must_off = -1,
		.hint_off = -1,
		.fixed_len = { 0, 8, 8 },
		.fields = end_fields,
		.n_fields = ARRAY_SIZE(end_fields),
	},
	{
		.type = CPR_REC_PRODUCER,
		.name = "PRODUCER",
		.level = 1,
		.critical = false,
		.singleton = true,
		.string = "name_len",
		.must_off = -1,
		.hint_off = -1,
		.fixed_len = { 0, 16, 16 },
		.fields = producer_fields,
		.n_fields = ARRAY_SIZE(producer_fields),
	},
	{
		.type = CPR_REC_FD,
		.name = "FD",
		.level = 1,
		.critical = true,
		.dense = true,
		.string = "name_len",
		.must_off = 12,
		.hint_off = 16,
		.fixed_len = { 0, 24, 24 },
		.fields = fd_fields,
		.n_fields = ARRAY_SIZE(fd_fields),
	},
	{
		.type = CPR_REC_RAMBLOCK,
		.name = "RAMBLOCK",
		.level = 1,
		.critical = true,
		.dense = true,
		.string = "idstr_len",
		.must_off = 48,
		.hint_off = 52,
		.fixed_len = { 0, 64, 72 },
		.fields = ramblock_fields,
		.n_fields = ARRAY_SIZE(ramblock_fields),
		.flags = ramblock_flags,
		.n_flags = ARRAY_SIZE(ramblock_flags),
	},
};

static const struct schema_value fd_kinds[] = {
	{ "generic", CPR_FD_GENERIC, 1, SP_BASE },
	{ "memfd", CPR_FD_MEMFD, 1, SP_BASE },
	{ "eventfd", CPR_FD_EVENTFD, 1, SP_BASE },
	{ "socket", CPR_FD_SOCKET, 1, SP_BASE },
	{ "vfio-cdev", CPR_FD_VFIO_CDEV, 1, SP_BASE },
	{ "vfio-group", CPR_FD_VFIO_GROUP, 1, SP_BASE },
	{ "vfio-container", CPR_FD_VFIO_CONTAINER, 1, SP_BASE },
	{ "iommufd", CPR_FD_IOMMUFD, 1, SP_BASE },
	{ "guest-memfd", CPR_FD_GUEST_MEMFD, 2, SP_REQUIRED },
};

const struct schema_record *schema_record(uint32_t type)
{
	for (unsigned i = 0; i < ARRAY_SIZE(records); i++)
		if (records[i].type == type)
			return &records[i];
	return NULL;
}

const struct schema_record *schema_record_by_name(const char *name)
{
	for (unsigned i = 0; i < ARRAY_SIZE(records); i++)
		if (strcmp(records[i].name, name) == 0)
			return &records[i];
	return NULL;
}

const struct schema_record *schema_record_at(unsigned index)
{
	return index < ARRAY_SIZE(records) ? &records[index] : NULL;
}

unsigned schema_record_count(void)
{
	return ARRAY_SIZE(records);
}

const struct schema_field *schema_field(const struct schema_record *r, const char *name)
{
	for (unsigned i = 0; i < r->n_fields; i++)
		if (strcmp(r->fields[i].name, name) == 0)
			return &r->fields[i];
	return NULL;
}

/* A fixed part may only end where some level's fixed part ends, or beyond
 * the newest one: never in the middle of a field. */
bool schema_fixed_len_valid(const struct schema_record *r, uint16_t len)
{
	if (len >= r->fixed_len[CPR_LEVEL_MAX])
		return true;
	for (uint32_t l = r->level; l <= CPR_LEVEL_MAX; l++)
		if (len == r->fixed_len[l])
			return true;
	return false;
}

uint16_t schema_fixed_len(const struct schema_record *r, uint32_t level)
{
	if (level > CPR_LEVEL_MAX)
		level = CPR_LEVEL_MAX;
	return level < r->level ? 0 : r->fixed_len[level];
}

uint32_t schema_known_bits(const struct schema_record *r, unsigned word, uint32_t level)
{
	uint32_t bits = 0;

	for (unsigned i = 0; i < r->n_flags; i++)
		if (r->flags[i].word == word && r->flags[i].level <= level)
			bits |= 1u << r->flags[i].bit;
	return bits;
}

const struct schema_flag *schema_flag_at(const struct schema_record *r, unsigned word, unsigned bit)
{
	for (unsigned i = 0; i < r->n_flags; i++)
		if (r->flags[i].word == word && r->flags[i].bit == bit)
			return &r->flags[i];
	return NULL;
}

const struct schema_value *schema_fd_kind(uint32_t value)
{
	for (unsigned i = 0; i < ARRAY_SIZE(fd_kinds); i++)
		if (fd_kinds[i].value == value)
			return &fd_kinds[i];
	return NULL;
}

const struct schema_value *schema_fd_kind_at(unsigned index)
{
	return index < ARRAY_SIZE(fd_kinds) ? &fd_kinds[index] : NULL;
}

unsigned schema_fd_kind_count(void)
{
	return ARRAY_SIZE(fd_kinds);
}

uint64_t schema_get(const struct schema_field *f, const uint8_t *fixed, uint16_t len)
{
	uint8_t tmp[8] = { 0 };

	if (f->offset >= len)
		return 0;
	memcpy(tmp, fixed + f->offset, f->size);
	switch (f->size) {
	case 2:
		return le16_load(tmp);
	case 4:
		return le32_load(tmp);
	case 8:
		return le64_load(tmp);
	default:
		return mem_is_zero(tmp, f->size) ? 0 : 1;
	}
}

void schema_put(const struct schema_field *f, uint8_t *fixed, uint64_t v)
{
	switch (f->size) {
	case 2:
		le16_store(fixed + f->offset, (uint16_t)v);
		break;
	case 4:
		le32_store(fixed + f->offset, (uint32_t)v);
		break;
	case 8:
		le64_store(fixed + f->offset, v);
		break;
	default:
		memset(fixed + f->offset, 0, f->size);
		break;
	}
}

CPR_EXPORT const char *cpr_fd_kind_to_string(uint32_t kind)
{
	const struct schema_value *v = schema_fd_kind(kind);
	return v ? v->name : NULL;
}

CPR_EXPORT int cpr_fd_kind_from_string(const char *s)
{
	if (!s)
		return -EINVAL;
	for (unsigned i = 0; i < ARRAY_SIZE(fd_kinds); i++)
		if (strcmp(fd_kinds[i].name, s) == 0)
			return (int)fd_kinds[i].value;
	return -EINVAL;
}
