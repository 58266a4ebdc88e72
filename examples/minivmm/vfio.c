/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A passthrough device: a VFIO PCI device opened as a cdev bound to iommufd
 * (--vfio-cdev) or through its group in a type1 container (--vfio-group),
 * guest RAM mapped for its DMA with cpr_ramblock_dma_map(3).  The fds are
 * registered with libcpr, which keeps the mapping across every upgrade
 * (libcpr(3), "Passthrough devices"); the device is never reset: what was
 * written at boot (PCI_COMMAND, and RDBAL0 on an e1000e) reads back after
 * each upgrade, and the mapping is still the kernel's (a fixed map over its
 * IOVA fails with EEXIST).  No device DMA is started.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm.h"

#define FD_IOMMUFD "minivmm.iommufd"
#define FD_CONTAINER "minivmm.vfio-container"
#define FD_GROUP "minivmm.vfio-group"
#define FD_DEVICE "minivmm.vfio-device"

#define REC_VFIO_VERSION 1u
#define REC_VFIO_SIZE 72u

/* The kernel's VFIO and iommufd interface (linux/vfio.h, linux/iommufd.h:
 * the build host's headers may predate iommufd). */
#define MV_VFIO_TYPE ';'
#define MV_VFIO_BASE 100
#define MV_VFIO_TYPE1v2_IOMMU 3
#define MV_VFIO_SET_IOMMU _IO(MV_VFIO_TYPE, MV_VFIO_BASE + 2)
#define MV_VFIO_GROUP_SET_CONTAINER _IO(MV_VFIO_TYPE, MV_VFIO_BASE + 4)
#define MV_VFIO_GROUP_GET_DEVICE_FD _IO(MV_VFIO_TYPE, MV_VFIO_BASE + 6)
#define MV_VFIO_DEVICE_GET_REGION_INFO _IO(MV_VFIO_TYPE, MV_VFIO_BASE + 8)
#define MV_VFIO_IOMMU_MAP_DMA _IO(MV_VFIO_TYPE, MV_VFIO_BASE + 13)
#define MV_VFIO_IOMMU_UNMAP_DMA _IO(MV_VFIO_TYPE, MV_VFIO_BASE + 14)
#define MV_VFIO_DEVICE_BIND_IOMMUFD _IO(MV_VFIO_TYPE, MV_VFIO_BASE + 18)
#define MV_VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(MV_VFIO_TYPE, MV_VFIO_BASE + 19)
#define MV_IOMMU_IOAS_ALLOC _IO(';', 0x81)
#define MV_IOMMU_IOAS_UNMAP _IO(';', 0x86)
#define MV_IOMMU_IOAS_MAP_FILE _IO(';', 0x8f)
#define MV_PCI_CONFIG_REGION 7
#define MV_PCI_BAR0_REGION 0

#define PCI_VENDOR 0x00
#define PCI_COMMAND 0x04
#define PCI_COMMAND_BITS 0x0006u /* memory space, bus master */
#define E1000E_VENDOR 0x8086
#define E1000E_DEVICE 0x10d3
#define E1000E_RDBAL0 0x2800u /* receive descriptor base, low; RX stays off */

struct mv_bind {
	uint32_t argsz, flags;
	int32_t iommufd;
	uint32_t out_devid;
};
struct mv_attach {
	uint32_t argsz, flags, pt_id, pasid;
};
struct mv_ioas_alloc {
	uint32_t size, flags, out_ioas_id;
};
struct mv_map_file {
	uint32_t size, flags, ioas_id;
	int32_t fd;
	uint64_t start, length, iova;
};
struct mv_ioas_unmap {
	uint32_t size, ioas_id;
	uint64_t iova, length;
};
struct mv_region_info {
	uint32_t argsz, flags, index, cap_offset;
	uint64_t size, offset;
};
struct mv_dma_map {
	uint32_t argsz, flags;
	uint64_t vaddr, iova, size;
};
struct mv_dma_unmap {
	uint32_t argsz, flags;
	uint64_t iova, size;
};

/* ---------------------------------------------------------------- the device */

static int region_rw(int devfd, unsigned index, unsigned off, void *val, size_t len, bool write)
{
	struct mv_region_info ri = { .argsz = sizeof(ri), .index = index };
	ssize_t n;

	if (ioctl(devfd, MV_VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
		return -errno;
	n = write ? pwrite(devfd, val, len, (off_t)(ri.offset + off))
		  : pread(devfd, val, len, (off_t)(ri.offset + off));
	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

static bool is_e1000e(const struct vfio_pt *p)
{
	return p->vendor == E1000E_VENDOR && p->device == E1000E_DEVICE;
}

static void copy_name(char *buf, size_t len, const char *s)
{
	size_t n = strnlen(s, len - 1);

	memcpy(buf, s, n);
	buf[n] = '\0';
}

/* The PCI address behind a /dev/vfio/devices/vfioN cdev. */
static void cdev_name(const char *cdev, char *buf, size_t len)
{
	char path[128], target[256], *b = strrchr(cdev, '/');
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/class/vfio-dev/%s/device", b ? b + 1 : cdev);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		copy_name(buf, len, cdev);
		return;
	}
	target[n] = '\0';
	copy_name(buf, len, basename(target));
}

/* The first device of IOMMU group @group. */
static int group_device(const char *group, char *buf, size_t len)
{
	char path[128];
	struct dirent *e;
	DIR *d;
	int r = -ENODEV;

	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%s/devices", group);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			copy_name(buf, len, e->d_name);
			r = 0;
			break;
		}
	closedir(d);
	return r;
}

static int open_iommufd_way(struct vfio_pt *p, const char *cdev)
{
	struct mv_bind bind = { .argsz = sizeof(bind) };
	struct mv_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct mv_attach at = { .argsz = sizeof(at) };

	cdev_name(cdev, p->name, sizeof(p->name));
	p->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (p->iommufd < 0)
		return -errno;
	p->devfd = open(cdev, O_RDWR | O_CLOEXEC);
	if (p->devfd < 0)
		return -errno;
	bind.iommufd = p->iommufd;
	if (ioctl(p->devfd, MV_VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0 ||
	    ioctl(p->iommufd, MV_IOMMU_IOAS_ALLOC, &alloc) < 0)
		return -errno;
	p->ioas_id = alloc.out_ioas_id;
	at.pt_id = p->ioas_id;
	return ioctl(p->devfd, MV_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at) < 0 ? -errno : 0;
}

static int open_type1_way(struct vfio_pt *p, const char *group)
{
	char path[64];
	int r = group_device(group, p->name, sizeof(p->name));

	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/dev/vfio/%s", group);
	p->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (p->container < 0)
		return -errno;
	p->group = open(path, O_RDWR | O_CLOEXEC);
	if (p->group < 0)
		return -errno;
	if (ioctl(p->group, MV_VFIO_GROUP_SET_CONTAINER, &p->container) < 0 ||
	    ioctl(p->container, MV_VFIO_SET_IOMMU, MV_VFIO_TYPE1v2_IOMMU) < 0)
		return -errno;
	p->devfd = ioctl(p->group, MV_VFIO_GROUP_GET_DEVICE_FD, p->name);
	return p->devfd < 0 ? -errno : 0;
}

void vfio_close(struct vfio_pt *p)
{
	int *fds[] = { &p->devfd, &p->group, &p->container, &p->iommufd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	p->way = VFIO_WAY_NONE;
}

/* PCI_COMMAND memory + bus master; an e1000e's RDBAL0 (RX off: no DMA). */
static int regs_write(struct vfio_pt *p, uint64_t seed)
{
	uint16_t id[2], cmd;
	int r = region_rw(p->devfd, MV_PCI_CONFIG_REGION, PCI_VENDOR, id, sizeof(id), false);

	if (r >= 0)
		r = region_rw(p->devfd, MV_PCI_CONFIG_REGION, PCI_COMMAND, &cmd, 2, false);
	if (r < 0)
		return r;
	p->vendor = id[0];
	p->device = id[1];
	cmd |= PCI_COMMAND_BITS;
	r = region_rw(p->devfd, MV_PCI_CONFIG_REGION, PCI_COMMAND, &cmd, 2, true);
	if (r < 0 || !is_e1000e(p))
		return r;
	p->rdbal = ((uint32_t)seed & 0xfffff000u) | 0x1000u;
	return region_rw(p->devfd, MV_PCI_BAR0_REGION, E1000E_RDBAL0, &p->rdbal, 4, true);
}

/* ---------------------------------------------------------------- the record */

static void put(uint8_t *b, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *b, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

/* 0 version, 4 way, 8 ioas_id, 12 rdbal, 16 iova, 24 vendor, 26 device,
 * 28 reserved (0), 32 PCI address (NUL-padded, 40 bytes). */
static int record_set(struct vmm *m)
{
	const struct vfio_pt *p = &m->pt;
	uint8_t b[REC_VFIO_SIZE] = { 0 };

	put(b, REC_VFIO_VERSION, 4);
	put(b + 4, p->way, 4);
	put(b + 8, p->ioas_id, 4);
	put(b + 12, p->rdbal, 4);
	put(b + 16, p->iova, 8);
	put(b + 24, p->vendor, 2);
	put(b + 26, p->device, 2);
	memcpy(b + 32, p->name, strnlen(p->name, REC_VFIO_SIZE - 33));
	return cpr_ctx_set_private(m->ctx, REC_VFIO, 0, b, sizeof(b));
}

static int record_get(const void *data, size_t len, struct vfio_pt *p)
{
	const uint8_t *b = data;

	if (len != REC_VFIO_SIZE || get(b, 4) != REC_VFIO_VERSION || get(b + 28, 4) ||
	    b[REC_VFIO_SIZE - 1])
		return -EBADMSG;
	p->way = (enum vfio_way)get(b + 4, 4);
	if (p->way != VFIO_WAY_IOMMUFD && p->way != VFIO_WAY_TYPE1)
		return -EBADMSG;
	p->ioas_id = (uint32_t)get(b + 8, 4);
	p->rdbal = (uint32_t)get(b + 12, 4);
	p->iova = get(b + 16, 8);
	p->vendor = (uint16_t)get(b + 24, 2);
	p->device = (uint16_t)get(b + 26, 2);
	memcpy(p->name, b + 32, REC_VFIO_SIZE - 32);
	return 0;
}

/* ---------------------------------------------------------------- boot, adopt */

static int dma_fd(const struct vfio_pt *p)
{
	return p->way == VFIO_WAY_IOMMUFD ? p->iommufd : p->container;
}

static int register_fds(struct vmm *m)
{
	struct vfio_pt *p = &m->pt;
	int r;

	if (p->way == VFIO_WAY_IOMMUFD) {
		r = cpr_fd_save(m->ctx, FD_IOMMUFD, 0, p->iommufd, CPR_FD_IOMMUFD, NULL);
		return r < 0 ? r
			     : cpr_fd_save(m->ctx, FD_DEVICE, 0, p->devfd, CPR_FD_VFIO_CDEV, NULL);
	}
	r = cpr_fd_save(m->ctx, FD_CONTAINER, 0, p->container, CPR_FD_VFIO_CONTAINER, NULL);
	if (r >= 0)
		r = cpr_fd_save(m->ctx, FD_GROUP, 0, p->group, CPR_FD_VFIO_GROUP, NULL);
	return r < 0 ? r : cpr_fd_save(m->ctx, FD_DEVICE, 0, p->devfd, CPR_FD_GENERIC, NULL);
}

static int boot(struct vmm *m, const char **what)
{
	struct vfio_pt *p = &m->pt;
	int r;

	*what = "opening the device";
	r = p->way == VFIO_WAY_IOMMUFD ? open_iommufd_way(p, m->opt.vfio_cdev)
				       : open_type1_way(p, m->opt.vfio_group);
	if (r < 0)
		return r;
	*what = "registering its fds with libcpr";
	r = register_fds(m);
	if (r < 0)
		return r;
	*what = "cpr_ramblock_dma_map";
	r = cpr_ramblock_dma_map(m->rb, dma_fd(p), p->ioas_id, p->iova,
				 CPR_DMA_READ | CPR_DMA_WRITE);
	if (r < 0)
		return r;
	*what = "writing its registers";
	r = regs_write(p, m->rec.seed);
	if (r < 0)
		return r;
	*what = "recording it";
	return record_set(m);
}

int vfio_boot(struct vmm *m)
{
	struct vfio_pt *p = &m->pt;
	const char *what = "";
	int r;

	if (!m->opt.vfio_cdev && !m->opt.vfio_group)
		return 0;
	p->way = m->opt.vfio_cdev ? VFIO_WAY_IOMMUFD : VFIO_WAY_TYPE1;
	p->iova = VFIO_RAM_IOVA;
	r = boot(m, &what);
	if (r < 0)
		fprintf(stderr, "minivmm: passthrough device %s: %s: %s\n",
			m->opt.vfio_cdev ? m->opt.vfio_cdev : m->opt.vfio_group, what,
			strerror(-r));
	return r;
}

static int claim_fds(struct vmm *m)
{
	struct vfio_pt *p = &m->pt;
	int r;

	if (p->way == VFIO_WAY_IOMMUFD) {
		r = cpr_fd_claim(m->ctx, FD_IOMMUFD, 0, CPR_FD_IOMMUFD, &p->iommufd, NULL);
		return r < 0 ? r
			     : cpr_fd_claim(m->ctx, FD_DEVICE, 0, CPR_FD_VFIO_CDEV, &p->devfd,
					    NULL);
	}
	r = cpr_fd_claim(m->ctx, FD_CONTAINER, 0, CPR_FD_VFIO_CONTAINER, &p->container, NULL);
	if (r >= 0)
		r = cpr_fd_claim(m->ctx, FD_GROUP, 0, CPR_FD_VFIO_GROUP, &p->group, NULL);
	return r < 0 ? r : cpr_fd_claim(m->ctx, FD_DEVICE, 0, CPR_FD_GENERIC, &p->devfd, NULL);
}

/* After cpr_ramblock_new() adopted guest RAM and, with it, its mapping. */
int vfio_adopt(struct vmm *m)
{
	const struct cpr_state *st = cpr_ctx_incoming_state(m->ctx);
	const void *data;
	size_t len;
	int r;

	if (!st || cpr_state_private_find(st, REC_VFIO, 0, &data, &len) < 0)
		return 0;
	r = record_get(data, len, &m->pt);
	if (r >= 0)
		r = claim_fds(m);
	if (r >= 0 && cpr_ramblock_dma_count(m->rb) != 1)
		r = -ENOENT;
	if (r >= 0)
		r = record_set(m);
	if (r < 0)
		fprintf(stderr, "minivmm: incoming passthrough device: %s\n", strerror(-r));
	return r;
}

/* ---------------------------------------------------------------- checks */

/* 1 when the kernel still maps the IOVA (a fixed map over it: EEXIST). */
static int iova_busy(struct vmm *m)
{
	static uint8_t page[4096] __attribute__((aligned(4096)));
	struct vfio_pt *p = &m->pt;
	int r;

	if (p->way == VFIO_WAY_IOMMUFD) {
		struct mv_map_file f = { .size = sizeof(f),
					 .flags = 1u | 4u, /* FIXED_IOVA | READABLE */
					 .ioas_id = p->ioas_id,
					 .fd = cpr_ramblock_fd(m->rb),
					 .length = sizeof(page),
					 .iova = p->iova };
		struct mv_ioas_unmap u = { .size = sizeof(u),
					   .ioas_id = p->ioas_id,
					   .iova = p->iova,
					   .length = sizeof(page) };

		r = ioctl(p->iommufd, MV_IOMMU_IOAS_MAP_FILE, &f) < 0 ? errno : 0;
		if (!r)
			ioctl(p->iommufd, MV_IOMMU_IOAS_UNMAP, &u);
	} else {
		struct mv_dma_map d = { .argsz = sizeof(d),
					.flags = 1u, /* READ */
					.vaddr = (uintptr_t)page,
					.iova = p->iova,
					.size = sizeof(page) };
		struct mv_dma_unmap u = { .argsz = sizeof(u),
					  .iova = p->iova,
					  .size = sizeof(page) };

		r = ioctl(p->container, MV_VFIO_IOMMU_MAP_DMA, &d) < 0 ? errno : 0;
		if (!r)
			ioctl(p->container, MV_VFIO_IOMMU_UNMAP_DMA, &u);
	}
	return r == EEXIST ? 1 : r ? -r : 0;
}

static int check(struct vmm *m, char *why, size_t len)
{
	struct vfio_pt *p = &m->pt;
	uint16_t cmd = 0;
	uint32_t rdbal = 0;
	int r = region_rw(p->devfd, MV_PCI_CONFIG_REGION, PCI_COMMAND, &cmd, 2, false);

	if (r >= 0 && is_e1000e(p))
		r = region_rw(p->devfd, MV_PCI_BAR0_REGION, E1000E_RDBAL0, &rdbal, 4, false);
	if (r < 0) {
		snprintf(why, len, "reading its registers: %s", strerror(-r));
		return r;
	}
	if ((cmd & PCI_COMMAND_BITS) != PCI_COMMAND_BITS || rdbal != p->rdbal) {
		snprintf(why, len,
			 "registers changed: PCI_COMMAND 0x%04x, RDBAL0 0x%08x (wrote 0x%08x)", cmd,
			 rdbal, p->rdbal);
		return -EBADMSG;
	}
	r = iova_busy(m);
	if (r != 1) {
		snprintf(why, len, "guest RAM is no longer mapped at IOVA %#" PRIx64 " (%s)",
			 p->iova, r < 0 ? strerror(-r) : "a fixed map over it succeeded");
		return -EBADMSG;
	}
	snprintf(why, len,
		 "PCI_COMMAND 0x%04x%s read back; RAM still mapped at IOVA %#" PRIx64
		 " (fixed re-map: EEXIST)",
		 cmd, is_e1000e(p) ? " and RDBAL0" : "", p->iova);
	return 0;
}

int vfio_check(struct vmm *m, char *why, size_t len)
{
	struct vfio_pt *p = &m->pt;

	if (p->way == VFIO_WAY_NONE)
		return 0;
	p->check = check(m, p->check_msg, sizeof(p->check_msg));
	if (p->check < 0)
		snprintf(why, len, "passthrough device %s: %s", p->name, p->check_msg);
	return p->check < 0 ? -EBADMSG : 0;
}

void vfio_print(struct vmm *m)
{
	struct vfio_pt *p = &m->pt;

	if (p->way == VFIO_WAY_NONE || m->opt.quiet)
		return;
	printf("  device    %s (%04x:%04x, %s): %s %s\n", p->name, p->vendor, p->device,
	       p->way == VFIO_WAY_IOMMUFD ? "cdev + iommufd" : "group + type1 container",
	       p->check < 0 ? "FAILED:" : "ok:", p->check_msg);
}
