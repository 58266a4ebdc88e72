/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The exec pre-flight runs its target confined: a target that does not
 * know the probe (a build older than it) starts for real, and must not
 * touch anything outside its own process while the VMM still runs the
 * guest.  The target here is this program run as "squat SOCKET FILE": it
 * ignores the probe and does what an old VMM does at start (take over the
 * control socket, write a file, signal its parent, make it its tracer), and
 * reports by its exit status whether every one of those was refused with
 * EPERM while signalling itself was not.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "test-util.h"

#define SQUAT_ALL_REFUSED 3 /* exit status: every effect failed with EPERM */
#define SQUAT_DONE 10	    /* + the index of the first effect that was not refused */

static int sock_addr(const char *path, struct sockaddr_un *sa)
{
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/* In the probe's child: returns -errno of each effect, 0 if it happened. */
static int squat_effect(int i, const char *sock, const char *file)
{
	struct sockaddr_un sa;
	char other[PATH_MAX];
	int fd, r;

	snprintf(other, sizeof(other), "%s.moved", sock);
	if (sock_addr(sock, &sa) < 0)
		return -ENAMETOOLONG;
	switch (i) {
	case 0: /* an old VMM removes a stale control socket, then binds */
		return unlink(sock) < 0 ? -errno : 0;
	case 1:
	case 2:
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -EBADF; /* not what is tested: count it as done */
		r = i == 1 ? bind(fd, (struct sockaddr *)&sa, sizeof(sa))
			   : connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		r = r < 0 ? -errno : 0;
		close(fd);
		return r;
	case 3:
		return rename(sock, other) < 0 ? -errno : 0;
	case 4:
		fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		close(fd);
		return 0;
	case 5:
		return kill(getppid(), 0) < 0 ? -errno : 0;
	case 6: /* make the VMM its tracer */
		return ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 ? -errno : 0;
	default:
		return 1;
	}
}

/* The seccomp mode of this process, from its status (2: a filter). */
static int seccomp_mode(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	int mode = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	fclose(f);
	return mode;
}

static int squat(const char *sock, const char *file)
{
	if (seccomp_mode() != 2)
		return SQUAT_DONE + 100;
	/* what stays inside: signalling itself (abort() does) */
	if (kill(getpid(), 0) < 0 || syscall(SYS_tgkill, getpid(), getpid(), 0) < 0)
		return SQUAT_DONE + 101;
	for (int i = 0;; i++) {
		int r = squat_effect(i, sock, file);

		if (r == 1)
			return SQUAT_ALL_REFUSED;
		if (r != -EPERM)
			return SQUAT_DONE + i;
	}
}

static int listen_at(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(sock_addr(path, &sa), 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	return fd;
}

/* The control socket at @path is still @lfd's: a client reaches it. */
static void assert_still_listening(const char *path, int lfd, const struct stat *was)
{
	struct sockaddr_un sa;
	struct stat st;
	int c, a;

	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_ino, was->st_ino);
	ck_assert_int_eq(sock_addr(path, &sa), 0);
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(a, 0);
	close(a);
	close(c);
}

static const char *self_path(void)
{
	static char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);

	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	return buf;
}

static int have_seccomp_filter(void)
{
	/* EFAULT: filter mode exists and rejected the NULL program */
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL) < 0 && errno == EFAULT;
}

/*
 * A target that does not answer the probe tries to take the VMM's control
 * socket, write a file and signal the VMM: each is refused (EPERM), it
 * exits, the probe refuses the upgrade, and the socket still serves.
 */
START_TEST(test_cpr_exec_probe_confined)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	char dir[] = "/tmp/cpr-confine.XXXXXX", sock[PATH_MAX], file[PATH_MAX];
	char *av[] = { (char *)"squat", sock, file, NULL };
	int nfds = test_count_fds(), lfd, r;
	struct stat was;

	if (!have_seccomp_filter())
		test_skip_case("the kernel has no seccomp filters (CONFIG_SECCOMP_FILTER)");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/vmm.sock", dir);
	snprintf(file, sizeof(file), "%s/written", dir);
	lfd = listen_at(sock);
	ck_assert_int_eq(stat(sock, &was), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	r = cpr_exec_probe(ctx, self_path(), av, NULL, &err);
	ck_assert_int_eq(r, -ENOEXEC);
	ck_assert_msg(strstr(err.message, "exited with status 3 before it answered"), "%s",
		      err.message);
	assert_still_listening(sock, lfd, &was);
	ck_assert_int_eq(access(file, F_OK), -1);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* the probe child reaped */
	cpr_ctx_free(ctx);
	close(lfd);
	unlink(sock);
	ck_assert_int_eq(rmdir(dir), 0);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *confine_suite(void)
{
	Suite *s = suite_create("probe-confine");
	TCase *tc = tcase_create("probe-confine");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_cpr_exec_probe_confined);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[0], "squat") == 0)
		return squat(argv[1], argv[2]);
	return test_run(confine_suite());
}
