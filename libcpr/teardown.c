/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The teardown helper of cpr-exec.
 *
 * execve() drops the old address space; when it is the last user, the kernel
 * tears down every page table of the guest RAM inside execve(), ~12 ms per
 * GiB of 4 KiB pages, while the guest is paused.  Right before execve(),
 * cpr_exec() clones a helper with CLONE_VM: it holds a second reference, so
 * execve() only drops one.  The helper waits on a pipe whose write end passes
 * to the new image (named in the exec token as release=<fd>).
 *
 * The pipe says how the new image fared (cpr_exec(3), ROLLBACK):
 *
 *   - a byte: the new image adopted every preserved RAM block (or gave up the
 *     rest, or freed its context), or execve() failed and the old image
 *     wrote it: the helper exits and the old address space is freed beside
 *     the running guest;
 *   - EOF without a byte, and the new image is gone (its pidfd, opened by the
 *     old image before the clone, turns readable within HELPER_GONE_MS): it
 *     exited or died before adopting.  The helper still holds the preserved
 *     fds and the state memfd (its own copy of the fd table), so it rolls
 *     back: it execveat()s the previous binary with the state (rollback.c);
 *   - EOF while the new image lives (an older libcpr closes without a byte;
 *     an image without libcpr may close every fd), or no word at all within
 *     HELPER_TIMEOUT_S: the new image is taken to own the state and the
 *     helper exits.  It never rolls back while the new image may be running
 *     the guest: two images driving one guest would be worse than none.
 *
 * The helper runs on the old address space with the caller's TLS, so it
 * makes raw system calls only: no libc, no errno, no locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#include <stdbool.h>
#include <stdlib.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#include "ctx.h"
#include "internal.h"

#define HELPER_STACK (64u << 10)
#define HELPER_TIMEOUT_S 10 /* longest wait for the new image's release */
#define HELPER_GONE_MS 1000 /* after EOF: how long the new image may take to die */

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

#if defined(__x86_64__)
static inline long raw5(long n, long a, long b, long c, long d, long e)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}
#define HAVE_RAW_SYSCALL 1
#elif defined(__aarch64__)
static inline long raw5(long n, long a, long b, long c, long d, long e)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;

	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4)
			 : "memory");
	return x0;
}
#define HAVE_RAW_SYSCALL 1
#endif
#define raw4(n, a, b, c, d) raw5(n, a, b, c, d, 0)

#ifdef HAVE_RAW_SYSCALL
#define HELPER_FN __attribute__((no_sanitize("address", "undefined")))

struct helper_args {
	long rfd;
	int rfd_int;	 /* keep when there is no rollback */
	long max_fd;	 /* for kernels without close_range() */
	const int *keep; /* sorted, distinct: every fd the helper holds */
	long n_keep;
	/* For a rollback (exe_fd >= 0): the fds the previous binary inherits,
	 * the image execve() becomes (a pidfd), and how to run it again. */
	const int *inherit;
	long n_inherit;
	long pidfd;
	long exe_fd;
	char *const *argv;
	char *const *envp;
	uint64_t sigmask; /* the caller's, which the helper runs without */
	struct pollfd pfd;
	struct pollfd gone;
	struct timespec timeout;
	struct timespec gone_timeout;
};

/* Close every fd but @a->keep, with close_range() where there is one. */
HELPER_FN static void helper_close(const struct helper_args *a)
{
	long lo = 0, j = 0;

	for (long i = 0; i <= a->n_keep; i++) {
		long hi = i < a->n_keep ? a->keep[i] - 1 : (long)~0u;

		if (hi >= lo && raw4(SYS_close_range, lo, hi, 0, 0) == -ENOSYS)
			goto slow;
		lo = i < a->n_keep ? a->keep[i] + 1 : lo;
	}
	return;
slow:
	for (long fd = 0; fd < a->max_fd; fd++) {
		while (j < a->n_keep && a->keep[j] < fd)
			j++;
		if (j >= a->n_keep || a->keep[j] != fd)
			raw4(SYS_close, fd, 0, 0, 0);
	}
}

HELPER_FN static long helper_poll(struct pollfd *pfd, struct timespec *ts)
{
	long r;

	while ((r = raw4(SYS_ppoll, (long)pfd, 1, (long)ts, 0)) == -EINTR)
		;
	return r;
}

/* EOF without a word: roll back if the new image is gone. */
HELPER_FN static void helper_rollback(struct helper_args *a)
{
	if (a->exe_fd < 0 || helper_poll(&a->gone, &a->gone_timeout) != 1)
		return;
	for (long i = 0; i < a->n_inherit; i++)
		raw4(SYS_fcntl, a->inherit[i], F_SETFD, 0, 0);
	raw4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&a->sigmask, 0, sizeof(a->sigmask));
	raw5(SYS_execveat, a->exe_fd, (long)"", (long)a->argv, (long)a->envp, AT_EMPTY_PATH);
}

/* Keep only what a rollback needs, wait for a byte, EOF or the timeout. */
HELPER_FN static int helper_main(void *arg)
{
	struct helper_args *a = arg;
	char c;
	long n;

	helper_close(a);
	if (helper_poll(&a->pfd, &a->timeout) == 1) {
		while ((n = raw4(SYS_read, a->rfd, (long)&c, 1, 0)) == -EINTR)
			;
		if (n == 0)
			helper_rollback(a);
	}
	for (;;)
		raw4(SYS_exit, 0, 0, 0, 0);
	return 0;
}

static long max_fd(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > (1u << 20))
		return 1l << 20;
	return (long)rl.rlim_cur;
}

/*
 * CPR_EXEC_HELPER=0 turns the helper off, and so does running under
 * valgrind (detected by its client request where its header was found at
 * build time): its clone() emulation aborts on CLONE_VM without
 * CLONE_THREAD.  Without the helper the exec only pays the teardown.
 */
static int clone_refused; /* errno of a refused clone(), 0 = not refused */

static bool helper_wanted(struct cpr_ctx *ctx)
{
	const char *e = getenv(CPR_EXEC_HELPER_ENV);

	if (__atomic_load_n(&clone_refused, __ATOMIC_RELAXED))
		return false; /* said once, below */

	if (e && strcmp(e, "0") == 0) {
		ctx_log(ctx, LOG_INFO, "cpr: no teardown helper (%s=0)", CPR_EXEC_HELPER_ENV);
		return false;
	}
#ifdef HAVE_VALGRIND_VALGRIND_H
	if (RUNNING_ON_VALGRIND) {
		ctx_log(ctx, LOG_INFO, "cpr: no teardown helper under valgrind");
		return false;
	}
#endif
	return true;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * What the helper holds: its pipe end and, for a rollback, the preserved
 * fds and state memfd (@inherit), fds 0-2 (the previous binary's stdio),
 * the previous binary and the new image's pidfd.  Sorted and distinct, in
 * memory the helper keeps (the old address space is its own once execve()
 * succeeded).
 */
static void helper_plan(struct teardown *t, struct helper_args *a, const int *inherit,
			size_t n_inherit, const struct rollback *rb)
{
	size_t n = 0;

	t->pidfd = rb->exe_fd >= 0 ? (int)syscall(SYS_pidfd_open, getpid(), 0) : -EBADF;
	if (t->pidfd < 0 || !(t->keep = calloc(n_inherit + 6, sizeof(int)))) {
		t->pidfd = cpr_close(t->pidfd);
		a->keep = &a->rfd_int;
		a->n_keep = 1;
		return;
	}
	memcpy(t->keep, inherit, n_inherit * sizeof(int));
	t->keep[n_inherit] = (int)a->rfd;
	t->keep[n_inherit + 1] = t->pidfd;
	t->keep[n_inherit + 2] = rb->exe_fd;
	for (int fd = 0; fd < 3; fd++) /* the previous binary's stdio, its log */
		t->keep[n_inherit + 3 + (size_t)fd] = fd;
	qsort(t->keep, n_inherit + 6, sizeof(int), cmp_int);
	for (size_t i = 0; i < n_inherit + 6; i++)
		if (n == 0 || t->keep[i] != t->keep[n - 1])
			t->keep[n++] = t->keep[i];
	a->keep = t->keep;
	a->n_keep = (long)n;
	a->inherit = inherit;
	a->n_inherit = (long)n_inherit;
	a->pidfd = t->pidfd;
	a->exe_fd = rb->exe_fd;
	a->argv = rb->argv;
	a->envp = rb->envp;
	a->gone = (struct pollfd){ .fd = t->pidfd, .events = POLLIN };
}

static void helper_unplan(struct teardown *t)
{
	t->pidfd = cpr_close(t->pidfd);
	free(t->keep);
	t->keep = NULL;
}

/*
 * The exec goes on without the helper.  A clone() refused as such (a
 * seccomp filter or a sandbox that forbids CLONE_VM without CLONE_THREAD:
 * EPERM, ENOSYS, EINVAL) is refused on every try: said once, not tried
 * again in this process.  Anything else may pass: said each time.
 */
static void clone_failed(struct cpr_ctx *ctx, int err)
{
	if (err == EPERM || err == ENOSYS || err == EINVAL) {
		__atomic_store_n(&clone_refused, err, __ATOMIC_RELAXED);
		ctx_log(ctx, LOG_WARNING,
			"cpr: no teardown helper: clone(CLONE_VM) refused: %s; exec goes on "
			"without it (teardown in the pause, no rollback if the new image dies)",
			strerror(err));
		return;
	}
	ctx_log(ctx, LOG_WARNING, "cpr: no teardown helper: clone: %s", strerror(err));
}

/* The write end stays close-on-exec: cpr_exec() clears it with the others. */
void teardown_start(struct cpr_ctx *ctx, struct teardown *t, const int *keep, size_t n_keep,
		    const struct rollback *rb)
{
	struct helper_args *args;
	sigset_t all, old;
	int p[2];

	*t = (struct teardown){ .pid = 0, .wfd = -EBADF, .stack = NULL, .pidfd = -EBADF };
	if (!helper_wanted(ctx) || pipe2(p, O_CLOEXEC) < 0)
		return;
	t->stack = mmap(NULL, HELPER_STACK, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (t->stack == MAP_FAILED) {
		t->stack = NULL;
		goto fail;
	}
	/* The arguments live at the top of the helper's own stack. */
	args = (struct helper_args *)((uintptr_t)((uint8_t *)t->stack + HELPER_STACK -
						  sizeof(*args)) &
				      ~(uintptr_t)15);
	*args = (struct helper_args){
		.rfd = p[0],
		.rfd_int = p[0],
		.max_fd = max_fd(),
		.pidfd = -1,
		.exe_fd = -1,
		.pfd = { .fd = p[0], .events = POLLIN },
		.timeout = { .tv_sec = HELPER_TIMEOUT_S },
		.gone_timeout = { .tv_sec = HELPER_GONE_MS / 1000,
				  .tv_nsec = HELPER_GONE_MS % 1000 * 1000000l },
	};
	helper_plan(t, args, keep, n_keep, rb);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	memcpy(&args->sigmask, &old, sizeof(args->sigmask));
	t->pid = clone(helper_main, args, CLONE_VM | SIGCHLD, args);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (t->pid < 0) {
		clone_failed(ctx, errno);
		t->pid = 0;
		goto fail;
	}
	close(p[0]);
	t->pidfd = cpr_close(t->pidfd); /* the helper has its own */
	t->wfd = p[1];
	return;
fail:
	helper_unplan(t);
	if (t->stack)
		munmap(t->stack, HELPER_STACK);
	t->stack = NULL;
	close(p[0]);
	close(p[1]);
}

/* execve() failed: let the helper go (a byte: no rollback) and reap it. */
void teardown_stop(struct teardown *t)
{
	if (t->pid <= 0)
		return;
	(void)!write(t->wfd, "x", 1);
	close(t->wfd);
	while (waitpid(t->pid, NULL, __WALL) < 0 && errno == EINTR)
		;
	munmap(t->stack, HELPER_STACK);
	helper_unplan(t);
	t->pid = 0;
}
#else
void teardown_start(struct cpr_ctx *ctx, struct teardown *t, const int *keep, size_t n_keep,
		    const struct rollback *rb)
{
	*t = (struct teardown){ .pid = 0, .wfd = -EBADF, .stack = NULL, .pidfd = -EBADF };
}

void teardown_stop(struct teardown *t)
{
}
#endif

/* ---- in the new image ---- */

/*
 * Hold the helper by a pidfd while it is alive and provably our child, so a
 * later reap cannot hit a recycled PID if someone else reaped it first.
 */
static void adopt_reaper(struct cpr_ctx *ctx, pid_t reaper)
{
	siginfo_t si = { .si_pid = 0 };
	int fd = (int)syscall(SYS_pidfd_open, reaper, 0);

	if (fd < 0) { /* gone already, or no pidfds: a plain PID it is */
		ctx->reaper = reaper;
		return;
	}
	if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG | __WALL) < 0 ||
	    si.si_pid != 0) { /* not our child, or already reaped now */
		close(fd);
		return;
	}
	ctx->reaper = reaper;
	ctx->reaper_pidfd = fd; /* pidfd_open() fds are close-on-exec */
}

/* Take the helper the token named, and its release fd if it is a pipe's
 * write end. */
void teardown_adopt(struct cpr_ctx *ctx, pid_t reaper, int release_fd)
{
	struct stat st;
	int fl;

	adopt_reaper(ctx, reaper);
	if (release_fd < 0)
		return;
	fl = fcntl(release_fd, F_GETFL);
	if (fstat(release_fd, &st) < 0 || !S_ISFIFO(st.st_mode) || fl < 0 ||
	    (fl & O_ACCMODE) != O_WRONLY) {
		ctx_log(ctx, LOG_WARNING, "cpr: exec token: release fd %d is not a pipe; ignored",
			release_fd);
		return;
	}
	(void)fcntl(release_fd, F_SETFD, FD_CLOEXEC);
	ctx->release_fd = release_fd;
}

/*
 * The byte that tells the helper "adopted, no rollback" before the EOF.  A
 * helper gone already (its timeout) must not kill us with SIGPIPE: it is
 * blocked for the write and a SIGPIPE this write raised is taken back.
 */
static void release_ack(int fd)
{
	sigset_t pipe_set, old, pending;
	struct timespec zero = { 0 };
	bool was_pending;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
	if (write(fd, "a", 1) < 0 && errno == EPIPE && !was_pending)
		(void)sigtimedwait(&pipe_set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Let the old image's address space go now, and say no rollback is due. */
void teardown_release(struct cpr_ctx *ctx)
{
	if (ctx->release_fd >= 0)
		release_ack(ctx->release_fd);
	ctx->release_fd = cpr_close(ctx->release_fd);
}

void teardown_reap(struct cpr_ctx *ctx, bool wait)
{
	int flags = WEXITED | __WALL | (wait ? 0 : WNOHANG);
	siginfo_t si = { .si_pid = 0 };
	int r;

	if (!ctx || ctx->reaper <= 0)
		return;
	if (wait)
		teardown_release(ctx); /* or it waits for us */
	do
		r = ctx->reaper_pidfd >= 0
			    ? waitid((idtype_t)P_PIDFD, (id_t)ctx->reaper_pidfd, &si, flags)
			    : waitid(P_PID, (id_t)ctx->reaper, &si, flags);
	while (r < 0 && errno == EINTR);
	if (r == 0 && si.si_pid == 0)
		return; /* still tearing down */
	/* Reaped, or not our child any more (someone else reaped it). */
	ctx->reaper = 0;
	ctx->reaper_pidfd = cpr_close(ctx->reaper_pidfd);
}
