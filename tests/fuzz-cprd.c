/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for cprd's request path: the input is split at NUL bytes
 * into up to 8 messages, each handled by handle_request() on one connection
 * of an in-process daemon state, as control.c would (the first byte of a
 * message, mod 3, is the number of memfds attached).  Properties: never a
 * crash, leak or sanitizer report, and no fd left behind once the connection
 * is closed and the store emptied.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"

#define FUZZ_MSGS 8

struct cprd cprd = { .epoll_fd = -EBADF, .timer_fd = -EBADF, .next_id = 1 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_init(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	log_init("fuzz-cprd", -1);
	conf_defaults(&cprd.cfg);
	cprd.cfg.limits.max_request = 4096;
	cprd.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	cprd.timer_fd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		abort();
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void drain(int fd)
{
	char buf[65536];
	int fds[CPRD_MSG_FDS_MAX];
	struct iovec iov = { buf, sizeof(buf) };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(fds))];
	} c;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	for (;;) {
		m.msg_control = c.b;
		m.msg_controllen = sizeof(c.b);
		if (recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
			return;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
			if (h->cmsg_type == SCM_RIGHTS)
				for (size_t i = 0; i < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				     i++)
					close(((int *)CMSG_DATA(h))[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn *c = calloc(1, sizeof(*c));
	const uint8_t *p = data, *end = data + size;
	int sv[2], before;

	fuzz_init();
	before = count_fds();
	if (!c || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
		free(c);
		return 0;
	}
	c->src = (struct cprd_src){ .tag = TAG_CONN, .obj = c, .fd = sv[0] };
	c->peer = (struct cprd_peer){
		.pid = getpid(), .uid = getuid(), .gid = getgid(), .pidfd = -EBADF
	};
	for (int k = 0; k < FUZZ_MSGS && p < end && !c->closing; k++) {
		const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
		size_t len = nul ? (size_t)(nul - p) : (size_t)(end - p);
		int fds[2];
		size_t n_fds = len ? p[0] % 3 : 0;

		for (size_t i = 0; i < n_fds; i++)
			fds[i] = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (len > 0)
			handle_request(c, (const char *)p + 1, len - 1, fds, n_fds);
		else
			for (size_t i = 0; i < n_fds; i++)
				close(fds[i]);
		drain(sv[1]);
		p += len + (nul ? 1 : 0);
	}
	store_conn_closed(c);
	store_free_all();
	cprd.upgrade = false; /* "upgrade" is answered by a hand-off this target never makes */
	close(sv[0]);
	close(sv[1]);
	free(c);
	if (count_fds() != before)
		abort(); /* an fd was left behind */
	return 0;
}
