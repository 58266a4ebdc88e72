/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kexec upgrade: the guest across a kernel upgrade of the host.
 *
 * Old image ("upgrade kexec"): refuse first what cannot work (a next
 * kernel command line without kho=on liveupdate=on, a state cprd would
 * refuse); stop the vCPUs, put their registers in the libcpr state, and
 * store the state with the RAM memfd as a durable bundle in cprd(8), which
 * preserves the memfd in its Live Update session (the same pages: nothing
 * is copied).  The control socket stays behind: the kernel preserves
 * memfds only.  Then this image answers and exits; the guest waits in the
 * bundle for the kexec.
 *
 * New image (--incoming-kexec NAME), after the kexec and cprd's restore:
 * claim the bundle, adopt the RAM, build the VM, load the registers, run,
 * and acknowledge the claim.  On the same kernel (no kexec came) the same
 * start resumes the guest.
 *
 * Times cross the kexec as CLOCK_REALTIME (CLOCK_MONOTONIC starts again).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cpr/cpr.h>

#include "client.h"
#include "vmm.h"

#define KEXEC_LEASE_MS 30000
/* The time stamp counter at the stop and its rate: it runs on across the
 * kexec (the same machine), so the new image measures the blackout on it. */
#define REC_KEXEC 0x8d05u /* record.h keeps the list of types */
#define REC_KEXEC_SIZE 16u

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/* Ticks per second, over 20 ms of CLOCK_MONOTONIC. */
static uint64_t tsc_hz(void)
{
	uint64_t t0 = rdtsc(), m0 = now_ns(), t1, m1;

	usleep(20000);
	t1 = rdtsc();
	m1 = now_ns();
	return (uint64_t)((double)(t1 - t0) * 1e9 / (double)(m1 - m0));
}

/* The counter's value at CLOCK_MONOTONIC time @t (in the past). */
static uint64_t tsc_at(uint64_t t, uint64_t hz)
{
	return rdtsc() - (uint64_t)((double)(now_ns() - t) * (double)hz / 1e9);
}

static int set_kexec_record(struct vmm *m, uint64_t tsc_stop, uint64_t hz)
{
	uint8_t buf[REC_KEXEC_SIZE];

	for (unsigned i = 0; i < 8; i++) {
		buf[i] = (uint8_t)(tsc_stop >> (8 * i));
		buf[8 + i] = (uint8_t)(hz >> (8 * i));
	}
	return cpr_ctx_set_private(m->ctx, REC_KEXEC, 0, buf, sizeof(buf));
}

static int64_t mono_to_real_offset(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) -
	       (int64_t)now_ns();
}

static bool has_word(const char *s, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = strstr(s, w); p; p = strstr(p + 1, w))
		if ((p == s || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

/* The next kernel must have Live Update, or the guest is lost in the kexec. */
static int check_next_kernel(struct vmm *m, char *why, size_t len)
{
	const char *c = m->opt.kexec_append;

	if (!c) {
		fprintf(stderr, "minivmm: warning: no --kexec-append: the next kernel's command "
				"line is not checked for kho=on liveupdate=on\n");
		return 0;
	}
	if (has_word(c, "kho=on") && has_word(c, "liveupdate=on"))
		return 0;
	snprintf(why, len,
		 "the next kernel's command line lacks %s%s%s: it would boot without Live "
		 "Update and the guest RAM would be lost in the kexec",
		 has_word(c, "kho=on") ? "" : "kho=on",
		 !has_word(c, "kho=on") && !has_word(c, "liveupdate=on") ? " and " : "",
		 has_word(c, "liveupdate=on") ? "" : "liveupdate=on");
	return -EOPNOTSUPP;
}

static int store_durable(struct vmm *m, const char *name, char *why, size_t len)
{
	struct cpr_error err = { 0 };
	struct json_object *reply = NULL, *opts = json_object_new_object();
	int stream_fd = -1, sock = -1, *fds = NULL, r;
	size_t n = 0;

	if (!opts)
		return -ENOMEM;
	json_object_object_add(opts, "durable", json_object_new_boolean(1));
	r = export_bundle(m, &stream_fd, &fds, &n, &err);
	if (r < 0)
		snprintf(why, len, "%s", err.message[0] ? err.message : strerror(-r));
	if (r >= 0 && (r = cprd_connect(m->opt.cprd_socket, &sock)) >= 0)
		r = cprd_store(sock, name, opts, stream_fd, fds, n, &reply);
	if (r < 0 && !why[0])
		snprintf(why, len, "cprd at %s: %s%s%s", cprd_socket_path(m->opt.cprd_socket),
			 strerror(-r), reply ? ": " : "", reply ? cprd_reply_message(reply) : "");
	json_object_put(opts);
	json_object_put(reply);
	fd_close(sock);
	fd_close(stream_fd);
	free(fds);
	return r;
}

static void reply_stored(struct vmm *m, const char *name, const struct rec_pause *p,
			 uint64_t stored_ns)
{
	char msg[512];
	size_t o;

	o = (size_t)snprintf(msg, sizeof(msg),
			     "ok mode=kexec stored=%s pid=%d freeze_preserve_ns=%llu counters=",
			     name, (int)getpid(), (unsigned long long)stored_ns);
	for (unsigned i = 0; i < m->rec.n_vcpus && o < sizeof(msg); i++)
		o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s%llu", i ? "," : "",
				      (unsigned long long)p->counters[i]);
	control_reply(m->reply_fd, msg);
	if (!m->opt.quiet)
		printf("\nupgrade %u by kexec: the guest is stopped and stored in cprd as %s\n",
		       m->rec.upgrades + 1, name);
}

int upgrade_kexec(struct vmm *m, char *why, size_t len)
{
	const char *name = m->opt.kexec_bundle;
	bool control = m->control_fd >= 0;
	struct rec_pause p;
	uint64_t hz, t_stop;
	int64_t off;
	int r;

	r = check_next_kernel(m, why, len);
	if (r < 0)
		return r;
	hz = tsc_hz();
	if (control)
		cpr_fd_delete(m->ctx, FD_CONTROL, 0);
	r = stop_guest(m, UPGRADE_KEXEC, &p);
	if (r < 0) {
		snprintf(why, len, "stopping the vCPUs: %s", strerror(-r));
		goto out;
	}
	t_stop = p.t_stop;
	r = set_kexec_record(m, tsc_at(p.t_stop, hz), hz);
	off = mono_to_real_offset();
	p.t_stop += (uint64_t)off;
	p.t_stopped += (uint64_t)off;
	if (r >= 0)
		r = add_pause_records(m, &p, NULL);
	if (r >= 0) {
		uint8_t buf[REC_PAUSE_SIZE];

		p.t_handoff += (uint64_t)off;
		rec_pause_encode(&p, buf);
		r = cpr_ctx_set_private(m->ctx, REC_PAUSE, 0, buf, sizeof(buf));
	}
	if (r >= 0)
		r = store_durable(m, name, why, len);
	if (r >= 0) {
		reply_stored(m, name, &p, now_ns() - t_stop);
		return 1;
	}
	drop_pause_records(m);
	cpr_ctx_set_private(m->ctx, REC_KEXEC, 0, NULL, 0);
	resume_guest(m);
out:
	if (control)
		cpr_fd_save(m->ctx, FD_CONTROL, 0, m->control_fd, CPR_FD_SOCKET, NULL);
	return r;
}

/* ---------------------------------------------------------------- new image */

/*
 * The blackout on the time stamp counter: from the stop in the old kernel to
 * this kernel's start (CLOCK_BOOTTIME 0), this image's main(), the claim and
 * the first run.  The pause record's times move to this kernel's clock on it
 * (the report's pause is then the blackout).
 */
static void report_tsc(struct vmm *m)
{
	struct rec_pause *p = &m->report.pause;
	const void *data;
	const uint8_t *b;
	uint64_t stop = 0, hz = 0, boot, run;
	struct timespec ts;
	size_t len;

	if (cpr_state_private_find(cpr_ctx_incoming_state(m->ctx), REC_KEXEC, 0, &data, &len) < 0 ||
	    len != REC_KEXEC_SIZE)
		return;
	b = data;
	for (unsigned i = 0; i < 8; i++) {
		stop |= (uint64_t)b[i] << (8 * i);
		hz |= (uint64_t)b[8 + i] << (8 * i);
	}
	if (!hz)
		return;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	boot = rdtsc() -
	       (uint64_t)((double)ts.tv_sec * (double)hz + (double)ts.tv_nsec * (double)hz / 1e9);
	run = tsc_at(vm_first_start(&m->vm), hz);
	{
		uint64_t here = vm_first_start(&m->vm) -
				(uint64_t)((double)(run - stop) * 1e9 / (double)hz);

		p->t_stopped = here + (p->t_stopped - p->t_stop);
		p->t_handoff = here + (p->t_handoff - p->t_stop);
		p->t_stop = here;
	}
	if (m->opt.quiet)
		return;
#define MS(t) ((double)((t)-stop) * 1e3 / (double)hz)
	printf("  kexec     blackout %.3f ms on the TSC (%.0f MHz): from the stop, this kernel "
	       "started at %.3f, this process at %.3f, claimed %.3f, the guest ran at %.3f\n",
	       MS(run), (double)hz / 1e6, MS(boot), MS(tsc_at(m->t_main, hz)),
	       MS(tsc_at(m->report.t_recv, hz)), MS(run));
#undef MS
}

/* The pause record's times, CLOCK_REALTIME in the record, into ours. */
static void pause_times_here(struct rec_pause *p)
{
	int64_t off = mono_to_real_offset();

	p->t_stop -= (uint64_t)off;
	p->t_stopped -= (uint64_t)off;
	p->t_handoff -= (uint64_t)off;
}

static int claim(struct vmm *m, const char *name, int csock, struct json_object **reply)
{
	int stream_fd = -1, *fds = NULL, r;
	size_t n = 0;

	r = cprd_claim(csock, name, KEXEC_LEASE_MS, reply, &stream_fd, &fds, &n);
	if (r < 0)
		fprintf(stderr, "minivmm: claiming %s from cprd: %s%s%s\n", name, strerror(-r),
			*reply ? ": " : "", *reply ? cprd_reply_message(*reply) : "");
	else
		r = import_bundle(m, stream_fd, fds, n);
	m->report.t_recv = now_ns();
	free(fds);
	fd_close(stream_fd);
	return r;
}

int incoming_kexec(struct vmm *m, const char *name)
{
	struct json_object *reply = NULL;
	char *token = NULL;
	int csock = -1, r;

	r = cprd_connect(m->opt.cprd_socket, &csock);
	if (r < 0)
		fprintf(stderr, "minivmm: cprd at %s: %s\n", cprd_socket_path(m->opt.cprd_socket),
			strerror(-r));
	else
		r = claim(m, name, csock, &reply);
	if (r < 0)
		goto out;
	token = cprd_reply_token(reply) ? strdup(cprd_reply_token(reply)) : NULL;
	r = prepare_incoming(m);
	if (r >= 0)
		r = vm_arm(&m->vm);
	if (r >= 0)
		r = apply_pause(m, cpr_ctx_incoming_state(m->ctx));
	if (r >= 0) {
		pause_times_here(&m->report.pause);
		r = vm_start(&m->vm);
	}
	if (r >= 0) {
		report_tsc(m);
		adopt_fds(m);
	}
	/* The guest runs here (or never will): settle the bundle. */
	if (token)
		cprd_token_op(csock, r >= 0 ? "ack" : "release", name, token, NULL);
out:
	json_object_put(reply);
	free(token);
	fd_close(csock);
	return r;
}
