/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SCM_RIGHTS send and receive with strict ownership, and the public
 * cpr_fds_send() / cpr_fds_recv() pair that moves any number of fds in
 * chunks of at most CPR_SCM_MAX_FDS.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "scm.h"

#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

/* Room for a full SCM_RIGHTS array plus credentials or a pidfd a peer may
 * attach (SO_PASSCRED, SO_PASSPIDFD): those are received and dropped rather
 * than truncating the fds. */
#define SCM_CMSG_SPACE (CMSG_SPACE(sizeof(int) * CPR_SCM_MAX_FDS) + CMSG_SPACE(64) + CMSG_SPACE(64))
#define SCM_FDS_ROOM (SCM_CMSG_SPACE / sizeof(int))

void scm_close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fds[i] = cpr_close(fds[i]);
}

ssize_t scm_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * CPR_SCM_MAX_FDS)];
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (sock < 0)
		return -EBADF;
	if ((!buf && len) || (!fds && n_fds) || n_fds > CPR_SCM_MAX_FDS)
		return -EINVAL;
	/* A stream socket drops ancillary data that rides on no byte. */
	if (n_fds && !len)
		return -EINVAL;
	if (n_fds) {
		struct cmsghdr *c;

		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	do
		r = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/*
 * Collect every fd carried by @msg into @got (room SCM_FDS_ROOM).  Returns 0,
 * or -EPROTO for a cmsg we do not accept; fds are collected in both cases so
 * the caller can close them.
 */
static int scm_collect(struct msghdr *msg, int *got, size_t *n_got)
{
	int r = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_len < CMSG_LEN(0)) {
			r = -EPROTO;
			continue;
		}
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (c->cmsg_type == SCM_RIGHTS || c->cmsg_type == SCM_PIDFD) {
			if (n > SCM_FDS_ROOM - *n_got)
				n = SCM_FDS_ROOM - *n_got; /* cannot happen: room >= buffer */
			memcpy(got + *n_got, CMSG_DATA(c), n * sizeof(int));
			*n_got += n;
			if (c->cmsg_type != SCM_RIGHTS)
				r = -EPROTO;
		} else if (c->cmsg_type != SCM_CREDENTIALS) {
			r = -EPROTO;
		}
	}
	return r;
}

static int scm_check_msg(const struct msghdr *msg, ssize_t n, size_t n_fds, size_t max_fds,
			 const char **ret_why)
{
	if (msg->msg_flags & MSG_CTRUNC) {
		*ret_why = "control data truncated (MSG_CTRUNC): the fd table is full "
			   "(RLIMIT_NOFILE) or the control buffer too small";
		return -EPROTO;
	}
	if (msg->msg_flags & MSG_TRUNC) {
		*ret_why = "message truncated (MSG_TRUNC)";
		return -EMSGSIZE;
	}
	if (n_fds > max_fds) {
		*ret_why = "more fds than expected";
		return -EPROTO;
	}
	if (n == 0 && n_fds > 0) {
		*ret_why = "fds without data";
		return -EPROTO;
	}
	return 0;
}

static ssize_t scm_recv_why(int sock, void *buf, size_t len, int *fds, size_t max_fds,
			    size_t *ret_n_fds, int flags, const char **ret_why)
{
	union {
		struct cmsghdr align;
		char buf[SCM_CMSG_SPACE];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	int got[SCM_FDS_ROOM];
	size_t n_got = 0, n_rights = 0;
	ssize_t n;
	int r;

	if (sock < 0)
		return -EBADF;
	if ((!buf && len) || (!fds && max_fds) || max_fds > CPR_SCM_MAX_FDS || !ret_n_fds)
		return -EINVAL;
	do {
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		msg.msg_flags = 0;
		n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	r = scm_collect(&msg, got, &n_got);
	if (r < 0)
		*ret_why = "unexpected control message (only SCM_RIGHTS is accepted)";
	else
		r = scm_check_msg(&msg, n, n_got, max_fds, ret_why);
	if (r < 0) {
		scm_close_all(got, n_got);
		return r;
	}
	n_rights = n_got; /* a pidfd fails scm_collect(): only rights are left */
	if (n_rights)
		memcpy(fds, got, n_rights * sizeof(int));
	*ret_n_fds = n_rights;
	return n;
}

ssize_t scm_recv(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *ret_n_fds,
		 int flags)
{
	const char *why = NULL;

	return scm_recv_why(sock, buf, len, fds, max_fds, ret_n_fds, flags, &why);
}

int64_t scm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int scm_wait(int sock, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : scm_now_ms() + timeout_ms;
	struct pollfd p = { .fd = sock, .events = POLLIN };

	if (sock < 0)
		return -EBADF;
	for (;;) {
		int left = -1, r;

		if (deadline >= 0) {
			int64_t d = deadline - scm_now_ms();
			left = d < 0 ? 0 : (int)d;
		}
		r = poll(&p, 1, left);
		if (r > 0) {
			if (p.revents & POLLNVAL)
				return -EBADF;
			return 0; /* readable, hung up or in error: recv says which */
		}
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Milliseconds left until @deadline_ms (-1: none, so -1). */
static int scm_left(int64_t deadline_ms)
{
	int64_t d;

	if (deadline_ms < 0)
		return -1;
	d = deadline_ms - scm_now_ms();
	if (d <= 0)
		return 0;
	return d > INT32_MAX ? INT32_MAX : (int)d;
}

/* Fill @err for a failed read of @what. */
static void scm_read_error(struct cpr_error *err, int r, const char *what, const char *why,
			   size_t off, size_t len)
{
	if (r == -ETIMEDOUT)
		cpr_error_set(err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX, "%s: timed out", what);
	else if (r == -ECONNRESET)
		cpr_error_set(err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "%s: the peer closed the connection after %zu of %zu bytes", what,
			      off, len);
	else if (why)
		cpr_error_set(err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX, "%s: %s", what, why);
	else
		cpr_error_set(err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX, "%s: %s", what,
			      strerror(-r));
}

int scm_read_exact(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *ret_n_fds,
		   int64_t deadline_ms, const char *what, struct cpr_error *err)
{
	const char *why = NULL;
	uint8_t *p = buf;
	size_t off = 0, n_fds = 0;
	int r = 0;

	while (off < len) {
		size_t n_new = 0;
		ssize_t n;

		/* Fds ride on the first byte of a message: only the first read may
		 * bring them.  Try first, wait only when nothing is there. */
		n = scm_recv_why(sock, p + off, len - off, off ? NULL : fds, off ? 0 : max_fds,
				 &n_new, MSG_DONTWAIT, &why);
		if (n == -EAGAIN) {
			r = scm_wait(sock, scm_left(deadline_ms));
			if (r < 0)
				break;
			continue;
		}
		if (n <= 0) {
			r = n < 0 ? (int)n : -ECONNRESET;
			break;
		}
		if (off == 0)
			n_fds = n_new;
		off += (size_t)n;
	}
	if (r < 0) {
		scm_close_all(fds, n_fds);
		scm_read_error(err, r, what, why, off, len);
		return r;
	}
	*ret_n_fds = n_fds;
	return 0;
}

/*
 * sendmsg() said EAGAIN.  On a blocking socket that is SO_SNDTIMEO expiring:
 * -ETIMEDOUT.  On a non-blocking one, wait for room.
 */
static int scm_wait_out(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLOUT };
	int fl = fcntl(sock, F_GETFL);

	if (fl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK))
		return -ETIMEDOUT;
	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			return -errno;
	return p.revents & POLLNVAL ? -EBADF : 0;
}

/* Send @len bytes; @fds ride on the first sendmsg(). */
static int scm_send_all(int sock, const void *buf, size_t len, const int *fds, size_t n_fds)
{
	const uint8_t *p = buf;
	size_t off = 0;

	while (off < len) {
		ssize_t n = scm_send(sock, p + off, len - off, off ? NULL : fds, off ? 0 : n_fds);

		if (n == -EAGAIN) {
			int r = scm_wait_out(sock);
			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return (int)n;
		off += (size_t)n;
	}
	return 0;
}

int scm_write_all(int sock, const void *buf, size_t len)
{
	return scm_send_all(sock, buf, len, NULL, 0);
}

static void chunk_header(uint8_t h[SCM_CHUNK_SIZE], uint32_t first, uint16_t count, uint32_t data)
{
	le32_store(h, SCM_CHUNK_MAGIC);
	le32_store(h + 4, first);
	le16_store(h + 8, count);
	le16_store(h + 10, 0);
	le32_store(h + 12, data);
}

int scm_send_fds(int sock, const void *data, size_t len, const int *fds, size_t n_fds)
{
	size_t off = 0;

	if (len > UINT32_MAX || n_fds > UINT32_MAX)
		return -EMSGSIZE;
	do {
		size_t count = n_fds - off < CPR_SCM_MAX_FDS ? n_fds - off : CPR_SCM_MAX_FDS;
		uint8_t h[SCM_CHUNK_SIZE];
		int r;

		chunk_header(h, (uint32_t)off, (uint16_t)count, off ? 0 : (uint32_t)len);
		r = scm_send_all(sock, h, sizeof(h), count ? fds + off : NULL, count);
		if (r == 0 && off == 0 && len)
			r = scm_send_all(sock, data, len, NULL, 0);
		if (r < 0)
			return r;
		off += count;
	} while (off < n_fds);
	return 0;
}

/* Check a chunk header against what the receiver expects next. */
static int scm_check_chunk(const uint8_t h[SCM_CHUNK_SIZE], size_t first, size_t count,
			   size_t data_len, size_t n_got, struct cpr_error *err)
{
	const char *what = NULL;

	if (le32_load(h) != SCM_CHUNK_MAGIC || le16_load(h + 10) != 0)
		what = "bad chunk header";
	else if (le32_load(h + 4) != first)
		what = "chunk out of order";
	else if (le16_load(h + 8) != count)
		what = "wrong fd count in the chunk header";
	else if (le32_load(h + 12) != data_len)
		what = "wrong data length in the chunk header";
	else if (n_got != count)
		what = n_got < count ? "missing fds" : "extra fds";
	if (!what)
		return 0;
	cpr_error_set(err, -EPROTO, UINT32_MAX, UINT32_MAX, UINT64_MAX,
		      "fd chunk at index %zu: %s (header: index %u, %u fds, %u data bytes; "
		      "%zu fds arrived; expected %zu fds, %zu data bytes)",
		      first, what, le32_load(h + 4), le16_load(h + 8), le32_load(h + 12), n_got,
		      count, data_len);
	return -EPROTO;
}

/* Receive the chunk starting at fd @first: exactly the fds and data length
 * expected, into @fds (room for @count). */
static int scm_recv_chunk(int sock, size_t first, size_t count, size_t data_len, int *fds,
			  int64_t deadline_ms, struct cpr_error *err)
{
	int got[CPR_SCM_MAX_FDS];
	uint8_t h[SCM_CHUNK_SIZE];
	size_t n_got = 0;
	int r;

	r = scm_read_exact(sock, h, sizeof(h), got, CPR_SCM_MAX_FDS, &n_got, deadline_ms,
			   "fd chunk header", err);
	if (r < 0)
		return r;
	r = scm_check_chunk(h, first, count, data_len, n_got, err);
	if (r < 0) {
		scm_close_all(got, n_got);
		return r;
	}
	if (count)
		memcpy(fds, got, count * sizeof(int));
	return 0;
}

int scm_recv_fds_each(int sock, void *data, size_t len, int *fds, size_t n_fds, int64_t deadline_ms,
		      scm_chunk_fn fn, void *userdata, struct cpr_error *err)
{
	size_t off = 0;
	int r;

	for (size_t i = 0; i < n_fds; i++)
		fds[i] = -EBADF;
	if (len > UINT32_MAX || n_fds > UINT32_MAX)
		return -EMSGSIZE;
	do {
		size_t count = n_fds - off < CPR_SCM_MAX_FDS ? n_fds - off : CPR_SCM_MAX_FDS;
		size_t none;

		r = scm_recv_chunk(sock, off, count, off ? 0 : len, n_fds ? fds + off : NULL,
				   deadline_ms, err);
		if (r == 0 && off == 0 && len)
			r = scm_read_exact(sock, data, len, NULL, 0, &none, deadline_ms,
					   "fd message data", err);
		if (r == 0 && fn && count)
			r = fn(userdata, fds, off, count, err);
		if (r < 0) {
			scm_close_all(fds, off + count);
			return r;
		}
		off += count;
	} while (off < n_fds);
	return 0;
}

int scm_recv_fds(int sock, void *data, size_t len, int *fds, size_t n_fds, int64_t deadline_ms,
		 struct cpr_error *err)
{
	return scm_recv_fds_each(sock, data, len, fds, n_fds, deadline_ms, NULL, NULL, err);
}

CPR_EXPORT int cpr_fds_send(int sock, const void *data, size_t len, const int *fds, size_t n_fds)
{
	if (sock < 0)
		return -EBADF;
	if ((!data && len) || (!fds && n_fds))
		return -EINVAL;
	for (size_t i = 0; i < n_fds; i++)
		if (fds[i] < 0)
			return -EBADF;
	return scm_send_fds(sock, data, len, fds, n_fds);
}

CPR_EXPORT int cpr_fds_recv(int sock, void *data, size_t len, int *fds, size_t n_fds,
			    int timeout_ms)
{
	if (sock < 0)
		return -EBADF;
	if ((!data && len) || (!fds && n_fds) || timeout_ms < -1)
		return -EINVAL;
	return scm_recv_fds(sock, data, len, fds, n_fds,
			    timeout_ms < 0 ? -1 : scm_now_ms() + timeout_ms, NULL);
}
