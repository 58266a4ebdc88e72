/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel feature probes for the device kinds CPR has to keep alive.
 *
 * A VFIO type1 container survives CPR when the kernel lets the new process
 * re-register the DMA mappings' virtual addresses (VFIO_UPDATE_VADDR).
 * iommufd (and VFIO device cdevs bound to it) survive when the kernel lets a
 * new process take over the pinned pages' accounting and mm
 * (IOMMU_IOAS_CHANGE_PROCESS, Linux 6.13).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifdef HAVE_LINUX_VFIO_H
#include <linux/vfio.h>
#endif

#include "internal.h"

#include <cpr/cpr.h>

#ifndef VFIO_TYPE
#define VFIO_TYPE (';')
#define VFIO_BASE 100
#define VFIO_GET_API_VERSION _IO(VFIO_TYPE, VFIO_BASE + 0)
#define VFIO_CHECK_EXTENSION _IO(VFIO_TYPE, VFIO_BASE + 1)
#define VFIO_API_VERSION 0
#endif
#ifndef VFIO_UPDATE_VADDR
#define VFIO_UPDATE_VADDR 10
#endif

/* From linux/iommufd.h (not installed everywhere). */
#define IOMMUFD_TYPE (';')
#define IOMMUFD_CMD_IOAS_CHANGE_PROCESS 0x92
struct cpr_iommu_ioas_change_process {
	uint32_t size;
	uint32_t reserved;
};
#define CPR_IOMMU_IOAS_CHANGE_PROCESS _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_CHANGE_PROCESS)

static int why(char *buf, size_t len, int ret, const char *fmt, ...) _cpr_printf_(4, 5);

static int why(char *buf, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;

	if (buf && len) {
		va_start(ap, fmt);
		vsnprintf(buf, len, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static int open_dev(const char *path, char *ret_why, size_t len, int *ret_fd)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		*ret_fd = fd;
		return 1;
	}
	if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
		return why(ret_why, len, 0, "%s is absent (the driver is not loaded or not built)",
			   path);
	return why(ret_why, len, 0, "cannot open %s: %s", path, strerror(errno));
}

CPR_EXPORT int cpr_probe_vfio(char *ret_why, size_t len)
{
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (!ret_why && len)
		return -EINVAL;
	r = open_dev("/dev/vfio/vfio", ret_why, len, &fd);
	if (r <= 0)
		return r;
	r = ioctl(fd, VFIO_GET_API_VERSION);
	if (r != VFIO_API_VERSION)
		return why(ret_why, len, 0, "/dev/vfio/vfio speaks API version %d, not %d", r,
			   VFIO_API_VERSION);
	if (ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR) <= 0)
		return why(ret_why, len, 0,
			   "the VFIO type1 driver lacks VFIO_UPDATE_VADDR (needed to re-register "
			   "DMA mappings in the new process)");
	return why(ret_why, len, 1, "VFIO containers support VFIO_UPDATE_VADDR");
}

CPR_EXPORT int cpr_probe_iommufd(char *ret_why, size_t len)
{
	struct cpr_iommu_ioas_change_process cmd = { .size = sizeof(cmd) };
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (!ret_why && len)
		return -EINVAL;
	r = open_dev("/dev/iommu", ret_why, len, &fd);
	if (r <= 0)
		return r;
	/* With no device attached the call succeeds or fails on the state,
	 * never with ENOTTY; ENOTTY means the kernel does not know it. */
	if (ioctl(fd, CPR_IOMMU_IOAS_CHANGE_PROCESS, &cmd) < 0 && errno == ENOTTY)
		return why(ret_why, len, 0,
			   "iommufd lacks IOMMU_IOAS_CHANGE_PROCESS (Linux 6.13), needed to move "
			   "pinned memory to the new process");
	return why(ret_why, len, 1, "iommufd supports IOMMU_IOAS_CHANGE_PROCESS");
}
