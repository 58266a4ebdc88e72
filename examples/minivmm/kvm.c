/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtual machine: a KVM VM with its vCPUs and memory slots over guest
 * RAM (or the interpreter), one thread per vCPU, and stop/start.
 *
 * A KVM VM fd only works in the process (mm) that created it, so every image
 * of the VMM builds its own VM over the RAM it adopted.
 */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm-probe.h"
#include "minivmm.h"

/* The vCPU kick: interrupts KVM_RUN; the handler only has to exist. */
#define VCPU_KICK_SIGNAL SIGUSR2
/* How long armed vCPU threads poll for the start before they sleep. */
#define VCPU_SPIN_MAX_NS (200ull * 1000000ull)

static void kick_handler(int sig)
{
	(void)sig;
}

/*
 * The stop must not wait for the scheduler: a vCPU thread is a CPU hog, so
 * on a busy host a kicked one can wait many milliseconds for a CPU before it
 * even sees the signal.  Once kicked (stop_req set, immediate_exit set,
 * signal sent: it cannot enter the guest again), each vCPU thread still in
 * the guest is raised to SCHED_FIFO.  It parks still boosted (sleeping, and
 * without being preempted while it holds vm->lock); vm_start() puts every
 * thread back to SCHED_OTHER before it lets them run, and each makes sure
 * again before it enters the guest.  Without the privilege for it, this is
 * skipped.
 */
static void vcpu_boost(struct vcpu *v)
{
	struct sched_param sp = { .sched_priority = 1 };

	pthread_setschedparam(v->thread, SCHED_FIFO, &sp);
}

static void sched_other(pthread_t t)
{
	struct sched_param sp = { .sched_priority = 0 };

	pthread_setschedparam(t, SCHED_OTHER, &sp);
}

int vm_kvm_usable(char *why, size_t len)
{
	int fd = kvm_probe(why, len);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static int kvm_set_slot(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, uint8_t *host)
{
	struct kvm_userspace_memory_region reg = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)host,
	};

	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &reg) < 0 ? -errno : 0;
}

/*
 * RAM below 3 GiB at 0, the rest from 4 GiB, as a PC does.  The low part is
 * two slots, the boot slot first: what the guest program touches.  A slot's
 * KVM bookkeeping costs time in proportion to its size (about 0.3 ms per
 * GiB here), so an exec upgrade registers the boot slot inside the pause
 * and the rest once the guest runs again.
 */
struct slot_span {
	uint32_t slot;
	uint64_t gpa, off, size;
};

static unsigned ram_spans(const struct vm *vm, struct slot_span *s)
{
	uint64_t low = vm->ram_size < GUEST_LOW_MAX ? vm->ram_size : GUEST_LOW_MAX;
	uint64_t boot = vm->boot_slot_size < low ? vm->boot_slot_size : low;
	unsigned n = 0;

	s[n++] = (struct slot_span){ 0, 0, 0, boot };
	if (low > boot)
		s[n++] = (struct slot_span){ 2, boot, boot, low - boot };
	if (vm->ram_size > low)
		s[n++] = (struct slot_span){ 1, GUEST_HIGH_BASE, low, vm->ram_size - low };
	return n;
}

/* Register spans [first, last) of guest RAM. */
static int kvm_memslots(struct vm *vm, unsigned first, unsigned last)
{
	struct slot_span s[3];
	unsigned n = ram_spans(vm, s);

	for (unsigned i = first; i < n && i < last; i++) {
		int r = kvm_set_slot(vm, s[i].slot, s[i].gpa, s[i].size, vm->ram + s[i].off);

		if (r < 0)
			return r;
	}
	return 0;
}

/* Host address of guest RAM [gpa, gpa + len), or NULL if it is not RAM. */
static uint8_t *ram_at(const struct vm *vm, uint64_t gpa, uint64_t len)
{
	struct slot_span s[3];
	unsigned n = ram_spans(vm, s);

	for (unsigned i = 0; i < n; i++)
		if (gpa >= s[i].gpa && len <= s[i].size && gpa - s[i].gpa <= s[i].size - len)
			return vm->ram + s[i].off + (gpa - s[i].gpa);
	return NULL;
}

static int kvm_create_vcpu(struct vm *vm, struct vcpu *v, struct kvm_cpuid2 *cpuid)
{
	int r;

	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->index);
	if (v->fd < 0)
		return -errno;
	r = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r < 0)
		return -errno;
	v->run_size = (size_t)r;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -errno;
	}
	if (cpuid && ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0)
		return -errno;
	if (ioctl(v->fd, KVM_GET_SREGS, &v->sregs) < 0)
		return -errno;
	return 0;
}

static struct kvm_cpuid2 *kvm_supported_cpuid(int kvm_fd)
{
	unsigned n = 128;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

	if (!c)
		return NULL;
	c->nent = n;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

/* The memory slots, on their own thread while the vCPUs are created. */
static void *memslots_thread(void *arg)
{
	struct vm *vm = arg;
	uint64_t t0 = now_ns();
	int r = kvm_memslots(vm, 0, vm->slots_deferred ? 1 : 3);

	vm->timing.memslots_ns = now_ns() - t0;
	return (void *)(intptr_t)r;
}

static int kvm_build(struct vm *vm)
{
	struct kvm_cpuid2 *cpuid;
	uint64_t t0 = now_ns(), start = t0;
	pthread_t slots;
	void *slots_r = NULL;
	bool threaded;
	int r = 0;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return -errno;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return -errno;
	/* Intel needs a TSS for real mode; other back-ends ignore it. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)GUEST_TSS_ADDR) < 0 &&
	    errno != ENOTTY && errno != EINVAL)
		return -errno;
	vm->timing.create_vm_ns = now_ns() - t0;

	/* Memory slots (their cost grows with RAM) and vCPUs take different
	 * locks in KVM: build them side by side. */
	threaded = pthread_create(&slots, NULL, memslots_thread, vm) == 0;
	t0 = now_ns();
	cpuid = kvm_supported_cpuid(vm->kvm_fd);
	for (unsigned i = 0; i < vm->n_vcpus && r == 0; i++)
		r = kvm_create_vcpu(vm, &vm->vcpus[i], cpuid);
	free(cpuid);
	vm->timing.create_vcpus_ns = now_ns() - t0;
	if (threaded)
		pthread_join(slots, &slots_r);
	else
		slots_r = memslots_thread(vm);
	vm->timing.total_ns = now_ns() - start;
	if (r < 0)
		return r;
	return (int)(intptr_t)slots_r;
}

int vm_init(struct vm *vm, bool use_kvm, uint8_t *ram, uint64_t ram_size, unsigned n_vcpus,
	    bool defer_slots, uint64_t boot_slot)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	pthread_condattr_t ca;
	int r;

	if (n_vcpus == 0 || n_vcpus > VM_MAX_VCPUS || ram_size < VM_RAM_MIN)
		return -EINVAL;
	/* The guest's code must be in a registered slot: KVM cannot run
	 * instructions it has to fetch through MMIO. */
	if (boot_slot % 4096 || (boot_slot && boot_slot < GUEST_SLOTS))
		return -EINVAL;
	*vm = (struct vm){
		.use_kvm = use_kvm,
		.kvm_fd = -1,
		.vm_fd = -1,
		.ram = ram,
		.ram_size = ram_size,
		.n_vcpus = n_vcpus,
		.boot_slot_size = boot_slot ? boot_slot : GUEST_BOOT_SLOT_SIZE,
		.slots_deferred = use_kvm && defer_slots,
	};

	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	pthread_mutex_init(&vm->slots_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->slots_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (vm_late_ram(vm) == 0)
		vm->slots_deferred = false;
	for (unsigned i = 0; i < n_vcpus; i++)
		vm->vcpus[i] = (struct vcpu){ .vm = vm, .index = i, .fd = -1 };
	/* No SA_RESTART: the kick must make KVM_RUN return EINTR. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	if (!use_kvm)
		return 0;
	r = kvm_build(vm);
	if (r < 0)
		vm_destroy(vm);
	return r;
}

void vm_boot_state(struct vm *vm)
{
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		guest_boot_regs(i, &v->regs, &v->sregs);
		v->load_regs = true;
	}
}

/* A fatal guest condition: stop the whole VM and say why. */
static void vcpu_fail(struct vcpu *v, int err, const char *what)
{
	fprintf(stderr, "minivmm: vCPU %u: %s at %04llx:%04llx (%s)\n", v->index, what,
		(unsigned long long)v->sregs.cs.selector, (unsigned long long)v->regs.rip,
		strerror(-err));
	v->error = err;
}

/* An access of 1, 2, 4 or 8 bytes is single-copy atomic when aligned. */
static uint64_t ram_load(const void *p, uint32_t len)
{
	uint64_t x = 0;

	if ((uintptr_t)p % len)
		memcpy(&x, p, len);
	else if (len == 8)
		x = __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
	else if (len == 4)
		x = __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED);
	else if (len == 2)
		x = __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED);
	else if (len == 1)
		x = __atomic_load_n((const uint8_t *)p, __ATOMIC_RELAXED);
	else
		memcpy(&x, p, len);
	return x;
}

static void ram_store(void *p, uint64_t x, uint32_t len)
{
	if ((uintptr_t)p % len)
		memcpy(p, &x, len);
	else if (len == 8)
		__atomic_store_n((uint64_t *)p, x, __ATOMIC_RELAXED);
	else if (len == 4)
		__atomic_store_n((uint32_t *)p, (uint32_t)x, __ATOMIC_RELAXED);
	else if (len == 2)
		__atomic_store_n((uint16_t *)p, (uint16_t)x, __ATOMIC_RELAXED);
	else if (len == 1)
		__atomic_store_n((uint8_t *)p, (uint8_t)x, __ATOMIC_RELAXED);
	else
		memcpy(p, &x, len);
}

/*
 * Guest RAM whose slot is still deferred exits as MMIO.  The vCPU waits
 * until the slots are registered, then completes the access on the host
 * mapping of the same pages.  Waiting keeps locked instructions atomic: KVM
 * emulates one as a read exit, then an exchange, which is a real atomic
 * exchange on guest memory once its slot exists.
 */
static int vcpu_ram_access(struct vcpu *v)
{
	struct vm *vm = v->vm;
	struct kvm_run *run = v->run;
	uint8_t *host = ram_at(vm, run->mmio.phys_addr, run->mmio.len);
	uint64_t t0 = now_ns();
	int r;

	if (!vm->slots_deferred || !host || !run->mmio.len ||
	    run->mmio.len > sizeof(run->mmio.data))
		return -EIO;
	pthread_mutex_lock(&vm->slots_lock);
	while (!vm->slots_done)
		pthread_cond_wait(&vm->slots_cond, &vm->slots_lock);
	r = vm->slots_error;
	pthread_mutex_unlock(&vm->slots_lock);
	atomic_fetch_add(&vm->mmio_ram, 1);
	atomic_fetch_add(&vm->ram_wait_ns, now_ns() - t0);
	if (r < 0)
		return r;
	if (run->mmio.is_write)
		ram_store(host, ram_load(run->mmio.data, run->mmio.len), run->mmio.len);
	else
		ram_store(run->mmio.data, ram_load(host, run->mmio.len), run->mmio.len);
	return 0;
}

static int vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == GUEST_HEARTBEAT_PORT)
			atomic_fetch_add(&v->heartbeats, 1);
		return 0;
	case KVM_EXIT_MMIO:
		return vcpu_ram_access(v);
	case KVM_EXIT_INTR:
		return 0;
	case KVM_EXIT_HLT:
		return -ECANCELED;
	case KVM_EXIT_SHUTDOWN:
		return -EPIPE;
	default:
		return -EIO;
	}
}

/* Run until a stop is requested or the guest fails. */
static int vcpu_run_kvm(struct vcpu *v)
{
	struct vm *vm = v->vm;

	if (v->load_regs) {
		if (ioctl(v->fd, KVM_SET_SREGS, &v->sregs) < 0 ||
		    ioctl(v->fd, KVM_SET_REGS, &v->regs) < 0)
			return -errno;
		v->load_regs = false;
	}
	__atomic_store_n(&v->t_started, now_ns(), __ATOMIC_RELEASE);
	while (!atomic_load(&vm->stop_req)) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		int r = vcpu_handle_exit(v);

		if (r < 0)
			return r;
	}
	v->t_stopped = now_ns();
	v->run->immediate_exit = 0;
	if (ioctl(v->fd, KVM_GET_REGS, &v->regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &v->sregs) < 0)
		return -errno;
	return 0;
}

static int vcpu_run_interp(struct vcpu *v)
{
	struct vm *vm = v->vm;

	v->load_regs = false;
	__atomic_store_n(&v->t_started, now_ns(), __ATOMIC_RELEASE);
	while (!atomic_load_explicit(&vm->stop_req, memory_order_relaxed)) {
		uint16_t port = 0;
		int r = interp_run(&v->regs, &v->sregs, vm->ram, vm->ram_size, 4096, &port);

		if (r < 0)
			return r;
		if (r == INTERP_IO && port == GUEST_HEARTBEAT_PORT)
			atomic_fetch_add(&v->heartbeats, 1);
		else if (r == INTERP_HLT)
			return -ECANCELED;
	}
	v->t_stopped = now_ns();
	return 0;
}

/* A vCPU may enter the guest when the VM wants to run and no stop is pending. */
static bool vcpu_may_run(const struct vm *vm, const struct vcpu *v)
{
	return vm->want == VM_WANT_RUN && !atomic_load(&vm->stop_req) && !v->error;
}

/* Armed: poll for the start instead of sleeping, so that the pause does not
 * include a futex wake-up and a trip through the scheduler. */
static void vcpu_spin(struct vm *vm)
{
	uint64_t end = now_ns() + VCPU_SPIN_MAX_NS;
	unsigned n = 0;

	/* No sched_yield(): on a busy machine it gives the CPU away for a
	 * whole time slice, which is what polling is meant to avoid. */
	while (__atomic_load_n(&vm->want, __ATOMIC_ACQUIRE) == VM_WANT_SPIN) {
		if (++n % 256 == 0 && now_ns() > end)
			return;
		__builtin_ia32_pause();
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	sigset_t kick;

	sigemptyset(&kick);
	sigaddset(&kick, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	pthread_mutex_lock(&vm->lock);
	for (;;) {
		bool spun = false;
		int r;

		while (vm->want != VM_WANT_EXIT && !vcpu_may_run(vm, v)) {
			/* One poller: the others would take the CPU the
			 * starting thread needs on a small machine. */
			if (vm->want == VM_WANT_SPIN && !spun && v->index == 0) {
				pthread_mutex_unlock(&vm->lock);
				vcpu_spin(vm);
				pthread_mutex_lock(&vm->lock);
				spun = true;
				continue;
			}
			pthread_cond_wait(&vm->cond, &vm->lock);
		}
		if (vm->want == VM_WANT_EXIT)
			break;
		vm->n_paused--;
		v->in_guest = true;
		pthread_mutex_unlock(&vm->lock);
		/* Never run the guest boosted (vm_start() reset us already). */
		sched_other(pthread_self());

		r = vm->use_kvm ? vcpu_run_kvm(v) : vcpu_run_interp(v);

		pthread_mutex_lock(&vm->lock);
		/* Still boosted if vm_stop() did: sleeping so is harmless, and
		 * dropping it here could get us preempted with the lock held. */
		v->in_guest = false;
		if (r < 0) {
			vcpu_fail(v, r, vm->use_kvm ? "KVM_RUN failed" : "interpreter stopped");
			vm->failed = true;
		}
		vm->n_paused++;
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

static int vm_spawn_threads(struct vm *vm)
{
	sigset_t all, old;
	int r = 0;

	/* vCPU threads take no process signals; they unblock only the kick. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < vm->n_vcpus && r == 0; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->have_thread)
			continue;
		r = -pthread_create(&v->thread, NULL, vcpu_thread, v);
		if (r == 0) {
			v->have_thread = true;
			vm->n_paused++;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

int vm_start(struct vm *vm)
{
	int r;

	pthread_mutex_lock(&vm->lock);
	atomic_store(&vm->stop_req, false);
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		if (vm->vcpus[i].have_thread)
			sched_other(vm->vcpus[i].thread);
		vm->vcpus[i].t_started = 0;
		if (vm->vcpus[i].run)
			vm->vcpus[i].run->immediate_exit = 0;
	}
	__atomic_store_n(&vm->want, VM_WANT_RUN, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	r = vm_spawn_threads(vm);
	if (r < 0)
		return r;
	/* Wait until every vCPU has entered the guest once. */
	for (;;) {
		bool all = true;

		for (unsigned i = 0; i < vm->n_vcpus; i++)
			if (!__atomic_load_n(&vm->vcpus[i].t_started, __ATOMIC_ACQUIRE))
				all = false;
		if (all)
			return 0;
		pthread_mutex_lock(&vm->lock);
		bool failed = vm->failed;

		pthread_mutex_unlock(&vm->lock);
		if (failed)
			return -EIO;
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
}

/*
 * Polling only pays when a CPU is free for it: with as many vCPUs as CPUs,
 * the poller would take the CPU an old vCPU needs to stop, unless the stop
 * boosts those (vm->rt).
 */
int vm_arm(struct vm *vm)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	pthread_mutex_lock(&vm->lock);
	if (vm->want == VM_WANT_PAUSE && (vm->rt || cpus <= 0 || vm->n_vcpus < (unsigned long)cpus))
		__atomic_store_n(&vm->want, VM_WANT_SPIN, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	return vm_spawn_threads(vm);
}

int vm_stop(struct vm *vm, uint64_t *ret_t_stop)
{
	uint64_t first = UINT64_MAX;

	pthread_mutex_lock(&vm->lock);
	atomic_store(&vm->stop_req, true);
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->run)
			v->run->immediate_exit = 1;
		if (v->have_thread)
			pthread_kill(v->thread, VCPU_KICK_SIGNAL);
	}
	/* Kicked first: a boosted thread must never run the guest. */
	for (unsigned i = 0; i < vm->n_vcpus && vm->rt; i++)
		if (vm->vcpus[i].in_guest)
			vcpu_boost(&vm->vcpus[i]);
	while (vm->n_paused < vm->n_vcpus)
		pthread_cond_wait(&vm->cond, &vm->lock);
	__atomic_store_n(&vm->want, VM_WANT_PAUSE, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		if (vm->vcpus[i].t_stopped && vm->vcpus[i].t_stopped < first)
			first = vm->vcpus[i].t_stopped;
	if (vm->failed)
		return -EIO;
	*ret_t_stop = first == UINT64_MAX ? now_ns() : first;
	return 0;
}

uint64_t vm_first_start(const struct vm *vm)
{
	uint64_t t = UINT64_MAX;

	for (unsigned i = 0; i < vm->n_vcpus; i++)
		if (vm->vcpus[i].t_started < t)
			t = vm->vcpus[i].t_started;
	return t;
}

uint64_t vm_last_start(const struct vm *vm)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < vm->n_vcpus; i++)
		if (vm->vcpus[i].t_started > t)
			t = vm->vcpus[i].t_started;
	return t;
}

uint64_t vm_heartbeats(struct vm *vm)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < vm->n_vcpus; i++)
		n += atomic_load(&vm->vcpus[i].heartbeats);
	return n;
}

uint64_t vm_late_ram(const struct vm *vm)
{
	struct slot_span s[3];
	unsigned n = ram_spans(vm, s);
	uint64_t bytes = 0;

	for (unsigned i = 1; i < n; i++)
		bytes += s[i].size;
	return bytes;
}

static void late_slots_done(struct vm *vm, int r, uint64_t t0)
{
	pthread_mutex_lock(&vm->slots_lock);
	vm->slots_error = r;
	vm->slots_done = true;
	vm->timing.t_late_slots_done = now_ns();
	vm->timing.late_slots_ns = vm->timing.t_late_slots_done - t0;
	pthread_cond_broadcast(&vm->slots_cond);
	pthread_mutex_unlock(&vm->slots_lock);
}

static void *late_slots_thread(void *arg)
{
	struct vm *vm = arg;
	uint64_t end = now_ns() + vm->slots_delay_ms * 1000000ull;
	struct timespec ts = { .tv_sec = (time_t)(end / 1000000000ull),
			       .tv_nsec = (long)(end % 1000000000ull) };
	uint64_t t0;

	pthread_mutex_lock(&vm->slots_lock);
	while (vm->slots_delay_ms && !vm->slots_hurry &&
	       pthread_cond_timedwait(&vm->slots_cond, &vm->slots_lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&vm->slots_lock);
	t0 = now_ns();
	late_slots_done(vm, kvm_memslots(vm, 1, 3), t0);
	return NULL;
}

void vm_add_deferred_slots(struct vm *vm, unsigned delay_ms)
{
	if (!vm->slots_deferred || vm->have_slots_thread || vm->slots_done)
		return;
	vm->slots_delay_ms = delay_ms;
	if (pthread_create(&vm->slots_thread, NULL, late_slots_thread, vm) == 0)
		vm->have_slots_thread = true;
	else
		late_slots_done(vm, kvm_memslots(vm, 1, 3), now_ns());
}

int vm_wait_slots(struct vm *vm)
{
	int r;

	if (!vm->slots_deferred)
		return 0;
	if (vm->have_slots_thread)
		pthread_join(vm->slots_thread, NULL);
	vm->have_slots_thread = false;
	if (!vm->slots_done)
		vm_add_deferred_slots(vm, 0);
	pthread_mutex_lock(&vm->slots_lock);
	r = vm->slots_error;
	pthread_mutex_unlock(&vm->slots_lock);
	/* Registering a slot again with the same layout changes nothing, so
	 * one retry covers a failure half-way through. */
	if (r < 0) {
		r = kvm_memslots(vm, 1, 3);
		pthread_mutex_lock(&vm->slots_lock);
		vm->slots_error = r;
		pthread_mutex_unlock(&vm->slots_lock);
	}
	return r;
}

void vm_destroy(struct vm *vm)
{
	if (vm->n_vcpus == 0)
		return;
	pthread_mutex_lock(&vm->slots_lock);
	vm->slots_hurry = true;
	pthread_cond_broadcast(&vm->slots_cond);
	pthread_mutex_unlock(&vm->slots_lock);
	vm_wait_slots(vm);
	pthread_mutex_lock(&vm->lock);
	atomic_store(&vm->stop_req, true);
	__atomic_store_n(&vm->want, VM_WANT_EXIT, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		if (vm->vcpus[i].run)
			vm->vcpus[i].run->immediate_exit = 1;
		if (vm->vcpus[i].have_thread)
			pthread_kill(vm->vcpus[i].thread, VCPU_KICK_SIGNAL);
	}
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->have_thread)
			pthread_join(v->thread, NULL);
		v->have_thread = false;
		if (v->run)
			munmap(v->run, v->run_size);
		v->run = NULL;
		if (v->fd >= 0)
			close(v->fd);
		v->fd = -1;
	}
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
}
