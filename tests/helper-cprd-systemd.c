/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Plays the service manager's documented side for cprd tests: a socket unit
 * (a listening SOCK_SEQPACKET socket that outlives the service), a
 * NOTIFY_SOCKET receiver that keeps the fds sent with FDSTORE=1 (dropping a
 * file it already holds, as systemd does, and closing those named by
 * FDSTOREREMOVE=1), and Restart=on-failure with RestartPreventExitStatus=100:
 * each start passes LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID.
 *
 *	helper-cprd-systemd STATEDIR SOCKET CPRD [ARG]...
 *
 * STATEDIR/events gets one line per event ("ready N", "exit STATUS",
 * "watchdog", "stopping"), STATEDIR/pid the running cprd's pid,
 * STATEDIR/status the last STATUS= text, and STATEDIR/store the names held,
 * one per line.  With HARNESS_STALL set, the notification socket is not
 * read until SIGUSR1 (a service manager that hangs).  HARNESS_FDSTORE_MAX
 * plays FileDescriptorStoreMax= (fds beyond it are dropped, $FDSTORE says
 * so).  With HARNESS_JUNK set, the store starts with an incomplete bundle
 * and an entry of unknown name.  SIGTERM stops cprd and exits with its
 * status.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/kcmp.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "scm.h"

#define STORE_MAX 20000
#define MSG_MAX 4096

struct entry {
	char *name;
	int fd;
};

static struct entry store[STORE_MAX];
static size_t n_store;
static const char *statedir;
static unsigned starts, watchdogs;

/* "WHAT N", or "WHAT" alone for N < 0 */
static void event(const char *what, long v)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/events", statedir);
	f = fopen(path, "ae");
	if (!f)
		return;
	if (v < 0)
		fprintf(f, "%s\n", what);
	else
		fprintf(f, "%s %ld\n", what, v);
	fclose(f);
}

static void write_store(void)
{
	char path[512], tmp[520];
	FILE *f;

	snprintf(path, sizeof(path), "%s/store", statedir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return;
	for (size_t i = 0; i < n_store; i++)
		fprintf(f, "%s\n", store[i].name);
	fclose(f);
	rename(tmp, path);
}

static void write_status(const char *text)
{
	char path[512], tmp[520];
	FILE *f;

	snprintf(path, sizeof(path), "%s/status", statedir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return;
	fprintf(f, "%s\n", text);
	fclose(f);
	rename(tmp, path);
}

static bool same_file(int a, int b)
{
	pid_t me = getpid();

	return syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

/* FileDescriptorStoreMax=: $HARNESS_FDSTORE_MAX, else STORE_MAX. */
static size_t store_max(void)
{
	const char *e = getenv("HARNESS_FDSTORE_MAX");
	size_t n = e ? strtoul(e, NULL, 10) : STORE_MAX;

	return n && n < STORE_MAX ? n : STORE_MAX;
}

static void store_add(const char *name, int fd)
{
	for (size_t i = 0; i < n_store; i++)
		if (same_file(store[i].fd, fd)) { /* systemd keeps one copy of a file */
			close(fd);
			return;
		}
	if (n_store == store_max()) { /* FileDescriptorStoreMax= reached: dropped */
		close(fd);
		return;
	}
	store[n_store].name = strdup(name);
	store[n_store++].fd = fd;
}

static void store_remove(const char *name)
{
	for (size_t i = 0; i < n_store;) {
		if (strcmp(store[i].name, name) == 0) {
			close(store[i].fd);
			free(store[i].name);
			store[i] = store[--n_store];
		} else {
			i++;
		}
	}
}

/* One datagram: assignments separated by newlines, maybe fds. */
static void notify_message(char *msg, int *fds, size_t n_fds)
{
	bool fdstore = false, remove = false;
	char name[256] = "stored";

	for (char *line = strtok(msg, "\n"); line; line = strtok(NULL, "\n")) {
		if (strcmp(line, "READY=1") == 0)
			event("ready", starts);
		else if (strcmp(line, "STOPPING=1") == 0)
			event("stopping", -1);
		else if (strcmp(line, "WATCHDOG=1") == 0)
			event("watchdog", ++watchdogs);
		else if (strcmp(line, "FDSTORE=1") == 0)
			fdstore = true;
		else if (strcmp(line, "FDSTOREREMOVE=1") == 0)
			remove = true;
		else if (strncmp(line, "FDNAME=", 7) == 0)
			snprintf(name, sizeof(name), "%s", line + 7);
		else if (strncmp(line, "STATUS=", 7) == 0)
			write_status(line + 7);
	}
	for (size_t i = 0; i < n_fds; i++) {
		if (fdstore)
			store_add(name, fds[i]);
		else
			close(fds[i]);
	}
	if (remove)
		store_remove(name);
	if (fdstore || remove)
		write_store();
}

static int notify_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;

	if (strlen(path) >= sizeof(sa.sun_path))
		exit(100);
	memcpy(sa.sun_path, path, strlen(path));
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		perror("notify socket");
		exit(1);
	}
	return fd;
}

static int listen_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(sa.sun_path))
		exit(100);
	memcpy(sa.sun_path, path, strlen(path));
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
		perror("listening socket");
		exit(1);
	}
	chmod(path, 0666);
	return fd;
}

/* The child: listening socket at 3, the store from 4, LISTEN_* set. */
static void exec_cprd(int lfd, const char *notify_path, char **argv)
{
	size_t len = strlen("cprd.socket") + 1;
	char *names, num[32];
	int high;

	for (size_t i = 0; i < n_store; i++)
		len += strlen(store[i].name) + 1;
	names = malloc(len);
	strcpy(names, "cprd.socket");
	for (size_t i = 0; i < n_store; i++) {
		strcat(names, ":");
		strcat(names, store[i].name);
	}
	/* out of the way first, then into place (dup2 clears close-on-exec) */
	high = (int)n_store + 16;
	if (dup2(lfd, high) < 0)
		_exit(126);
	for (size_t i = 0; i < n_store; i++)
		if (dup2(store[i].fd, high + 1 + (int)i) < 0)
			_exit(126);
	for (size_t i = 0; i <= n_store; i++)
		if (dup2(high + (int)i, 3 + (int)i) < 0)
			_exit(126);
	for (size_t i = 0; i <= n_store; i++)
		close(high + (int)i);
	snprintf(num, sizeof(num), "%zu", n_store + 1);
	setenv("LISTEN_FDS", num, 1);
	setenv("LISTEN_FDNAMES", names, 1);
	snprintf(num, sizeof(num), "%d", (int)getpid());
	setenv("LISTEN_PID", num, 1);
	setenv("NOTIFY_SOCKET", notify_path, 1);
	snprintf(num, sizeof(num), "%zu", store_max());
	setenv("FDSTORE", num, 1);
	execv(argv[0], argv);
	_exit(127);
}

static pid_t start(int lfd, const char *notify_path, char **argv)
{
	char path[512], tmp[520];
	pid_t pid;
	FILE *f;

	starts++;
	pid = fork();
	if (pid == 0)
		exec_cprd(lfd, notify_path, argv);
	snprintf(path, sizeof(path), "%s/pid", statedir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (f) {
		fprintf(f, "%d\n", (int)pid);
		fclose(f);
		rename(tmp, path);
	}
	return pid;
}

static void drain_notify(int nfd)
{
	char msg[MSG_MAX + 1];
	int fds[CPR_SCM_MAX_FDS];
	size_t n_fds;
	ssize_t n;

	while ((n = scm_recv(nfd, msg, MSG_MAX, fds, CPR_SCM_MAX_FDS, &n_fds, MSG_DONTWAIT)) >= 0) {
		msg[n] = 0;
		notify_message(msg, fds, n_fds);
	}
}

int main(int argc, char *argv[])
{
	char notify_path[512];
	struct pollfd p[2];
	sigset_t mask;
	bool stopping = false, stalled;
	int lfd, nfd, sfd;
	pid_t pid;

	if (argc < 4) {
		fprintf(stderr, "usage: %s STATEDIR SOCKET CPRD [ARG]...\n", argv[0]);
		return 100;
	}
	statedir = argv[1];
	snprintf(notify_path, sizeof(notify_path), "%s/notify", statedir);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	nfd = notify_socket(notify_path);
	lfd = listen_socket(argv[2]);
	if (getenv("HARNESS_JUNK")) {
		/* what a crash in the middle of parking leaves, and a stranger */
		store_add("cprd-b99-0", memfd_create("junk", MFD_CLOEXEC));
		store_add("cprd-b99-s", memfd_create("junk", MFD_CLOEXEC));
		store_add("not-cprd", memfd_create("junk", MFD_CLOEXEC));
		write_store();
	}
	pid = start(lfd, notify_path, argv + 3);
	stalled = getenv("HARNESS_STALL") != NULL;
	p[0] = (struct pollfd){ .fd = stalled ? -1 : nfd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	for (;;) {
		struct signalfd_siginfo si;
		int status;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return 111;
		if (!stalled)
			drain_notify(nfd);
		if (!(p[1].revents & POLLIN) || read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGUSR1) { /* the service manager reads again */
			stalled = false;
			p[0].fd = nfd;
			drain_notify(nfd);
			continue;
		}
		if (si.ssi_signo == SIGTERM) {
			stopping = true;
			kill(pid, SIGTERM);
			continue;
		}
		if (waitpid(pid, &status, WNOHANG) != pid)
			continue;
		drain_notify(nfd); /* what it sent before dying is kept */
		event("exit", status);
		if (stopping ||
		    (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 100)))
			return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
		pid = start(lfd, notify_path, argv + 3);
	}
}
