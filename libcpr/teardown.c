/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The teardown helper of cpr-exec.
 *
 * execve() drops the old address space; when it is the last user, the kernel
 * tears down every page table of the guest RAM inside execve(), ~12 ms per
 * GiB of 4 KiB pages, while the guest is paused.  Right before execve(),
 * cpr_exec() clones a helper with CLONE_VM: it holds a second reference, so
 * execve() only drops one.  The helper waits on a pipe whose write end passes
 * to the new image (named in the exec token as release=<fd>).  The new image
 * closes it once it adopted every preserved RAM block (or gave up the rest,
 * or freed its context, or exited): the helper exits and the old address
 * space is freed beside the running guest, without contending with the new
 * image's own mappings of the same memfds.  A byte on the pipe means
 * execve() failed; a timeout bounds the wait when the new image does not use
 * libcpr.
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

#if defined(__x86_64__)
static inline long raw4(long n, long a, long b, long c, long d)
{
	register long r10 __asm__("r10") = d;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}
#define HAVE_RAW_SYSCALL 1
#elif defined(__aarch64__)
static inline long raw4(long n, long a, long b, long c, long d)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;

	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
	return x0;
}
#define HAVE_RAW_SYSCALL 1
#endif

#ifdef HAVE_RAW_SYSCALL
struct helper_args {
	long rfd;
	long max_fd; /* for kernels without close_range() */
	struct pollfd pfd;
	struct timespec timeout;
};

/* Keep only the pipe's read end, wait for EOF, a byte or the timeout, exit. */
__attribute__((no_sanitize("address", "undefined"))) static int helper_main(void *arg)
{
	struct helper_args *a = arg;
	long rfd = a->rfd;

	if ((rfd > 0 && raw4(SYS_close_range, 0, rfd - 1, 0, 0) == -ENOSYS) ||
	    raw4(SYS_close_range, rfd + 1, ~0u, 0, 0) == -ENOSYS)
		for (long fd = 0; fd < a->max_fd; fd++)
			if (fd != rfd)
				raw4(SYS_close, fd, 0, 0, 0);
	while (raw4(SYS_ppoll, (long)&a->pfd, 1, (long)&a->timeout, 0) == -EINTR)
		;
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
static bool helper_wanted(struct cpr_ctx *ctx)
{
	const char *e = getenv(CPR_EXEC_HELPER_ENV);

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

/* The write end stays close-on-exec: cpr_exec() clears it with the others. */
void teardown_start(struct cpr_ctx *ctx, struct teardown *t)
{
	struct helper_args *args;
	sigset_t all, old;
	int p[2];

	*t = (struct teardown){ .pid = 0, .wfd = -EBADF, .stack = NULL };
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
		.max_fd = max_fd(),
		.pfd = { .fd = p[0], .events = POLLIN },
		.timeout = { .tv_sec = HELPER_TIMEOUT_S },
	};
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	t->pid = clone(helper_main, args, CLONE_VM | SIGCHLD, args);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (t->pid < 0) {
		ctx_log(ctx, LOG_WARNING, "cpr: no teardown helper: clone: %s", strerror(errno));
		t->pid = 0;
		goto fail;
	}
	close(p[0]);
	t->wfd = p[1];
	return;
fail:
	if (t->stack)
		munmap(t->stack, HELPER_STACK);
	t->stack = NULL;
	close(p[0]);
	close(p[1]);
}

/* execve() failed: let the helper go and reap it. */
void teardown_stop(struct teardown *t)
{
	if (t->pid <= 0)
		return;
	(void)!write(t->wfd, "x", 1);
	close(t->wfd);
	while (waitpid(t->pid, NULL, __WALL) < 0 && errno == EINTR)
		;
	munmap(t->stack, HELPER_STACK);
	t->pid = 0;
}
#else
void teardown_start(struct cpr_ctx *ctx, struct teardown *t)
{
	*t = (struct teardown){ .pid = 0, .wfd = -EBADF, .stack = NULL };
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

/* Let the old image's address space go now. */
void teardown_release(struct cpr_ctx *ctx)
{
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
