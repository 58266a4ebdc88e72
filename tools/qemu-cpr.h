/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QEMU's CPR state (the cpr-transfer channel, or the QEMU_CPR_EXEC_STATE
 * memfd of cpr-exec): one decoder and one encoder, shared by cprdump and
 * cprd (tools/libqemu-cpr.la, no JSON library: qcpr_to_json() is in
 * qemu-cpr-json.c, linked by the tools only).  Big-endian: "QCPR", version 1,
 * the list of (name, id, fd) entries, then the optional "CprState/vfio
 * devices" subsection, empty in builds without VFIO.  No length, footer or
 * checksum: the end is the grammar's end plus the end of the bytes.
 */
#ifndef CPR_QEMU_CPR_H
#define CPR_QEMU_CPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QCPR_MAGIC 0x51435052u /* "QCPR" */
#define QCPR_VERSION 1u
struct json_object;

#define QCPR_MARKER 0x20 /* the byte each fd travels with over cpr-transfer */
#define QCPR_VFIO_SUBSECTION "CprState/vfio devices"
/* Limits: far above what a QEMU writes, low enough to refuse garbage early. */
#define QCPR_NAME_MAX 4096u
#define QCPR_ENTRIES_MAX 65536u

/* How the fd field of an entry is written. */
enum qcpr_fd_encoding {
	QCPR_FD_AUTO,	/* from the first entry */
	QCPR_FD_MARKER, /* cpr-transfer: one 0x20 byte, the fd by SCM_RIGHTS */
	QCPR_FD_BE32,	/* cpr-exec: the fd number, be32 */
};

enum qcpr_vfio_shape {
	QCPR_VFIO_ABSENT, /* QEMU 10.0: no subsection */
	QCPR_VFIO_STUB,	  /* header only: a build without VFIO */
	QCPR_VFIO_LIST,	  /* header and device list */
};

struct qcpr_fd {
	char *name; /* without its NUL */
	size_t name_len;
	int32_t id;
	int32_t fd;		  /* -1 with QCPR_FD_MARKER */
	size_t offset, fd_offset; /* of the entry, of its fd field */
};

struct qcpr_vfio {
	char *name;
	size_t name_len;
	int32_t devid;
	uint32_t ioas_id, hwpt_id;
	size_t offset;
};

struct qcpr_state {
	uint32_t version;
	size_t len;
	enum qcpr_fd_encoding encoding;
	struct qcpr_fd *fds;
	size_t n_fds, markers;
	enum qcpr_vfio_shape vfio_shape;
	uint32_t vfio_version;
	size_t vfio_offset;
	struct qcpr_vfio *vfio;
	size_t n_vfio;
};

struct qcpr_error {
	int code;
	size_t offset;
	char message[256];
};

/* Does @buf start with the QCPR magic? */
bool qcpr_detect(const void *buf, size_t len);
/*
 * Decode all of @buf; 0, or -EBADMSG (malformed), -ENOTSUP (version),
 * -ENOMEM, with @ret_err naming the offset.  @ret_state is written only on
 * success.
 */
int qcpr_parse(const void *buf, size_t len, enum qcpr_fd_encoding encoding,
	       struct qcpr_state **ret_state, struct qcpr_error *ret_err);
void qcpr_free(struct qcpr_state *st);
/* The decoded stream as JSON ("format": "qemu-cpr"). */
struct json_object *qcpr_to_json(const struct qcpr_state *st);
/* A one-line summary for --check. */
void qcpr_summary(const struct qcpr_state *st, char *buf, size_t size);
const char *qcpr_vfio_shape_name(enum qcpr_vfio_shape shape);

/*
 * The encoder (qemu-cpr-enc.c): a decoded cpr-transfer stream back out in
 * QEMU's own format, as the old QEMU writes it: the stream bytes in order,
 * each 0x20 marker in a sendmsg() of its own carrying exactly one fd, the
 * fds in stream order; then shutdown(SHUT_WR).  Never blocks by itself: a
 * step on a non-blocking socket returns 0 when the socket is full.
 */
struct qcpr_writer {
	const uint8_t *buf;
	size_t len, off;
	const struct qcpr_state *st; /* decoded with QCPR_FD_MARKER */
	const int *fds;		     /* one for each entry, in stream order; borrowed */
	size_t next;		     /* the entry whose marker comes next */
	bool shut;
};

void qcpr_writer_init(struct qcpr_writer *w, const void *buf, size_t len,
		      const struct qcpr_state *st, const int *fds);
/*
 * What goes out next, without a system call: @ret_len bytes from w->off,
 * with fd @ret_fd (a marker: one byte) or -1 (plain bytes).  0 when every
 * byte is out.
 */
size_t qcpr_writer_next(const struct qcpr_writer *w, int *ret_fd);
/* Account for @n bytes sent (for a marker: its fd went with it). */
void qcpr_writer_advance(struct qcpr_writer *w, size_t n);
/*
 * Send as much as @sock takes: 1 when all is out and the write side shut,
 * 0 when the socket is full (wait for EPOLLOUT), -errno on failure.
 */
int qcpr_writer_step(struct qcpr_writer *w, int sock);
/* qcpr_writer_step() until done, on a blocking socket. */
int qcpr_send(int sock, const void *buf, size_t len, const struct qcpr_state *st, const int *fds);

#endif
