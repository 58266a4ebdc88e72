/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Exec rollback (cpr_exec(3), ROLLBACK), with real execve() and memfds: a
 * new image that refuses the state, cannot parse the token, exits at once,
 * crashes in main or gives the state back; each time the previous binary
 * runs again and re-adopts the same memfd (tests/helper-rollback.c checks
 * it), with the teardown helper and without.  And the helper's clone()
 * refused by a seccomp filter: the exec goes on without it.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "test-util.h"

#define ROLLED_BACK_OK 42
#define NO_LOOP 43

struct outcome {
	pid_t first;	  /* the forked child: the old image, then the new */
	int first_status; /* its exit code, 128 + signal */
	pid_t last;	  /* the process that exited @last_status, if another */
	int last_status;  /* -1 = no other process */
	int n_other;	  /* processes other than the first */
};

static int status_code(int st)
{
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* In a child with only stdio open: "helper-rollback old @mode"; then every
 * process of it is reaped here (a subreaper), the helper's rollback too. */
static struct outcome run_old(const char *mode, bool helper, bool old_refuses)
{
	struct outcome o = { .last_status = -1 };
	int st;
	pid_t pid;

	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	o.first = fork();
	ck_assert_int_ge(o.first, 0);
	if (o.first == 0) {
		struct rlimit no_core = { 0, 0 };
		char *av[] = { (char *)"helper-rollback", (char *)"old", (char *)mode, NULL };

		setrlimit(RLIMIT_CORE, &no_core);
		if (!helper)
			setenv(CPR_EXEC_HELPER_ENV, "0", 1);
		if (old_refuses)
			setenv("CPR_TEST_OLD_REFUSES", "1", 1);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execv(test_build_path("tests/helper-rollback"), av);
		_exit(127);
	}
	while ((pid = waitpid(-1, &st, 0)) > 0) {
		if (pid == o.first) {
			o.first_status = status_code(st);
			continue;
		}
		o.n_other++;
		o.last = pid;
		o.last_status = status_code(st);
	}
	ck_assert_int_eq(errno, ECHILD);
	return o;
}

/* Rolled back in the new image itself: the same PID runs the old binary. */
static void same_pid(const char *mode, bool helper)
{
	int nfds = test_count_fds();
	struct outcome o = run_old(mode, helper, false);

	ck_assert_int_eq(o.first_status, ROLLED_BACK_OK);
	ck_assert_int_eq(o.n_other, 0);
	test_assert_no_fd_leak(nfds);
}

/* Rolled back by the teardown helper: the new image died, the old binary
 * runs in the helper's PID. */
static void helper_pid(const char *mode, int new_status)
{
	int nfds = test_count_fds();
	struct outcome o = run_old(mode, true, false);

	ck_assert_int_eq(o.first_status, new_status);
	ck_assert_int_eq(o.n_other, 1);
	ck_assert_int_ne(o.last, o.first);
	ck_assert_int_eq(o.last_status, ROLLED_BACK_OK);
	test_assert_no_fd_leak(nfds);
}

START_TEST(test_rollback_refused)
{
	same_pid("refuse", true);
}
END_TEST

START_TEST(test_rollback_refused_no_helper)
{
	same_pid("refuse", false);
}
END_TEST

START_TEST(test_rollback_give_up)
{
	same_pid("giveup", true);
}
END_TEST

START_TEST(test_rollback_give_up_no_helper)
{
	same_pid("giveup", false);
}
END_TEST

START_TEST(test_rollback_bad_token)
{
	helper_pid("badtoken", 1);
}
END_TEST

START_TEST(test_rollback_exit)
{
	helper_pid("exit", 1);
}
END_TEST

START_TEST(test_rollback_crash)
{
	helper_pid("crash", 128 + SIGSEGV);
}
END_TEST

/* Without the helper a new image that dies before libcpr takes the guest
 * with it, as cpr_exec(3) says: nothing runs again. */
START_TEST(test_rollback_exit_no_helper)
{
	int nfds = test_count_fds();
	struct outcome o = run_old("exit", false, false);

	ck_assert_int_eq(o.first_status, 1);
	ck_assert_int_eq(o.n_other, 0);
	o = run_old("crash", false, false);
	ck_assert_int_eq(o.first_status, 128 + SIGSEGV);
	ck_assert_int_eq(o.n_other, 0);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The rolled-back image refuses too: it has no way back, so it fails
 * instead of rolling back again, in process and from the helper. */
START_TEST(test_rollback_no_loop)
{
	int nfds = test_count_fds();
	struct outcome o = run_old("refuse", true, true);

	ck_assert_int_eq(o.first_status, NO_LOOP);
	ck_assert_int_eq(o.n_other, 0);
	o = run_old("refuse", false, true);
	ck_assert_int_eq(o.first_status, NO_LOOP);
	ck_assert_int_eq(o.n_other, 0);
	o = run_old("crash", true, true);
	ck_assert_int_eq(o.first_status, 128 + SIGSEGV);
	ck_assert_int_eq(o.n_other, 1);
	ck_assert_int_eq(o.last_status, NO_LOOP);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* ---- the helper's clone() refused ---- */

/* clone() with CLONE_VM fails with EPERM, as in a sandbox that forbids it. */
static void refuse_clone_vm(void)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
					  SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_VM, CLONE_VM)),
			 0);
	ck_assert_int_eq(seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), 0);
	ck_assert_int_eq(seccomp_load(f), 0);
	seccomp_release(f);
}

/* The old image's log (its stderr) names why; the new image adopts. */
START_TEST(test_helper_clone_refused)
{
	int nfds = test_count_fds(), p[2], st;
	char buf[8192] = "";
	ssize_t n, len = 0;
	pid_t pid;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *av[] = { (char *)"helper-rollback", (char *)"old", (char *)"adopt", NULL };

		ck_assert_int_eq(dup2(p[1], 2), 2);
		/* LeakSanitizer stops the world with CLONE_VM too. */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
		refuse_clone_vm();
		execv(test_build_path("tests/helper-rollback"), av);
		_exit(127);
	}
	close(p[1]);
	while ((n = read(p[0], buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
		len += n;
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(status_code(st) == 0, "exit %d: %s", status_code(st), buf);
	ck_assert_msg(strstr(buf, "clone(CLONE_VM) refused: Operation not permitted"),
		      "no log line: %s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "adopted without a teardown helper"));
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *rollback_suite(void)
{
	Suite *s = suite_create("rollback");
	TCase *tc = tcase_create("rollback");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rollback_refused);
	tcase_add_test(tc, test_rollback_refused_no_helper);
	tcase_add_test(tc, test_rollback_give_up);
	tcase_add_test(tc, test_rollback_give_up_no_helper);
	tcase_add_test(tc, test_rollback_bad_token);
	tcase_add_test(tc, test_rollback_exit);
	tcase_add_test(tc, test_rollback_crash);
	tcase_add_test(tc, test_rollback_exit_no_helper);
	tcase_add_test(tc, test_rollback_no_loop);
	tcase_add_test(tc, test_helper_clone_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(rollback_suite());
}
