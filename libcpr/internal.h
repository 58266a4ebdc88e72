/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by libcpr's files, cprd and the tools.  Not installed. */
#ifndef CPR_INTERNAL_H
#define CPR_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CPR_EXPORT __attribute__((visibility("default")))
#define _cpr_printf_(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN8(x) (((x) + 7u) & ~(uint64_t)7u)
#define PAD8(x) ((8u - ((x)&7u)) & 7u)

/* Close @fd unless negative; preserves errno; returns -EBADF. */
static inline int cpr_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -EBADF;
}

static inline void cpr_closep(int *fd)
{
	cpr_close(*fd);
}

static inline void cpr_freep(void *p)
{
	free(*(void **)p);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_close_ _cleanup_(cpr_closep)
#define _cleanup_free_ _cleanup_(cpr_freep)

#define TAKE_FD(fd)              \
	({                       \
		int _fd_ = (fd); \
		(fd) = -EBADF;   \
		_fd_;            \
	})
#define TAKE_PTR(p)                  \
	({                           \
		typeof(p) _p_ = (p); \
		(p) = NULL;          \
		_p_;                 \
	})

/* Little-endian loads and stores, byte by byte: never cast a stream pointer. */
static inline uint16_t le16_load(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t le32_load(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le64_load(const uint8_t *p)
{
	return (uint64_t)le32_load(p) | (uint64_t)le32_load(p + 4) << 32;
}

static inline void le16_store(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void le32_store(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void le64_store(uint8_t *p, uint64_t v)
{
	le32_store(p, (uint32_t)v);
	le32_store(p + 4, (uint32_t)(v >> 32));
}

static inline bool mem_is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* crc32c.c */
uint32_t cpr_crc32c(uint32_t crc, const void *buf, size_t len);

/* errors.c: fill a struct cpr_error (NULL-safe). */
struct cpr_error;
void cpr_error_set(struct cpr_error *err, int code, uint32_t type, uint32_t instance,
		   uint64_t offset, const char *fmt, ...) _cpr_printf_(6, 7);
void cpr_error_setv(struct cpr_error *err, int code, uint32_t type, uint32_t instance,
		    uint64_t offset, const char *fmt, va_list ap) _cpr_printf_(6, 0);
/* cpr_error_set() that returns @code, for "return cpr_fail(...)". */
int cpr_fail(struct cpr_error *err, int code, uint32_t type, uint32_t instance, uint64_t offset,
	     const char *fmt, ...) _cpr_printf_(6, 7);
#define NO_TYPE UINT32_MAX
#define NO_INST UINT32_MAX
/* A struct cpr_error that concerns no record yet. */
#define CPR_ERROR_INIT                                                                       \
	{                                                                                    \
		.code = 0, .record_type = NO_TYPE, .instance = NO_INST, .offset = UINT64_MAX \
	}
/*
 * The public boundary of a function whose man page lists the errnos in
 * @allowed (positive, 0-terminated) and the catch-all @other: a failure @r
 * that nothing explained yet gets its strerror() as message; one not in
 * the list becomes @other, its message naming the original.  Returns the
 * code to return; @e->code is left alone when it already says something
 * else (a NAK's own errno).
 */
int cpr_errno_filter(int r, struct cpr_error *e, const int *allowed, int other);
/* cpr_errno_filter(), then copy @e to @ret_err (when not NULL) on failure. */
int cpr_error_finish(int r, struct cpr_error *e, struct cpr_error *ret_err, const int *allowed,
		     int other);
/* Copy @s into @buf for a message: printable ASCII, quoted-safe, truncated. */
const char *cpr_quote(char *buf, size_t len, const char *s, size_t n);

#endif
