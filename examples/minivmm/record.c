/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Encode and decode minivmm's private records.  Each starts with
 * {u32 version, u32 size}; fields follow at fixed offsets, little-endian.
 */
#include <errno.h>
#include <string.h>

#include "record.h"

struct cursor {
	uint8_t *p;
	const uint8_t *q;
};

static void put32(struct cursor *c, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		*c->p++ = (uint8_t)(v >> (8 * i));
}

static void put64(struct cursor *c, uint64_t v)
{
	put32(c, (uint32_t)v);
	put32(c, (uint32_t)(v >> 32));
}

static uint32_t get32(struct cursor *c)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < 4; i++)
		v |= (uint32_t)*c->q++ << (8 * i);
	return v;
}

static uint64_t get64(struct cursor *c)
{
	uint64_t lo = get32(c);

	return lo | (uint64_t)get32(c) << 32;
}

/* Version and size must match exactly: these records are never skipped. */
static int check_head(struct cursor *c, size_t len, size_t want)
{
	if (len < 8)
		return -EBADMSG;
	if (get32(c) != REC_VERSION)
		return -EPROTONOSUPPORT;
	if (get32(c) != want || len != want)
		return -EBADMSG;
	return 0;
}

void rec_vm_encode(const struct rec_vm *v, uint8_t out[REC_VM_SIZE])
{
	struct cursor c = { .p = out };

	put32(&c, REC_VERSION);
	put32(&c, REC_VM_SIZE);
	put32(&c, v->n_vcpus);
	put32(&c, v->flags);
	put64(&c, v->ram_size);
	put64(&c, v->seed);
	put64(&c, v->ram_hash);
	put32(&c, v->static_sum);
	put32(&c, v->upgrades);
	put64(&c, v->ram_ino);
	put32(&c, v->boot_pid);
	put32(&c, v->iters);
}

int rec_vm_decode(const void *buf, size_t len, struct rec_vm *ret)
{
	struct cursor c = { .q = buf };
	struct rec_vm v;
	int r = check_head(&c, len, REC_VM_SIZE);

	if (r < 0)
		return r;
	v.n_vcpus = get32(&c);
	v.flags = get32(&c);
	v.ram_size = get64(&c);
	v.seed = get64(&c);
	v.ram_hash = get64(&c);
	v.static_sum = get32(&c);
	v.upgrades = get32(&c);
	v.ram_ino = get64(&c);
	v.boot_pid = get32(&c);
	v.iters = get32(&c);
	if (v.n_vcpus == 0 || v.n_vcpus > VM_MAX_VCPUS || v.ram_size < VM_RAM_MIN ||
	    v.ram_size > VM_RAM_MAX || (v.flags & ~(VM_FLAG_KVM | VM_FLAG_HUGEPAGES)) ||
	    v.iters > 0xffff)
		return -EBADMSG;
	*ret = v;
	return 0;
}

void rec_pause_encode(const struct rec_pause *p, uint8_t out[REC_PAUSE_SIZE])
{
	struct cursor c = { .p = out };

	put32(&c, REC_VERSION);
	put32(&c, REC_PAUSE_SIZE);
	put32(&c, p->mode);
	put32(&c, p->old_pid);
	put64(&c, p->t_stop);
	put64(&c, p->t_stopped);
	put64(&c, p->t_handoff);
	put64(&c, p->ram_ino);
	put32(&c, p->n_vcpus);
	put32(&c, p->keeper_pid);
	for (unsigned i = 0; i < VM_MAX_VCPUS; i++)
		put64(&c, p->counters[i]);
}

int rec_pause_decode(const void *buf, size_t len, struct rec_pause *ret)
{
	struct cursor c = { .q = buf };
	struct rec_pause p;
	int r = check_head(&c, len, REC_PAUSE_SIZE);

	if (r < 0)
		return r;
	p.mode = get32(&c);
	p.old_pid = get32(&c);
	p.t_stop = get64(&c);
	p.t_stopped = get64(&c);
	p.t_handoff = get64(&c);
	p.ram_ino = get64(&c);
	p.n_vcpus = get32(&c);
	p.keeper_pid = get32(&c);
	for (unsigned i = 0; i < VM_MAX_VCPUS; i++)
		p.counters[i] = get64(&c);
	if (p.mode < UPGRADE_EXEC || p.mode > UPGRADE_KEXEC || p.n_vcpus == 0 ||
	    p.n_vcpus > VM_MAX_VCPUS)
		return -EBADMSG;
	*ret = p;
	return 0;
}

static void put_seg(struct cursor *c, const struct kvm_segment *s)
{
	put64(c, s->base);
	put32(c, s->limit);
	put32(c, (uint32_t)s->selector | (uint32_t)s->type << 16 | (uint32_t)s->present << 24);
	put32(c, (uint32_t)s->dpl | (uint32_t)s->db << 8 | (uint32_t)s->s << 16 |
			 (uint32_t)s->l << 24);
	put32(c, (uint32_t)s->g | (uint32_t)s->avl << 8 | (uint32_t)s->unusable << 16);
}

static void get_seg(struct cursor *c, struct kvm_segment *s)
{
	uint32_t a, b, d;

	s->base = get64(c);
	s->limit = get32(c);
	a = get32(c);
	b = get32(c);
	d = get32(c);
	s->selector = (uint16_t)a;
	s->type = (uint8_t)(a >> 16);
	s->present = (uint8_t)(a >> 24);
	s->dpl = (uint8_t)b;
	s->db = (uint8_t)(b >> 8);
	s->s = (uint8_t)(b >> 16);
	s->l = (uint8_t)(b >> 24);
	s->g = (uint8_t)d;
	s->avl = (uint8_t)(d >> 8);
	s->unusable = (uint8_t)(d >> 16);
}

static void put_dt(struct cursor *c, const struct kvm_dtable *d)
{
	put64(c, d->base);
	put64(c, d->limit);
}

static void get_dt(struct cursor *c, struct kvm_dtable *d)
{
	d->base = get64(c);
	d->limit = (uint16_t)get64(c);
}

void rec_vcpu_encode(const struct kvm_regs *regs, const struct kvm_sregs *sregs,
		     uint8_t out[REC_VCPU_SIZE])
{
	const __u64 gpr[18] = {
		regs->rax, regs->rbx, regs->rcx, regs->rdx, regs->rsi, regs->rdi,
		regs->rsp, regs->rbp, regs->r8,	 regs->r9,  regs->r10, regs->r11,
		regs->r12, regs->r13, regs->r14, regs->r15, regs->rip, regs->rflags
	};
	const struct kvm_segment *segs[8] = { &sregs->cs, &sregs->ds, &sregs->es, &sregs->fs,
					      &sregs->gs, &sregs->ss, &sregs->tr, &sregs->ldt };
	struct cursor c = { .p = out };

	put32(&c, REC_VERSION);
	put32(&c, REC_VCPU_SIZE);
	for (unsigned i = 0; i < 18; i++)
		put64(&c, gpr[i]);
	for (unsigned i = 0; i < 8; i++)
		put_seg(&c, segs[i]);
	put_dt(&c, &sregs->gdt);
	put_dt(&c, &sregs->idt);
	put64(&c, sregs->cr0);
	put64(&c, sregs->cr2);
	put64(&c, sregs->cr3);
	put64(&c, sregs->cr4);
	put64(&c, sregs->cr8);
	put64(&c, sregs->efer);
	put64(&c, sregs->apic_base);
	for (unsigned i = 0; i < 4; i++)
		put64(&c, sregs->interrupt_bitmap[i]);
}

int rec_vcpu_decode(const void *buf, size_t len, struct kvm_regs *ret_regs,
		    struct kvm_sregs *ret_sregs)
{
	struct cursor c = { .q = buf };
	struct kvm_regs regs;
	struct kvm_sregs sregs = { 0 };
	__u64 *gpr[18] = { &regs.rax, &regs.rbx, &regs.rcx, &regs.rdx, &regs.rsi, &regs.rdi,
			   &regs.rsp, &regs.rbp, &regs.r8,  &regs.r9,  &regs.r10, &regs.r11,
			   &regs.r12, &regs.r13, &regs.r14, &regs.r15, &regs.rip, &regs.rflags };
	struct kvm_segment *segs[8] = { &sregs.cs, &sregs.ds, &sregs.es, &sregs.fs,
					&sregs.gs, &sregs.ss, &sregs.tr, &sregs.ldt };
	int r = check_head(&c, len, REC_VCPU_SIZE);

	if (r < 0)
		return r;
	for (unsigned i = 0; i < 18; i++)
		*gpr[i] = get64(&c);
	for (unsigned i = 0; i < 8; i++)
		get_seg(&c, segs[i]);
	get_dt(&c, &sregs.gdt);
	get_dt(&c, &sregs.idt);
	sregs.cr0 = get64(&c);
	sregs.cr2 = get64(&c);
	sregs.cr3 = get64(&c);
	sregs.cr4 = get64(&c);
	sregs.cr8 = get64(&c);
	sregs.efer = get64(&c);
	sregs.apic_base = get64(&c);
	for (unsigned i = 0; i < 4; i++)
		sregs.interrupt_bitmap[i] = get64(&c);
	*ret_regs = regs;
	*ret_sregs = sregs;
	return 0;
}

size_t rec_history_encode(const struct rec_history *h, uint8_t out[REC_HISTORY_MAX_SIZE])
{
	struct cursor c = { .p = out };
	size_t size = 12u + 16u * h->n;

	put32(&c, REC_VERSION);
	put32(&c, (uint32_t)size);
	put32(&c, h->n);
	for (uint32_t i = 0; i < h->n; i++) {
		put32(&c, h->mode[i]);
		put32(&c, 0);
		put64(&c, h->pause_ns[i]);
	}
	return size;
}

int rec_history_decode(const void *buf, size_t len, struct rec_history *ret)
{
	struct cursor c = { .q = buf };
	struct rec_history h;
	uint32_t size;

	if (len < 12)
		return -EBADMSG;
	if (get32(&c) != REC_VERSION)
		return -EPROTONOSUPPORT;
	size = get32(&c);
	h.n = get32(&c);
	if (h.n > HISTORY_MAX || size != len || len != 12u + 16u * h.n)
		return -EBADMSG;
	for (uint32_t i = 0; i < h.n; i++) {
		h.mode[i] = get32(&c);
		if (get32(&c) != 0)
			return -EBADMSG;
		h.pause_ns[i] = get64(&c);
	}
	*ret = h;
	return 0;
}

/* Keep the last HISTORY_MAX entries. */
void rec_history_add(struct rec_history *h, uint32_t mode, uint64_t pause_ns)
{
	if (h->n == HISTORY_MAX) {
		memmove(h->mode, h->mode + 1, (HISTORY_MAX - 1) * sizeof(h->mode[0]));
		memmove(h->pause_ns, h->pause_ns + 1, (HISTORY_MAX - 1) * sizeof(h->pause_ns[0]));
		h->n--;
	}
	h->mode[h->n] = mode;
	h->pause_ns[h->n] = pause_ns;
	h->n++;
}
