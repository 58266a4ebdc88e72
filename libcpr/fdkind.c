/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kinds of preserved fds: what an fd must be to be saved or adopted as
 * a memfd, an eventfd, a VFIO or iommufd device node (by name and by the
 * driver behind its device number, from /proc/devices and /proc/misc). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>

#include "ctx.h"
#include "internal.h"

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif

/* The /proc/self/fd link of @fd, e.g. "anon_inode:[eventfd]" or "/dev/vfio/7". */
static int fd_link(int fd, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

/* A character device whose path is @want (or starts with @prefix) and still
 * names the same device node. */
static int check_chardev(int fd, const struct stat *st, const char *want, const char *prefix)
{
	char link[PATH_MAX];
	struct stat pst;
	int r;

	if (!S_ISCHR(st->st_mode))
		return -EMEDIUMTYPE;
	r = fd_link(fd, link, sizeof(link));
	if (r < 0)
		return r;
	if (want && strcmp(link, want) != 0)
		return -EMEDIUMTYPE;
	if (prefix && (strncmp(link, prefix, strlen(prefix)) != 0 || !link[strlen(prefix)] ||
		       strchr(link + strlen(prefix), '/')))
		return -EMEDIUMTYPE;
	if (stat(link, &pst) < 0 || !S_ISCHR(pst.st_mode) || pst.st_rdev != st->st_rdev)
		return -EMEDIUMTYPE;
	return 0;
}

/*
 * Does character device @rdev belong to @driver?  A misc device (major 10)
 * is named in /proc/misc by its minor, any other in /proc/devices by its
 * major: a node of the right name with another driver's numbers behind it
 * (a copy of /dev/null at /dev/vfio/devices/vfio0) is not that device.
 */
#define MISC_MAJOR_NR 10u
static bool chardev_is(dev_t rdev, const char *driver)
{
	bool misc = major(rdev) == MISC_MAJOR_NR, section = misc, found = false;
	FILE *f = fopen(misc ? "/proc/misc" : "/proc/devices", "re");
	char line[128], name[64];
	unsigned num;

	while (f && !found && fgets(line, sizeof(line), f)) {
		if (!misc && strncmp(line, "Character devices:", 18) == 0)
			section = true;
		else if (!misc && strncmp(line, "Block devices:", 14) == 0)
			section = false;
		else if (section && sscanf(line, "%u %63s", &num, name) == 2)
			found = num == (misc ? minor(rdev) : major(rdev)) &&
				strcmp(name, driver) == 0;
	}
	if (f)
		fclose(f);
	return found;
}

static int check_driver(int r, const struct stat *st, const char *driver)
{
	if (r < 0)
		return r;
	return chardev_is(st->st_rdev, driver) ? 0 : -EMEDIUMTYPE;
}

static int check_anon(int fd, const char *name)
{
	char link[PATH_MAX];
	int r = fd_link(fd, link, sizeof(link));

	if (r < 0)
		return r;
	return strcmp(link, name) == 0 ? 0 : -EMEDIUMTYPE;
}

/*
 * The devices of the kernel's internal shmem and hugetlbfs mounts, where every
 * memfd lives and no mounted tmpfs (such as /dev/shm) does.  Learnt once from
 * probe memfds; 0 when a probe failed (then the /proc link decides).
 */
static dev_t memfd_dev[2];
static pthread_once_t memfd_dev_once = PTHREAD_ONCE_INIT;

static void memfd_dev_probe(void)
{
	static const unsigned flags[2] = { MFD_CLOEXEC, MFD_CLOEXEC | MFD_HUGETLB };

	for (int i = 0; i < 2; i++) {
		struct stat st;
		int fd = memfd_create("cpr-probe", flags[i]);
		if (fd >= 0 && fstat(fd, &st) == 0)
			memfd_dev[i] = st.st_dev;
		cpr_close(fd);
	}
}

/* A memfd is a regular file on the internal shmem or hugetlbfs mount.
 * Checked by device number: no path lookup or extra call per fd.  Should a
 * probe have failed, F_GET_SEALS and the /proc link decide instead. */
static int check_memfd(int fd, const struct stat *st)
{
	char link[PATH_MAX];
	int r;

	if (!S_ISREG(st->st_mode))
		return -EMEDIUMTYPE;
	pthread_once(&memfd_dev_once, memfd_dev_probe);
	/* Only memfds live on those mounts: the device alone decides, with no
	 * further system call per fd. */
	if (st->st_dev && (st->st_dev == memfd_dev[0] || st->st_dev == memfd_dev[1]))
		return 0;
	if ((memfd_dev[0] && memfd_dev[1]) || fcntl(fd, F_GET_SEALS) < 0)
		return -EMEDIUMTYPE;
	r = fd_link(fd, link, sizeof(link));
	if (r < 0)
		return r;
	return strncmp(link, "/memfd:", 7) == 0 ? 0 : -EMEDIUMTYPE;
}

CPR_EXPORT int cpr_fd_check_kind(int fd, enum cpr_fd_kind kind)
{
	struct stat st;

	if (fd < 0)
		return -EBADF;
	if (kind < CPR_FD_GENERIC || kind > CPR_FD_KIND_MAX)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	switch (kind) {
	case CPR_FD_GENERIC:
		return 0;
	case CPR_FD_MEMFD:
		return check_memfd(fd, &st);
	case CPR_FD_EVENTFD:
		return check_anon(fd, "anon_inode:[eventfd]");
	case CPR_FD_GUEST_MEMFD:
		return check_anon(fd, "anon_inode:[kvm-gmem]");
	case CPR_FD_SOCKET:
		return S_ISSOCK(st.st_mode) ? 0 : -EMEDIUMTYPE;
	/* the node's name, then its driver by device number */
	case CPR_FD_VFIO_CDEV:
		return check_driver(check_chardev(fd, &st, NULL, "/dev/vfio/devices/vfio"), &st,
				    "vfio-dev");
	case CPR_FD_VFIO_GROUP:
		if (check_chardev(fd, &st, "/dev/vfio/vfio", NULL) == 0)
			return -EMEDIUMTYPE;
		return check_driver(check_chardev(fd, &st, NULL, "/dev/vfio/"), &st, "vfio");
	case CPR_FD_VFIO_CONTAINER:
		return check_driver(check_chardev(fd, &st, "/dev/vfio/vfio", NULL), &st, "vfio");
	case CPR_FD_IOMMUFD:
		return check_driver(check_chardev(fd, &st, "/dev/iommu", NULL), &st, "iommu");
	}
	return -EINVAL;
}

int fdkind_check_logged(struct cpr_ctx *ctx, int fd, uint32_t kind, const char *name, int32_t id)
{
	char q[80];
	int r = cpr_fd_check_kind(fd, (enum cpr_fd_kind)kind);

	if (r == -EMEDIUMTYPE)
		ctx_log(ctx, LOG_ERR, "cpr: fd %d for \"%s\" id %d is not a %s", fd,
			cpr_quote(q, sizeof(q), name, strlen(name)), id,
			cpr_fd_kind_to_string(kind));
	else if (r < 0)
		ctx_log(ctx, LOG_ERR, "cpr: fd %d for \"%s\" id %d: %s", fd,
			cpr_quote(q, sizeof(q), name, strlen(name)), id, strerror(-r));
	return r;
}
