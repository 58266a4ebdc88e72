/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The passthrough device of the test VM (tests/vm/run) opened both ways,
 * for tests/vm/dma-cpr.c: cdev + iommufd, or group + type1 container.
 */
#ifndef CPR_VM_DMA_DEV_H
#define CPR_VM_DMA_DEV_H

#include <stdbool.h>
#include <stdint.h>

#define RAM_SIZE (4u << 20)
#define RAM_IOVA (1ull << 32)
#define RDBAL0 0x2800u /* e1000e: receive descriptor base, low; RX is off */

struct dev {
	bool iommufd_way; /* else group + container */
	int iommufd;	  /* iommufd way */
	uint32_t ioas_id;
	int container; /* type1 way */
	int group;
	int devfd;
};

/* TAP */
int step(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int step_rc(int rc, const char *what);
int tap_done(void);
int count_fds(void);

/* Opens the device the way @iommufd_way says, the IOAS attached or the
 * container's IOMMU set.  0 or -1 (with a TAP line). */
int dev_open(struct dev *d, bool iommufd_way);
void dev_close(struct dev *d);

/* Config space and BAR 0 through the device fd. */
int dev_cfg16(int devfd, unsigned off, uint16_t *val, bool write);
int dev_bar32(int devfd, unsigned off, uint32_t *val, bool write);

/* Whether a mapping covers RAM_IOVA: a fixed map over it says EEXIST. */
int dev_iova_busy(const struct dev *d, int memfd);
/* Unmaps RAM_IOVA..+RAM_SIZE the plain way: the length the kernel unmapped. */
int64_t dev_unmap(const struct dev *d);
/* type1: whether the vaddr at RAM_IOVA is valid (VFIO_DMA_UNMAP_FLAG_VADDR
 * succeeds on a valid one only); it is registered again at @host. */
int dev_vaddr_valid(const struct dev *d, void *host);

#endif
