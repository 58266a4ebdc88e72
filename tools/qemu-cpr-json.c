/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A decoded QEMU CPR stream as JSON, in cprdump's conventions: offsets in hex. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "qemu-cpr.h"

static void add_hex(struct json_object *o, const char *key, uint64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "0x%" PRIx64, v);
	json_object_object_add(o, key, json_object_new_string(s));
}

static void add_int(struct json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* Printable names as strings; anything else as "name_hex". */
static void add_name(struct json_object *o, const char *s, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char *h;

	if (printable(s, n)) {
		json_object_object_add(o, "name", json_object_new_string_len(s, (int)n));
		return;
	}
	h = malloc(2 * n + 1);
	if (!h)
		return;
	for (size_t i = 0; i < n; i++) {
		h[2 * i] = digits[(unsigned char)s[i] >> 4];
		h[2 * i + 1] = digits[(unsigned char)s[i] & 15];
	}
	h[2 * n] = 0;
	json_object_object_add(o, "name_hex", json_object_new_string(h));
	free(h);
}

static struct json_object *fd_json(const struct qcpr_state *st, const struct qcpr_fd *e)
{
	struct json_object *o = json_object_new_object();

	add_hex(o, "offset", e->offset);
	add_name(o, e->name, e->name_len);
	add_int(o, "id", e->id);
	if (st->encoding == QCPR_FD_MARKER) {
		json_object_object_add(o, "fd", NULL);
		add_hex(o, "marker_offset", e->fd_offset);
	} else {
		add_int(o, "fd", e->fd);
		add_hex(o, "fd_offset", e->fd_offset);
	}
	return o;
}

static struct json_object *vfio_json(const struct qcpr_state *st)
{
	struct json_object *o = json_object_new_object(), *devs;

	json_object_object_add(o, "shape",
			       json_object_new_string(qcpr_vfio_shape_name(st->vfio_shape)));
	if (st->vfio_shape == QCPR_VFIO_ABSENT)
		return o;
	add_hex(o, "offset", st->vfio_offset);
	json_object_object_add(o, "name", json_object_new_string(QCPR_VFIO_SUBSECTION));
	add_int(o, "version", st->vfio_version);
	if (st->vfio_shape == QCPR_VFIO_STUB)
		return o;
	devs = json_object_new_array();
	for (size_t i = 0; i < st->n_vfio; i++) {
		const struct qcpr_vfio *d = &st->vfio[i];
		struct json_object *x = json_object_new_object();
		add_hex(x, "offset", d->offset);
		add_name(x, d->name, d->name_len);
		add_int(x, "devid", d->devid);
		add_int(x, "ioas_id", d->ioas_id);
		add_int(x, "hwpt_id", d->hwpt_id);
		json_object_array_add(devs, x);
	}
	json_object_object_add(o, "devices", devs);
	return o;
}

static const char *encoding_name(enum qcpr_fd_encoding e)
{
	return e == QCPR_FD_MARKER ? "marker" : e == QCPR_FD_BE32 ? "be32" : "none";
}

static const char *mode_name(enum qcpr_fd_encoding e)
{
	return e == QCPR_FD_MARKER ? "cpr-transfer" : e == QCPR_FD_BE32 ? "cpr-exec" : "unknown";
}

struct json_object *qcpr_to_json(const struct qcpr_state *st)
{
	struct json_object *o = json_object_new_object(), *h = json_object_new_object();
	struct json_object *fds = json_object_new_array();

	json_object_object_add(o, "format", json_object_new_string("qemu-cpr"));
	add_hex(h, "magic", QCPR_MAGIC);
	add_int(h, "version", st->version);
	add_int(h, "length", (int64_t)st->len);
	json_object_object_add(h, "fd_encoding",
			       json_object_new_string(encoding_name(st->encoding)));
	json_object_object_add(h, "mode", json_object_new_string(mode_name(st->encoding)));
	json_object_object_add(o, "header", h);
	for (size_t i = 0; i < st->n_fds; i++)
		json_object_array_add(fds, fd_json(st, &st->fds[i]));
	json_object_object_add(o, "fds", fds);
	add_int(o, "markers", (int64_t)st->markers);
	json_object_object_add(o, "vfio", vfio_json(st));
	return o;
}

void qcpr_summary(const struct qcpr_state *st, char *buf, size_t size)
{
	snprintf(buf, size,
		 "valid: QEMU CPR stream version %" PRIu32 " (%s), %zu fd entries, %zu fd "
		 "markers, vfio subsection %s, %zu vfio devices",
		 st->version, mode_name(st->encoding), st->n_fds, st->markers,
		 qcpr_vfio_shape_name(st->vfio_shape), st->n_vfio);
}
