// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Inside the test VM (tests/vm/run): a RAM block mapped for DMA with
 * cpr_ramblock_dma_map(3) keeps its mapping, and the passthrough device its
 * registers, across cpr-exec and cpr-transfer, with the device opened both
 * ways (WAY: "iommufd" = cdev + iommufd, "type1" = group + container).
 *
 *   dma-cpr probe                 the probes say "supported"
 *   dma-cpr kinds                 cpr_fd_check_kind() on the real fds
 *   dma-cpr exec WAY              cpr_exec() of itself; the new image adopts
 *   dma-cpr exec-fail WAY         an exec that fails restores everything
 *   dma-cpr transfer WAY          cpr_transfer_send() to a new process
 *   dma-cpr transfer-killed WAY   the receiver dies before its ack
 *   dma-cpr blocker WAY|change    a kernel lacking the call (see below)
 *
 * What "the mapping is intact" checks: the adopting process finds the block
 * mapped at its IOVA (a fixed map over it fails with EEXIST), it never maps
 * it again, and unmapping through libcpr then leaves nothing at the IOVA; the
 * device's registers written before (PCI command through the config region,
 * e1000e RDBAL0 through BAR 0) read back after.  No device DMA is issued.
 *
 * "blocker": the missing kernel call is simulated by a seccomp filter that
 * answers as a kernel without it does: ENOTTY for IOMMU_IOAS_MAP_FILE (WAY
 * iommufd) or IOMMU_IOAS_CHANGE_PROCESS ("change"), 0 for
 * VFIO_CHECK_EXTENSION(VFIO_UPDATE_VADDR) (type1).
 *
 * TAP lines from every process; exit 0 when all passed, 77 outside the VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/seccomp.h>
#include <linux/vfio.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "dma-dev.h"

#define CMD_BITS (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)
#define RDBAL_VALUE 0x5a5a1000u
#define PATTERN 0xa5

struct vmm {
	struct cpr_ctx *ctx;
	struct cpr_ramblock *rb;
	struct dev d;
};

static const char *self = "/proc/self/exe";

/* ---- the device's registers ---- */

static int regs_write(int devfd)
{
	uint16_t cmd;
	uint32_t rdbal = RDBAL_VALUE;

	if (dev_cfg16(devfd, PCI_COMMAND, &cmd, false) < 0)
		return step(EIO, "read PCI_COMMAND");
	cmd |= CMD_BITS;
	if (dev_cfg16(devfd, PCI_COMMAND, &cmd, true) < 0 || dev_bar32(devfd, RDBAL0, &rdbal, true))
		return step(EIO, "write PCI_COMMAND and RDBAL0");
	return 0;
}

static int regs_check(int devfd, const char *when)
{
	uint16_t cmd = 0;
	uint32_t rdbal = 0;

	if (dev_cfg16(devfd, PCI_COMMAND, &cmd, false) < 0 ||
	    dev_bar32(devfd, RDBAL0, &rdbal, false) < 0)
		return step(EIO, "read the registers %s", when);
	return step((cmd & CMD_BITS) == CMD_BITS && rdbal == RDBAL_VALUE ? 0 : ENODATA,
		    "%s: PCI_COMMAND 0x%04x (memory+master set), RDBAL0 0x%08x (want 0x%08x)", when,
		    cmd, rdbal, RDBAL_VALUE);
}

/* ---- the VMM's side ---- */

static int dma_fd(const struct dev *d)
{
	return d->iommufd_way ? d->iommufd : d->container;
}

static int vmm_register(struct vmm *v)
{
	struct dev *d = &v->d;
	int r = 0;

	if (d->iommufd_way) {
		r = cpr_fd_save(v->ctx, "iommufd", 0, d->iommufd, CPR_FD_IOMMUFD, NULL);
		if (!r)
			r = cpr_fd_save(v->ctx, "vfio-dev", 0, d->devfd, CPR_FD_VFIO_CDEV, NULL);
	} else {
		r = cpr_fd_save(v->ctx, "container", 0, d->container, CPR_FD_VFIO_CONTAINER, NULL);
		if (!r)
			r = cpr_fd_save(v->ctx, "group", 0, d->group, CPR_FD_VFIO_GROUP, NULL);
		if (!r)
			r = cpr_fd_save(v->ctx, "vfio-dev", 0, d->devfd, CPR_FD_GENERIC, NULL);
	}
	return step(r, "cpr_fd_save of the %s fds with their kinds",
		    d->iommufd_way ? "iommufd and cdev" : "container, group and device");
}

static int vmm_setup(struct vmm *v, bool iommufd_way)
{
	int r;

	*v = (struct vmm){ 0 };
	if (dev_open(&v->d, iommufd_way) || cpr_ctx_new(&v->ctx) < 0 || vmm_register(v))
		return -1;
	r = cpr_ramblock_new(v->ctx, "ram", RAM_SIZE, 0, 0, 0, &v->rb, NULL);
	if (step(r, "cpr_ramblock_new of a 4 MiB block"))
		return -1;
	memset(cpr_ramblock_host(v->rb), PATTERN, RAM_SIZE);
	r = cpr_ramblock_dma_map(v->rb, dma_fd(&v->d), v->d.ioas_id, RAM_IOVA,
				 CPR_DMA_READ | CPR_DMA_WRITE);
	if (step(r, "cpr_ramblock_dma_map at IOVA 0x%llx (%s)", RAM_IOVA,
		 iommufd_way ? "IOMMU_IOAS_MAP_FILE" : "VFIO_IOMMU_MAP_DMA"))
		return -1;
	if (regs_write(v->d.devfd))
		return -1;
	return regs_check(v->d.devfd, "written before the upgrade");
}

static void vmm_free(struct vmm *v)
{
	cpr_ramblock_free(v->rb);
	cpr_ctx_free(v->ctx);
	dev_close(&v->d);
	v->rb = NULL;
	v->ctx = NULL;
}

/* The block's bytes, its mapping, then libcpr unmaps it. */
static void vmm_check_mapping(struct vmm *v, const char *when)
{
	const uint8_t *p = cpr_ramblock_host(v->rb);
	size_t bad = 0;

	for (size_t i = 0; i < RAM_SIZE; i++)
		bad += p[i] != PATTERN;
	step(bad ? EILSEQ : 0, "%s: the guest RAM pattern is intact", when);
	step(dev_iova_busy(&v->d, cpr_ramblock_fd(v->rb)) == 1 ? 0 : ENOENT,
	     "%s: the block is still mapped at its IOVA (a fixed map over it: EEXIST)", when);
	if (!v->d.iommufd_way)
		step(dev_vaddr_valid(&v->d, cpr_ramblock_host(v->rb)) == 1 ? 0 : EFAULT,
		     "%s: the type1 mapping has a valid vaddr", when);
}

static void vmm_unmap(struct vmm *v)
{
	step(cpr_ramblock_dma_unmap(v->rb, dma_fd(&v->d), RAM_IOVA),
	     "cpr_ramblock_dma_unmap; afterwards nothing is mapped there");
	step(dev_unmap(&v->d) <= 0 ? 0 : EEXIST, "nothing left at the IOVA");
}

/* ---- the adopting side ---- */

static int vmm_find(struct vmm *v, bool iommufd_way, uint32_t ioas)
{
	struct dev *d = &v->d;
	int r;

	*d = (struct dev){ .iommufd_way = iommufd_way,
			   .iommufd = -1,
			   .container = -1,
			   .group = -1,
			   .devfd = -1,
			   .ioas_id = ioas };
	if (iommufd_way) {
		r = cpr_fd_claim(v->ctx, "iommufd", 0, CPR_FD_IOMMUFD, &d->iommufd, NULL);
		if (!r)
			r = cpr_fd_claim(v->ctx, "vfio-dev", 0, CPR_FD_VFIO_CDEV, &d->devfd, NULL);
	} else {
		r = cpr_fd_claim(v->ctx, "container", 0, CPR_FD_VFIO_CONTAINER, &d->container,
				 NULL);
		if (!r)
			r = cpr_fd_claim(v->ctx, "group", 0, CPR_FD_VFIO_GROUP, &d->group, NULL);
		if (!r)
			r = cpr_fd_claim(v->ctx, "vfio-dev", 0, CPR_FD_GENERIC, &d->devfd, NULL);
	}
	return step(r, "cpr_fd_claim: the same device fds, checked against their kinds");
}

/* type1: the old image invalidated the vaddr (the check leaves it so). */
static void vaddr_was_invalidated(const struct dev *d)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u),
						.flags = VFIO_DMA_UNMAP_FLAG_VADDR,
						.iova = RAM_IOVA,
						.size = RAM_SIZE };
	int r = ioctl(d->container, VFIO_IOMMU_UNMAP_DMA, &u) < 0 ? errno : 0;

	step(r == EINVAL ? 0
	     : r	 ? r
			 : EEXIST,
	     "the previous image invalidated the type1 vaddr before the hand-off");
}

static int vmm_adopt(struct vmm *v, const char *when)
{
	int r;

	if (!v->d.iommufd_way)
		vaddr_was_invalidated(&v->d);
	regs_check(v->d.devfd, when);
	r = cpr_ramblock_new(v->ctx, "ram", RAM_SIZE, 0, 0, 0, &v->rb, NULL);
	if (step(r, "%s: cpr_ramblock_new adopts the block and takes over its DMA mapping (%s)",
		 when, v->d.iommufd_way ? "IOMMU_IOAS_CHANGE_PROCESS" : "VFIO_DMA_MAP_FLAG_VADDR"))
		return -1;
	step(cpr_ramblock_adopted(v->rb) == 1 && cpr_ramblock_dma_count(v->rb) == 1 ? 0 : ENOENT,
	     "%s: adopted, with its one DMA mapping", when);
	vmm_check_mapping(v, when);
	return 0;
}

static int mode_adopt_exec(bool iommufd_way, int nfds, uint32_t ioas)
{
	struct cpr_error err = { 0 };
	struct vmm v = { 0 };
	int r;

	if (cpr_ctx_new(&v.ctx) < 0)
		return 1;
	r = cpr_exec_incoming(v.ctx, &err);
	if (step(r == 1 ? 0 : r ? r : ENOENT, "after cpr_exec: the incoming state is adopted"))
		return tap_done();
	if (!vmm_find(&v, iommufd_way, ioas) && !vmm_adopt(&v, "after exec"))
		vmm_unmap(&v);
	vmm_free(&v);
	step(count_fds() == nfds ? 0 : EMFILE, "no fd leaked across the exec");
	return tap_done();
}

static int mode_exec(bool iommufd_way, bool fail)
{
	char nfds_s[16], ioas_s[16];
	struct cpr_error err = { 0 };
	char *argv[] = { (char *)self, (char *)"adopt", (char *)(iommufd_way ? "iommufd" : "type1"),
			 nfds_s,       ioas_s,		NULL };
	struct vmm v;
	int nfds = count_fds(), r;

	snprintf(nfds_s, sizeof(nfds_s), "%d", nfds);
	if (vmm_setup(&v, iommufd_way) == 0) {
		snprintf(ioas_s, sizeof(ioas_s), "%u", v.d.ioas_id);
		r = cpr_exec(v.ctx, fail ? "/nonexistent/vmm" : self, argv, NULL, &err);
		step(fail && r == -ENOENT ? 0 : r, "cpr_exec %s returns: %s",
		     fail ? "of a missing binary" : "", err.message);
		if (fail) {
			regs_check(v.d.devfd, "after the failed exec");
			vmm_check_mapping(&v, "after the failed exec");
			step(cpr_check(v.ctx, CPR_MODE_EXEC, 0, NULL, NULL),
			     "after the failed exec: cpr-exec may be tried again");
			vmm_unmap(&v);
		}
	}
	vmm_free(&v);
	step(count_fds() == nfds ? 0 : EMFILE, "no fd leaked");
	return tap_done();
}

/* ---- transfer ---- */

static int mode_recv(bool iommufd_way, uint32_t ioas, int sock, bool die)
{
	struct cpr_error err = { 0 };
	struct vmm v = { 0 };
	int nfds = count_fds() - 1, r; /* the socket is closed below */

	if (cpr_ctx_new(&v.ctx) < 0)
		return 1;
	r = cpr_transfer_recv(v.ctx, sock, &err);
	if (step(r, "receiver: cpr_transfer_recv %s", err.message))
		return tap_done();
	if (vmm_find(&v, iommufd_way, ioas) || vmm_adopt(&v, "in the receiver"))
		return tap_done();
	if (die) {
		printf("# receiver: killed before its ack\n");
		fflush(stdout);
		kill(getpid(), SIGKILL);
	}
	step(cpr_transfer_ack(v.ctx, sock, NULL), "receiver: cpr_transfer_ack");
	close(sock);
	vmm_unmap(&v);
	vmm_free(&v);
	step(count_fds() == nfds ? 0 : EMFILE, "receiver: no fd leaked");
	return tap_done();
}

static pid_t spawn_receiver(bool iommufd_way, uint32_t ioas, bool die, int *ret_sock)
{
	char ioas_s[16], sock_s[16];
	char *argv[] = { (char *)self,
			 (char *)(die ? "recv-die" : "recv"),
			 (char *)(iommufd_way ? "iommufd" : "type1"),
			 ioas_s,
			 sock_s,
			 NULL };
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	snprintf(ioas_s, sizeof(ioas_s), "%u", ioas);
	snprintf(sock_s, sizeof(sock_s), "%d", sv[1]);
	pid = fork();
	if (pid == 0) {
		fcntl(sv[1], F_SETFD, 0);
		execv(self, argv);
		_exit(127);
	}
	close(sv[1]);
	*ret_sock = sv[0];
	return pid;
}

static int mode_transfer(bool iommufd_way, bool die)
{
	struct cpr_error err = { 0 };
	struct vmm v;
	int nfds = count_fds(), sock = -1, status = 0, r;
	pid_t pid;

	if (vmm_setup(&v, iommufd_way) == 0 &&
	    (pid = spawn_receiver(iommufd_way, v.d.ioas_id, die, &sock)) > 0) {
		r = cpr_transfer_send(v.ctx, sock, &err);
		step(r, "cpr_transfer_send %s", err.message);
		if (r == 0)
			r = cpr_transfer_wait_ack(v.ctx, sock, 60000, &err);
		waitpid(pid, &status, 0);
		if (!die) {
			step(r, "the receiver's ack");
			step(WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : ECHILD,
			     "the receiver passed its checks");
		} else {
			step(r < 0 ? 0 : EEXIST, "no ack from the killed receiver (%s)",
			     strerror(-r));
			regs_check(v.d.devfd, "the sender, after the receiver died");
			vmm_check_mapping(&v, "the sender, after the receiver died");
			step(cpr_check(v.ctx, CPR_MODE_TRANSFER, 0, NULL, NULL),
			     "the sender may transfer again");
			vmm_unmap(&v);
		}
		close(sock);
	}
	vmm_free(&v);
	step(count_fds() == nfds ? 0 : EMFILE, "sender: no fd leaked");
	return tap_done();
}

/* ---- a kernel without the call ---- */

/* ioctl(fd, @cmd, @arg or anything if @any) fails with @err (0: returns 0). */
static int deny_ioctl(unsigned long cmd, unsigned long arg, bool any, unsigned err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 5),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)cmd, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)arg, any ? 0 : 0, any ? 0 : 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0 ? -errno : 0;
}

struct reasons {
	char text[1024];
	unsigned n;
};

static void collect(void *userdata, const struct cpr_error *e)
{
	struct reasons *rs = userdata;
	size_t l = strlen(rs->text);

	rs->n++;
	snprintf(rs->text + l, sizeof(rs->text) - l, "%s%s", l ? "; " : "", e->message);
}

static void expect_blocked(struct cpr_ctx *ctx, enum cpr_mode mode, const char *feature)
{
	struct reasons rs = { .text = "" };
	int r = cpr_check(ctx, mode, 0, collect, &rs);

	step(r == -EBUSY && strstr(rs.text, feature) ? 0 : EPROTO,
	     "cpr_check(%s) refuses, naming %s: \"%s\"",
	     mode == CPR_MODE_EXEC ? "exec" : "transfer", feature, rs.text);
}

static int mode_blocker(const char *what)
{
	bool iommufd_way = strcmp(what, "type1") != 0, change = strcmp(what, "change") == 0;
	const char *feature = !iommufd_way ? "VFIO_UPDATE_VADDR"
			      : change	   ? "IOMMU_IOAS_CHANGE_PROCESS"
					   : "IOMMU_IOAS_MAP_FILE";
	char why[256] = "", *argv[] = { (char *)self, (char *)"probe", NULL };
	struct cpr_error err = { 0 };
	struct vmm v;
	int nfds = count_fds(), r;

	r = !iommufd_way ? deny_ioctl(VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR, false, 0)
	    : change	 ? deny_ioctl(IOMMU_IOAS_CHANGE_PROCESS, 0, true, ENOTTY)
			 : deny_ioctl(IOMMU_IOAS_MAP_FILE, 0, true, ENOTTY);
	if (step(r, "a seccomp filter answers %s as a kernel without it", feature))
		return tap_done();
	if (iommufd_way)
		step(cpr_probe_iommufd(why, sizeof(why)) == 0 && strstr(why, feature) ? 0 : EPROTO,
		     "cpr_probe_iommufd: unsupported, \"%s\"", why);
	if (vmm_setup(&v, iommufd_way) == 0) {
		if (change) {
			/* exec is refused too, by the fd kind judge (blocker.c) */
			expect_blocked(v.ctx, CPR_MODE_TRANSFER, feature);
		} else {
			expect_blocked(v.ctx, CPR_MODE_EXEC, feature);
			expect_blocked(v.ctx, CPR_MODE_TRANSFER, feature);
			r = cpr_exec(v.ctx, self, argv, NULL, &err);
			step(r == -EBUSY ? 0 : EPROTO,
			     "cpr_exec refuses before anything is touched: %s", err.message);
			regs_check(v.d.devfd, "after the refused exec");
			if (!iommufd_way)
				step(dev_vaddr_valid(&v.d, cpr_ramblock_host(v.rb)) == 1 ? 0
											 : EFAULT,
				     "the type1 vaddr was never invalidated");
		}
		vmm_unmap(&v);
	}
	vmm_free(&v);
	step(count_fds() == nfds ? 0 : EMFILE, "no fd leaked");
	return tap_done();
}

/* ---- probes and kinds ---- */

static int mode_probe(void)
{
	char why[256] = "";
	int r = cpr_probe_vfio(why, sizeof(why));

	step(r == 1 ? 0 : ENOTSUP, "cpr_probe_vfio: %s, \"%s\"",
	     r == 1 ? "supported" : "unsupported", why);
	r = cpr_probe_iommufd(why, sizeof(why));
	step(r == 1 ? 0 : ENOTSUP, "cpr_probe_iommufd: %s, \"%s\"",
	     r == 1 ? "supported" : "unsupported", why);
	return tap_done();
}

static void kind_is(int fd, enum cpr_fd_kind kind, bool want, const char *what)
{
	int r = cpr_fd_check_kind(fd, kind);

	step(want		 ? r
	     : r == -EMEDIUMTYPE ? 0
				 : EPROTO,
	     "%s %s %s", what, want ? "is" : "is not", cpr_fd_kind_to_string(kind));
}

/* A node named like a vfio cdev with /dev/null's numbers is not one. */
static void kind_fake_cdev(void)
{
	struct stat st;
	const char *path = "/dev/vfio/devices/vfio99";
	int fd;

	if (stat("/dev/null", &st) < 0 || mknod(path, S_IFCHR | 0600, st.st_rdev) < 0) {
		step(errno, "mknod %s", path);
		return;
	}
	fd = open(path, O_RDWR | O_CLOEXEC);
	kind_is(fd, CPR_FD_VFIO_CDEV, false, "a /dev/null node at /dev/vfio/devices/vfio99");
	close(fd);
	unlink(path);
}

static int mode_kinds(void)
{
	struct dev d;
	int nfds = count_fds();

	if (dev_open(&d, true) == 0) {
		kind_is(d.iommufd, CPR_FD_IOMMUFD, true, "/dev/iommu");
		kind_is(d.devfd, CPR_FD_VFIO_CDEV, true, "the device cdev");
		kind_is(d.devfd, CPR_FD_IOMMUFD, false, "the device cdev");
		kind_is(d.iommufd, CPR_FD_VFIO_CONTAINER, false, "/dev/iommu");
		kind_fake_cdev();
	}
	dev_close(&d);
	if (dev_open(&d, false) == 0) {
		kind_is(d.container, CPR_FD_VFIO_CONTAINER, true, "/dev/vfio/vfio");
		kind_is(d.group, CPR_FD_VFIO_GROUP, true, "the group");
		kind_is(d.container, CPR_FD_VFIO_GROUP, false, "/dev/vfio/vfio");
		kind_is(d.group, CPR_FD_VFIO_CONTAINER, false, "the group");
		kind_is(d.devfd, CPR_FD_VFIO_CDEV, false, "the group's device fd");
	}
	dev_close(&d);
	step(count_fds() == nfds ? 0 : EMFILE, "no fd leaked");
	return tap_done();
}

static int usage(void)
{
	fprintf(stderr, "usage: dma-cpr probe|kinds|exec|exec-fail|transfer|transfer-killed|"
			"blocker [iommufd|type1|change]\n");
	return 100;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "", *way = argc > 2 ? argv[2] : "";
	bool iommufd_way = strcmp(way, "iommufd") == 0;

	if (!getenv("CPR_VM_VFIO_DEV") || !getenv("CPR_VM_VFIO_GROUP")) {
		printf("SKIP: not in the test VM with a device on vfio-pci (run it with "
		       "tests/vm/run)\n");
		return 77;
	}
	if (!strcmp(mode, "probe"))
		return mode_probe();
	if (!strcmp(mode, "kinds"))
		return mode_kinds();
	if (!strcmp(mode, "blocker") && argc == 3)
		return mode_blocker(way);
	if (argc < 3 || (!iommufd_way && strcmp(way, "type1")))
		return usage();
	if (!strcmp(mode, "exec") || !strcmp(mode, "exec-fail"))
		return mode_exec(iommufd_way, !strcmp(mode, "exec-fail"));
	if (!strcmp(mode, "transfer") || !strcmp(mode, "transfer-killed"))
		return mode_transfer(iommufd_way, !strcmp(mode, "transfer-killed"));
	if (!strcmp(mode, "adopt") && argc == 5)
		return mode_adopt_exec(iommufd_way, atoi(argv[3]), (uint32_t)atoi(argv[4]));
	if ((!strcmp(mode, "recv") || !strcmp(mode, "recv-die")) && argc == 5)
		return mode_recv(iommufd_way, (uint32_t)atoi(argv[3]), atoi(argv[4]),
				 !strcmp(mode, "recv-die"));
	return usage();
}
