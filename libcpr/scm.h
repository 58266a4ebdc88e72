/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SCM_RIGHTS primitives shared by transfer.c, the public cpr_fds_* helpers
 * and cprd.  Sending borrows fds; receiving owns every fd the kernel
 * delivered and closes all of them on any error.
 */
#ifndef CPR_SCM_H
#define CPR_SCM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cpr_error;

/*
 * One sendmsg(): @len bytes (at least 1 when @n_fds > 0) and up to
 * CPR_SCM_MAX_FDS fds (borrowed), with MSG_NOSIGNAL.  Returns the bytes sent
 * (possibly fewer than @len on a stream socket) or -errno: EINTR is retried,
 * EAGAIN is returned.
 */
ssize_t scm_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds);

/*
 * One recvmsg() with MSG_CMSG_CLOEXEC into @buf, and up to @max_fds
 * (<= CPR_SCM_MAX_FDS) fds into @fds.  Owns every fd the kernel delivered:
 * on MSG_CTRUNC, more fds than @max_fds, a cmsg other than SCM_RIGHTS (an
 * SCM_PIDFD's fd included), or any error, closes all of them and returns
 * -EPROTO (or -errno).  SCM_CREDENTIALS, which SO_PASSCRED attaches to every
 * message, carries no fd and is ignored.  MSG_TRUNC is reported as -EMSGSIZE.  *ret_n_fds is set
 * only on success.  @flags: MSG_DONTWAIT and the like.  Returns the bytes received (0 = EOF, with
 * no fds) or -errno.
 */
ssize_t scm_recv(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *ret_n_fds,
		 int flags);

/* Wait for POLLIN up to @timeout_ms (-1 forever): 0 ready, -ETIMEDOUT, -errno. */
int scm_wait(int sock, int timeout_ms);

/* Close @n fds of @fds and set them to -EBADF. */
void scm_close_all(int *fds, size_t n);

/* CLOCK_MONOTONIC in milliseconds, for deadlines. */
int64_t scm_now_ms(void);

/*
 * The chunked fd framing behind cpr_fds_send(3), also the fd phase of a
 * transfer.  Every message starts with a SCM_CHUNK_SIZE header:
 *
 *   0  le32 magic SCM_CHUNK_MAGIC ("CPRF")
 *   4  le32 index of the first fd of this chunk
 *   8  le16 fds attached to this message (<= CPR_SCM_MAX_FDS)
 *  10  le16 reserved, zero
 *  12  le32 data bytes that follow the header (all of them in chunk 0)
 *
 * max(1, ceil(n_fds / 253)) messages are sent; the data follows the first
 * header.  The receiver expects exactly @len data bytes and @n_fds fds.
 */
#define SCM_CHUNK_SIZE 16u
#define SCM_CHUNK_MAGIC 0x46525043u

int scm_send_fds(int sock, const void *data, size_t len, const int *fds, size_t n_fds);
/*
 * Receive what scm_send_fds() sent.  @deadline_ms: absolute scm_now_ms()
 * time, or -1 for none.  On success @fds holds @n_fds owned fds; on failure
 * every fd received is closed and every entry of @fds is -EBADF.
 * Returns 0, -ETIMEDOUT, -ECONNRESET (EOF before the end), -EPROTO
 * (framing, missing, extra or truncated fds) or another -errno, described in
 * @err (may be NULL).
 */
int scm_recv_fds(int sock, void *data, size_t len, int *fds, size_t n_fds, int64_t deadline_ms,
		 struct cpr_error *err);
/*
 * scm_recv_fds() that calls @fn on every chunk as it arrives, while later
 * chunks are still in flight: @fds[@first .. @first + @count - 1] were just
 * received (and the data, with the first chunk).  A negative return from
 * @fn, which describes it in @err, stops the receive: every fd received so
 * far is closed and that value returned.
 */
typedef int (*scm_chunk_fn)(void *userdata, const int *fds, size_t first, size_t count,
			    struct cpr_error *err);
int scm_recv_fds_each(int sock, void *data, size_t len, int *fds, size_t n_fds, int64_t deadline_ms,
		      scm_chunk_fn fn, void *userdata, struct cpr_error *err);

/*
 * Read exactly @len bytes, accepting up to @max_fds fds on the first
 * recvmsg() only (*ret_n_fds of them, owned by the caller on success; closed
 * on failure).  EOF before @len bytes is -ECONNRESET.
 */
int scm_read_exact(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *ret_n_fds,
		   int64_t deadline_ms, const char *what, struct cpr_error *err);
/*
 * Write all of @len bytes (no fds).  EAGAIN waits for room on a non-blocking
 * socket and is -ETIMEDOUT (SO_SNDTIMEO) on a blocking one; this holds for
 * scm_send_fds() too.
 */
int scm_write_all(int sock, const void *buf, size_t len);

#endif
