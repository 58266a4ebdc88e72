/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Decoder of QEMU's CPR state stream (see qemu-cpr.h).  Every read is bounded
 * by the bytes left; every failure names the offset it happened at.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-cpr.h"

#define QEMU_VM_SUBSECTION 0x05

struct rd {
	const uint8_t *b;
	size_t off, end;
	struct qcpr_error *err;
};

__attribute__((format(printf, 3, 4))) static int fail(struct rd *r, int code, const char *fmt, ...)
{
	va_list ap;
	int n;

	r->err->code = code;
	r->err->offset = r->off;
	n = snprintf(r->err->message, sizeof(r->err->message), "offset 0x%zx: ", r->off);
	va_start(ap, fmt);
	vsnprintf(r->err->message + n, sizeof(r->err->message) - (size_t)n, fmt, ap);
	va_end(ap);
	return code;
}

static int need(struct rd *r, size_t len, const char *what)
{
	if (len > r->end - r->off)
		return fail(r, -EBADMSG, "truncated: %s needs %zu bytes, %zu left", what, len,
			    r->end - r->off);
	return 0;
}

static int get_u8(struct rd *r, const char *what, uint8_t *ret)
{
	int k = need(r, 1, what);

	if (k < 0)
		return k;
	*ret = r->b[r->off++];
	return 0;
}

static int get_be32(struct rd *r, const char *what, uint32_t *ret)
{
	const uint8_t *p = r->b + r->off;
	int k = need(r, 4, what);

	if (k < 0)
		return k;
	*ret = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	r->off += 4;
	return 0;
}

/* be32 length (including the NUL), then the bytes: a C string, nothing after its NUL. */
static int get_name(struct rd *r, char **ret, size_t *ret_len)
{
	size_t start = r->off;
	uint32_t len;
	char *s;
	int k;

	if ((k = get_be32(r, "name length", &len)) < 0)
		return k;
	if (len == 0 || len > QCPR_NAME_MAX) {
		r->off = start;
		return fail(r, -EBADMSG, "name length %" PRIu32 " is outside 1..%u", len,
			    QCPR_NAME_MAX);
	}
	if ((k = need(r, len, "name")) < 0)
		return k;
	if (memchr(r->b + r->off, 0, len) != r->b + r->off + len - 1)
		return fail(r, -EBADMSG,
			    "name of %" PRIu32 " bytes is not one NUL-terminated string", len);
	s = malloc(len);
	if (!s)
		return fail(r, -ENOMEM, "out of memory");
	memcpy(s, r->b + r->off, len);
	r->off += len;
	*ret = s;
	*ret_len = len - 1;
	return 0;
}

/* A QLIST element follows when the next byte is 1, the list ends at 0. */
static int list_more(struct rd *r, const char *what, bool *ret)
{
	uint8_t b;
	int k = get_u8(r, what, &b);

	if (k < 0)
		return k;
	if (b > 1) {
		r->off--;
		return fail(r, -EBADMSG, "%s: byte 0x%02x is neither 1 (element) nor 0 (end)", what,
			    b);
	}
	*ret = b == 1;
	return 0;
}

static int get_fd_field(struct rd *r, struct qcpr_state *st, struct qcpr_fd *e)
{
	uint32_t v;
	uint8_t b;
	int k;

	e->fd_offset = r->off;
	if (st->encoding == QCPR_FD_AUTO) {
		if ((k = need(r, 1, "fd field")) < 0)
			return k;
		st->encoding = r->b[r->off] == QCPR_MARKER ? QCPR_FD_MARKER : QCPR_FD_BE32;
	}
	if (st->encoding == QCPR_FD_MARKER) {
		if ((k = get_u8(r, "fd marker", &b)) < 0)
			return k;
		if (b != QCPR_MARKER) {
			r->off--;
			return fail(r, -EBADMSG, "fd marker is 0x%02x, not 0x20", b);
		}
		st->markers++;
		e->fd = -1;
		return 0;
	}
	if ((k = get_be32(r, "fd number", &v)) < 0)
		return k;
	if ((int32_t)v < 0) {
		r->off -= 4;
		return fail(r, -EBADMSG, "fd number %" PRId32 " is negative", (int32_t)v);
	}
	e->fd = (int32_t)v;
	return 0;
}

static int grow(struct rd *r, void **arr, size_t n, size_t size)
{
	void *p;

	if (n >= QCPR_ENTRIES_MAX)
		return fail(r, -EBADMSG, "more than %u list elements", QCPR_ENTRIES_MAX);
	if (n & (n - 1))
		return 0; /* room left: capacity is the next power of two */
	p = realloc(*arr, (n ? 2 * n : 1) * size);
	if (!p)
		return fail(r, -ENOMEM, "out of memory");
	*arr = p;
	return 0;
}

static int parse_fds(struct rd *r, struct qcpr_state *st)
{
	for (;;) {
		struct qcpr_fd *e;
		uint32_t id;
		bool more;
		size_t at = r->off;
		int k;

		if ((k = list_more(r, "fd list", &more)) < 0 || !more)
			return k;
		if ((k = grow(r, (void **)&st->fds, st->n_fds, sizeof(*e))) < 0)
			return k;
		e = &st->fds[st->n_fds];
		memset(e, 0, sizeof(*e));
		e->offset = at;
		if ((k = get_name(r, &e->name, &e->name_len)) < 0)
			return k;
		st->n_fds++;
		if ((k = get_be32(r, "fd id", &id)) < 0)
			return k;
		e->id = (int32_t)id;
		if ((k = get_fd_field(r, st, e)) < 0)
			return k;
	}
}

static int parse_vfio_list(struct rd *r, struct qcpr_state *st)
{
	for (;;) {
		struct qcpr_vfio *d;
		uint32_t v;
		bool more;
		size_t at = r->off;
		int k;

		if ((k = list_more(r, "vfio device list", &more)) < 0 || !more)
			return k;
		if ((k = grow(r, (void **)&st->vfio, st->n_vfio, sizeof(*d))) < 0)
			return k;
		d = &st->vfio[st->n_vfio];
		memset(d, 0, sizeof(*d));
		d->offset = at;
		if ((k = get_name(r, &d->name, &d->name_len)) < 0)
			return k;
		st->n_vfio++;
		if ((k = get_be32(r, "vfio devid", &v)) < 0)
			return k;
		d->devid = (int32_t)v;
		if ((k = get_be32(r, "vfio ioas_id", &d->ioas_id)) < 0 ||
		    (k = get_be32(r, "vfio hwpt_id", &d->hwpt_id)) < 0)
			return k;
	}
}

/* After the fd list: nothing (QEMU 10.0), or the vfio subsection. */
static int parse_vfio(struct rd *r, struct qcpr_state *st)
{
	static const char name[] = QCPR_VFIO_SUBSECTION;
	uint8_t len;
	int k;

	if (r->off == r->end)
		return 0;
	if (r->b[r->off] != QEMU_VM_SUBSECTION)
		return fail(r, -EBADMSG, "%zu trailing bytes after the fd list", r->end - r->off);
	st->vfio_offset = r->off++;
	if ((k = get_u8(r, "subsection name length", &len)) < 0)
		return k;
	if ((k = need(r, len, "subsection name")) < 0)
		return k;
	if (len != sizeof(name) - 1 || memcmp(r->b + r->off, name, len) != 0) {
		r->off--;
		return fail(r, -EBADMSG, "unknown subsection (name of %u bytes), not '%s'", len,
			    name);
	}
	r->off += len;
	if ((k = get_be32(r, "subsection version", &st->vfio_version)) < 0)
		return k;
	if (st->vfio_version != 1) {
		r->off -= 4;
		return fail(r, -ENOTSUP, "unsupported vfio subsection version %" PRIu32,
			    st->vfio_version);
	}
	st->vfio_shape = QCPR_VFIO_STUB;
	if (r->off == r->end)
		return 0;
	st->vfio_shape = QCPR_VFIO_LIST;
	return parse_vfio_list(r, st);
}

const char *qcpr_vfio_shape_name(enum qcpr_vfio_shape shape)
{
	static const char *const names[] = { "absent", "stub", "list" };

	return shape <= QCPR_VFIO_LIST ? names[shape] : "?";
}

bool qcpr_detect(const void *buf, size_t len)
{
	return len >= 4 && memcmp(buf, "QCPR", 4) == 0;
}

static int parse_header(struct rd *r, struct qcpr_state *st)
{
	uint32_t magic;
	int k;

	if ((k = get_be32(r, "magic", &magic)) < 0)
		return k;
	if (magic != QCPR_MAGIC) {
		r->off = 0;
		return fail(r, -EBADMSG, "bad magic 0x%08" PRIx32 ", not 0x%08x (\"QCPR\")", magic,
			    QCPR_MAGIC);
	}
	if ((k = get_be32(r, "version", &st->version)) < 0)
		return k;
	if (st->version != QCPR_VERSION) {
		r->off -= 4;
		return fail(r, -ENOTSUP, "unsupported version %" PRIu32 " (this reader knows %u)",
			    st->version, QCPR_VERSION);
	}
	return 0;
}

int qcpr_parse(const void *buf, size_t len, enum qcpr_fd_encoding encoding,
	       struct qcpr_state **ret_state, struct qcpr_error *ret_err)
{
	struct rd r = { .b = buf, .end = len, .err = ret_err };
	struct qcpr_state *st = calloc(1, sizeof(*st));
	int k;

	if (!st)
		return fail(&r, -ENOMEM, "out of memory");
	st->len = len;
	st->encoding = encoding;
	if ((k = parse_header(&r, st)) < 0 || (k = parse_fds(&r, st)) < 0 ||
	    (k = parse_vfio(&r, st)) < 0) {
		qcpr_free(st);
		return k;
	}
	if (r.off != r.end) {
		k = fail(&r, -EBADMSG, "%zu trailing bytes", r.end - r.off);
		qcpr_free(st);
		return k;
	}
	*ret_state = st;
	return 0;
}

void qcpr_free(struct qcpr_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_fds; i++)
		free(st->fds[i].name);
	for (size_t i = 0; i < st->n_vfio; i++)
		free(st->vfio[i].name);
	free(st->fds);
	free(st->vfio);
	free(st);
}
