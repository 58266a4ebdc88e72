/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpr-policy(5) and its compiler: the parser's verdict on valid and
 * malformed files (tests/policy/), the limits, loading, exporting.  The live
 * seccomp half is check-policy-apply.c.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/policy.h>

#include "check-policy.h"
#include "internal.h"
#include "policy-internal.h"
#include "test-util.h"

#define SENTINEL ((struct cpr_policy *)0x1)

struct cpr_policy *policy_from_text(const char *text)
{
	struct cpr_error err = { 0 };
	struct cpr_policy *p = NULL;
	int r = cpr_policy_parse(text, strlen(text), "test", &p, &err);

	ck_assert_msg(r == 0, "policy does not parse: %d %s", r, err.message);
	return p;
}

struct cpr_policy *policy_shipped(const char *name)
{
	struct cpr_error err = { 0 };
	struct cpr_policy *p = NULL;
	char path[4096];
	int r;

	snprintf(path, sizeof(path), "%s/policy/%s", test_srcdir(), name);
	r = cpr_policy_load(path, &p, &err);
	ck_assert_msg(r == 0, "%s: %d %s", path, r, err.message);
	return p;
}

/* Parse @text expecting @code at @line:@col; nothing may be returned. */
static void assert_refused(const char *text, size_t len, int code, unsigned line, unsigned col)
{
	struct cpr_error err = { 0 };
	struct cpr_policy *p = SENTINEL;
	char prefix[64];

	ck_assert_int_eq(cpr_policy_parse(text, len, "t.policy", &p, &err), code);
	ck_assert_ptr_eq(p, SENTINEL);
	ck_assert_int_eq(err.code, code);
	ck_assert_uint_eq(err.instance, line);
	ck_assert_uint_eq(err.offset, col);
	if (line)
		snprintf(prefix, sizeof(prefix), "t.policy:%u:%u: ", line, col);
	else
		snprintf(prefix, sizeof(prefix), "t.policy: ");
	ck_assert_msg(strncmp(err.message, prefix, strlen(prefix)) == 0, "'%s' lacks '%s'",
		      err.message, prefix);
}

START_TEST(test_cpr_policy_parse_minimal)
{
	int nfds = test_count_fds();
	const char text[] = "# a comment\n\ndefault kill\nallow read # trailing comment\n";
	struct cpr_policy *p = policy_from_text(text);
	const struct policy_rule *r = policy_rule_get(p, 0);

	ck_assert_uint_eq(cpr_policy_default_action(p), SCMP_ACT_KILL_PROCESS);
	ck_assert_uint_eq(cpr_policy_rule_count(p), 1);
	ck_assert_str_eq(r->name, "read");
	ck_assert_int_eq(r->nr, seccomp_syscall_resolve_name("read"));
	ck_assert_uint_eq(r->action, SCMP_ACT_ALLOW);
	ck_assert_uint_eq(r->line, 4);
	ck_assert_uint_eq(r->n_conds, 0);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_parse_actions)
{
	static const struct {
		const char *text;
		uint32_t action;
	} cases[] = {
		{ "allow", SCMP_ACT_ALLOW },
		{ "log", SCMP_ACT_LOG },
		{ "trap", SCMP_ACT_TRAP },
		{ "kill", SCMP_ACT_KILL_PROCESS },
		{ "kill-process", SCMP_ACT_KILL_PROCESS },
		{ "kill-thread", SCMP_ACT_KILL_THREAD },
		{ "errno EPERM", SCMP_ACT_ERRNO(EPERM) },
		{ "errno ENOSYS", SCMP_ACT_ERRNO(ENOSYS) },
		{ "errno EWOULDBLOCK", SCMP_ACT_ERRNO(EAGAIN) },
		{ "errno 4094", SCMP_ACT_ERRNO(4094) },
		{ "errno 0x10", SCMP_ACT_ERRNO(16) },
	};
	int nfds = test_count_fds();

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char text[128];
		struct cpr_policy *p;

		/* The default differs from every action above. */
		snprintf(text, sizeof(text), "default errno 77\n%s getppid\n", cases[i].text);
		p = policy_from_text(text);
		ck_assert_uint_eq(policy_rule_get(p, 0)->action, cases[i].action);
		ck_assert_uint_eq(cpr_policy_default_action(p), SCMP_ACT_ERRNO(77));
		cpr_policy_free(p);
	}
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_parse_values)
{
	int nfds = test_count_fds();
	const char text[] = "default kill\n"
			    "allow mmap arg2 & PROT_EXEC == 0 arg3 == MAP_SHARED|MAP_FIXED\n"
			    "allow kill arg0 == -100 arg1 >= 0x10 arg2 <= 010 arg3 != 7\n"
			    "allow read arg5>1 arg4<2 arg0==AT_FDCWD\n";
	struct cpr_policy *p = policy_from_text(text);
	const struct policy_rule *r;

	r = policy_rule_get(p, 0);
	ck_assert_uint_eq(r->n_conds, 2);
	ck_assert_uint_eq(r->conds[0].arg, 2);
	ck_assert_int_eq(r->conds[0].op, POLICY_OP_MASKED_EQ);
	ck_assert_uint_eq(r->conds[0].mask, PROT_EXEC);
	ck_assert_uint_eq(r->conds[0].value, 0);
	ck_assert_uint_eq(r->conds[1].value, MAP_SHARED | MAP_FIXED);
	r = policy_rule_get(p, 1);
	ck_assert_uint_eq(r->conds[0].value, (uint64_t)-100);
	ck_assert_int_eq(r->conds[1].op, POLICY_OP_GE);
	ck_assert_uint_eq(r->conds[1].value, 16);
	ck_assert_int_eq(r->conds[2].op, POLICY_OP_LE);
	ck_assert_uint_eq(r->conds[2].value, 8);
	ck_assert_int_eq(r->conds[3].op, POLICY_OP_NE);
	/* Conditions are kept sorted by argument, whatever the text order. */
	r = policy_rule_get(p, 2);
	ck_assert_uint_eq(r->conds[0].arg, 0);
	ck_assert_uint_eq(r->conds[0].value, (uint64_t)(int64_t)AT_FDCWD);
	ck_assert_uint_eq(r->conds[1].arg, 4);
	ck_assert_int_eq(r->conds[1].op, POLICY_OP_LT);
	ck_assert_uint_eq(r->conds[2].arg, 5);
	ck_assert_int_eq(r->conds[2].op, POLICY_OP_GT);
	ck_assert_ptr_null(policy_rule_get(p, 3));
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_parse_einval)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = SENTINEL;

	ck_assert_int_eq(cpr_policy_parse(NULL, 1, "x", &p, NULL), -EINVAL);
	ck_assert_int_eq(cpr_policy_parse("default kill\n", 13, "x", NULL, NULL), -EINVAL);
	ck_assert_ptr_eq(p, SENTINEL);
	/* Empty text has no default line; a NULL @ret_err is allowed. */
	ck_assert_int_eq(cpr_policy_parse(NULL, 0, NULL, &p, NULL), -EINVAL);
	assert_refused("", 0, -EINVAL, 0, 0);
	/* Text need not be NUL-terminated: only @len bytes are read. */
	assert_refused("default kill\nallow readXYZ", 22, -EINVAL, 2, 7);
	ck_assert_ptr_eq(p, SENTINEL);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* "# expect LINE:COL ERRNO" or "# expect valid" on the first line. */
static int fixture_expect(const char *text, unsigned *line, unsigned *col)
{
	char what[16] = "";

	if (sscanf(text, "# expect %u:%u %15s", line, col, what) == 3 &&
	    strcmp(what, "EINVAL") == 0)
		return -EINVAL;
	ck_assert_msg(strncmp(text, "# expect valid\n", 15) == 0, "fixture without expectation");
	return 0;
}

static void check_fixture(const char *dir, const char *name)
{
	struct cpr_error err = { 0 };
	struct cpr_policy *p = SENTINEL;
	char path[4096], prefix[64];
	_cleanup_free_ void *text = NULL;
	unsigned line = 0, col = 0;
	int expect, r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert_int_ge(test_read_file(path, &text), 0);
	expect = fixture_expect(text, &line, &col);
	r = cpr_policy_load(path, &p, &err);
	ck_assert_msg(r == expect, "%s: %d, expected %d (%s)", name, r, expect, err.message);
	if (expect == 0) {
		cpr_policy_free(p);
		return;
	}
	ck_assert_ptr_eq(p, SENTINEL);
	ck_assert_int_eq(err.code, expect);
	ck_assert_msg(err.instance == line && err.offset == col, "%s: at %u:%llu, expected %u:%u",
		      name, err.instance, (unsigned long long)err.offset, line, col);
	/* The file name may be truncated in the message; the place is not. */
	ck_assert_msg(strncmp(err.message, path, 16) == 0, "'%s' lacks '%s'", err.message, path);
	if (line)
		snprintf(prefix, sizeof(prefix), ":%u:%u: ", line, col);
	else
		snprintf(prefix, sizeof(prefix), ".policy: ");
	ck_assert_msg(strstr(err.message, prefix), "'%s' lacks '%s'", err.message, prefix);
}

START_TEST(test_cpr_policy_load_fixtures)
{
	int nfds = test_count_fds();
	unsigned n_bad = 0, n_good = 0;
	struct dirent *de;
	char dir[2048];
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/tests/policy", test_srcdir());
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (n < 8 || strcmp(de->d_name + n - 7, ".policy") != 0)
			continue;
		check_fixture(dir, de->d_name);
		if (strncmp(de->d_name, "bad-", 4) == 0)
			n_bad++;
		else
			n_good++;
	}
	closedir(d);
	ck_assert_uint_ge(n_bad, 20);
	ck_assert_uint_ge(n_good, 3);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_parse_e2big)
{
	int nfds = test_count_fds();
	size_t cap = 64u << 10;
	char *text = malloc(CPR_POLICY_TEXT_MAX + 1);
	size_t len = 0;

	ck_assert_ptr_nonnull(text);
	/* Whole text over the limit: refused before reading it. */
	memset(text, ' ', CPR_POLICY_TEXT_MAX + 1);
	assert_refused(text, CPR_POLICY_TEXT_MAX + 1, -E2BIG, 0, 0);
	/* A line one byte too long. */
	len = (size_t)snprintf(text, cap, "default kill\n");
	memset(text + len, ' ', CPR_POLICY_LINE_MAX + 1);
	assert_refused(text, len + CPR_POLICY_LINE_MAX + 1, -E2BIG, 2, CPR_POLICY_LINE_MAX + 1);
	/* One line at the limit is fine. */
	memcpy(text + len + CPR_POLICY_LINE_MAX - 10, "allow read", 10);
	text[len + CPR_POLICY_LINE_MAX] = 0;
	cpr_policy_free(policy_from_text(text));
	/* One rule too many. */
	len = (size_t)snprintf(text, cap, "default kill\n");
	for (unsigned i = 0; i <= CPR_POLICY_RULES_MAX; i++)
		len += (size_t)snprintf(text + len, CPR_POLICY_TEXT_MAX - len,
					"allow read arg0 == %u\n", i);
	assert_refused(text, len, -E2BIG, CPR_POLICY_RULES_MAX + 2, 1);
	/* A program longer than the kernel loads (BPF_MAXINSNS). */
	len = (size_t)snprintf(text, cap, "default allow\n");
	for (unsigned i = 0; i < 1500; i++)
		len += (size_t)snprintf(text + len, CPR_POLICY_TEXT_MAX - len,
					"errno EPERM read arg0 == %u arg1 == %u arg2 == %u\n", i,
					i * 7, i * 3);
	assert_refused(text, len, -E2BIG, 0, 0);
	/* One architecture too many. */
	len = (size_t)snprintf(text, cap,
			       "default kill\narch x86 x32 arm aarch64 mipsel "
			       "mipsel64 riscv64 ppc64le mips64n32\n");
	assert_refused(text, len, -E2BIG, 2, 58);
	free(text);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_parse_enomem)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = SENTINEL;
	size_t cap = 1u << 20, len;
	char *text = malloc(cap);
	pid_t pid;
	int status;

	if (UNDER_ASAN) {
		free(text);
		test_skip_case(
			"AddressSanitizer reserves terabytes of shadow: RLIMIT_AS cannot be used");
	}
	ck_assert_ptr_nonnull(text);
	len = (size_t)snprintf(text, cap, "default kill\n");
	for (unsigned i = 0; i < CPR_POLICY_RULES_MAX; i++)
		len += (size_t)snprintf(text + len, cap - len, "allow read arg0 == %u\n", i);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* The rule table needs about 1 MiB more than is left. */
		struct rlimit rl = { .rlim_cur = 0, .rlim_max = RLIM_INFINITY };
		long vm = 0;
		FILE *f = fopen("/proc/self/statm", "re");

		if (!f || fscanf(f, "%ld", &vm) != 1)
			_exit(2);
		fclose(f);
		rl.rlim_cur = (rlim_t)vm * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 10);
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			_exit(3);
		_exit(cpr_policy_parse(text, len, "big", &p, NULL) == -ENOMEM && p == SENTINEL ? 0
											       : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	free(text);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_load_shipped)
{
	static const struct {
		const char *name;
		uint32_t default_action;
	} shipped[] = {
		{ "cprd.policy", SCMP_ACT_KILL_PROCESS },
		{ "vmm-exec.policy", SCMP_ACT_ALLOW },
		{ "vmm-transfer.policy", SCMP_ACT_ALLOW },
	};
	int nfds = test_count_fds();

	for (size_t i = 0; i < ARRAY_SIZE(shipped); i++) {
		struct cpr_policy *p = policy_shipped(shipped[i].name);

		ck_assert_uint_eq(cpr_policy_default_action(p), shipped[i].default_action);
		ck_assert_uint_gt(cpr_policy_rule_count(p), 10);
		cpr_policy_free(p);
	}
	test_assert_no_fd_leak(nfds);
}
END_TEST

static void assert_load_fails(const char *path, int code)
{
	struct cpr_error err = { 0 };
	struct cpr_policy *p = SENTINEL;

	ck_assert_int_eq(cpr_policy_load(path, &p, &err), code);
	ck_assert_ptr_eq(p, SENTINEL);
	ck_assert_int_eq(err.code, code);
	ck_assert_msg(strstr(err.message, path) == err.message, "%s", err.message);
}

START_TEST(test_cpr_policy_load_errors)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = SENTINEL;
	char path[64];
	int fd;

	ck_assert_int_eq(cpr_policy_load(NULL, &p, NULL), -EINVAL);
	ck_assert_int_eq(cpr_policy_load("", &p, NULL), -EINVAL);
	ck_assert_int_eq(cpr_policy_load("/dev/null", NULL, NULL), -EINVAL);
	assert_load_fails("/nonexistent/cpr.policy", -ENOENT);
	assert_load_fails("/", -EISDIR);
	assert_load_fails("/dev/null", -EINVAL);
	/* A file one byte over the limit. */
	fd = test_memfd("big.policy", CPR_POLICY_TEXT_MAX + 1);
	ck_assert_int_ge(fd, 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	assert_load_fails(path, -E2BIG);
	ck_assert_int_eq(ftruncate(fd, CPR_POLICY_TEXT_MAX), 0);
	/* At the limit it is read, and refused for its content (NUL bytes). */
	assert_load_fails(path, -EINVAL);
	close(fd);
	ck_assert_ptr_eq(p, SENTINEL);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* open(2)'s errors pass through: EACCES as an unprivileged user. */
START_TEST(test_cpr_policy_load_eacces)
{
	int nfds = test_count_fds();
	char path[] = "/tmp/cpr-policy-XXXXXX";
	int fd = mkstemp(path), status;
	pid_t pid;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "default kill\n", 13), 13);
	ck_assert_int_eq(fchmod(fd, 0600), 0);
	close(fd);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct cpr_policy *p = SENTINEL;

		if (geteuid() == 0 &&
		    (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
		     setresuid(65534, 65534, 65534) < 0))
			_exit(2);
		_exit(cpr_policy_load(path, &p, NULL) == -EACCES && p == SENTINEL ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	unlink(path);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_free_null)
{
	int nfds = test_count_fds();

	cpr_policy_free(NULL);
	ck_assert_uint_eq(cpr_policy_default_action(NULL), UINT32_MAX);
	ck_assert_uint_eq(cpr_policy_rule_count(NULL), 0);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static size_t memfd_contents(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	ck_assert_int_ge(n, 0);
	buf[n] = 0;
	return (size_t)n;
}

START_TEST(test_cpr_policy_export_pfc)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_shipped("vmm-transfer.policy");
	static char buf[1 << 16];
	int fd = test_memfd("pfc", 0);

	ck_assert_int_eq(cpr_policy_export_pfc(p, fd), 0);
	memfd_contents(fd, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "# pseudo filter code start"));
	ck_assert_ptr_nonnull(strstr(buf, "filter for syscall \"execve\""));
	ck_assert_ptr_nonnull(strstr(buf, "action ERRNO(38);")); /* clone3: ENOSYS */
	ck_assert_ptr_nonnull(strstr(buf, "# invalid architecture action\naction KILL_PROCESS;"));
	close(fd);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_export_bpf)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_shipped("cprd.policy");
	static unsigned char buf[1 << 16];
	int fd = test_memfd("bpf", 0);
	size_t n;

	ck_assert_int_eq(cpr_policy_export_bpf(p, fd), 0);
	n = memfd_contents(fd, (char *)buf, sizeof(buf));
	ck_assert_uint_gt(n, 8 * 16);
	ck_assert_uint_eq(n % 8, 0);
	/* First instruction: load seccomp_data.arch (BPF_LD|BPF_W|BPF_ABS, k=4). */
	ck_assert_uint_eq(buf[0] | buf[1] << 8, 0x20);
	ck_assert_uint_eq(buf[4] | buf[5] << 8 | buf[6] << 16 | (uint32_t)buf[7] << 24, 4);
	close(fd);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_policy_export_errors)
{
	int nfds = test_count_fds();
	struct cpr_policy *p = policy_from_text("default allow\nerrno EPERM getppid\n");
	int pfd[2], full;

	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(cpr_policy_export_pfc(NULL, 1), -EINVAL);
	ck_assert_int_eq(cpr_policy_export_bpf(NULL, 1), -EINVAL);
	ck_assert_int_eq(cpr_policy_export_pfc(p, -1), -EBADF);
	ck_assert_int_eq(cpr_policy_export_bpf(p, -1), -EBADF);
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	close(pfd[0]);
	close(pfd[1]);
	/* A closed fd number. */
	ck_assert_int_eq(cpr_policy_export_pfc(p, pfd[1]), -EBADF);
	ck_assert_int_eq(cpr_policy_export_bpf(p, pfd[1]), -EBADF);
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	close(pfd[0]);
	ck_assert_int_eq(cpr_policy_export_pfc(p, pfd[1]), -EPIPE);
	ck_assert_int_eq(cpr_policy_export_bpf(p, pfd[1]), -EPIPE);
	close(pfd[1]);
	full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(full, 0);
	ck_assert_int_eq(cpr_policy_export_pfc(p, full), -ENOSPC);
	ck_assert_int_eq(cpr_policy_export_bpf(p, full), -ENOSPC);
	close(full);
	cpr_policy_free(p);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *cpr_policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("text");

	tcase_add_test(tc, test_cpr_policy_parse_minimal);
	tcase_add_test(tc, test_cpr_policy_parse_actions);
	tcase_add_test(tc, test_cpr_policy_parse_values);
	tcase_add_test(tc, test_cpr_policy_parse_einval);
	tcase_add_test(tc, test_cpr_policy_parse_e2big);
	tcase_add_test(tc, test_cpr_policy_parse_enomem);
	tcase_add_test(tc, test_cpr_policy_load_fixtures);
	tcase_add_test(tc, test_cpr_policy_load_shipped);
	tcase_add_test(tc, test_cpr_policy_load_errors);
	tcase_add_test(tc, test_cpr_policy_load_eacces);
	tcase_add_test(tc, test_cpr_policy_free_null);
	tcase_add_test(tc, test_cpr_policy_export_pfc);
	tcase_add_test(tc, test_cpr_policy_export_bpf);
	tcase_add_test(tc, test_cpr_policy_export_errors);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, policy_apply_tcase());
	suite_add_tcase(s, policy_apply_shipped_tcase());
	suite_add_tcase(s, policy_exec_tcase());
	return s;
}

int main(void)
{
	const char *helper = getenv(HELPER_ENV);

	if (helper)
		return policy_exec_helper(helper);
	return test_run(cpr_policy_suite());
}
