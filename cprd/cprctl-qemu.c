/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprctl qemu upgrade: upgrade a running QEMU by cpr-transfer through cprd
 * (cprctl(1), QEMU UPGRADE).  The old QEMU's command line comes from
 * /proc/PID/cmdline of its QMP peer; the new one is derived from it by the
 * documented rules; cprd holds the state between the two (qemu-listen with
 * the new QEMU as its target).  Any failure rolls back: the new QEMU is
 * killed and the old one runs the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client.h"
#include "cprctl.h"
#include "cprctl-ops.h"
#include "qmp.h"

#define QU_ARGS_MAX 4096u	/* arguments of a QEMU command line */
#define QU_CMDLINE_MAX 1048576u /* bytes of /proc/PID/cmdline */
#define QU_EXIT_LOST 2		/* failed and the old QEMU does not run the guest */

struct qu_args {
	const char *qmp, *binary, *new_qmp, *workdir, *socket, *name;
	const char *add[64], *drop[64];
	size_t n_add, n_drop;
	int timeout_ms;
	bool keep_old, direct;
};

struct qu {
	struct qu_args a;
	char dir[256], name[128], new_qmp[300];
	char **old_argv, **new_argv;
	size_t old_argc, new_argc;
	struct qmp old, new;
	pid_t new_pid;
	int new_pidfd, cprd;
	char why[512];
	struct json_object *delivered;
	uint64_t t0, t_delivered, t_running;
	bool spawned, migrating;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void qu_sleep(void)
{
	struct timespec t = { 0, 20 * 1000 * 1000 };

	nanosleep(&t, NULL);
}

static int qu_fail(struct qu *u, int r, const char *fmt, ...) _cpr_printf_(3, 4);
static int qu_fail(struct qu *u, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(u->why, sizeof(u->why), fmt, ap);
	va_end(ap);
	return r;
}

/* /proc/PID/cmdline as an argv (one malloc()ed block). */
static int read_cmdline(pid_t pid, char ***ret_argv, size_t *ret_argc)
{
	char path[64], *buf = malloc(QU_CMDLINE_MAX), **argv;
	size_t len = 0, n = 0;
	ssize_t k;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (!buf || fd < 0) {
		free(buf);
		return fd < 0 ? -errno : -ENOMEM;
	}
	while ((k = read(fd, buf + len, QU_CMDLINE_MAX - 1 - len)) > 0)
		len += (size_t)k;
	close(fd);
	buf[len] = 0;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == 0;
	argv = n && n <= QU_ARGS_MAX ? calloc(n + 1, sizeof(char *)) : NULL;
	if (!argv) {
		free(buf);
		return n ? -E2BIG : -ESRCH;
	}
	for (size_t i = 0, j = 0; j < n; i += strlen(buf + i) + 1)
		argv[j++] = buf + i;
	*ret_argv = argv;
	*ret_argc = n;
	return 0;
}

static bool has_word(const char *opt, const char *word)
{
	size_t k = strlen(word);

	for (const char *p = opt; (p = strstr(p, word)); p += k)
		if ((p == opt || p[-1] == ',') && (p[k] == ',' || p[k] == 0))
			return true;
	return false;
}

/* cpr-transfer needs guest RAM QEMU can pass: a shared memfd backend. */
static int check_old(struct qu *u)
{
	bool memfd = false, aux = false;

	for (size_t i = 0; i + 1 < u->old_argc; i++) {
		const char *o = u->old_argv[i], *v = u->old_argv[i + 1];

		if (strcmp(o, "-object") == 0 && strncmp(v, "memory-backend-", 15) == 0) {
			if (strncmp(v, "memory-backend-memfd,", 21) != 0 ||
			    !has_word(v, "share=on"))
				return qu_fail(u, -EMEDIUMTYPE,
					       "the old QEMU's \"-object %.80s\": RAM must be "
					       "memory-backend-memfd with share=on",
					       v);
			memfd = true;
		}
		if ((strcmp(o, "-machine") == 0 || strcmp(o, "-M") == 0) &&
		    has_word(v, "aux-ram-share=on"))
			aux = true;
	}
	if (!memfd)
		return qu_fail(u, -EMEDIUMTYPE,
			       "the old QEMU has no -object memory-backend-memfd,"
			       "share=on (named by -machine memory-backend=)");
	if (!aux)
		return qu_fail(u, -EMEDIUMTYPE, "the old QEMU's -machine lacks aux-ram-share=on");
	return 0;
}

/* Options dropped from the old command line, each with its argument. */
static bool dropped(const struct qu *u, const char *o)
{
	static const char *const always[] = { "-qmp", "-qmp-pretty", "-incoming", "-pidfile" };

	if (o[0] == '-' && o[1] == '-')
		o++;
	for (size_t i = 0; i < ARRAY_SIZE(always); i++)
		if (strcmp(o, always[i]) == 0)
			return true;
	for (size_t i = 0; i < u->a.n_drop; i++)
		if (strcmp(o, u->a.drop[i]) == 0)
			return true;
	return false;
}

static char *path_in(const struct qu *u, const char *file)
{
	char *s = NULL;

	return asprintf(&s, "%s/%s", u->dir, file) < 0 ? NULL : s;
}

static char *incoming_json(const char *type, const char *path)
{
	char *s = NULL;

	return asprintf(&s,
			"{\"channel-type\":\"%s\",\"addr\":{\"transport\":\"socket\","
			"\"type\":\"unix\",\"path\":\"%s\"}}",
			type, path) < 0
		       ? NULL
		       : s;
}

/* The rules of cprctl(1), QEMU UPGRADE. */
static int derive_argv(struct qu *u)
{
	size_t n = 0, max = u->old_argc + u->a.n_add + 8;
	char **v = calloc(max + 1, sizeof(char *)), *cpr = path_in(u, "cpr-new.sock");
	char *main_ = path_in(u, "main.sock");

	if (!v || !cpr || !main_)
		return -ENOMEM;
	v[n++] = (char *)u->a.binary;
	for (size_t i = 1; i < u->old_argc; i++) {
		if (dropped(u, u->old_argv[i])) {
			i++; /* and its argument */
			continue;
		}
		if (strcmp(u->old_argv[i], "-daemonize") == 0)
			continue;
		v[n++] = u->old_argv[i];
	}
	v[n++] = (char *)"-qmp";
	if (asprintf(&v[n++], "unix:%s,server=on,wait=off", u->new_qmp) < 0)
		return -ENOMEM;
	v[n++] = (char *)"-incoming";
	v[n++] = incoming_json("cpr", cpr);
	v[n++] = (char *)"-incoming";
	if (asprintf(&v[n++], "unix:%s", main_) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < u->a.n_add; i++)
		v[n++] = (char *)u->a.add[i];
	free(cpr);
	free(main_);
	u->new_argv = v;
	u->new_argc = n;
	return 0;
}

static int spawn_new(struct qu *u)
{
	char *log = path_in(u, "new.log");
	pid_t pid;

	if (!log)
		return -ENOMEM;
	unlink(u->new_qmp);
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(u->new_argv[0], u->new_argv);
		dprintf(2, "cprctl: %s: %s\n", u->new_argv[0], strerror(errno));
		_exit(127);
	}
	free(log);
	if (pid < 0)
		return qu_fail(u, -errno, "fork: %s", strerror(errno));
	u->new_pid = pid;
	u->spawned = true;
	u->new_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (u->new_pidfd < 0)
		return qu_fail(u, -errno, "pidfd_open: %s", strerror(errno));
	return 0;
}

/* The new QEMU still runs (not reaped here yet). */
static bool new_alive(struct qu *u)
{
	int st;

	if (u->new_pid <= 0)
		return false;
	if (waitpid(u->new_pid, &st, WNOHANG) == u->new_pid) {
		u->new_pid = 0;
		if (WIFEXITED(st))
			qu_fail(u, -ECHILD, "the new QEMU exited with status %d (see %s/new.log)",
				WEXITSTATUS(st), u->dir);
		else
			qu_fail(u, -ECHILD, "the new QEMU was killed by signal %d", WTERMSIG(st));
		return false;
	}
	return true;
}

static int unix_socket(const char *path, bool listening, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return -errno;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = listening ? bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1)
		      : connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* The new QEMU's cpr socket, connected once it listens. */
static int connect_new_cpr(struct qu *u, int *ret_fd)
{
	char *path = path_in(u, "cpr-new.sock");
	uint64_t end = now_ms() + (uint64_t)u->a.timeout_ms;
	int r;

	if (!path)
		return -ENOMEM;
	while ((r = unix_socket(path, false, ret_fd)) == -ENOENT || r == -ECONNREFUSED) {
		if (!new_alive(u) || now_ms() > end)
			break;
		qu_sleep();
	}
	free(path);
	if (r < 0 && !u->why[0])
		qu_fail(u, r, "the new QEMU's cpr socket: %s", strerror(-r));
	return r;
}

/* --direct: the new QEMU's cpr socket exists (it listens: QEMU binds then listens). */
static int wait_new_cpr(struct qu *u)
{
	char *path = path_in(u, "cpr-new.sock");
	uint64_t end = now_ms() + (uint64_t)u->a.timeout_ms;
	int r = 0;

	if (!path)
		return -ENOMEM;
	while (access(path, F_OK) < 0) {
		if (!new_alive(u) || now_ms() > end) {
			r = u->why[0] ? -ECHILD
				      : qu_fail(u, -ETIMEDOUT, "no cpr socket from the new QEMU");
			break;
		}
		qu_sleep();
	}
	qu_sleep(); /* bound, listening next */
	free(path);
	return r;
}

/* qemu-listen with the new QEMU as the target: the reply comes when delivered. */
static int cprd_listen(struct qu *u)
{
	_cleanup_close_ int lsock = -EBADF, conn = -EBADF;
	char *path = path_in(u, "cprd-cpr.sock");
	struct json_object *req;
	int r, fds[3];

	if (!path)
		return -ENOMEM;
	r = unix_socket(path, true, &lsock);
	free(path);
	if (r < 0)
		return qu_fail(u, r, "cannot listen for the old QEMU: %s", strerror(-r));
	r = connect_new_cpr(u, &conn);
	if (r < 0)
		return r;
	r = cprd_connect(u->a.socket, &u->cprd);
	if (r < 0)
		return qu_fail(u, r, "cannot reach cprd: %s", strerror(-r));
	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("qemu-listen"));
	json_object_object_add(req, "name", json_object_new_string(u->name));
	fds[0] = lsock, fds[1] = conn, fds[2] = u->new_pidfd;
	r = cprd_send(u->cprd, req, fds, 3);
	json_object_put(req);
	return r < 0 ? qu_fail(u, r, "qemu-listen: %s", strerror(-r)) : 0;
}

static struct json_object *channel(const char *type, const char *path)
{
	char *s = incoming_json(type, path);
	struct json_object *o = s ? json_tokener_parse(s) : NULL;

	free(s);
	return o;
}

static int migrate(struct qu *u)
{
	struct json_object *p = json_object_new_object(), *a = json_object_new_object();
	struct json_object *ch = json_object_new_array();
	char *main_ = path_in(u, "main.sock");
	char *cpr = path_in(u, u->a.direct ? "cpr-new.sock" : "cprd-cpr.sock");
	int r;

	json_object_object_add(p, "mode", json_object_new_string("cpr-transfer"));
	r = qmp_call(&u->old, "migrate-set-parameters", p, NULL);
	json_object_array_add(ch, channel("main", main_));
	json_object_array_add(ch, channel("cpr", cpr));
	json_object_object_add(a, "channels", ch);
	free(main_);
	free(cpr);
	if (r == 0)
		r = qmp_call(&u->old, "migrate", a, NULL);
	else
		json_object_put(a);
	if (r < 0)
		return qu_fail(u, r, "old QEMU: %s", u->old.err);
	u->migrating = true;
	return 0;
}

static int wait_delivered(struct qu *u)
{
	size_t n_fds = 0;
	int r = cprd_recv(u->cprd, u->a.timeout_ms, &u->delivered, NULL, 0, &n_fds);
	struct json_object *ok;

	if (r < 0)
		return qu_fail(u, r, "no reply from cprd: %s", strerror(-r));
	if (!json_object_object_get_ex(u->delivered, "ok", &ok) || !json_object_get_boolean(ok))
		return qu_fail(u, -ECANCELED, "cprd: %s", cprd_reply_message(u->delivered));
	u->t_delivered = now_ms();
	return 0;
}

static int wait_running(struct qu *u)
{
	uint64_t end = now_ms() + (uint64_t)u->a.timeout_ms;
	char st[64] = "";
	int r = qmp_open(&u->new, u->new_qmp, u->a.timeout_ms);

	if (r < 0)
		return qu_fail(u, r, "new QEMU's QMP: %s", u->new.err);
	while ((r = qmp_status(&u->new, st, sizeof(st))) == 0 && strcmp(st, "running") != 0) {
		if (now_ms() > end)
			return qu_fail(u, -ETIMEDOUT,
				       "the new QEMU is %s, not running, after %d ms", st,
				       u->a.timeout_ms);
		qu_sleep();
	}
	if (r < 0)
		return qu_fail(u, r, "new QEMU: %s", u->new.err);
	u->t_running = now_ms();
	return 0;
}

/* The old QEMU's migration ended ("completed"), or -ECANCELED. */
static int wait_old_done(struct qu *u, struct json_object **ret_info)
{
	uint64_t end = now_ms() + (uint64_t)u->a.timeout_ms;

	for (;;) {
		struct json_object *info = NULL, *v;
		const char *s;
		int r = qmp_call(&u->old, "query-migrate", NULL, &info);

		if (r < 0)
			return qu_fail(u, r, "old QEMU: %s", u->old.err);
		s = json_object_object_get_ex(info, "status", &v) ? json_object_get_string(v) : "";
		if (strcmp(s, "completed") == 0) {
			*ret_info = info;
			return 0;
		}
		json_object_put(info);
		if (strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0 || now_ms() > end)
			return qu_fail(u, -ECANCELED, "the old QEMU's migration is %s", s);
		qu_sleep();
	}
}

/* Kill the new QEMU; the old one runs the guest again.  0 if it does. */
static int rollback(struct qu *u)
{
	char st[64] = "";
	uint64_t end = now_ms() + (uint64_t)u->a.timeout_ms;

	if (u->new_pid > 0) {
		kill(u->new_pid, SIGKILL);
		waitpid(u->new_pid, NULL, 0);
		u->new_pid = 0;
	}
	qmp_close(&u->new);
	if (u->cprd >= 0)
		u->cprd = cpr_close(u->cprd); /* cprd releases what it holds */
	if (u->migrating) /* QEMU's own failure path: no main channel, it resumes */
		qmp_call(&u->old, "migrate_cancel", NULL, NULL);
	while (qmp_status(&u->old, st, sizeof(st)) == 0 && strcmp(st, "running") != 0) {
		if (strcmp(st, "postmigrate") == 0 || strcmp(st, "paused") == 0)
			qmp_call(&u->old, "cont", NULL, NULL);
		if (now_ms() > end)
			break;
		qu_sleep();
	}
	return strcmp(st, "running") == 0 ? 0 : -ESRCH;
}

static int run(struct qu *u)
{
	struct json_object *info = NULL;
	int r = qmp_open(&u->old, u->a.qmp, 5000);

	if (r < 0)
		return qu_fail(u, r, "old QEMU's QMP: %s", u->old.err);
	u->t0 = now_ms();
	r = read_cmdline(u->old.pid, &u->old_argv, &u->old_argc);
	if (r < 0)
		return qu_fail(u, r, "/proc/%d/cmdline: %s", (int)u->old.pid, strerror(-r));
	if ((r = check_old(u)) < 0 || (r = derive_argv(u)) < 0)
		return r;
	if (!u->name[0])
		snprintf(u->name, sizeof(u->name), "qemu-%d", (int)u->old.pid);
	if ((r = spawn_new(u)) < 0)
		return r;
	if (u->a.direct) /* QEMU's own cpr-transfer, no cprd: for comparison */
		r = wait_new_cpr(u);
	else
		r = cprd_listen(u);
	if (r < 0 || (r = migrate(u)) < 0 || (!u->a.direct && (r = wait_delivered(u)) < 0) ||
	    (r = wait_running(u)) < 0 || (r = wait_old_done(u, &info)) < 0)
		return r;
	if (!u->delivered)
		u->delivered = json_object_new_object();
	json_object_object_add(u->delivered, "migration", info);
	return 0;
}

static int parse_args(int argc, char *argv[], struct qu_args *a)
{
	static const struct option opts[] = {
		{ "qmp", required_argument, NULL, 'q' },
		{ "binary", required_argument, NULL, 'b' },
		{ "new-qmp", required_argument, NULL, 'n' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "socket", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'N' },
		{ "add", required_argument, NULL, 'a' },
		{ "drop", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' },
		{ "keep-old", no_argument, NULL, 'k' },
		{ "direct", no_argument, NULL, 'D' },
		{ "json", no_argument, NULL, CPRCTL_OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	int c;

	*a = (struct qu_args){ .timeout_ms = 60000 };
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			a->qmp = optarg;
			break;
		case 'b':
			a->binary = optarg;
			break;
		case 'n':
			a->new_qmp = optarg;
			break;
		case 'w':
			a->workdir = optarg;
			break;
		case 's':
			a->socket = optarg;
			break;
		case 'N':
			a->name = optarg;
			break;
		case 'D':
			a->direct = true;
			break;
		case 'k':
			a->keep_old = true;
			break;
		case CPRCTL_OPT_JSON:
			cprctl_opts.json = true;
			break;
		case 'a':
			if (a->n_add == ARRAY_SIZE(a->add))
				return cprctl_usage_error("qemu upgrade: too many --add");
			a->add[a->n_add++] = optarg;
			break;
		case 'd':
			if (a->n_drop == ARRAY_SIZE(a->drop) || optarg[0] != '-')
				return cprctl_usage_error(
					"qemu upgrade: --drop -OPTION (at most 64)");
			a->drop[a->n_drop++] = optarg;
			break;
		case 't':
			errno = 0;
			a->timeout_ms = (int)strtol(optarg, &end, 10);
			if (errno || *end || a->timeout_ms <= 0 ||
			    a->timeout_ms > CPRCTL_TIMEOUT_MAX_MS)
				return cprctl_usage_error("qemu upgrade: --timeout %s: 1..%d ms",
							  optarg, CPRCTL_TIMEOUT_MAX_MS);
			break;
		case 'h':
			cprctl_print_usage(stdout, argv[0]);
			exit(0);
		default:
			return cprctl_usage_error("qemu: invalid option");
		}
	}
	if (argc - optind != 1 || strcmp(argv[optind], "upgrade") != 0)
		return cprctl_usage_error("qemu: the command is \"upgrade\"");
	if (!a->qmp || !a->binary)
		return cprctl_usage_error("qemu upgrade: --qmp and --binary are required");
	if (a->binary[0] != '/')
		return cprctl_usage_error("qemu upgrade: --binary must be an absolute path");
	return 0;
}

static int qu_setup(struct qu *u)
{
	if (u->a.workdir) {
		snprintf(u->dir, sizeof(u->dir), "%s", u->a.workdir);
		if (mkdir(u->dir, 0700) < 0 && errno != EEXIST)
			return qu_fail(u, -errno, "%s: %s", u->dir, strerror(errno));
	} else if (snprintf(u->dir, sizeof(u->dir), "%s/cprctl-qemu-XXXXXX",
			    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") < 0 ||
		   !mkdtemp(u->dir))
		return qu_fail(u, -errno, "cannot make a work directory: %s", strerror(errno));
	snprintf(u->new_qmp, sizeof(u->new_qmp), "%s", u->a.new_qmp ? u->a.new_qmp : "");
	if (!u->a.new_qmp)
		snprintf(u->new_qmp, sizeof(u->new_qmp), "%s/qmp.sock", u->dir);
	snprintf(u->name, sizeof(u->name), "%s", u->a.name ? u->a.name : "");
	return 0;
}

static void print_result(struct qu *u, int r, int status)
{
	struct json_object *o = json_object_new_object(), *t = NULL, *d = NULL;

	json_object_object_add(o, "ok", json_object_new_boolean(r == 0));
	json_object_object_add(o, "old_pid", json_object_new_int(u->old.pid));
	if (r == 0) {
		json_object_object_add(o, "new_pid", json_object_new_int(u->new_pid));
		json_object_object_add(o, "new_qmp", json_object_new_string(u->new_qmp));
		json_object_object_add(o, "total_ms",
				       json_object_new_int64((int64_t)(u->t_running - u->t0)));
		if (json_object_object_get_ex(u->delivered, "timings", &t))
			json_object_object_add(o, "cprd", json_object_get(t));
		if (json_object_object_get_ex(u->delivered, "migration", &t) &&
		    json_object_object_get_ex(t, "downtime", &d))
			json_object_object_add(o, "downtime_ms", json_object_get(d));
	} else {
		json_object_object_add(o, "error", json_object_new_string(u->why));
		json_object_object_add(o, "rolled_back",
				       json_object_new_boolean(status == CPRCTL_EXIT_FAILED));
		json_object_object_add(o, "guest_on_old",
				       json_object_new_boolean(status != QU_EXIT_LOST));
	}
	json_object_object_add(o, "workdir", json_object_new_string(u->dir));
	if (cprctl_opts.json)
		cprctl_print_json(o);
	else if (r == 0)
		printf("upgraded: QEMU pid %d -> pid %d in %lld ms (downtime %s ms); its QMP: %s\n",
		       (int)u->old.pid, (int)u->new_pid, (long long)(u->t_running - u->t0),
		       d ? json_object_get_string(d) : "?", u->new_qmp);
	json_object_put(o);
	if (r < 0)
		cprctl_warnx("qemu upgrade: %s; %s", u->why,
			     status == CPRCTL_EXIT_FAILED
				     ? "rolled back: the old QEMU runs the guest"
				     : "the old QEMU does not run the guest");
}

int cprctl_qemu_main(int argc, char *argv[])
{
	struct qu u = { .new_pidfd = -EBADF, .cprd = -EBADF, .old.fd = -1, .new.fd = -1 };
	int r = parse_args(argc, argv, &u.a), status = CPRCTL_EXIT_OK;

	if (r)
		return r;
	r = qu_setup(&u);
	if (r == 0)
		r = run(&u);
	if (r < 0 && !u.spawned) /* nothing started, the old QEMU untouched */
		status = r == -EMEDIUMTYPE ? CPRCTL_EXIT_USAGE : CPRCTL_EXIT_TEMP;
	else if (r < 0)
		status = rollback(&u) == 0 ? CPRCTL_EXIT_FAILED : QU_EXIT_LOST;
	else if (!u.a.keep_old)
		qmp_call(&u.old, "quit", NULL, NULL);
	print_result(&u, r, status);
	if (r == 0)
		u.new_pid = 0; /* it runs on, unreaped */
	qmp_close(&u.old);
	qmp_close(&u.new);
	cpr_close(u.cprd);
	cpr_close(u.new_pidfd);
	json_object_put(u.delivered);
	if (u.old_argv)
		free(u.old_argv[0]);
	free(u.old_argv);
	return status;
}
