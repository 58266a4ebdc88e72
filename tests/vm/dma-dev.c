// SPDX-License-Identifier: LGPL-2.1-or-later
/* The test VM's passthrough device, opened both ways (see dma-dev.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dma-dev.h"

static int steps, failed;

int step(int err, const char *fmt, ...)
{
	va_list ap;

	steps++;
	printf("%s %d - ", err ? "not ok" : "ok", steps);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (err) {
		failed++;
		printf(": %s", strerror(err < 0 ? -err : err));
	}
	printf(" [pid %d]\n", (int)getpid());
	fflush(stdout);
	return err;
}

int step_rc(int rc, const char *what)
{
	return step(rc < 0 ? errno : 0, "%s", what);
}

int tap_done(void)
{
	printf("# %d passed, %d failed\n", steps - failed, failed);
	fflush(stdout);
	return failed ? 1 : 0;
}

int count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;

	if (!dir)
		return -1;
	while (readdir(dir))
		n++;
	closedir(dir);
	return n;
}

static int open_iommufd_way(struct dev *d)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	const char *cdev = getenv("CPR_VM_VFIO_CDEV");

	d->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	d->devfd = open(cdev ? cdev : "", O_RDWR | O_CLOEXEC);
	if (d->iommufd < 0 || d->devfd < 0)
		return step(errno, "open /dev/iommu and the device cdev");
	bind.iommufd = d->iommufd;
	if (ioctl(d->devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0 ||
	    ioctl(d->iommufd, IOMMU_IOAS_ALLOC, &alloc) < 0)
		return step(errno, "bind the cdev to iommufd, allocate an IOAS");
	d->ioas_id = alloc.out_ioas_id;
	at.pt_id = d->ioas_id;
	return step_rc(ioctl(d->devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at),
		       "cdev + iommufd: device bound, IOAS allocated and attached");
}

static int open_type1_way(struct dev *d)
{
	const char *group = getenv("CPR_VM_VFIO_GROUP"), *pci = getenv("CPR_VM_VFIO_DEV");
	char path[64];

	snprintf(path, sizeof(path), "/dev/vfio/%s", group ? group : "none");
	d->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	d->group = open(path, O_RDWR | O_CLOEXEC);
	if (d->container < 0 || d->group < 0)
		return step(errno, "open /dev/vfio/vfio and %s", path);
	if (ioctl(d->group, VFIO_GROUP_SET_CONTAINER, &d->container) < 0 ||
	    ioctl(d->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
		return step(errno, "group in the container, type1v2 set");
	d->devfd = ioctl(d->group, VFIO_GROUP_GET_DEVICE_FD, pci ? pci : "");
	return step_rc(d->devfd, "group + container: type1v2 set, device fd from the group");
}

int dev_open(struct dev *d, bool iommufd_way)
{
	*d = (struct dev){
		.iommufd_way = iommufd_way, .iommufd = -1, .container = -1, .group = -1, .devfd = -1
	};
	if (iommufd_way ? open_iommufd_way(d) : open_type1_way(d)) {
		dev_close(d);
		return -1;
	}
	return 0;
}

void dev_close(struct dev *d)
{
	int *fds[] = { &d->devfd, &d->group, &d->container, &d->iommufd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

static int region_offset(int devfd, unsigned index, off_t *ret)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = index };

	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
		return -errno;
	*ret = (off_t)ri.offset;
	return 0;
}

static int rw(int devfd, unsigned index, unsigned off, void *val, size_t len, bool write)
{
	off_t base = 0;
	ssize_t n;
	int r = region_offset(devfd, index, &base);

	if (r < 0)
		return r;
	n = write ? pwrite(devfd, val, len, base + off) : pread(devfd, val, len, base + off);
	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

int dev_cfg16(int devfd, unsigned off, uint16_t *val, bool write)
{
	return rw(devfd, VFIO_PCI_CONFIG_REGION_INDEX, off, val, sizeof(*val), write);
}

int dev_bar32(int devfd, unsigned off, uint32_t *val, bool write)
{
	return rw(devfd, VFIO_PCI_BAR0_REGION_INDEX, off, val, sizeof(*val), write);
}

int dev_iova_busy(const struct dev *d, int memfd)
{
	if (d->iommufd_way) {
		struct iommu_ioas_map_file m = {
			.size = sizeof(m),
			.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE,
			.ioas_id = d->ioas_id,
			.fd = memfd,
			.length = 1u << 16,
			.iova = RAM_IOVA,
		};

		return ioctl(d->iommufd, IOMMU_IOAS_MAP_FILE, &m) < 0 && errno == EEXIST;
	} else {
		static char page[1u << 16] __attribute__((aligned(4096)));
		struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m),
						      .flags = VFIO_DMA_MAP_FLAG_READ,
						      .vaddr = (uintptr_t)page,
						      .iova = RAM_IOVA,
						      .size = sizeof(page) };

		return ioctl(d->container, VFIO_IOMMU_MAP_DMA, &m) < 0 && errno == EEXIST;
	}
}

int64_t dev_unmap(const struct dev *d)
{
	if (d->iommufd_way) {
		struct iommu_ioas_unmap u = { .size = sizeof(u),
					      .ioas_id = d->ioas_id,
					      .iova = RAM_IOVA,
					      .length = RAM_SIZE };

		return ioctl(d->iommufd, IOMMU_IOAS_UNMAP, &u) < 0 ? -errno : (int64_t)u.length;
	} else {
		struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u),
							.iova = RAM_IOVA,
							.size = RAM_SIZE };

		return ioctl(d->container, VFIO_IOMMU_UNMAP_DMA, &u) < 0 ? -errno : (int64_t)u.size;
	}
}

int dev_vaddr_valid(const struct dev *d, void *host)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u),
						.flags = VFIO_DMA_UNMAP_FLAG_VADDR,
						.iova = RAM_IOVA,
						.size = RAM_SIZE };
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m),
					      .flags = VFIO_DMA_MAP_FLAG_VADDR,
					      .vaddr = (uintptr_t)host,
					      .iova = RAM_IOVA,
					      .size = RAM_SIZE };
	int valid = ioctl(d->container, VFIO_IOMMU_UNMAP_DMA, &u) == 0;

	if (ioctl(d->container, VFIO_IOMMU_MAP_DMA, &m) < 0)
		return -errno;
	return valid;
}
