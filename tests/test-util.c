/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kvm-probe.h"
#include "test-util.h"

/* Linux 6.8 UAPI, for older headers. */
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
struct kvm_create_guest_memfd {
	uint64_t size, flags, reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif

int test_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

int test_memfd(const char *name, size_t size)
{
	_cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	return TAKE_FD(fd);
}

long test_read_file(const char *path, void **ret_buf)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t off = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (off < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		off += (size_t)r;
	}
	buf[off] = 0;
	*ret_buf = TAKE_PTR(buf);
	return (long)off;
}

const char *test_srcdir(void)
{
	const char *s = getenv("top_srcdir");
	return s && *s ? s : ".";
}

const char *test_builddir(void)
{
	const char *s = getenv("top_builddir");
	return s && *s ? s : ".";
}

const char *test_build_path(const char *rel)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s/%s", test_builddir(), rel);
	return buf;
}

void test_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	fflush(stdout);
	exit(77);
}

int test_kvm_open(char *why, size_t len)
{
	return kvm_probe(why, len);
}

int test_guest_memfd(size_t size, int *ret_kvm, int *ret_vm, char *why, size_t len)
{
	struct kvm_create_guest_memfd g = { .size = size };
	_cleanup_close_ int kvm = test_kvm_open(why, len), vm = -EBADF;
	int fd;

	if (kvm < 0)
		return kvm;
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		int r = -errno;

		snprintf(why, len, "KVM_CREATE_VM: %s", strerror(errno));
		return r;
	}
	if (ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) <= 0) {
		snprintf(why, len, "this kernel's KVM has no guest_memfd (KVM_CAP_GUEST_MEMFD)");
		return -EOPNOTSUPP;
	}
	fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &g);
	if (fd < 0) {
		int r = -errno;

		snprintf(why, len, "KVM_CREATE_GUEST_MEMFD: %s", strerror(errno));
		return r;
	}
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	*ret_kvm = TAKE_FD(kvm);
	*ret_vm = TAKE_FD(vm);
	return fd;
}
