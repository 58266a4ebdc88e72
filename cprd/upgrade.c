/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "cprctl daemon upgrade": cprd hands every sealed and claimed bundle to a
 * new process of itself by cpr-transfer over a socket pair, and exits only
 * once that process has taken everything and is ready to serve.
 *
 *   old: fork + execve(new image, CPRD_UPGRADE_FD=N) -> cpr_transfer_send
 *   new: cpr_transfer_recv -> adopt -> sandbox -> cpr_transfer_ack
 *   old: ack -> MAINPID=<new> -> write "C" (commit) -> _exit(0)
 *   new: "C" -> READY=1 -> answer the requester -> serve
 *
 * Each held fd is registered with cpr_fd_save(, NULL) ("cprd-b<ID>" slot,
 * "cprd-b<ID>-s" stream), the bundle table travels as VMM-private records
 * (one JSON manifest per bundle), and so do the listening sockets and the
 * requester's connection, on which the new image answers.  Until the
 * commit the old image owns everything and serves no request (the table
 * must not change under the copy); if the new image cannot be executed,
 * refuses its configuration or the state, is killed by a seccomp filter,
 * crashes or does not ack in time, it is killed and the old image answers
 * the requester with the reason and goes on serving.  A new image without
 * the commit exits: only one process ever owns a bundle.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "cprd.h"
#include "handle.h"
#include "log.h"
#include "proto.h"

#define UPGRADE_REC_HEADER 0x8c0cu /* {"next_id", "bundles"} */
#define UPGRADE_REC_BUNDLE 0x8c0du /* one manifest per bundle, instance = index */
#define UPGRADE_KEY_LISTEN "cprd-listen"
#define UPGRADE_KEY_CONN "cprd-upgrade-conn"
#define UPGRADE_ENV_FD "CPRD_UPGRADE_FD" /* the new image's end of the socket pair */
#define UPGRADE_COMMIT "C"		 /* old -> new: serve, I am leaving */
#define UPGRADE_EXIT_EXEC 127		 /* the child's execve() failed */
#define UPGRADE_EXIT_TEMP 111
#define UPGRADE_TIMEOUT_DEFAULT_MS 10000u
#define UPGRADE_TIMEOUT_MAX_MS 600000
#define UPGRADE_NOTIFY_MS 2000 /* for the service manager to read MAINPID= */

extern char **environ;

static struct conn *upgrade_conn;     /* the requester, old image */
static char *upgrade_exe;	      /* the new image's executable */
static uint64_t upgrade_timeout_ms;   /* for the new image to take over */
static int upgrade_reply_fd = -EBADF; /* the requester, new image */
static pid_t upgrade_previous_pid;    /* the old image, new image */

/* "exe" runs a program as the daemon: only for uid 0 and the daemon's uid. */
static int upgrade_request_exe(struct request *r, const char **ret)
{
	const char *exe = NULL;

	if (proto_get_str(r->req, "exe", false, PATH_MAX - 1, &exe) < 0)
		return handle_bad_field(r, "exe", -EINVAL);
	if (exe && exe[0] != '/')
		return handle_fail(r, -EINVAL, "\"exe\" must be an absolute path");
	if (exe && r->peer->uid != 0 && r->peer->uid != geteuid())
		return handle_fail(r, -EPERM, "only uid 0 or the daemon's uid may name \"exe\"");
	*ret = exe ? exe : cprd.self_exe;
	if (!*ret)
		return handle_fail(r, -ENOENT, "the daemon's own executable is unknown");
	return 0;
}

int handle_upgrade(struct request *r)
{
	size_t need = cprd.n_fds + cprd.n_listen + 1;
	uint64_t timeout = UPGRADE_TIMEOUT_DEFAULT_MS;
	const char *exe = NULL;
	int q;

	if (qemu_peer_count())
		return handle_fail(r, -EBUSY,
				   "%u QEMU cpr channels are open: their sockets and "
				   "connections cannot be handed over",
				   qemu_peer_count());
	if (need > CPR_FDS_MAX)
		return handle_fail(r, -EFBIG, "%zu fds exceed what one hand-off carries (%u)", need,
				   CPR_FDS_MAX);
	if (proto_get_u64(r->req, "timeout_ms", false, UPGRADE_TIMEOUT_MAX_MS, &timeout) < 0 ||
	    timeout == 0)
		return handle_bad_field(r, "timeout_ms", -EINVAL);
	q = upgrade_request_exe(r, &exe);
	if (q < 0)
		return q;
	upgrade_exe = strdup(exe);
	if (!upgrade_exe)
		return handle_fail(r, -ENOMEM, "out of memory");
	upgrade_timeout_ms = timeout;
	upgrade_conn = r->conn;
	cprd.upgrade = true;
	r->no_reply = true; /* the new image answers */
	return 0;
}

static struct json_object *upgrade_bundle_json(const struct bundle *b)
{
	struct json_object *o = rebuild_manifest(b);

	json_object_object_add(o, "persisted", json_object_new_boolean(b->persisted));
	json_object_object_add(o, "parked", json_object_new_int64(b->n_parked));
	if (b->state == BUNDLE_CLAIMED) {
		json_object_object_add(o, "token", json_object_new_string(b->token));
		json_object_object_add(o, "claimer_uid", json_object_new_int64(b->claimer_uid));
		json_object_object_add(o, "claimer_pid", json_object_new_int64(b->claimer_pid));
		json_object_object_add(o, "lease_ns", json_object_new_int64((int64_t)b->lease_ns));
	}
	return o;
}

static int upgrade_save_bundle(struct cpr_ctx *ctx, const struct bundle *b, uint32_t index)
{
	struct json_object *m;
	char key[64];
	const char *s;
	size_t len;
	int r;

	snprintf(key, sizeof(key), "cprd-b%" PRIu64, b->id);
	for (size_t i = 0; i < b->n_fds; i++) {
		r = cpr_fd_save(ctx, key, (int32_t)i, b->fds[i], CPR_FD_GENERIC, NULL);
		if (r < 0)
			return r;
	}
	snprintf(key, sizeof(key), "cprd-b%" PRIu64 "-s", b->id);
	r = cpr_fd_save(ctx, key, 0, b->stream_fd, CPR_FD_MEMFD, NULL);
	if (r < 0)
		return r;
	m = upgrade_bundle_json(b);
	s = proto_format(m, &len);
	r = cpr_ctx_set_private(ctx, UPGRADE_REC_BUNDLE, index, s, len);
	json_object_put(m);
	return r;
}

static int upgrade_save(struct cpr_ctx *ctx)
{
	char hdr[96];
	uint32_t n = 0;
	int r;

	for (size_t i = 0; i < cprd.n_listen; i++) {
		r = cpr_fd_save(ctx, UPGRADE_KEY_LISTEN, (int32_t)i, cprd.listen_fds[i],
				CPR_FD_SOCKET, NULL);
		if (r < 0)
			return r;
	}
	r = cpr_fd_save(ctx, UPGRADE_KEY_CONN, 0, upgrade_conn->src.fd, CPR_FD_SOCKET, NULL);
	for (struct bundle *b = cprd.bundles; r == 0 && b; b = b->next)
		if (b->state != BUNDLE_OPEN) /* open bundles die with their connection */
			r = upgrade_save_bundle(ctx, b, n++);
	if (r < 0)
		return r;
	snprintf(hdr, sizeof(hdr), "{\"next_id\":%" PRIu64 ",\"bundles\":%u}", cprd.next_id, n);
	return cpr_ctx_set_private(ctx, UPGRADE_REC_HEADER, 0, hdr, strlen(hdr));
}

static void upgrade_refuse(int r, const char *why)
{
	struct json_object *e = proto_error_new("upgrade", r, why, false);

	control_send_json(upgrade_conn, e, NULL, 0);
	json_object_put(e);
}

/*
 * The new image: fork, then execve() of the executable with the daemon's
 * own argv and environment, plus CPRD_UPGRADE_FD naming its end of the
 * socket pair.  Everything else is close-on-exec.  The child inherits the
 * seccomp filter, so between fork() and execve() it only clears one
 * CLOEXEC flag and sets two variables.
 */
static int upgrade_spawn(const char *exe, int child_sock, pid_t *ret_pid, int *ret_pidfd)
{
	pid_t pid = fork();
	int pidfd;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char num[16];

		snprintf(num, sizeof(num), "%d", child_sock);
		if (fcntl(child_sock, F_SETFD, 0) < 0 || setenv(UPGRADE_ENV_FD, num, 1) < 0)
			_exit(UPGRADE_EXIT_TEMP);
		if (getenv("WATCHDOG_PID")) { /* the watchdog follows the main process */
			snprintf(num, sizeof(num), "%d", getpid());
			setenv("WATCHDOG_PID", num, 1);
		}
		execve(exe, cprd.argv, environ);
		_exit(UPGRADE_EXIT_EXEC);
	}
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		int r = -errno;

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return r;
	}
	*ret_pid = pid;
	*ret_pidfd = pidfd;
	return 0;
}

/* Why the new image did not take over, from its exit status. */
static void upgrade_describe_exit(pid_t pid, int status, char *buf, size_t len)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == UPGRADE_EXIT_EXEC)
		snprintf(buf, len, "the new image (pid %d) could not be executed (execve failed)",
			 (int)pid);
	else if (WIFEXITED(status))
		snprintf(buf, len,
			 "the new image (pid %d) exited with status %d before taking over",
			 (int)pid, WEXITSTATUS(status));
	else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		snprintf(
			buf, len,
			"the new image (pid %d) was killed by SIGSYS before taking over: a seccomp "
			"filter refused one of its system calls",
			(int)pid);
	else if (WIFSIGNALED(status))
		snprintf(buf, len,
			 "the new image (pid %d) was killed by signal %d (%s) before "
			 "taking over",
			 (int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "the new image (pid %d) stopped before taking over", (int)pid);
}

struct upgrade_run {
	struct cpr_ctx *ctx;
	int sock;  /* ours; the child has the other end */
	pid_t pid; /* the new image */
	int pidfd;
	int64_t deadline_ms;
	char why[384];
};

static int64_t upgrade_now_ms(void)
{
	return (int64_t)(now_boottime_ns() / 1000000u);
}

/*
 * Wait for the new image's ack, its exit, a signal for the daemon or the
 * deadline, whichever comes first.  A signal is left pending for the loop.
 */
static int upgrade_wait_ack(struct upgrade_run *u)
{
	struct cpr_error err = { 0 };

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = u->sock, .events = POLLIN },
			{ .fd = u->pidfd, .events = POLLIN },
			{ .fd = cprd.signal_fd, .events = POLLIN },
		};
		int64_t left = u->deadline_ms - upgrade_now_ms();
		int n;

		if (left <= 0) {
			snprintf(u->why, sizeof(u->why),
				 "the new image (pid %d) did not take over within the timeout",
				 (int)u->pid);
			return -ETIMEDOUT;
		}
		n = poll(p, 3, (int)MIN(left, INT32_MAX));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (p[0].revents) {
			int r = cpr_transfer_wait_ack(u->ctx, u->sock, 0, &err);

			if (r < 0)
				snprintf(u->why, sizeof(u->why), "%s",
					 err.message[0] ? err.message : strerror(-r));
			return r;
		}
		if (p[1].revents)
			return -ECHILD; /* described from its exit status */
		if (p[2].revents) {
			snprintf(u->why, sizeof(u->why), "interrupted by a signal for the daemon");
			return -EINTR;
		}
	}
}

/*
 * The new image does not take over: stop it, reap it, say why.  One that
 * hung up on its own is given until the deadline to exit, so that its exit
 * status, the best reason there is, can be reported.
 */
static void upgrade_abort(struct upgrade_run *u, int r)
{
	struct pollfd p = { .fd = u->pidfd, .events = POLLIN };
	int64_t left = u->deadline_ms - upgrade_now_ms();
	bool exited = false;
	int status = 0;
	char why[sizeof(u->why)];

	if (u->pid > 0) {
		if (r != -ETIMEDOUT && r != -EINTR && left > 0)
			exited = poll(&p, 1, (int)MIN(left, INT32_MAX)) == 1;
		syscall(SYS_pidfd_send_signal, u->pidfd, SIGKILL, NULL, 0);
		while (waitpid(u->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (exited) {
		char desc[160];

		upgrade_describe_exit(u->pid, status, desc, sizeof(desc));
		if (u->why[0] && r != -ECHILD)
			snprintf(why, sizeof(why), "%s (%.200s)", desc, u->why);
		else
			snprintf(why, sizeof(why), "%s", desc);
		memcpy(u->why, why, sizeof(why));
	}
	log_errno(r, "upgrade failed: %s; still serving %u bundles", u->why, cprd.n_bundles);
	upgrade_refuse(-ECANCELED, u->why);
}

/* The new image holds everything: let it serve, and leave. */
static int upgrade_commit(struct upgrade_run *u)
{
	char msg[64];

	/* the service manager follows the new main pid before it says READY=1 */
	snprintf(msg, sizeof(msg), "MAINPID=%d", (int)u->pid);
	notify_send(msg);
	if (notify_drain(UPGRADE_NOTIFY_MS) < 0)
		log_warnx("upgrade: the service manager has not read MAINPID=%d", (int)u->pid);
	if (write(u->sock, UPGRADE_COMMIT, 1) != 1) {
		snprintf(msg, sizeof(msg), "MAINPID=%d", (int)getpid());
		notify_send(msg);
		snprintf(u->why, sizeof(u->why), "the new image (pid %d) hung up after its ack",
			 (int)u->pid);
		return -EPIPE;
	}
	log_info("upgrade: pid %d took %u bundles, %u fds; this image exits", (int)u->pid,
		 cprd.n_bundles, cprd.n_fds);
	/* no clean-up: the bundles, and their fd-store entries, are the new image's */
	_exit(0);
}

static int upgrade_start(struct upgrade_run *u)
{
	struct cpr_error err = { 0 };
	int sv[2], r;

	r = cpr_ctx_new(&u->ctx);
	if (r == 0)
		r = cpr_ctx_set_producer(u->ctx, "cprd " PACKAGE_VERSION, 0);
	if (r == 0)
		r = upgrade_save(u->ctx);
	if (r < 0) {
		snprintf(u->why, sizeof(u->why), "cannot record the bundle table: %s",
			 strerror(-r));
		return r;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	u->sock = sv[0];
	r = upgrade_spawn(upgrade_exe, sv[1], &u->pid, &u->pidfd);
	cpr_close(sv[1]);
	if (r < 0) {
		snprintf(u->why, sizeof(u->why), "cannot start %s: %s", log_quote(upgrade_exe),
			 strerror(-r));
		return r;
	}
	log_info("upgrade: started %s as pid %d for %u bundles, %u fds", upgrade_exe, (int)u->pid,
		 cprd.n_bundles, cprd.n_fds);
	r = setsockopt(u->sock, SOL_SOCKET, SO_SNDTIMEO,
		       &(struct timeval){ .tv_sec = (time_t)(upgrade_timeout_ms / 1000),
					  .tv_usec = (long)(upgrade_timeout_ms % 1000) * 1000 },
		       sizeof(struct timeval));
	if (r == 0)
		r = cpr_transfer_send(u->ctx, u->sock, &err);
	if (r < 0 && !u->why[0])
		snprintf(u->why, sizeof(u->why), "sending the state to the new image (pid %d): %s",
			 (int)u->pid, err.message[0] ? err.message : strerror(-r));
	return r;
}

/*
 * Hand every bundle to a new process and exit once it has taken them; on
 * any failure of the new image (it cannot be executed, refuses its
 * configuration, is killed by the filter, crashes, hangs) it is killed and
 * this image goes on serving with everything as before.  Returns only then.
 */
int upgrade_run(void)
{
	struct upgrade_run u = { .sock = -EBADF, .pidfd = -EBADF };
	int r;

	u.deadline_ms = upgrade_now_ms() + (int64_t)upgrade_timeout_ms;
	/* what the fd store is still owed goes out first: the table then says
	 * exactly what is parked */
	if (notify_pending() && notify_drain(UPGRADE_NOTIFY_MS) < 0)
		log_warnx("upgrade: the service manager is not reading its notifications");
	r = upgrade_start(&u);
	if (r == 0)
		r = upgrade_wait_ack(&u);
	if (r == 0)
		r = upgrade_commit(&u); /* returns only if the new image died after its ack */
	if (r < 0)
		upgrade_abort(&u, r);
	cpr_close(u.sock);
	cpr_close(u.pidfd);
	cpr_ctx_free(u.ctx); /* saved fds are borrowed: the bundles keep them */
	upgrade_conn = NULL;
	free(upgrade_exe);
	upgrade_exe = NULL;
	return r;
}
static int upgrade_claim_state(struct json_object *m, struct bundle *b)
{
	const char *token = NULL;
	uint64_t uid, pid;

	if (proto_get_str(m, "token", false, CPRD_TOKEN_LEN, &token) < 0)
		return -EBADMSG;
	if (!token)
		return 0;
	if (strlen(token) != CPRD_TOKEN_LEN ||
	    proto_get_u64(m, "claimer_uid", true, UINT32_MAX - 1, &uid) < 0 ||
	    proto_get_u64(m, "claimer_pid", true, INT32_MAX, &pid) < 0 ||
	    proto_get_u64(m, "lease_ns", true, INT64_MAX - 1, &b->lease_ns) < 0)
		return -EBADMSG;
	memcpy(b->token, token, CPRD_TOKEN_LEN + 1);
	b->claimer_uid = (uid_t)uid;
	b->claimer_pid = (pid_t)pid;
	b->state = BUNDLE_CLAIMED;
	return 0;
}

/* Take the fds of bundle @id from the registry: the caller owns them. */
static int upgrade_take_fds(struct cpr_ctx *ctx, uint64_t id, size_t n, int *fds, int *ret_stream)
{
	char key[64];
	int r;

	snprintf(key, sizeof(key), "cprd-b%" PRIu64, id);
	for (size_t i = 0; i < n; i++) {
		r = cpr_fd_claim(ctx, key, (int32_t)i, 0, &fds[i], NULL);
		if (r < 0)
			return r;
	}
	snprintf(key, sizeof(key), "cprd-b%" PRIu64 "-s", id);
	return cpr_fd_claim(ctx, key, 0, CPR_FD_MEMFD, ret_stream, NULL);
}

static const char *const upgrade_extra_keys[] = {
	"persisted", "parked", "token", "claimer_uid", "claimer_pid", "lease_ns", NULL,
};

static int upgrade_rebuild(struct cpr_ctx *ctx, struct json_object *m, uint64_t id, size_t n,
			   int *fds, int *stream, char *why, size_t why_len)
{
	struct bundle claim = { .state = BUNDLE_SEALED }, *b;
	bool persisted = false;
	uint64_t parked = 0;
	int r;

	if (proto_get_bool(m, "persisted", true, &persisted) < 0 ||
	    proto_get_u64(m, "parked", false, CPR_FDS_MAX + 2u, &parked) < 0 ||
	    upgrade_claim_state(m, &claim) < 0) {
		snprintf(why, why_len, "bad upgrade fields");
		return -EBADMSG;
	}
	r = upgrade_take_fds(ctx, id, n, fds, stream);
	if (r < 0) {
		snprintf(why, why_len, "fds missing from the exec state");
		return r;
	}
	for (size_t i = 0; upgrade_extra_keys[i]; i++)
		json_object_object_del(m, upgrade_extra_keys[i]);
	r = rebuild_bundle(m, stream, fds, n, &b, why, why_len);
	if (r < 0)
		return r;
	memcpy(b->token, claim.token, sizeof(b->token));
	b->claimer_uid = claim.claimer_uid;
	b->claimer_pid = claim.claimer_pid;
	b->lease_ns = claim.lease_ns;
	b->state = claim.state;
	b->persisted = persisted;
	b->n_parked = persisted ? (unsigned)parked : 0;
	cprd.fdstore_used += b->n_parked;
	return store_adopt(b);
}

static int upgrade_adopt_bundle(struct cpr_ctx *ctx, const void *data, size_t len)
{
	struct json_object *m = NULL;
	_cleanup_free_ int *fds = NULL;
	int stream = -EBADF, r;
	char why[256] = "", name[CPRD_BUNDLE_NAME_MAX + 1] = "?";
	const char *s = NULL;
	uint64_t id = 0, n = 0;

	r = proto_parse(data, len, 8, &m, why, sizeof(why));
	if (r == 0 && proto_get_str(m, "name", false, CPRD_BUNDLE_NAME_MAX, &s) == 0 && s)
		snprintf(name, sizeof(name), "%s", s); /* the manifest is freed below */
	if (r == 0 && (proto_get_u64(m, "id", true, INT64_MAX - 1, &id) < 0 ||
		       proto_get_u64(m, "fds", true, CPR_FDS_MAX, &n) < 0))
		r = -EBADMSG;
	if (r == 0 && !(fds = calloc(n ? n : 1, sizeof(int))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++)
		fds[i] = -EBADF;
	if (r == 0)
		r = upgrade_rebuild(ctx, m, id, (size_t)n, fds, &stream, why, sizeof(why));
	json_object_put(m);
	if (r < 0) {
		for (size_t i = 0; fds && i < n; i++)
			cpr_close(fds[i]);
		cpr_close(stream);
		log_errno(r, "upgrade: bundle %s (id %" PRIu64 ") lost: %s", log_quote(name), id,
			  why);
	}
	return r;
}

static void upgrade_adopt_all(struct cpr_ctx *ctx, const struct cpr_state *st)
{
	size_t n = cpr_state_private_count(st);
	const void *data;
	size_t len;

	if (cpr_state_private_find(st, UPGRADE_REC_HEADER, 0, &data, &len) == 0) {
		struct json_object *h = NULL;
		char why[64];
		uint64_t next = 0;

		if (proto_parse(data, len, 4, &h, why, sizeof(why)) == 0 &&
		    proto_get_u64(h, "next_id", true, INT64_MAX - 1, &next) == 0 &&
		    next > cprd.next_id)
			cprd.next_id = next;
		json_object_put(h);
	}
	for (size_t i = 0; i < n; i++) {
		const struct cpr_state_private *p = cpr_state_private_get(st, i);

		if (p->type == UPGRADE_REC_BUNDLE)
			upgrade_adopt_bundle(ctx, p->data, p->len);
	}
}

static struct cpr_ctx *incoming_ctx; /* until the upgrade is committed */
static int incoming_sock = -EBADF;   /* to the old image */

static int upgrade_incoming_fd(void)
{
	const char *e = getenv(UPGRADE_ENV_FD);
	uint64_t fd;
	int r;

	if (!e)
		return -ENOENT;
	r = conf_parse_u64(e, 3, INT32_MAX, &fd);
	unsetenv(UPGRADE_ENV_FD);
	if (r < 0 || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0) {
		log_warnx("upgrade: %s=%s names no open fd", UPGRADE_ENV_FD, log_quote(e));
		return -EBADF;
	}
	return (int)fd;
}

/* 1 when started by an upgrade (listeners and bundles taken), 0 if not. */
int upgrade_incoming(void)
{
	struct cpr_error err = { 0 };
	int sock = upgrade_incoming_fd(), r, fd;

	if (sock == -ENOENT)
		return 0;
	if (sock < 0)
		return sock;
	r = cpr_ctx_new(&incoming_ctx);
	if (r == 0)
		r = cpr_transfer_recv(incoming_ctx, sock, &err);
	if (r < 0) {
		log_errno(r, "upgrade: the old image's state refused: %s", err.message);
		cpr_close(sock);
		return r;
	}
	incoming_sock = sock;
	upgrade_previous_pid = getppid();
	for (int32_t i = 0;
	     cpr_fd_claim(incoming_ctx, UPGRADE_KEY_LISTEN, i, CPR_FD_SOCKET, &fd, NULL) == 0; i++)
		if (control_add_listener(fd) < 0)
			cpr_close(fd);
	if (cpr_fd_claim(incoming_ctx, UPGRADE_KEY_CONN, 0, CPR_FD_SOCKET, &fd, NULL) == 0)
		upgrade_reply_fd = fd;
	upgrade_adopt_all(incoming_ctx, cpr_ctx_incoming_state(incoming_ctx));
	cpr_fd_close_unclaimed(incoming_ctx);
	log_info("upgrade: the new image holds %u bundles, %u fds", cprd.n_bundles, cprd.n_fds);
	return cprd.n_listen > 0 ? 1 : -ENOTSOCK;
}

/*
 * Ready to serve: ack, then wait for the old image's commit.  Without it
 * (the old image gave up, timed out or died) this image must not serve:
 * the old one may still own every bundle.
 */
int upgrade_take_over(void)
{
	struct pollfd p = { .fd = incoming_sock, .events = POLLIN };
	struct cpr_error err = { 0 };
	char c = 0;
	int r;

	if (incoming_sock < 0)
		return 0;
	r = cpr_transfer_ack(incoming_ctx, incoming_sock, &err);
	if (r < 0)
		log_warnx("upgrade: %s", err.message);
	if (r == 0)
		r = poll(&p, 1, UPGRADE_TIMEOUT_MAX_MS) == 1 && read(incoming_sock, &c, 1) == 1 &&
				    c == UPGRADE_COMMIT[0]
			    ? 0
			    : -ECANCELED;
	incoming_sock = cpr_close(incoming_sock);
	cpr_ctx_free(incoming_ctx);
	incoming_ctx = NULL;
	if (r < 0)
		log_errno(r, "upgrade: the old image did not hand over; it keeps every bundle");
	return r;
}
/* Once the new image is ready: answer the upgrade request and hang up. */
void upgrade_reply(void)
{
	struct json_object *o;
	size_t len;
	const char *s;

	if (upgrade_reply_fd < 0)
		return;
	o = proto_reply_new("upgrade");
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "previous_pid", json_object_new_int(upgrade_previous_pid));
	json_object_object_add(o, "bundles", json_object_new_int64(cprd.n_bundles));
	json_object_object_add(o, "fds", json_object_new_int64(cprd.n_fds));
	s = proto_format(o, &len);
	if (write(upgrade_reply_fd, s, len) < 0)
		log_warn("upgrade: cannot answer the requester");
	json_object_put(o);
	upgrade_reply_fd = cpr_close(upgrade_reply_fd);
}
