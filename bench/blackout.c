/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * blackout: how long a guest is paused while minivmm upgrades itself, against
 * floors and a copy baseline measured in the same run.
 *
 * For every RAM size and page size: boot minivmm with that much fully
 * populated guest RAM, upgrade it --reps times by exec and by transfer over
 * its control socket, and take the pause each new image reports (vCPUs
 * stopped -> first run of the guest in the new image).  Then, on a memfd of
 * the same size and page size, measure:
 *   floor exec      execve() of a process that maps the memfd, populated,
 *                   plus KVM VM + vCPU + memory slot creation (what an exec
 *                   upgrade cannot avoid without help);
 *   floor transfer  one small message to a process whose VM already exists,
 *                   plus KVM_SET_SREGS/REGS there (what moves in the pause);
 *   copy            save the RAM to a file, then restore it into a fresh
 *                   memfd in a new process (save/restore without CPR).
 * Without a usable /dev/kvm, minivmm runs its guest in the interpreter and
 * the floors are the interpreter's: the VM build is a vCPU thread created,
 * its registers loaded and running; the transfer loads the registers into a
 * parked vCPU thread and wakes it.  QEMU's own cpr-transfer pause is
 * reported when qemu-system-x86_64 10 or newer is installed (else null),
 * under KVM or, without it, TCG.  Prints a table (on stderr with --json,
 * whose stdout is the JSON alone), and writes blackout.json and blackout.dat
 * for bench/plot.gp; a figure not measured is null (JSON) or nan (.dat).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blackout.h"
#include "kvm-probe.h"

#ifndef PLOT_SCRIPT
#define PLOT_SCRIPT "bench/plot.gp"
#endif
#define MAX_REPS BLACKOUT_MAX_REPS
#define MAX_POINTS 64
#define HUGE_2M (2ull << 20)
#define CHUNK (64ull << 20)

extern char **environ;

struct point {
	const char *mode;
	unsigned ram_gib;
	unsigned page_kib;
	double pause_ms[MAX_REPS];
	unsigned n;
	double floor_ms;
	double copy_ms;
	double pause_min_ms, pause_max_ms;
	double floor_exec_ms, floor_build_ms; /* exec: the two parts of floor_ms */
	double qemu_ms;			      /* QEMU's cpr-transfer, same RAM and pages */
	const char *backend;		      /* minivmm's: "kvm" or "interpreter" */
	const char *qemu_accel;		      /* "kvm", "tcg", or NULL: not measured */
	double late_ms[MAX_REPS];	      /* exec: other memory slots joined after resume */
	bool ok;
};

/* QEMU 10.0.2 cpr-transfer on this machine (peer baselines), for the
 * targets only: qemu_ms stays null unless measured in the run. */
#define QEMU_REF_1G_MS 2.8
#define QEMU_REF_8G_MS 4.1
/* Without KVM, QEMU runs under TCG; its idle firmware guest and a hand-over
 * that copies no RAM keep even 8 GiB quick there (about 3 ms a pause, 40 s
 * for both page sizes), so no size is left out unless --qemu-tcg-max-gib. */
#define QEMU_TCG_MAX_GIB 0 /* 0: no limit */

struct config {
	const char *minivmm;
	const char *self;
	const char *out_dir;
	const char *plot_script;
	unsigned sizes[8], n_sizes;
	unsigned pages[2], n_pages;
	unsigned reps;
	bool json;
	bool copy;
	unsigned modes;		   /* bit 0 exec, 1 transfer, 2 cprd */
	const char *cprd;	   /* daemon binary for the cprd mode */
	const char *qemu;	   /* NULL: QEMU not measured */
	bool kvm;		   /* /dev/kvm works: KVM floors, QEMU under KVM */
	char no_kvm[256];	   /* else why not */
	unsigned qemu_tcg_max_gib; /* under TCG, larger sizes are not measured; 0: all */
	char qemu_why[512];	   /* why QEMU is not measured */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double blackout_median(double *v, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	if (n == 0)
		return NAN;
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------------------------------------------------------------- huge pages */

static long hugepages_get(void)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "re");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int hugepages_set(long n)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "we");

	if (!f)
		return -errno;
	fprintf(f, "%ld\n", n);
	if (fclose(f) != 0)
		return -errno;
	return hugepages_get() >= n ? 0 : -ENOMEM;
}

/* ---------------------------------------------------------------- memfd */

/* A memfd of @size bytes on @page_kib pages, mapped shared; its fd. */
static int memfd_map(const char *name, uint64_t size, unsigned page_kib, uint8_t **ret_map)
{
	unsigned flags = MFD_CLOEXEC | (page_kib == 2048 ? MFD_HUGETLB | (21u << 26) : 0);
	int fd = memfd_create(name, flags), r;
	uint8_t *p;

	if (fd < 0)
		return -errno;
	p = ftruncate(fd, (off_t)size) < 0
		    ? MAP_FAILED
		    : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_map = p;
	return fd;
}

/* @gib GiB, every page populated. */
static int memfd_of(unsigned gib, unsigned page_kib, uint8_t **ret_map)
{
	uint64_t size = (uint64_t)gib << 30;
	uint8_t *p;
	int fd = memfd_map("blackout", size, page_kib, &p);

	if (fd < 0)
		return fd;
	for (uint64_t off = 0; off < size; off += 4096)
		p[off] = (uint8_t)(off >> 12) | 1;
	*ret_map = p;
	return fd;
}

/* ---------------------------------------------------------------- floors */

/* The exec target: report when main() ran, through fd argv[2]. */
static int exec_target(int argc, char **argv)
{
	uint64_t t = now_ns();

	if (argc < 3)
		return 100;
	return write(atoi(argv[2]), &t, sizeof(t)) == sizeof(t) ? 0 : 1;
}

/* execve() of a process that has the memfd mapped and populated. */
static double floor_exec_once(const struct config *c, int memfd, uint64_t size)
{
	int pfd[2];
	uint64_t t0 = 0, t1 = 0;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return NAN;
	pid = fork();
	if (pid == 0) {
		char fdarg[16];
		char *argv[] = { (char *)"blackout", (char *)"--exec-target", fdarg, NULL };
		void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, memfd,
			       0);

		if (p == MAP_FAILED)
			_exit(1);
		snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
		fcntl(pfd[1], F_SETFD, 0);
		t0 = now_ns();
		if (write(pfd[1], &t0, sizeof(t0)) != sizeof(t0))
			_exit(1);
		execve(c->self, argv, environ);
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0 || read(pfd[0], &t0, sizeof(t0)) != sizeof(t0) ||
	    read(pfd[0], &t1, sizeof(t1)) != sizeof(t1))
		t1 = 0;
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	return t1 ? (double)(t1 - t0) / 1e6 : NAN;
}

/* 1 if /dev/kvm is a KVM this bench can use, as minivmm probes it; else 0 and why. */
static int kvm_usable(char *why, size_t len)
{
	int fd = kvm_probe(why, len);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

struct kvm_vm {
	int kvm, vm, vcpu;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
};

static void kvm_close(struct kvm_vm *k)
{
	if (k->vcpu >= 0)
		close(k->vcpu);
	if (k->vm >= 0)
		close(k->vm);
	if (k->kvm >= 0)
		close(k->kvm);
}

/* VM + vCPU + memory slot(s) over @map, as minivmm builds them. */
static int kvm_build(struct kvm_vm *k, uint8_t *map, uint64_t size)
{
	uint64_t low = size < (3ull << 30) ? size : 3ull << 30;
	struct kvm_userspace_memory_region r0 = { .slot = 0,
						  .memory_size = low,
						  .userspace_addr = (uintptr_t)map };
	struct kvm_userspace_memory_region r1 = { .slot = 1,
						  .guest_phys_addr = 4ull << 30,
						  .memory_size = size - low,
						  .userspace_addr = (uintptr_t)(map + low) };

	*k = (struct kvm_vm){ .kvm = -1, .vm = -1, .vcpu = -1 };
	k->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->kvm < 0 || (k->vm = ioctl(k->kvm, KVM_CREATE_VM, 0)) < 0)
		return -errno;
	ioctl(k->vm, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	if ((k->vcpu = ioctl(k->vm, KVM_CREATE_VCPU, 0ul)) < 0)
		return -errno;
	if (ioctl(k->vm, KVM_SET_USER_MEMORY_REGION, &r0) < 0 ||
	    (size > low && ioctl(k->vm, KVM_SET_USER_MEMORY_REGION, &r1) < 0))
		return -errno;
	if (ioctl(k->vcpu, KVM_GET_REGS, &k->regs) < 0 ||
	    ioctl(k->vcpu, KVM_GET_SREGS, &k->sregs) < 0)
		return -errno;
	return 0;
}

/*
 * An interpreter vCPU as minivmm has one: a thread, parked until its
 * registers are loaded, that then runs the guest (here: stamps the time).
 * Guest RAM needs no registration: the interpreter reads the mapping.
 */
struct interp_vcpu {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	bool go;
	uint64_t t_run;
};

static void *interp_vcpu_thread(void *arg)
{
	struct interp_vcpu *v = arg;

	pthread_mutex_lock(&v->lock);
	while (!v->go)
		pthread_cond_wait(&v->cond, &v->lock);
	v->t_run = now_ns();
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

static int interp_build(struct interp_vcpu *v)
{
	*v = (struct interp_vcpu){ .go = false };
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	return -pthread_create(&v->thread, NULL, interp_vcpu_thread, v);
}

/* Load the registers from @msg, let the vCPU run; when it ran. */
static uint64_t interp_start(struct interp_vcpu *v, const uint8_t *msg)
{
	pthread_mutex_lock(&v->lock);
	memcpy(&v->regs, msg, sizeof(v->regs));
	memcpy(&v->sregs, msg + sizeof(v->regs), sizeof(v->sregs));
	v->go = true;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->thread, NULL);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	return v->t_run;
}

#define VCPU_MSG_SIZE 1024
_Static_assert(sizeof(struct kvm_regs) + sizeof(struct kvm_sregs) <= VCPU_MSG_SIZE,
	       "the vCPU message holds the registers");

/* The VM an exec upgrade builds in the pause: KVM's, or the interpreter's. */
static double floor_build_once(const struct config *c, uint8_t *map, uint64_t size)
{
	static const uint8_t msg[VCPU_MSG_SIZE];
	uint64_t t0 = now_ns(), t1;
	struct interp_vcpu v;
	struct kvm_vm k;
	int r;

	if (!c->kvm) {
		if (interp_build(&v) < 0)
			return NAN;
		t1 = interp_start(&v, msg);
		return (double)(t1 - t0) / 1e6;
	}
	r = kvm_build(&k, map, size);
	t1 = now_ns();
	kvm_close(&k);
	return r < 0 ? NAN : (double)(t1 - t0) / 1e6;
}

/* The receiving side of floor_transfer_once: build, say ready, take the
 * registers, load them; reply with the time the vCPU could run. */
__attribute__((noreturn)) static void transfer_peer(const struct config *c, int sock, uint8_t *map,
						    uint64_t size)
{
	struct interp_vcpu v;
	struct kvm_vm k;
	uint8_t msg[VCPU_MSG_SIZE];
	uint64_t t1;

	if ((c->kvm ? kvm_build(&k, map, size) : interp_build(&v)) < 0 || write(sock, "r", 1) != 1)
		_exit(1);
	if (read(sock, msg, sizeof(msg)) != sizeof(msg))
		_exit(1);
	if (!c->kvm)
		t1 = interp_start(&v, msg);
	else if (ioctl(k.vcpu, KVM_SET_SREGS, &k.sregs) < 0 ||
		 ioctl(k.vcpu, KVM_SET_REGS, &k.regs) < 0)
		_exit(1);
	else
		t1 = now_ns();
	_exit(write(sock, &t1, sizeof(t1)) == sizeof(t1) ? 0 : 1);
}

/* One vCPU-state-sized message to a process whose VM exists, which then
 * loads the registers: what a prepared transfer moves in the pause. */
static double floor_transfer_once(const struct config *c, uint8_t *map, uint64_t size)
{
	int sv[2];
	uint64_t t[2] = { 0 };
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return NAN;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		transfer_peer(c, sv[1], map, size);
	}
	close(sv[1]);
	if (pid > 0) {
		uint8_t msg[VCPU_MSG_SIZE] = { 0 };
		char ready;

		if (read(sv[0], &ready, 1) == 1) {
			t[0] = now_ns();
			if (write(sv[0], msg, sizeof(msg)) != sizeof(msg) ||
			    read(sv[0], &t[1], sizeof(t[1])) != sizeof(t[1]))
				t[1] = 0;
		}
		waitpid(pid, NULL, 0);
	}
	close(sv[0]);
	return t[1] ? (double)(t[1] - t[0]) / 1e6 : NAN;
}

/* ---------------------------------------------------------------- copy */

static int copy_out(int fd, const uint8_t *map, uint64_t size)
{
	for (uint64_t off = 0; off < size;) {
		ssize_t n = write(fd, map + off, size - off < CHUNK ? size - off : CHUNK);

		if (n <= 0)
			return -errno;
		off += (uint64_t)n;
	}
	return 0;
}

/* In the restoring process, which exits afterwards: the memfd goes with it. */
static int copy_in(int fd, unsigned page_kib, uint64_t size)
{
	uint8_t *p;
	int mfd = memfd_map("restored", size, page_kib, &p);

	if (mfd < 0)
		return mfd;
	for (uint64_t off = 0; off < size;) {
		ssize_t n = pread(fd, p + off, size - off < CHUNK ? size - off : CHUNK, (off_t)off);

		if (n <= 0)
			return -EIO;
		off += (uint64_t)n;
	}
	return 0;
}

/* Save RAM to a file, drop it (the old VMM exits), restore it in a new
 * process.  Consumes @memfd/@map. */
static double copy_baseline(const struct config *c, int memfd, uint8_t *map, uint64_t size,
			    unsigned page_kib)
{
	char path[512];
	int fd, status = 1;
	uint64_t t0;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/blackout-ram.%d", c->out_dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return NAN;
	unlink(path);
	t0 = now_ns();
	if (copy_out(fd, map, size) < 0) {
		close(fd);
		return NAN;
	}
	munmap(map, size);
	close(memfd);
	pid = fork();
	if (pid == 0)
		_exit(copy_in(fd, page_kib, size) < 0 ? 1 : 0);
	if (pid > 0)
		waitpid(pid, &status, 0);
	close(fd);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? (double)(now_ns() - t0) / 1e6 : NAN;
}

/* ---------------------------------------------------------------- minivmm */

static int ctl(const char *sock, const char *cmd, char *reply, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pollfd p;
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	n = poll(&p, 1, 300000) > 0 ? recv(fd, reply, len - 1, 0) : -1;
	close(fd);
	if (n <= 0)
		return -EIO;
	reply[n] = '\0';
	return 0;
}

static double field_ms(const char *reply, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), " %s=", name);
	p = strstr(reply, key);
	return p ? strtod(p + strlen(key), NULL) / 1e6 : NAN;
}

static pid_t vmm_start(const struct config *c, const char *sock, unsigned gib, unsigned page_kib)
{
	char ram[32];
	char *argv[16];
	unsigned n = 0;
	pid_t pid;

	snprintf(ram, sizeof(ram), "%uG", gib);
	argv[n++] = (char *)c->minivmm;
	argv[n++] = (char *)"--quiet";
	argv[n++] = (char *)"--vcpus";
	argv[n++] = (char *)"1";
	argv[n++] = (char *)"--ram";
	argv[n++] = ram;
	argv[n++] = (char *)"--control";
	argv[n++] = (char *)sock;
	argv[n++] = (char *)"--run-dir";
	argv[n++] = (char *)c->out_dir;
	/* If we die, the guest does not spin forever. */
	argv[n++] = (char *)"--exit-after";
	argv[n++] = (char *)"900";
	if (page_kib == 2048)
		argv[n++] = (char *)"--hugepages";
	if (!c->kvm)
		argv[n++] = (char *)"--no-kvm";
	argv[n] = NULL;
	if (posix_spawn(&pid, c->minivmm, NULL, NULL, argv, environ) != 0)
		return -1;
	return pid;
}

/*
 * One upgrade at a time: the old image's exit (transfer, cprd) or its keeper
 * (exec) tears down the old mapping of guest RAM after the new image runs,
 * ~12 ms per GiB of 4 KiB pages of CPU on a small machine.  Measure the next
 * pause after that, not beside it: reap the old process, then leave the
 * keeper the time its teardown takes.
 */
static void settle(const char *reply, unsigned gib)
{
	const char *p = strstr(reply, " old_pid=");
	pid_t old = p ? (pid_t)atoi(p + 9) : 0;
	const char *q = strstr(reply, " pid=");
	pid_t now = q ? (pid_t)atoi(q + 5) : 0;

	if (old > 0 && old != now)
		waitpid(old, NULL, 0);
	usleep(100000 + 25000 * gib);
}

/* Boot minivmm, wait for its control socket, upgrade it reps x each mode. */
static void run_vmm(const struct config *c, unsigned gib, unsigned page_kib, struct point **mp,
		    unsigned n_modes)
{
	char sock[256], reply[2048], cmd[64];
	pid_t pid;
	bool up = false;

	snprintf(sock, sizeof(sock), "%s/blackout-%d.sock", c->out_dir, (int)getpid());
	unlink(sock);
	pid = vmm_start(c, sock, gib, page_kib);
	for (unsigned i = 0; pid > 0 && i < 1200 && !up; i++) {
		up = ctl(sock, "status", reply, sizeof(reply)) == 0;
		if (!up)
			usleep(100000);
	}
	if (!up) {
		fprintf(stderr, "blackout: minivmm did not come up for %u GiB\n", gib);
		if (pid > 0)
			kill(pid, SIGKILL);
		return;
	}
	if (page_kib == 2048 && !strstr(reply, "page_kib=2048"))
		fprintf(stderr, "blackout: minivmm runs on 4 KiB pages: %s\n", reply);
	if (!strstr(reply, c->kvm ? " engine=kvm " : " engine=interp "))
		fprintf(stderr, "blackout: minivmm is not on the %s backend: %s\n",
			c->kvm ? "KVM" : "interpreter", reply);
	for (unsigned r = 0; r < c->reps; r++) {
		struct point **pts = mp;

		for (unsigned k = 0; k < n_modes; k++) {
			snprintf(cmd, sizeof(cmd), "upgrade %s", pts[k]->mode);
			if (ctl(sock, cmd, reply, sizeof(reply)) < 0 || strncmp(reply, "ok", 2)) {
				fprintf(stderr, "blackout: %s at %u GiB: %s\n", cmd, gib, reply);
				continue;
			}
			pts[k]->late_ms[pts[k]->n] = field_ms(reply, "late_slots_ns");
			pts[k]->pause_ms[pts[k]->n++] = field_ms(reply, "pause_ns");
			pts[k]->ok = true;
			settle(reply, gib);
			fprintf(stderr,
				"  %-8s pause %8.3f ms = stop %.3f + hand-off %.3f + restore %.3f",
				pts[k]->mode, field_ms(reply, "pause_ns"),
				field_ms(reply, "stop_ns"), field_ms(reply, "handoff_ns"),
				field_ms(reply, "restore_ns"));
			if (field_ms(reply, "late_slots_ns") > 0)
				fprintf(stderr, "; rest of RAM in the VM %.3f ms after the resume",
					field_ms(reply, "late_slots_ns"));
			if (field_ms(reply, "ram_wait_ns") > 0)
				fprintf(stderr, " (guest waited for it %.3f ms)",
					field_ms(reply, "ram_wait_ns"));
			fprintf(stderr, "\n");
		}
	}
	/* The image running now, which quits: every earlier one was reaped by
	 * settle(), as our child or, after a transfer, an orphan reparented to
	 * us (we are a subreaper).  Not waitpid(-1): run as the init of a PID
	 * namespace, we are the parent of the cprd mode's daemon too. */
	if (ctl(sock, "status", reply, sizeof(reply)) == 0 && strstr(reply, " pid="))
		pid = (pid_t)atoi(strstr(reply, " pid=") + 5);
	ctl(sock, "quit", reply, sizeof(reply));
	waitpid(pid, NULL, 0);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	unlink(sock);
}

/* ---------------------------------------------------------------- one size */

static double median_of(double (*fn)(const struct config *, uint8_t *, uint64_t),
			const struct config *c, uint8_t *map, uint64_t size)
{
	double v[MAX_REPS];
	unsigned n = 0;

	for (unsigned i = 0; i < c->reps; i++) {
		double x = fn(c, map, size);

		if (!isnan(x))
			v[n++] = x;
	}
	return blackout_median(v, n);
}

struct floors {
	double exec_ms, build_ms, transfer_ms, copy_ms;
};

static void measure_floors(const struct config *c, unsigned gib, unsigned page_kib,
			   struct floors *f)
{
	uint64_t size = (uint64_t)gib << 30;
	uint8_t *map = NULL;
	double v[MAX_REPS];
	unsigned n = 0;
	int fd = memfd_of(gib, page_kib, &map);

	*f = (struct floors){ NAN, NAN, NAN, NAN };
	if (fd < 0) {
		fprintf(stderr, "blackout: memfd of %u GiB, %u KiB pages: %s\n", gib, page_kib,
			strerror(-fd));
		return;
	}
	for (unsigned i = 0; i < c->reps; i++) {
		double x = floor_exec_once(c, fd, size);

		if (!isnan(x))
			v[n++] = x;
	}
	f->exec_ms = blackout_median(v, n);
	f->build_ms = median_of(floor_build_once, c, map, size);
	f->transfer_ms = median_of(floor_transfer_once, c, map, size);
	if (c->copy)
		f->copy_ms = copy_baseline(c, fd, map, size, page_kib);
	else {
		munmap(map, size);
		close(fd);
	}
}

/* ---------------------------------------------------------------- output */

/* JSON: a figure, or null for one not measured. */
static const char *num(char *buf, size_t len, double v, int prec)
{
	if (!isfinite(v))
		snprintf(buf, len, "null");
	else
		snprintf(buf, len, "%.*f", prec, v);
	return buf;
}

/* Table: a figure with its unit, or "-" for one not measured. */
static const char *cell(char *buf, size_t len, double v, int prec, const char *unit)
{
	if (!isfinite(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*f%s", prec, v, unit);
	return buf;
}

static const char *str_or_null(char *buf, size_t len, const char *s)
{
	if (s)
		snprintf(buf, len, "\"%s\"", s);
	else
		snprintf(buf, len, "null");
	return buf;
}

/* What ran where: the table's first lines. */
static void print_backends(const struct config *c, FILE *f)
{
	if (c->kvm)
		fprintf(f, "\nminivmm backend: KVM; floors: execve + KVM build, one message + "
			   "KVM_SET_REGS\n");
	else
		fprintf(f,
			"\nminivmm backend: interpreter (%s);\n"
			"  floors: execve + interpreter vCPU start, one message + interpreter "
			"register load\n",
			c->no_kvm);
	if (!c->qemu)
		fprintf(f, "QEMU cpr-transfer: not measured (%s)\n", c->qemu_why);
	else if (c->kvm)
		fprintf(f, "QEMU cpr-transfer: under KVM (-accel kvm)\n");
	else if (!c->qemu_tcg_max_gib)
		fprintf(f, "QEMU cpr-transfer: under TCG (-accel tcg), no KVM here\n");
	else
		fprintf(f,
			"QEMU cpr-transfer: under TCG (-accel tcg), no KVM here; up to %u GiB "
			"only (--qemu-tcg-max-gib)\n",
			c->qemu_tcg_max_gib);
}

static void print_table(const struct config *c, const struct point *pts, unsigned n, FILE *f)
{
	print_backends(c, f);
	fprintf(f, "\n%-9s %-7s %4s %5s %10s %10s %9s %11s %11s %9s %5s %10s\n", "mode", "backend",
		"GiB", "page", "pause_ms", "floor_ms", "vs floor", "copy_ms", "copy/pause",
		"qemu_ms", "accel", "qemu/pause");
	for (unsigned i = 0; i < n; i++) {
		const struct point *p = &pts[i];
		double pause = p->pause_ms[0];
		char a[32], b[32], d[32], e[32], g[32], h[32], k[32];

		fprintf(f, "%-9s %-7s %4u %4uK %10s %10s %9s %11s %11s %9s %5s %10s\n", p->mode,
			strcmp(p->backend, "kvm") ? "interp" : "kvm", p->ram_gib, p->page_kib,
			cell(a, sizeof(a), pause, 3, ""), cell(b, sizeof(b), p->floor_ms, 3, ""),
			cell(d, sizeof(d), pause / p->floor_ms, 1, "x"),
			cell(e, sizeof(e), p->copy_ms, 1, ""),
			cell(g, sizeof(g), p->copy_ms / pause, 0, "x"),
			cell(h, sizeof(h), p->qemu_ms, 3, ""), p->qemu_accel ? p->qemu_accel : "-",
			cell(k, sizeof(k), p->qemu_ms / pause, 1, "x"));
	}
}

static void print_json(const struct point *pts, unsigned n, FILE *f)
{
	fprintf(f, "[\n");
	for (unsigned i = 0; i < n; i++) {
		const struct point *p = &pts[i];
		bool kvm = !strcmp(p->backend, "kvm");
		char a[32], b[32], d[32], e[32], g[32], h[32], k[32], q[32], l[32], m[32], x[32];

		fprintf(f,
			"  {\"mode\": \"%s\", \"backend\": \"%s\", \"ram_gib\": %u, \"page_kib\": "
			"%u, "
			"\"pause_ms\": %s, \"floor_ms\": %s, \"copy_ms\": %s, \"qemu_ms\": %s, "
			"\"qemu_accel\": %s, \"reps\": %u, \"pause_min_ms\": %s, \"pause_max_ms\": "
			"%s, \"floor_exec_ms\": %s, \"floor_build_ms\": %s, \"floor_kvm_ms\": %s, "
			"\"slots_after_ms\": %s}%s\n",
			p->mode, p->backend, p->ram_gib, p->page_kib,
			num(a, sizeof(a), p->pause_ms[0], 4), num(b, sizeof(b), p->floor_ms, 4),
			num(d, sizeof(d), p->copy_ms, 1), num(q, sizeof(q), p->qemu_ms, 4),
			str_or_null(x, sizeof(x), p->qemu_accel), p->n,
			num(e, sizeof(e), p->pause_min_ms, 4),
			num(g, sizeof(g), p->pause_max_ms, 4),
			num(h, sizeof(h), p->floor_exec_ms, 4),
			num(k, sizeof(k), p->floor_build_ms, 4),
			num(l, sizeof(l), kvm ? p->floor_build_ms : NAN, 4),
			num(m, sizeof(m), p->late_ms[0], 4), i + 1 < n ? "," : "");
	}
	fprintf(f, "]\n");
}
static const struct point *find(const struct point *pts, unsigned n, const char *mode, unsigned gib,
				unsigned page_kib)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(pts[i].mode, mode) && pts[i].ram_gib == gib &&
		    pts[i].page_kib == page_kib && !isnan(pts[i].pause_ms[0]))
			return &pts[i];
	return NULL;
}

/* The project's pause targets, as ratios of what this run measured.  They
 * are set for KVM: on the interpreter they are shown, not judged. */
static void print_targets(const struct config *c, const struct point *pts, unsigned n, FILE *f)
{
	fprintf(f,
		"\ntargets%s (QEMU 10.0 cpr-transfer: measured in this run where qemu_ms is "
		"set, else\n"
		"the reference %.1f ms at 1 GiB, %.1f ms at 8 GiB under KVM)\n",
		c->kvm ? "" : ", set for KVM, shown for the interpreter backend", QEMU_REF_1G_MS,
		QEMU_REF_8G_MS);
	for (unsigned pk = 4; pk <= 2048; pk *= 512) {
		const struct point *t1 = find(pts, n, "transfer", 1, pk);
		const struct point *t8 = find(pts, n, "transfer", 8, pk);
		const struct point *e1 = find(pts, n, "exec", 1, pk);
		const struct point *e8 = find(pts, n, "exec", 8, pk);
		double tmax = 0;

		bool any = false;

		for (unsigned i = 0; i < n; i++) {
			if (strcmp(pts[i].mode, "transfer") || pts[i].page_kib != pk ||
			    isnan(pts[i].pause_ms[0]))
				continue;
			any = true;
			if (pts[i].pause_ms[0] > tmax)
				tmax = pts[i].pause_ms[0];
		}
		if (!any)
			continue;
		fprintf(f, "  %4u KiB pages: transfer max %.3f ms (<= 0.5)", pk, tmax);
		if (t1 && t8) {
			bool measured = !isnan(t1->qemu_ms) && !isnan(t8->qemu_ms);

			fprintf(f, ", 8/1 GiB %.2fx (<= 1.2), vs QEMU%s %.0fx / %.0fx below (>= 5)",
				t8->pause_ms[0] / t1->pause_ms[0],
				!measured			 ? " reference"
				: !strcmp(t1->qemu_accel, "tcg") ? " under TCG here"
								 : " here",
				(measured ? t1->qemu_ms : QEMU_REF_1G_MS) / t1->pause_ms[0],
				(measured ? t8->qemu_ms : QEMU_REF_8G_MS) / t8->pause_ms[0]);
		}
		if (e1 && e8)
			fprintf(f, "; exec 8/1 GiB %.2fx (<= 2)",
				e8->pause_ms[0] / e1->pause_ms[0]);
		if (t8 && e8 && !isnan(t8->copy_ms))
			fprintf(f,
				"; copy/transfer %.0fx (>= 1000), copy/exec %.0fx (>= 300) at 8 "
				"GiB",
				t8->copy_ms / t8->pause_ms[0], e8->copy_ms / e8->pause_ms[0]);
		fprintf(f, "\n");
	}
}

/* Columns: ram_gib page_kib mode pause_ms floor_ms copy_ms qemu_ms backend
 * qemu_accel; nan and "-" where not measured. */
static void write_dat(const struct config *c, const struct point *pts, unsigned n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/blackout.dat", c->out_dir);
	f = fopen(path, "we");
	if (!f)
		return;
	fprintf(f,
		"# ram_gib page_kib mode pause_ms floor_ms copy_ms qemu_ms backend qemu_accel\n");
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%u %u %s %.4f %.4f %.1f %.4f %s %s\n", pts[i].ram_gib, pts[i].page_kib,
			pts[i].mode, pts[i].pause_ms[0], pts[i].floor_ms, pts[i].copy_ms,
			pts[i].qemu_ms, pts[i].backend,
			pts[i].qemu_accel ? pts[i].qemu_accel : "-");
	fclose(f);
}

/* blackout.json next to blackout.dat. */
static void write_json(const struct config *c, const struct point *pts, unsigned n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/blackout.json", c->out_dir);
	f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "blackout: %s: %s\n", path, strerror(errno));
		return;
	}
	print_json(pts, n, f);
	fclose(f);
}

/*
 * A private cprd for the cprd mode, started before we become a subreaper and
 * detached (double fork), so that waiting for minivmm's images never waits
 * for it.  Returns its pid, or -1.
 */
static pid_t cprd_start(const struct config *c)
{
	static char sock[300];
	int p[2];
	pid_t mid, pid = -1;

	snprintf(sock, sizeof(sock), "%s/blackout-cprd.sock", c->out_dir);
	unlink(sock);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	mid = fork();
	if (mid == 0) {
		pid_t g = fork();

		if (g == 0) {
			char *argv[] = { (char *)c->cprd,
					 (char *)"--socket",
					 sock,
					 (char *)"--config",
					 (char *)"/dev/null",
					 (char *)"--no-sandbox",
					 NULL };
			int null = open("/dev/null", O_WRONLY);

			dup2(null, 1);
			dup2(null, 2);
			execve(c->cprd, argv, environ);
			_exit(127);
		}
		_exit(write(p[1], &g, sizeof(g)) == sizeof(g) ? 0 : 1);
	}
	close(p[1]);
	if (mid > 0 && read(p[0], &pid, sizeof(pid)) != sizeof(pid))
		pid = -1;
	close(p[0]);
	if (mid > 0)
		waitpid(mid, NULL, 0);
	for (unsigned i = 0; pid > 0 && i < 100 && access(sock, F_OK) < 0; i++)
		usleep(20000);
	if (pid <= 0 || access(sock, F_OK) < 0) {
		fprintf(stderr, "blackout: cprd did not start; no cprd mode\n");
		if (pid > 0)
			kill(pid, SIGTERM);
		return -1;
	}
	setenv("CPRD_SOCKET", sock, 1);
	return pid;
}

/* blackout.png and blackout.svg next to blackout.dat, if gnuplot is here. */
static void plot(const struct config *c)
{
	char expr[1200];
	char *argv[] = { (char *)"gnuplot", (char *)"-e", expr, (char *)c->plot_script, NULL };
	pid_t pid;
	int status = 1;

	if (access(c->plot_script, R_OK) < 0) {
		fprintf(stderr, "blackout: no plot: %s: %s\n", c->plot_script, strerror(errno));
		return;
	}
	snprintf(expr, sizeof(expr),
		 "dat='%s/blackout.dat'; out='%s/blackout'; backend='%s'; qemu_accel='%s'; "
		 "qemu_max_gib=%u",
		 c->out_dir, c->out_dir, c->kvm ? "kvm" : "interpreter",
		 !c->qemu ? "none"
		 : c->kvm ? "kvm"
			  : "tcg",
		 c->kvm ? 0 : c->qemu_tcg_max_gib);
	if (posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ) != 0) {
		fprintf(stderr, "blackout: no plot: gnuplot is not installed\n");
		return;
	}
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		fprintf(stderr, "blackout: wrote %s/blackout.png and %s/blackout.svg\n", c->out_dir,
			c->out_dir);
	else
		fprintf(stderr, "blackout: gnuplot failed\n");
}

/* ---------------------------------------------------------------- main */

static int parse_list(const char *s, unsigned *v, unsigned max, unsigned *ret_n)
{
	char *end;
	unsigned n = 0;

	while (*s) {
		unsigned long x = strtoul(s, &end, 10);

		if (end == s || x == 0 || x > 65536 || n == max)
			return -EINVAL;
		v[n++] = (unsigned)x;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -EINVAL;
	}
	*ret_n = n;
	return n ? 0 : -EINVAL;
}

static void usage(void)
{
	fprintf(stderr,
		"Usage: blackout [--minivmm PATH] [--sizes 1,4,8] [--pages 4,2048] [--reps N]\n"
		"                [--modes exec,transfer] [--no-copy] [--out-dir DIR] [--json]\n"
		"                [--plot-script PATH] [--cprd PATH-TO-CPRD]\n"
		"                [--qemu PATH | --no-qemu] [--qemu-tcg-max-gib N]\n");
}

static int parse_args(struct config *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int r = 0;

		if (!strcmp(a, "--json")) {
			c->json = true;
			continue;
		}
		if (!strcmp(a, "--no-copy")) {
			c->copy = false;
			continue;
		}
		if (!strcmp(a, "--no-qemu")) {
			c->qemu = NULL;
			continue;
		}
		if (!v)
			return -EINVAL;
		i++;
		if (!strcmp(a, "--minivmm"))
			c->minivmm = v;
		else if (!strcmp(a, "--out-dir"))
			c->out_dir = v;
		else if (!strcmp(a, "--plot-script"))
			c->plot_script = v;
		else if (!strcmp(a, "--cprd"))
			c->cprd = v;
		else if (!strcmp(a, "--qemu"))
			c->qemu = v;
		else if (!strcmp(a, "--qemu-tcg-max-gib"))
			r = parse_list(v, &c->qemu_tcg_max_gib, 1, &(unsigned){ 0 });
		else if (!strcmp(a, "--sizes"))
			r = parse_list(v, c->sizes, 8, &c->n_sizes);
		else if (!strcmp(a, "--pages"))
			r = parse_list(v, c->pages, 2, &c->n_pages);
		else if (!strcmp(a, "--reps")) {
			c->reps = (unsigned)atoi(v);
			r = c->reps && c->reps <= MAX_REPS ? 0 : -EINVAL;
		} else if (!strcmp(a, "--modes")) {
			c->modes = (strstr(v, "exec") ? 1u : 0) | (strstr(v, "transfer") ? 2u : 0) |
				   (strstr(v, "cprd") ? 4u : 0);
			r = c->modes ? 0 : -EINVAL;
		} else
			r = -EINVAL;
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < c->n_pages; i++)
		if (c->pages[i] != 4 && c->pages[i] != 2048)
			return -EINVAL;
	return 0;
}

static void finish_point(struct point *p, double floor_ms, double copy_ms)
{
	double pause = blackout_median(p->pause_ms, p->n);
	double late[MAX_REPS];
	unsigned n_late = 0;

	for (unsigned i = 0; i < p->n; i++)
		if (p->late_ms[i] > 0)
			late[n_late++] = p->late_ms[i];
	p->late_ms[0] = blackout_median(late, n_late);

	p->pause_min_ms = p->n ? p->pause_ms[0] : NAN;
	p->pause_max_ms = p->n ? p->pause_ms[p->n - 1] : NAN;
	p->pause_ms[0] = p->n ? pause : NAN;
	p->floor_ms = floor_ms;
	p->copy_ms = copy_ms;
}

/*
 * Reserve @gib of 2 MiB pages on top of what is reserved now; returns how
 * many were added.  Others may reserve too: we give back only ours.
 */
static long hugepages_reserve(unsigned gib)
{
	long add = (long)(((uint64_t)gib << 30) / HUGE_2M) + 8, now = hugepages_get();

	if (now < 0 || hugepages_set(now + add) < 0) {
		hugepages_set(now);
		return -1;
	}
	return add;
}

static void hugepages_unreserve(long added)
{
	long now = hugepages_get();

	if (added > 0 && now >= 0)
		hugepages_set(now > added ? now - added : 0);
}

/* QEMU's pause at this size, under KVM or, without it, TCG up to its cap. */
static void run_qemu(const struct config *c, unsigned gib, unsigned page_kib, struct point **mp,
		     unsigned n_modes)
{
	const char *accel = c->kvm ? "kvm" : "tcg";
	double q;

	if (!c->qemu)
		return;
	if (!c->kvm && c->qemu_tcg_max_gib && gib > c->qemu_tcg_max_gib) {
		fprintf(stderr,
			"blackout: %u GiB: QEMU not measured: under TCG only up to %u GiB "
			"(--qemu-tcg-max-gib)\n",
			gib, c->qemu_tcg_max_gib);
		return;
	}
	fprintf(stderr, "blackout: %u GiB on %u KiB pages: QEMU cpr-transfer (%s)...\n", gib,
		page_kib, c->kvm ? "KVM" : "TCG");
	q = qemu_cpr_pause(c->qemu, accel, c->out_dir, gib, page_kib, c->reps);
	for (unsigned i = 0; i < n_modes && !isnan(q); i++) {
		mp[i]->qemu_ms = q;
		mp[i]->qemu_accel = accel;
	}
}

static unsigned run_page_size(const struct config *c, unsigned page_kib, struct point *pts,
			      unsigned n)
{
	static const char *const names[] = { "exec", "transfer", "cprd" };

	for (unsigned s = 0; s < c->n_sizes; s++) {
		unsigned gib = c->sizes[s], n_modes = 0;
		struct point *mp[3];
		struct floors f;
		long added = 0;

		for (unsigned i = 0; i < 3; i++) {
			if (!(c->modes & (1u << i)) || n == MAX_POINTS)
				continue;
			mp[n_modes] = &pts[n++];
			*mp[n_modes++] =
				(struct point){ .mode = names[i],
						.ram_gib = gib,
						.page_kib = page_kib,
						.qemu_ms = NAN,
						.backend = c->kvm ? "kvm" : "interpreter" };
		}
		if (page_kib == 2048 && (added = hugepages_reserve(gib)) < 0) {
			fprintf(stderr, "blackout: cannot reserve %u GiB of 2 MiB pages\n", gib);
			n -= n_modes;
			continue;
		}
		fprintf(stderr, "blackout: %u GiB on %u KiB pages: minivmm...\n", gib, page_kib);
		run_vmm(c, gib, page_kib, mp, n_modes);
		fprintf(stderr, "blackout: %u GiB on %u KiB pages: floors%s...\n", gib, page_kib,
			c->copy ? " and copy" : "");
		measure_floors(c, gib, page_kib, &f);
		for (unsigned i = 0; i < n_modes; i++) {
			bool ex = !strcmp(mp[i]->mode, "exec");

			/* cprd moves the vCPUs as a transfer does: same floor. */
			finish_point(mp[i], ex ? f.exec_ms + f.build_ms : f.transfer_ms, f.copy_ms);
			mp[i]->floor_exec_ms = ex ? f.exec_ms : NAN;
			mp[i]->floor_build_ms = ex ? f.build_ms : NAN;
		}
		fprintf(stderr,
			"  floors (%s): exec %.3f ms + %s %.3f ms; transfer %.3f ms; copy %.1f "
			"ms\n",
			c->kvm ? "KVM" : "interpreter", f.exec_ms,
			c->kvm ? "KVM build" : "vCPU start", f.build_ms, f.transfer_ms, f.copy_ms);
		run_qemu(c, gib, page_kib, mp, n_modes);
		hugepages_unreserve(added);
	}
	return n;
}

int main(int argc, char **argv)
{
	static struct point pts[MAX_POINTS];
	struct config c = {
		.minivmm = "examples/minivmm/minivmm",
		.self = "/proc/self/exe",
		.out_dir = ".",
		.plot_script = PLOT_SCRIPT,
		.sizes = { 1, 4, 8 },
		.n_sizes = 3,
		.pages = { 4, 2048 },
		.n_pages = 2,
		.reps = 3,
		.copy = true,
		.modes = 3,
		.qemu = "qemu-system-x86_64",
		.qemu_tcg_max_gib = QEMU_TCG_MAX_GIB,
	};
	char self[4096];
	ssize_t len;
	unsigned n = 0;
	pid_t cprd_pid = -1;

	if (argc >= 2 && !strcmp(argv[1], "--exec-target"))
		return exec_target(argc, argv);
	if (parse_args(&c, argc, argv) < 0) {
		usage();
		return 100;
	}
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		return 111;
	self[len] = '\0';
	c.self = self;
	if ((c.modes & 4u) && !c.cprd && access("cprd/cprd", X_OK) == 0)
		c.cprd = "cprd/cprd";
	if (c.modes & 4u) {
		if (!c.cprd || (cprd_pid = cprd_start(&c)) < 0)
			c.modes &= ~4u;
	}
	c.kvm = kvm_usable(c.no_kvm, sizeof(c.no_kvm));
	if (!c.kvm)
		fprintf(stderr,
			"blackout: %s: minivmm on its interpreter, the interpreter's floors, QEMU "
			"under TCG\n",
			c.no_kvm);
	if (!c.qemu)
		snprintf(c.qemu_why, sizeof(c.qemu_why), "--no-qemu");
	else if (!qemu_usable(c.qemu, c.qemu_why, sizeof(c.qemu_why))) {
		fprintf(stderr, "blackout: no QEMU comparison (qemu_ms null): %s\n", c.qemu_why);
		c.qemu = NULL;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	for (unsigned p = 0; p < c.n_pages; p++)
		n = run_page_size(&c, c.pages[p], pts, n);
	if (cprd_pid > 0)
		kill(cprd_pid, SIGTERM);
	/* With --json, stdout is the JSON alone. */
	print_table(&c, pts, n, c.json ? stderr : stdout);
	print_targets(&c, pts, n, c.json ? stderr : stdout);
	write_dat(&c, pts, n);
	write_json(&c, pts, n);
	plot(&c);
	if (c.json)
		print_json(pts, n, stdout);
	return 0;
}
