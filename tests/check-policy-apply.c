/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Policies loaded for real, each in a forked child.  For every rule of a
 * policy the child makes the system call with arguments chosen to
 * satisfy the rule, and again to violate each of its conditions; the
 * outcome (return, errno, or death by SIGSYS) must be what the policy's
 * documented semantics say, computed here independently of libseccomp.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/policy.h>

#include "check-policy.h"
#include "internal.h"
#include "policy-internal.h"
#include "test-util.h"

#define JUNK UINT64_C(0xffffffffffffffff) /* invalid for nearly every argument */
#define SYSCALL_NR_MAX 1024

/* ------------------------------------------------------------ children */

/*
 * End a child without any teardown: AddressSanitizer's _exit() interceptor
 * makes system calls (sigaltstack, leak checks) a strict filter would kill.
 * Deliberately not noreturn, not even by inference (no endless loop): ASan
 * precedes every call to a noreturn function with __asan_handle_no_return(),
 * which calls sigaltstack().
 */
void child_exit(int code)
{
	syscall(SYS_exit_group, code);
}

/* Fork; the child applies @p, runs @fn and exits with its result. */
int run_child(const struct cpr_policy *p, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };

		/* A SIGSYS death should not write a core file. */
		if (setrlimit(RLIMIT_CORE, &no_core) < 0)
			_exit(CHILD_SETUP_FAILED);
		alarm(10);
		if (p && cpr_policy_apply(p) < 0)
			child_exit(CHILD_SETUP_FAILED);
		child_exit(fn(arg));
		/* The policy refuses exit_group: the alarm ends the child. */
		for (;;)
			;
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

struct call {
	long nr;
	uint64_t a[POLICY_ARGS];
};

/*
 * Calls that send signals are never made with made-up arguments: a pid of
 * -1 and a valid signal number would signal every process the test may
 * signal, far outside the child.  They are tested with real arguments.
 */
static bool sends_signal(long nr)
{
	return nr == SYS_kill || nr == SYS_tkill || nr == SYS_tgkill || nr == SYS_rt_sigqueueinfo ||
	       nr == SYS_rt_tgsigqueueinfo || nr == SYS_pidfd_send_signal;
}

/* Only syscall() and exit_group run under the filter: nothing else to allow. */
static int child_call(void *arg)
{
	const struct call *c = arg;
	long r;

	if (sends_signal(c->nr)) /* second line of defence, see sends_signal() */
		return CHILD_SETUP_FAILED;
	r = syscall(c->nr, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4], c->a[5]);

	return r < 0 ? (errno < CHILD_SETUP_FAILED ? errno : CHILD_SETUP_FAILED - 1) : 0;
}

/* ------------------------------------------------------------ semantics */

static bool cond_holds(const struct policy_cond *c, const uint64_t *a)
{
	uint64_t v = a[c->arg];

	switch (c->op) {
	case POLICY_OP_NE:
		return v != c->value;
	case POLICY_OP_LT:
		return v < c->value;
	case POLICY_OP_LE:
		return v <= c->value;
	case POLICY_OP_EQ:
		return v == c->value;
	case POLICY_OP_GE:
		return v >= c->value;
	case POLICY_OP_GT:
		return v > c->value;
	case POLICY_OP_MASKED_EQ:
		return (v & c->mask) == c->value;
	}
	return false;
}

static bool rule_matches(const struct policy_rule *r, long nr, const uint64_t *a)
{
	if (r->nr != nr)
		return false;
	for (unsigned i = 0; i < r->n_conds; i++)
		if (!cond_holds(&r->conds[i], a))
			return false;
	return true;
}

/* What cpr-policy(5) says happens; overlapping rules agree on the action. */
static uint32_t expected_action(const struct cpr_policy *p, long nr, const uint64_t *a)
{
	const struct policy_rule *r, *match = NULL;

	for (size_t i = 0; (r = policy_rule_get(p, i)); i++)
		if (rule_matches(r, nr, a)) {
			ck_assert_msg(!match || match->action == r->action,
				      "lines %u and %u both match %ld with different actions",
				      match ? match->line : 0, r->line, nr);
			match = r;
		}
	return match ? match->action : cpr_policy_default_action(p);
}

static void assert_outcome(uint32_t action, int status, const char *what)
{
	char buf[32];

	policy_action_format(action, buf, sizeof(buf));
	ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_SETUP_FAILED,
		      "%s: child setup failed", what);
	if (action == SCMP_ACT_ALLOW || action == SCMP_ACT_LOG) {
		ck_assert_msg(WIFEXITED(status), "%s: expected %s, status %#x", what, buf, status);
	} else if ((action & 0xffff0000u) == SCMP_ACT_ERRNO(0)) {
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == (int)(action & 0xffffu),
			      "%s: expected %s, status %#x", what, buf, status);
	} else {
		/* kill, kill-thread (the only thread), trap (SIGSYS not handled) */
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
			      "%s: expected %s (SIGSYS), status %#x", what, buf, status);
	}
}

static void check_call(const struct cpr_policy *p, const struct call *c, const char *what)
{
	uint32_t action = expected_action(p, c->nr, c->a);

	assert_outcome(action, run_child(p, child_call, (void *)c), what);
}

/* Arguments that satisfy @cond, starting from @v. */
static uint64_t satisfy(const struct policy_cond *c, uint64_t v)
{
	switch (c->op) {
	case POLICY_OP_NE:
		return v != c->value ? v : v ^ 1;
	case POLICY_OP_LT:
	case POLICY_OP_LE:
		return c->value - (c->op == POLICY_OP_LT);
	case POLICY_OP_EQ:
		return c->value;
	case POLICY_OP_GE:
	case POLICY_OP_GT:
		return c->value + (c->op == POLICY_OP_GT);
	case POLICY_OP_MASKED_EQ:
		return (v & ~c->mask) | c->value;
	}
	return v;
}

/* Arguments that violate @cond (never called for impossible ones). */
static uint64_t violate(const struct policy_cond *c, uint64_t v)
{
	switch (c->op) {
	case POLICY_OP_NE:
		return c->value;
	case POLICY_OP_LT:
		return c->value;
	case POLICY_OP_LE:
		return c->value + 1;
	case POLICY_OP_EQ:
		return c->value ^ 1;
	case POLICY_OP_GE:
		return c->value - 1;
	case POLICY_OP_GT:
		return c->value;
	case POLICY_OP_MASKED_EQ:
		return (v & ~c->mask) | (c->value ^ (c->mask & -c->mask));
	}
	return v;
}

/* Never called with real effect: would end or hang the child. */
static bool call_skipped(long nr)
{
	return nr == SYS_rt_sigreturn || nr == SYS_pause || nr == SYS_vhangup || nr == SYS_sync ||
	       sends_signal(nr);
}

/* Each rule satisfied, then each of its conditions violated in turn. */
void check_rules(const struct cpr_policy *p, const char *name)
{
	const struct policy_rule *r;

	for (size_t i = 0; (r = policy_rule_get(p, i)); i++) {
		struct call c = { .nr = r->nr };
		char what[128];

		if (r->nr < 0 || call_skipped(r->nr))
			continue;
		for (unsigned k = 0; k < POLICY_ARGS; k++)
			c.a[k] = JUNK;
		for (unsigned k = 0; k < r->n_conds; k++)
			c.a[r->conds[k].arg] = satisfy(&r->conds[k], JUNK);
		ck_assert(rule_matches(r, c.nr, c.a));
		snprintf(what, sizeof(what), "%s:%u: %s", name, r->line, r->name);
		check_call(p, &c, what);
		for (unsigned k = 0; k < r->n_conds; k++) {
			struct call v = c;

			v.a[r->conds[k].arg] = violate(&r->conds[k], c.a[r->conds[k].arg]);
			ck_assert(!rule_matches(r, v.nr, v.a));
			snprintf(what, sizeof(what), "%s:%u: %s, arg%u violated", name, r->line,
				 r->name, r->conds[k].arg);
			check_call(p, &v, what);
		}
	}
}

static bool has_rule(const struct cpr_policy *p, long nr)
{
	const struct policy_rule *r;

	for (size_t i = 0; (r = policy_rule_get(p, i)); i++)
		if (r->nr == nr)
			return true;
	return false;
}

/* Every native system call the policy does not name gets the default. */
void check_unnamed_calls(const struct cpr_policy *p, const char *name)
{
	unsigned n = 0;

	for (long nr = 0; nr < SYSCALL_NR_MAX; nr++) {
		char *sys = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, (int)nr);
		struct call c = { .nr = nr, .a = { JUNK, JUNK, JUNK, JUNK, JUNK, JUNK } };
		char what[128];

		if (!sys)
			continue;
		if (!has_rule(p, nr) && !call_skipped(nr)) {
			snprintf(what, sizeof(what), "%s: unnamed %s", name, sys);
			check_call(p, &c, what);
			n++;
		}
		free(sys);
	}
	ck_assert_uint_gt(n, 200);
}

/* ------------------------------------------------------------ apply semantics */

START_TEST(test_cpr_policy_apply_einval)
{
	int nfds = test_count_fds();

	ck_assert_int_eq(cpr_policy_apply(NULL), -EINVAL);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static int child_nnp(void *arg)
{
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 1;
	/* glibc's getppid() returns -errno itself: use the raw call. */
	return syscall(SYS_getppid) == -1 && errno == EACCES ? 0 : 2;
}

START_TEST(test_cpr_policy_apply_no_new_privs)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_from_text("default allow\nerrno EACCES getppid\n");
	int status = run_child(p, child_nnp, NULL);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int step;
	const struct cpr_policy *policy;
};

static void gate_wait(struct gate *g, int step)
{
	pthread_mutex_lock(&g->lock);
	while (g->step < step)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void gate_open(struct gate *g, int step)
{
	pthread_mutex_lock(&g->lock);
	g->step = step;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* A thread that existed before the filter was loaded gets it too. */
static void *thread_after_apply(void *arg)
{
	struct gate *g = arg;

	gate_wait(g, 1);
	return (void *)(long)(syscall(SYS_getppid) == -1 && errno == EACCES);
}

static int child_tsync(void *arg)
{
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, arg };
	pthread_t t;
	void *ret = NULL;

	if (pthread_create(&t, NULL, thread_after_apply, &g) != 0)
		return CHILD_SETUP_FAILED;
	if (cpr_policy_apply(g.policy) < 0)
		return 1;
	gate_open(&g, 1);
	pthread_join(t, &ret);
	return ret ? 0 : 2;
}

START_TEST(test_cpr_policy_apply_tsync)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_from_text("default allow\nerrno EACCES getppid\n");
	int status = run_child(NULL, child_tsync, p);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A thread loads a filter of its own: TSYNC cannot synchronise it. */
static void *thread_own_filter(void *arg)
{
	struct gate *g = arg;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	long ok = ctx && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(getppid), 0) == 0 &&
		  seccomp_load(ctx) == 0;

	seccomp_release(ctx);
	gate_open(g, 1);
	gate_wait(g, 2);
	return (void *)ok;
}

static int child_esrch(void *arg)
{
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, arg };
	pthread_t t;
	void *ret = NULL;
	int r;

	if (pthread_create(&t, NULL, thread_own_filter, &g) != 0)
		return CHILD_SETUP_FAILED;
	gate_wait(&g, 1);
	r = cpr_policy_apply(g.policy);
	gate_open(&g, 2);
	pthread_join(t, &ret);
	if (!ret)
		return CHILD_SETUP_FAILED;
	/* Refused: the calling thread is unfiltered too. */
	return r == -ESRCH && getppid() > 0 ? 0 : 1;
}

START_TEST(test_cpr_policy_apply_esrch)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_from_text("default allow\nerrno EACCES getppid\n");
	int status = run_child(NULL, child_esrch, p);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static volatile sig_atomic_t trapped_nr = -1;

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	trapped_nr = si->si_syscall;
}

static int child_trap(void *arg)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };

	if (sigaction(SIGSYS, &sa, NULL) < 0 || cpr_policy_apply(arg) < 0)
		return CHILD_SETUP_FAILED;
	syscall(SYS_getppid);
	return trapped_nr == SYS_getppid ? 0 : 1;
}

static void *thread_killed(void *arg)
{
	syscall(SYS_getppid);
	return (void *)1;
}

static int child_kill_thread(void *arg)
{
	pthread_t t;
	void *ret = NULL;

	if (cpr_policy_apply(arg) < 0 || pthread_create(&t, NULL, thread_killed, NULL) != 0)
		return CHILD_SETUP_FAILED;
	pthread_join(t, &ret);
	/* The thread died inside getppid(); the process goes on. */
	return ret == NULL ? 0 : 1;
}

static int child_log(void *arg)
{
	pid_t ppid = getppid();

	if (cpr_policy_apply(arg) < 0)
		return CHILD_SETUP_FAILED;
	return syscall(SYS_getppid) == ppid && syscall(SYS_getpid) == -1 && errno == EAGAIN ? 0 : 1;
}

START_TEST(test_cpr_policy_apply_actions)
{
	int nfds = test_count_fds();
	struct cpr_policy *p;
	int status;

	p = policy_from_text("default allow\ntrap getppid\n");
	status = run_child(NULL, child_trap, p);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "trap: status %#x", status);
	cpr_policy_free(p);
	p = policy_from_text("default allow\nkill-thread getppid\n");
	status = run_child(NULL, child_kill_thread, p);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "kill-thread: %#x", status);
	cpr_policy_free(p);
	p = policy_from_text("default allow\nlog getppid\nerrno EWOULDBLOCK getpid\n");
	status = run_child(NULL, child_log, p);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "log: status %#x", status);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

#if defined(__x86_64__)
/* An i386 system call from a 64-bit process. */
static long int80(long nr)
{
	long r;

	__asm__ volatile("int $0x80" : "=a"(r) : "0"(nr) : "memory", "r8", "r9", "r10", "r11");
	return r;
}

static int child_int80_getpid(void *arg)
{
	return int80(20) == getpid() ? 0 : 1; /* 20: __NR_getpid on i386 */
}

static int child_int80_getppid(void *arg)
{
	return int80(64) == -EPERM ? 0 : 1; /* 64: __NR_getppid on i386 */
}

static int child_x32_getpid(void *arg)
{
	long r = syscall(0x40000000 | SYS_getpid);

	return r == -1 && errno == ENOSYS ? 0 : r == getpid() ? 0 : 1;
}

/* Whether an i386 call from this 64-bit process reaches the kernel at all:
 * with IA32 emulation off, or on kernels that refuse int $0x80 from 64-bit
 * code, it dies (SIGSEGV) before seccomp sees it. */
static bool i386_calls_work(char *why, size_t len)
{
	int status = run_child(NULL, child_int80_getpid, NULL);

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	if (WIFSIGNALED(status))
		snprintf(why, len,
			 "an i386 call (int $0x80) is killed by signal %d (%s) before seccomp sees "
			 "it",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(why, len, "an i386 call (int $0x80) does not return getpid() (exit %d)",
			 WEXITSTATUS(status));
	return false;
}

/* A call of another arch kills under a policy that does not name the arch,
 * even under "default allow"; a policy that names it judges it by its rules
 * (@denied: a child whose call the rules refuse with EPERM, or NULL). */
static void check_other_arch(const char *arch, int (*allowed)(void *), int (*denied)(void *))
{
	int nfds = test_count_fds();
	struct cpr_policy *vmm = policy_shipped("vmm-exec.policy");
	struct cpr_policy *p =
		policy_from_text("default allow\narch x86 x32\nerrno EPERM getppid\n");
	int status;

	status = run_child(vmm, allowed, NULL);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS, "%s: %#x", arch, status);
	status = run_child(p, allowed, NULL);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: %#x", arch, status);
	if (denied) {
		status = run_child(p, denied, NULL);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: %#x", arch,
			      status);
	}
	cpr_policy_free(p);
	cpr_policy_free(vmm);
	test_assert_no_fd_leak(nfds);
}

START_TEST(test_cpr_policy_apply_other_arches_i386)
{
	char why[160];

	if (!i386_calls_work(why, sizeof(why)))
		test_skip_case("%s", why);
	check_other_arch("i386", child_int80_getpid, child_int80_getppid);
}
END_TEST

/* x32 calls reach the filter whether or not the kernel implements them
 * (without x32 support a named arch's allowed call fails ENOSYS). */
START_TEST(test_cpr_policy_apply_other_arches_x32)
{
	check_other_arch("x32", child_x32_getpid, NULL);
}
END_TEST
#endif

/* The valid fixtures, loaded for real: the compiler against the semantics. */
START_TEST(test_cpr_policy_apply_fixtures)
{
	static const char *const names[] = { "good-all-actions.policy", "good-conditions.policy",
					     "good-disjoint.policy", "good-arches.policy" };
	int nfds = test_count_fds();

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct cpr_error err = { 0 };
		struct cpr_policy *p = NULL;
		char path[4096];

		snprintf(path, sizeof(path), "%s/tests/policy/%s", test_srcdir(), names[i]);
		ck_assert_msg(cpr_policy_load(path, &p, &err) == 0, "%s", err.message);
		check_rules(p, names[i]);
		cpr_policy_free(p);
	}
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Every comparison that fits in 8 bits: a witness below 512 exists if any. */
static bool brute_intersect(const struct policy_cond *a, const struct policy_cond *b)
{
	for (uint64_t x = 0; x < 512; x++) {
		uint64_t v[POLICY_ARGS] = { x };

		if (cond_holds(a, v) && cond_holds(b, v))
			return true;
	}
	return false;
}

static struct policy_cond random_cond(unsigned *seed)
{
	struct policy_cond c = { .arg = 0 };

	c.op = (enum policy_op)(rand_r(seed) % 7 + 1);
	c.value = (uint64_t)(rand_r(seed) % 256);
	c.mask = (uint64_t)(rand_r(seed) % 255 + 1);
	if (c.op == POLICY_OP_MASKED_EQ)
		c.value &= c.mask;
	if (c.op == POLICY_OP_LT && c.value == 0)
		c.value = 1;
	return c;
}

START_TEST(test_cpr_policy_parse_overlap_exact)
{
	int nfds = test_count_fds();
	unsigned seed = 1;

	for (int i = 0; i < 20000; i++) {
		struct policy_cond a = random_cond(&seed), b = random_cond(&seed);

		ck_assert_msg(policy_conds_intersect(&a, &b) == brute_intersect(&a, &b),
			      "op %d %#llx/%#llx vs op %d %#llx/%#llx", a.op,
			      (unsigned long long)a.value, (unsigned long long)a.mask, b.op,
			      (unsigned long long)b.value, (unsigned long long)b.mask);
	}
	for (int i = 0; i < 20000; i++) {
		uint64_t mask = (uint64_t)rand_r(&seed) % 256,
			 value = (uint64_t)rand_r(&seed) & mask;
		uint64_t lo = (uint64_t)rand_r(&seed) % 300, x = lo, got = 0;
		bool found = policy_masked_min_ge(mask, value, lo, &got);

		while (x < 1024 && (x & mask) != value)
			x++;
		ck_assert(found);
		ck_assert_uint_eq(got, x);
	}
	/* 64-bit edges: nothing at or above 2^63 has the top bit clear. */
	uint64_t got;
	ck_assert(!policy_masked_min_ge(UINT64_C(1) << 63, 0, UINT64_C(1) << 63, &got));
	ck_assert(policy_masked_min_ge(UINT64_C(1) << 63, UINT64_C(1) << 63, 5, &got));
	ck_assert_uint_eq(got, UINT64_C(1) << 63);
	ck_assert(!policy_masked_min_ge(UINT64_MAX, 7, 8, &got));
	test_assert_no_fd_leak(nfds);
}
END_TEST

TCase *policy_apply_tcase(void)
{
	TCase *tc = tcase_create("apply");

	tcase_add_test(tc, test_cpr_policy_apply_fixtures);
	tcase_add_test(tc, test_cpr_policy_parse_overlap_exact);

	tcase_add_test(tc, test_cpr_policy_apply_einval);
	tcase_add_test(tc, test_cpr_policy_apply_no_new_privs);
	tcase_add_test(tc, test_cpr_policy_apply_tsync);
	tcase_add_test(tc, test_cpr_policy_apply_esrch);
	tcase_add_test(tc, test_cpr_policy_apply_actions);
#if defined(__x86_64__)
	tcase_add_test(tc, test_cpr_policy_apply_other_arches_i386);
	tcase_add_test(tc, test_cpr_policy_apply_other_arches_x32);
#endif
	return tc;
}
