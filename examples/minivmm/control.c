/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control socket: SOCK_SEQPACKET, one command per message, one reply per
 * message.  Commands: "status", "upgrade [exec|transfer|cprd] [PATH]",
 * "quit".  The listening socket is a preserved fd, so it outlives every
 * upgrade; the connection that asked for an upgrade is preserved too and the
 * new image answers on it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm.h"

#define CMD_MAX 1024
#define CLIENT_TIMEOUT_MS 1000
#define REPLY_TIMEOUT_MS 120000

static int unix_addr(const char *path, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	memcpy(sa->sun_path, path, n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int control_listen(const char *path)
{
	struct sockaddr_un sa;
	socklen_t len;
	int fd, r = unix_addr(path, &sa, &len);

	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 8) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	chmod(path, 0600);
	return fd;
}

void control_reply(int fd, const char *msg)
{
	if (fd >= 0 && send(fd, msg, strlen(msg), MSG_NOSIGNAL) < 0)
		fprintf(stderr, "minivmm: control reply: %s\n", strerror(errno));
}

static int parse_mode(const char *s, enum upgrade_mode *ret)
{
	if (!strcmp(s, "exec"))
		*ret = UPGRADE_EXEC;
	else if (!strcmp(s, "transfer"))
		*ret = UPGRADE_TRANSFER;
	else if (!strcmp(s, "cprd"))
		*ret = UPGRADE_CPRD;
	else if (!strcmp(s, "kexec"))
		*ret = UPGRADE_KEXEC;
	else
		return -EINVAL;
	return 0;
}

/* Read one command; returns its length, or -errno. */
static int read_command(int fd, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, CLIENT_TIMEOUT_MS) <= 0)
		return -ETIMEDOUT;
	n = recv(fd, buf, len - 1, MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return (int)n;
}

/* Handle one connection; it is closed here unless an upgrade took it. */
void control_handle(struct vmm *m, int listen_fd)
{
	char cmd[CMD_MAX], reply[1024], *save = NULL, *verb, *arg1, *arg2;
	enum upgrade_mode mode = m->opt.mode;
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (read_command(fd, cmd, sizeof(cmd)) <= 0) {
		close(fd);
		return;
	}
	verb = strtok_r(cmd, " ", &save);
	arg1 = strtok_r(NULL, " ", &save);
	arg2 = strtok_r(NULL, " ", &save);
	if (!strcmp(verb, "status")) {
		report_status(m, reply, sizeof(reply));
	} else if (!strcmp(verb, "quit")) {
		control_reply(fd, "ok bye");
		close(fd);
		m->quit = true;
		return;
	} else if (!strcmp(verb, "upgrade") && (!arg1 || parse_mode(arg1, &mode) == 0)) {
		m->reply_fd = fd;
		vmm_upgrade(m, mode, arg2);
		/* Still here: refused (the reply was sent), or handed off. */
		if (m->reply_fd >= 0)
			close(m->reply_fd);
		m->reply_fd = -1;
		return;
	} else {
		snprintf(reply, sizeof(reply),
			 "error unknown command (status, upgrade [MODE] [PATH], quit)");
	}
	control_reply(fd, reply);
	close(fd);
}

/* Client: send @cmd to the VMM at @path, print the reply; exit status. */
int control_client(const char *path, const char *cmd)
{
	struct sockaddr_un sa;
	struct pollfd p;
	socklen_t len;
	char reply[2048];
	ssize_t n;
	int fd, r = unix_addr(path, &sa, &len);

	if (r < 0) {
		fprintf(stderr, "minivmm: %s: %s\n", path, strerror(-r));
		return EXIT_USAGE;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) < 0) {
		fprintf(stderr, "minivmm: connecting to %s: %s\n", path, strerror(errno));
		return EXIT_TEMP;
	}
	if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0) {
		fprintf(stderr, "minivmm: sending to %s: %s\n", path, strerror(errno));
		close(fd);
		return EXIT_TEMP;
	}
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&p, 1, REPLY_TIMEOUT_MS) <= 0 ||
	    (n = recv(fd, reply, sizeof(reply) - 1, 0)) <= 0) {
		fprintf(stderr, "minivmm: no reply from %s\n", path);
		close(fd);
		return EXIT_TEMP;
	}
	close(fd);
	reply[n] = '\0';
	printf("%s\n", reply);
	return strncmp(reply, "ok", 2) == 0 ? 0 : EXIT_REFUSED;
}
