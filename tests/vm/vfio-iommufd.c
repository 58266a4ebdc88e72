// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Inside the test VM (tests/vm/run): the kernel paths CPR builds on, on a
 * real PCI device bound to vfio-pci behind an emulated Intel IOMMU.
 *
 * iommufd: open /dev/iommu and the device's cdev, VFIO_DEVICE_BIND_IOMMUFD,
 * IOMMU_IOAS_ALLOC, VFIO_DEVICE_ATTACH_IOMMUFD_PT, IOMMU_IOAS_MAP_FILE of a
 * memfd, IOMMU_IOAS_CHANGE_PROCESS from a child (and its refusal while a
 * mapping of anonymous memory exists), the PCI command register read through
 * the device fd's config region, IOMMU_IOAS_UNMAP.
 * Legacy VFIO: /dev/vfio/vfio, the device's group, VFIO_TYPE1v2_IOMMU,
 * VFIO_CHECK_EXTENSION(VFIO_UPDATE_VADDR), then the update-vaddr flow of a
 * memfd mapping (unmap with VFIO_DMA_UNMAP_FLAG_VADDR, map again at a new
 * address with VFIO_DMA_MAP_FLAG_VADDR).
 *
 * One TAP line per step; exit 0 when every step passed, 1 otherwise, 77
 * outside the test VM.  Built against the test kernel's uapi headers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define RAM_SIZE (4u << 20)
#define RAM_IOVA (1ull << 32)
#define E1000E_VENDOR 0x8086
#define E1000E_DEVICE 0x10d3

struct vm {
	const char *dev; /* PCI address */
	const char *group;
	const char *cdev;
	int iommufd;
	int devfd;
	int memfd;
	uint32_t ioas_id;
};

static int steps, failed;

/* One TAP line; err is 0 for success or the errno the step failed with. */
static int step(int err, const char *what)
{
	steps++;
	if (!err) {
		printf("ok %d - %s\n", steps, what);
	} else {
		failed++;
		printf("not ok %d - %s: %s\n", steps, what, strerror(err));
	}
	fflush(stdout);
	return err;
}

/* step() for an ioctl-style result: 0 or -1 with errno. */
static int step_rc(int rc, const char *what)
{
	return step(rc < 0 ? errno : 0, what);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int open_iommufd(struct vm *vm)
{
	vm->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (step_rc(vm->iommufd, "open /dev/iommu"))
		return -1;
	vm->devfd = open(vm->cdev, O_RDWR | O_CLOEXEC);
	return step_rc(vm->devfd, "open the device cdev") ? -1 : 0;
}

static int bind_attach(struct vm *vm)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = vm->iommufd };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };

	if (step_rc(ioctl(vm->devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind), "VFIO_DEVICE_BIND_IOMMUFD"))
		return -1;
	if (step_rc(ioctl(vm->iommufd, IOMMU_IOAS_ALLOC, &alloc), "IOMMU_IOAS_ALLOC"))
		return -1;
	vm->ioas_id = alloc.out_ioas_id;
	at.pt_id = vm->ioas_id;
	return step_rc(ioctl(vm->devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at),
		       "VFIO_DEVICE_ATTACH_IOMMUFD_PT to the IOAS")
		       ? -1
		       : 0;
}

static int map_file(struct vm *vm)
{
	struct iommu_ioas_map_file map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = vm->ioas_id,
		.fd = vm->memfd,
		.length = RAM_SIZE,
		.iova = RAM_IOVA,
	};

	return step_rc(ioctl(vm->iommufd, IOMMU_IOAS_MAP_FILE, &map),
		       "IOMMU_IOAS_MAP_FILE of a 4 MiB memfd at a fixed IOVA");
}

/* IOMMU_IOAS_CHANGE_PROCESS in a child: its errno, or 0. */
static int change_process_in_child(struct vm *vm)
{
	struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(ioctl(vm->iommufd, IOMMU_IOAS_CHANGE_PROCESS, &cp) < 0 ? errno : 0);
	if (waitpid(pid, &status, 0) < 0)
		return errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
}

/* With a mapping of anonymous memory present the change is refused. */
static int change_process_refused(struct vm *vm)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE,
		.ioas_id = vm->ioas_id,
		.length = 1u << 16,
		.iova = RAM_IOVA + RAM_SIZE,
	};
	struct iommu_ioas_unmap unmap = { .size = sizeof(unmap),
					  .ioas_id = vm->ioas_id,
					  .iova = map.iova,
					  .length = map.length };
	void *anon =
		mmap(NULL, map.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int err;

	if (anon == MAP_FAILED)
		return step(errno, "mmap anonymous memory");
	map.user_va = (uintptr_t)anon;
	if (step_rc(ioctl(vm->iommufd, IOMMU_IOAS_MAP, &map),
		    "IOMMU_IOAS_MAP of anonymous memory")) {
		munmap(anon, map.length);
		return -1;
	}
	err = change_process_in_child(vm);
	step(err == EINVAL ? 0
	     : err	   ? err
			   : EEXIST,
	     "IOMMU_IOAS_CHANGE_PROCESS refused (EINVAL) while an anonymous mapping exists");
	step_rc(ioctl(vm->iommufd, IOMMU_IOAS_UNMAP, &unmap),
		"IOMMU_IOAS_UNMAP of the anonymous mapping");
	munmap(anon, map.length);
	return 0;
}

/* Reads the config space of the device fd: vendor, device, command. */
static int read_config(int devfd, const char *how)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint16_t id[2], cmd;
	char what[160];

	snprintf(what, sizeof(what), "VFIO_DEVICE_GET_REGION_INFO of the config region (%s)", how);
	if (step_rc(ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &ri), what))
		return -1;
	if (pread(devfd, id, sizeof(id), (off_t)ri.offset) != sizeof(id) ||
	    pread(devfd, &cmd, sizeof(cmd), (off_t)ri.offset + PCI_COMMAND) != sizeof(cmd))
		return step(errno ? errno : EIO, "pread of the config region");
	snprintf(what, sizeof(what),
		 "config space reads %04x:%04x (want %04x:%04x), PCI_COMMAND 0x%04x", id[0], id[1],
		 E1000E_VENDOR, E1000E_DEVICE, cmd);
	return step(id[0] == E1000E_VENDOR && id[1] == E1000E_DEVICE ? 0 : ENODEV, what);
}

static void iommufd_flow(struct vm *vm)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap), .ioas_id = 0, .iova = RAM_IOVA, .length = RAM_SIZE
	};

	if (open_iommufd(vm) || bind_attach(vm) || map_file(vm))
		return;
	step(change_process_in_child(vm), "IOMMU_IOAS_CHANGE_PROCESS from a child process");
	change_process_refused(vm);
	read_config(vm->devfd, "iommufd");
	unmap.ioas_id = vm->ioas_id;
	if (!step_rc(ioctl(vm->iommufd, IOMMU_IOAS_UNMAP, &unmap), "IOMMU_IOAS_UNMAP of the memfd"))
		step(unmap.length == RAM_SIZE ? 0 : ERANGE, "IOMMU_IOAS_UNMAP unmapped 4 MiB");
}

/* The container with the device's group in it and type1v2 set. */
static int type1_container(const struct vm *vm, int *ret_container, int *ret_group)
{
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	char path[64];
	int c, g;

	c = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (step_rc(c, "open /dev/vfio/vfio"))
		return -1;
	*ret_container = c;
	step(ioctl(c, VFIO_GET_API_VERSION) == VFIO_API_VERSION ? 0 : EPROTO,
	     "VFIO_GET_API_VERSION");
	step(ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1 ? 0 : ENOTSUP,
	     "VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)");
	snprintf(path, sizeof(path), "/dev/vfio/%s", vm->group);
	g = open(path, O_RDWR | O_CLOEXEC);
	if (step_rc(g, "open the device's group"))
		return -1;
	*ret_group = g;
	if (step_rc(ioctl(g, VFIO_GROUP_GET_STATUS, &gs), "VFIO_GROUP_GET_STATUS"))
		return -1;
	if (step(gs.flags & VFIO_GROUP_FLAGS_VIABLE ? 0 : EBUSY, "the group is viable"))
		return -1;
	if (step_rc(ioctl(g, VFIO_GROUP_SET_CONTAINER, &c), "VFIO_GROUP_SET_CONTAINER"))
		return -1;
	return step_rc(ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU),
		       "VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)");
}

/* Maps RAM at the IOVA, invalidates its vaddr and maps it at ram2. */
static void type1_update_vaddr(int c, void *ram, void *ram2)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)ram,
		.iova = RAM_IOVA,
		.size = RAM_SIZE,
	};
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap),
						    .flags = VFIO_DMA_UNMAP_FLAG_VADDR,
						    .iova = RAM_IOVA,
						    .size = RAM_SIZE };

	step(ioctl(c, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR) == 1 ? 0 : ENOTSUP,
	     "VFIO_CHECK_EXTENSION(VFIO_UPDATE_VADDR)");
	if (step_rc(ioctl(c, VFIO_IOMMU_MAP_DMA, &map), "VFIO_IOMMU_MAP_DMA of the memfd"))
		return;
	if (step_rc(ioctl(c, VFIO_IOMMU_UNMAP_DMA, &unmap),
		    "VFIO_IOMMU_UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR"))
		return;
	map.flags = VFIO_DMA_MAP_FLAG_VADDR;
	map.vaddr = (uintptr_t)ram2;
	if (step_rc(ioctl(c, VFIO_IOMMU_MAP_DMA, &map),
		    "VFIO_IOMMU_MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR at a new address"))
		return;
	unmap.flags = 0;
	unmap.size = RAM_SIZE;
	if (!step_rc(ioctl(c, VFIO_IOMMU_UNMAP_DMA, &unmap), "VFIO_IOMMU_UNMAP_DMA"))
		step(unmap.size == RAM_SIZE ? 0 : ERANGE, "VFIO_IOMMU_UNMAP_DMA unmapped 4 MiB");
}

static void type1_flow(const struct vm *vm)
{
	int c = -1, g = -1, dev = -1;
	void *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, vm->memfd, 0);
	void *ram2 = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, vm->memfd, 0);

	if (step(ram == MAP_FAILED || ram2 == MAP_FAILED ? errno : 0, "mmap the memfd twice"))
		goto out;
	if (type1_container(vm, &c, &g))
		goto out;
	dev = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, vm->dev);
	if (!step_rc(dev, "VFIO_GROUP_GET_DEVICE_FD"))
		read_config(dev, "group");
	type1_update_vaddr(c, ram, ram2);
out:
	if (dev >= 0)
		close(dev);
	if (g >= 0)
		close(g);
	if (c >= 0)
		close(c);
	if (ram != MAP_FAILED)
		munmap(ram, RAM_SIZE);
	if (ram2 != MAP_FAILED)
		munmap(ram2, RAM_SIZE);
}

int main(void)
{
	struct vm vm = { .iommufd = -1, .devfd = -1, .memfd = -1 };
	int nfds = count_fds();

	vm.dev = getenv("CPR_VM_VFIO_DEV");
	vm.group = getenv("CPR_VM_VFIO_GROUP");
	vm.cdev = getenv("CPR_VM_VFIO_CDEV");
	if (!vm.dev || !*vm.dev || !vm.group || !*vm.group) {
		printf("SKIP: not in the test VM with a device on vfio-pci (run it with "
		       "tests/vm/run)\n");
		return 77;
	}
	if (step(vm.cdev && *vm.cdev ? 0 : ENOENT, "the device has a VFIO cdev"))
		vm.cdev = "/dev/vfio/devices/vfio0";
	vm.memfd = memfd_create("cpr-vm-ram", MFD_CLOEXEC);
	if (step_rc(vm.memfd, "memfd_create") ||
	    step_rc(ftruncate(vm.memfd, RAM_SIZE), "ftruncate 4 MiB"))
		return 1;
	iommufd_flow(&vm);
	if (vm.devfd >= 0)
		close(vm.devfd);
	if (vm.iommufd >= 0)
		close(vm.iommufd);
	type1_flow(&vm);
	close(vm.memfd);
	step(count_fds() == nfds ? 0 : EMFILE, "no fd leaked");
	printf("1..%d\n%d passed, %d failed\n", steps, steps - failed, failed);
	return failed ? 1 : 0;
}
