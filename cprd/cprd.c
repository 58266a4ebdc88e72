/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprd: holds fd bundles for processes whose lifetimes do not overlap.
 *
 * Start-up order (cprd(8)): options and config file -> socket (from an
 * upgrade, socket activation or our own bind) -> rlimits -> bundles from an
 * upgrade or the fd store -> PR_SET_NO_NEW_PRIVS -> seccomp filter ->
 * READY=1 -> serve.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"

#define EXIT_USAGE 100
#define EXIT_TEMP 111
#define CPRD_SOCKET_DEFAULT RUNDIR "/cprd.sock"

struct cprd cprd = {
	.epoll_fd = -EBADF,
	.timer_fd = -EBADF,
	.signal_fd = -EBADF,
	.watchdog_fd = -EBADF,
	.next_id = 1,
};

static const char *arg_socket;
static const char *arg_group;
static unsigned arg_mode = 0660;
static const char *arg_config = SYSCONFDIR "/cprd.conf";
static bool arg_config_set;
static const char *arg_policy = POLICYDIR "/cprd.policy";
static bool arg_no_sandbox;
static bool arg_dump_filter;
static int arg_verbose;
static char *arg_limits[32];
static size_t n_arg_limits;

static struct cprd_src src_timer = { .tag = TAG_TIMER };
static struct cprd_src src_signal = { .tag = TAG_SIGNAL };
static struct cprd_src src_watchdog = { .tag = TAG_WATCHDOG };
static struct cprd_src src_sweep = { .tag = TAG_SWEEP };

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cprd [OPTIONS]\n"
		"Hold fd bundles for VMM hand-offs.  See cprd(8).\n\n"
		"  -s, --socket PATH       bind PATH (default " CPRD_SOCKET_DEFAULT
		" without socket activation)\n"
		"  -g, --group GROUP       group of the socket\n"
		"  -m, --mode MODE         mode of the socket (octal, default 0660)\n"
		"  -c, --config PATH       configuration file (default " SYSCONFDIR "/cprd.conf)\n"
		"  -p, --policy PATH       seccomp policy (default " POLICYDIR "/cprd.policy)\n"
		"      --no-sandbox        do not load the seccomp filter (debugging only)\n"
		"      --dump-filter       print the filter as libseccomp PFC and exit\n"
		"      --fdstore           park bundles in the service manager's fd store\n"
		"  -l, --limit KEY=VALUE   set a limit of cprd.conf(5), e.g. max-fds=4096\n"
		"  -v, --verbose           more messages (twice: debug)\n"
		"  -h, --help              this help\n"
		"      --version           print the version\n");
}

static int parse_mode(const char *s, unsigned *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno || !*s || *end || v > 0777)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

enum { OPT_NO_SANDBOX = 0x100, OPT_DUMP_FILTER, OPT_FDSTORE, OPT_VERSION };

static int parse_options(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "group", required_argument, NULL, 'g' },
		{ "mode", required_argument, NULL, 'm' },
		{ "config", required_argument, NULL, 'c' },
		{ "policy", required_argument, NULL, 'p' },
		{ "no-sandbox", no_argument, NULL, OPT_NO_SANDBOX },
		{ "dump-filter", no_argument, NULL, OPT_DUMP_FILTER },
		{ "fdstore", no_argument, NULL, OPT_FDSTORE },
		{ "limit", required_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:g:m:c:p:l:vh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			arg_socket = optarg;
			break;
		case 'g':
			arg_group = optarg;
			break;
		case 'm':
			if (parse_mode(optarg, &arg_mode) < 0)
				return -EINVAL;
			break;
		case 'c':
			arg_config = optarg;
			arg_config_set = true;
			break;
		case 'p':
			arg_policy = optarg;
			break;
		case 'v':
			arg_verbose++;
			break;
		case OPT_NO_SANDBOX:
			arg_no_sandbox = true;
			break;
		case OPT_DUMP_FILTER:
			arg_dump_filter = true;
			break;
		case OPT_FDSTORE:
			cprd.fdstore = true;
			break;
		case 'l':
			if (n_arg_limits == ARRAY_SIZE(arg_limits))
				return -E2BIG;
			arg_limits[n_arg_limits++] = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("cprd %s\n", PACKAGE_VERSION);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

/* --limit KEY=VALUE, applied over the config file. */
static int apply_limit_options(void)
{
	for (size_t i = 0; i < n_arg_limits; i++) {
		char key[64], *eq = strchr(arg_limits[i], '=');
		int r;

		if (!eq || (size_t)(eq - arg_limits[i]) >= sizeof(key)) {
			log_warnx("--limit %s: expected KEY=VALUE", log_quote(arg_limits[i]));
			return -EINVAL;
		}
		memcpy(key, arg_limits[i], (size_t)(eq - arg_limits[i]));
		key[eq - arg_limits[i]] = 0;
		r = conf_set_limit(&cprd.cfg.limits, key, eq + 1);
		if (r < 0) {
			log_errno(r == -ENOENT ? -EINVAL : r, "--limit %s: %s", log_quote(key),
				  r == -ENOENT ? "unknown limit" : "bad value");
			return r;
		}
	}
	return 0;
}

static int add_src(int fd, struct cprd_src *src, enum cprd_tag tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = src };

	src->tag = tag;
	src->fd = fd;
	return epoll_ctl(cprd.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int setup_loop(void)
{
	struct itimerspec sweep = { { 1, 0 }, { 1, 0 } };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	cprd.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	cprd.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	cprd.timer_fd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	/* CLOCK_BOOTTIME like every timer here: one clock for the policy to allow */
	cprd.watchdog_fd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	src_sweep.fd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	if (cprd.epoll_fd < 0 || cprd.signal_fd < 0 || cprd.timer_fd < 0 || cprd.watchdog_fd < 0 ||
	    src_sweep.fd < 0)
		return -errno;
	if (timerfd_settime(src_sweep.fd, 0, &sweep, NULL) < 0)
		return -errno;
	if (add_src(cprd.signal_fd, &src_signal, TAG_SIGNAL) < 0 ||
	    add_src(cprd.timer_fd, &src_timer, TAG_TIMER) < 0 ||
	    add_src(cprd.watchdog_fd, &src_watchdog, TAG_WATCHDOG) < 0 ||
	    add_src(src_sweep.fd, &src_sweep, TAG_SWEEP) < 0)
		return -errno;
	return 0;
}

/*
 * Socket activation: every passed fd is either a listening SOCK_SEQPACKET
 * UNIX socket (checked, not assumed) or a bundle piece from the fd store.
 */
static int setup_activation(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names), r = 0;
	_cleanup_free_ int *store_fds = NULL;
	_cleanup_free_ char **store_names = NULL;
	size_t n_store = 0;

	if (n <= 0)
		return n;
	store_fds = calloc((size_t)n, sizeof(int));
	store_names = calloc((size_t)n, sizeof(char *));
	if (!store_fds || !store_names)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;

		if (strncmp(names[i], "cprd-b", 6) == 0) {
			store_fds[n_store] = fd;
			store_names[n_store++] = names[i];
		} else if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) > 0) {
			if (fd_set_nonblock(fd) < 0 || control_add_listener(fd) < 0)
				r = -EINVAL;
		} else {
			char msg[300];

			log_warnx("passed fd %d (%s) is not a listening SOCK_SEQPACKET UNIX "
				  "socket, closed",
				  fd, log_quote(names[i]));
			close(fd);
			/* if it came from the fd store, it would come back every start */
			snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", names[i]);
			notify_send(msg);
		}
	}
	cprd.listen_store_fds = TAKE_PTR(store_fds);
	cprd.listen_store_names = TAKE_PTR(store_names);
	cprd.n_listen_store = n_store;
	cprd.listen_names = names;
	return r < 0 ? r : n;
}

static int setup_socket(void)
{
	int r = setup_activation(), fd;

	if (r < 0)
		return r;
	if (cprd.n_listen > 0 && !arg_socket) {
		log_info("listening on %zu socket(s) passed by the service manager", cprd.n_listen);
		return 0;
	}
	if (r > 0 && !arg_socket) {
		/* activated, but not on a usable socket: a unit file error */
		log_warnx("no listening SOCK_SEQPACKET socket among the passed fds");
		return -ENOTSOCK;
	}
	r = control_listen(arg_socket ? arg_socket : CPRD_SOCKET_DEFAULT, arg_group, arg_mode, &fd);
	if (r < 0) {
		log_errno(r, "cannot listen on %s", arg_socket ? arg_socket : CPRD_SOCKET_DEFAULT);
		return r;
	}
	return control_add_listener(fd);
}

static void handle_signal(void)
{
	struct signalfd_siginfo si;

	while (read(cprd.signal_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP ignored: restart cprd to read its configuration");
			continue;
		}
		log_info("signal %u: stopping", si.ssi_signo);
		cprd.quit = true;
	}
}

static void sweep_event(void)
{
	uint64_t ticks;

	if (read(src_sweep.fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("sweep timerfd");
	control_idle_sweep();
	if (cprd.status_dirty)
		notify_status();
}

static void dispatch(struct cprd_src *src, uint32_t events)
{
	switch (src->tag) {
	case TAG_LISTEN:
		control_accept(src->fd);
		break;
	case TAG_CONN:
		control_event(src->obj, events);
		break;
	case TAG_TIMER:
		store_timer_event();
		break;
	case TAG_SIGNAL:
		handle_signal();
		break;
	case TAG_WATCHDOG:
		notify_watchdog_event();
		break;
	case TAG_PIDFD:
		break; /* see dispatch_batch() */
	case TAG_SWEEP:
		sweep_event();
		break;
	case TAG_NOTIFY:
		notify_flush();
		break;
	case TAG_QEMU:
		qemu_peer_event(src, events);
		break;
	}
}

/*
 * Events that remove an object another event of the same batch may refer
 * to run last: owner exits are noted by bundle id before anything runs (a
 * request or an expiry may remove that bundle first), and the idle sweep,
 * which closes connections, runs after the connections' own events.
 */
static void dispatch_batch(struct epoll_event *evs, int n)
{
	uint64_t exited[64];
	size_t n_exited = 0;
	bool sweep = false;

	for (int i = 0; i < n; i++) {
		struct cprd_src *src = evs[i].data.ptr;

		if (src->tag == TAG_PIDFD)
			exited[n_exited++] = ((struct bundle *)src->obj)->id;
	}
	for (int i = 0; i < n; i++) {
		struct cprd_src *src = evs[i].data.ptr;

		if (src->tag == TAG_SWEEP)
			sweep = true;
		else
			dispatch(src, evs[i].events);
	}
	for (size_t i = 0; i < n_exited; i++) {
		struct bundle *b = store_find_id(exited[i]);

		if (b && b->tied)
			store_pidfd_event(b);
	}
	if (sweep)
		sweep_event();
}

static int run(void)
{
	struct epoll_event evs[64];

	while (!cprd.quit && !cprd.upgrade) {
		int n = epoll_wait(cprd.epoll_fd, evs, (int)ARRAY_SIZE(evs), -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_warn("epoll_wait");
			return -errno;
		}
		dispatch_batch(evs, n);
		control_debug_settle();
		if (cprd.status_dirty)
			notify_status();
	}
	return 0;
}

static void adopt_stored(void)
{
	int r;

	luo_setup(cprd.listen_store_fds, cprd.listen_store_names, &cprd.n_listen_store);
	if (cprd.n_listen_store == 0)
		return;
	r = fdstore_adopt(cprd.listen_store_fds, cprd.listen_store_names, cprd.n_listen_store);
	if (r >= 0)
		log_info("%d bundles re-adopted from the fd store", r);
	free(cprd.listen_store_fds);
	free(cprd.listen_store_names);
	cprd.listen_store_fds = NULL;
	cprd.listen_store_names = NULL;
	cprd.n_listen_store = 0;
	if (cprd.listen_names)
		for (char **p = cprd.listen_names; *p; p++)
			free(*p);
	free(cprd.listen_names);
	cprd.listen_names = NULL;
}

static int setup_config(void)
{
	conf_defaults(&cprd.cfg);
	if (conf_load(&cprd.cfg, arg_config, arg_config_set) < 0)
		return -EINVAL;
	return apply_limit_options();
}

static void shutdown_daemon(void)
{
	notify_stopping();
	notify_flush();
	notify_free();
	control_close_all();
	luo_close();
	qemu_peer_free_all();
	store_free_all();
	for (size_t i = 0; i < cprd.n_listen; i++)
		cpr_close(cprd.listen_fds[i]);
	cpr_close(src_sweep.fd);
	cpr_close(cprd.watchdog_fd);
	cpr_close(cprd.timer_fd);
	cpr_close(cprd.signal_fd);
	cpr_close(cprd.epoll_fd);
	free(cprd.self_exe);
}

/*
 * A hand-off allocates and frees the same few hundred kB each time (the
 * stream copy, its parse, the fd tables); keep up to this much free heap
 * instead of returning it to the kernel and faulting it in again.
 */
#define CPRD_HEAP_KEEP (1 << 20)

int main(int argc, char *argv[])
{
	int r;

	mallopt(M_TRIM_THRESHOLD, CPRD_HEAP_KEEP);
	mallopt(M_MMAP_THRESHOLD, CPRD_HEAP_KEEP);
	log_init("cprd", 0);
	if (parse_options(argc, argv) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	log_init("cprd", arg_verbose);
	if (arg_dump_filter)
		return sandbox_dump(arg_policy) < 0 ? EXIT_USAGE : 0;
	cprd.argv = argv;
	cprd.self_exe = realpath("/proc/self/exe", NULL); /* for upgrade: the path, now */
	cprd.started_ns = now_boottime_ns();
	if (setup_config() < 0)
		return EXIT_USAGE;
	if (setup_loop() < 0) {
		log_warn("cannot set up the event loop");
		return EXIT_TEMP;
	}
	notify_setup();
	r = upgrade_incoming();
	if (r < 0)
		return EXIT_TEMP;
	if (r == 0) {
		r = setup_socket();
		if (r < 0)
			return r == -ENOTSOCK ? EXIT_USAGE : EXIT_TEMP;
	}
	/* before any bundle is adopted: it may lower max-fds to what fits */
	if (sandbox_rlimits(&cprd.cfg.limits) < 0) {
		log_warn("cannot set resource limits");
		return EXIT_TEMP;
	}
	fdstore_setup();
	adopt_stored();
	if (arg_no_sandbox)
		log_warnx("running without the seccomp filter (--no-sandbox)");
	else if (sandbox_apply(arg_policy) < 0)
		return EXIT_USAGE;
	if (upgrade_take_over() < 0)
		return EXIT_TEMP;
	notify_ready();
	notify_watchdog_setup();
	upgrade_reply();
	log_info("ready: %u bundles, %u fds held", cprd.n_bundles, cprd.n_fds);
	for (;;) {
		r = run();
		if (!cprd.upgrade)
			break;
		/* returns only when the new image did not take over */
		upgrade_run();
		cprd.upgrade = false;
	}
	shutdown_daemon();
	return r < 0 ? EXIT_TEMP : 0;
}
