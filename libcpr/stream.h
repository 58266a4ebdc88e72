/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Byte layout of the stream (cpr-state(5)) shared by the writer, the reader and the tools. */
#ifndef CPR_STREAM_H
#define CPR_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpr/cpr.h"

#define CPR_FORMAT_VERSION 1u
/* PRODUCER libcpr_version: major << 16 | minor << 8 | patch. */
#define CPR_LIBCPR_VERSION \
	((uint32_t)CPR_VERSION_MAJOR << 16 | (uint32_t)CPR_VERSION_MINOR << 8 | CPR_VERSION_PATCH)
#define CPR_RFLAG_CRITICAL 0x0001u
#define CPR_REC_HDR_SIZE 16u
#define CPR_FIXED_MAX 72u /* largest fixed part this library knows */

/* Header offsets (frozen: magic, header_len, format_version never move). */
#define HDR_MAGIC 0
#define HDR_LEN 8
#define HDR_VERSION 10
#define HDR_FLAGS 12
#define HDR_TOTAL 16
#define HDR_CRC 24
#define HDR_EMIT 28
#define HDR_INCOMPAT 32
#define HDR_COMPAT 40
#define HDR_PRODUCER_LEVEL 48
#define HDR_MIN_READER 52
#define HDR_ID 56
#define HDR_GENERATION 72
#define HDR_PAGE_SHIFT 76
#define HDR_RESERVED 77 /* 3 bytes */

extern const uint8_t cpr_magic[8];

/* One record as framed in a stream whose framing has been validated. */
struct stream_rec {
	uint32_t type;
	uint16_t rflags;
	uint16_t fixed_len;
	uint32_t instance;
	uint32_t body_len;
	uint64_t offset; /* of the record header */
	const uint8_t *fixed;
	const uint8_t *var;
	uint32_t var_len;
};

struct cpr_state;

/* Header and framing checks (phases 1-2 without record semantics).  Calls
 * @fn for every record; a negative return from @fn stops the walk. */
typedef int (*stream_rec_fn)(void *userdata, const struct stream_rec *rec, struct cpr_error *err);
int stream_walk(const uint8_t *buf, size_t len, stream_rec_fn fn, void *userdata,
		struct cpr_error *err);
/* Header values (no checks beyond length) into @info. */
void stream_header_info(const uint8_t *buf, struct cpr_state_info *info);

/* state.c: attach an owned copy of a private body; used by the reader. */
int state_add_private_owned(struct cpr_state *st, uint32_t type, uint32_t instance, void *data,
			    size_t len);
int state_set_info(struct cpr_state *st, const struct cpr_state_info *info);
int state_append_fd(struct cpr_state *st, const struct cpr_state_fd *fd);
int state_append_ramblock(struct cpr_state *st, const struct cpr_state_ramblock *rb);
struct cpr_state_fd *state_next_fd(struct cpr_state *st, int *ret_err);
int state_commit_fd(struct cpr_state *st);
struct cpr_state_ramblock *state_next_ramblock(struct cpr_state *st, int *ret_err);
int state_commit_ramblock(struct cpr_state *st);
int state_reserve(struct cpr_state *st, size_t n_fds, size_t n_rbs);
bool state_name_valid(const char *s, size_t *ret_len);
/*
 * parse.c: the rules cpr_state_parse() applies to what records say rather
 * than to how they are framed (kinds and must flags known at @max_level,
 * FD slots in range and unique, every RAMBLOCK's numbers, references and
 * overlaps), judged on @st itself, with the reader's messages.  With
 * stream_walk() over the bytes, the writer's check of its own output.
 */
int state_check(const struct cpr_state *st, uint32_t max_level, struct cpr_error *err);

#endif
