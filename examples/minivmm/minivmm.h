/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * minivmm: a small KVM VMM whose guest survives in-place upgrades of the VMM
 * (cpr-exec, cpr-transfer, cprd).  See minivmm(1).
 *
 * Files: guest.c (guest program, RAM layout, interpreter), kvm.c (VM,
 * vCPUs, memory slots, vCPU threads), machine.c (RAM block, guest, checks),
 * upgrade.c (hand-off: exec, transfer), cprd.c (through cprd), keeper.c
 * (what exec leaves behind), record.c (the VMM-private records), control.c
 * (control socket), report.c (output), main.c (options, signals, loop).
 */
#ifndef MINIVMM_H
#define MINIVMM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define VM_MAX_VCPUS 8u
#define VM_RAM_MIN (2ull << 20)
#define VM_RAM_MAX (1ull << 40)

/*
 * Guest physical layout.  The guest runs in real mode with every segment
 * base at 0, so all it touches lies below 64 KiB.
 */
#define GUEST_CODE 0x1000u  /* the program (guest_program[]) */
#define GUEST_SLOTS 0x2000u /* one slot per vCPU */
#define GUEST_SLOT_SIZE 32u
#define GUEST_PARAM_ITERS 0x3000u /* u16: loop iterations per heartbeat */
#define GUEST_STACK 0x7000u
#define GUEST_STATIC 0x8000u /* the guest sums these 4 KiB */
#define GUEST_STATIC_SIZE 0x1000u
#define GUEST_FILL_START 0x100000u /* one pattern qword per 4 KiB page above */
#define GUEST_HEARTBEAT_PORT 0x510u

/* Fields of a vCPU slot. */
#define SLOT_COUNTER 0u	    /* u64, +1 per loop iteration */
#define SLOT_CHECKSUM 8u    /* u32, the guest's sum of the static region */
#define SLOT_HEARTBEATS 12u /* u32, +1 per heartbeat */

/* Loop iterations per heartbeat (the guest's instructions are ~0.6 us each
 * under nested KVM; the interpreter is ~100x faster). */
#define GUEST_ITERS_KVM 8192u
#define GUEST_ITERS_INTERP 65535u

/* Real-mode memory hole for KVM's TSS and identity map, below 4 GiB. */
#define GUEST_LOW_MAX (3ull << 30)
#define GUEST_HIGH_BASE (4ull << 30)
/* The memory slot an exec upgrade registers inside the pause: all the guest
 * program touches.  The rest of RAM follows while the guest runs. */
#define GUEST_BOOT_SLOT_SIZE (2ull << 20)
#define GUEST_TSS_ADDR 0xfffbd000u

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- guest.c */

extern const uint8_t guest_program[];
extern const size_t guest_program_size;

struct guest_fingerprint {
	uint32_t static_sum; /* what the guest must compute */
	uint64_t ram_hash;   /* hash of every page's pattern qword */
};

/* Write program, parameters and patterns into fresh guest RAM (touching
 * every 4 KiB page); returns what the checks must find later. */
void guest_load(uint8_t *ram, uint64_t ram_size, uint64_t seed, unsigned iters,
		struct guest_fingerprint *ret_fp);
/* Recompute the hash of the page patterns. */
uint64_t guest_ram_hash(const uint8_t *ram, uint64_t ram_size, uint64_t seed);

struct guest_slot {
	uint64_t counter;
	uint32_t checksum;
	uint32_t heartbeats;
};
void guest_slot_read(const uint8_t *ram, unsigned vcpu, struct guest_slot *ret);

/* Real-mode boot registers for vCPU @index. */
void guest_boot_regs(unsigned index, struct kvm_regs *regs, struct kvm_sregs *sregs);

enum interp_exit {
	INTERP_BUDGET = 0, /* ran @budget instructions */
	INTERP_IO = 1,	   /* OUT executed: *ret_port set */
	INTERP_HLT = 2,
};
/*
 * Run real-mode code from @regs/@sregs over @ram for at most @budget
 * instructions.  Returns an enum interp_exit, or -EFAULT (access outside
 * RAM), -ENOEXEC (instruction not implemented), -ENOTSUP (not real mode);
 * then @regs still points at the faulting instruction.
 */
int interp_run(struct kvm_regs *regs, const struct kvm_sregs *sregs, uint8_t *ram,
	       uint64_t ram_size, unsigned budget, uint16_t *ret_port);

/* ---------------------------------------------------------------- kvm.c */

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd; /* -1 with the interpreter */
	struct kvm_run *run;
	size_t run_size;
	struct kvm_regs regs; /* saved while stopped; the interpreter's registers */
	struct kvm_sregs sregs;
	bool load_regs; /* regs/sregs must go into KVM before running */
	pthread_t thread;
	bool have_thread;
	bool in_guest;	    /* between leaving and re-entering the park (vm->lock) */
	uint64_t t_started; /* first KVM_RUN (or interpreter step) after a start */
	uint64_t t_stopped; /* left KVM_RUN for a stop */
	atomic_uint_fast64_t heartbeats;
	int error; /* fatal guest error, -errno */
};

enum vm_want {
	VM_WANT_PAUSE = 0,
	VM_WANT_SPIN, /* about to start: threads poll instead of sleeping */
	VM_WANT_RUN,
	VM_WANT_EXIT,
};

struct vm_timing {
	uint64_t create_vm_ns;
	uint64_t create_vcpus_ns; /* these two overlap */
	uint64_t memslots_ns;
	uint64_t total_ns;
	uint64_t late_slots_ns; /* deferred slots, registered while the guest ran */
	uint64_t t_late_slots_done;
};

struct vm {
	bool use_kvm;
	int kvm_fd;
	int vm_fd;
	uint8_t *ram;
	uint64_t ram_size;
	unsigned n_vcpus;
	struct vcpu vcpus[VM_MAX_VCPUS];
	struct vm_timing timing;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vm_want want;
	unsigned n_paused; /* threads parked (stopped or not yet started) */
	atomic_bool stop_req;
	bool failed; /* a vCPU hit a fatal error */
	bool rt;     /* boost kicked vCPU threads to SCHED_FIFO */

	uint64_t boot_slot_size; /* slot 0; the rest is deferred or not */
	bool slots_deferred;	 /* RAM above the boot slot registered late */
	pthread_t slots_thread;
	bool have_slots_thread;
	unsigned slots_delay_ms;    /* a test's window with slots still deferred */
	pthread_mutex_t slots_lock; /* protects the three below */
	pthread_cond_t slots_cond;
	bool slots_done;  /* late registration over: slots_error says how */
	bool slots_hurry; /* skip the delay: the VM is going away */
	int slots_error;
	atomic_uint_fast64_t mmio_ram;	  /* guest accesses that waited for their slot */
	atomic_uint_fast64_t ram_wait_ns; /* and how long they waited in all */
};

/* 1 if /dev/kvm can create a VM here, 0 if not (reason in @why). */
int vm_kvm_usable(char *why, size_t len);
/*
 * Build the VM (KVM: VM, vCPUs, memory slots over @ram; else interpreter).
 * With @defer_slots, only the boot slot (@boot_slot bytes at 0, or
 * GUEST_BOOT_SLOT_SIZE when 0) is registered now: vm_add_deferred_slots()
 * registers the rest later, and until then the guest's accesses to that
 * RAM exit to us and are done on the same pages.
 */
int vm_init(struct vm *vm, bool use_kvm, uint8_t *ram, uint64_t ram_size, unsigned n_vcpus,
	    bool defer_slots, uint64_t boot_slot);
/*
 * Register the deferred memory slots on a thread of their own, @delay_ms
 * after this call (no-op when none are deferred).  A vCPU that touches their
 * RAM before that waits for them.  vm_wait_slots() waits for the thread,
 * retries once what failed, and returns the error that remains.
 */
void vm_add_deferred_slots(struct vm *vm, unsigned delay_ms);
int vm_wait_slots(struct vm *vm);
/* Bytes of guest RAM outside the boot slot, deferred or not. */
uint64_t vm_late_ram(const struct vm *vm);
/* Set every vCPU to the boot state. */
void vm_boot_state(struct vm *vm);
/* Create the vCPU threads; they poll for vm_start() for a while when a CPU
 * is free for that. */
int vm_arm(struct vm *vm);
/* Start (or continue) every vCPU; waits until each has entered the guest. */
int vm_start(struct vm *vm);
/* Stop every vCPU and save its registers; *ret_t_stop = first stop time. */
int vm_stop(struct vm *vm, uint64_t *ret_t_stop);
/* Earliest/latest t_started of the last start. */
uint64_t vm_first_start(const struct vm *vm);
uint64_t vm_last_start(const struct vm *vm);
uint64_t vm_heartbeats(struct vm *vm);
/* Join threads, close fds.  Does not unmap RAM (not ours). */
void vm_destroy(struct vm *vm);

#endif
