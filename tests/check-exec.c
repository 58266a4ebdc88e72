/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cpr-exec: real execve() round trips, failures that restore, hostile tokens. */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "ctx.h"
#include "exec-common.h"
#include "internal.h"
#include "test-util.h"

#define MiB (1ull << 20)

struct world {
	struct cpr_ctx *ctx;
	struct exec_expect x;
	struct cpr_ramblock *rbs[EXEC_RBS_MAX];
	int ev[1000];
	uint32_t n_ev;
};

static const char *helper_path(void)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s", test_build_path("tests/helper-exec"));
	return buf;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static int count_inheritable(void)
{
	int n = 0;

	for (int fd = 0; fd < 65536; fd++) {
		int f = fcntl(fd, F_GETFD);

		if (f >= 0 && !(f & FD_CLOEXEC))
			n++;
	}
	return n;
}

static void add_rb(struct world *w, const char *idstr, uint64_t used, uint64_t max, uint64_t align,
		   unsigned flags)
{
	struct exec_rb *e = &w->x.rb[w->x.n_rbs];
	struct cpr_ramblock *rb;

	ck_assert_int_eq(cpr_ramblock_new(w->ctx, idstr, used, max, align, flags, &rb, NULL), 0);
	snprintf(e->idstr, sizeof(e->idstr), "%s", idstr);
	e->used = used;
	e->max = max;
	e->align = align;
	e->flags = flags;
	w->rbs[w->x.n_rbs++] = rb;
}

/* Fill, checksum and fingerprint every block, after any resize. */
static void seal_rbs(struct world *w)
{
	for (uint32_t i = 0; i < w->x.n_rbs; i++) {
		struct exec_rb *e = &w->x.rb[i];
		struct stat st;

		e->used = cpr_ramblock_used_length(w->rbs[i]);
		exec_fill(cpr_ramblock_host(w->rbs[i]), e->used, i + 1);
		e->sum = exec_sum(cpr_ramblock_host(w->rbs[i]), e->used);
		ck_assert_int_eq(fstat(cpr_ramblock_fd(w->rbs[i]), &st), 0);
		e->dev = (uint64_t)st.st_dev;
		e->ino = (uint64_t)st.st_ino;
	}
}

/* A world of @n_ev eventfds and three RAM blocks: plain, resizeable (grown
 * before the exec), and 2 MiB aligned with the huge page request. */
static void world_init(struct world *w, uint32_t n_ev)
{
	memset(w, 0, sizeof(*w));
	raise_nofile();
	ck_assert_int_eq(cpr_ctx_new(&w->ctx), 0);
	for (uint32_t i = 0; i < n_ev; i++) {
		w->ev[i] = eventfd(i + 1, EFD_CLOEXEC);
		ck_assert_int_ge(w->ev[i], 0);
		ck_assert_int_eq(
			cpr_fd_save(w->ctx, "ev", (int32_t)i, w->ev[i], CPR_FD_EVENTFD, NULL), 0);
	}
	w->n_ev = w->x.n_ev = n_ev;
	add_rb(w, "pc.ram", 32 * MiB, 32 * MiB, 0, 0);
	add_rb(w, "vga.vram", 4 * MiB, 16 * MiB, 0, CPR_RAMBLOCK_RESIZEABLE);
	add_rb(w, "aligned", 8 * MiB, 8 * MiB, 2 * MiB, CPR_RAMBLOCK_HUGEPAGES);
	ck_assert_int_eq(cpr_ramblock_resize(w->rbs[1], 12 * MiB, NULL), 0);
	seal_rbs(w);
	w->x.generation = 1;
}

static void world_publish(struct world *w)
{
	w->x.inherited = (uint32_t)count_inheritable() + w->n_ev + w->x.n_rbs;
	ck_assert_int_eq(cpr_ctx_set_private(w->ctx, EXEC_PRIV_TYPE, 0, &w->x, sizeof(w->x)), 0);
}

/* Everything as before a failed exec: flags, fds, mappings, no child. */
static void world_assert_intact(struct world *w, int nfds)
{
	for (uint32_t i = 0; i < w->n_ev; i++)
		ck_assert_int_eq(fcntl(w->ev[i], F_GETFD), FD_CLOEXEC);
	for (uint32_t i = 0; i < w->x.n_rbs; i++) {
		ck_assert_int_eq(fcntl(cpr_ramblock_fd(w->rbs[i]), F_GETFD), FD_CLOEXEC);
		ck_assert(exec_sum(cpr_ramblock_host(w->rbs[i]), w->x.rb[i].used) ==
			  w->x.rb[i].sum);
	}
	ck_assert_ptr_null(getenv(CPR_EXEC_ENV));
	ck_assert_int_eq(test_count_fds(), nfds);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
}

static int wait_child(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* In a child: build the world and exec the helper; it exits 0 if all holds. */
static void round_trip(uint32_t n_ev, const char *mode)
{
	int nfds = test_count_fds();
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct cpr_error err = { 0 };
		struct world w;
		char *av[] = { (char *)"helper-exec", (char *)mode, NULL };

		world_init(&w, n_ev);
		world_publish(&w);
		/* A stale token in the environment never reaches the new image. */
		ck_assert_int_eq(setenv(CPR_EXEC_ENV, "fd=3,stale", 1), 0);
		cpr_exec(w.ctx, helper_path(), av, NULL, &err);
		fprintf(stderr, "cpr_exec: %s\n", err.message);
		_exit(99);
	}
	ck_assert_int_eq(wait_child(pid), 0);
	test_assert_no_fd_leak(nfds);
}

START_TEST(test_cpr_exec_round_trip_1)
{
	round_trip(1, "adopt");
}
END_TEST

START_TEST(test_cpr_exec_round_trip_100)
{
	round_trip(100, "adopt");
}
END_TEST

START_TEST(test_cpr_exec_round_trip_1000)
{
	round_trip(1000, "adopt");
}
END_TEST

START_TEST(test_cpr_exec_two_hops)
{
	round_trip(10, "hop");
}
END_TEST

/* CPR_EXEC_HELPER=0: no teardown helper (for tools whose clone() refuses
 * CLONE_VM without threads), and the hand-off is the same. */
START_TEST(test_cpr_exec_no_helper)
{
	ck_assert_int_eq(setenv(CPR_EXEC_HELPER_ENV, "0", 1), 0);
	round_trip(10, "nohelper");
	unsetenv(CPR_EXEC_HELPER_ENV);
}
END_TEST

/* A failed exec restores everything, then a retry succeeds. */
static void fail_then_retry(const char *path, int expect, int seccomp)
{
	int nfds = test_count_fds();
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct cpr_error err = { 0 };
		char *av[] = { (char *)"helper-exec", (char *)"adopt", NULL };
		struct world w;
		int before;

		world_init(&w, 20);
		world_publish(&w);
		before = test_count_fds();
		if (seccomp) {
			scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);

			ck_assert_ptr_nonnull(f);
			ck_assert_int_eq(
				seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(execve), 0), 0);
			ck_assert_int_eq(seccomp_load(f), 0);
			seccomp_release(f);
		}
		ck_assert_int_eq(cpr_exec(w.ctx, path, av, NULL, &err), expect);
		ck_assert_int_eq(err.code, expect);
		world_assert_intact(&w, before);
		ck_assert_int_eq(cpr_exec(w.ctx, path, av, NULL, &err), expect);
		world_assert_intact(&w, before);
		if (seccomp)
			_exit(0);
		cpr_exec(w.ctx, helper_path(), av, NULL, &err);
		_exit(98);
	}
	ck_assert_int_eq(wait_child(pid), 0);
	test_assert_no_fd_leak(nfds);
}

START_TEST(test_cpr_exec_enoent)
{
	fail_then_retry("/nonexistent/vmm", -ENOENT, 0);
}
END_TEST

START_TEST(test_cpr_exec_eacces)
{
	char path[] = "/tmp/cpr-noexec-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "#!/bin/sh\n", 10), 10);
	ck_assert_int_eq(fchmod(fd, 0644), 0);
	close(fd);
	fail_then_retry(path, -EACCES, 0);
	unlink(path);
}
END_TEST

START_TEST(test_cpr_exec_eperm_seccomp)
{
	fail_then_retry(helper_path(), -EPERM, 1);
}
END_TEST

START_TEST(test_cpr_exec_einval)
{
	struct cpr_ctx *ctx;
	char *av[] = { (char *)"x", NULL };
	char *noav[] = { NULL };
	int nfds = test_count_fds();

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_exec(NULL, "/bin/true", av, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_exec(ctx, NULL, av, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_exec(ctx, "/bin/true", NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_exec(ctx, "/bin/true", noav, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_exec_incoming(NULL, NULL), -EINVAL);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_exec_blocked)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	char *av[] = { (char *)"x", NULL };
	int nfds = test_count_fds();

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODE_EXEC, "device busy", NULL, NULL), 0);
	ck_assert_int_eq(cpr_exec(ctx, "/bin/true", av, NULL, &err), -EBUSY);
	ck_assert_ptr_nonnull(strstr(err.message, "device busy"));
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A preserved fd closed behind the registry's back: -EBADF, flags restored. */
START_TEST(test_cpr_exec_ebadf)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	char *av[] = { (char *)"x", NULL };
	int nfds = test_count_fds();
	int a = eventfd(0, EFD_CLOEXEC), b = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "a", 0, a, CPR_FD_EVENTFD, NULL), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "b", 0, b, CPR_FD_EVENTFD, NULL), 0);
	close(b);
	ck_assert_int_eq(cpr_exec(ctx, "/bin/true", av, NULL, &err), -EBADF);
	ck_assert_int_eq(fcntl(a, F_GETFD), FD_CLOEXEC);
	close(a);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/*
 * A preserved fd closed behind the registry's back and its number reused
 * (here by a pipe the VMM opens) is not the file registered: cpr_check()
 * says so and cpr_exec() refuses before anything, naming it.
 */
START_TEST(test_cpr_exec_fd_reused)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	char *av[] = { (char *)"x", NULL };
	int nfds = test_count_fds();
	int a = eventfd(0, EFD_CLOEXEC), p[2];

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "tap", 3, a, CPR_FD_EVENTFD, NULL), 0);
	ck_assert_int_eq(cpr_check(ctx, CPR_MODE_EXEC, 0, NULL, NULL), 0);
	close(a);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	if (p[0] != a) /* the lowest free number: the one just closed */
		ck_assert_int_eq(dup3(p[0], a, O_CLOEXEC), a);
	ck_assert_int_ne(cpr_check(ctx, CPR_MODE_EXEC, 0, NULL, NULL), 0);
	ck_assert_int_eq(cpr_exec(ctx, "/bin/true", av, NULL, &err), -EBADF);
	ck_assert_msg(strstr(err.message, "saved as \"tap\" id 3") &&
			      strstr(err.message, "another file now"),
		      "%s", err.message);
	if (p[0] != a)
		close(a);
	close(p[0]);
	close(p[1]);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/*
 * The pre-flight, before any pause: a target that takes this state answers
 * from cpr_exec_incoming(); one that refuses its command line, answers
 * nothing or cannot be executed is refused, saying why; nothing is left
 * behind (no fd, no child).
 */
START_TEST(test_cpr_exec_probe)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	char *good[] = { (char *)"helper-exec", (char *)"adopt", NULL };
	char *bad[] = { (char *)"helper-exec", (char *)"--no-such-option", (char *)"x", NULL };
	char *tru[] = { (char *)"true", NULL };
	int nfds = test_count_fds(), ev = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "ev", 0, ev, CPR_FD_EVENTFD, NULL), 0);
	ck_assert_int_eq(cpr_exec_probe(ctx, helper_path(), good, NULL, &err), 0);
	ck_assert_int_eq(cpr_exec_probe(ctx, helper_path(), bad, NULL, &err), -ENOEXEC);
	ck_assert_msg(strstr(err.message, "exited with status"), "%s", err.message);
	ck_assert_int_eq(cpr_exec_probe(ctx, "/bin/true", tru, NULL, &err), -ENOEXEC);
	ck_assert_msg(strstr(err.message, "gave no answer"), "%s", err.message);
	ck_assert_int_eq(cpr_exec_probe(ctx, "/nonexistent/vmm", tru, NULL, &err), -ENOEXEC);
	ck_assert_msg(strstr(err.message, "cannot be executed"), "%s", err.message);
	ck_assert_int_eq(cpr_exec_probe(NULL, "/bin/true", tru, NULL, &err), -EINVAL);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* every probe child reaped */
	ck_assert_int_eq(fcntl(ev, F_GETFD), FD_CLOEXEC);
	close(ev);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* ---- hostile tokens, in this process ---- */

static int incoming_with(const char *token, struct cpr_error *err)
{
	struct cpr_ctx *ctx;
	int r;

	if (token)
		ck_assert_int_eq(setenv(CPR_EXEC_ENV, token, 1), 0);
	else
		unsetenv(CPR_EXEC_ENV);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	r = cpr_exec_incoming(ctx, err);
	ck_assert_ptr_null(getenv(CPR_EXEC_ENV));
	ck_assert_int_eq(cpr_ctx_incoming(ctx), r == 1);
	cpr_ctx_free(ctx);
	return r;
}

static const char zero_id[] = "00000000000000000000000000000000";

START_TEST(test_cpr_exec_incoming_missing)
{
	int nfds = test_count_fds();

	ck_assert_int_eq(incoming_with(NULL, NULL), 0);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_exec_incoming_junk)
{
	static const char *const junk[] = {
		"",
		"hello",
		"fd=3",
		"fd=03,id=00000000000000000000000000000000,pid=1",
		"fd=-3,id=00000000000000000000000000000000,pid=1",
		"fd=+3,id=00000000000000000000000000000000,pid=1",
		"fd=3,id=0000000000000000000000000000000,pid=1",
		"fd=3,id=0000000000000000000000000000000A,pid=1",
		"fd=3,id=000000000000000000000000000000000,pid=1",
		"fd=3,id=00000000000000000000000000000000,pid=0",
		"fd=3,id=00000000000000000000000000000000,pid=1,",
		"fd=3,id=00000000000000000000000000000000,pid=1,reaper=",
		"fd=3,id=00000000000000000000000000000000,pid=1,reaper=2,release=",
		"fd=99999999999,id=00000000000000000000000000000000,pid=1",
		"fd=3,id=00000000000000000000000000000000,pid=1 ",
		"fd=3,fd=3,id=00000000000000000000000000000000,pid=1",
		"fd=3,id=00000000000000000000000000000000,pid=1,,x=1",
		"fd=3,id=00000000000000000000000000000000,pid=1,X=1",
		"fd=3,id=00000000000000000000000000000000,pid=1,release=4",
		"fd=3,id=00000000000000000000000000000000,pid=1,exe=5",
		"fd=3,id=00000000000000000000000000000000,pid=1,args=6",
		"fd=3,id=00000000000000000000000000000000,pid=1,rollback=0",
		"fd=3,id=00000000000000000000000000000000,pid=1,exe=5,args=6,exe=5",
	};
	struct cpr_error err = { 0 };
	int nfds = test_count_fds();

	char longtok[300];

	for (size_t i = 0; i < ARRAY_SIZE(junk); i++) {
		ck_assert_int_eq(incoming_with(junk[i], &err), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err.message, "malformed"));
	}
	snprintf(longtok, sizeof(longtok), "fd=3,id=%s,pid=%d,reaper=%0200d", zero_id,
		 (int)getpid(), 7);
	ck_assert_int_eq(incoming_with(longtok, &err), -EBADMSG);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/*
 * Every form of the token that ever shipped, and one a newer writer may
 * send: each is read (here it names pid 1, so the answer is ESRCH, not
 * EBADMSG).  The token's format is frozen (cpr_exec(3), EXEC TOKEN).
 */
START_TEST(test_cpr_exec_incoming_golden_tokens)
{
	static const char *const golden[] = {
		/* 0.1, no teardown helper */
		"fd=3,id=00112233445566778899aabbccddeeff,pid=1",
		/* the first teardown helper (ce2a4d4): a reaper and no release pipe;
		 * refusing it lost the guest of an exec from that build */
		"fd=3,id=00112233445566778899aabbccddeeff,pid=1,reaper=2",
		"fd=3,id=00112233445566778899aabbccddeeff,pid=1,reaper=2,x=1",
		/* 0.1, with the teardown helper */
		"fd=3,id=00112233445566778899aabbccddeeff,pid=1,reaper=2,release=4",
		/* any order; a key this reader does not know is ignored */
		"pid=1,release=4,reaper=2,id=00112233445566778899aabbccddeeff,fd=3",
		"fd=3,id=00112233445566778899aabbccddeeff,pid=1,abi=2,lock_fd=9",
		/* with the way back (cpr_exec(3), ROLLBACK), helper on and off */
		"fd=3,id=00112233445566778899aabbccddeeff,pid=1,reaper=2,release=4,exe=5,args=6",
		"fd=3,id=00112233445566778899aabbccddeeff,pid=1,exe=0,args=6",
		/* a rollback's */
		"fd=3,id=00112233445566778899aabbccddeeff,pid=1,rollback=1",
	};
	struct cpr_error err = { 0 };
	int nfds = test_count_fds();

	for (size_t i = 0; i < ARRAY_SIZE(golden); i++) {
		ck_assert_msg(incoming_with(golden[i], &err) == -ESRCH, "%s: %s", golden[i],
			      err.message);
		ck_assert_ptr_nonnull(strstr(err.message, "meant for pid 1"));
	}
	test_assert_no_fd_leak(nfds);
}
END_TEST

static void token(char *buf, size_t len, int fd, const char *id, pid_t pid)
{
	snprintf(buf, len, "fd=%d,id=%s,pid=%d", fd, id, (int)pid);
}

START_TEST(test_cpr_exec_incoming_wrong_pid)
{
	struct cpr_error err = { 0 };
	int nfds = test_count_fds();
	int fd = test_memfd("state", 100);
	char t[128];

	token(t, sizeof(t), fd, zero_id, getpid() + 1);
	ck_assert_int_eq(incoming_with(t, &err), -ESRCH);
	ck_assert_int_ge(fcntl(fd, F_GETFD), 0); /* not ours: left alone */
	close(fd);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_exec_incoming_fd_closed)
{
	struct cpr_error err = { 0 };
	int nfds = test_count_fds();
	char t[128];

	token(t, sizeof(t), 900, zero_id, getpid());
	ck_assert_int_eq(incoming_with(t, &err), -EBADF);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_exec_incoming_not_memfd)
{
	struct cpr_error err = { 0 };
	int nfds = test_count_fds();
	int p[2], m = test_memfd("unsealed", 4096);
	char t[128];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	token(t, sizeof(t), p[0], zero_id, getpid());
	ck_assert_int_eq(incoming_with(t, &err), -EMEDIUMTYPE);
	ck_assert_int_ge(fcntl(p[0], F_GETFD), 0);
	token(t, sizeof(t), m, zero_id, getpid());
	ck_assert_int_eq(incoming_with(t, &err), -EMEDIUMTYPE);
	ck_assert_int_ge(fcntl(m, F_GETFD), 0);
	close(p[0]);
	close(p[1]);
	close(m);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static int sealed_memfd(const void *buf, size_t len, size_t size)
{
	int fd = test_memfd("state", 0);

	ck_assert_int_ge(fd, 0);
	if (len)
		ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	ck_assert_int_eq(
		fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL),
		0);
	return fd;
}

START_TEST(test_cpr_exec_incoming_too_big)
{
	struct cpr_error err = { 0 };
	int nfds = test_count_fds();
	int fd = sealed_memfd(NULL, 0, CPR_STREAM_MAX + 1);
	char t[128];

	token(t, sizeof(t), fd, zero_id, getpid());
	ck_assert_int_eq(incoming_with(t, &err), -EFBIG);
	close(fd);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_exec_incoming_garbage_state)
{
	struct cpr_error err = { 0 };
	int nfds = test_count_fds();
	int fd = sealed_memfd("not a stream at all", 19, 19);
	char t[128];

	token(t, sizeof(t), fd, zero_id, getpid());
	ck_assert_int_lt(incoming_with(t, &err), 0);
	ck_assert_int_lt(fcntl(fd, F_GETFD), 0); /* the token's memfd was ours: closed */
	test_assert_no_fd_leak(nfds - 0);
}
END_TEST

/* A real encoded state from @ctx in a sealed memfd; its id in @hex. */
static int state_from(struct cpr_ctx *ctx, char hex[33])
{
	struct cpr_state_info info;
	struct cpr_state *st;
	void *buf;
	size_t len, n;
	int *fds, fd;

	ck_assert_int_eq(ctx_outgoing(ctx, CPR_MODE_EXEC, 0, &st, &fds, &n, NULL), 0);
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &buf, &len, NULL), 0);
	ck_assert_int_eq(cpr_state_get_info(st, &info), 0);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", info.stream_id[i]);
	fd = sealed_memfd(buf, len, len);
	free(buf);
	free(fds);
	cpr_state_free(st);
	return fd;
}

START_TEST(test_cpr_exec_incoming_wrong_id)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	int nfds = test_count_fds();
	int ev = eventfd(0, EFD_CLOEXEC), fd;
	char hex[33], t[128];

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "ev", 1, ev, CPR_FD_EVENTFD, NULL), 0);
	fd = state_from(ctx, hex);
	hex[0] = hex[0] == 'a' ? 'b' : 'a';
	token(t, sizeof(t), fd, hex, getpid());
	ck_assert_int_eq(incoming_with(t, &err), -ESTALE);
	ck_assert_int_lt(fcntl(fd, F_GETFD), 0);
	ck_assert_int_ge(fcntl(ev, F_GETFD), 0); /* a stale state closes nothing else */
	cpr_ctx_free(ctx);
	close(ev);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A valid token and state whose fd is not what it claims: refused, and every
 * fd the state named is closed. */
START_TEST(test_cpr_exec_incoming_kind_mismatch)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	int nfds = test_count_fds();
	int ev = eventfd(0, EFD_CLOEXEC), m = test_memfd("m", 4096), fd;
	char hex[33], t[128];

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "ev", 1, ev, CPR_FD_EVENTFD, NULL), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "m", 1, m, CPR_FD_MEMFD, NULL), 0);
	fd = state_from(ctx, hex);
	cpr_ctx_free(ctx);
	/* Swap what the two numbers hold. */
	{
		int tmp = fcntl(ev, F_DUPFD_CLOEXEC, 0);

		ck_assert_int_eq(dup3(m, ev, O_CLOEXEC), ev);
		ck_assert_int_eq(dup3(tmp, m, O_CLOEXEC), m);
		close(tmp);
	}
	token(t, sizeof(t), fd, hex, getpid());
	ck_assert_int_eq(incoming_with(t, &err), -EMEDIUMTYPE);
	ck_assert_ptr_nonnull(strstr(err.message, "is not a"));
	ck_assert_int_lt(fcntl(fd, F_GETFD), 0);
	ck_assert_int_lt(fcntl(ev, F_GETFD), 0);
	ck_assert_int_lt(fcntl(m, F_GETFD), 0);
	test_assert_no_fd_leak(nfds - 0);
}
END_TEST

START_TEST(test_cpr_exec_incoming_ealready)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	int nfds = test_count_fds();
	int fd;
	char hex[33], t[128];

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	fd = state_from(ctx, hex);
	token(t, sizeof(t), fd, hex, getpid());
	ck_assert_int_eq(setenv(CPR_EXEC_ENV, t, 1), 0);
	ck_assert_int_eq(cpr_exec_incoming(ctx, &err), 1);
	ck_assert_int_eq(cpr_exec_incoming(ctx, &err), -EALREADY);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* An incoming key this context already registered: refused, fds closed. */
START_TEST(test_cpr_exec_incoming_eexist)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx, *old;
	int nfds = test_count_fds();
	int ev = eventfd(0, EFD_CLOEXEC), mine = eventfd(0, EFD_CLOEXEC), fd;
	char hex[33], t[128];

	ck_assert_int_eq(cpr_ctx_new(&old), 0);
	ck_assert_int_eq(cpr_fd_save(old, "ev", 1, ev, CPR_FD_EVENTFD, NULL), 0);
	fd = state_from(old, hex);
	cpr_ctx_free(old);
	token(t, sizeof(t), fd, hex, getpid());
	ck_assert_int_eq(setenv(CPR_EXEC_ENV, t, 1), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "ev", 1, mine, CPR_FD_EVENTFD, NULL), 0);
	ck_assert_int_eq(cpr_exec_incoming(ctx, &err), -EEXIST);
	ck_assert_int_eq(cpr_ctx_incoming(ctx), 0);
	ck_assert_int_lt(fcntl(ev, F_GETFD), 0);
	ck_assert_int_ge(fcntl(mine, F_GETFD), 0);
	cpr_ctx_free(ctx);
	close(mine);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* An FD record naming the state memfd itself: a malformed exec state.
 * (Two records naming one fd are refused by the stream writer and parser.) */
START_TEST(test_cpr_exec_incoming_slot_is_state)
{
	struct cpr_state_fd f = { .kind = CPR_FD_MEMFD, .id = 0, .slot = 500, .name = "m" };
	struct cpr_error err = { 0 };
	struct cpr_state_info info;
	struct cpr_state *st;
	int nfds = test_count_fds(), fd;
	uint8_t id[16] = { 1, 2, 3 };
	char hex[33], t[128];
	size_t len;
	void *buf;

	ck_assert_int_eq(cpr_state_new(&st), 0);
	ck_assert_int_eq(cpr_state_set_stream_id(st, id), 0);
	ck_assert_int_eq(cpr_state_set_page_shift(st, (uint32_t)__builtin_ctz(getpagesize())), 0);
	ck_assert_int_ge(cpr_state_add_fd(st, &f), 0);
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &buf, &len, NULL), 0);
	ck_assert_int_eq(cpr_state_get_info(st, &info), 0);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", info.stream_id[i]);
	fd = sealed_memfd(buf, len, len);
	ck_assert_int_eq(dup3(fd, 500, O_CLOEXEC), 500);
	close(fd);
	free(buf);
	cpr_state_free(st);
	token(t, sizeof(t), 500, hex, getpid());
	ck_assert_int_eq(incoming_with(t, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.message, "cannot be preserved"));
	ck_assert_int_lt(fcntl(500, F_GETFD), 0);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A state larger than CPR_STREAM_MAX is refused before anything changes. */
START_TEST(test_cpr_exec_e2big)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	char *av[] = { (char *)"x", NULL };
	int nfds = test_count_fds();
	size_t chunk = CPR_RECORD_MAX - 64;
	void *blob = calloc(1, chunk);

	ck_assert_ptr_nonnull(blob);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	for (uint32_t i = 0; i <= CPR_STREAM_MAX / chunk; i++)
		ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, i, blob, chunk), 0);
	ck_assert_int_eq(cpr_exec(ctx, "/bin/true", av, NULL, &err), -E2BIG);
	ck_assert_ptr_null(getenv(CPR_EXEC_ENV));
	cpr_ctx_free(ctx);
	free(blob);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The release fd must be a pipe's write end; it is closed once nothing waits
 * for adoption (here at once: the state has no RAM block). */
START_TEST(test_cpr_exec_incoming_release)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	int nfds = test_count_fds(), fd, p[2], ev = eventfd(0, EFD_CLOEXEC);
	char hex[33], t[200];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	fd = state_from(ctx, hex);
	snprintf(t, sizeof(t), "fd=%d,id=%s,pid=%d,reaper=1,release=%d", fd, hex, (int)getpid(),
		 ev);
	ck_assert_int_eq(incoming_with(t, &err), 1);
	ck_assert_int_ge(fcntl(ev, F_GETFD), 0); /* not a pipe: left alone */
	fd = state_from(ctx, hex);
	snprintf(t, sizeof(t), "fd=%d,id=%s,pid=%d,reaper=1,release=%d", fd, hex, (int)getpid(),
		 p[1]);
	ck_assert_int_eq(incoming_with(t, &err), 1);
	ck_assert_int_lt(fcntl(p[1], F_GETFD), 0); /* released */
	{
		char c;

		/* what the helper waits for: a byte (adopted, no rollback), EOF */
		ck_assert_int_eq(read(p[0], &c, 1), 1);
		ck_assert_int_eq(read(p[0], &c, 1), 0);
	}
	cpr_ctx_free(ctx);
	close(p[0]);
	close(ev);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A state naming an fd that is not open in the new image: fewer fds came
 * than it has FD records, as for every carrier. */
START_TEST(test_cpr_exec_incoming_fd_not_open)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	int nfds = test_count_fds(), ev = eventfd(0, EFD_CLOEXEC), fd;
	char hex[33], t[128];

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "ev", 1, ev, CPR_FD_EVENTFD, NULL), 0);
	fd = state_from(ctx, hex);
	cpr_ctx_free(ctx);
	close(ev);
	token(t, sizeof(t), fd, hex, getpid());
	ck_assert_int_eq(incoming_with(t, &err), -EPROTO);
	ck_assert_str_eq(err.message, "the stream has 1 FD records, 0 fds came with it");
	test_assert_no_fd_leak(nfds);
}
END_TEST

static void keep_log(void *userdata, int priority, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void keep_log(void *userdata, int priority, const char *fmt, va_list ap)
{
	char *buf = userdata, line[400];

	(void)priority;
	vsnprintf(line, sizeof(line), fmt, ap);
	strncat(buf, line, 2000 - strlen(buf) - 2);
	strcat(buf, "\n");
}

/* The encode's dropped-element warnings reach the log, as for every carrier. */
START_TEST(test_cpr_exec_warns_dropped)
{
	struct cpr_error err = { 0 };
	struct cpr_ramblock *rb;
	struct cpr_ctx *ctx;
	char *av[] = { (char *)"x", NULL }, log[2000] = "";
	int nfds = test_count_fds();

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	cpr_ctx_set_log_fn(ctx, keep_log, log);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "pc.ram", 2 * MiB, 2 * MiB, 0, 0, &rb, NULL), 0);
	rb->thp = true; /* a level-2 hint, dropped for level 1 */
	ck_assert_int_eq(cpr_ctx_set_target_level(ctx, 1, NULL), 0);
	ck_assert_int_eq(cpr_exec(ctx, "/nonexistent/cpr-exec-target", av, NULL, &err), -ENOENT);
	ck_assert_msg(strstr(log, "exec: ") && strstr(log, "dropping flag 'thp'"), "log: %s", log);
	cpr_ramblock_free(rb);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The same malformed stream gives the same errno and message through exec
 * as through a hand-off (and cpr-transfer, check-transfer.c). */
START_TEST(test_cpr_exec_incoming_same_refusal_as_handoff)
{
	struct cpr_error err = { 0 }, herr = { 0 };
	struct cpr_ctx *ctx;
	int nfds = test_count_fds();
	int fd = sealed_memfd("not a stream", 12, 12);
	char t[128];

	token(t, sizeof(t), fd, zero_id, getpid());
	ck_assert_int_eq(incoming_with(t, &err), -EBADMSG);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_handoff_import(ctx, "not a stream", 12, NULL, 0, &herr), -EBADMSG);
	ck_assert_str_eq(err.message, herr.message);
	ck_assert_int_eq(err.code, herr.code);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A guest_memfd cannot be written for level 1: refused before anything. */
START_TEST(test_cpr_exec_eprotonosupport)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	char *av[] = { (char *)"x", NULL };
	int nfds = test_count_fds(), kvm, vm, gm;
	char why[160];

	gm = test_guest_memfd(2u << 20, &kvm, &vm, why, sizeof(why));
	if (gm < 0)
		test_skip_case("%s", why);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "gmem", 0, gm, CPR_FD_GUEST_MEMFD, NULL), 0);
	ck_assert_int_eq(cpr_ctx_set_target_level(ctx, 1, NULL), 0);
	ck_assert_int_eq(cpr_exec(ctx, "/bin/true", av, NULL, &err), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(err.message, "level 1"));
	ck_assert_int_eq(fcntl(gm, F_GETFD), FD_CLOEXEC);
	cpr_ctx_free(ctx);
	close(gm);
	close(vm);
	close(kvm);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *exec_suite(void)
{
	Suite *s = suite_create("exec");
	TCase *tc = tcase_create("exec");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_cpr_exec_round_trip_1);
	tcase_add_test(tc, test_cpr_exec_round_trip_100);
	tcase_add_test(tc, test_cpr_exec_round_trip_1000);
	tcase_add_test(tc, test_cpr_exec_two_hops);
	tcase_add_test(tc, test_cpr_exec_no_helper);
	tcase_add_test(tc, test_cpr_exec_enoent);
	tcase_add_test(tc, test_cpr_exec_eacces);
	tcase_add_test(tc, test_cpr_exec_eperm_seccomp);
	tcase_add_test(tc, test_cpr_exec_einval);
	tcase_add_test(tc, test_cpr_exec_blocked);
	tcase_add_test(tc, test_cpr_exec_ebadf);
	tcase_add_test(tc, test_cpr_exec_fd_reused);
	tcase_add_test(tc, test_cpr_exec_probe);
	tcase_add_test(tc, test_cpr_exec_incoming_missing);
	tcase_add_test(tc, test_cpr_exec_incoming_junk);
	tcase_add_test(tc, test_cpr_exec_incoming_golden_tokens);
	tcase_add_test(tc, test_cpr_exec_incoming_wrong_pid);
	tcase_add_test(tc, test_cpr_exec_incoming_fd_closed);
	tcase_add_test(tc, test_cpr_exec_incoming_not_memfd);
	tcase_add_test(tc, test_cpr_exec_incoming_too_big);
	tcase_add_test(tc, test_cpr_exec_incoming_garbage_state);
	tcase_add_test(tc, test_cpr_exec_incoming_wrong_id);
	tcase_add_test(tc, test_cpr_exec_incoming_kind_mismatch);
	tcase_add_test(tc, test_cpr_exec_incoming_ealready);
	tcase_add_test(tc, test_cpr_exec_incoming_eexist);
	tcase_add_test(tc, test_cpr_exec_incoming_release);
	tcase_add_test(tc, test_cpr_exec_incoming_fd_not_open);
	tcase_add_test(tc, test_cpr_exec_eprotonosupport);
	tcase_add_test(tc, test_cpr_exec_incoming_slot_is_state);
	tcase_add_test(tc, test_cpr_exec_e2big);
	tcase_add_test(tc, test_cpr_exec_warns_dropped);
	tcase_add_test(tc, test_cpr_exec_incoming_same_refusal_as_handoff);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(exec_suite());
}
