/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * minivmm's VMM-private records, carried in the libcpr state (types in the
 * private range 0x8000..0xfffe).  Little-endian, explicit offsets, every
 * length checked; a record this build does not know the version of is
 * refused, never guessed.
 */
#ifndef MINIVMM_RECORD_H
#define MINIVMM_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "minivmm.h"

#define REC_VM 0x8d00u	    /* the machine: sizes, fingerprints, history */
#define REC_PAUSE 0x8d01u   /* the hand-off: when the guest stopped, counters */
#define REC_VCPU 0x8d02u    /* one per vCPU (instance = index): registers */
#define REC_HISTORY 0x8d03u /* the pauses of earlier upgrades, for the summary */
/* 0x8d04: REC_VFIO (vfio.h); 0x8d05: REC_KEXEC (kexec.c), the TSC at the stop */

#define REC_VERSION 1u

#define VM_FLAG_KVM (1u << 0)
#define VM_FLAG_HUGEPAGES (1u << 1)

struct rec_vm {
	uint32_t n_vcpus;
	uint32_t flags; /* VM_FLAG_* */
	uint64_t ram_size;
	uint64_t seed;
	uint64_t ram_hash;
	uint32_t static_sum;
	uint32_t upgrades; /* hand-offs completed before this one */
	uint64_t ram_ino;  /* inode of the RAM memfd at boot */
	uint32_t boot_pid;
	uint32_t iters;
};

enum upgrade_mode {
	UPGRADE_EXEC = 1,
	UPGRADE_TRANSFER = 2,
	UPGRADE_CPRD = 3,
	UPGRADE_KEXEC = 4, /* through cprd's Live Update session (kexec.c) */
};

struct rec_pause {
	uint32_t mode; /* enum upgrade_mode */
	uint32_t old_pid;
	uint64_t t_stop;    /* CLOCK_MONOTONIC ns: first vCPU stopped */
	uint64_t t_stopped; /* all vCPUs stopped and saved */
	uint64_t t_handoff; /* just before execve / the send */
	uint64_t ram_ino;   /* the old image's RAM memfd inode */
	uint32_t n_vcpus;
	uint32_t keeper_pid; /* exec: child holding the old VM's fds, 0 = none */
	uint64_t counters[VM_MAX_VCPUS];
};

#define HISTORY_MAX 64u
struct rec_history {
	uint32_t n;
	uint32_t mode[HISTORY_MAX];
	uint64_t pause_ns[HISTORY_MAX];
};

#define REC_VM_SIZE 64u
#define REC_PAUSE_SIZE (56u + 8u * VM_MAX_VCPUS)
#define REC_VCPU_SIZE 464u

void rec_vm_encode(const struct rec_vm *v, uint8_t out[REC_VM_SIZE]);
int rec_vm_decode(const void *buf, size_t len, struct rec_vm *ret);
void rec_pause_encode(const struct rec_pause *p, uint8_t out[REC_PAUSE_SIZE]);
int rec_pause_decode(const void *buf, size_t len, struct rec_pause *ret);
void rec_vcpu_encode(const struct kvm_regs *regs, const struct kvm_sregs *sregs,
		     uint8_t out[REC_VCPU_SIZE]);
/* Returns the encoded length (at most REC_HISTORY_MAX_SIZE). */
#define REC_HISTORY_MAX_SIZE (12u + 16u * HISTORY_MAX)
size_t rec_history_encode(const struct rec_history *h, uint8_t out[REC_HISTORY_MAX_SIZE]);
int rec_history_decode(const void *buf, size_t len, struct rec_history *ret);
void rec_history_add(struct rec_history *h, uint32_t mode, uint64_t pause_ns);
int rec_vcpu_decode(const void *buf, size_t len, struct kvm_regs *ret_regs,
		    struct kvm_sregs *ret_sregs);

#endif
