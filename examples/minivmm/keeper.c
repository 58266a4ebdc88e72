/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The keeper: what an exec upgrade leaves behind is released only after the
 * new image runs the guest, not inside execve() and not while the new image
 * is starting.
 *
 * execve() closes the old KVM VM (destroying its memory slots and shadow
 * page tables) and drops the old address space (tearing down the page
 * tables of all guest RAM, ~12 ms per GiB of 4 KiB pages).  The keeper is a
 * child cloned with CLONE_VM before the pause: it shares the old address
 * space, so execve() does not free it, and it keeps copies of the KVM fds.
 * It waits for EOF on a pipe whose write end is a preserved fd; the new
 * image closes that once its vCPUs run, and the keeper exits, releasing
 * both.  It runs on the old address space with the caller's TLS, so it makes
 * raw system calls only.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm.h"

#define KEEPER_STACK (64u << 10)
#define KEEPER_FDS (VM_MAX_VCPUS + 3)

struct keeper_arg {
	int rfd;
	int n;
	int keep[KEEPER_FDS]; /* sorted */
};

#if defined(__x86_64__)
static inline long raw3(long n, long a, long b, long c)
{
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

__attribute__((no_sanitize("address", "undefined"), no_stack_protector)) static int
keeper_main(void *p)
{
	const struct keeper_arg *a = p;
	unsigned lo = 0;
	char c;

	for (int i = 0; i < a->n; i++) {
		if ((unsigned)a->keep[i] > lo)
			raw3(SYS_close_range, lo, (unsigned)a->keep[i] - 1, 0);
		lo = (unsigned)a->keep[i] + 1;
	}
	raw3(SYS_close_range, lo, ~0u, 0);
	while (raw3(SYS_read, a->rfd, (long)&c, 1) == -EINTR)
		;
	for (;;)
		raw3(SYS_exit, 0, 0, 0);
	return 0;
}

static void sort_fds(int *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			int t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
}

void keeper_start(struct vmm *m, struct keeper *k)
{
	struct keeper_arg *a;
	sigset_t all, old;
	int p[2];

	*k = (struct keeper){ .pid = 0, .wfd = -1 };
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	k->stack = mmap(NULL, KEEPER_STACK, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (k->stack == MAP_FAILED) {
		k->stack = NULL;
		goto fail;
	}
	/* The arguments live at the bottom of the keeper's own stack. */
	a = k->stack;
	a->rfd = p[0];
	a->keep[a->n++] = p[0];
	if (m->vm.use_kvm) {
		a->keep[a->n++] = m->vm.kvm_fd;
		a->keep[a->n++] = m->vm.vm_fd;
		for (unsigned i = 0; i < m->vm.n_vcpus; i++)
			a->keep[a->n++] = m->vm.vcpus[i].fd;
	}
	sort_fds(a->keep, a->n);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	k->pid = clone(keeper_main, (uint8_t *)k->stack + KEEPER_STACK, CLONE_VM | SIGCHLD, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (k->pid < 0) {
		k->pid = 0;
		goto fail;
	}
	close(p[0]);
	if (cpr_fd_save(m->ctx, FD_KEEPER, 0, p[1], CPR_FD_GENERIC, NULL) < 0) {
		close(p[1]);
		waitpid(k->pid, NULL, __WALL);
		k->pid = 0;
		munmap(k->stack, KEEPER_STACK);
		k->stack = NULL;
		return;
	}
	k->wfd = p[1];
	return;
fail:
	if (k->stack)
		munmap(k->stack, KEEPER_STACK);
	k->stack = NULL;
	close(p[0]);
	close(p[1]);
}
#else
void keeper_start(struct vmm *m, struct keeper *k)
{
	*k = (struct keeper){ .pid = 0, .wfd = -1 };
}
#endif

void keeper_stop(struct vmm *m, struct keeper *k)
{
	if (k->pid <= 0)
		return;
	cpr_fd_delete(m->ctx, FD_KEEPER, 0);
	close(k->wfd);
	while (waitpid(k->pid, NULL, __WALL) < 0 && errno == EINTR)
		;
	munmap(k->stack, KEEPER_STACK);
	k->pid = 0;
}

void keeper_release(struct vmm *m)
{
	int fd;

	if (cpr_fd_claim(m->ctx, FD_KEEPER, 0, CPR_FD_GENERIC, &fd, NULL) < 0)
		return;
	cpr_fd_delete(m->ctx, FD_KEEPER, 0);
	close(fd);
}

void keeper_reap(struct vmm *m)
{
	if (m->keeper_pid > 0 && waitpid(m->keeper_pid, NULL, WNOHANG | __WALL) != 0)
		m->keeper_pid = 0;
}
