/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What minivmm tells a person (stdout) and a control client (one line). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm.h"

#define PROGRESS_TIMEOUT_NS (10ull * 1000000000ull)

static const char *engine(const struct vmm *m)
{
	return (m->rec.flags & VM_FLAG_KVM) ? "KVM" : "interpreter";
}

/* 1234567 -> "1,234,567" */
static const char *group(char *buf, size_t len, uint64_t v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	size_t o = 0;

	for (int i = 0; i < n && o + 2 < len; i++) {
		if (i && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
	return buf;
}

/* b - a in ms, 0 if negative (modulo 2^64: after a kexec the stop can lie
 * before this kernel's clock started, kexec.c) */
static double ms(uint64_t a, uint64_t b)
{
	int64_t d = (int64_t)(b - a);

	return d > 0 ? (double)d / 1e6 : 0.0;
}

/* Wait until every vCPU has sent a heartbeat since it (re)started here. */
/*
 * Until every vCPU's counter in guest RAM has moved past the value it had
 * when the guest was stopped, which is what the checks then require; the
 * heartbeat exits are no proof of it (a vCPU stopped at its heartbeat port
 * completes that same exit first when it runs again).  Bounded: a guest
 * that does not run fails the checks.
 */
static void wait_progress(struct vmm *m, uint64_t *after)
{
	uint64_t deadline = now_ns() + PROGRESS_TIMEOUT_NS;

	for (;;) {
		bool all = true;

		machine_counters(m, after);
		for (unsigned i = 0; i < m->rec.n_vcpus; i++)
			if (after[i] <= m->report.pause.counters[i])
				all = false;
		if (all || m->vm.failed || now_ns() > deadline)
			return;
		nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);
	}
}

void report_boot(struct vmm *m)
{
	if (m->opt.quiet)
		return;
	printf("minivmm: %s guest, %u vCPU%s, %llu MiB RAM (memfd inode %llu, %llu KiB pages), pid "
	       "%d\n",
	       engine(m), m->rec.n_vcpus, m->rec.n_vcpus > 1 ? "s" : "",
	       (unsigned long long)(m->rec.ram_size >> 20), (unsigned long long)m->ram_ino,
	       (unsigned long long)(m->page_size >> 10), (int)getpid());
	if (m->rec.flags & VM_FLAG_KVM)
		printf("  VM built in %.2f ms (KVM_CREATE_VM %.2f, then vCPUs %.2f beside memory "
		       "slots %.2f)\n",
		       m->vm.timing.total_ns / 1e6, m->vm.timing.create_vm_ns / 1e6,
		       m->vm.timing.create_vcpus_ns / 1e6, m->vm.timing.memslots_ns / 1e6);
	printf("  guest: %zu bytes of real-mode code; each vCPU counts in guest RAM and sums a 4 "
	       "KiB static region\n",
	       guest_program_size);
	vfio_check(m, NULL, 0);
	vfio_print(m);
}

static void print_counters(struct vmm *m, const uint64_t *after)
{
	char a[32], b[32];

	printf("  counters  ");
	for (unsigned i = 0; i < m->rec.n_vcpus; i++)
		printf("%svcpu%u %s -> %s", i ? "   " : "", i,
		       group(a, sizeof(a), m->report.pause.counters[i]),
		       group(b, sizeof(b), after[i]));
	printf("\n");
}

/* The instant the new image's first vCPU ran the guest again. */
static const char *first_run(const struct vmm *m)
{
	return (m->rec.flags & VM_FLAG_KVM) ? "first KVM_RUN" : "first interpreted instruction";
}

/* exec: the whole machine is rebuilt inside the pause. */
static void print_pause_exec(struct vmm *m)
{
	const struct upgrade_report *r = &m->report;
	const struct rec_pause *p = &r->pause;
	const struct vm_timing *t = &m->vm.timing;

	printf("            = stop %.3f + execve %.3f + adopt RAM %.3f + %s %.3f + start %.3f\n",
	       ms(p->t_stop, p->t_handoff), ms(p->t_handoff, r->t_main), ms(r->t_main, r->t_ram),
	       (m->rec.flags & VM_FLAG_KVM) ? "build VM" : "set up vCPUs", ms(r->t_ram, r->t_vm),
	       ms(r->t_vm, r->t_first_run));
	if (!(m->rec.flags & VM_FLAG_KVM))
		return;
	printf("            build VM = KVM_CREATE_VM %.3f, then vCPUs %.3f beside the boot slot "
	       "%.3f\n",
	       t->create_vm_ns / 1e6, t->create_vcpus_ns / 1e6, t->memslots_ns / 1e6);
	if (t->t_late_slots_done)
		printf("  after     the other %llu MiB of RAM joined the VM %.3f ms after the "
		       "resume "
		       "(%.3f ms of\n"
		       "            KVM slot setup), while the guest ran; %llu guest accesses "
		       "waited %.3f ms for it\n",
		       (unsigned long long)(vm_late_ram(&m->vm) >> 20),
		       ms(r->t_first_run, t->t_late_slots_done), t->late_slots_ns / 1e6,
		       (unsigned long long)atomic_load(&m->vm.mmio_ram),
		       atomic_load(&m->vm.ram_wait_ns) / 1e6);
}

/* transfer, cprd: the machine was built before the pause; only registers move in it. */
static void print_pause_handoff(struct vmm *m)
{
	const struct upgrade_report *r = &m->report;
	const struct rec_pause *p = &r->pause;

	printf("            = stop %.3f + move vCPU state %.3f + start %.3f\n"
	       "  before    while the guest still ran: new process up, state %s, RAM\n"
	       "            adopted and %s in %.3f ms (of which %s %.3f)\n",
	       ms(p->t_stop, p->t_handoff), ms(p->t_handoff, r->t_recv),
	       ms(r->t_recv, r->t_first_run),
	       p->mode == UPGRADE_CPRD ? "claimed from cprd" : "received",
	       (m->rec.flags & VM_FLAG_KVM) ? "VM built" : "vCPUs set up", ms(r->t_main, r->t_vm),
	       (m->rec.flags & VM_FLAG_KVM) ? "VM" : "vCPUs", ms(r->t_ram, r->t_vm));
}

static void print_pause(struct vmm *m)
{
	const struct upgrade_report *r = &m->report;

	printf("  pause     %.3f ms   vCPUs stopped -> %s of the new image\n",
	       ms(r->pause.t_stop, r->t_first_run), first_run(m));
	if (r->pause.mode == UPGRADE_EXEC)
		print_pause_exec(m);
	else
		print_pause_handoff(m);
}

static int upgrade_checks(struct vmm *m, const uint64_t *after, char *why, size_t len)
{
	const struct upgrade_report *r = &m->report;

	for (unsigned i = 0; i < m->rec.n_vcpus; i++) {
		if (r->counters_adopted[i] != r->pause.counters[i]) {
			snprintf(why, len, "vCPU %u counter in the adopted RAM is %llu, was %llu",
				 i, (unsigned long long)r->counters_adopted[i],
				 (unsigned long long)r->pause.counters[i]);
			return -EBADMSG;
		}
		if (after[i] <= r->pause.counters[i]) {
			snprintf(why, len, "vCPU %u counter did not advance", i);
			return -EBADMSG;
		}
	}
	return machine_verify(m, m->opt.verify_ram, why, len);
}

void report_upgrade(struct vmm *m)
{
	struct upgrade_report *r = &m->report;
	char why[256] = "";

	wait_progress(m, r->counters_after);
	r->check = vm_wait_slots(&m->vm);
	if (r->check < 0)
		snprintf(why, sizeof(why), "registering guest RAM with KVM: %s",
			 strerror(-r->check));
	else
		r->check = upgrade_checks(m, r->counters_after, why, sizeof(why));
	if (r->check >= 0)
		r->check = vfio_check(m, why, sizeof(why));
	snprintf(r->check_msg, sizeof(r->check_msg), "%s", r->check < 0 ? why : "ok");
	if (m->opt.quiet)
		return;
	printf("\nupgrade %u", m->rec.upgrades);
	if (m->opt.max_upgrades)
		printf("/%u", m->opt.max_upgrades);
	printf(" by %s: pid %u -> pid %d (%s)\n", mode_name(r->pause.mode), r->pause.old_pid,
	       (int)getpid(), m->self);
	print_counters(m, r->counters_after);
	printf("  guest RAM memfd inode %llu -> %llu: %s, %llu MiB not copied\n",
	       (unsigned long long)r->pause.ram_ino, (unsigned long long)m->ram_ino,
	       r->pause.ram_ino == m->ram_ino ? "the same pages" : "DIFFERENT",
	       (unsigned long long)(m->rec.ram_size >> 20));
	if (r->check < 0)
		printf("  checks    FAILED: %s\n", why);
	else
		printf("  checks    counters continued; guest checksum %08x ok%s\n",
		       m->rec.static_sum, m->opt.verify_ram ? "; RAM pattern ok" : "");
	vfio_print(m);
	print_pause(m);
}

static int put_counters(char *buf, size_t len, const uint64_t *c, unsigned n)
{
	size_t o = 0;

	for (unsigned i = 0; i < n && o < len; i++) {
		int k = snprintf(buf + o, len - o, "%s%llu", i ? "," : "",
				 (unsigned long long)c[i]);

		if (k < 0)
			return -EINVAL;
		o += (size_t)k;
	}
	return 0;
}

int report_reply(struct vmm *m, char *buf, size_t len)
{
	const struct upgrade_report *r = &m->report;
	const struct rec_pause *p = &r->pause;
	char before[200], after[200];

	put_counters(before, sizeof(before), p->counters, m->rec.n_vcpus);
	put_counters(after, sizeof(after), r->counters_after, m->rec.n_vcpus);
	return snprintf(
		buf, len,
		"%s mode=%s old_pid=%u pid=%d pause_ns=%llu stop_ns=%llu handoff_ns=%llu "
		"restore_ns=%llu before=%s after=%s old_ino=%llu ino=%llu upgrades=%u "
		"late_slots_ns=%llu ram_exits=%llu ram_wait_ns=%llu rolled_back=%d check=%s",
		r->check < 0 ? "error" : "ok", mode_name(p->mode), p->old_pid, (int)getpid(),
		(unsigned long long)(r->t_first_run - p->t_stop),
		(unsigned long long)(p->t_handoff - p->t_stop),
		(unsigned long long)((p->mode == UPGRADE_EXEC ? r->t_main : r->t_recv) -
				     p->t_handoff),
		(unsigned long long)(r->t_first_run -
				     (p->mode == UPGRADE_EXEC ? r->t_main : r->t_recv)),
		before, after, (unsigned long long)p->ram_ino, (unsigned long long)m->ram_ino,
		m->rec.upgrades,
		(unsigned long long)(m->vm.timing.t_late_slots_done
					     ? m->vm.timing.t_late_slots_done - r->t_first_run
					     : 0),
		(unsigned long long)atomic_load(&m->vm.mmio_ram),
		(unsigned long long)atomic_load(&m->vm.ram_wait_ns), cpr_exec_rolled_back(m->ctx),
		r->check < 0 ? "failed" : "ok");
}

void report_status(struct vmm *m, char *buf, size_t len)
{
	uint64_t c[VM_MAX_VCPUS];
	char counters[200], why[256] = "";
	int check;

	machine_counters(m, c);
	put_counters(counters, sizeof(counters), c, m->rec.n_vcpus);
	check = machine_verify(m, false, why, sizeof(why));
	snprintf(buf, len,
		 "ok pid=%d engine=%s vcpus=%u ram_mib=%llu page_kib=%llu ino=%llu upgrades=%u "
		 "counters=%s heartbeats=%llu checksum=%s",
		 (int)getpid(), (m->rec.flags & VM_FLAG_KVM) ? "kvm" : "interp", m->rec.n_vcpus,
		 (unsigned long long)(m->rec.ram_size >> 20),
		 (unsigned long long)(m->page_size >> 10), (unsigned long long)m->ram_ino,
		 m->rec.upgrades, counters, (unsigned long long)vm_heartbeats(&m->vm),
		 check < 0 ? "bad" : "ok");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* One line per mode: each pause, then the median. */
static void print_history(const struct rec_history *h)
{
	for (uint32_t mode = UPGRADE_EXEC; mode <= UPGRADE_KEXEC; mode++) {
		uint64_t v[HISTORY_MAX];
		unsigned n = 0;

		for (uint32_t i = 0; i < h->n; i++)
			if (h->mode[i] == mode)
				v[n++] = h->pause_ns[i];
		if (!n)
			continue;
		printf("  %-9s %-8s ", mode == UPGRADE_EXEC ? "pauses" : "", mode_name(mode));
		for (unsigned i = 0; i < n && i < 8; i++)
			printf("%s%.3f", i ? ", " : "", v[i] / 1e6);
		qsort(v, n, sizeof(v[0]), cmp_u64);
		printf("%s ms   (median %.3f ms over %u)\n", n > 8 ? ", ..." : "",
		       (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) / 1e6, n);
	}
}

void report_exit(struct vmm *m)
{
	uint64_t c[VM_MAX_VCPUS];
	char a[32], why[256] = "";
	int check;

	if (m->opt.quiet)
		return;
	machine_counters(m, c);
	check = machine_verify(m, m->opt.verify_ram, why, sizeof(why));
	printf("\nminivmm: guest stopped after %u upgrade%s (boot pid %u, last pid %d)\n",
	       m->rec.upgrades, m->rec.upgrades == 1 ? "" : "s", m->rec.boot_pid, (int)getpid());
	printf("  counters  ");
	for (unsigned i = 0; i < m->rec.n_vcpus; i++)
		printf("%svcpu%u %s", i ? "   " : "", i, group(a, sizeof(a), c[i]));
	printf("\n  checks    %s\n", check < 0 ? why : "guest checksum and RAM pattern ok");
	print_history(&m->history);
}
