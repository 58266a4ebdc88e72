/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The service manager's notification protocol (sd_notify(3)): READY=1 once
 * the sandbox is in place, STATUS= summaries, WATCHDOG=1 when WATCHDOG_USEC
 * asks for it, FDSTORE=1 and FDSTOREREMOVE=1 for the fd store, MAINPID= at
 * an upgrade, STOPPING=1.  Outside a service manager every call is a no-op.
 *
 * The event loop never blocks on the service manager: one datagram socket,
 * connected to $NOTIFY_SOCKET (so that epoll can tell when its queue has
 * room), non-blocking.  A message that does not fit waits in a FIFO
 * flushed on EPOLLOUT, where a newer STATUS= or WATCHDOG=1 replaces a
 * waiting one.  A waiting FDSTORE=1 names its fd by bundle and slot, not by
 * a duplicate: the fd is looked up when the message goes out (fdstore.c),
 * and is skipped if the bundle has gone meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "internal.h"
#include "scm.h"
#include "cprd.h"
#include "log.h"

/* At most every 100 ms; the sweep timer's tick (1 s) flushes what is left. */
#define NOTIFY_STATUS_NS 100000000u
/* Text messages waiting for a service manager that does not read: what
 * replaces itself (STATUS=, WATCHDOG=1) waits once; the rest is bounded by
 * the fd store's size (one FDSTOREREMOVE=1 per parked fd). */
#define NOTIFY_QUEUE_MAX 65536u

struct notify_msg {
	struct notify_msg *next;
	size_t len;	 /* 0: replaced by a newer one, skipped */
	uint64_t bundle; /* FDSTORE=1: the fd is this bundle's ... */
	long slot;	 /* ... piece (FDSTORE_SLOT_NONE: a text message) */
	int fd;		 /* owned, for a piece that has no home in the bundle */
	char text[];
};

static int notify_fd = -EBADF;
static struct cprd_src notify_src = { .tag = TAG_NOTIFY };
static struct notify_msg *q_head, *q_tail;
static unsigned q_len;
static bool q_armed;

int notify_setup(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = 0, .data.ptr = &notify_src };
	size_t len = e ? strlen(e) : 0;
	_cleanup_close_ int fd = -EBADF;

	if (!e)
		return 0;
	if ((e[0] != '/' && e[0] != '@') || len < 2 || len >= sizeof(sa.sun_path)) {
		log_warnx("NOTIFY_SOCKET=%s: not a UNIX socket path; not notifying", log_quote(e));
		return -EINVAL;
	}
	memcpy(sa.sun_path, e, len);
	if (e[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || fd_set_nonblock(fd) < 0 ||
	    connect(fd, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
		log_warn("NOTIFY_SOCKET %s", log_quote(e));
		return -errno;
	}
	notify_src.fd = fd;
	if (epoll_ctl(cprd.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	notify_fd = TAKE_FD(fd);
	return 1;
}

static int notify_sendmsg(const char *text, size_t len, int fd)
{
	ssize_t n;

	if (fd < 0) {
		n = send(notify_fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		n = n < 0 ? -errno : n;
	} else {
		n = scm_send(notify_fd, text, len, &fd, 1); /* the socket is non-blocking */
	}
	if (n >= 0)
		return 0;
	return n == -EWOULDBLOCK ? -EAGAIN : (int)n;
}

static void notify_arm(bool on)
{
	struct epoll_event ev = { .events = on ? EPOLLOUT : 0, .data.ptr = &notify_src };

	if (on != q_armed && epoll_ctl(cprd.epoll_fd, EPOLL_CTL_MOD, notify_fd, &ev) == 0)
		q_armed = on;
}

/* A waiting message that a newer one of the same kind replaces. */
static struct notify_msg *notify_replaceable(const char *text)
{
	static const char *const kinds[] = { "STATUS=", "WATCHDOG=1" };

	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		if (strncmp(text, kinds[k], strlen(kinds[k])) != 0)
			continue;
		for (struct notify_msg *m = q_head; m; m = m->next)
			if (m->len && strncmp(m->text, kinds[k], strlen(kinds[k])) == 0)
				return m;
	}
	return NULL;
}

static int notify_enqueue(const char *text, size_t len, uint64_t bundle, long slot, int fd)
{
	struct notify_msg *m = slot == FDSTORE_SLOT_NONE ? notify_replaceable(text) : NULL, *n;

	if (m && m->len >= len) {
		memcpy(m->text, text, len);
		m->len = len;
		return 0;
	}
	if (q_len >= NOTIFY_QUEUE_MAX)
		return -ENOBUFS;
	n = malloc(sizeof(*n) + len);
	if (!n)
		return -ENOMEM;
	*n = (struct notify_msg){ .len = len, .bundle = bundle, .slot = slot, .fd = fd };
	memcpy(n->text, text, len);
	if (m) /* the old one goes: the newer one waits at the end */
		m->len = 0;
	if (q_tail)
		q_tail->next = n;
	else
		q_head = n;
	q_tail = n;
	q_len++;
	notify_arm(true);
	return 0;
}

/* One waiting message: 0 gone (sent or moot), -EAGAIN still waiting. */
static int notify_send_waiting(struct notify_msg *m)
{
	int fd = m->fd, r;
	bool tmp = false;

	if (!m->len)
		return 0;
	if (m->slot == FDSTORE_SLOT_NONE)
		return notify_sendmsg(m->text, m->len, -1) == -EAGAIN ? -EAGAIN : 0;
	if (fd < 0 && fdstore_piece_fd(m->bundle, m->slot, &fd, &tmp) < 0)
		return 0; /* the bundle has gone: its FDSTOREREMOVE=1 follows */
	r = notify_sendmsg(m->text, m->len, fd);
	if (tmp)
		cpr_close(fd);
	if (r == -EAGAIN)
		return r;
	fdstore_piece_sent(m->bundle, m->slot, r);
	return 0;
}

/* Send what waits, in order, until the socket is full again. */
void notify_flush(void)
{
	while (q_head) {
		struct notify_msg *m = q_head;

		if (notify_send_waiting(m) == -EAGAIN)
			return;
		q_head = m->next;
		if (!q_head)
			q_tail = NULL;
		q_len--;
		cpr_close(m->fd);
		free(m);
	}
	notify_arm(false);
}

int notify_send(const char *text)
{
	size_t len = strlen(text);
	int r;

	if (notify_fd < 0)
		return 0;
	if (!q_head) {
		r = notify_sendmsg(text, len, -1);
		if (r != -EAGAIN)
			return r;
	}
	r = notify_enqueue(text, len, 0, FDSTORE_SLOT_NONE, -EBADF);
	if (r < 0)
		log_errno(r, "the service manager reads no notifications: dropped %.40s", text);
	return r;
}

int notify_send_piece(const char *text, uint64_t bundle, long slot, int fd, int *owned)
{
	size_t len = strlen(text);
	int r;

	if (notify_fd < 0)
		return -ENOTCONN;
	if (!q_head) {
		r = notify_sendmsg(text, len, fd);
		if (r != -EAGAIN)
			return r < 0 ? r : 1;
	}
	r = notify_enqueue(text, len, bundle, slot, owned ? *owned : -EBADF);
	if (r == 0 && owned)
		*owned = -EBADF; /* the queue owns it now */
	return r;
}

/* For a process about to exit: wait (bounded) until everything is out. */
int notify_drain(int timeout_ms)
{
	int64_t end = scm_now_ms() + timeout_ms;

	while (q_head) {
		struct pollfd p = { .fd = notify_fd, .events = POLLOUT };
		int64_t left = end - scm_now_ms();

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -ETIMEDOUT;
		notify_flush();
	}
	return 0;
}

bool notify_pending(void)
{
	return q_head != NULL;
}

void notify_status(void)
{
	static uint64_t last;
	uint64_t now = now_boottime_ns();
	char msg[256];

	if (now - last < NOTIFY_STATUS_NS)
		return;
	last = now;
	cprd.status_dirty = false;
	snprintf(msg, sizeof(msg), "STATUS=%u bundles, %u fds held, %u connections", cprd.n_bundles,
		 cprd.n_fds, cprd.n_conns);
	notify_send(msg);
}

void notify_ready(void)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%u bundles, %u fds held, %u connections",
		 cprd.n_bundles, cprd.n_fds, cprd.n_conns);
	notify_send(msg);
	cprd.status_dirty = false;
}

void notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=stopping");
}

/* Ping at half the interval the manager asked for. */
int notify_watchdog_setup(void)
{
	struct itimerspec its = { 0 };
	uint64_t usec = 0, half;
	int r = sd_watchdog_enabled(0, &usec);

	if (r <= 0)
		return r;
	half = usec / 2 ? usec / 2 : 1;
	its.it_value.tv_sec = (time_t)(half / 1000000u);
	its.it_value.tv_nsec = (long)(half % 1000000u) * 1000;
	its.it_interval = its.it_value;
	if (timerfd_settime(cprd.watchdog_fd, 0, &its, NULL) < 0)
		return -errno;
	cprd.watchdog_usec = usec;
	log_info("watchdog every %llu us", (unsigned long long)half);
	return 1;
}

void notify_watchdog_event(void)
{
	uint64_t ticks;

	if (read(cprd.watchdog_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("watchdog timerfd");
	notify_send("WATCHDOG=1");
}

void notify_free(void)
{
	while (q_head) {
		struct notify_msg *m = q_head;

		q_head = m->next;
		cpr_close(m->fd);
		free(m);
	}
	q_tail = NULL;
	q_len = 0;
	notify_fd = cpr_close(notify_fd);
}
