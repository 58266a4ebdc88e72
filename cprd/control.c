/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Listening sockets and client connections.  The peer's identity is read
 * at accept, before the first byte of a request; requests are read one
 * message at a time, and replies that do not fit in the peer's socket are
 * queued (with their own fd copies) while the connection stops reading.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <json-c/json.h>

#include "internal.h"
#include "scm.h"
#include "cprd.h"
#include "log.h"
#include "proto.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#define CONTROL_GROUPS_MAX 65536u

struct outmsg {
	struct outmsg *next;
	char *buf;
	size_t len;
	int *fds; /* owned copies */
	size_t n_fds;
};

static struct cprd_src listen_srcs[CPRD_LISTEN_MAX];
static struct conn *conns;
static char *recv_buf;
static size_t recv_len;

int control_listen(const char *path, const char *group, unsigned mode, int *ret_fd)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	gid_t gid = (gid_t)-1;
	mode_t old;
	int r;

	if (fd < 0)
		return -errno;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	if (group) {
		struct group *gr = getgrnam(group);
		uint64_t v;

		if (gr)
			gid = gr->gr_gid;
		else if (conf_parse_u64(group, 0, UINT32_MAX - 1, &v) == 0)
			gid = (gid_t)v;
		else
			return -ESRCH;
	}
	strcpy(sa.sun_path, path);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	old = umask(0177); /* 0600 from birth: no window with a wider mode */
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0)
		return -errno;
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)
		return -errno;
	if (chmod(path, (mode_t)mode) < 0 || listen(fd, SOMAXCONN) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int control_add_listener(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct cprd_src *src;
	int r;

	if (cprd.n_listen == CPRD_LISTEN_MAX)
		return -E2BIG;
	r = fd_set_nonblock(fd);
	if (r < 0)
		return r;
	/* Identity is SO_PEERCRED's, read at accept.  A socket unit with
	 * PassCredentials= would make every message carry SCM_CREDENTIALS;
	 * off, the kernel discards what a client attaches, and an accepted
	 * socket inherits the listener's setting. */
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &(int){ 0 }, sizeof(int)) < 0)
		return -errno;
	src = &listen_srcs[cprd.n_listen];
	*src = (struct cprd_src){ .tag = TAG_LISTEN, .fd = fd };
	ev.data.ptr = src;
	if (epoll_ctl(cprd.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	cprd.listen_fds[cprd.n_listen++] = fd;
	return 0;
}

/* SO_PEERGROUPS: the peer's supplementary groups at connect time. */
static int control_peer_groups(int fd, struct cprd_peer *p)
{
	socklen_t len = 64 * sizeof(gid_t);

	for (;;) {
		gid_t *g = malloc(len);

		if (!g)
			return -ENOMEM;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			p->groups = g;
			p->n_groups = len / sizeof(gid_t);
			return 0;
		}
		free(g);
		if (errno != ERANGE || len > CONTROL_GROUPS_MAX * sizeof(gid_t))
			return -errno;
	}
}

static int control_peer(int fd, struct cprd_peer *p)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	int pidfd;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	p->pid = uc.pid;
	p->uid = uc.uid;
	p->gid = uc.gid;
	p->pidfd = -EBADF;
	len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0)
		p->pidfd = pidfd; /* kernels since 6.5; the pid alone otherwise */
	return control_peer_groups(fd, p);
}

static void outmsg_free(struct outmsg *m)
{
	for (size_t i = 0; i < m->n_fds; i++)
		cpr_close(m->fds[i]);
	free(m->fds);
	free(m->buf);
	free(m);
}

static void control_close(struct conn *c)
{
	epoll_ctl(cprd.epoll_fd, EPOLL_CTL_DEL, c->src.fd, NULL);
	store_conn_closed(c);
	qemu_peer_conn_closed(c);
	while (c->out_head) {
		struct outmsg *m = c->out_head;

		c->out_head = m->next;
		outmsg_free(m);
	}
	for (struct conn **pp = &conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	cpr_close(c->src.fd);
	cpr_close(c->peer.pidfd);
	free(c->peer.groups);
	free(c);
	cprd.n_conns--;
	cprd.status_dirty = true;
}

static void control_update_events(struct conn *c)
{
	struct epoll_event ev = { .data.ptr = c };
	bool want_out = c->out_head != NULL;

	/* stop reading while replies are queued or the connection is closing */
	ev.events = want_out ? EPOLLOUT : (c->closing ? 0 : EPOLLIN);
	if (epoll_ctl(cprd.epoll_fd, EPOLL_CTL_MOD, c->src.fd, &ev) < 0)
		log_warn("epoll_ctl");
	c->want_out = want_out;
}

static int control_enqueue(struct conn *c, const char *buf, size_t len, const int *fds,
			   size_t n_fds)
{
	struct outmsg *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->buf = malloc(len);
	m->fds = calloc(n_fds ? n_fds : 1, sizeof(int));
	if (!m->buf || !m->fds) {
		outmsg_free(m);
		return -ENOMEM;
	}
	memcpy(m->buf, buf, len);
	m->len = len;
	for (; m->n_fds < n_fds; m->n_fds++) {
		m->fds[m->n_fds] = fcntl(fds[m->n_fds], F_DUPFD_CLOEXEC, 3);
		if (m->fds[m->n_fds] < 0) {
			int r = -errno;
			outmsg_free(m);
			return r;
		}
	}
	if (c->out_tail)
		c->out_tail->next = m;
	else
		c->out_head = m;
	c->out_tail = m;
	c->n_out++;
	return 0;
}

int control_send(struct conn *c, const char *buf, size_t len, const int *fds, size_t n_fds)
{
	ssize_t n = -EAGAIN;

	if (!c->out_head)
		n = scm_send(c->src.fd, buf, len, fds, n_fds);
	if (n >= 0)
		return 0;
	if (n != -EAGAIN) {
		c->closing = true;
		return (int)n;
	}
	n = control_enqueue(c, buf, len, fds, n_fds);
	if (n < 0) {
		c->closing = true;
		return (int)n;
	}
	return 0;
}

int control_send_json(struct conn *c, struct json_object *o, const int *fds, size_t n_fds)
{
	size_t len;
	const char *s;

	if (!o) {
		c->closing = true;
		return -ENOMEM;
	}
	s = proto_format(o, &len);
	return control_send(c, s, len, fds, n_fds);
}

static void control_flush(struct conn *c)
{
	while (c->out_head) {
		struct outmsg *m = c->out_head;
		ssize_t n = scm_send(c->src.fd, m->buf, m->len, m->fds, m->n_fds);

		if (n == -EAGAIN)
			return;
		if (n < 0) {
			c->closing = true;
			c->out_head = NULL; /* dropped below */
			c->out_tail = NULL;
			for (struct outmsg *x = m, *nx; x; x = nx) {
				nx = x->next;
				outmsg_free(x);
			}
			return;
		}
		c->out_head = m->next;
		if (!c->out_head)
			c->out_tail = NULL;
		c->n_out--;
		outmsg_free(m);
	}
}

/* After a request or a flush: close, re-arm, or keep reading. */
static void control_settle(struct conn *c)
{
	if (c->closing && !c->out_head) {
		control_close(c);
		return;
	}
	if (c->want_out != (c->out_head != NULL) || c->closing)
		control_update_events(c);
}

static void control_refuse_full(int fd)
{
	struct json_object *o = proto_error_new(NULL, EAGAIN, "too many connections", true);
	size_t len;
	const char *s;

	if (o) {
		s = proto_format(o, &len);
		scm_send(fd, s, len, NULL, 0);
		json_object_put(o);
	}
	close(fd);
}

void control_accept(int listen_fd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct conn *c;
	int fd, r;

	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	if (cprd.n_conns >= cprd.cfg.limits.max_connections) {
		log_warnx("connection refused: max-connections (%u) reached",
			  cprd.cfg.limits.max_connections);
		control_refuse_full(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->src = (struct cprd_src){ .tag = TAG_CONN, .obj = c, .fd = fd };
	r = control_peer(fd, &c->peer);
	ev.data.ptr = c;
	if (r < 0 || epoll_ctl(cprd.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_errno(r < 0 ? r : -errno, "cannot accept a connection");
		cpr_close(c->peer.pidfd);
		free(c->peer.groups);
		free(c);
		close(fd);
		return;
	}
	c->last_ns = now_boottime_ns();
	c->next = conns;
	conns = c;
	cprd.n_conns++;
	cprd.status_dirty = true;
	log_debug("connection from pid %d uid %u gid %u", (int)c->peer.pid, (unsigned)c->peer.uid,
		  (unsigned)c->peer.gid);
}

static int control_recv_buf(void)
{
	size_t want = cprd.cfg.limits.max_request;

	if (recv_len == want)
		return 0;
	free(recv_buf);
	recv_buf = malloc(want);
	recv_len = recv_buf ? want : 0;
	return recv_buf ? 0 : -ENOMEM;
}

static int control_read(struct conn *c)
{
	int fds[CPRD_MSG_FDS_MAX];
	size_t n_fds = 0;
	ssize_t n;

	if (control_recv_buf() < 0) {
		c->closing = true;
		return -ENOMEM;
	}
	n = scm_recv(c->src.fd, recv_buf, recv_len, fds, CPRD_MSG_FDS_MAX, &n_fds, MSG_DONTWAIT);
	if (n == -EAGAIN)
		return -EAGAIN;
	if (n == 0) {
		c->closing = true;
		return 0;
	}
	c->last_ns = now_boottime_ns();
	if (n < 0) {
		/* scm_recv() closed whatever arrived */
		struct json_object *o = proto_error_new(
			NULL, (int)n,
			n == -EMSGSIZE ? "request larger than max-request"
				       : "bad control data (only SCM_RIGHTS, at most 253 fds)",
			true);

		if (n != -ECONNRESET)
			control_send_json(c, o, NULL, 0);
		json_object_put(o);
		c->closing = true;
		return (int)n;
	}
	handle_request(c, recv_buf, (size_t)n, fds, n_fds);
	return 0;
}

/* Pipelined requests: a few per wake-up, then the others get their turn. */
#define CONTROL_BATCH 16

/* Replies go out in request order: a queued one, or a "debug" due, waits. */
static bool control_may_read(const struct conn *c)
{
	return !c->closing && !c->out_head && !c->debug_due && !cprd.upgrade;
}

void control_event(struct conn *c, uint32_t events)
{
	if (events & EPOLLOUT)
		control_flush(c);
	else if (events & EPOLLIN) {
		for (int i = 0; i < CONTROL_BATCH && control_may_read(c); i++)
			if (control_read(c) == -EAGAIN)
				break;
	} else if (events & (EPOLLERR | EPOLLHUP))
		c->closing = true;
	control_settle(c);
}

/* Close connections silent for longer than idle-timeout-ms. */
void control_idle_sweep(void)
{
	uint64_t limit = cprd.cfg.limits.idle_timeout_ms * 1000000u, now = now_boottime_ns();
	struct conn *c = conns, *next;

	if (!limit)
		return;
	for (; c; c = next) {
		next = c->next;
		if (now - c->last_ns > limit && !c->out_head) {
			log_info("closing idle connection of pid %d", (int)c->peer.pid);
			control_close(c);
		}
	}
}

/* The peer hung up: process what it sent and the end, as the loop would. */
static bool control_hung_up(const struct conn *c)
{
	struct pollfd p = { .fd = c->src.fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

/*
 * "debug" answers once everything before it is done: the requests of this
 * turn and what they close, the end of every connection whose peer has
 * hung up, owner exits and passed deadlines, even if their events are
 * still in the epoll queue.
 */
void control_debug_settle(void)
{
	struct conn *c, *next;

	if (!cprd.debug_due)
		return;
	for (c = conns; c; c = next) {
		next = c->next; /* control_event() closes c at most */
		if (!c->debug_due && control_hung_up(c))
			control_event(c, c->out_head ? EPOLLOUT : EPOLLIN);
	}
	store_settle();
	cprd.debug_due = false;
	for (c = conns; c; c = next) {
		next = c->next;
		if (!c->debug_due)
			continue;
		c->debug_due = false;
		handle_debug_reply(c);
		control_settle(c);
	}
}

unsigned control_queued_fds(void)
{
	unsigned n = 0;

	for (const struct conn *c = conns; c; c = c->next)
		for (const struct outmsg *m = c->out_head; m; m = m->next)
			n += (unsigned)m->n_fds;
	return n;
}

void control_close_all(void)
{
	while (conns)
		control_close(conns);
	free(recv_buf);
	recv_buf = NULL;
	recv_len = 0;
}
