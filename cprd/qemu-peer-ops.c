/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "qemu-listen" and "qemu-deliver" (cprd-protocol(7)), and the new QEMU's
 * side: write the held state to its cpr socket in QEMU's own format
 * (tools/qemu-cpr-enc.c), half-close, wait for its close without blocking
 * the loop, then close the old QEMU's connection: the HUP that lets the old
 * QEMU connect its main channel.  A new QEMU that dies first is told apart
 * by its pidfd when the client passed one, and nothing is signalled ready.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "cprd.h"
#include "handle.h"
#include "log.h"
#include "proto.h"
#include "qemu-peer.h"

static int sock_opt(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0 ? -errno : v;
}

/* An AF_UNIX SOCK_STREAM socket, listening (@listening) or connected. */
static int check_socket(struct request *r, int fd, bool listening, const char *what)
{
	if (sock_opt(fd, SO_DOMAIN) != AF_UNIX || sock_opt(fd, SO_TYPE) != SOCK_STREAM ||
	    sock_opt(fd, SO_ACCEPTCONN) != (int)listening) {
		r->fatal = true;
		return handle_fail(r, -ENOTSOCK, "fd %s is not a %s AF_UNIX SOCK_STREAM socket",
				   what, listening ? "listening" : "connected");
	}
	if (fd_set_nonblock(fd) < 0)
		return handle_fail(r, -errno, "cannot make the %s fd non-blocking", what);
	return 0;
}

static int check_pidfd(struct request *r, int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0 || (target[n] = 0, !strstr(target, "pidfd"))) {
		r->fatal = true;
		return handle_fail(r, -EBADF, "the third fd is not a pidfd");
	}
	return 0;
}

/* fds[@i] the new QEMU's cpr socket, fds[@i + 1] (optional) its pidfd. */
static int take_target(struct request *r, struct qpeer *qp, size_t i)
{
	if (qpeer_watch(qp, &qp->tsrc, r->fds[i], 0) < 0)
		return handle_fail(r, -errno, "cannot watch the new QEMU's cpr socket");
	r->fds[i] = -EBADF;
	if (i + 1 < r->n_fds) {
		if (qpeer_watch(qp, &qp->psrc, r->fds[i + 1], EPOLLIN) < 0)
			return handle_fail(r, -errno, "cannot watch the new QEMU's pidfd");
		r->fds[i + 1] = -EBADF;
	}
	return 0;
}

static int target_args(struct request *r, size_t first)
{
	if (r->n_fds > first + 2) {
		r->fatal = true;
		return handle_fail(r, -EBADF, "%zu fds attached, at most %zu", r->n_fds, first + 2);
	}
	if (r->n_fds > first) {
		int ret = check_socket(r, r->fds[first], false, "of the new QEMU's cpr socket");

		if (ret < 0)
			return ret;
	}
	if (r->n_fds > first + 1)
		return check_pidfd(r, r->fds[first + 1]);
	return 0;
}

static bool qpeer_name_taken(const char *name)
{
	for (struct qpeer *qp = qpeers; qp; qp = qp->next)
		if (strcmp(qp->name, name) == 0)
			return true;
	return store_find(name) != NULL;
}

static int listen_args(struct request *r, const char **ret_name, struct bundle *tmpl)
{
	const char *name;
	uint64_t ttl = 0;
	bool tie = false, durable = false;
	char why[160];
	int ret = handle_name(r, &name);

	if (ret < 0)
		return ret;
	ret = access_may_create(name, r->peer, why, sizeof(why));
	if (ret < 0)
		return handle_fail(r, ret, "%s", why);
	ret = parse_consumers(r, tmpl);
	if (ret == 0)
		ret = create_options(r, &ttl, &tie, &durable);
	if (ret < 0)
		return ret;
	if (tie)
		return handle_fail(r, -EINVAL, "\"tie\": the bundle already ends with its QEMU");
	tmpl->ttl_ms = ttl;
	if (qpeer_name_taken(name))
		return handle_fail(r, -EEXIST, "a bundle of that name exists");
	*ret_name = name;
	return 0;
}

int handle_qemu_listen(struct request *r)
{
	struct bundle tmpl = { 0 };
	struct qpeer *qp;
	const char *name = NULL;
	int ret = listen_args(r, &name, &tmpl);

	if (ret == 0)
		ret = check_socket(r, r->fds[0], true, "0 (the socket the old QEMU connects to)");
	if (ret == 0)
		ret = target_args(r, 1);
	if (ret < 0)
		return ret;
	qp = qpeer_new(name, r->peer->uid, r->fds[0]);
	if (!qp)
		return handle_fail(r, -ENOMEM, "cannot listen");
	r->fds[0] = -EBADF;
	qp->tmpl = tmpl;
	if (r->n_fds > 1 && (ret = take_target(r, qp, 1)) < 0) {
		qpeer_free(qp);
		return ret;
	}
	qp->waiter = r->conn;
	qp->waiter_op = "qemu-listen";
	r->no_reply = true; /* when held, or delivered, or refused */
	log_info("QEMU peer %s: listening for uid %u%s", log_quote(name), (unsigned)r->peer->uid,
		 qp->tsrc.fd >= 0 ? ", to deliver" : "");
	return 0;
}

int handle_qemu_deliver(struct request *r)
{
	struct bundle *b;
	struct qpeer *qp;
	int ret = handle_bundle(r, &b);

	if (ret == 0)
		ret = target_args(r, 0);
	if (ret < 0)
		return ret;
	qp = b->qemu;
	if (!qp)
		return handle_fail(r, -EMEDIUMTYPE, "bundle %s was not fed by a QEMU", b->name);
	if (!access_may_claim(b, r->peer))
		return handle_fail(r, -EACCES, "uid %u may not claim bundle %s",
				   (unsigned)r->peer->uid, b->name);
	if (qp->state != QP_HELD || b->state != BUNDLE_SEALED || qp->waiter)
		return handle_fail(r, -EBUSY, "bundle %s is %s", b->name,
				   b->state != BUNDLE_SEALED ? store_state_name(b->state)
							     : "being delivered");
	ret = take_target(r, qp, 0);
	if (ret == 0)
		ret = qpeer_deliver_start(qp);
	if (ret < 0) {
		const char *why = ret == -ESRCH ? "the new QEMU has exited: nothing delivered, "
						  "the state released"
						: "cannot deliver to the new QEMU";

		qpeer_fail(qp, ret, why);
		return handle_fail(r, ret, "%s", why);
	}
	qp->waiter = r->conn;
	qp->waiter_op = "qemu-deliver";
	b->claimer_uid = r->peer->uid;
	b->claimer_pid = r->peer->pid;
	r->no_reply = true; /* when the new QEMU closes its cpr socket */
	return 0;
}

/* Done: the new QEMU read everything and closed; the HUP goes back. */
static void qpeer_delivered(struct qpeer *qp)
{
	struct json_object *o = proto_reply_new(qp->waiter_op);

	json_object_object_add(o, "name", json_object_new_string(qp->name));
	json_object_object_add(o, "state", json_object_new_string("delivered"));
	json_object_object_add(o, "fds", json_object_new_int64((int64_t)qp->b->n_fds));
	json_object_object_add(o, "stream_bytes", json_object_new_int64((int64_t)qp->len));
	json_object_object_add(o, "owner_pid", json_object_new_int64(qp->owner.pid));
	json_object_object_add(o, "timings", qpeer_timings_json(qp));
	log_info("QEMU peer %s: delivered %zu fds; the old QEMU (pid %d) may go on",
		 log_quote(qp->name), qp->b->n_fds, (int)qp->owner.pid);
	qpeer_reply(qp, o);
	qpeer_free(qp);
}

static void qpeer_deliver_step(struct qpeer *qp)
{
	int r = qcpr_writer_step(&qp->w, qp->tsrc.fd);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &qp->tsrc };

	if (r == 0)
		return; /* EPOLLOUT is armed */
	if (r < 0) {
		qpeer_fail(qp, r, "the new QEMU's cpr socket broke during the delivery");
		return;
	}
	qp->state = QP_WAIT;
	qp->t_written = now_boottime_ns();
	if (epoll_ctl(cprd.epoll_fd, EPOLL_CTL_MOD, qp->tsrc.fd, &ev) < 0)
		qpeer_fail(qp, -errno, "cannot watch the new QEMU's cpr socket");
}

int qpeer_deliver_start(struct qpeer *qp)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = &qp->tsrc };

	if (qp->psrc.fd >= 0 && qpeer_pid_exiting(qp->psrc.fd))
		return -ESRCH;
	qp->state = QP_DELIVER;
	qp->b->state = BUNDLE_CLAIMED; /* neither claimed nor dropped meanwhile */
	qp->b->claimer_uid = qp->req_uid;
	qp->b->claims++;
	cprd.status_dirty = true;
	qp->t_deliver = now_boottime_ns();
	qcpr_writer_init(&qp->w, qp->buf, qp->len, qp->st, qp->b->fds);
	if (epoll_ctl(cprd.epoll_fd, EPOLL_CTL_MOD, qp->tsrc.fd, &ev) < 0)
		return -errno;
	return 0;
}

/* The new QEMU closed its cpr socket: ready, unless it is dying. */
static void qpeer_new_closed(struct qpeer *qp)
{
	char b;
	ssize_t n = read(qp->tsrc.fd, &b, 1); /* non-blocking; recv() is recvfrom(2) */

	if (n > 0) {
		qpeer_fail(qp, -EPROTO, "the new QEMU wrote on its cpr channel");
		return;
	}
	if (n < 0 && errno == EAGAIN)
		return;
	qp->t_hup = now_boottime_ns();
	if (qp->psrc.fd >= 0 && qpeer_pid_exiting(qp->psrc.fd)) {
		qpeer_fail(qp, -ESRCH, "the new QEMU exited before it was ready");
		return;
	}
	qpeer_delivered(qp);
}

/* @events 0: the new QEMU's pidfd fired. */
void qpeer_deliver_event(struct qpeer *qp, uint32_t events)
{
	if (events == 0) {
		qpeer_fail(qp, -ESRCH, "the new QEMU exited before it was ready");
		return;
	}
	switch (qp->state) {
	case QP_DELIVER:
		qpeer_deliver_step(qp);
		return;
	case QP_WAIT:
		qpeer_new_closed(qp);
		return;
	default:
		qpeer_fail(qp, -ECONNRESET,
			   "the new QEMU closed its cpr socket before the delivery");
		return;
	}
}
