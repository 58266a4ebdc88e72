/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What came over a QEMU cpr channel: the stream decodes (tools/qemu-cpr.c,
 * the decoder cprdump uses), it has one 0x20 marker for each fd received,
 * each fd arrived with the bytes that hold its marker, and each fd is of a
 * kind QEMU preserves (memory, eventfds, VFIO and iommufd devices) and the
 * kind its name implies.  Also the JSON "show" gives of such a bundle.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "cprd.h"
#include "qemu-peer.h"

#define PF_EXITING 0x00000004u /* include/linux/sched.h */

const char *qpeer_fd_kind(int fd)
{
	struct stat st;

	if (fcntl(fd, F_GET_SEALS) >= 0)
		return "memfd";
	if (fstat(fd, &st) < 0)
		return "?";
	if (S_ISREG(st.st_mode))
		return "file";
	if (S_ISSOCK(st.st_mode))
		return "socket";
	if (S_ISFIFO(st.st_mode))
		return "fifo";
	if (S_ISCHR(st.st_mode)) {
		if (cpr_fd_check_kind(fd, CPR_FD_IOMMUFD) == 0)
			return "iommufd";
		if (cpr_fd_check_kind(fd, CPR_FD_VFIO_CDEV) == 0 ||
		    cpr_fd_check_kind(fd, CPR_FD_VFIO_GROUP) == 0 ||
		    cpr_fd_check_kind(fd, CPR_FD_VFIO_CONTAINER) == 0)
			return "vfio";
		return "chardev";
	}
	if (cpr_fd_check_kind(fd, CPR_FD_EVENTFD) == 0)
		return "eventfd";
	return "other";
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The kind QEMU's name for an fd implies (hw/vfio, system/physmem.c), or NULL: any. */
static const char *qpeer_name_kind(const struct qcpr_fd *e)
{
	if (ends_with(e->name, e->name_len, "_interrupt") ||
	    ends_with(e->name, e->name_len, "_err") || ends_with(e->name, e->name_len, "_req"))
		return "eventfd";
	if (e->name_len == 7 && memcmp(e->name, "iommufd", 7) == 0)
		return "iommufd";
	return NULL;
}

/* Sockets, pipes and the rest: QEMU's CPR preserves none of them. */
static bool qpeer_kind_preserved(const char *kind)
{
	static const char *const ok[] = {
		"memfd", "file", "eventfd", "vfio", "iommufd", "chardev"
	};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (strcmp(kind, ok[i]) == 0)
			return true;
	return false;
}

static int qpeer_check_fds(struct qpeer *qp, char *why, size_t why_len)
{
	const struct qcpr_state *st = qp->st;

	for (size_t i = 0; i < st->n_fds; i++) {
		const struct qcpr_fd *e = &st->fds[i];
		const char *kind, *want = qpeer_name_kind(e);
		char q[80];

		cpr_quote(q, sizeof(q), e->name, e->name_len);
		if (e->fd_offset < qp->fd_at[i] || e->fd_offset >= qp->fd_end[i]) {
			snprintf(
				why, why_len,
				"fd %zu (\"%s\") arrived with bytes 0x%zx..0x%zx, its marker is at "
				"0x%zx",
				i, q, qp->fd_at[i], qp->fd_end[i], e->fd_offset);
			return -EBADMSG;
		}
		if (!cprd.cfg.limits.check_kinds)
			continue;
		kind = qpeer_fd_kind(qp->fds[i]);
		if (!qpeer_kind_preserved(kind) || (want && strcmp(kind, want) != 0)) {
			snprintf(why, why_len, "fd %zu (\"%s\") is a %s, not %s", i, q, kind,
				 want ? want : "a kind QEMU preserves");
			return -EMEDIUMTYPE;
		}
	}
	return 0;
}

int qpeer_check(struct qpeer *qp, char *why, size_t why_len)
{
	struct qcpr_error err = { 0 };
	int r = qcpr_parse(qp->buf, qp->len, QCPR_FD_MARKER, &qp->st, &err);

	if (r < 0) {
		snprintf(why, why_len, "%s", err.message);
		return r;
	}
	if (qp->st->markers != qp->n_fds) {
		snprintf(why, why_len, "%zu fd markers in the stream but %zu fds received",
			 qp->st->markers, qp->n_fds);
		return -EBADMSG;
	}
	return qpeer_check_fds(qp, why, why_len);
}

static int read_small(const char *path, char *buf, size_t size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

/*
 * A process that is being killed closes its files (the HUP the old QEMU
 * would take for "ready") before its pidfd says it exited: PF_EXITING in
 * /proc/PID/stat is set before either.
 */
bool qpeer_pid_exiting(int pidfd)
{
	char path[64], buf[1024], *p;
	unsigned long flags;
	long pid;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	if (read_small(path, buf, sizeof(buf)) < 0 || !(p = strstr(buf, "\nPid:")))
		return true;
	pid = strtol(p + 5, NULL, 10);
	if (pid <= 0)
		return true; /* -1: exited and reaped */
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (read_small(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return true;
	/* ") S ppid pgrp session tty_nr tpgid flags" */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
		return true;
	return p[2] == 'Z' || p[2] == 'X' || (flags & PF_EXITING);
}

/* "show": QEMU's fds by name and kind, decoded again from the sealed stream. */
struct json_object *qemu_peer_stream_json(const struct bundle *b)
{
	struct json_object *o = json_object_new_object(), *fds;
	_cleanup_free_ void *buf = NULL;
	struct qcpr_state *st = NULL;
	struct qcpr_error err;
	size_t len;

	json_object_object_add(o, "format", json_object_new_string("qemu-cpr"));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)b->stream_len));
	if (fd_read_all(b->stream_fd, cprd.cfg.limits.max_stream, &buf, &len) < 0 ||
	    qcpr_parse(buf, len, QCPR_FD_MARKER, &st, &err) < 0)
		return o;
	json_object_object_add(o, "vfio",
			       json_object_new_string(qcpr_vfio_shape_name(st->vfio_shape)));
	fds = json_object_new_array();
	for (size_t i = 0; fds && i < st->n_fds && i < b->n_fds; i++) {
		struct json_object *x = json_object_new_object();

		json_object_object_add(x, "slot", json_object_new_int64((int64_t)i));
		json_object_object_add(x, "kind", json_object_new_string(qpeer_fd_kind(b->fds[i])));
		json_object_object_add(
			x, "name",
			json_object_new_string_len(st->fds[i].name, (int)st->fds[i].name_len));
		json_object_object_add(x, "id", json_object_new_int64(st->fds[i].id));
		json_object_array_add(fds, x);
	}
	json_object_object_add(o, "fd_records", fds);
	qcpr_free(st);
	return o;
}
