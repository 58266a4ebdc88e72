/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small QMP client (QEMU's JSON monitor on a UNIX stream socket) for
 * cprctl qemu: commands and their returns, events skipped, every wait
 * bounded.
 */
#ifndef CPRD_QMP_H
#define CPRD_QMP_H

#include <sys/types.h>

struct json_object;

#define QMP_LINE_MAX (1u << 20) /* bytes of one QMP message */

struct qmp {
	int fd;
	pid_t pid; /* the QEMU behind it (SO_PEERCRED) */
	char *buf;
	size_t len;
	char err[256]; /* the last error's text */
};

/* Connect to @path (retrying until @timeout_ms), read the greeting, negotiate. */
int qmp_open(struct qmp *q, const char *path, int timeout_ms);
void qmp_close(struct qmp *q);
/*
 * Run @cmd with @args (taken; may be NULL); *@ret_return (if not NULL) gets
 * its "return".  -EREMOTEIO when QEMU answers with an error (q->err says it).
 */
int qmp_call(struct qmp *q, const char *cmd, struct json_object *args,
	     struct json_object **ret_return);
/* query-status's "status" into @buf. */
int qmp_status(struct qmp *q, char *buf, size_t size);

#endif
