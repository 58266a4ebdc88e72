/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small QMP client: see qmp.h. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmp.h"

#define QMP_TIMEOUT_MS 60000

static int qmp_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timespec pause = { 0, 20 * 1000 * 1000 };

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	for (int waited = 0;; waited += 20) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		e = errno;
		close(fd);
		if ((e != ENOENT && e != ECONNREFUSED) || waited >= timeout_ms)
			return -e;
		nanosleep(&pause, NULL);
	}
}

/* One line (a JSON object) within QMP_TIMEOUT_MS. */
static int qmp_read(struct qmp *q, struct json_object **ret)
{
	for (;;) {
		char *nl = q->buf ? memchr(q->buf, '\n', q->len) : NULL;
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		char *nb;
		ssize_t n;

		if (nl) {
			*nl = 0;
			*ret = json_tokener_parse(q->buf);
			q->len -= (size_t)(nl + 1 - q->buf);
			memmove(q->buf, nl + 1, q->len);
			return *ret ? 0 : -EBADMSG;
		}
		if (q->len >= QMP_LINE_MAX)
			return -EMSGSIZE;
		if (poll(&p, 1, QMP_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		nb = realloc(q->buf, q->len + 65536);
		if (!nb)
			return -ENOMEM;
		q->buf = nb;
		n = read(q->fd, q->buf + q->len, 65536);
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		q->len += (size_t)n;
	}
}

int qmp_call(struct qmp *q, const char *cmd, struct json_object *args,
	     struct json_object **ret_return)
{
	struct json_object *req = json_object_new_object(), *m = NULL, *v;
	const char *s;
	int r = 0;

	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", args);
	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	if (send(q->fd, s, strlen(s), MSG_NOSIGNAL) < 0 || send(q->fd, "\n", 1, MSG_NOSIGNAL) < 0)
		r = -errno;
	json_object_put(req);
	while (r == 0 && (r = qmp_read(q, &m)) == 0) {
		if (json_object_object_get_ex(m, "return", &v)) {
			if (ret_return)
				*ret_return = json_object_get(v);
			break;
		}
		if (json_object_object_get_ex(m, "error", &v)) {
			struct json_object *d = json_object_object_get(v, "desc");

			snprintf(q->err, sizeof(q->err), "%s: %s", cmd,
				 d ? json_object_get_string(d) : "error");
			r = -EREMOTEIO;
			break;
		}
		json_object_put(m); /* an event */
		m = NULL;
	}
	json_object_put(m);
	if (r < 0 && r != -EREMOTEIO)
		snprintf(q->err, sizeof(q->err), "%s: %s", cmd, strerror(-r));
	return r;
}

int qmp_open(struct qmp *q, const char *path, int timeout_ms)
{
	struct json_object *greeting = NULL;
	struct ucred uc;
	socklen_t len = sizeof(uc);
	int r;

	*q = (struct qmp){ .fd = qmp_connect(path, timeout_ms) };
	if (q->fd < 0) {
		r = q->fd;
		snprintf(q->err, sizeof(q->err), "%s: %s", path, strerror(-r));
		return r;
	}
	if (getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0)
		q->pid = uc.pid;
	r = qmp_read(q, &greeting);
	json_object_put(greeting);
	if (r == 0)
		r = qmp_call(q, "qmp_capabilities", NULL, NULL);
	if (r < 0 && !q->err[0])
		snprintf(q->err, sizeof(q->err), "%s: no QMP greeting", path);
	return r;
}

void qmp_close(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	free(q->buf);
	q->buf = NULL;
	q->len = 0;
}

int qmp_status(struct qmp *q, char *buf, size_t size)
{
	struct json_object *ret = NULL, *v;
	int r = qmp_call(q, "query-status", NULL, &ret);

	if (r == 0)
		snprintf(buf, size, "%s",
			 json_object_object_get_ex(ret, "status", &v) ? json_object_get_string(v)
								      : "?");
	json_object_put(ret);
	return r;
}
