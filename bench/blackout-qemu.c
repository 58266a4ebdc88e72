/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QEMU's own cpr-transfer pause on the same machine, RAM size and page size,
 * for bench/blackout.
 *
 * An old QEMU runs a guest, under KVM or (on a machine without it) TCG,
 * with its RAM in a memfd, fully populated (prealloc=on).  A new QEMU is started with -incoming on
 * a main and a cpr channel; QMP on the old one sets mode cpr-transfer and migrates.  The new QEMU
 * then receives the memfds, builds its VM while the guest still runs in the old one, the old one
 * stops the guest and sends device state, and the new one resumes it.  The pause is the new QEMU's
 * trace event "vm_state_notify running 1" minus the old one's "running 0 reason finish-migrate"
 * (both stamped with the wall clock by QEMU's log trace backend).  The hand-overs are chained: each
 * new QEMU is the next old one.
 *
 * QEMU sends the first event after it has paused its vCPUs and the second
 * before it resumes them, so its figure leaves out stopping and starting the
 * vCPUs, which minivmm's pause includes: the comparison favours QEMU.
 *
 * The guest is the firmware with no boot device: it idles.  Under KVM the VM
 * uses the host CPU model without arch-capabilities, which this nested KVM
 * refuses; under TCG, QEMU's default CPU model.
 * Every QEMU dies with the bench (PR_SET_PDEATHSIG), and no step waits on a
 * dead or wedged QEMU for longer than QMP_TIMEOUT_MS.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blackout.h"

#define QEMU_MIN_MAJOR 10
#define QMP_LINE_MAX 65536
#define QEMU_START_TIMEOUT_MS 180000 /* prealloc of 8 GiB of fresh memory */
#define QMP_TIMEOUT_MS 30000

extern char **environ;

struct qemu {
	pid_t pid; /* 0: none, or reaped */
	char qmp[300];
	char trace[300];
	char log[300];
};

struct qemu_run {
	const char *qemu;
	const char *accel; /* "kvm" or "tcg" */
	const char *dir;
	unsigned gib;
	unsigned page_kib;
};

static void sleep_ms(unsigned ms)
{
	nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000l },
		  NULL);
}

/* "QEMU emulator version 10.0.2 (...)": 1 if at least QEMU_MIN_MAJOR. */
int qemu_usable(const char *qemu, char *why, size_t len)
{
	char cmd[512], line[256] = "";
	unsigned major = 0;
	FILE *p;

	if (strchr(qemu, '\'')) {
		snprintf(why, len, "%s: unusable path", qemu);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "'%s' --version 2>/dev/null", qemu);
	p = popen(cmd, "re");
	if (!p || !fgets(line, sizeof(line), p)) {
		snprintf(why, len, "%s is not installed", qemu);
		if (p)
			pclose(p);
		return 0;
	}
	pclose(p);
	if (sscanf(line, "QEMU emulator version %u", &major) != 1 || major < QEMU_MIN_MAJOR) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(why, len, "%s is \"%s\"; cpr-transfer needs QEMU %u or newer", qemu, line,
			 QEMU_MIN_MAJOR);
		return 0;
	}
	return 1;
}

/* 1 while @q runs; reaps it (and forgets its pid) once it has exited. */
static int qemu_alive(struct qemu *q)
{
	if (q->pid <= 0)
		return 0;
	if (waitpid(q->pid, NULL, WNOHANG) == 0)
		return 1;
	q->pid = 0;
	return 0;
}

/* ---------------------------------------------------------------- QMP */

static int qmp_connect(struct qemu *q, unsigned timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = QMP_TIMEOUT_MS / 1000 };

	if (strlen(q->qmp) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, q->qmp);
	for (unsigned t = 0; t <= timeout_ms && qemu_alive(q); t += 20) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			/* A wedged QEMU makes reads fail instead of hang. */
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			return fd;
		}
		close(fd);
		sleep_ms(20);
	}
	return q->pid > 0 ? -ETIMEDOUT : -ESRCH;
}

/* One newline-terminated JSON message from QMP. */
static json_object *qmp_read(int fd)
{
	static char line[QMP_LINE_MAX];
	size_t n = 0;

	while (n + 1 < sizeof(line)) {
		ssize_t k = read(fd, line + n, 1);

		if (k <= 0)
			return NULL;
		if (line[n] == '\n') {
			line[n] = '\0';
			return json_tokener_parse(line);
		}
		n++;
	}
	return NULL;
}

/* Send @cmd (a JSON object); 0 on "return", -EPROTO on "error" or EOF. */
static int qmp_cmd(int fd, const char *cmd, json_object **ret)
{
	char buf[2048];
	int n = snprintf(buf, sizeof(buf), "%s\n", cmd);

	/* In one piece: QEMU acts on the closing brace, and after "quit" it
	 * may be gone before a separate newline arrives. */
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -EMSGSIZE;
	if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
		return -errno;
	for (;;) {
		json_object *o = qmp_read(fd), *v;

		if (!o)
			return -EPROTO;
		if (json_object_object_get_ex(o, "return", &v)) {
			if (ret)
				*ret = o;
			else
				json_object_put(o);
			return 0;
		}
		if (json_object_object_get_ex(o, "error", &v)) {
			fprintf(stderr, "blackout: QMP %s: %s\n", cmd,
				json_object_to_json_string(v));
			json_object_put(o);
			return -EPROTO;
		}
		json_object_put(o); /* an event */
	}
}

static int qmp_open(struct qemu *q, unsigned timeout_ms)
{
	int fd = qmp_connect(q, timeout_ms);
	json_object *greeting;

	if (fd < 0)
		return fd;
	greeting = qmp_read(fd);
	if (!greeting || qmp_cmd(fd, "{\"execute\": \"qmp_capabilities\"}", NULL) < 0) {
		json_object_put(greeting);
		close(fd);
		return -EPROTO;
	}
	json_object_put(greeting);
	return fd;
}

/* ---------------------------------------------------------------- QEMU */

static int qemu_spawn(const struct qemu_run *c, unsigned idx, bool incoming, struct qemu *q)
{
	char mem[256], size[32], name[32], qmp[340], main_ch[340], cpr_ch[400];
	char *argv[40];
	unsigned n = 0;

	snprintf(q->qmp, sizeof(q->qmp), "%s/qemu%u.qmp", c->dir, idx);
	snprintf(q->trace, sizeof(q->trace), "%s/qemu%u.trace", c->dir, idx);
	snprintf(q->log, sizeof(q->log), "%s/qemu%u.log", c->dir, idx);
	unlink(q->qmp);
	unlink(q->trace);
	snprintf(size, sizeof(size), "%uG", c->gib);
	snprintf(name, sizeof(name), "blackout%u", idx);
	snprintf(mem, sizeof(mem), "memory-backend-memfd,id=ram0,size=%s,share=on,prealloc=on%s",
		 size, c->page_kib == 2048 ? ",hugetlb=on,hugetlbsize=2M" : "");
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", q->qmp);
	argv[n++] = (char *)c->qemu;
	argv[n++] = (char *)"-name";
	argv[n++] = name;
	argv[n++] = (char *)"-machine";
	argv[n++] = (char *)"q35,memory-backend=ram0,aux-ram-share=on";
	argv[n++] = (char *)"-accel";
	argv[n++] = (char *)c->accel;
	if (!strcmp(c->accel, "kvm")) {
		argv[n++] = (char *)"-cpu";
		argv[n++] = (char *)"host,-arch-capabilities";
	}
	argv[n++] = (char *)"-object";
	argv[n++] = mem;
	argv[n++] = (char *)"-m";
	argv[n++] = size;
	argv[n++] = (char *)"-nodefaults";
	argv[n++] = (char *)"-no-user-config";
	argv[n++] = (char *)"-display";
	argv[n++] = (char *)"none";
	argv[n++] = (char *)"-qmp";
	argv[n++] = qmp;
	argv[n++] = (char *)"-trace";
	argv[n++] = (char *)"vm_state_notify";
	argv[n++] = (char *)"-msg";
	argv[n++] = (char *)"timestamp=on"; /* "pid@seconds:" on each trace line */
	argv[n++] = (char *)"-D";
	argv[n++] = q->trace;
	if (incoming) {
		snprintf(main_ch, sizeof(main_ch), "unix:%s/qemu-main.sock", c->dir);
		snprintf(cpr_ch, sizeof(cpr_ch),
			 "{\"channel-type\": \"cpr\", \"addr\": {\"transport\": \"socket\", "
			 "\"type\": \"unix\", \"path\": \"%s/qemu-cpr.sock\"}}",
			 c->dir);
		argv[n++] = (char *)"-incoming";
		argv[n++] = main_ch;
		argv[n++] = (char *)"-incoming";
		argv[n++] = cpr_ch;
	}
	argv[n] = NULL;
	q->pid = fork();
	if (q->pid < 0)
		return -errno;
	if (q->pid == 0) {
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int out = open(q->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		execvp(c->qemu, argv);
		_exit(127);
	}
	return 0;
}

/* Ask @q to quit, kill it if it does not, reap it, remove its files. */
static void qemu_quit(struct qemu *q, bool keep_log)
{
	int fd;

	if (qemu_alive(q) && (fd = qmp_open(q, 1000)) >= 0) {
		qmp_cmd(fd, "{\"execute\": \"quit\"}", NULL);
		close(fd);
	}
	for (unsigned i = 0; i < 100 && qemu_alive(q); i++)
		sleep_ms(50);
	if (q->pid > 0) {
		kill(q->pid, SIGKILL);
		waitpid(q->pid, NULL, 0);
		q->pid = 0;
	}
	unlink(q->qmp);
	unlink(q->trace);
	if (!keep_log)
		unlink(q->log);
}

/* Wall-clock seconds of the last line of @q's trace containing @what, or
 * NAN when none appears within @timeout_ms or @q exits. */
static double trace_time(struct qemu *q, const char *what, unsigned timeout_ms)
{
	for (unsigned t = 0; t <= timeout_ms; t += 10) {
		char line[512];
		double when = NAN;
		bool alive = qemu_alive(q);
		FILE *f = fopen(q->trace, "re");

		while (f && fgets(line, sizeof(line), f)) {
			const char *at = strchr(line, '@');

			if (at && strstr(line, what))
				when = strtod(at + 1, NULL);
		}
		if (f)
			fclose(f);
		if (!isnan(when) || !alive)
			return when;
		sleep_ms(10);
	}
	return NAN;
}

static int migrate_done(int fd)
{
	for (unsigned i = 0; i < 1500; i++) {
		json_object *o = NULL, *ret, *st;
		int done = 0;

		if (qmp_cmd(fd, "{\"execute\": \"query-migrate\"}", &o) < 0)
			return -EPROTO;
		if (json_object_object_get_ex(o, "return", &ret) &&
		    json_object_object_get_ex(ret, "status", &st)) {
			const char *s = json_object_get_string(st);

			done = !strcmp(s, "completed")				 ? 1
			       : !strcmp(s, "failed") || !strcmp(s, "cancelled") ? -1
										 : 0;
		}
		json_object_put(o);
		if (done)
			return done > 0 ? 0 : -EIO;
		sleep_ms(20);
	}
	return -ETIMEDOUT;
}

/* Hand @old's guest to a new QEMU; the pause in ms, or NAN. */
static double handover(const struct qemu_run *c, struct qemu *old, struct qemu *new, unsigned idx)
{
	char cmd[1024], cpr_sock[300];
	double t_stop, t_run;
	int fd, r;

	snprintf(cpr_sock, sizeof(cpr_sock), "%s/qemu-cpr.sock", c->dir);
	snprintf(cmd, sizeof(cmd), "%s/qemu-main.sock", c->dir);
	unlink(cpr_sock);
	unlink(cmd);
	if (qemu_spawn(c, idx, true, new) < 0)
		return NAN;
	for (unsigned t = 0; access(cpr_sock, F_OK) < 0; t += 20) {
		if (t > QEMU_START_TIMEOUT_MS || !qemu_alive(new)) {
			fprintf(stderr,
				"blackout: the new QEMU did not listen (see %s/qemu%u.log)\n",
				c->dir, idx);
			return NAN;
		}
		sleep_ms(20);
	}
	fd = qmp_open(old, QMP_TIMEOUT_MS);
	if (fd < 0) {
		fprintf(stderr, "blackout: QMP of the old QEMU: %s\n", strerror(-fd));
		return NAN;
	}
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"migrate\", \"arguments\": {\"channels\": ["
		 "{\"channel-type\": \"main\", \"addr\": {\"transport\": \"socket\", \"type\": "
		 "\"unix\", \"path\": \"%s/qemu-main.sock\"}}, "
		 "{\"channel-type\": \"cpr\", \"addr\": {\"transport\": \"socket\", \"type\": "
		 "\"unix\", \"path\": \"%s\"}}]}}",
		 c->dir, cpr_sock);
	r = qmp_cmd(fd,
		    "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
		    "{\"mode\": \"cpr-transfer\"}}",
		    NULL);
	if (r >= 0)
		r = qmp_cmd(fd, cmd, NULL);
	if (r >= 0)
		r = migrate_done(fd);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "blackout: QEMU cpr-transfer: %s\n", strerror(-r));
		return NAN;
	}
	t_stop = trace_time(old, "finish-migrate", 5000);
	t_run = trace_time(new, "running 1", 5000);
	return (t_run - t_stop) * 1e3;
}

double qemu_cpr_pause(const char *qemu, const char *accel, const char *dir, unsigned gib,
		      unsigned page_kib, unsigned reps)
{
	struct qemu_run c = { qemu, accel, dir, gib, page_kib };
	struct qemu q[2] = { 0 };
	double v[BLACKOUT_MAX_REPS];
	unsigned n = 0, cur = 0;
	bool ok = true;

	if (qemu_spawn(&c, 0, false, &q[0]) < 0)
		return NAN;
	/* prealloc=on: running once every page of guest RAM is populated. */
	if (isnan(trace_time(&q[0], "running 1", QEMU_START_TIMEOUT_MS))) {
		fprintf(stderr, "blackout: QEMU did not start (see %s)\n", q[0].log);
		qemu_quit(&q[0], true);
		return NAN;
	}
	for (unsigned i = 1; i <= reps && i <= BLACKOUT_MAX_REPS; i++) {
		double ms = handover(&c, &q[cur], &q[!cur], i);

		if (isnan(ms) || ms < 0) {
			fprintf(stderr, "blackout: QEMU hand-over %u failed (logs in %s)\n", i,
				dir);
			ok = false;
			break;
		}
		qemu_quit(&q[cur], false);
		v[n++] = ms;
		fprintf(stderr, "  qemu     pause %8.3f ms (cpr-transfer, %s)\n", ms, accel);
		cur = !cur;
	}
	qemu_quit(&q[0], !ok);
	qemu_quit(&q[1], !ok);
	return blackout_median(v, n);
}
