/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A passthrough device: a VFIO PCI device that minivmm owns, guest RAM
 * mapped for its DMA, both kept across every upgrade (vfio.c).
 */
#ifndef MINIVMM_VFIO_H
#define MINIVMM_VFIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REC_VFIO 0x8d04u /* the passthrough device: how it was opened, what was written */

/* Guest RAM is mapped at IOVA = guest physical address 0, below the x86
 * interrupt window (0xfee00000), as a VMM maps it for a device. */
#define VFIO_RAM_IOVA 0ull
#define VFIO_RAM_MAX 0xfee00000ull

enum vfio_way {
	VFIO_WAY_NONE = 0,
	VFIO_WAY_IOMMUFD = 1, /* --vfio-cdev: cdev bound to iommufd, an IOAS */
	VFIO_WAY_TYPE1 = 2,   /* --vfio-group: group in a type1 container */
};

struct vfio_pt {
	enum vfio_way way;
	int iommufd;
	uint32_t ioas_id;
	int container;
	int group;
	int devfd;
	uint64_t iova;
	uint16_t vendor;
	uint16_t device;
	uint32_t rdbal; /* e1000e: the RDBAL0 value written at boot, else 0 */
	char name[48];	/* the device's PCI address */
	int check;	/* vfio_check(): 0 or -errno */
	char check_msg[160];
};

struct vmm;

/* Fresh image with --vfio-cdev or --vfio-group: open the device, register
 * its fds, map guest RAM for DMA, write the registers.  0 when not asked. */
int vfio_boot(struct vmm *m);
/* Incoming image: take the device and its mapping over when the state
 * carries one (0 when it does not). */
int vfio_adopt(struct vmm *m);
/* The registers read back and the mapping is in the kernel: 0 or -EBADMSG,
 * @why filled (no device: 0). */
int vfio_check(struct vmm *m, char *why, size_t len);
/* One line for the boot and upgrade reports. */
void vfio_print(struct vmm *m);
void vfio_close(struct vfio_pt *p);

#endif
