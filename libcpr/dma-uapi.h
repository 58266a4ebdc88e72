/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The few iommufd and VFIO type1 definitions libcpr uses, copied from the
 * kernel's uapi (linux/iommufd.h is not installed everywhere, and older
 * linux/vfio.h lack the VADDR flags).  Layouts are the kernel's ABI.
 * Not installed.
 */
#ifndef CPR_DMA_UAPI_H
#define CPR_DMA_UAPI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>

#define CPR_IOMMUFD_TYPE (';')
#define CPR_IOMMUFD_CMD_IOAS_MAP 0x85
#define CPR_IOMMUFD_CMD_IOAS_UNMAP 0x86
#define CPR_IOMMUFD_CMD_IOAS_MAP_FILE 0x8f
#define CPR_IOMMUFD_CMD_IOAS_CHANGE_PROCESS 0x92

#define CPR_IOMMU_IOAS_MAP_FIXED_IOVA (1u << 0)
#define CPR_IOMMU_IOAS_MAP_WRITEABLE (1u << 1)
#define CPR_IOMMU_IOAS_MAP_READABLE (1u << 2)

struct cpr_iommu_ioas_map {
	uint32_t size;
	uint32_t flags;
	uint32_t ioas_id;
	uint32_t reserved;
	uint64_t user_va;
	uint64_t length;
	uint64_t iova;
};

struct cpr_iommu_ioas_map_file {
	uint32_t size;
	uint32_t flags;
	uint32_t ioas_id;
	int32_t fd;
	uint64_t start;
	uint64_t length;
	uint64_t iova;
};

struct cpr_iommu_ioas_unmap {
	uint32_t size;
	uint32_t ioas_id;
	uint64_t iova;
	uint64_t length;
};

struct cpr_iommu_ioas_change_process {
	uint32_t size;
	uint32_t reserved;
};

#define CPR_IOMMU_IOAS_MAP _IO(CPR_IOMMUFD_TYPE, CPR_IOMMUFD_CMD_IOAS_MAP)
#define CPR_IOMMU_IOAS_UNMAP _IO(CPR_IOMMUFD_TYPE, CPR_IOMMUFD_CMD_IOAS_UNMAP)
#define CPR_IOMMU_IOAS_MAP_FILE _IO(CPR_IOMMUFD_TYPE, CPR_IOMMUFD_CMD_IOAS_MAP_FILE)
#define CPR_IOMMU_IOAS_CHANGE_PROCESS _IO(CPR_IOMMUFD_TYPE, CPR_IOMMUFD_CMD_IOAS_CHANGE_PROCESS)

/* VFIO (linux/vfio.h), type1 container. */
#define CPR_VFIO_TYPE (';')
#define CPR_VFIO_BASE 100
#define CPR_VFIO_API_VERSION 0
#define CPR_VFIO_TYPE1v2_IOMMU 3
#define CPR_VFIO_UPDATE_VADDR 10
#define CPR_VFIO_GET_API_VERSION _IO(CPR_VFIO_TYPE, CPR_VFIO_BASE + 0)
#define CPR_VFIO_CHECK_EXTENSION _IO(CPR_VFIO_TYPE, CPR_VFIO_BASE + 1)
#define CPR_VFIO_IOMMU_MAP_DMA _IO(CPR_VFIO_TYPE, CPR_VFIO_BASE + 13)
#define CPR_VFIO_IOMMU_UNMAP_DMA _IO(CPR_VFIO_TYPE, CPR_VFIO_BASE + 14)

#define CPR_VFIO_DMA_MAP_FLAG_READ (1u << 0)
#define CPR_VFIO_DMA_MAP_FLAG_WRITE (1u << 1)
#define CPR_VFIO_DMA_MAP_FLAG_VADDR (1u << 2)
#define CPR_VFIO_DMA_UNMAP_FLAG_VADDR (1u << 2)

struct cpr_vfio_dma_map {
	uint32_t argsz;
	uint32_t flags;
	uint64_t vaddr;
	uint64_t iova;
	uint64_t size;
};

struct cpr_vfio_dma_unmap {
	uint32_t argsz;
	uint32_t flags;
	uint64_t iova;
	uint64_t size;
};

/* probe.c: whether this kernel's iommufd knows IOMMU_IOAS_MAP_FILE and
 * IOMMU_IOAS_CHANGE_PROCESS (asked on a fresh /dev/iommu fd); -errno when
 * /dev/iommu cannot be opened. */
int probe_iommufd_calls(bool *ret_map_file, bool *ret_change_process);

#endif
