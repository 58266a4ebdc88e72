/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The machine as one image sees it: guest RAM as a libcpr RAM block (fresh
 * or adopted), the guest loaded into it, the VM built over it, the checks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm.h"

#define HUGE_2M (2ull << 20)

static int ram_block(struct vmm *m, uint64_t size, unsigned flags)
{
	struct stat st;
	int r;

	r = cpr_ramblock_new(m->ctx, RAM_IDSTR, size, size, HUGE_2M, flags, &m->rb, NULL);
	if (r < 0)
		return r;
	if (fstat(cpr_ramblock_fd(m->rb), &st) < 0)
		return -errno;
	m->ram_ino = (uint64_t)st.st_ino;
	m->page_size = cpr_ramblock_page_size(m->rb);
	return 0;
}

static unsigned ram_flags(bool hugepages)
{
	return CPR_RAMBLOCK_DONTDUMP | (hugepages ? CPR_RAMBLOCK_HUGEPAGES : 0);
}

/* A fresh image: new RAM, the guest loaded, boot registers. */
int machine_boot(struct vmm *m)
{
	struct guest_fingerprint fp;
	uint64_t seed;
	bool kvm = !m->opt.no_kvm;
	char why[256];
	int r;

	if (kvm && !vm_kvm_usable(why, sizeof(why))) {
		fprintf(stderr, "minivmm: %s; running the guest in the interpreter\n", why);
		kvm = false;
	}
	r = ram_block(m, m->opt.ram_size, ram_flags(m->opt.hugepages));
	if (r < 0) {
		fprintf(stderr, "minivmm: guest RAM (%llu MiB): %s\n",
			(unsigned long long)(m->opt.ram_size >> 20), strerror(-r));
		return r;
	}
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = now_ns();
	m->rec = (struct rec_vm){
		.n_vcpus = m->opt.n_vcpus,
		.flags = (kvm ? VM_FLAG_KVM : 0) | (m->page_size > 4096 ? VM_FLAG_HUGEPAGES : 0),
		.ram_size = m->opt.ram_size,
		.seed = seed,
		.ram_ino = m->ram_ino,
		.boot_pid = (uint32_t)getpid(),
		.iters = kvm ? GUEST_ITERS_KVM : GUEST_ITERS_INTERP,
	};
	guest_load(cpr_ramblock_host(m->rb), m->rec.ram_size, seed, m->rec.iters, &fp);
	m->rec.static_sum = fp.static_sum;
	m->rec.ram_hash = fp.ram_hash;
	r = vfio_boot(m);
	if (r >= 0)
		r = machine_build_vm(m, false);
	if (r < 0)
		return r;
	vm_boot_state(&m->vm);
	return 0;
}

/* An incoming image: the VM record says what the machine is; adopt its RAM. */
int machine_adopt(struct vmm *m)
{
	const struct cpr_state *st = cpr_ctx_incoming_state(m->ctx);
	const void *data;
	size_t len;
	int r;

	if (!st)
		return -ENODATA;
	r = cpr_state_private_find(st, REC_VM, 0, &data, &len);
	if (r < 0) {
		fprintf(stderr, "minivmm: incoming state has no minivmm machine record\n");
		return -EBADMSG;
	}
	r = rec_vm_decode(data, len, &m->rec);
	if (r < 0) {
		fprintf(stderr, "minivmm: incoming machine record: %s\n", strerror(-r));
		return r;
	}
	r = ram_block(m, m->rec.ram_size,
		      ram_flags(m->rec.flags & VM_FLAG_HUGEPAGES) | CPR_RAMBLOCK_TAKE_RECORDED);
	if (r < 0) {
		fprintf(stderr, "minivmm: adopting guest RAM: %s\n", strerror(-r));
		return r;
	}
	if (!cpr_ramblock_adopted(m->rb) || cpr_ramblock_used_length(m->rb) != m->rec.ram_size) {
		fprintf(stderr, "minivmm: guest RAM was not carried over\n");
		return -EBADMSG;
	}
	r = vfio_adopt(m);
	if (r < 0)
		return r;
	/* The history only feeds the summary: a bad one is dropped. */
	if (cpr_state_private_find(st, REC_HISTORY, 0, &data, &len) < 0 ||
	    rec_history_decode(data, len, &m->history) < 0)
		m->history.n = 0;
	if ((m->rec.flags & VM_FLAG_KVM) && m->opt.no_kvm)
		m->rec.flags &= ~VM_FLAG_KVM;
	return 0;
}

int machine_build_vm(struct vmm *m, bool defer_slots)
{
	int r = vm_init(&m->vm, m->rec.flags & VM_FLAG_KVM, cpr_ramblock_host(m->rb),
			m->rec.ram_size, m->rec.n_vcpus, defer_slots, m->opt.boot_slot);

	m->vm.rt = m->opt.rt;
	if (r < 0)
		fprintf(stderr, "minivmm: building the %s VM: %s\n",
			(m->rec.flags & VM_FLAG_KVM) ? "KVM" : "interpreter", strerror(-r));
	return r;
}

void machine_counters(struct vmm *m, uint64_t *counters)
{
	for (unsigned i = 0; i < m->rec.n_vcpus; i++) {
		struct guest_slot s;

		guest_slot_read(cpr_ramblock_host(m->rb), i, &s);
		counters[i] = s.counter;
	}
}

int machine_verify(struct vmm *m, bool ram, char *why, size_t len)
{
	const uint8_t *host = cpr_ramblock_host(m->rb);

	for (unsigned i = 0; i < m->rec.n_vcpus; i++) {
		struct guest_slot s;

		guest_slot_read(host, i, &s);
		if (s.heartbeats && s.checksum != m->rec.static_sum) {
			snprintf(why, len, "vCPU %u computed static checksum %08x, expected %08x",
				 i, s.checksum, m->rec.static_sum);
			return -EBADMSG;
		}
	}
	if (ram && guest_ram_hash(host, m->rec.ram_size, m->rec.seed) != m->rec.ram_hash) {
		snprintf(why, len, "guest RAM pattern hash changed");
		return -EBADMSG;
	}
	return 0;
}
