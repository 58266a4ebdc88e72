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

#endif
