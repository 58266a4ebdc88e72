/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The stream schema: for every record type, the fields of its fixed part and
 * the bits of its flag words, each with the compatibility level that
 * introduced it and what a writer does when targeting an older level.  The
 * writer, the reader, the tools and the frozen per-level JSON schema all come
 * from this one table.
 */
#ifndef CPR_SCHEMA_H
#define CPR_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

enum schema_kind {
	SF_U16,
	SF_U32,
	SF_I32,
	SF_U64,
	SF_RESERVED, /* must be zero */
};

enum schema_policy {
	SP_BASE,      /* present since the record's first level */
	SP_REQUIRED,  /* newer: a writer for an older target refuses when it is in use */
	SP_DROPPABLE, /* newer: a writer for an older target drops it with a warning */
};

/* Strings live in the variable part; their length is a fixed-part field. */
struct schema_field {
	const char *name;
	uint16_t offset;
	uint8_t size;
	uint8_t kind;	/* enum schema_kind */
	uint8_t level;	/* level that gave it a meaning */
	uint8_t policy; /* enum schema_policy */
};

enum schema_word {
	SW_MUST,
	SW_HINT,
};

struct schema_flag {
	const char *name;
	uint8_t word; /* enum schema_word */
	uint8_t bit;
	uint8_t level;
	uint8_t policy;
};

/* A value of an enumerated field (FD kind) introduced at some level. */
struct schema_value {
	const char *name;
	uint32_t value;
	uint8_t level;
	uint8_t policy;
};

struct schema_record {
	uint32_t type;
	const char *name;
	uint8_t level; /* level that introduced the record type */
	bool critical;
	bool singleton;
	bool dense;	       /* instances are 0..n-1 in stream order */
	const char *string;    /* name of the length field of the one string, or NULL */
	int must_off;	       /* offset of the must-understand word, or -1 */
	int hint_off;	       /* offset of the hint word, or -1 */
	uint16_t fixed_len[3]; /* fixed-part length written for level 1, 2 (index = level) */
	const struct schema_field *fields;
	unsigned n_fields;
	const struct schema_flag *flags;
	unsigned n_flags;
};

/*
 * Each field's index in its record's table (schema.c is initialised by
 * them): what the writer and the reader name a field by.  Where it sits and
 * how wide it is are the table's alone.
 */
enum { END_RECORD_COUNT, END_RESERVED0 };
enum {
	PRODUCER_LIBCPR_VERSION,
	PRODUCER_VMM_VERSION,
	PRODUCER_NAME_LEN,
	PRODUCER_RESERVED0,
	PRODUCER_RESERVED1,
};
enum { FD_SLOT, FD_KIND, FD_NAME_LEN, FD_ID, FD_MUST_FLAGS, FD_HINT_FLAGS, FD_RESERVED0 };
enum {
	RB_ALIGN,
	RB_USED_LENGTH,
	RB_MAX_LENGTH,
	RB_HOST_ADDR,
	RB_FD_OFFSET,
	RB_FD_INDEX,
	RB_GMEM_FD_REF,
	RB_MUST_FLAGS,
	RB_HINT_FLAGS,
	RB_IDSTR_LEN,
	RB_RESERVED0,
	RB_GMEM_OFFSET,
};

/* Header feature bits (none defined at levels 1-2). */
#define SCHEMA_INCOMPAT_KNOWN 0ull
#define SCHEMA_COMPAT_KNOWN 0ull

const struct schema_record *schema_record(uint32_t type);
const struct schema_record *schema_record_by_name(const char *name);
const struct schema_record *schema_record_at(unsigned index);
unsigned schema_record_count(void);
const struct schema_field *schema_field(const struct schema_record *r, const char *name);
uint16_t schema_fixed_len(const struct schema_record *r, uint32_t level);
bool schema_fixed_len_valid(const struct schema_record *r, uint16_t len);
/* Bits of @word known at @level. */
uint32_t schema_known_bits(const struct schema_record *r, unsigned word, uint32_t level);
const struct schema_flag *schema_flag_at(const struct schema_record *r, unsigned word,
					 unsigned bit);
const struct schema_value *schema_fd_kind(uint32_t value);
const struct schema_value *schema_fd_kind_at(unsigned index);
unsigned schema_fd_kind_count(void);
/* Field values as u64 from a fixed part; 0 when beyond @len (zero-extension). */
uint64_t schema_get(const struct schema_field *f, const uint8_t *fixed, uint16_t len);
void schema_put(const struct schema_field *f, uint8_t *fixed, uint64_t v);

/*
 * layout.c: the fixed parts of PRODUCER, FD and RAMBLOCK as the structs of
 * <cpr/state.h> hold them (PRODUCER: struct cpr_state_info).  A binding
 * names a field by its index and a member by offsetof(); the field's offset
 * and size come from the table.  Every field but the reserved ones and the
 * string's length is bound.
 */
struct schema_bind {
	uint8_t field;	  /* index in the record's fields */
	uint8_t size;	  /* sizeof() the member: 4 or 8 */
	uint16_t member;  /* offsetof() the member */
	const char *name; /* the member's name, the field's too */
};

const struct schema_bind *layout_binds(uint32_t type, unsigned *ret_n);
/* Every bound member of @obj into @fixed, laid out at the newest level. */
void layout_store(const struct schema_record *r, const void *obj, uint8_t *fixed);
/* Every bound field of @fixed (CPR_FIXED_MAX bytes, zero-filled) into @obj. */
void layout_load(const struct schema_record *r, const uint8_t *fixed, void *obj);
/* Field @field (an index above) of a fixed part of CPR_FIXED_MAX bytes. */
void layout_put(const struct schema_record *r, unsigned field, uint8_t *fixed, uint64_t v);
uint64_t layout_get(const struct schema_record *r, unsigned field, const uint8_t *fixed);

#endif
