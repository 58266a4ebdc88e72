/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The old QEMU's side: accept its cpr channel on the socket a client
 * passed, take its credentials (the bundle's owner), read its stream and
 * fds to EOF without ever blocking, check them, and hold them as a sealed
 * bundle while the old QEMU waits for the HUP that says the new QEMU is
 * ready.  Anything malformed: refused, every fd closed, the connection
 * closed (QEMU's own failure path: it finds no main channel and resumes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"
#include "proto.h"
#include "qemu-peer.h"

struct qpeer *qpeers;

static void qpeer_unwatch(struct cprd_src *src)
{
	if (src->fd >= 0)
		epoll_ctl(cprd.epoll_fd, EPOLL_CTL_DEL, src->fd, NULL);
	src->fd = cpr_close(src->fd);
}

int qpeer_watch(struct qpeer *qp, struct cprd_src *src, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	*src = (struct cprd_src){ .tag = TAG_QEMU, .obj = qp, .fd = fd };
	if (epoll_ctl(cprd.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	return 0;
}

static void qpeer_rearm(struct cprd_src *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (epoll_ctl(cprd.epoll_fd, EPOLL_CTL_MOD, src->fd, &ev) < 0)
		log_warn("epoll_ctl");
}

struct qpeer *qpeer_new(const char *name, uid_t req_uid, int listen_fd)
{
	struct qpeer *qp = calloc(1, sizeof(*qp));

	if (!qp)
		return NULL;
	snprintf(qp->name, sizeof(qp->name), "%s", name);
	qp->req_uid = req_uid;
	qp->lsrc.fd = qp->osrc.fd = qp->tsrc.fd = qp->psrc.fd = -EBADF;
	qp->owner.pidfd = -EBADF;
	qp->t_listen = now_boottime_ns();
	if (qpeer_watch(qp, &qp->lsrc, listen_fd, EPOLLIN) < 0) {
		free(qp);
		return NULL;
	}
	qp->next = qpeers;
	qpeers = qp;
	return qp;
}

void qpeer_reply(struct qpeer *qp, struct json_object *o)
{
	if (qp->waiter)
		control_send_json(qp->waiter, o, NULL, 0);
	json_object_put(o);
	qp->waiter = NULL;
}

void qpeer_free(struct qpeer *qp)
{
	struct bundle *b = qp->b;

	for (struct qpeer **pp = &qpeers; *pp; pp = &(*pp)->next)
		if (*pp == qp) {
			*pp = qp->next;
			break;
		}
	qpeer_unwatch(&qp->lsrc);
	qpeer_unwatch(&qp->tsrc);
	qpeer_unwatch(&qp->psrc);
	/* the HUP back: the old QEMU now connects its main channel */
	qpeer_unwatch(&qp->osrc);
	if (b) {
		qp->b = NULL;
		b->qemu = NULL;
		store_remove(b, "released by its QEMU peer");
	}
	for (size_t i = 0; i < qp->n_fds; i++)
		cpr_close(qp->fds[i]);
	free(qp->fds);
	free(qp->fd_at);
	free(qp->fd_end);
	free(qp->buf);
	qcpr_free(qp->st);
	cpr_close(qp->owner.pidfd);
	free(qp);
}

void qpeer_fail(struct qpeer *qp, int err, const char *why)
{
	log_warnx("QEMU peer %s: %s", log_quote(qp->name), why);
	qpeer_reply(qp, proto_error_new(qp->waiter_op, err, why, false));
	qpeer_free(qp);
}

static int64_t us_between(uint64_t a, uint64_t b)
{
	return a && b > a ? (int64_t)((b - a) / 1000u) : 0;
}

/* Microseconds of each phase: receive, check, deliver, and their sum. */
struct json_object *qpeer_timings_json(const struct qpeer *qp)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "receive_us",
			       json_object_new_int64(us_between(qp->t_accept, qp->t_eof)));
	json_object_object_add(o, "check_us",
			       json_object_new_int64(us_between(qp->t_eof, qp->t_held)));
	json_object_object_add(o, "deliver_us",
			       json_object_new_int64(us_between(qp->t_deliver, qp->t_written)));
	json_object_object_add(o, "ready_wait_us",
			       json_object_new_int64(us_between(qp->t_written, qp->t_hup)));
	return o;
}

static void qpeer_accept(struct qpeer *qp)
{
	int fd = accept4(qp->lsrc.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			qpeer_fail(qp, -errno, "cannot accept the old QEMU's cpr channel");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
		close(fd);
		qpeer_fail(qp, -errno, "cannot read the old QEMU's credentials");
		return;
	}
	qp->owner.pid = uc.pid;
	qp->owner.uid = uc.uid;
	qp->owner.gid = uc.gid;
	qpeer_unwatch(&qp->lsrc); /* one client, as QEMU's own listener */
	if (qpeer_watch(qp, &qp->osrc, fd, EPOLLIN) < 0) {
		close(fd);
		qpeer_fail(qp, -errno, "cannot watch the old QEMU's cpr channel");
		return;
	}
	qp->state = QP_RECV;
	qp->t_accept = now_boottime_ns();
	log_info("QEMU peer %s: pid %d uid %u connected its cpr channel", log_quote(qp->name),
		 (int)uc.pid, (unsigned)uc.uid);
}

/* Room for the next read, up to one byte past max-stream (which refuses). */
static int qpeer_grow(struct qpeer *qp)
{
	size_t limit = (size_t)cprd.cfg.limits.max_stream + 1, cap;
	uint8_t *p;

	if (qp->len >= limit)
		return -EFBIG;
	if (qp->cap - qp->len >= QPEER_RECV_CHUNK || qp->cap == limit)
		return 0;
	cap = MIN(MAX(qp->cap * 2, qp->len + QPEER_RECV_CHUNK), limit);
	p = realloc(qp->buf, cap);
	if (!p)
		return -ENOMEM;
	qp->buf = p;
	qp->cap = cap;
	return 0;
}

/* Keep the fds of one message; every one is ours, even past a limit. */
static int qpeer_take_fds(struct qpeer *qp, struct msghdr *m, size_t at, size_t end)
{
	int r = 0;

	for (struct cmsghdr *h = CMSG_FIRSTHDR(m); h; h = CMSG_NXTHDR(m, h)) {
		size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(h);

		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, in + i, sizeof(int));
			if (r == 0 && qp->n_fds == QPEER_FDS_MAX)
				r = -EMFILE;
			if (r == 0 && qp->n_fds == qp->cap_fds) {
				size_t cap = qp->cap_fds ? 2 * qp->cap_fds : 16;
				int *f = realloc(qp->fds, cap * sizeof(int));
				size_t *a = f ? realloc(qp->fd_at, cap * sizeof(size_t)) : NULL;
				size_t *e = a ? realloc(qp->fd_end, cap * sizeof(size_t)) : NULL;

				if (f)
					qp->fds = f;
				if (a)
					qp->fd_at = a;
				if (e)
					qp->fd_end = e;
				if (!e)
					r = -ENOMEM;
				else
					qp->cap_fds = cap;
			}
			if (r < 0) {
				close(fd);
				continue;
			}
			qp->fd_at[qp->n_fds] = at;
			qp->fd_end[qp->n_fds] = end;
			qp->fds[qp->n_fds++] = fd;
		}
	}
	return r;
}

/* One recvmsg(): > 0 bytes, 0 EOF, -EAGAIN, or another -errno (refuse). */
static ssize_t qpeer_recv_one(struct qpeer *qp)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(QPEER_RECV_FDS * sizeof(int))];
	} c;
	struct iovec iov;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;
	int r = qpeer_grow(qp);

	if (r < 0)
		return r;
	iov = (struct iovec){ .iov_base = qp->buf + qp->len, .iov_len = qp->cap - qp->len };
	m.msg_control = c.buf;
	m.msg_controllen = sizeof(c.buf);
	n = recvmsg(qp->osrc.fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EINTR ? -EAGAIN : -errno;
	r = qpeer_take_fds(qp, &m, qp->len, qp->len + (size_t)n);
	if (r == 0 && (m.msg_flags & MSG_CTRUNC))
		r = -EPROTO;
	if (r < 0)
		return r;
	qp->len += (size_t)n;
	if (qp->len > cprd.cfg.limits.max_stream)
		return -EFBIG;
	return n;
}

static const char *qpeer_recv_why(ssize_t r)
{
	switch (r) {
	case -EFBIG:
		return "the stream exceeds max-stream";
	case -EMFILE:
		return "more fds than a QEMU CPR state carries (1024)";
	case -EPROTO:
		return "more fds in one message than QEMU sends (16): control data truncated";
	case -ENOMEM:
		return "out of memory";
	default:
		return "cannot read the cpr channel";
	}
}

static int qpeer_hold(struct qpeer *qp, char *why, size_t why_len);

static void qpeer_recv(struct qpeer *qp)
{
	char why[256];
	ssize_t n;
	int r;

	while ((n = qpeer_recv_one(qp)) > 0)
		;
	if (n == -EAGAIN)
		return;
	if (n < 0) {
		qpeer_fail(qp, (int)n, qpeer_recv_why(n));
		return;
	}
	qp->t_eof = now_boottime_ns();
	qpeer_rearm(&qp->osrc, 0); /* from now on only its hang-up */
	r = qpeer_check(qp, why, sizeof(why));
	if (r == 0)
		r = qpeer_hold(qp, why, sizeof(why));
	if (r < 0) {
		char msg[300];

		snprintf(msg, sizeof(msg), "QEMU CPR state refused: %s", why);
		qpeer_fail(qp, r, msg);
		return;
	}
	qp->t_held = now_boottime_ns();
	log_info("QEMU peer %s: %zu fds, %zu bytes held as a bundle of uid %u", log_quote(qp->name),
		 qp->b->n_fds, qp->len, (unsigned)qp->owner.uid);
	if (qp->tsrc.fd >= 0) {
		r = qpeer_deliver_start(qp);
		if (r < 0)
			qpeer_fail(qp, r, "cannot deliver to the new QEMU");
		return;
	}
	qp->state = QP_HELD;
	if (qp->waiter) {
		struct json_object *o = proto_reply_new(qp->waiter_op);

		json_object_object_add(o, "name", json_object_new_string(qp->name));
		json_object_object_add(o, "state", json_object_new_string("held"));
		json_object_object_add(o, "fds", json_object_new_int64((int64_t)qp->b->n_fds));
		json_object_object_add(o, "stream_bytes", json_object_new_int64((int64_t)qp->len));
		json_object_object_add(o, "timings", qpeer_timings_json(qp));
		qpeer_reply(qp, o);
	}
}

/* The bundle: the old QEMU owns it; the requester is one of its consumers. */
static int qpeer_hold(struct qpeer *qp, char *why, size_t why_len)
{
	_cleanup_close_ int mfd = -EBADF;
	struct bundle *b;
	int r = store_create(qp->name, &qp->owner, &b);

	if (r < 0) {
		snprintf(why, why_len, "%s",
			 r == -EEXIST	? "a bundle of that name exists"
			 : r == -EDQUOT ? "max-bundles-per-uid of the QEMU's uid reached"
			 : r == -ENOSPC ? "max-bundles reached"
					: "cannot create the bundle");
		return r;
	}
	memcpy(b->uids, qp->tmpl.uids, sizeof(b->uids));
	memcpy(b->gids, qp->tmpl.gids, sizeof(b->gids));
	b->n_uids = qp->tmpl.n_uids;
	b->n_gids = qp->tmpl.n_gids;
	if (qp->req_uid != qp->owner.uid && b->n_uids < CPRD_CONSUMERS_MAX)
		b->uids[b->n_uids++] = qp->req_uid;
	b->ttl_ms = qp->tmpl.ttl_ms;
	b->qemu = qp;
	qp->b = b;
	r = store_put(b, qp->fds, qp->n_fds);
	if (r == 0)
		r = memfd_new_sealed("cprd-qemu-cpr", qp->buf, qp->len, &mfd);
	if (r == 0)
		r = store_seal_checked(b, &mfd, qp->len);
	if (r < 0) {
		snprintf(why, why_len, "%s",
			 r == -EDQUOT	? "max-fds-per-uid of the QEMU's uid reached"
			 : r == -ENOSPC ? "max-fds reached"
					: "cannot keep the state");
		return r;
	}
	qp->n_fds = 0; /* the bundle's now */
	return 0;
}

/* The old QEMU hung up before its HUP came back: migrate_cancel, or it died. */
static void qpeer_old_event(struct qpeer *qp, uint32_t events)
{
	if (qp->state == QP_RECV && (events & EPOLLIN)) {
		qpeer_recv(qp);
		return;
	}
	if (events & (EPOLLHUP | EPOLLERR))
		qpeer_fail(qp, -ECONNRESET, "the old QEMU closed its cpr channel");
}

void qemu_peer_event(struct cprd_src *src, uint32_t events)
{
	struct qpeer *qp = src->obj;

	if (src == &qp->lsrc)
		qpeer_accept(qp);
	else if (src == &qp->osrc)
		qpeer_old_event(qp, events);
	else
		qpeer_deliver_event(qp, src == &qp->psrc ? 0 : events);
}

/* A bundle a QEMU peer holds was dropped, taken or expired. */
void qemu_peer_bundle_gone(struct bundle *b)
{
	struct qpeer *qp = b->qemu;

	b->qemu = NULL;
	qp->b = NULL;
	qpeer_fail(qp, -ENOENT, "its bundle was removed");
}

/* The requester hung up: what it waited for is abandoned. */
void qemu_peer_conn_closed(struct conn *c)
{
	struct qpeer *qp = qpeers, *next;

	for (; qp; qp = next) {
		next = qp->next;
		if (qp->waiter != c)
			continue;
		qp->waiter = NULL;
		if (qp->state != QP_HELD)
			qpeer_fail(qp, -ECONNABORTED, "the requester hung up");
	}
}

unsigned qemu_peer_count(void)
{
	unsigned n = 0;

	for (struct qpeer *qp = qpeers; qp; qp = qp->next)
		n++;
	return n;
}

void qemu_peer_free_all(void)
{
	while (qpeers)
		qpeer_free(qpeers);
}
