/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpr-transfer: hand the outgoing state and its fds to another process over
 * a connected SOCK_STREAM UNIX socket, byte layout in cpr_transfer_send(3)
 * PROTOCOL.  The sender borrows its fds and keeps owning everything until
 * the receiver's ACK; the receiver owns every fd it got and closes them all
 * on any error, then answers with a NAK that says why.
 */
#include <errno.h>
#include <poll.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <syslog.h>

#include <cpr/cpr.h>

#include "ctx.h"
#include "pipeline.h"
#include "scm.h"
#include "transfer.h"

static const uint8_t xfer_magic[8] = { 0x89, 'C', 'P', 'R', 'X', 'F', 'E', 'R' };
static const uint8_t reply_magic[8] = { 0x89, 'C', 'P', 'R', 'R', 'P', 'L', 'Y' };

struct xfer_preamble {
	uint64_t stream_len;
	uint32_t n_fds;
	uint8_t stream_id[16];
};

/* Transport errors concern no record. */
#define xfer_err(err, code, ...) \
	cpr_error_set((err), (code), NO_TYPE, NO_INST, UINT64_MAX, __VA_ARGS__)

/* The errnos cpr_transfer_send(3) lists for each function; anything else
 * is EIO, its message naming the original. */
static const int send_errnos[] = { EINVAL,	    EBADF,     EBUSY,		EALREADY,
				   ESOCKTNOSUPPORT, E2BIG,     EPROTONOSUPPORT, EPIPE,
				   ECONNRESET,	    ETIMEDOUT, ECONNREFUSED,	ENOTSOCK,
				   ENOMEM,	    0 };
static const int wait_ack_errnos[] = { EINVAL,	  EBADF,   ENOENT, ECONNREFUSED, ECONNRESET,
				       ETIMEDOUT, EBADMSG, EPROTO, ENOMEM,	 0 };
static const int recv_errnos[] = { EINVAL,	    EBADF,	 EALREADY, EBADMSG, ESTALE,
				   EPROTONOSUPPORT, E2BIG,	 EMSGSIZE, EPROTO,  ECONNRESET,
				   ETIMEDOUT,	    EMEDIUMTYPE, EEXIST,   ENOMEM,  0 };
static const int ack_errnos[] = { EINVAL, EBADF, ENOENT, EALREADY, EPIPE, ECONNRESET, 0 };
static const int reclaim_errnos[] = { EINVAL, EBADF, ENOENT, EBUSY, 0 };

/* ---------------------------------------------------------------- replies */

void xfer_reply_store(uint8_t r[XFER_REPLY_SIZE], int code, size_t msg_len, const uint8_t id[16])
{
	memset(r, 0, XFER_REPLY_SIZE);
	memcpy(r, reply_magic, sizeof(reply_magic));
	le32_store(r + 8, (uint32_t)-code);
	le16_store(r + 12, (uint16_t)msg_len);
	if (id)
		memcpy(r + 16, id, 16);
}

/* ACK (@code 0) or NAK (@code < 0, with @msg).  Best effort for a NAK. */
static int xfer_reply(int sock, int code, const char *msg, const uint8_t id[16])
{
	uint8_t buf[XFER_REPLY_SIZE + XFER_MSG_MAX];
	size_t len = code < 0 && msg ? strnlen(msg, XFER_MSG_MAX) : 0;

	xfer_reply_store(buf, code, len, id);
	if (len)
		memcpy(buf + XFER_REPLY_SIZE, msg, len);
	return scm_write_all(sock, buf, XFER_REPLY_SIZE + len);
}

static int xfer_check_reply(const uint8_t h[XFER_REPLY_SIZE], struct cpr_error *err)
{
	uint32_t status = le32_load(h + 8);
	uint16_t len = le16_load(h + 12);

	if (memcmp(h, reply_magic, sizeof(reply_magic)) != 0) {
		xfer_err(err, -EBADMSG, "transfer reply: bad magic (not a cpr-transfer receiver?)");
		return -EBADMSG;
	}
	if (le16_load(h + 14) != 0 || len > XFER_MSG_MAX || status > 4095 || (!status && len)) {
		xfer_err(err, -EBADMSG,
			 "transfer reply: malformed (status %" PRIu32 ", message of %u bytes)",
			 status, (unsigned)len);
		return -EBADMSG;
	}
	return 0;
}

/* Read the receiver's reply: 0 for an ACK (of the stream @expect_id, when
 * given), -ECONNREFUSED for a NAK. */
static int xfer_read_reply(int sock, int64_t deadline, const uint8_t *expect_id,
			   struct cpr_error *err)
{
	uint8_t h[XFER_REPLY_SIZE];
	char msg[XFER_MSG_MAX + 1], q[XFER_MSG_MAX + 8];
	uint32_t status;
	size_t none;
	int r;

	r = scm_read_exact(sock, h, sizeof(h), NULL, 0, &none, deadline, "transfer reply", err);
	if (r == -ECONNRESET)
		xfer_err(err, r, "the receiver closed the connection before acknowledging");
	if (r < 0)
		return r;
	r = xfer_check_reply(h, err);
	if (r < 0)
		return r;
	status = le32_load(h + 8);
	r = scm_read_exact(sock, msg, le16_load(h + 12), NULL, 0, &none, deadline,
			   "transfer reply message", err);
	if (r < 0)
		return r;
	if (status == 0 && expect_id && memcmp(h + 16, expect_id, 16) != 0) {
		xfer_err(err, -EBADMSG,
			 "the acknowledgement names another stream than the one sent (a stale or "
			 "crossed connection?); the sender keeps everything");
		return -EBADMSG;
	}
	if (status == 0)
		return 0;
	cpr_quote(q, sizeof(q), msg, le16_load(h + 12));
	/* code carries the receiver's own error; the return value says "refused". */
	xfer_err(err, -(int)status, "the receiver refused the transfer: %s (%s)", q,
		 strerror((int)status));
	return -ECONNREFUSED;
}

/* ---------------------------------------------------------------- sender */

void xfer_preamble_store(uint8_t p[XFER_PREAMBLE_SIZE], uint64_t stream_len, uint32_t n_fds,
			 const uint8_t id[16])
{
	memset(p, 0, XFER_PREAMBLE_SIZE);
	memcpy(p, xfer_magic, sizeof(xfer_magic));
	le16_store(p + 8, XFER_VERSION);
	le16_store(p + 10, XFER_PREAMBLE_SIZE);
	le32_store(p + 12, 0); /* flags */
	le64_store(p + 16, stream_len);
	le32_store(p + 24, n_fds);
	le32_store(p + 28, 0); /* reserved */
	memcpy(p + 32, id, 16);
}

/* A send failed during @stage: say why, and pick up a NAK already queued. */
static int xfer_send_failed(int sock, int r, const char *stage, struct cpr_error *err)
{
	if (r == -EPIPE || r == -ECONNRESET) {
		int q = xfer_read_reply(sock, scm_now_ms(), NULL, err);

		if (q == -ECONNREFUSED)
			return q;
		xfer_err(err, r, "the receiver closed the connection while the %s was sent", stage);
	} else if (r == -ETIMEDOUT) {
		xfer_err(err, r, "timed out sending the %s (SO_SNDTIMEO)", stage);
	} else {
		xfer_err(err, r, "sending the %s: %s", stage, strerror(-r));
	}
	return r;
}

static int outgoing_send(int sock, const struct pipe_out *o, struct cpr_error *err)
{
	uint8_t pre[XFER_PREAMBLE_SIZE];
	int r;

	xfer_preamble_store(pre, o->len, (uint32_t)o->n_fds, o->id);
	r = scm_write_all(sock, pre, sizeof(pre));
	if (r < 0)
		return xfer_send_failed(sock, r, "preamble", err);
	r = scm_write_all(sock, o->buf, o->len);
	if (r < 0)
		return xfer_send_failed(sock, r, "state stream", err);
	r = scm_send_fds(sock, NULL, 0, o->fds, o->n_fds);
	if (r < 0)
		return xfer_send_failed(sock, r, "fds", err);
	return 0;
}

/* A connected SOCK_STREAM UNIX socket: a datagram socket would lose the
 * stream's boundaries and the fds' order. */
static int xfer_check_socket(int sock, struct cpr_error *err)
{
	int type = 0, domain = 0;
	socklen_t sl = sizeof(type), dl = sizeof(domain);

	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &sl) < 0 ||
	    getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0) {
		int r = errno == ENOTSOCK ? -ENOTSOCK : -errno;

		xfer_err(err, r, "the transfer channel is not a socket: %s", strerror(-r));
		return r;
	}
	if (domain != AF_UNIX || type != SOCK_STREAM) {
		xfer_err(err, -ESOCKTNOSUPPORT,
			 "the transfer channel must be a connected SOCK_STREAM UNIX socket "
			 "(domain %d, type %d)",
			 domain, type);
		return -ESOCKTNOSUPPORT;
	}
	return 0;
}

static int transfer_send(struct cpr_ctx *ctx, int sock, struct cpr_error *e)
{
	struct pipe_out o = { .st = NULL };
	int r;

	if (!ctx)
		return cpr_fail(e, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "no context");
	if (sock < 0)
		return cpr_fail(e, -EBADF, NO_TYPE, NO_INST, UINT64_MAX, "no socket (fd %d)", sock);
	r = xfer_check_socket(sock, e);
	if (r >= 0)
		r = pipeline_export(ctx, CPR_MODE_TRANSFER, "transfer", &o, e);
	if (r >= 0 && (r = dma_handoff_begin(ctx, e)) >= 0 && (r = outgoing_send(sock, &o, e)) < 0)
		dma_handoff_abort(ctx); /* DMA: ours again */
	if (r >= 0) {
		memcpy(ctx->sent_id, o.id, sizeof(ctx->sent_id));
		ctx->sent_pending = true;
		ctx_log(ctx, LOG_INFO,
			"transfer: sent a %zu-byte state and %zu fds, awaiting the ack", o.len,
			o.n_fds);
	}
	pipeline_export_done(&o);
	return r;
}

CPR_EXPORT int cpr_transfer_send(struct cpr_ctx *ctx, int sock, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;
	int r = pipeline_finish(transfer_send(ctx, sock, &e), &e, ret_err, send_errnos, -EIO);

	if (r < 0)
		ctx_log(ctx, LOG_ERR, "transfer: send failed: %s", e.message);
	return r;
}

static int transfer_wait_ack(struct cpr_ctx *ctx, int sock, int timeout_ms, struct cpr_error *e)
{
	int r;

	if (!ctx || timeout_ms < -1)
		return cpr_fail(e, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"no context, or a timeout below -1");
	if (sock < 0)
		return cpr_fail(e, -EBADF, NO_TYPE, NO_INST, UINT64_MAX, "no socket (fd %d)", sock);
	if (!ctx->sent_pending)
		return cpr_fail(e, -ENOENT, NO_TYPE, NO_INST, UINT64_MAX,
				"no transfer sent from this context awaits an ack");
	r = xfer_read_reply(sock, timeout_ms < 0 ? -1 : scm_now_ms() + timeout_ms, ctx->sent_id, e);
	/* one ack for this stream id hands the state off; anything else keeps it ours */
	ctx->sent_pending = false;
	ctx->handed_off = r == 0;
	if (r != 0)
		dma_handoff_abort(ctx);
	if (r == 0)
		ctx_log(ctx, LOG_INFO, "transfer: acknowledged; the receiver owns the state");
	else
		ctx_log(ctx, LOG_ERR, "transfer: no ack: %s; the state is still ours",
			strerror(-r));
	return r;
}

CPR_EXPORT int cpr_transfer_wait_ack(struct cpr_ctx *ctx, int sock, int timeout_ms,
				     struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;

	return pipeline_finish(transfer_wait_ack(ctx, sock, timeout_ms, &e), &e, ret_err,
			       wait_ack_errnos, -EIO);
}

/*
 * An acknowledged hand-off whose receiver is gone before the VMM's own
 * commit (a protocol of the VMM's on top, such as its vCPU state, failed):
 * take the state back.  Only once the receiver's end of @sock is closed:
 * while it is open, the receiver may own the state.
 */
static int transfer_reclaim(struct cpr_ctx *ctx, int sock, struct cpr_error *e)
{
	struct pollfd p = { .fd = sock, .events = POLLRDHUP };

	if (!ctx)
		return cpr_fail(e, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "no context");
	if (sock < 0)
		return cpr_fail(e, -EBADF, NO_TYPE, NO_INST, UINT64_MAX, "no socket (fd %d)", sock);
	if (!ctx->handed_off)
		return cpr_fail(e, -ENOENT, NO_TYPE, NO_INST, UINT64_MAX,
				"this context's state was not handed off");
	if (poll(&p, 1, 0) < 0)
		return cpr_fail(e, -errno, NO_TYPE, NO_INST, UINT64_MAX, "poll: %s",
				strerror(errno));
	if (p.revents & POLLNVAL)
		return cpr_fail(e, -EBADF, NO_TYPE, NO_INST, UINT64_MAX, "fd %d is not open", sock);
	if (!(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
		return cpr_fail(e, -EBUSY, NO_TYPE, NO_INST, UINT64_MAX,
				"the receiver's end of the connection is still open: it may own "
				"the state");
	ctx->handed_off = false;
	dma_handoff_abort(ctx);
	ctx_log(ctx, LOG_INFO, "transfer: the receiver is gone; the state is ours again");
	return 0;
}

CPR_EXPORT int cpr_transfer_reclaim(struct cpr_ctx *ctx, int sock, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;

	return pipeline_finish(transfer_reclaim(ctx, sock, &e), &e, ret_err, reclaim_errnos, -EIO);
}

/* ---------------------------------------------------------------- receiver */

static int xfer_check_preamble(const uint8_t p[XFER_PREAMBLE_SIZE], struct xfer_preamble *ret,
			       struct cpr_error *err)
{
	uint64_t len = le64_load(p + 16);
	uint32_t n_fds = le32_load(p + 24);

	if (memcmp(p, xfer_magic, sizeof(xfer_magic)) != 0 ||
	    le16_load(p + 10) != XFER_PREAMBLE_SIZE || le32_load(p + 28) != 0) {
		xfer_err(err, -EBADMSG,
			 "transfer preamble: bad magic or layout (not a cpr-transfer sender?)");
		return -EBADMSG;
	}
	if (le16_load(p + 8) != XFER_VERSION || le32_load(p + 12) != 0) {
		xfer_err(err, -EPROTONOSUPPORT,
			 "transfer preamble: protocol version %u flags 0x%" PRIx32
			 ", this receiver speaks version %u with no flags",
			 le16_load(p + 8), le32_load(p + 12), XFER_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (len < CPR_HEADER_SIZE || len > CPR_STREAM_MAX || n_fds > CPR_FDS_MAX) {
		xfer_err(err, -EMSGSIZE,
			 "transfer preamble: a %" PRIu64 "-byte stream with %" PRIu32
			 " fds is out of bounds (stream %u..%u bytes, at most %u fds)",
			 len, n_fds, CPR_HEADER_SIZE, CPR_STREAM_MAX, CPR_FDS_MAX);
		return -EMSGSIZE;
	}
	ret->stream_len = len;
	ret->n_fds = n_fds;
	memcpy(ret->stream_id, p + 32, sizeof(ret->stream_id));
	return 0;
}

/* SO_RCVTIMEO, if the caller set one, bounds the whole receive. */
static int64_t xfer_deadline(int sock)
{
	struct timeval tv = { 0 };
	socklen_t sl = sizeof(tv);

	if (getsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, &sl) < 0 || (!tv.tv_sec && !tv.tv_usec))
		return -1;
	return scm_now_ms() + (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Everything the receiver holds while it checks: freed on every path. */
struct incoming {
	struct pipe_in in;
	struct xfer_preamble pre;
	int64_t deadline;
	uint8_t *buf;
	int *fds;     /* in slot order as they arrive */
	size_t n_fds; /* fds received (and owned) so far */
};

static void incoming_done(struct incoming *in)
{
	scm_close_all(in->fds, in->n_fds);
	pipeline_import_done(&in->in);
	free(in->fds);
	free(in->buf);
}

/* The preamble, then the stream, into @in. */
static int incoming_read(int sock, struct incoming *in, struct cpr_error *err)
{
	uint8_t p[XFER_PREAMBLE_SIZE];
	size_t none;
	int r;

	in->deadline = xfer_deadline(sock);
	r = scm_read_exact(sock, p, sizeof(p), NULL, 0, &none, in->deadline, "transfer preamble",
			   err);
	if (r < 0)
		return r;
	r = xfer_check_preamble(p, &in->pre, err);
	if (r < 0)
		return r;
	/* Limits were checked above: allocate only now. */
	in->buf = malloc(in->pre.stream_len);
	in->fds = malloc((in->pre.n_fds ? in->pre.n_fds : 1) * sizeof(int));
	if (!in->buf || !in->fds) {
		xfer_err(err, -ENOMEM, "out of memory for a %" PRIu64 "-byte stream",
			 in->pre.stream_len);
		return -ENOMEM;
	}
	return scm_read_exact(sock, in->buf, in->pre.stream_len, NULL, 0, &none, in->deadline,
			      "state stream", err);
}

/* Check each fd of a chunk against its FD record as soon as it arrives. */
static int xfer_check_chunk(void *userdata, const int *fds, size_t first, size_t count,
			    struct cpr_error *err)
{
	struct incoming *in = userdata;

	for (size_t s = first; s < first + count; s++) {
		int r = pipeline_import_check_fd(&in->in, s, fds[s], err);

		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * The stream is parsed and checked against the preamble (its id, the fds
 * announced) while the sender's fds are in flight; they are checked chunk
 * by chunk as they arrive, then everything is adopted.
 */
static int incoming_import(int sock, struct incoming *in, struct cpr_error *e)
{
	int r = pipeline_import_ready(&in->in, e);

	if (r >= 0)
		r = incoming_read(sock, in, e);
	if (r >= 0)
		r = pipeline_import_parse(&in->in, in->buf, in->pre.stream_len, in->pre.stream_id,
					  in->pre.n_fds, e);
	if (r >= 0)
		r = scm_recv_fds_each(sock, NULL, 0, in->fds, in->pre.n_fds, in->deadline,
				      xfer_check_chunk, in, e);
	if (r < 0)
		return r;
	in->n_fds = in->pre.n_fds;
	r = pipeline_import_adopt(&in->in, in->fds, true, e);
	if (r >= 0)
		in->n_fds = 0; /* the context owns the state and the fds now */
	return r;
}

CPR_EXPORT int cpr_transfer_recv(struct cpr_ctx *ctx, int sock, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;
	struct incoming in = { .in = { .ctx = ctx, .slots = PIPE_SLOT_INDEX, .exclude_fd = -1 } };
	int r;

	if (!ctx || sock < 0)
		return pipeline_finish(cpr_fail(&e, !ctx ? -EINVAL : -EBADF, NO_TYPE, NO_INST,
						UINT64_MAX, !ctx ? "no context" : "no socket"),
				       &e, ret_err, recv_errnos, -EIO);
	r = incoming_import(sock, &in, &e);
	if (r >= 0) {
		ctx_log(ctx, LOG_INFO,
			"transfer: received and adopted a %" PRIu64 "-byte state and %" PRIu32
			" fds",
			in.pre.stream_len, in.pre.n_fds);
		incoming_done(&in);
		return 0;
	}
	r = pipeline_errno(r, &e, recv_errnos, -EIO);
	ctx_log(ctx, LOG_ERR, "transfer: refused: %s", e.message);
	(void)xfer_reply(sock, r, e.message, in.pre.stream_id);
	incoming_done(&in);
	return pipeline_finish(r, &e, ret_err, recv_errnos, -EIO);
}

static int transfer_ack(struct cpr_ctx *ctx, int sock, struct cpr_error *e)
{
	const struct cpr_state *st;
	struct cpr_state_info info;
	int r;

	if (!ctx)
		return cpr_fail(e, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "no context");
	if (sock < 0)
		return cpr_fail(e, -EBADF, NO_TYPE, NO_INST, UINT64_MAX, "no socket (fd %d)", sock);
	st = cpr_ctx_incoming_state(ctx);
	if (!st)
		return cpr_fail(e, -ENOENT, NO_TYPE, NO_INST, UINT64_MAX,
				"the context holds no incoming state to acknowledge");
	if (ctx->acked) /* a second ack could release a sender twice */
		return cpr_fail(e, -EALREADY, NO_TYPE, NO_INST, UINT64_MAX,
				"the incoming state was acknowledged already");
	r = cpr_state_get_info(st, &info);
	if (r < 0)
		return r;
	r = xfer_reply(sock, 0, NULL, info.stream_id);
	if (r < 0) {
		xfer_err(e, r, "sending the ack: %s", strerror(-r));
		ctx_log(ctx, LOG_ERR, "transfer: sending the ack: %s", strerror(-r));
		return r;
	}
	ctx->acked = true;
	return 0;
}

CPR_EXPORT int cpr_transfer_ack(struct cpr_ctx *ctx, int sock, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;

	return pipeline_finish(transfer_ack(ctx, sock, &e), &e, ret_err, ack_errnos, -EIO);
}

/* ---------------------------------------------------------------- rendezvous */

static int xfer_sockaddr(const char *path, struct sockaddr_un *sa, socklen_t *ret_len)
{
	size_t n;

	if (!path || !*path)
		return -EINVAL;
	n = strlen(path);
	if (n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, n);
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

/*
 * Remove a socket a dead receiver left at @path.  A live listener is
 * -EADDRINUSE; anything but a socket is -EEXIST and left alone.
 */
static int xfer_unlink_stale(const struct sockaddr_un *sa, socklen_t sl)
{
	_cleanup_close_ int probe = -EBADF;
	struct stat s;

	if (lstat(sa->sun_path, &s) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(s.st_mode))
		return -EEXIST;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0)
		return -errno;
	if (connect(probe, (const struct sockaddr *)sa, sl) == 0 || errno == EAGAIN)
		return -EADDRINUSE;
	if (errno != ECONNREFUSED)
		return -errno;
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* The address of @path and a fresh stream socket for it. */
static int xfer_socket(const char *path, struct sockaddr_un *sa, socklen_t *sl)
{
	int r = xfer_sockaddr(path, sa, sl);

	if (r < 0)
		return r;
	r = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return r < 0 ? -errno : r;
}

CPR_EXPORT int cpr_transfer_listen(const char *path, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa;
	socklen_t sl;
	int r;

	if (!ret_fd)
		return -EINVAL;
	fd = xfer_socket(path, &sa, &sl);
	if (fd < 0)
		return fd;
	r = xfer_unlink_stale(&sa, sl);
	if (r < 0)
		return r;
	/* The bound file takes the socket inode's mode (minus the umask): it
	 * is 0600 from birth, with no window and no umask juggling. */
	if (fchmod(fd, 0600) < 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *)&sa, sl) < 0 || listen(fd, SOMAXCONN) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Only our own user (or root) may hand us state. */
static int xfer_check_peer(int fd)
{
	struct ucred cred;
	socklen_t sl = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0)
		return -errno;
	if (cred.uid != geteuid() && cred.uid != 0)
		return -EPERM;
	return 0;
}

CPR_EXPORT int cpr_transfer_accept(int listen_fd, int timeout_ms, int *ret_fd)
{
	int64_t deadline;

	if (listen_fd < 0)
		return -EBADF;
	if (!ret_fd || timeout_ms < -1)
		return -EINVAL;
	deadline = timeout_ms < 0 ? -1 : scm_now_ms() + timeout_ms;
	for (;;) {
		_cleanup_close_ int fd = -EBADF;
		int64_t left = deadline < 0 ? -1 : deadline - scm_now_ms();
		int r = scm_wait(listen_fd, deadline < 0 ? -1 : (int)(left > 0 ? left : 0));

		if (r < 0)
			return r;
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				continue;
			return -errno;
		}
		r = xfer_check_peer(fd);
		if (r < 0)
			return r;
		*ret_fd = TAKE_FD(fd);
		return 0;
	}
}

CPR_EXPORT int cpr_transfer_connect(const char *path, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa;
	socklen_t sl;

	if (!ret_fd)
		return -EINVAL;
	fd = xfer_socket(path, &sa, &sl);
	if (fd < 0)
		return fd;
	if (connect(fd, (const struct sockaddr *)&sa, sl) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}
