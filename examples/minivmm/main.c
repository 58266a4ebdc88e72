/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* minivmm: options, start-up (fresh or incoming), signals, timers, the loop. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <syslog.h>
#include <unistd.h>

#include "vmm.h"

#define DEFAULT_RAM (1ull << 30)
#define DEFAULT_VCPUS 2u
#define MINIVMM_VERSION 0x000100u

const char *mode_name(enum upgrade_mode m)
{
	switch (m) {
	case UPGRADE_EXEC:
		return "exec";
	case UPGRADE_TRANSFER:
		return "transfer";
	case UPGRADE_CPRD:
		return "cprd";
	case UPGRADE_KEXEC:
		return "kexec";
	}
	return "?";
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: minivmm [OPTIONS]\n"
		"       minivmm --control PATH --send COMMAND\n"
		"Run a small guest (under KVM, or in a built-in interpreter without it) whose VMM\n"
		"upgrades itself in place.\n\n"
		"  --ram SIZE            guest RAM (K, M, G suffixes; default 1G)\n"
		"  --vcpus N             vCPUs (default 2, at most %u)\n"
		"  --hugepages           2 MiB pages for guest RAM where reserved\n"
		"  --no-kvm              run the guest in the built-in interpreter\n"
		"  --control PATH        control socket (status, upgrade, quit)\n"
		"  --mode MODE           upgrade mode for SIGUSR1: exec, transfer, cprd, kexec\n"
		"  --upgrade-every SEC   upgrade periodically, cycling through --modes\n"
		"  --modes LIST          comma-separated modes for --upgrade-every\n"
		"  --upgrades N          stop upgrading after N upgrades\n"
		"  --exit-after SEC      exit SEC seconds after the last upgrade\n"
		"  --upgrade-to PATH     binary of the next image (default: this one)\n"
		"  --target-level N      libcpr state level to write\n"
		"  --block MODES         refuse these modes (a libcpr blocker)\n"
		"  --run-dir DIR         where transfer sockets live (default /tmp)\n"
		"%s"
		"  --vfio-cdev PATH      own a passthrough device: VFIO cdev bound to iommufd\n"
		"  --vfio-group N        own a passthrough device: VFIO group N, type1 container\n"
		"  --kexec-bundle NAME   the kexec mode's bundle in cprd (default minivmm-kexec)\n"
		"  --kexec-append ARGS   the next kernel's command line, checked by the kexec "
		"mode\n"
		"  --incoming-kexec NAME resume the guest of bundle NAME (after the kexec)\n"
		"  --no-verify-ram       skip the whole-RAM pattern check\n"
		"  --no-rt               no SCHED_FIFO for the threads of the pause\n"
		"  --boot-slot SIZE      memory slot an exec upgrade registers in the pause\n"
		"  --slot-delay MS       register the other slots MS ms after the resume\n"
		"  --quiet               print only errors\n"
		"  --send COMMAND        client: send COMMAND to --control, print the reply\n",
		VM_MAX_VCPUS,
		have_cprd_client
			? "  --cprd-socket PATH    cprd for the cprd mode (default $CPRD_SOCKET)\n"
			: "");
}

static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	case 't':
	case 'T':
		shift = 40;
		end++;
		break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	if (*end || v > (VM_RAM_MAX >> shift))
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

static int parse_mode_list(const char *s, enum upgrade_mode *modes, unsigned max, unsigned *ret_n)
{
	char buf[256], *save = NULL;
	unsigned n = 0;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == max)
			return -E2BIG;
		if (!strcmp(t, "exec"))
			modes[n++] = UPGRADE_EXEC;
		else if (!strcmp(t, "transfer"))
			modes[n++] = UPGRADE_TRANSFER;
		else if (!strcmp(t, "cprd"))
			modes[n++] = UPGRADE_CPRD;
		else if (!strcmp(t, "kexec"))
			modes[n++] = UPGRADE_KEXEC;
		else
			return -EINVAL;
	}
	if (n == 0)
		return -EINVAL;
	*ret_n = n;
	return 0;
}

static int parse_seconds(const char *s, double *ret)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !isfinite(v) || v < 0 || v > 86400.0 * 365)
		return -EINVAL;
	*ret = v;
	return 0;
}

enum {
	OPT_RAM = 256,
	OPT_VCPUS,
	OPT_HUGEPAGES,
	OPT_NO_KVM,
	OPT_CONTROL,
	OPT_MODE,
	OPT_EVERY,
	OPT_MODES,
	OPT_UPGRADES,
	OPT_EXIT_AFTER,
	OPT_UPGRADE_TO,
	OPT_LEVEL,
	OPT_BLOCK,
	OPT_RUN_DIR,
	OPT_NO_VERIFY,
	OPT_QUIET,
	OPT_SEND,
	OPT_INCOMING,
	OPT_HELP,
	OPT_CPRD,
	OPT_INCOMING_CPRD,
	OPT_NO_RT,
	OPT_BOOT_SLOT,
	OPT_SLOT_DELAY,
	OPT_VFIO_CDEV,
	OPT_VFIO_GROUP,
	OPT_INCOMING_KEXEC,
	OPT_KEXEC_BUNDLE,
	OPT_KEXEC_APPEND,
};

static const struct option long_options[] = {
	{ "ram", required_argument, NULL, OPT_RAM },
	{ "vcpus", required_argument, NULL, OPT_VCPUS },
	{ "hugepages", no_argument, NULL, OPT_HUGEPAGES },
	{ "no-kvm", no_argument, NULL, OPT_NO_KVM },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "upgrade-every", required_argument, NULL, OPT_EVERY },
	{ "modes", required_argument, NULL, OPT_MODES },
	{ "upgrades", required_argument, NULL, OPT_UPGRADES },
	{ "exit-after", required_argument, NULL, OPT_EXIT_AFTER },
	{ "upgrade-to", required_argument, NULL, OPT_UPGRADE_TO },
	{ "target-level", required_argument, NULL, OPT_LEVEL },
	{ "block", required_argument, NULL, OPT_BLOCK },
	{ "run-dir", required_argument, NULL, OPT_RUN_DIR },
	{ "no-verify-ram", no_argument, NULL, OPT_NO_VERIFY },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "send", required_argument, NULL, OPT_SEND },
	{ "incoming-transfer", required_argument, NULL, OPT_INCOMING },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "cprd-socket", required_argument, NULL, OPT_CPRD },
	{ "incoming-cprd", required_argument, NULL, OPT_INCOMING_CPRD },
	{ "no-rt", no_argument, NULL, OPT_NO_RT },
	{ "boot-slot", required_argument, NULL, OPT_BOOT_SLOT },
	{ "slot-delay", required_argument, NULL, OPT_SLOT_DELAY },
	{ "vfio-cdev", required_argument, NULL, OPT_VFIO_CDEV },
	{ "vfio-group", required_argument, NULL, OPT_VFIO_GROUP },
	{ "incoming-kexec", required_argument, NULL, OPT_INCOMING_KEXEC },
	{ "kexec-bundle", required_argument, NULL, OPT_KEXEC_BUNDLE },
	{ "kexec-append", required_argument, NULL, OPT_KEXEC_APPEND },
	{ 0 },
};

static int parse_uint(const char *s, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static int parse_one(struct options *o, int c, const char *arg, const char **send)
{
	enum upgrade_mode block[MAX_CYCLE];
	unsigned n;

	switch (c) {
	case OPT_RAM:
		return parse_size(arg, &o->ram_size);
	case OPT_VCPUS:
		return parse_uint(arg, VM_MAX_VCPUS, &o->n_vcpus) < 0 || !o->n_vcpus ? -EINVAL : 0;
	case OPT_HUGEPAGES:
		o->hugepages = true;
		return 0;
	case OPT_NO_KVM:
		o->no_kvm = true;
		return 0;
	case OPT_CONTROL:
		o->control_path = arg;
		return 0;
	case OPT_MODE:
		return parse_mode_list(arg, &o->mode, 1, &n);
	case OPT_EVERY:
		return parse_seconds(arg, &o->upgrade_every);
	case OPT_MODES:
		return parse_mode_list(arg, o->cycle, MAX_CYCLE, &o->n_cycle);
	case OPT_UPGRADES:
		return parse_uint(arg, 1000000, &o->max_upgrades);
	case OPT_EXIT_AFTER:
		return parse_seconds(arg, &o->exit_after);
	case OPT_UPGRADE_TO:
		o->upgrade_to = arg;
		return 0;
	case OPT_LEVEL:
		return parse_uint(arg, 255, &o->target_level);
	case OPT_BLOCK:
		if (parse_mode_list(arg, block, MAX_CYCLE, &n) < 0)
			return -EINVAL;
		for (unsigned i = 0; i < n; i++)
			o->block_modes |=
				block[i] == UPGRADE_EXEC ? CPR_MODE_EXEC : CPR_MODE_TRANSFER;
		return 0;
	case OPT_RUN_DIR:
		o->run_dir = arg;
		return 0;
	case OPT_NO_VERIFY:
		o->verify_ram = false;
		return 0;
	case OPT_NO_RT:
		o->rt = false;
		return 0;
	case OPT_BOOT_SLOT:
		if (parse_size(arg, &o->boot_slot) < 0 || o->boot_slot % 4096 ||
		    o->boot_slot < GUEST_SLOTS)
			return -EINVAL;
		return 0;
	case OPT_SLOT_DELAY:
		return parse_uint(arg, 10000, &o->slot_delay_ms);
	case OPT_QUIET:
		o->quiet = true;
		return 0;
	case OPT_SEND:
		*send = arg;
		return 0;
	case OPT_INCOMING:
		o->incoming_transfer = arg;
		return 0;
	case OPT_CPRD:
		o->cprd_socket = arg;
		return 0;
	case OPT_INCOMING_CPRD:
		o->incoming_cprd = arg;
		return 0;
	case OPT_VFIO_CDEV:
		o->vfio_cdev = arg;
		return o->vfio_group ? -EINVAL : 0;
	case OPT_VFIO_GROUP:
		o->vfio_group = arg;
		return o->vfio_cdev || strchr(arg, '/') || !*arg ? -EINVAL : 0;
	case OPT_INCOMING_KEXEC:
		o->incoming_kexec = arg;
		return 0;
	case OPT_KEXEC_BUNDLE:
		o->kexec_bundle = arg;
		return 0;
	case OPT_KEXEC_APPEND:
		o->kexec_append = arg;
		return 0;
	default:
		return -EINVAL;
	}
}

/* Returns 0, or an exit status to leave with (client mode, usage). */
static int parse_options(struct vmm *m, int argc, char **argv, int *ret_exit)
{
	struct options *o = &m->opt;
	const char *send = NULL;
	int c;

	*o = (struct options){
		.ram_size = DEFAULT_RAM,
		.n_vcpus = DEFAULT_VCPUS,
		.verify_ram = true,
		.rt = true,
		.mode = UPGRADE_EXEC,
		.exit_after = -1,
		.run_dir = "/tmp",
		.kexec_bundle = "minivmm-kexec",
	};
	while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		if (c == 'h' || c == OPT_HELP) {
			usage(stdout);
			*ret_exit = 0;
			return 1;
		}
		if (parse_one(o, c, optarg, &send) < 0) {
			if (c != '?')
				fprintf(stderr, "minivmm: invalid argument for --%s: '%s'\n",
					long_options[c - OPT_RAM].name, optarg);
			usage(stderr);
			*ret_exit = EXIT_USAGE;
			return 1;
		}
	}
	if (optind < argc || (send && !o->control_path)) {
		usage(stderr);
		*ret_exit = EXIT_USAGE;
		return 1;
	}
	if (send) {
		*ret_exit = control_client(o->control_path, send);
		return 1;
	}
	if (o->ram_size < VM_RAM_MIN) {
		fprintf(stderr, "minivmm: --ram must be at least %llu MiB\n", VM_RAM_MIN >> 20);
		*ret_exit = EXIT_USAGE;
		return 1;
	}
	if ((o->vfio_cdev || o->vfio_group) && o->ram_size > VFIO_RAM_MAX) {
		fprintf(stderr, "minivmm: with a passthrough device, --ram is at most %llu MiB\n",
			VFIO_RAM_MAX >> 20);
		*ret_exit = EXIT_USAGE;
		return 1;
	}
	if (o->n_cycle == 0) {
		o->cycle[0] = o->mode;
		o->n_cycle = 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- running */

static void __attribute__((format(printf, 3, 0)))
log_stderr(void *userdata, int priority, const char *fmt, va_list ap)
{
	(void)userdata;
	if (priority > LOG_WARNING)
		return;
	fprintf(stderr, "minivmm: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
}

/* Next timer: a scheduled upgrade, else the exit (--exit-after), else none. */
static void timer_arm(struct vmm *m)
{
	struct itimerspec its = { 0 };
	unsigned done = m->rec.upgrades + m->refused;
	bool more = m->opt.max_upgrades == 0 || done < m->opt.max_upgrades;
	double s;

	m->timer_exit = !(m->opt.upgrade_every > 0 && more);
	s = m->timer_exit ? m->opt.exit_after : m->opt.upgrade_every;
	if (s < 0)
		return;
	its.it_value.tv_sec = (time_t)s;
	its.it_value.tv_nsec = (long)((s - (double)(time_t)s) * 1e9);
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;
	timerfd_settime(m->timer_fd, 0, &its, NULL);
}

void vmm_upgrade(struct vmm *m, enum upgrade_mode mode, const char *path)
{
	char why[1024], reply[1100];
	int r;

	if (!path)
		path = m->opt.upgrade_to ? m->opt.upgrade_to : m->self;
	r = upgrade_run(m, mode, path, why, sizeof(why));
	if (r == 1) {
		/* Handed off: the new image runs the guest and answers. */
		if (m->reply_fd >= 0)
			close(m->reply_fd);
		m->reply_fd = -1;
		fflush(stdout);
		exit(0);
	}
	if (!m->opt.quiet)
		printf("\nupgrade %u by %s REFUSED: %s\n  the guest keeps running in pid %d\n",
		       m->rec.upgrades + 1, mode_name(mode), why, (int)getpid());
	/* A scheduled run moves on to the next mode, and still ends. */
	m->refused++;
	snprintf(reply, sizeof(reply), "refused mode=%s pid=%d reason=%s", mode_name(mode),
		 (int)getpid(), why);
	control_reply(m->reply_fd, reply);
	timer_arm(m);
}

static int setup_signals(struct vmm *m, sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGUSR1);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, mask, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	m->signal_fd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
	m->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	return m->signal_fd < 0 || m->timer_fd < 0 ? -errno : 0;
}

static void on_signal(struct vmm *m)
{
	struct signalfd_siginfo si;

	while (read(m->signal_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			vmm_upgrade(m, m->opt.mode, NULL);
		else if (si.ssi_signo != SIGHUP)
			m->quit = true;
	}
}

static void on_timer(struct vmm *m)
{
	uint64_t n;

	if (read(m->timer_fd, &n, sizeof(n)) != sizeof(n))
		return;
	if (m->timer_exit)
		m->quit = true;
	else
		vmm_upgrade(m, m->opt.cycle[(m->rec.upgrades + m->refused) % m->opt.n_cycle], NULL);
}

static int loop(struct vmm *m)
{
	while (!m->quit) {
		struct pollfd p[3] = {
			{ .fd = m->signal_fd, .events = POLLIN },
			{ .fd = m->timer_fd, .events = POLLIN },
			{ .fd = m->control_fd, .events = POLLIN },
		};
		int n = poll(p, m->control_fd >= 0 ? 3 : 2, 250);

		if (n < 0 && errno != EINTR)
			return -errno;
		keeper_reap(m);
		if (m->vm.failed) {
			fprintf(stderr, "minivmm: the guest failed; stopping\n");
			return -EIO;
		}
		if (n <= 0)
			continue;
		if (p[0].revents)
			on_signal(m);
		if (p[1].revents)
			on_timer(m);
		if (m->control_fd >= 0 && p[2].revents)
			control_handle(m, m->control_fd);
	}
	return 0;
}

/* Start as a successor (exec or transfer) or boot a fresh guest. */
static int startup(struct vmm *m)
{
	struct cpr_error err = { 0 };
	int r;

	if (m->opt.incoming_transfer) {
		r = incoming_transfer(m, m->opt.incoming_transfer);
		return r < 0 ? r : 1;
	}
	if (m->opt.incoming_cprd) {
		r = incoming_cprd(m, m->opt.incoming_cprd);
		return r < 0 ? r : 1;
	}
	if (m->opt.incoming_kexec) {
		r = incoming_kexec(m, m->opt.incoming_kexec);
		return r < 0 ? r : 1;
	}
	r = cpr_exec_incoming(m->ctx, &err);
	if (r < 0) {
		fprintf(stderr, "minivmm: incoming exec state refused: %s\n",
			err.message[0] ? err.message : strerror(-r));
		return r;
	}
	if (r == 1 && !cpr_exec_rolled_back(m->ctx)) {
		/* For tests: a new image that refuses the state it adopted. */
		const char *e = getenv("MINIVMM_FAIL_AT");

		if (e && !strcmp(e, "exec")) {
			fprintf(stderr, "minivmm: MINIVMM_FAIL_AT=exec: giving the state back\n");
			r = cpr_exec_rollback(m->ctx, &err);
			fprintf(stderr, "minivmm: rollback: %s\n", err.message);
			return r;
		}
	}
	if (r == 1) {
		if (cpr_exec_rolled_back(m->ctx))
			fprintf(stderr, "minivmm: the upgrade was refused; running on again\n");
		r = incoming_exec(m);
		return r < 0 ? r : 1;
	}
	r = machine_boot(m);
	return r < 0 ? r : 0;
}

static int setup_control(struct vmm *m)
{
	int r;

	if (m->control_fd >= 0)
		return 0; /* adopted: already registered for the next hop */
	if (m->opt.control_path) {
		m->control_fd = control_listen(m->opt.control_path);
		if (m->control_fd < 0) {
			fprintf(stderr, "minivmm: control socket %s: %s\n", m->opt.control_path,
				strerror(-m->control_fd));
			return m->control_fd;
		}
	}
	if (m->control_fd < 0)
		return 0;
	r = cpr_fd_save(m->ctx, FD_CONTROL, 0, m->control_fd, CPR_FD_SOCKET, NULL);
	return r == -EEXIST ? 0 : r;
}

static int setup_blockers(struct vmm *m)
{
	if (!m->opt.block_modes)
		return 0;
	return cpr_blocker_add(m->ctx, m->opt.block_modes, "blocked by minivmm --block", NULL,
			       NULL);
}

static int run(struct vmm *m)
{
	sigset_t mask;
	int incoming, r;

	r = setup_signals(m, &mask);
	if (r < 0)
		return r;
	incoming = startup(m);
	if (incoming < 0)
		return incoming;
	r = setup_control(m);
	if (r >= 0)
		r = setup_blockers(m);
	if (r < 0)
		return r;
	/* An incoming image started the guest as early as it could. */
	r = incoming ? 0 : vm_start(&m->vm);
	if (r < 0)
		return r;
	m->t_resumed = now_ns();
	if (incoming) {
		char reply[1024];

		m->report.t_main = m->t_main;
		m->report.t_first_run = vm_first_start(&m->vm);
		m->report.t_last_run = vm_last_start(&m->vm);
		rec_history_add(&m->history, m->report.pause.mode,
				m->report.t_first_run - m->report.pause.t_stop);
		report_upgrade(m);
		report_reply(m, reply, sizeof(reply));
		control_reply(m->reply_fd, reply);
		if (m->reply_fd >= 0)
			close(m->reply_fd);
		m->reply_fd = -1;
	} else {
		report_boot(m);
	}
	timer_arm(m);
	r = loop(m);
	report_exit(m);
	return r;
}

int main(int argc, char **argv)
{
	struct vmm m = { .control_fd = -1,
			 .signal_fd = -1,
			 .timer_fd = -1,
			 .reply_fd = -1,
			 .pt = { .iommufd = -1, .container = -1, .group = -1, .devfd = -1 } };
	ssize_t n;
	int status, r;

	m.t_main = now_ns();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (parse_options(&m, argc, argv, &status))
		return status;
	m.argc = argc;
	m.argv = argv;
	/* Drop --incoming-*: they only apply to this start. */
	for (int i = 0; i + 1 < m.argc;) {
		if (strcmp(argv[i], "--incoming-transfer") && strcmp(argv[i], "--incoming-cprd") &&
		    strcmp(argv[i], "--incoming-kexec")) {
			i++;
			continue;
		}
		memmove(&argv[i], &argv[i + 2], (size_t)(m.argc - i - 1) * sizeof(char *));
		m.argc -= 2;
	}
	n = readlink("/proc/self/exe", m.self, sizeof(m.self) - 1);
	if (n < 0) {
		fprintf(stderr, "minivmm: /proc/self/exe: %s\n", strerror(errno));
		return EXIT_TEMP;
	}
	m.self[n] = '\0';
	r = cpr_ctx_new(&m.ctx);
	if (r >= 0) {
		cpr_ctx_set_log_fn(m.ctx, log_stderr, NULL);
		r = cpr_ctx_set_producer(m.ctx, "minivmm", MINIVMM_VERSION);
	}
	if (r < 0) {
		fprintf(stderr, "minivmm: libcpr: %s\n", strerror(-r));
		return EXIT_TEMP;
	}
	if (m.opt.target_level &&
	    (r = cpr_ctx_set_target_level(m.ctx, m.opt.target_level, NULL)) < 0) {
		fprintf(stderr,
			"minivmm: --target-level %u: %s (this libcpr writes levels %u to %u)\n",
			m.opt.target_level, strerror(-r), CPR_LEVEL_MIN, CPR_LEVEL_MAX);
		cpr_ctx_free(m.ctx);
		return EXIT_USAGE;
	}
	r = run(&m);
	/* Never tear down guest RAM at real-time priority (an exec'd image
	 * that failed early still has the boost it inherited). */
	pause_boost(&m, false);
	vm_destroy(&m.vm);
	cpr_ramblock_free(m.rb);
	cpr_ctx_free(m.ctx);
	vfio_close(&m.pt);
	return r < 0 ? EXIT_REFUSED : 0;
}
