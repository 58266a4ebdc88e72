/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hand-off, both sides.
 *
 * exec:     stop vCPUs -> registers into private records -> cpr_exec() ->
 *           the new image adopts RAM, builds its VM, restores, runs.  The
 *           old VM and address space go later (keeper.c).
 * transfer: while the guest still runs here, start the new image, send it
 *           the libcpr state (RAM memfd, control socket) and let it build its
 *           VM; after its ack, stop vCPUs and send only their registers in
 *           a second small state stream; it answers 'R' and runs them.  Any
 *           failure before 'R' leaves the guest running here.
 * cprd:     as transfer, the state and fds going through cprd (cprd.c).
 *
 * Everything that can refuse does so before the pause (precheck()).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm.h"

#define ACK_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 10000
#define HANDOFF_LINGER_MS 5000
#define REPLY_RUNNING 'R'
#define REPLY_REFUSED 'X'

extern char **environ;

void fd_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

struct reasons {
	char *buf;
	size_t len;
	size_t used;
};

static void reason_add(void *userdata, const struct cpr_error *e)
{
	struct reasons *rs = userdata;
	int n;

	if (rs->used >= rs->len)
		return;
	n = snprintf(rs->buf + rs->used, rs->len - rs->used, "%s%s", rs->used ? "; " : "",
		     e->message);
	if (n > 0)
		rs->used += (size_t)n;
}

/* Everything that can refuse does so here, before the guest is paused. */
static int precheck(struct vmm *m, enum upgrade_mode mode, char *why, size_t len)
{
	enum cpr_mode cm = mode == UPGRADE_EXEC ? CPR_MODE_EXEC : CPR_MODE_TRANSFER;
	struct reasons rs = { .buf = why, .len = len };
	struct cpr_state *st = NULL;
	struct cpr_error err = { 0 };
	int r;

	why[0] = '\0';
	/* All of guest RAM in the VM before it stops again.  Should that
	 * fail, an exec still works: the new image builds a new VM. */
	r = vm_wait_slots(&m->vm);
	if (r < 0 && mode != UPGRADE_EXEC) {
		snprintf(why, len, "registering guest RAM with KVM: %s", strerror(-r));
		return r;
	}
	r = cpr_check(m->ctx, cm, m->opt.target_level, reason_add, &rs);
	if (r == -EBUSY)
		return r;
	if (r < 0) {
		snprintf(why, len, "level %u: %s", m->opt.target_level, strerror(-r));
		return r;
	}
	r = cpr_ctx_build_state(m->ctx, &st);
	if (r >= 0)
		r = cpr_state_check(st,
				    m->opt.target_level ? m->opt.target_level
							: cpr_ctx_get_target_level(m->ctx),
				    NULL, NULL, &err);
	cpr_state_free(st);
	if (r < 0)
		snprintf(why, len, "%s", err.message[0] ? err.message : strerror(-r));
	return r;
}

static int set_vm_record(struct vmm *m)
{
	struct rec_vm v = m->rec;
	uint8_t buf[REC_VM_SIZE];
	uint8_t hbuf[REC_HISTORY_MAX_SIZE];
	size_t hlen = rec_history_encode(&m->history, hbuf);
	int r;

	v.upgrades++;
	rec_vm_encode(&v, buf);
	r = cpr_ctx_set_private(m->ctx, REC_VM, 0, buf, sizeof(buf));
	return r < 0 ? r : cpr_ctx_set_private(m->ctx, REC_HISTORY, 0, hbuf, hlen);
}

/* Stop the guest and describe the pause. */
/*
 * The thread that carries the hand-off runs SCHED_FIFO for the pause, when
 * the VMM may (--no-rt turns it off): on a busy host a waiting thread can
 * otherwise wait many milliseconds for a CPU at each step.  Everything it
 * does then is bounded work or sleeping; children do not inherit it
 * (SCHED_RESET_ON_FORK), an exec'd image does, and drops it once its vCPUs
 * run.  The old image drops it before it exits (its exit unmaps guest RAM).
 */
void pause_boost(struct vmm *m, bool on)
{
	struct sched_param sp = { .sched_priority = on ? 1 : 0 };

	if (!on || m->opt.rt)
		sched_setscheduler(0, (on ? SCHED_FIFO : SCHED_OTHER) | SCHED_RESET_ON_FORK, &sp);
}

int stop_guest(struct vmm *m, enum upgrade_mode mode, struct rec_pause *p)
{
	int r;

	pause_boost(m, true);
	*p = (struct rec_pause){
		.mode = mode,
		.old_pid = (uint32_t)getpid(),
		.ram_ino = m->ram_ino,
		.n_vcpus = m->rec.n_vcpus,
	};
	r = vm_stop(&m->vm, &p->t_stop);
	if (r < 0) {
		pause_boost(m, false);
		return r;
	}
	p->t_stopped = now_ns();
	machine_counters(m, p->counters);
	return 0;
}

/* Pause + vCPU records into @ctx (exec) or a fresh state (transfer). */
int add_pause_records(struct vmm *m, struct rec_pause *p, struct cpr_state *st)
{
	uint8_t vbuf[REC_VCPU_SIZE], pbuf[REC_PAUSE_SIZE];
	int r = 0;

	for (unsigned i = 0; i < m->rec.n_vcpus && r >= 0; i++) {
		rec_vcpu_encode(&m->vm.vcpus[i].regs, &m->vm.vcpus[i].sregs, vbuf);
		r = st ? cpr_state_add_private(st, REC_VCPU, i, vbuf, sizeof(vbuf))
		       : cpr_ctx_set_private(m->ctx, REC_VCPU, i, vbuf, sizeof(vbuf));
	}
	if (r < 0)
		return r;
	p->t_handoff = now_ns();
	rec_pause_encode(p, pbuf);
	return st ? cpr_state_add_private(st, REC_PAUSE, 0, pbuf, sizeof(pbuf))
		  : cpr_ctx_set_private(m->ctx, REC_PAUSE, 0, pbuf, sizeof(pbuf));
}

void drop_pause_records(struct vmm *m)
{
	cpr_ctx_set_private(m->ctx, REC_PAUSE, 0, NULL, 0);
	for (unsigned i = 0; i < m->rec.n_vcpus; i++)
		cpr_ctx_set_private(m->ctx, REC_VCPU, i, NULL, 0);
}

void resume_guest(struct vmm *m)
{
	int r = vm_start(&m->vm);

	pause_boost(m, false);
	if (r < 0)
		fprintf(stderr, "minivmm: resuming the guest: %s\n", strerror(-r));
	m->t_resumed = now_ns();
}

static int upgrade_exec(struct vmm *m, const char *path, char *why, size_t len)
{
	struct cpr_error err = { 0 };
	struct rec_pause p;
	struct keeper k;
	int r;

	/* while the guest runs: will the target take this state and argv? */
	r = cpr_exec_probe(m->ctx, path, m->argv, environ, &err);
	if (r < 0) {
		snprintf(why, len, "%s", err.message[0] ? err.message : strerror(-r));
		return r;
	}
	keeper_reap(m);
	keeper_start(m, &k);
	r = stop_guest(m, UPGRADE_EXEC, &p);
	if (r < 0) {
		snprintf(why, len, "stopping the vCPUs: %s", strerror(-r));
		keeper_stop(m, &k);
		return r;
	}
	p.keeper_pid = (uint32_t)k.pid;
	r = add_pause_records(m, &p, NULL);
	if (r >= 0) {
		fflush(stdout);
		fflush(stderr);
		r = cpr_exec(m->ctx, path, m->argv, environ, &err);
	}
	snprintf(why, len, "%s", err.message[0] ? err.message : strerror(-r));
	drop_pause_records(m);
	keeper_stop(m, &k);
	resume_guest(m);
	return r;
}

/* The argv of the new process: ours (without --incoming-*), plus @opt @arg. */
static char **child_argv(struct vmm *m, const char *opt, const char *arg)
{
	char **v = calloc((size_t)m->argc + 3, sizeof(char *));
	size_t n = 0;

	if (!v)
		return NULL;
	for (int i = 0; i < m->argc; i++)
		v[n++] = m->argv[i];
	v[n++] = (char *)opt;
	v[n++] = (char *)arg;
	return v;
}

static int spawn_child(struct vmm *m, const char *path, const char *opt, const char *arg,
		       pid_t *ret_pid)
{
	posix_spawnattr_t attr;
	sigset_t none;
	char **argv = child_argv(m, opt, arg);
	pid_t pid;
	int r;

	if (!argv)
		return -ENOMEM;
	sigemptyset(&none);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	fflush(stdout);
	fflush(stderr);
	r = -posix_spawn(&pid, path, NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	free(argv);
	if (r == 0)
		*ret_pid = pid;
	return r;
}

/* Wait until @fd is readable or the child exits. */
int wait_or_child(int fd, int pidfd, int timeout_ms)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
	int r;

	do
		r = poll(p, pidfd >= 0 ? 2 : 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	if (p[0].revents)
		return 0;
	return -ECHILD;
}

void child_stop(pid_t pid, int pidfd)
{
	if (pid <= 0)
		return;
	if (pidfd >= 0)
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	else
		kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The vCPU message: u32 length, then a libcpr state stream. */
static int send_vcpu_state(struct vmm *m, int sock, struct rec_pause *p)
{
	struct cpr_state *st = NULL;
	struct cpr_error err = { 0 };
	void *buf = NULL;
	size_t len = 0;
	uint8_t hdr[4];
	int r = cpr_state_new(&st);

	if (r >= 0)
		r = add_pause_records(m, p, st);
	if (r >= 0)
		r = cpr_state_encode(st, 0, NULL, NULL, &buf, &len, &err);
	cpr_state_free(st);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < 4; i++)
		hdr[i] = (uint8_t)(len >> (8 * i));
	r = write_all(sock, hdr, sizeof(hdr));
	if (r >= 0)
		r = write_all(sock, buf, len);
	free(buf);
	return r;
}

/*
 * Start @path as the new image with @opt (its argument: @arg, then ":" and
 * the rendezvous socket when @arg is not NULL) and wait for it to connect.
 * Returns the connected socket.
 */
int handoff_spawn(struct vmm *m, const char *path, const char *opt, const char *arg, pid_t *pid,
		  int *pidfd, char *why, size_t len)
{
	char sock_path[108], child_arg[512];
	int lfd = -1, sock = -1, r;

	snprintf(sock_path, sizeof(sock_path), "%s/minivmm-%d.%u.sock", m->opt.run_dir,
		 (int)getpid(), m->rec.upgrades + 1);
	if (arg)
		snprintf(child_arg, sizeof(child_arg), "%s:%s", arg, sock_path);
	else
		snprintf(child_arg, sizeof(child_arg), "%s", sock_path);
	r = cpr_transfer_listen(sock_path, &lfd);
	if (r < 0) {
		snprintf(why, len, "listening on %s: %s", sock_path, strerror(-r));
		return r;
	}
	r = spawn_child(m, path, opt, child_arg, pid);
	if (r < 0) {
		snprintf(why, len, "starting %s: %s", path, strerror(-r));
		goto out;
	}
	*pidfd = (int)syscall(SYS_pidfd_open, *pid, 0);
	r = wait_or_child(lfd, *pidfd, CONNECT_TIMEOUT_MS);
	if (r >= 0)
		r = cpr_transfer_accept(lfd, 0, &sock);
	if (r < 0)
		snprintf(why, len, "%s (pid %d) did not connect: %s", path, (int)*pid,
			 r == -ECHILD ? "it exited" : strerror(-r));
out:
	unlink(sock_path);
	fd_close(lfd);
	return r < 0 ? r : sock;
}

/* Prepare the receiver while the guest runs; returns the connected socket. */
static int transfer_prepare(struct vmm *m, const char *path, pid_t *pid, int *pidfd, char *why,
			    size_t len)
{
	struct cpr_error err = { 0 };
	int sock, r;

	sock = handoff_spawn(m, path, "--incoming-transfer", NULL, pid, pidfd, why, len);
	if (sock < 0)
		return sock;
	r = cpr_transfer_send(m->ctx, sock, &err);
	if (r >= 0)
		r = wait_or_child(sock, *pidfd, ACK_TIMEOUT_MS);
	if (r >= 0)
		r = cpr_transfer_wait_ack(m->ctx, sock, 0, &err);
	if (r < 0) {
		snprintf(why, len, "receiver pid %d: %s", (int)*pid,
			 err.message[0] ? err.message
			 : r == -ECHILD ? "it exited"
					: strerror(-r));
		fd_close(sock);
		return r;
	}
	return sock;
}

/*
 * The pause of a prepared hand-off: stop, move the registers, wait for the
 * receiver to run them.  Returns 1 when it does; otherwise the guest runs
 * here again and the caller stops the receiver.
 */
int handoff_vcpus(struct vmm *m, enum upgrade_mode mode, int sock, pid_t pid, int pidfd, char *why,
		  size_t len)
{
	struct rec_pause p;
	char reply = 0;
	int r;

	r = stop_guest(m, mode, &p);
	if (r < 0) {
		snprintf(why, len, "stopping the vCPUs: %s", strerror(-r));
		return r;
	}
	r = send_vcpu_state(m, sock, &p);
	if (r >= 0)
		r = wait_or_child(sock, pidfd, -1);
	if (r >= 0)
		r = read_all(sock, &reply, 1);
	if (r >= 0 && reply == REPLY_RUNNING) {
		/* Exit (and tear down our mapping of guest RAM) only once the
		 * new image runs the guest: it closes the socket then. */
		pause_boost(m, false);
		wait_or_child(sock, pidfd, HANDOFF_LINGER_MS);
		return 1;
	}
	snprintf(why, len, "receiver pid %d %s", (int)pid,
		 r < 0 ? "went away before running the guest" : "refused the vCPU state");
	resume_guest(m);
	return r < 0 ? r : -EPROTO;
}

static int upgrade_transfer(struct vmm *m, const char *path, char *why, size_t len)
{
	pid_t pid = 0;
	int pidfd = -1, sock, r;

	sock = transfer_prepare(m, path, &pid, &pidfd, why, len);
	r = sock < 0 ? sock : handoff_vcpus(m, UPGRADE_TRANSFER, sock, pid, pidfd, why, len);
	if (r < 0)
		child_stop(pid, pidfd);
	/* acknowledged, then failed before running the guest: the receiver
	 * is gone now, and the state is this image's again */
	if (r < 0 && sock >= 0) {
		struct cpr_error err = { 0 };

		if (cpr_transfer_reclaim(m->ctx, sock, &err) < 0)
			fprintf(stderr, "minivmm: the state cannot be taken back from pid %d: %s\n",
				(int)pid, err.message);
	}
	fd_close(sock);
	fd_close(pidfd);
	return r;
}

int upgrade_run(struct vmm *m, enum upgrade_mode mode, const char *path, char *why, size_t len)
{
	int r;

	r = precheck(m, mode, why, len);
	if (r < 0)
		return r;
	r = set_vm_record(m);
	if (r < 0) {
		snprintf(why, len, "machine record: %s", strerror(-r));
		return r;
	}
	/* kexec: only memfds cross it; the old image answers itself */
	if (m->reply_fd >= 0 && mode != UPGRADE_KEXEC) {
		r = cpr_fd_save(m->ctx, FD_REPLY, 0, m->reply_fd, CPR_FD_SOCKET, NULL);
		if (r < 0) {
			snprintf(why, len, "preserving the control connection: %s", strerror(-r));
			return r;
		}
	}
	if (mode == UPGRADE_EXEC)
		r = upgrade_exec(m, path, why, len);
	else if (mode == UPGRADE_TRANSFER)
		r = upgrade_transfer(m, path, why, len);
	else if (mode == UPGRADE_KEXEC)
		r = upgrade_kexec(m, why, len);
	else
		r = upgrade_cprd(m, path, why, len);
	if (r < 0 && m->reply_fd >= 0)
		cpr_fd_delete(m->ctx, FD_REPLY, 0);
	return r;
}

/* ---------------------------------------------------------------- new image */

/* Registers and the pause record from @st into the (stopped) VM. */
int apply_pause(struct vmm *m, const struct cpr_state *st)
{
	const void *data;
	size_t len;
	int r;

	r = cpr_state_private_find(st, REC_PAUSE, 0, &data, &len);
	if (r >= 0)
		r = rec_pause_decode(data, len, &m->report.pause);
	if (r >= 0 && m->report.pause.n_vcpus != m->rec.n_vcpus)
		r = -EBADMSG;
	for (unsigned i = 0; i < m->rec.n_vcpus && r >= 0; i++) {
		struct vcpu *v = &m->vm.vcpus[i];

		r = cpr_state_private_find(st, REC_VCPU, i, &data, &len);
		if (r >= 0)
			r = rec_vcpu_decode(data, len, &v->regs, &v->sregs);
		v->load_regs = true;
	}
	if (r < 0) {
		fprintf(stderr, "minivmm: incoming vCPU state: %s\n", strerror(-r));
		return r;
	}
	m->keeper_pid = (pid_t)m->report.pause.keeper_pid;
	machine_counters(m, m->report.counters_adopted);
	return 0;
}

void adopt_fds(struct vmm *m)
{
	int fd;

	if (cpr_fd_claim(m->ctx, FD_CONTROL, 0, CPR_FD_SOCKET, &fd, NULL) >= 0)
		m->control_fd = fd;
	if (cpr_fd_claim(m->ctx, FD_REPLY, 0, CPR_FD_SOCKET, &fd, NULL) >= 0) {
		m->reply_fd = fd;
		cpr_fd_delete(m->ctx, FD_REPLY, 0);
	}
	/* The guest runs here now: the old VM and address space may go. */
	keeper_release(m);
	cpr_fd_close_unclaimed(m->ctx);
}

int incoming_exec(struct vmm *m)
{
	int r = machine_adopt(m);

	m->report.t_ram = now_ns();
	/* Only the boot slot in the pause: the rest follows while the guest runs. */
	if (r >= 0)
		r = machine_build_vm(m, true);
	if (r >= 0)
		r = vm_arm(&m->vm);
	m->report.t_vm = now_ns();
	if (r >= 0)
		r = apply_pause(m, cpr_ctx_incoming_state(m->ctx));
	if (r >= 0)
		r = vm_start(&m->vm);
	if (r >= 0)
		vm_add_deferred_slots(&m->vm, m->opt.slot_delay_ms);
	/* The old image's boost came through execve(). */
	pause_boost(m, false);
	if (r >= 0)
		adopt_fds(m);
	return r;
}

static int recv_vcpu_state(int sock, struct cpr_state **ret)
{
	struct cpr_error err = { 0 };
	uint8_t hdr[4];
	uint32_t len;
	void *buf;
	int r = read_all(sock, hdr, sizeof(hdr));

	if (r < 0)
		return r;
	len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
	      (uint32_t)hdr[3] << 24;
	if (len == 0 || len > VCPU_MSG_MAX)
		return -EMSGSIZE;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	r = read_all(sock, buf, len);
	if (r >= 0)
		r = cpr_state_parse(buf, len, 0, ret, &err);
	if (r < 0 && err.message[0])
		fprintf(stderr, "minivmm: vCPU state stream: %s\n", err.message);
	free(buf);
	return r;
}

/* The receiver's pause: registers in, 'R' out, vCPUs started. */
/*
 * MINIVMM_FAIL_AT=ack|run makes a receiving image die at that point of the
 * hand-off (after its acknowledgement; holding the registers, before it
 * answers), so that tests can show the old image keeps the guest.
 */
static void fail_point(const char *where)
{
	const char *e = getenv("MINIVMM_FAIL_AT");

	if (e && !strcmp(e, where)) {
		fprintf(stderr, "minivmm: MINIVMM_FAIL_AT=%s: dying here\n", where);
		_exit(EXIT_REFUSED);
	}
}

int receive_vcpus(struct vmm *m, int sock)
{
	struct cpr_state *st = NULL;
	char reply;
	int r;

	fail_point("ack");
	pause_boost(m, true);
	r = recv_vcpu_state(sock, &st);

	m->report.t_recv = now_ns();
	if (r >= 0)
		r = apply_pause(m, st);
	cpr_state_free(st);
	fail_point("run");
	reply = r >= 0 ? REPLY_RUNNING : REPLY_REFUSED;
	/* Run only if the old image is sure to have heard it. */
	if (write_all(sock, &reply, 1) < 0 && r >= 0)
		r = -EPIPE;
	if (r >= 0)
		r = vm_start(&m->vm);
	pause_boost(m, false);
	if (r >= 0)
		adopt_fds(m);
	return r;
}

/* Adopt RAM and build the VM before the pause; arm the vCPU threads. */
int prepare_incoming(struct vmm *m)
{
	int r = machine_adopt(m);

	m->report.t_ram = now_ns();
	if (r >= 0)
		r = machine_build_vm(m, false);
	m->report.t_vm = now_ns();
	m->report.prepared = true;
	return r;
}

int incoming_transfer(struct vmm *m, const char *path)
{
	struct cpr_error err = { 0 };
	int sock = -1, r;

	r = cpr_transfer_connect(path, &sock);
	if (r < 0) {
		fprintf(stderr, "minivmm: connecting to %s: %s\n", path, strerror(-r));
		return r;
	}
	r = cpr_transfer_recv(m->ctx, sock, &err);
	if (r < 0) {
		fprintf(stderr, "minivmm: incoming state refused: %s\n",
			err.message[0] ? err.message : strerror(-r));
		goto out;
	}
	/* Built while the guest still runs in the old image. */
	r = prepare_incoming(m);
	if (r >= 0)
		r = cpr_transfer_ack(m->ctx, sock, &err);
	if (r >= 0)
		r = vm_arm(&m->vm);
	if (r < 0)
		goto out;
	/* The old image pauses the guest now. */
	r = receive_vcpus(m, sock);
out:
	fd_close(sock);
	return r;
}
