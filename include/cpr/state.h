/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The precreate vmstate stream: an in-memory state, a deterministic writer
 * for a target compatibility level, and a pure parser.  The byte layout is
 * specified in cpr-state(5).
 */
#ifndef CPR_STATE_H
#define CPR_STATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Compatibility levels this library reads and writes. */
#define CPR_LEVEL_MIN 1u
#define CPR_LEVEL_MAX 2u

/* Named limits; see cpr-state(5) LIMITS. */
#define CPR_HEADER_SIZE 80u
#define CPR_HEADER_MAX 4096u
#define CPR_STREAM_MAX (16u << 20) /* bytes in one stream */
#define CPR_RECORD_MAX (64u << 10) /* body bytes in one record */
#define CPR_RECORDS_MAX 65536u	   /* records in one stream, END included */
#define CPR_FDS_MAX 16384u	   /* FD records */
#define CPR_RAMBLOCKS_MAX 1024u	   /* RAMBLOCK records */
#define CPR_PRIVATE_MAX 4096u	   /* VMM-private records */
#define CPR_NAME_MAX 255u	   /* FD name, RAMBLOCK idstr */
#define CPR_PRODUCER_MAX 128u	   /* PRODUCER name */
#define CPR_ALIGN_MAX (1ull << 30) /* RAMBLOCK align */
#define CPR_BLOCK_MAX (1ull << 46) /* RAMBLOCK max_length */

/* Record types. */
#define CPR_REC_END 0x0000u
#define CPR_REC_PRODUCER 0x0001u
#define CPR_REC_FD 0x0010u
#define CPR_REC_RAMBLOCK 0x0020u
#define CPR_REC_PRIVATE_FIRST 0x8000u /* VMM-private range, never CRITICAL */
#define CPR_REC_PRIVATE_LAST 0xfffeu

/* Kinds of preserved fds (FD record "kind"). */
enum cpr_fd_kind {
	CPR_FD_GENERIC = 1,	   /* any fd; no type check beyond "open" */
	CPR_FD_MEMFD = 2,	   /* memfd (shmem or hugetlbfs) */
	CPR_FD_EVENTFD = 3,	   /* eventfd anon inode */
	CPR_FD_SOCKET = 4,	   /* any socket */
	CPR_FD_VFIO_CDEV = 5,	   /* /dev/vfio/devices/vfioN */
	CPR_FD_VFIO_GROUP = 6,	   /* /dev/vfio/N */
	CPR_FD_VFIO_CONTAINER = 7, /* /dev/vfio/vfio */
	CPR_FD_IOMMUFD = 8,	   /* /dev/iommu */
	CPR_FD_GUEST_MEMFD = 9,	   /* KVM guest_memfd (level 2) */
};
#define CPR_FD_KIND_MAX 9

/* FD record flags.  No must-understand or hint bits are defined yet. */

/* RAMBLOCK must-understand flags of the stream (cpr-state(5)); not the
 * CPR_RAMBLOCK_* flags of cpr_ramblock_new(), which say what to create. */
#define CPR_STATE_RB_RESIZEABLE (1u << 0)  /* used_length may change up to max_length */
#define CPR_STATE_RB_HUGETLB (1u << 1)	   /* memfd lives on hugetlbfs (2 MiB pages) */
#define CPR_STATE_RB_MAP_AT_ADDR (1u << 2) /* must be mapped at host_addr */
/* RAMBLOCK hint flags. */
#define CPR_STATE_RB_HINT_DONTDUMP (1u << 0) /* exclude from core dumps (level 1) */
#define CPR_STATE_RB_HINT_THP (1u << 1) /* prefer transparent huge pages (level 2, droppable) */

struct cpr_state_fd {
	uint32_t slot; /* exec: fd number; transfer: index in the fd array */
	uint32_t kind; /* enum cpr_fd_kind */
	int32_t id;
	uint32_t must_flags;
	uint32_t hint_flags;
	char name[CPR_NAME_MAX + 1];
};

struct cpr_state_ramblock {
	uint64_t align;
	uint64_t used_length;
	uint64_t max_length;
	uint64_t host_addr;
	uint64_t fd_offset;
	uint32_t fd_index;    /* index of the FD record (kind memfd) */
	uint32_t gmem_fd_ref; /* 0 = none, n = FD record n-1 (level 2) */
	uint64_t gmem_offset; /* offset in the guest_memfd (level 2) */
	uint32_t must_flags;  /* CPR_STATE_RB_* */
	uint32_t hint_flags;  /* CPR_STATE_RB_HINT_* */
	char idstr[CPR_NAME_MAX + 1];
};

struct cpr_state_private {
	uint32_t type; /* CPR_REC_PRIVATE_FIRST..CPR_REC_PRIVATE_LAST */
	uint32_t instance;
	size_t len;
	const void *data; /* owned by the state */
};

/* Header values a caller reads after parsing or sets before encoding. */
struct cpr_state_info {
	uint32_t emit_level;	   /* level the writer targeted */
	uint32_t producer_level;   /* highest level the writer supports */
	uint32_t min_reader_level; /* lowest level that accepts the stream */
	uint32_t generation;	   /* hop counter */
	uint32_t page_shift;	   /* writer's base page shift */
	uint64_t compat_features;  /* informational bits */
	uint8_t stream_id[16];	   /* random id the transport token repeats */
	uint32_t libcpr_version;   /* PRODUCER: packed major<<16|minor<<8|patch */
	uint32_t vmm_version;	   /* PRODUCER: packed, 0 = unknown */
	char producer[CPR_PRODUCER_MAX + 1];
};

/*
 * A structured diagnostic: an error that refused a stream or an encode, or a
 * warning (code 0) from the writer about a dropped element.
 */
struct cpr_error {
	int code;	      /* negative errno, 0 for a warning */
	uint32_t record_type; /* record concerned, or UINT32_MAX for none */
	uint32_t instance;    /* its instance, or UINT32_MAX */
	uint64_t offset;      /* byte offset in the stream, or UINT64_MAX */
	char message[320];
};

typedef void (*cpr_diag_fn)(void *userdata, const struct cpr_error *diag);

struct cpr_state;

int cpr_state_new(struct cpr_state **ret_state);
void cpr_state_free(struct cpr_state *st);

int cpr_state_get_info(const struct cpr_state *st, struct cpr_state_info *ret_info);
int cpr_state_set_producer(struct cpr_state *st, const char *name, uint32_t vmm_version);
int cpr_state_set_stream_id(struct cpr_state *st, const uint8_t id[16]);
int cpr_state_set_generation(struct cpr_state *st, uint32_t generation);
int cpr_state_set_page_shift(struct cpr_state *st, uint32_t page_shift);

int cpr_state_add_fd(struct cpr_state *st, const struct cpr_state_fd *fd);
int cpr_state_add_ramblock(struct cpr_state *st, const struct cpr_state_ramblock *rb);
int cpr_state_add_private(struct cpr_state *st, uint32_t type, uint32_t instance, const void *data,
			  size_t len);

size_t cpr_state_fd_count(const struct cpr_state *st);
const struct cpr_state_fd *cpr_state_fd_get(const struct cpr_state *st, size_t index);
int cpr_state_fd_find(const struct cpr_state *st, const char *name, int32_t id);
size_t cpr_state_ramblock_count(const struct cpr_state *st);
const struct cpr_state_ramblock *cpr_state_ramblock_get(const struct cpr_state *st, size_t index);
int cpr_state_ramblock_find(const struct cpr_state *st, const char *idstr);
size_t cpr_state_private_count(const struct cpr_state *st);
const struct cpr_state_private *cpr_state_private_get(const struct cpr_state *st, size_t index);
int cpr_state_private_find(const struct cpr_state *st, uint32_t type, uint32_t instance,
			   const void **ret_data, size_t *ret_len);

/*
 * Validate @st for @target_level without encoding.  Droppable newer elements
 * in use are reported through @warn (may be NULL); a required one in use
 * fails with -EPROTONOSUPPORT and @ret_err names it and the target.
 */
int cpr_state_check(const struct cpr_state *st, uint32_t target_level, cpr_diag_fn warn,
		    void *userdata, struct cpr_error *ret_err);

/*
 * Encode @st for @target_level (0 = CPR_LEVEL_MAX).  Deterministic: the same
 * state and target give the same bytes.  On success *ret_buf is malloc()ed
 * and owned by the caller.
 */
int cpr_state_encode(const struct cpr_state *st, uint32_t target_level, cpr_diag_fn warn,
		     void *userdata, void **ret_buf, size_t *ret_len, struct cpr_error *ret_err);

/*
 * Parse and validate a stream.  Pure: no system calls, never keeps @buf.
 * @max_level caps the reader (0 = CPR_LEVEL_MAX) so tests and tools can act
 * as an older reader.  Either a complete state is returned, or nothing.
 */
int cpr_state_parse(const void *buf, size_t len, uint32_t max_level, struct cpr_state **ret_state,
		    struct cpr_error *ret_err);

const char *cpr_fd_kind_to_string(uint32_t kind);
int cpr_fd_kind_from_string(const char *s);

#ifdef __cplusplus
}
#endif

#endif
