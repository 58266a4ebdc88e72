/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The probe's confinement.  cpr_exec_probe() runs the target with the
 * VMM's own argv; a target that knows the probe answers from
 * cpr_exec_incoming() before it does anything, but one that does not (a
 * build older than the probe, another program) starts for real: it would
 * unlink and bind the VMM's control socket, claim its bundles, write its
 * files, while the VMM still runs the guest.  So in the probe's child,
 * right before execve(), a seccomp filter makes every call that changes
 * something outside the process fail with EPERM: creating, removing,
 * renaming or opening files for writing, binding or connecting sockets,
 * signalling or tracing other processes, and the ways around those
 * (io_uring, file handles, mounts).  Reading, memory and the process's own
 * fds stay allowed, so a target that knows the probe answers as before.
 * The process may still signal itself (abort() does) and be traced by its
 * own children, which inherit the filter (a sanitizer's leak check at exit
 * stops the process that way): neither reaches outside.
 *
 * Called between fork() and execve() of a possibly multi-threaded caller:
 * system calls only, the filter on the stack.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ctx.h"

#if defined(__x86_64__)
#define PROBE_ARCH AUDIT_ARCH_X86_64
#define PROBE_X32_BIT 0x40000000u
#elif defined(__aarch64__)
#define PROBE_ARCH AUDIT_ARCH_AARCH64
#define PROBE_X32_BIT 0u
#endif

#ifdef PROBE_ARCH
#define DATA(f) offsetof(struct seccomp_data, f)
#define ARG_LO(i) (DATA(args) + 8 * (i)) /* little-endian: the low word */
#define RET_DENY BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#define RET_ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
/* syscall n: deny. */
#define DENY(n) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 1), RET_DENY
/* n with argument i's low word having any bit of mask: deny. */
#define DENY_IF_FLAGS(n, i, mask)                                             \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 4),                       \
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(i)),                \
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (mask), 0, 1), RET_DENY, \
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, DATA(nr))
/* n with argument i's low word other than v: deny. */
#define DENY_UNLESS_ARG(n, i, v)                                          \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 4),                   \
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(i)),            \
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (v), 1, 0), RET_DENY, \
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, DATA(nr))
/* n with argument i's low word equal to v: deny. */
#define DENY_IF_ARG(n, i, v)                                              \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 4),                   \
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(i)),            \
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (v), 0, 1), RET_DENY, \
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, DATA(nr))

#define OPEN_WRITES (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)

int exec_probe_confine(void)
{
	/* execve() keeps the pid: this is the target's */
	uint32_t self = (uint32_t)syscall(SYS_getpid);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, DATA(arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROBE_ARCH, 1, 0),
		RET_DENY, /* another ABI: nothing at all */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, DATA(nr)),
#if PROBE_X32_BIT
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROBE_X32_BIT, 0, 1),
		RET_DENY,
#endif
	/* files: names, contents, attributes */
#ifdef __NR_open
		DENY_IF_FLAGS(__NR_open, 1, OPEN_WRITES),
		DENY(__NR_creat),
		DENY(__NR_unlink),
		DENY(__NR_rename),
		DENY(__NR_mkdir),
		DENY(__NR_rmdir),
		DENY(__NR_link),
		DENY(__NR_symlink),
		DENY(__NR_mknod),
		DENY(__NR_chmod),
		DENY(__NR_chown),
		DENY(__NR_lchown),
		DENY(__NR_utime),
		DENY(__NR_utimes),
		DENY(__NR_futimesat),
#endif
		DENY_IF_FLAGS(__NR_openat, 2, OPEN_WRITES),
		DENY(__NR_openat2),
		DENY(__NR_open_by_handle_at),
		DENY(__NR_unlinkat),
#ifdef __NR_renameat
		DENY(__NR_renameat),
#endif
		DENY(__NR_renameat2),
		DENY(__NR_mkdirat),
		DENY(__NR_linkat),
		DENY(__NR_symlinkat),
		DENY(__NR_mknodat),
		DENY(__NR_truncate),
		DENY(__NR_fchmod),
		DENY(__NR_fchmodat),
#ifdef __NR_fchmodat2
		DENY(__NR_fchmodat2),
#endif
		DENY(__NR_fchown),
		DENY(__NR_fchownat),
		DENY(__NR_utimensat),
		DENY(__NR_setxattr),
		DENY(__NR_lsetxattr),
		DENY(__NR_fsetxattr),
		DENY(__NR_removexattr),
		DENY(__NR_lremovexattr),
		DENY(__NR_fremovexattr),
		DENY(__NR_mount),
		DENY(__NR_umount2),
		DENY(__NR_io_uring_setup),
		/* sockets by name, other processes, the terminal */
		DENY(__NR_bind),
		DENY(__NR_connect),
		DENY_UNLESS_ARG(__NR_kill, 0, self),
		DENY_UNLESS_ARG(__NR_tkill, 0, self),
		DENY_UNLESS_ARG(__NR_tgkill, 0, self),
		DENY(__NR_rt_sigqueueinfo),
		DENY(__NR_rt_tgsigqueueinfo),
		DENY(__NR_pidfd_send_signal),
		DENY(__NR_pidfd_getfd),
		DENY_IF_ARG(__NR_ptrace, 0, PTRACE_TRACEME), /* its tracer: the VMM */
		DENY_UNLESS_ARG(__NR_ptrace, 1, self),
		DENY(__NR_process_vm_writev),
		DENY_IF_ARG(__NR_ioctl, 1, TIOCSTI),
		RET_ALLOW,
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	return 0;
}
#else
int exec_probe_confine(void)
{
	return -EOPNOTSUPP;
}
#endif
