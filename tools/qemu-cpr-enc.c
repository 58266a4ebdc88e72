/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Encoder of QEMU's cpr-transfer channel (see qemu-cpr.h): what the old
 * QEMU's qemu_file_put_fd() does, for a stream decoded with
 * QCPR_FD_MARKER.  The buffered bytes before a marker go out first, then
 * the marker alone with its fd, so that a receiver reading a byte at a time
 * (QEMU's qemu_file_get_fd()) finds each fd with its own marker.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "qemu-cpr.h"

void qcpr_writer_init(struct qcpr_writer *w, const void *buf, size_t len,
		      const struct qcpr_state *st, const int *fds)
{
	*w = (struct qcpr_writer){ .buf = buf, .len = len, .st = st, .fds = fds };
}

size_t qcpr_writer_next(const struct qcpr_writer *w, int *ret_fd)
{
	size_t marker = w->len;

	*ret_fd = -1;
	if (w->off >= w->len)
		return 0;
	if (w->next < w->st->n_fds)
		marker = w->st->fds[w->next].fd_offset;
	if (marker == w->off) {
		*ret_fd = w->fds[w->next];
		return 1;
	}
	return marker - w->off;
}

void qcpr_writer_advance(struct qcpr_writer *w, size_t n)
{
	if (w->next < w->st->n_fds && w->st->fds[w->next].fd_offset == w->off)
		w->next++;
	w->off += n;
}

/* One marker byte with exactly one fd: 1 sent, 0 would block, -errno. */
static int send_marker(int sock, const uint8_t *byte, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct iovec iov = { .iov_base = (void *)byte, .iov_len = 1 };
	struct msghdr m = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = c.buf,
		.msg_controllen = sizeof(c.buf),
	};
	struct cmsghdr *h;
	ssize_t n;

	memset(&c, 0, sizeof(c));
	h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(int));
	n = sendmsg(sock, &m, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	return n == 1;
}

int qcpr_writer_step(struct qcpr_writer *w, int sock)
{
	for (;;) {
		int fd;
		size_t len = qcpr_writer_next(w, &fd);
		ssize_t n;

		if (len == 0)
			break;
		if (fd >= 0) {
			n = send_marker(sock, w->buf + w->off, fd);
		} else {
			n = send(sock, w->buf + w->off, len, MSG_NOSIGNAL);
			if (n < 0)
				n = errno == EAGAIN || errno == EINTR ? 0 : -errno;
		}
		if (n <= 0)
			return (int)n;
		qcpr_writer_advance(w, (size_t)n);
	}
	if (!w->shut) {
		if (shutdown(sock, SHUT_WR) < 0)
			return -errno;
		w->shut = true;
	}
	return 1;
}

int qcpr_send(int sock, const void *buf, size_t len, const struct qcpr_state *st, const int *fds)
{
	struct qcpr_writer w;
	int r;

	qcpr_writer_init(&w, buf, len, st, fds);
	while ((r = qcpr_writer_step(&w, sock)) == 0)
		; /* a blocking socket returns 0 only on EINTR */
	return r < 0 ? r : 0;
}
