/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcpr's exec path under the VMM sandboxes: cpr_exec() succeeds under
 * vmm-exec.policy (the new image adopts the RAM block and the fd, and still
 * runs under the filter), and fails cleanly under vmm-transfer.policy with
 * every fd, flag, mapping and the environment as before.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>
#include <cpr/policy.h>

#include "check-policy.h"
#include "internal.h"
#include "test-util.h"

#define RB_SIZE (4u << 20)
#define RB_NAME "pc.ram"

struct world {
	struct cpr_ctx *ctx;
	struct cpr_ramblock *rb;
	int ev;
};

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i += 4096)
		p[i] = (uint8_t)(seed + i / 4096);
}

static bool filled(const uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i += 4096)
		if (p[i] != (uint8_t)(seed + i / 4096))
			return false;
	return true;
}

static int world_build(struct world *w)
{
	*w = (struct world){ .ev = eventfd(7, EFD_CLOEXEC) };
	if (w->ev < 0 || cpr_ctx_new(&w->ctx) < 0)
		return -1;
	if (cpr_ramblock_new(w->ctx, RB_NAME, RB_SIZE, RB_SIZE, 0, 0, &w->rb, NULL) < 0)
		return -1;
	fill(cpr_ramblock_host(w->rb), RB_SIZE, 0x42);
	return cpr_fd_save(w->ctx, "ev", 0, w->ev, CPR_FD_EVENTFD, NULL);
}

static bool is_cloexec(int fd)
{
	return fcntl(fd, F_GETFD) == FD_CLOEXEC;
}

/* Under vmm-transfer.policy: refused with EPERM, and nothing changed. */
static int child_exec_refused(void *arg)
{
	char *const argv[] = { (char *)"check-policy", NULL };
	char *const envp[] = { (char *)HELPER_ENV "=cpr", NULL };
	struct cpr_error err = { 0 };
	struct cpr_state *st = NULL;
	struct world w;
	int nfds, r;

	if (world_build(&w) < 0 || cpr_policy_apply(arg) < 0)
		return 100;
	nfds = test_count_fds();
	r = cpr_exec(w.ctx, "/proc/self/exe", argv, envp, &err);
	if (r != -EPERM || err.code != -EPERM)
		return 1;
	if (!is_cloexec(w.ev) || !is_cloexec(cpr_ramblock_fd(w.rb)))
		return 2;
	if (test_count_fds() != nfds || getenv(CPR_EXEC_ENV))
		return 3;
	if (!filled(cpr_ramblock_host(w.rb), RB_SIZE, 0x42))
		return 4;
	/* The VMM goes on: it can still build its state and run the guest. */
	fill(cpr_ramblock_host(w.rb), RB_SIZE, 0x43);
	if (cpr_ctx_build_state(w.ctx, &st) < 0 || cpr_state_ramblock_count(st) != 1 ||
	    cpr_state_fd_count(st) < 1)
		return 5;
	cpr_state_free(st);
	/* Asking again gives the same clean refusal. */
	if (cpr_exec(w.ctx, "/proc/self/exe", argv, envp, NULL) != -EPERM || !is_cloexec(w.ev))
		return 6;
	cpr_ramblock_free(w.rb);
	cpr_ctx_free(w.ctx);
	close(w.ev);
	return 0;
}

/* Under vmm-exec.policy: returns only on failure. */
static int child_exec_allowed(void *arg)
{
	char *const argv[] = { (char *)"check-policy", NULL };
	char *const envp[] = { (char *)HELPER_ENV "=cpr", NULL };
	struct cpr_error err = { 0 };
	struct world w;

	if (world_build(&w) < 0 || cpr_policy_apply(arg) < 0)
		return 100;
	cpr_exec(w.ctx, "/proc/self/exe", argv, envp, &err);
	fprintf(stderr, "cpr_exec: %s\n", err.message);
	return 1;
}

static int run(int (*fn)(void *), struct cpr_policy *p)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		syscall(SYS_exit_group, fn(p));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

START_TEST(test_cpr_exec_policy_transfer_refused)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_shipped("vmm-transfer.policy");
	int status = run(child_exec_refused, p);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_exec_policy_exec_allowed)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_shipped("vmm-exec.policy");
	int status = run(child_exec_allowed, p);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == HELPER_OK, "status %#x", status);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/*
 * "cprctl daemon upgrade" under cprd.policy: the old image forks and
 * executes the new one, which starts under the inherited filter, receives
 * the state by cpr-transfer over a socket pair and acks it.
 */
static int child_cprd_upgrade(void *arg)
{
	char num[16];
	char *const argv[] = { (char *)"policy-exec-helper", num, NULL };
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	int ev = eventfd(7, EFD_CLOEXEC), sv[2], status;
	const char *helper = test_build_path("tests/policy-exec-helper");
	pid_t pid;

	if (ev < 0 || cpr_ctx_new(&ctx) < 0 ||
	    cpr_fd_save(ctx, "ev", 0, ev, CPR_FD_EVENTFD, NULL) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 100;
	snprintf(num, sizeof(num), "%d", sv[1]);
	if (cpr_policy_apply(arg) < 0)
		return 101;
	pid = fork();
	if (pid == 0) {
		fcntl(sv[1], F_SETFD, 0);
		execve(helper, argv, NULL);
		_exit(102);
	}
	close(sv[1]);
	if (pid < 0)
		return 103;
	if (cpr_transfer_send(ctx, sv[0], &err) < 0 ||
	    cpr_transfer_wait_ack(ctx, sv[0], 30000, &err) < 0)
		fprintf(stderr, "upgrade: %s\n", err.message);
	if (waitpid(pid, &status, 0) != pid)
		return 104;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 105;
}

START_TEST(test_cpr_exec_policy_cprd_upgrade)
{
	int nfds = test_count_fds();
	struct cpr_policy *p;
	int status;

	if (UNDER_ASAN)
		test_skip_case("the new image of a sanitizer build cannot start under cprd.policy "
			       "(the runtime's start-up needs system calls it forbids)");
	p = policy_shipped("cprd.policy");
	status = run(child_cprd_upgrade, p);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == HELPER_OK, "status %#x", status);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The new image: adopt, check, and prove the filter came along. */
int policy_exec_helper_cpr(void)
{
	struct cpr_error err = { 0 };
	struct cpr_ramblock *rb;
	struct cpr_ctx *ctx;
	uint64_t v = 0;
	int fd, r;

	if (cpr_ctx_new(&ctx) < 0)
		return 10;
	r = cpr_exec_incoming(ctx, &err);
	if (r != 1) {
		fprintf(stderr, "cpr_exec_incoming: %d %s\n", r, err.message);
		return 11;
	}
	if (cpr_ramblock_new(ctx, RB_NAME, RB_SIZE, RB_SIZE, 0, 0, &rb, NULL) < 0 ||
	    !cpr_ramblock_adopted(rb) || !filled(cpr_ramblock_host(rb), RB_SIZE, 0x42))
		return 12;
	if (cpr_fd_claim(ctx, "ev", 0, CPR_FD_EVENTFD, &fd, NULL) < 0 || read(fd, &v, 8) != 8 ||
	    v != 7)
		return 13;
	if (!is_cloexec(fd) || getenv(CPR_EXEC_ENV))
		return 14;
	if (fork() != -1 || errno != EPERM)
		return 15;
	return HELPER_OK;
}

TCase *policy_exec_tcase(void)
{
	TCase *tc = tcase_create("exec");

	tcase_add_test(tc, test_cpr_exec_policy_transfer_refused);
	tcase_add_test(tc, test_cpr_exec_policy_exec_allowed);
	tcase_add_test(tc, test_cpr_exec_policy_cprd_upgrade);
	return tc;
}
