/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * minivmm's pieces that are not the hand-off: the guest program under the
 * interpreter (and against KVM where /dev/kvm works), and the private
 * records' encoding.  The hand-off itself is tests/minivmm.sh.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "minivmm.h"
#include "record.h"
#include "test-util.h"

#define RAM_SIZE (2u << 20)
#define ITERS 100u

struct ram {
	int fd;
	uint8_t *p;
};

static void ram_open(struct ram *r)
{
	r->fd = test_memfd("guest", RAM_SIZE);
	ck_assert_int_ge(r->fd, 0);
	r->p = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	ck_assert_ptr_ne(r->p, MAP_FAILED);
}

static void ram_close(struct ram *r)
{
	munmap(r->p, RAM_SIZE);
	close(r->fd);
}

/* Interpret until @n heartbeats. */
static void interp_heartbeats(struct ram *ram, struct kvm_regs *regs, const struct kvm_sregs *sregs,
			      unsigned n)
{
	for (unsigned hb = 0; hb < n;) {
		uint16_t port = 0;
		int r = interp_run(regs, sregs, ram->p, RAM_SIZE, 1000, &port);

		ck_assert_int_ge(r, 0);
		if (r == INTERP_IO) {
			ck_assert_uint_eq(port, GUEST_HEARTBEAT_PORT);
			hb++;
		}
	}
}

START_TEST(test_interp_run_guest_program)
{
	int nfds = test_count_fds();
	struct guest_fingerprint fp;
	struct kvm_regs regs;
	struct kvm_sregs sregs = { 0 };
	struct guest_slot s;
	struct ram ram;

	ram_open(&ram);
	guest_load(ram.p, RAM_SIZE, 7, ITERS, &fp);
	guest_boot_regs(1, &regs, &sregs);
	interp_heartbeats(&ram, &regs, &sregs, 3);
	guest_slot_read(ram.p, 1, &s);
	ck_assert_uint_eq(s.counter, 3 * ITERS);
	ck_assert_uint_eq(s.heartbeats, 3);
	ck_assert_uint_eq(s.checksum, fp.static_sum);
	/* vCPU 0's slot is untouched; the RAM pattern is intact. */
	guest_slot_read(ram.p, 0, &s);
	ck_assert_uint_eq(s.counter, 0);
	ck_assert_uint_eq(guest_ram_hash(ram.p, RAM_SIZE, 7), fp.ram_hash);
	ram_close(&ram);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_interp_run_counter_carry)
{
	int nfds = test_count_fds();
	struct guest_fingerprint fp;
	struct kvm_regs regs;
	struct kvm_sregs sregs = { 0 };
	struct guest_slot s;
	struct ram ram;
	uint64_t start = 0xffffffffull - 10;

	ram_open(&ram);
	guest_load(ram.p, RAM_SIZE, 7, ITERS, &fp);
	memcpy(ram.p + GUEST_SLOTS + SLOT_COUNTER, &start, 8);
	guest_boot_regs(0, &regs, &sregs);
	interp_heartbeats(&ram, &regs, &sregs, 1);
	guest_slot_read(ram.p, 0, &s);
	ck_assert_uint_eq(s.counter, start + ITERS);
	ram_close(&ram);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_interp_run_unknown_opcode)
{
	int nfds = test_count_fds();
	struct guest_fingerprint fp;
	struct kvm_regs regs;
	struct kvm_sregs sregs = { 0 };
	struct ram ram;
	uint16_t port;

	ram_open(&ram);
	guest_load(ram.p, RAM_SIZE, 7, ITERS, &fp);
	ram.p[GUEST_CODE] = 0x0f; /* ud2 */
	ram.p[GUEST_CODE + 1] = 0x0b;
	guest_boot_regs(0, &regs, &sregs);
	ck_assert_int_eq(interp_run(&regs, &sregs, ram.p, RAM_SIZE, 10, &port), -ENOEXEC);
	ck_assert_uint_eq(regs.rip, GUEST_CODE);
	ram_close(&ram);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_interp_run_outside_ram)
{
	int nfds = test_count_fds();
	struct guest_fingerprint fp;
	struct kvm_regs regs;
	struct kvm_sregs sregs = { 0 };
	struct ram ram;
	uint16_t port;

	ram_open(&ram);
	guest_load(ram.p, RAM_SIZE, 7, ITERS, &fp);
	guest_boot_regs(0, &regs, &sregs);
	sregs.cs.base = RAM_SIZE; /* code fetch beyond RAM */
	ck_assert_int_eq(interp_run(&regs, &sregs, ram.p, RAM_SIZE, 10, &port), -EFAULT);
	ram_close(&ram);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_interp_run_protected_mode)
{
	int nfds = test_count_fds();
	struct kvm_regs regs;
	struct kvm_sregs sregs = { 0 };
	struct ram ram;
	uint16_t port;

	ram_open(&ram);
	guest_boot_regs(0, &regs, &sregs);
	sregs.cr0 |= 1;
	ck_assert_int_eq(interp_run(&regs, &sregs, ram.p, RAM_SIZE, 10, &port), -ENOTSUP);
	ram_close(&ram);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* KVM_RUN until the first heartbeat OUT. */
static void kvm_heartbeat(struct vcpu *v)
{
	for (;;) {
		ck_assert_int_eq(ioctl(v->fd, KVM_RUN, 0), 0);
		if (v->run->exit_reason == KVM_EXIT_IO && v->run->io.port == GUEST_HEARTBEAT_PORT)
			return;
		ck_assert_int_eq(v->run->exit_reason, KVM_EXIT_IO);
	}
}

START_TEST(test_interp_run_matches_kvm)
{
	int nfds = test_count_fds();
	struct guest_fingerprint fp;
	struct kvm_regs kregs, iregs;
	struct kvm_sregs sregs;
	struct guest_slot ks, is;
	struct ram kram, iram;
	struct vm vm;
	char why[256];

	if (!vm_kvm_usable(why, sizeof(why)))
		test_skip_case("%s", why);
	ram_open(&kram);
	ram_open(&iram);
	guest_load(kram.p, RAM_SIZE, 9, ITERS, &fp);
	guest_load(iram.p, RAM_SIZE, 9, ITERS, &fp);
	ck_assert_int_eq(vm_init(&vm, true, kram.p, RAM_SIZE, 1, false, 0), 0);
	sregs = vm.vcpus[0].sregs;
	guest_boot_regs(0, &kregs, &sregs);
	iregs = kregs;
	ck_assert_int_eq(ioctl(vm.vcpus[0].fd, KVM_SET_SREGS, &sregs), 0);
	ck_assert_int_eq(ioctl(vm.vcpus[0].fd, KVM_SET_REGS, &kregs), 0);
	kvm_heartbeat(&vm.vcpus[0]);
	ck_assert_int_eq(ioctl(vm.vcpus[0].fd, KVM_GET_REGS, &kregs), 0);
	interp_heartbeats(&iram, &iregs, &sregs, 1);
	guest_slot_read(kram.p, 0, &ks);
	guest_slot_read(iram.p, 0, &is);
	ck_assert_uint_eq(ks.counter, is.counter);
	ck_assert_uint_eq(ks.checksum, is.checksum);
	ck_assert_uint_eq(kregs.rip, iregs.rip);
	ck_assert_uint_eq(kregs.rax & 0xffffffff, iregs.rax & 0xffffffff);
	ck_assert_uint_eq(kregs.rsi & 0xffff, iregs.rsi & 0xffff);
	ck_assert_uint_eq(kregs.rflags & 0x8c5, iregs.rflags & 0x8c5);
	vm_destroy(&vm);
	ram_close(&kram);
	ram_close(&iram);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The boot slot must be whole pages and hold the guest's code. */
START_TEST(test_vm_init_boot_slot_einval)
{
	int nfds = test_count_fds();
	struct ram r;
	struct vm vm;

	ram_open(&r);
	ck_assert_int_eq(vm_init(&vm, false, r.p, RAM_SIZE, 1, true, 4096), -EINVAL);
	ck_assert_int_eq(vm_init(&vm, false, r.p, RAM_SIZE, 1, true, GUEST_SLOTS + 1), -EINVAL);
	ck_assert_int_eq(vm_init(&vm, false, r.p, RAM_SIZE, 1, true, GUEST_SLOTS), 0);
	/* The interpreter has no slots to defer. */
	ck_assert(!vm.slots_deferred);
	vm_add_deferred_slots(&vm, 0);
	ck_assert_int_eq(vm_wait_slots(&vm), 0);
	ck_assert_uint_eq(vm_late_ram(&vm), RAM_SIZE - GUEST_SLOTS);
	vm_destroy(&vm);
	ram_close(&r);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_rec_vcpu_encode_roundtrip)
{
	int nfds = test_count_fds();
	struct kvm_regs regs, regs2;
	struct kvm_sregs sregs = { 0 }, sregs2;
	uint8_t buf[REC_VCPU_SIZE];

	guest_boot_regs(3, &regs, &sregs);
	regs.r15 = 0x1122334455667788ull;
	sregs.gdt = (struct kvm_dtable){ .base = 0xabc000, .limit = 0x17 };
	sregs.cr0 = 0x60000010;
	sregs.apic_base = 0xfee00900;
	sregs.ss.dpl = 3;
	sregs.interrupt_bitmap[2] = 1u << 5;
	rec_vcpu_encode(&regs, &sregs, buf);
	ck_assert_int_eq(rec_vcpu_decode(buf, sizeof(buf), &regs2, &sregs2), 0);
	ck_assert_int_eq(memcmp(&regs, &regs2, sizeof(regs)), 0);
	ck_assert_int_eq(memcmp(&sregs, &sregs2, sizeof(sregs)), 0);
	ck_assert_int_eq(rec_vcpu_decode(buf, sizeof(buf) - 1, &regs2, &sregs2), -EBADMSG);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_rec_vm_decode_errors)
{
	int nfds = test_count_fds();
	struct rec_vm v = { .n_vcpus = 2, .ram_size = 64u << 20, .iters = 100 }, out;
	uint8_t buf[REC_VM_SIZE];

	rec_vm_encode(&v, buf);
	ck_assert_int_eq(rec_vm_decode(buf, sizeof(buf), &out), 0);
	ck_assert_uint_eq(out.ram_size, v.ram_size);
	ck_assert_int_eq(rec_vm_decode(buf, 4, &out), -EBADMSG);
	buf[0] = 2; /* a version this build does not know */
	ck_assert_int_eq(rec_vm_decode(buf, sizeof(buf), &out), -EPROTONOSUPPORT);
	v.n_vcpus = VM_MAX_VCPUS + 1;
	rec_vm_encode(&v, buf);
	ck_assert_int_eq(rec_vm_decode(buf, sizeof(buf), &out), -EBADMSG);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_rec_pause_decode_errors)
{
	int nfds = test_count_fds();
	struct rec_pause p = { .mode = UPGRADE_TRANSFER, .n_vcpus = 1, .counters = { 42 } }, out;
	uint8_t buf[REC_PAUSE_SIZE];

	rec_pause_encode(&p, buf);
	ck_assert_int_eq(rec_pause_decode(buf, sizeof(buf), &out), 0);
	ck_assert_uint_eq(out.counters[0], 42);
	p.mode = 9;
	rec_pause_encode(&p, buf);
	ck_assert_int_eq(rec_pause_decode(buf, sizeof(buf), &out), -EBADMSG);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_rec_history_roundtrip)
{
	int nfds = test_count_fds();
	struct rec_history h = { 0 }, out;
	uint8_t buf[REC_HISTORY_MAX_SIZE];
	size_t len;

	for (unsigned i = 0; i < HISTORY_MAX + 5; i++)
		rec_history_add(&h, UPGRADE_EXEC + i % 3, 1000 + i);
	ck_assert_uint_eq(h.n, HISTORY_MAX);
	ck_assert_uint_eq(h.pause_ns[0], 1005); /* the oldest were dropped */
	len = rec_history_encode(&h, buf);
	ck_assert_int_eq(rec_history_decode(buf, len, &out), 0);
	ck_assert_uint_eq(out.n, HISTORY_MAX);
	ck_assert_uint_eq(out.pause_ns[HISTORY_MAX - 1], 1000 + HISTORY_MAX + 4);
	ck_assert_int_eq(rec_history_decode(buf, len - 16, &out), -EBADMSG);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *minivmm_suite(void)
{
	Suite *s = suite_create("minivmm");
	TCase *tc = tcase_create("guest");

	tcase_add_test(tc, test_interp_run_guest_program);
	tcase_add_test(tc, test_interp_run_counter_carry);
	tcase_add_test(tc, test_interp_run_unknown_opcode);
	tcase_add_test(tc, test_interp_run_outside_ram);
	tcase_add_test(tc, test_interp_run_protected_mode);
	suite_add_tcase(s, tc);
	tc = tcase_create("kvm");
	tcase_add_test(tc, test_interp_run_matches_kvm);
	suite_add_tcase(s, tc);
	tc = tcase_create("record");
	tcase_add_test(tc, test_vm_init_boot_slot_einval);
	tcase_add_test(tc, test_rec_vcpu_encode_roundtrip);
	tcase_add_test(tc, test_rec_vm_decode_errors);
	tcase_add_test(tc, test_rec_pause_decode_errors);
	tcase_add_test(tc, test_rec_history_roundtrip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(minivmm_suite());
}
