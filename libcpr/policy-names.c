/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Names a policy may use for values: the constants listed in cpr-policy(5)
 * and errno names.  Values come from the C library's and the kernel's
 * headers of the build, so they are those of the native architecture.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#if defined(__x86_64__) || defined(__i386__)
#include <asm/prctl.h>
#endif
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/ioctl.h>

#include <sched.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>

#include <seccomp.h>

#include "internal.h"
#include "policy-internal.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif
#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#define KCMP_FILE 0 /* enum kcmp_type in linux/kcmp.h */
#ifndef ARCH_SET_FS
#define ARCH_SET_FS 0x1002 /* asm/prctl.h (x86) */
#define ARCH_GET_FS 0x1003
#endif

struct constant {
	const char *name;
	uint64_t value;
};

#define C(x)                      \
	{                         \
#x, (uint64_t)(x) \
	}
static const struct constant constants[] = {
	/* memory */
	C(PROT_NONE),
	C(PROT_READ),
	C(PROT_WRITE),
	C(PROT_EXEC),
	C(MAP_SHARED),
	C(MAP_PRIVATE),
	C(MAP_SHARED_VALIDATE),
	C(MAP_FIXED),
	C(MAP_ANONYMOUS),
	C(MAP_NORESERVE),
	C(MAP_POPULATE),
	C(MAP_HUGETLB),
	C(MAP_FIXED_NOREPLACE),
	C(MADV_NORMAL),
	C(MADV_DONTNEED),
	C(MADV_REMOVE),
	C(MADV_DONTFORK),
	C(MADV_DOFORK),
	C(MADV_HUGEPAGE),
	C(MADV_NOHUGEPAGE),
	C(MADV_DONTDUMP),
	C(MADV_DODUMP),
	/* memfd */
	C(MFD_CLOEXEC),
	C(MFD_ALLOW_SEALING),
	C(MFD_HUGETLB),
	/* processes */
	C(CLONE_VM),
	C(CLONE_FS),
	C(CLONE_FILES),
	C(CLONE_SIGHAND),
	C(CLONE_PIDFD),
	C(CLONE_PTRACE),
	C(CLONE_VFORK),
	C(CLONE_PARENT),
	C(CLONE_THREAD),
	C(CLONE_NEWNS),
	C(CLONE_SYSVSEM),
	C(CLONE_SETTLS),
	C(CLONE_PARENT_SETTID),
	C(CLONE_CHILD_CLEARTID),
	C(CLONE_CHILD_SETTID),
	C(CLONE_NEWCGROUP),
	C(CLONE_NEWUTS),
	C(CLONE_NEWIPC),
	C(CLONE_NEWUSER),
	C(CLONE_NEWPID),
	C(CLONE_NEWNET),
	C(CLONE_IO),
	/* sockets */
	C(AF_UNIX),
	C(AF_LOCAL),
	C(AF_INET),
	C(AF_INET6),
	C(AF_NETLINK),
	C(AF_VSOCK),
	C(SOCK_STREAM),
	C(SOCK_DGRAM),
	C(SOCK_SEQPACKET),
	C(SOCK_NONBLOCK),
	C(SOCK_CLOEXEC),
	C(SOL_SOCKET),
	C(SO_TYPE),
	C(SO_ERROR),
	C(SO_SNDBUF),
	C(SO_SNDTIMEO),
	C(SO_RCVTIMEO),
	C(SO_RCVBUF),
	C(SO_PASSCRED),
	C(SO_PEERCRED),
	C(SO_SNDBUFFORCE),
	C(SO_RCVBUFFORCE),
	C(SO_DOMAIN),
	C(SO_ACCEPTCONN),
	C(SO_PEERGROUPS),
	C(SO_PEERPIDFD),
	C(MSG_DONTWAIT),
	C(MSG_NOSIGNAL),
	C(MSG_CMSG_CLOEXEC),
	C(MSG_PEEK),
	C(MSG_TRUNC),
	/* files */
	C(O_RDONLY),
	C(O_WRONLY),
	C(O_RDWR),
	C(O_ACCMODE),
	C(O_CREAT),
	C(O_EXCL),
	C(O_NOCTTY),
	C(O_TRUNC),
	C(O_APPEND),
	C(O_NONBLOCK),
	C(O_DIRECTORY),
	C(O_NOFOLLOW),
	C(O_CLOEXEC),
	C(O_PATH),
	C(O_TMPFILE),
	C(AT_EMPTY_PATH),
	C(AT_SYMLINK_NOFOLLOW),
	C(F_DUPFD),
	C(F_GETFD),
	C(F_SETFD),
	C(F_GETFL),
	C(F_SETFL),
	C(F_DUPFD_CLOEXEC),
	C(F_ADD_SEALS),
	C(F_GET_SEALS),
	C(FD_CLOEXEC),
	/* signals, clocks, timer/event/signal fds */
	C(SIG_BLOCK),
	C(SIG_UNBLOCK),
	C(SIG_SETMASK),
	C(SIGABRT),
	C(SIGKILL),
	C(SIGTERM),
	C(SIGSYS),
	C(CLOCK_REALTIME),
	C(CLOCK_MONOTONIC),
	C(CLOCK_BOOTTIME),
	C(TFD_CLOEXEC),
	C(TFD_NONBLOCK),
	C(EFD_CLOEXEC),
	C(EFD_NONBLOCK),
	C(SFD_CLOEXEC),
	C(SFD_NONBLOCK),
	C(PIDFD_NONBLOCK),
	C(GRND_NONBLOCK),
	C(KCMP_FILE),
	/* ioctl */
	C(TCGETS),
	/* prctl */
	C(PR_SET_PDEATHSIG),
	C(PR_GET_DUMPABLE),
	C(PR_SET_DUMPABLE),
	C(PR_SET_NAME),
	C(PR_GET_NAME),
	C(PR_SET_NO_NEW_PRIVS),
	C(PR_GET_NO_NEW_PRIVS),
	C(ARCH_SET_FS),
	C(ARCH_GET_FS),
	C(SIGCHLD),
	/* futex */
	C(FUTEX_PRIVATE_FLAG),
	C(FUTEX_CLOCK_REALTIME),
	/* AT_FDCWD is a negative int: the kernel sees it sign-extended */
	{ "AT_FDCWD", (uint64_t)(int64_t)AT_FDCWD },
};
#undef C

bool policy_constant_lookup(const char *name, uint64_t *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(constants); i++)
		if (strcmp(constants[i].name, name) == 0) {
			*ret = constants[i].value;
			return true;
		}
	return false;
}

/* The kernel's errno values stop at 133 (EHWPOISON); 4095 is MAX_ERRNO. */
#define ERRNO_NAMED_MAX 200

const char *policy_errno_name(int e)
{
	if (e <= 0 || e > ERRNO_NAMED_MAX)
		return NULL;
	return strerrorname_np(e);
}

bool policy_errno_lookup(const char *name, uint64_t *ret)
{
	static const struct constant aliases[] = {
		{ "EWOULDBLOCK", EWOULDBLOCK },
		{ "EDEADLOCK", EDEADLOCK },
		{ "ENOTSUP", ENOTSUP },
	};

	for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
		if (strcmp(aliases[i].name, name) == 0) {
			*ret = aliases[i].value;
			return true;
		}
	for (int e = 1; e <= ERRNO_NAMED_MAX; e++) {
		const char *n = strerrorname_np(e);

		if (n && strcmp(n, name) == 0) {
			*ret = (uint64_t)e;
			return true;
		}
	}
	return false;
}

const char *policy_action_format(uint32_t action, char *buf, size_t len)
{
	const char *name;

	if ((action & SCMP_ACT_KILL_PROCESS) == 0 && (action & 0xffff0000u) == SCMP_ACT_ERRNO(0)) {
		const char *e = policy_errno_name((int)(action & 0xffffu));

		if (e)
			snprintf(buf, len, "errno %s", e);
		else
			snprintf(buf, len, "errno %u", action & 0xffffu);
		return buf;
	}
	switch (action) {
	case SCMP_ACT_KILL_PROCESS:
		name = "kill";
		break;
	case SCMP_ACT_KILL_THREAD:
		name = "kill-thread";
		break;
	case SCMP_ACT_TRAP:
		name = "trap";
		break;
	case SCMP_ACT_LOG:
		name = "log";
		break;
	case SCMP_ACT_ALLOW:
		name = "allow";
		break;
	default:
		name = "unknown";
	}
	snprintf(buf, len, "%s", name);
	return buf;
}
