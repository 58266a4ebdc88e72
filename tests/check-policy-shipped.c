/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The shipped policies loaded for real: every rule of each (through the
 * engine in check-policy-apply.c), the calls cprd and a VMM really make,
 * and the exec helper the vmm tests run as the new image.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cpr/cpr.h>
#include <cpr/policy.h>

#include "check-policy.h"
#include "internal.h"
#include "scm.h"
#include "test-util.h"

extern char **environ;

START_TEST(test_cpr_policy_apply_cprd_rules)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_shipped("cprd.policy");

	check_rules(p, "cprd.policy");
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_apply_cprd_default_kill)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_shipped("cprd.policy");

	check_unnamed_calls(p, "cprd.policy");
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_apply_vmm_rules)
{
	static const char *const names[] = { "vmm-exec.policy", "vmm-transfer.policy" };
	int nfds = test_count_fds();

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct cpr_policy *p = policy_shipped(names[i]);

		check_rules(p, names[i]);
		cpr_policy_free(p);
	}
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Not in cprd's list: socketpair() never returns. */
static int child_cprd_socketpair(void *arg)
{
	int sv[2];

	socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
	return 0;
}

static int child_cprd_memory(void *arg)
{
	int mfd = memfd_create("cprd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *m;

	if (mfd < 0 || ftruncate(mfd, 4096) < 0)
		return 1;
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (m == MAP_FAILED)
		return 2;
	memcpy(m, "state", 5);
	if (munmap(m, 4096) < 0 || fcntl(mfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0)
		return 3;
	if (fcntl(mfd, F_SETFD, 0) < 0 || fcntl(mfd, F_SETFD, FD_CLOEXEC) < 0)
		return 4;
	if (close(mfd) < 0)
		return 5;
	return 0;
}

/* cprd checks the kind of every fd a client parks (cpr_fd_check_kind()). */
static int child_cprd_fd_kinds(void *arg)
{
	int ev = eventfd(0, EFD_CLOEXEC), mfd = memfd_create("k", MFD_CLOEXEC), sv[2];
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (ev < 0 || mfd < 0 || null < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return CHILD_SETUP_FAILED;
	if (cpr_policy_apply(arg) < 0)
		return CHILD_SETUP_FAILED;
	if (cpr_fd_check_kind(ev, CPR_FD_EVENTFD) < 0 || cpr_fd_check_kind(mfd, CPR_FD_MEMFD) < 0 ||
	    cpr_fd_check_kind(sv[0], CPR_FD_SOCKET) < 0 ||
	    cpr_fd_check_kind(ev, CPR_FD_GENERIC) < 0)
		return 1;
	if (cpr_fd_check_kind(mfd, CPR_FD_EVENTFD) != -EMEDIUMTYPE ||
	    cpr_fd_check_kind(ev, CPR_FD_MEMFD) != -EMEDIUMTYPE ||
	    cpr_fd_check_kind(null, CPR_FD_VFIO_CDEV) != -EMEDIUMTYPE)
		return 2;
	return 0;
}

/* PROT_EXEC is refused: this never returns. */
static int child_cprd_exec_map(void *arg)
{
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return 0;
}

static volatile sig_atomic_t aborted;

static void on_sigabrt(int sig)
{
	aborted = 1;
}

struct abort_case {
	const struct cpr_policy *policy;
	int sig;
};

/* abort()'s tgkill(SIGABRT) to itself is allowed; other signals are not. */
static int child_cprd_abort(void *arg)
{
	const struct abort_case *c = arg;

	if (signal(SIGABRT, on_sigabrt) == SIG_ERR || cpr_policy_apply(c->policy) < 0)
		return CHILD_SETUP_FAILED;
	/* Arguments as long: syscall(2) would leave the top half of an int undefined. */
	return syscall(SYS_tgkill, (long)getpid(), syscall(SYS_gettid), (long)c->sig) == 0 &&
			       aborted
		       ? 0
		       : 1;
}

START_TEST(test_cpr_policy_apply_cprd_real_calls)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_shipped("cprd.policy");
	int status;

	status = run_child(p, child_cprd_memory, NULL);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	status = run_child(NULL, child_cprd_fd_kinds, p);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "kinds: status %#x", status);
	status = run_child(p, child_cprd_exec_map, NULL);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS, "status %#x", status);
	status = run_child(NULL, child_cprd_abort, &(struct abort_case){ p, SIGABRT });
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	status = run_child(NULL, child_cprd_abort, &(struct abort_case){ p, SIGUSR1 });
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS, "status %#x", status);
	/* socketpair() is not in cprd's list. */
	status = run_child(p, child_cprd_socketpair, NULL);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS, "status %#x", status);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static void *thread_value(void *arg)
{
	return arg;
}

/* Threads work; fork(), vfork(), posix_spawn() and clone3 fail as stated. */
static int child_vmm_processes(void *arg)
{
	char *const argv[] = { (char *)"true", NULL };
	pthread_t t;
	void *ret = NULL;
	pid_t pid;
	int r;

	if (pthread_create(&t, NULL, thread_value, (void *)0x5a) != 0)
		return 1;
	if (pthread_join(t, &ret) != 0 || ret != (void *)0x5a)
		return 2;
	pid = fork();
	if (pid == 0)
		child_exit(0);
	if (pid != -1 || errno != EPERM)
		return 3;
	r = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
	if (r != EPERM)
		return 4;
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return 5;
	if (syscall(SYS_vfork) != -1 || errno != EPERM)
		return 6;
	if (syscall(SYS_fork) != -1 || errno != EPERM)
		return 7;
	return 0;
}

START_TEST(test_cpr_policy_apply_vmm_processes)
{
	static const char *const names[] = { "vmm-exec.policy", "vmm-transfer.policy" };
	int nfds = test_count_fds();

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct cpr_policy *p = policy_shipped(names[i]);
		int status = run_child(p, child_vmm_processes, NULL);

		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %#x",
			      names[i], status);
		cpr_policy_free(p);
	}
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The new image: the filter came along through execve(). */
int policy_exec_helper(const char *mode)
{
	pid_t pid;

	if (strcmp(mode, "cpr") == 0)
		child_exit(policy_exec_helper_cpr());
	if (strcmp(mode, "vmm") != 0)
		child_exit(1);
	pid = fork();
	if (pid == 0)
		child_exit(0);
	if (pid != -1 || errno != EPERM)
		child_exit(2);
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		child_exit(3);
	/* No leak check at exit: LeakSanitizer would need clone(). */
	child_exit(HELPER_OK);
	return HELPER_OK;
}

static int child_exec_helper(void *arg)
{
	char *const argv[] = { (char *)"check-policy", NULL };
	char *const envp[] = { (char *)HELPER_ENV "=vmm", NULL };

	execve("/proc/self/exe", argv, envp);
	return 1;
}

START_TEST(test_cpr_policy_apply_vmm_exec_execve)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_shipped("vmm-exec.policy");
	int status = run_child(p, child_exec_helper, NULL);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == HELPER_OK, "status %#x", status);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* execve and execveat fail with EPERM and the process goes on. */
static int child_transfer_exec(void *arg)
{
	char *const argv[] = { (char *)"check-policy", NULL };
	char *const envp[] = { (char *)HELPER_ENV "=vmm", NULL };
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 1;
	if (execve("/proc/self/exe", argv, envp) != -1 || errno != EPERM)
		return 2;
	if (syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH) != -1 || errno != EPERM)
		return 3;
	if (fexecve(fd, argv, envp) != -1 || errno != EPERM)
		return 4;
	close(fd);
	return child_vmm_processes(arg) == 0 ? 0 : 5;
}

START_TEST(test_cpr_policy_apply_vmm_transfer_execve)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_shipped("vmm-transfer.policy");
	int status = run_child(p, child_transfer_exec, NULL);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* ------------------------------------------------------------ cprd's daily work */

struct loop {
	const struct cpr_policy *policy;
	int listener, client, ep, sig;
};

static int loop_setup(struct loop *l)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	socklen_t alen;
	sigset_t mask;

	/* Abstract address, unique per process. */
	snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "cpr-policy-test-%d", getpid());
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a.sun_path + 1));
	l->listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	l->client = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -1;
	l->sig = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (l->listener < 0 || l->client < 0 || l->ep < 0 || l->sig < 0)
		return -1;
	if (bind(l->listener, (struct sockaddr *)&a, alen) < 0 || listen(l->listener, 4) < 0)
		return -1;
	if (connect(l->client, (struct sockaddr *)&a, alen) < 0)
		return -1;
	return epoll_ctl(l->ep, EPOLL_CTL_ADD, l->listener,
			 &(struct epoll_event){ .events = EPOLLIN, .data.fd = l->listener });
}

/* Send "req" with one fd; receive it with MSG_CMSG_CLOEXEC. */
static int loop_request(int from, int to, int fd, int *ret_fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	char data[8] = "req";
	struct iovec iov = { data, 4 };
	struct msghdr m = { .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(from, &m, MSG_NOSIGNAL) != 4)
		return -1;
	memset(&u, 0, sizeof(u));
	m.msg_controllen = sizeof(u.buf);
	if (recvmsg(to, &m, MSG_CMSG_CLOEXEC) != 4 || strcmp(data, "req") != 0)
		return -1;
	c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
	return fcntl(*ret_fd, F_GETFD) == FD_CLOEXEC ? 0 : -1;
}

static int loop_timers(void)
{
	struct itimerspec its = { .it_value = { .tv_sec = 60 } };
	struct timespec now;
	uint64_t seed;
	int tfd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);

	if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0 || timerfd_gettime(tfd, &its) < 0)
		return -1;
	if (pfd < 0 || clock_gettime(CLOCK_BOOTTIME, &now) < 0)
		return -1;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		return -1;
	close(pfd);
	return close(tfd);
}

static int child_cprd_loop(void *arg)
{
	struct loop l = { .policy = arg };
	struct epoll_event ev;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int conn, held = -1, out;

	if (loop_setup(&l) < 0)
		return CHILD_SETUP_FAILED;
	if (cpr_policy_apply(l.policy) < 0)
		return CHILD_SETUP_FAILED;
	if (epoll_wait(l.ep, &ev, 1, 1000) != 1 || ev.data.fd != l.listener)
		return 1;
	conn = accept4(l.listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (conn < 0)
		return 2;
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || cred.pid != getpid())
		return 3;
	if (loop_request(l.client, conn, l.sig, &held) < 0)
		return 4;
	/* Hand the held fd back out as a duplicate, as a claim does. */
	out = fcntl(held, F_DUPFD_CLOEXEC, 3);
	if (out < 0 || loop_request(conn, l.client, out, &out) < 0)
		return 5;
	if (loop_timers() < 0)
		return 6;
	if (shutdown(conn, SHUT_RDWR) < 0 || close(conn) < 0 || close(held) < 0)
		return 7;
	return 0;
}

/*
 * Notifications as cprd/notify.c sends them, under cprd's filter: one
 * datagram socket connected to $NOTIFY_SOCKET (made by an upgrade's new
 * image under the old image's filter), non-blocking sends, an fd by
 * SCM_RIGHTS for the fd store.
 */
static int child_cprd_notify(void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fds[1] = { STDERR_FILENO }, fd;
	const char *e = getenv("NOTIFY_SOCKET");

	if (cpr_policy_apply(arg) < 0 || !e)
		return CHILD_SETUP_FAILED;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return 1;
	if (send(fd, "READY=1", 7, MSG_DONTWAIT | MSG_NOSIGNAL) != 7)
		return 2;
	if (scm_send(fd, "FDSTORE=1\nFDNAME=held", 21, fds, 1) != 21)
		return 3;
	if (send(fd, "STATUS=serving\nWATCHDOG=1", 25, MSG_DONTWAIT | MSG_NOSIGNAL) != 25)
		return 4;
	return close(fd) == 0 ? 0 : 5;
}

static void notify_expect(int sock, const char *text, bool with_fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	char data[128] = "";
	struct iovec iov = { data, sizeof(data) - 1 };
	struct msghdr m = { .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;

	ck_assert_int_eq(recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT), strlen(text));
	ck_assert_str_eq(data, text);
	c = CMSG_FIRSTHDR(&m);
	ck_assert_int_eq(c != NULL, with_fd);
	if (c) {
		int fd;

		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		close(fd);
	}
}

START_TEST(test_cpr_policy_apply_cprd_real_work)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_shipped("cprd.policy");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int sock, status;

	status = run_child(NULL, child_cprd_loop, p);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "loop: status %#x", status);

	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(sock, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "/tmp/cpr-policy-notify-%d", getpid());
	unlink(a.sun_path);
	ck_assert_int_eq(bind(sock, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", a.sun_path, 1), 0);
	status = run_child(NULL, child_cprd_notify, p);
	unsetenv("NOTIFY_SOCKET");
	unlink(a.sun_path);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "notify: status %#x", status);
	notify_expect(sock, "READY=1", false);
	notify_expect(sock, "FDSTORE=1\nFDNAME=held", true);
	notify_expect(sock, "STATUS=serving\nWATCHDOG=1", false);
	close(sock);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

TCase *policy_apply_shipped_tcase(void)
{
	TCase *tc = tcase_create("shipped");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_cpr_policy_apply_cprd_rules);
	tcase_add_test(tc, test_cpr_policy_apply_cprd_default_kill);
	tcase_add_test(tc, test_cpr_policy_apply_cprd_real_calls);
	tcase_add_test(tc, test_cpr_policy_apply_cprd_real_work);
	tcase_add_test(tc, test_cpr_policy_apply_vmm_rules);
	tcase_add_test(tc, test_cpr_policy_apply_vmm_processes);
	tcase_add_test(tc, test_cpr_policy_apply_vmm_exec_execve);
	tcase_add_test(tc, test_cpr_policy_apply_vmm_transfer_execve);
	return tc;
}
