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
#include <sys/utsname.h>
#include <unistd.h>

#include "dma-uapi.h"
#include "internal.h"

#include <cpr/cpr.h>

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

/* Linux >= 5.12 (the release of VFIO_UPDATE_VADDR), from uname(2). */
static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

/*
 * Since Linux 6.2 the type1 driver answers VFIO_UPDATE_VADDR only on a
 * container with its IOMMU set (and none of its groups emulated, as mdevs
 * are): a fresh container says 0.  Then the driver's presence and the
 * release say it; cpr_ramblock_dma_map(3) asks the real container again.
 */
static int probe_type1(int fd, char *ret_why, size_t len)
{
	if (ioctl(fd, CPR_VFIO_CHECK_EXTENSION, CPR_VFIO_UPDATE_VADDR) > 0)
		return why(ret_why, len, 1, "VFIO containers support VFIO_UPDATE_VADDR");
	if (ioctl(fd, CPR_VFIO_CHECK_EXTENSION, CPR_VFIO_TYPE1v2_IOMMU) <= 0)
		return why(ret_why, len, 0,
			   "no VFIO type1 IOMMU driver (VFIO_TYPE1v2_IOMMU), so no "
			   "VFIO_UPDATE_VADDR to re-register DMA mappings in the new process");
	if (!kernel_at_least(5, 12))
		return why(ret_why, len, 0,
			   "the VFIO type1 driver lacks VFIO_UPDATE_VADDR (Linux 5.12), needed "
			   "to re-register DMA mappings in the new process");
	return why(ret_why, len, 1,
		   "VFIO type1 supports VFIO_UPDATE_VADDR on containers without emulated "
		   "(mdev) groups");
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
	r = ioctl(fd, CPR_VFIO_GET_API_VERSION);
	if (r != CPR_VFIO_API_VERSION)
		return why(ret_why, len, 0, "/dev/vfio/vfio speaks API version %d, not %d", r,
			   CPR_VFIO_API_VERSION);
	return probe_type1(fd, ret_why, len);
}

/* With no IOAS and no device the calls fail on the state (ENOENT, or
 * succeed), never with ENOTTY; ENOTTY means the kernel does not know them. */
int probe_iommufd_calls(bool *ret_map_file, bool *ret_change_process)
{
	struct cpr_iommu_ioas_change_process cp = { .size = sizeof(cp) };
	struct cpr_iommu_ioas_map_file mf = { .size = sizeof(mf), .fd = -1, .length = 4096 };
	_cleanup_close_ int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	*ret_map_file = !(ioctl(fd, CPR_IOMMU_IOAS_MAP_FILE, &mf) < 0 && errno == ENOTTY);
	*ret_change_process =
		!(ioctl(fd, CPR_IOMMU_IOAS_CHANGE_PROCESS, &cp) < 0 && errno == ENOTTY);
	return 0;
}

CPR_EXPORT int cpr_probe_iommufd(char *ret_why, size_t len)
{
	_cleanup_close_ int fd = -EBADF;
	bool map_file, change;
	int r;

	if (!ret_why && len)
		return -EINVAL;
	r = open_dev("/dev/iommu", ret_why, len, &fd);
	if (r <= 0)
		return r;
	r = probe_iommufd_calls(&map_file, &change);
	if (r < 0)
		return why(ret_why, len, 0, "cannot open /dev/iommu: %s", strerror(-r));
	if (!map_file)
		return why(ret_why, len, 0,
			   "iommufd lacks IOMMU_IOAS_MAP_FILE (Linux 6.13), needed to map RAM "
			   "blocks by memfd and offset rather than by address");
	if (!change)
		return why(ret_why, len, 0,
			   "iommufd lacks IOMMU_IOAS_CHANGE_PROCESS (Linux 6.13), needed to move "
			   "pinned memory to the new process");
	return why(ret_why, len, 1,
		   "iommufd supports IOMMU_IOAS_MAP_FILE and IOMMU_IOAS_CHANGE_PROCESS");
}
