/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest: a 44-byte real-mode program, the RAM layout around it, the
 * checks the VMM runs on it, and a small interpreter that runs the same bytes
 * where /dev/kvm is not available.
 */
#include <errno.h>
#include <string.h>

#include "minivmm.h"

/*
 * Entry: BX = this vCPU's slot, DX = heartbeat port, segments at 0.
 *
 *	start:	mov	cx, [0x3000]		; iterations per heartbeat
 *	inner:	add	dword [bx], 1		; 64-bit counter: low half
 *		adc	dword [bx+4], 0		;                 high half
 *		loop	inner
 *		xor	eax, eax		; sum the static region
 *		mov	si, 0x8000
 *	sum:	add	eax, [si]
 *		add	si, 4
 *		cmp	si, 0x9000
 *		jne	sum
 *		mov	[bx+8], eax		; publish the checksum
 *		inc	dword [bx+12]		; heartbeats
 *		out	dx, al			; heartbeat: exit to the VMM
 *		jmp	start
 */
const uint8_t guest_program[] = {
	0x8b, 0x0e, 0x00, 0x30, 0x66, 0x83, 0x07, 0x01, 0x66, 0x83, 0x57, 0x04, 0x00, 0xe2, 0xf5,
	0x66, 0x31, 0xc0, 0xbe, 0x00, 0x80, 0x66, 0x03, 0x04, 0x83, 0xc6, 0x04, 0x81, 0xfe, 0x00,
	0x90, 0x75, 0xf4, 0x66, 0x89, 0x47, 0x08, 0x66, 0xff, 0x47, 0x0c, 0xee, 0xeb, 0xd4,
};
const size_t guest_program_size = sizeof(guest_program);

/* splitmix64: the pattern written at the start of every page. */
static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline void store64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t load32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

uint64_t guest_ram_hash(const uint8_t *ram, uint64_t ram_size, uint64_t seed)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;

	for (uint64_t off = GUEST_FILL_START; off + 8 <= ram_size; off += 4096)
		h = (h ^ load64(ram + off)) * 0x100000001b3ull;
	return h;
}

void guest_load(uint8_t *ram, uint64_t ram_size, uint64_t seed, unsigned iters,
		struct guest_fingerprint *ret_fp)
{
	uint32_t sum = 0;

	memcpy(ram + GUEST_CODE, guest_program, guest_program_size);
	ram[GUEST_PARAM_ITERS] = (uint8_t)iters;
	ram[GUEST_PARAM_ITERS + 1] = (uint8_t)(iters >> 8);
	for (uint32_t off = 0; off < GUEST_STATIC_SIZE; off += 8)
		store64(ram + GUEST_STATIC + off, mix64(seed ^ off));
	for (uint32_t off = 0; off < GUEST_STATIC_SIZE; off += 4)
		sum += load32(ram + GUEST_STATIC + off);
	/* Touch every page: the guest's RAM is fully populated. */
	for (uint64_t off = GUEST_FILL_START; off + 8 <= ram_size; off += 4096)
		store64(ram + off, mix64(seed + off));
	ret_fp->static_sum = sum;
	ret_fp->ram_hash = guest_ram_hash(ram, ram_size, seed);
}

void guest_slot_read(const uint8_t *ram, unsigned vcpu, struct guest_slot *ret)
{
	const uint8_t *slot = ram + GUEST_SLOTS + vcpu * GUEST_SLOT_SIZE;

	/* Each field is naturally aligned: these loads are single accesses. */
	ret->counter = __atomic_load_n((const uint64_t *)(slot + SLOT_COUNTER), __ATOMIC_RELAXED);
	ret->checksum = __atomic_load_n((const uint32_t *)(slot + SLOT_CHECKSUM), __ATOMIC_RELAXED);
	ret->heartbeats =
		__atomic_load_n((const uint32_t *)(slot + SLOT_HEARTBEATS), __ATOMIC_RELAXED);
}

static void real_mode_seg(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	*s = (struct kvm_segment){
		.base = (uint64_t)sel << 4,
		.limit = 0xffff,
		.selector = sel,
		.type = type,
		.present = 1,
		.s = 1,
	};
}

void guest_boot_regs(unsigned index, struct kvm_regs *regs, struct kvm_sregs *sregs)
{
	*regs = (struct kvm_regs){
		.rip = GUEST_CODE,
		.rflags = 0x2,
		.rbx = GUEST_SLOTS + index * GUEST_SLOT_SIZE,
		.rdx = GUEST_HEARTBEAT_PORT,
		.rsp = GUEST_STACK - index * 0x100,
	};
	/* Keep what KVM filled in (descriptor tables, apic_base); set the
	 * segments to flat real mode at 0. */
	real_mode_seg(&sregs->cs, 0, 0xb);
	real_mode_seg(&sregs->ds, 0, 0x3);
	real_mode_seg(&sregs->es, 0, 0x3);
	real_mode_seg(&sregs->fs, 0, 0x3);
	real_mode_seg(&sregs->gs, 0, 0x3);
	real_mode_seg(&sregs->ss, 0, 0x3);
	sregs->cr0 &= ~1ull;
	sregs->efer = 0;
}

/* ---------------------------------------------------------------- interpreter */

#define FL_CF (1u << 0)
#define FL_PF (1u << 2)
#define FL_ZF (1u << 6)
#define FL_SF (1u << 7)
#define FL_OF (1u << 11)
#define FL_ARITH (FL_CF | FL_PF | FL_ZF | FL_SF | FL_OF)

enum alu_op { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP };

struct cpu {
	struct kvm_regs *r;
	const struct kvm_sregs *s;
	uint8_t *ram;
	uint64_t ram_size;
	uint16_t ip;  /* offset of the next byte to fetch */
	uint64_t seg; /* data segment base (after overrides) */
	bool seg_override;
	unsigned opsize; /* 2, or 4 with 0x66 */
};

struct operand {
	bool mem;
	unsigned reg;
	uint64_t lin;
};

static __u64 *reg_slot(struct kvm_regs *r, unsigned i)
{
	__u64 *map[8] = { &r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp, &r->rsi, &r->rdi };

	return map[i & 7];
}

static uint64_t size_mask(unsigned size)
{
	return size == 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

static uint64_t reg_get(struct kvm_regs *r, unsigned i, unsigned size)
{
	if (size == 1)
		return i < 4 ? *reg_slot(r, i) & 0xff : (*reg_slot(r, i - 4) >> 8) & 0xff;
	return *reg_slot(r, i) & size_mask(size);
}

static void reg_set(struct kvm_regs *r, unsigned i, unsigned size, uint64_t v)
{
	if (size == 1 && i >= 4) {
		__u64 *p = reg_slot(r, i - 4);

		*p = (*p & ~0xff00ull) | (v & 0xff) << 8;
		return;
	}
	__u64 *p = reg_slot(r, i);

	*p = (*p & ~size_mask(size)) | (v & size_mask(size));
}

static int mem_at(struct cpu *c, uint64_t lin, unsigned size, uint8_t **ret)
{
	if (lin > c->ram_size || size > c->ram_size - lin)
		return -EFAULT;
	*ret = c->ram + lin;
	return 0;
}

static int fetch(struct cpu *c, unsigned size, uint64_t *ret)
{
	uint8_t *p;
	uint64_t v = 0;
	int r = mem_at(c, c->s->cs.base + c->ip, size, &p);

	if (r < 0)
		return r;
	memcpy(&v, p, size);
	c->ip = (uint16_t)(c->ip + size);
	*ret = v;
	return 0;
}

static int fetch_disp(struct cpu *c, unsigned mod, uint16_t *disp)
{
	uint64_t v = 0;
	int r = 0;

	if (mod == 1) {
		r = fetch(c, 1, &v);
		v = (uint64_t)(int64_t)(int8_t)v;
	} else if (mod == 2) {
		r = fetch(c, 2, &v);
	}
	*disp = (uint16_t)v;
	return r;
}

/* 16-bit ModRM addressing. */
static int decode_modrm(struct cpu *c, struct operand *rm, unsigned *reg)
{
	static const uint8_t base[8][2] = { { 3, 6 }, { 3, 7 }, { 5, 6 }, { 5, 7 },
					    { 6, 8 }, { 7, 8 }, { 5, 8 }, { 3, 8 } };
	uint64_t b;
	uint16_t disp, ea = 0;
	unsigned mod, m;
	int r = fetch(c, 1, &b);

	if (r < 0)
		return r;
	mod = (unsigned)b >> 6;
	*reg = ((unsigned)b >> 3) & 7;
	m = (unsigned)b & 7;
	if (mod == 3) {
		*rm = (struct operand){ .mem = false, .reg = m };
		return 0;
	}
	if (mod == 0 && m == 6) {
		r = fetch_disp(c, 2, &disp);
		ea = disp;
	} else {
		r = fetch_disp(c, mod, &disp);
		ea = (uint16_t)(reg_get(c->r, base[m][0], 2) + disp);
		if (base[m][1] != 8)
			ea = (uint16_t)(ea + reg_get(c->r, base[m][1], 2));
	}
	if (r < 0)
		return r;
	/* BP-based forms default to SS. */
	uint64_t seg = c->seg;

	if (!c->seg_override && (m == 2 || m == 3 || (m == 6 && mod != 0)))
		seg = c->s->ss.base;
	*rm = (struct operand){ .mem = true, .lin = seg + ea };
	return 0;
}

static int op_get(struct cpu *c, const struct operand *o, unsigned size, uint64_t *ret)
{
	uint8_t *p;
	uint64_t v = 0;
	int r;

	if (!o->mem) {
		*ret = reg_get(c->r, o->reg, size);
		return 0;
	}
	r = mem_at(c, o->lin, size, &p);
	if (r < 0)
		return r;
	memcpy(&v, p, size);
	*ret = v;
	return 0;
}

static int op_set(struct cpu *c, const struct operand *o, unsigned size, uint64_t v)
{
	uint8_t *p;
	int r;

	if (!o->mem) {
		reg_set(c->r, o->reg, size, v);
		return 0;
	}
	r = mem_at(c, o->lin, size, &p);
	if (r < 0)
		return r;
	memcpy(p, &v, size);
	return 0;
}

static void set_szp(struct kvm_regs *r, uint64_t res, unsigned size, uint64_t fl)
{
	uint8_t lo = (uint8_t)res;

	res &= size_mask(size);
	if (res == 0)
		fl |= FL_ZF;
	if (res >> (size * 8 - 1))
		fl |= FL_SF;
	if (!(__builtin_popcount(lo) & 1))
		fl |= FL_PF;
	r->rflags = (r->rflags & ~(uint64_t)FL_ARITH) | fl;
}

/* One ALU operation; sets the flags; returns the result. */
static uint64_t alu(struct kvm_regs *r, unsigned op, uint64_t a, uint64_t b, unsigned size)
{
	uint64_t m = size_mask(size), sign = 1ull << (size * 8 - 1);
	uint64_t carry = (op == ALU_ADC || op == ALU_SBB) ? r->rflags & FL_CF : 0;
	uint64_t res, fl = 0;

	a &= m;
	b &= m;
	switch (op) {
	case ALU_ADD:
	case ALU_ADC:
		res = (a + b + carry) & m;
		if (res < a || (carry && res == a))
			fl |= FL_CF;
		if ((a ^ res) & (b ^ res) & sign)
			fl |= FL_OF;
		break;
	case ALU_SUB:
	case ALU_SBB:
	case ALU_CMP:
		res = (a - b - carry) & m;
		if (a < b || (carry && a == b))
			fl |= FL_CF;
		if ((a ^ b) & (a ^ res) & sign)
			fl |= FL_OF;
		break;
	case ALU_OR:
		res = a | b;
		break;
	case ALU_AND:
		res = a & b;
		break;
	default:
		res = a ^ b;
		break;
	}
	set_szp(r, res, size, fl);
	return res;
}

static bool cond(uint64_t f, unsigned cc)
{
	bool cf = f & FL_CF, zf = f & FL_ZF, sf = f & FL_SF, of = f & FL_OF, pf = f & FL_PF;
	bool v;

	switch (cc >> 1) {
	case 0:
		v = of;
		break;
	case 1:
		v = cf;
		break;
	case 2:
		v = zf;
		break;
	case 3:
		v = cf || zf;
		break;
	case 4:
		v = sf;
		break;
	case 5:
		v = pf;
		break;
	case 6:
		v = sf != of;
		break;
	default:
		v = zf || sf != of;
		break;
	}
	return (cc & 1) ? !v : v;
}

/* Binary ALU op with a ModRM operand; @dir 0: rm op= reg, 1: reg op= rm. */
static int exec_alu_modrm(struct cpu *c, unsigned op, unsigned size, bool dir)
{
	struct operand rm;
	unsigned reg;
	uint64_t a, b, res;
	int r = decode_modrm(c, &rm, &reg);

	if (r < 0 || (r = op_get(c, &rm, size, &a)) < 0)
		return r;
	b = reg_get(c->r, reg, size);
	if (dir) {
		res = alu(c->r, op, b, a, size);
		if (op != ALU_CMP)
			reg_set(c->r, reg, size, res);
		return 0;
	}
	res = alu(c->r, op, a, b, size);
	return op == ALU_CMP ? 0 : op_set(c, &rm, size, res);
}

/* 0x80/0x81/0x83: ALU op on rm with an immediate. */
static int exec_group1(struct cpu *c, unsigned size, unsigned imm_size)
{
	struct operand rm;
	unsigned op;
	uint64_t a, imm, res;
	int r = decode_modrm(c, &rm, &op);

	if (r < 0 || (r = fetch(c, imm_size, &imm)) < 0 || (r = op_get(c, &rm, size, &a)) < 0)
		return r;
	if (imm_size == 1 && size > 1)
		imm = (uint64_t)(int64_t)(int8_t)imm;
	res = alu(c->r, op, a, imm, size);
	return op == ALU_CMP ? 0 : op_set(c, &rm, size, res);
}

static void incdec_flags(struct kvm_regs *r, uint64_t a, unsigned size, bool dec)
{
	uint64_t cf = r->rflags & FL_CF;

	alu(r, dec ? ALU_SUB : ALU_ADD, a, 1, size);
	r->rflags = (r->rflags & ~(uint64_t)FL_CF) | cf;
}

/* 0xfe/0xff: inc/dec rm. */
static int exec_group45(struct cpu *c, unsigned size)
{
	struct operand rm;
	unsigned op;
	uint64_t a;
	int r = decode_modrm(c, &rm, &op);

	if (r < 0 || (r = op_get(c, &rm, size, &a)) < 0)
		return r;
	if (op > 1)
		return -ENOEXEC;
	incdec_flags(c->r, a, size, op == 1);
	return op_set(c, &rm, size, op == 1 ? a - 1 : a + 1);
}

static int exec_mov(struct cpu *c, unsigned size, bool to_reg)
{
	struct operand rm;
	unsigned reg;
	uint64_t v;
	int r = decode_modrm(c, &rm, &reg);

	if (r < 0)
		return r;
	if (to_reg) {
		if ((r = op_get(c, &rm, size, &v)) < 0)
			return r;
		reg_set(c->r, reg, size, v);
		return 0;
	}
	return op_set(c, &rm, size, reg_get(c->r, reg, size));
}

static int jump_rel(struct cpu *c, unsigned size, bool taken)
{
	uint64_t rel;
	int r = fetch(c, size, &rel);

	if (r < 0)
		return r;
	if (taken)
		c->ip = (uint16_t)(c->ip + (size == 1 ? (int8_t)rel : (int16_t)rel));
	return 0;
}

/* Opcodes 0x00-0x3f that are ALU forms; returns 1 if handled. */
static int exec_alu_opcode(struct cpu *c, uint8_t opc, int *ret)
{
	unsigned op = opc >> 3, form = opc & 7;
	uint64_t imm;

	if (opc >= 0x40 || form > 5)
		return 0;
	switch (form) {
	case 0:
		*ret = exec_alu_modrm(c, op, 1, false);
		break;
	case 1:
		*ret = exec_alu_modrm(c, op, c->opsize, false);
		break;
	case 2:
		*ret = exec_alu_modrm(c, op, 1, true);
		break;
	case 3:
		*ret = exec_alu_modrm(c, op, c->opsize, true);
		break;
	default: {
		unsigned size = form == 4 ? 1 : c->opsize;
		uint64_t res;

		*ret = fetch(c, size, &imm);
		if (*ret < 0)
			break;
		res = alu(c->r, op, c->r->rax, imm, size);
		if (op != ALU_CMP)
			reg_set(c->r, 0, size, res);
	}
	}
	return 1;
}

static int exec_one(struct cpu *c, uint8_t opc, uint16_t *ret_port)
{
	struct kvm_regs *r = c->r;
	uint64_t v;
	int rc;

	if (exec_alu_opcode(c, opc, &rc))
		return rc;
	if (opc >= 0x40 && opc <= 0x4f) {
		unsigned i = opc & 7;

		v = reg_get(r, i, c->opsize);
		incdec_flags(r, v, c->opsize, opc >= 0x48);
		reg_set(r, i, c->opsize, opc >= 0x48 ? v - 1 : v + 1);
		return 0;
	}
	if (opc >= 0x70 && opc <= 0x7f)
		return jump_rel(c, 1, cond(r->rflags, opc & 0xf));
	if (opc >= 0xb0 && opc <= 0xbf) {
		unsigned size = opc < 0xb8 ? 1 : c->opsize;

		if ((rc = fetch(c, size, &v)) < 0)
			return rc;
		reg_set(r, opc & 7, size, v);
		return 0;
	}
	switch (opc) {
	case 0x80:
		return exec_group1(c, 1, 1);
	case 0x81:
		return exec_group1(c, c->opsize, c->opsize);
	case 0x83:
		return exec_group1(c, c->opsize, 1);
	case 0x88:
		return exec_mov(c, 1, false);
	case 0x89:
		return exec_mov(c, c->opsize, false);
	case 0x8a:
		return exec_mov(c, 1, true);
	case 0x8b:
		return exec_mov(c, c->opsize, true);
	case 0x90:
		return 0;
	case 0xe2:
		reg_set(r, 1, 2, reg_get(r, 1, 2) - 1);
		return jump_rel(c, 1, reg_get(r, 1, 2) != 0);
	case 0xe6:
		if ((rc = fetch(c, 1, &v)) < 0)
			return rc;
		*ret_port = (uint16_t)v;
		return INTERP_IO;
	case 0xe9:
		return jump_rel(c, 2, true);
	case 0xeb:
		return jump_rel(c, 1, true);
	case 0xee:
	case 0xef:
		*ret_port = (uint16_t)r->rdx;
		return INTERP_IO;
	case 0xf4:
		return INTERP_HLT;
	case 0xfe:
		return exec_group45(c, 1);
	case 0xff:
		return exec_group45(c, c->opsize);
	default:
		return -ENOEXEC;
	}
}

/* Prefixes, then one instruction.  Returns <0, 0, or an INTERP_* exit. */
static int step(struct cpu *c, uint16_t *ret_port)
{
	uint64_t b;
	int r;

	c->seg = c->s->ds.base;
	c->seg_override = false;
	c->opsize = 2;
	for (unsigned n = 0; n < 4; n++) {
		if ((r = fetch(c, 1, &b)) < 0)
			return r;
		switch (b) {
		case 0x66:
			c->opsize = 4;
			continue;
		case 0x26:
			c->seg = c->s->es.base;
			c->seg_override = true;
			continue;
		case 0x2e:
			c->seg = c->s->cs.base;
			c->seg_override = true;
			continue;
		case 0x36:
			c->seg = c->s->ss.base;
			c->seg_override = true;
			continue;
		case 0x3e:
			c->seg = c->s->ds.base;
			c->seg_override = true;
			continue;
		default:
			return exec_one(c, (uint8_t)b, ret_port);
		}
	}
	return -ENOEXEC;
}

int interp_run(struct kvm_regs *regs, const struct kvm_sregs *sregs, uint8_t *ram,
	       uint64_t ram_size, unsigned budget, uint16_t *ret_port)
{
	struct cpu c = { .r = regs, .s = sregs, .ram = ram, .ram_size = ram_size };

	if (sregs->cr0 & 1)
		return -ENOTSUP;
	for (unsigned i = 0; i < budget; i++) {
		struct kvm_regs saved = *regs;
		int r;

		c.ip = (uint16_t)regs->rip;
		r = step(&c, ret_port);
		if (r < 0) {
			*regs = saved;
			return r;
		}
		regs->rip = c.ip;
		if (r != 0)
			return r;
	}
	return INTERP_BUDGET;
}
