/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/upgrade: how long a VMM holding a populated RAM block is paused by an
 * upgrade, against floors measured in the same run.
 *
 *   handover_ms  "stop" -> the new image has adopted everything
 *   floor_ms     bare execve() of this binary with the same mapping populated
 *   copy_ms      write the RAM to a file in /dev/shm and read it back
 *
 * Modes: exec (cpr_exec() of this binary) and transfer (cpr_transfer_send()
 * to a fresh process of this binary, started and waiting before the stop;
 * handover ends when it has adopted the RAM block, as it measures it).
 *
 * Usage: upgrade [--quick] [--json] [--samples] [--sizes 1,4,8] [--no-huge|--huge-only]
 * As root, 2 MiB cases reserve huge pages through /proc/sys/vm/nr_hugepages
 * and put the old value back afterwards; without them they are skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cpr/cpr.h>

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define HUGE_2M (2ull << 20)
#define COPY_CHUNK GiB

struct bench_case {
	unsigned ram_gib;
	unsigned page_kib; /* 4 or 2048 */
	int reps;	   /* handovers and floors: hops from one populated RAM */
	int copy_reps;
};

struct result {
	const char *mode;
	unsigned ram_gib, page_kib;
	double handover_ms, floor_ms, copy_ms;
	bool skipped;
	char why[128];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static const char *self_exe(void)
{
	return "/proc/self/exe";
}

/* ---- the images ----
 *
 * Each mode's child populates the RAM once, then measures @reps times: the
 * exec images hop again and again, re-faulting the whole mapping (outside
 * the measured interval) before each hop, so every hop starts from a fully
 * populated address space.  Each sample goes to the parent as a uint64_t of
 * nanoseconds on an inherited pipe.
 */

static void report(int fd, uint64_t t0)
{
	uint64_t dt = now_ns() - t0;

	if (write(fd, &dt, sizeof(dt)) != sizeof(dt))
		_exit(3);
}

/* Fault every page in again, as a running guest would have. */
static int refault(void *p, uint64_t len)
{
	return madvise(p, len, MADV_POPULATE_WRITE);
}

static void exec_hop(struct cpr_ctx *ctx, int out, uint64_t len, int reps)
{
	struct cpr_error err = { 0 };
	char t0s[32], fds[16], lens[32], repss[16];
	char *av[] = { (char *)"upgrade", (char *)"--exec-target", t0s, fds, lens, repss, NULL };

	snprintf(fds, sizeof(fds), "%d", out);
	snprintf(lens, sizeof(lens), "%" PRIu64, len);
	snprintf(repss, sizeof(repss), "%d", reps);
	snprintf(t0s, sizeof(t0s), "%" PRIu64, now_ns()); /* stop */
	cpr_exec(ctx, self_exe(), av, NULL, &err);
	fprintf(stderr, "upgrade: cpr_exec: %s\n", err.message);
	_exit(7);
}

/* argv: --exec-target t0 fd bytes reps-left */
static int exec_target(char **argv)
{
	uint64_t t0 = strtoull(argv[2], NULL, 10), len = strtoull(argv[4], NULL, 10);
	int out = atoi(argv[3]), reps = atoi(argv[5]);
	struct cpr_error err = { 0 };
	struct cpr_ramblock *rb;
	struct cpr_ctx *ctx;

	if (cpr_ctx_new(&ctx) < 0 || cpr_exec_incoming(ctx, &err) != 1) {
		fprintf(stderr, "upgrade: incoming: %s\n", err.message);
		return 2;
	}
	if (cpr_ramblock_new(ctx, "pc.ram", len, 0, 0, CPR_RAMBLOCK_TAKE_RECORDED, &rb, NULL) < 0 ||
	    !cpr_ramblock_adopted(rb))
		return 2;
	report(out, t0); /* the new image has adopted everything */
	if (reps > 1) {
		if (refault(cpr_ramblock_host(rb), len) < 0)
			return 2;
		fcntl(out, F_SETFD, 0);
		exec_hop(ctx, out, len, reps - 1);
	}
	cpr_ramblock_free(rb);
	cpr_ctx_free(ctx);
	return 0;
}

static void floor_hop(int out, int memfd, uint64_t len, int reps)
{
	char t0s[32], fds[16], mfds[16], lens[32], repss[16];
	char *av[] = {
		(char *)"upgrade", (char *)"--floor-target", t0s, fds, mfds, lens, repss, NULL
	};
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

	if (p == MAP_FAILED || refault(p, len) < 0)
		_exit(5);
	snprintf(fds, sizeof(fds), "%d", out);
	snprintf(mfds, sizeof(mfds), "%d", memfd);
	snprintf(lens, sizeof(lens), "%" PRIu64, len);
	snprintf(repss, sizeof(repss), "%d", reps);
	snprintf(t0s, sizeof(t0s), "%" PRIu64, now_ns());
	execv(self_exe(), av);
	_exit(7);
}

/* argv: --floor-target t0 fd memfd bytes reps-left: main() is the end. */
static int floor_target(char **argv)
{
	int reps = atoi(argv[6]);

	report(atoi(argv[3]), strtoull(argv[2], NULL, 10));
	if (reps > 1)
		floor_hop(atoi(argv[3]), atoi(argv[4]), strtoull(argv[5], NULL, 10), reps - 1);
	return 0;
}

/* ---- the old images ---- */

static int raw_memfd(uint64_t len, bool huge)
{
	unsigned flags = huge ? MFD_HUGETLB | (21u << 26) : 0;
	int fd = memfd_create("bench", flags); /* inherited by the floor hops */

	if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
		return -1;
	return fd;
}

/* The old VMM: a context and its populated guest RAM on the case's pages. */
static void old_vmm_ram(const struct bench_case *c, struct cpr_ctx **ctx, struct cpr_ramblock **rb)
{
	uint64_t len = (uint64_t)c->ram_gib * GiB;
	unsigned flags = CPR_RAMBLOCK_POPULATE;

	if (c->page_kib == 2048)
		flags |= CPR_RAMBLOCK_HUGEPAGES;
	if (cpr_ctx_new(ctx) < 0 ||
	    cpr_ramblock_new(*ctx, "pc.ram", len, 0, 0, flags, rb, NULL) < 0)
		_exit(5);
	if (cpr_ramblock_page_size(*rb) != (uint64_t)c->page_kib * 1024)
		_exit(6);
}

static void exec_old(const struct bench_case *c, int out)
{
	struct cpr_ramblock *rb;
	struct cpr_ctx *ctx;

	old_vmm_ram(c, &ctx, &rb);
	fcntl(out, F_SETFD, 0);
	exec_hop(ctx, out, cpr_ramblock_used_length(rb), c->reps);
}

static void floor_old(const struct bench_case *c, int out)
{
	uint64_t len = (uint64_t)c->ram_gib * GiB;
	int fd = raw_memfd(len, c->page_kib == 2048);

	if (fd < 0)
		_exit(5);
	fcntl(out, F_SETFD, 0);
	floor_hop(out, fd, len, c->reps);
}

/* Write the RAM to /dev/shm and read it back, a chunk at a time so the
 * file never holds more than COPY_CHUNK beside the RAM. */
static void copy_once(uint8_t *p, uint64_t len, int f, int out)
{
	uint64_t t0 = now_ns();

	for (uint64_t off = 0; off < len; off += COPY_CHUNK) {
		uint64_t n = len - off < COPY_CHUNK ? len - off : COPY_CHUNK;

		for (uint64_t d = 0; d < n;) {
			ssize_t w = pwrite(f, p + off + d, n - d, (off_t)d);

			if (w <= 0)
				_exit(8);
			d += (uint64_t)w;
		}
		for (uint64_t d = 0; d < n;) {
			ssize_t r = pread(f, p + off + d, n - d, (off_t)d);

			if (r <= 0)
				_exit(8);
			d += (uint64_t)r;
		}
		if (ftruncate(f, 0) < 0)
			_exit(8);
	}
	report(out, t0);
}

static void copy_old(const struct bench_case *c, int out)
{
	uint64_t len = (uint64_t)c->ram_gib * GiB;
	int fd = raw_memfd(len, c->page_kib == 2048), f;
	char path[64];
	uint8_t *p;

	if (fd < 0)
		_exit(5);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED)
		_exit(5);
	snprintf(path, sizeof(path), "/dev/shm/cpr-bench-%d", (int)getpid());
	f = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f < 0)
		_exit(5);
	unlink(path);
	for (int i = 0; i < c->copy_reps; i++)
		copy_once(p, len, f, out);
	_exit(0);
}

static bool show_samples;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Fork a child that runs @fn; the median of the samples it reports. */
static double median_of(void (*fn)(const struct bench_case *, int), const struct bench_case *c)
{
	double v[16];
	uint64_t dt;
	int p[2], n = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[0]);
		fn(c, p[1]);
		_exit(4);
	}
	close(p[1]);
	while (n < 16 && read(p[0], &dt, sizeof(dt)) == sizeof(dt))
		v[n++] = (double)dt / 1e6;
	close(p[0]);
	waitpid(pid, NULL, 0);
	if (n == 0)
		return -1;
	if (show_samples)
		for (int i = 0; i < n; i++)
			fprintf(stderr, "sample %d: %.3f ms\n", i, v[i]);
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return v[n / 2];
}

static void run_exec(const struct bench_case *c, struct result *r)
{
	r->handover_ms = median_of(exec_old, c);
	r->floor_ms = median_of(floor_old, c);
	r->copy_ms = median_of(copy_old, c);
	if (r->handover_ms < 0 || r->floor_ms < 0 || r->copy_ms < 0) {
		r->skipped = true;
		snprintf(r->why, sizeof(r->why), "a run failed (memory?)");
	}
}

/* ---- transfer mode ---- */

/*
 * The new VMM, exec'd and waiting on the socket before the old one stops.
 * argv: --transfer-target sockfd resfd bytes.  It reports on @res: 'R' when
 * ready, then the CLOCK_MONOTONIC time at which it has adopted everything.
 */
static int transfer_target(char **argv)
{
	int sock = atoi(argv[2]), res = atoi(argv[3]);
	uint64_t len = strtoull(argv[4], NULL, 10), t1;
	struct cpr_error err = { 0 };
	struct cpr_ramblock *rb;
	struct cpr_ctx *ctx;

	fcntl(sock, F_SETFD, FD_CLOEXEC);
	fcntl(res, F_SETFD, FD_CLOEXEC);
	if (cpr_ctx_new(&ctx) < 0 || write(res, "R", 1) != 1)
		return 2;
	if (cpr_transfer_recv(ctx, sock, &err) < 0) {
		fprintf(stderr, "upgrade: transfer: %s\n", err.message);
		return 2;
	}
	if (cpr_ramblock_new(ctx, "pc.ram", len, 0, 0, CPR_RAMBLOCK_TAKE_RECORDED, &rb, NULL) < 0 ||
	    !cpr_ramblock_adopted(rb))
		return 2;
	t1 = now_ns(); /* adopted: the guest could run here */
	if (((uint8_t *)cpr_ramblock_host(rb))[0] != 0x42)
		return 2;
	if (write(res, &t1, sizeof(t1)) != sizeof(t1) || cpr_transfer_ack(ctx, sock, NULL) < 0)
		return 2;
	cpr_ramblock_free(rb);
	cpr_ctx_free(ctx);
	return 0;
}

/* Start the new VMM; returns its pid, with our ends of the socket and the
 * report pipe, once it is ready. */
static pid_t transfer_spawn(uint64_t len, int *ret_sock, int *ret_res)
{
	int sv[2], res[2];
	char b, sfd[16], rfd[16], lens[32];
	char *av[] = { (char *)"upgrade", (char *)"--transfer-target", sfd, rfd, lens, NULL };
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(res, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		fcntl(sv[1], F_SETFD, 0);
		fcntl(res[1], F_SETFD, 0);
		snprintf(sfd, sizeof(sfd), "%d", sv[1]);
		snprintf(rfd, sizeof(rfd), "%d", res[1]);
		snprintf(lens, sizeof(lens), "%" PRIu64, len);
		execv(self_exe(), av);
		_exit(7);
	}
	close(sv[1]);
	close(res[1]);
	if (pid < 0 || read(res[0], &b, 1) != 1)
		return -1;
	*ret_sock = sv[0];
	*ret_res = res[0];
	return pid;
}

/* One hand-over to a fresh receiver: stop -> adopted, as it measured it. */
static uint64_t transfer_once(struct cpr_ctx *ctx, uint64_t len)
{
	struct cpr_error err = { 0 };
	uint64_t t0, t1 = 0;
	int sock, res, status;
	pid_t pid;

	pid = transfer_spawn(len, &sock, &res);
	if (pid < 0)
		_exit(5);
	t0 = now_ns(); /* stop */
	if (cpr_transfer_send(ctx, sock, &err) < 0 ||
	    cpr_transfer_wait_ack(ctx, sock, 60000, &err) < 0) {
		fprintf(stderr, "upgrade: transfer: %s\n", err.message);
		_exit(7);
	}
	if (read(res, &t1, sizeof(t1)) != sizeof(t1) || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		_exit(8);
	close(sock);
	close(res);
	return t1 - t0;
}

/* The old VMM: RAM populated once, then @reps hand-overs, each to a new
 * receiver started and waiting before the stop.  The old VMM keeps its RAM
 * after each one, as it would after a refused transfer. */
static void transfer_old(const struct bench_case *c, int out)
{
	struct cpr_ramblock *rb;
	struct cpr_ctx *ctx;

	old_vmm_ram(c, &ctx, &rb);
	memset(cpr_ramblock_host(rb), 0x42, 4096);
	for (int i = 0; i < c->reps; i++) {
		uint64_t dt = transfer_once(ctx, cpr_ramblock_used_length(rb));

		if (write(out, &dt, sizeof(dt)) != sizeof(dt))
			_exit(3);
	}
	_exit(0);
}

static void run_transfer(const struct bench_case *c, struct result *r)
{
	/* Sub-millisecond and noisy: a median of at least five. */
	struct bench_case c5 = *c;

	if (c5.reps < 5)
		c5.reps = 5;
	r->handover_ms = median_of(transfer_old, &c5);
	r->floor_ms = median_of(floor_old, c);
	r->copy_ms = median_of(copy_old, c);
	if (r->handover_ms < 0 || r->floor_ms < 0 || r->copy_ms < 0) {
		r->skipped = true;
		snprintf(r->why, sizeof(r->why), "a run failed (memory?)");
	}
}

/* One function per mode. */
static const struct {
	const char *name;
	void (*run)(const struct bench_case *, struct result *);
} modes[] = {
	{ "exec", run_exec },
	{ "transfer", run_transfer },
};

/* ---- huge page reservation ---- */

static long read_long(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

static int write_long(const char *path, long v)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CLOEXEC), len;
	ssize_t n;

	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%ld\n", v);
	n = write(fd, buf, (size_t)len);
	close(fd);
	return n == len ? 0 : -EIO;
}

#define NR_HUGE "/proc/sys/vm/nr_hugepages"

/* Reserve @pages 2 MiB pages (plus slack); returns the old value or -errno. */
static long huge_reserve(long pages)
{
	long old = read_long(NR_HUGE);

	if (old < 0 || write_long(NR_HUGE, old + pages + 8) < 0)
		return -EPERM;
	if (read_long(NR_HUGE) < old + pages + 8) {
		write_long(NR_HUGE, old);
		return -ENOMEM;
	}
	return old;
}

/* ---- main ---- */

static void print_result(const struct result *r, bool json, bool first)
{
	if (json) {
		printf("%s\n  {\"mode\": \"%s\", \"ram_gib\": %u, \"page_kib\": %u, ",
		       first ? "" : ",", r->mode, r->ram_gib, r->page_kib);
		if (r->skipped)
			printf("\"skipped\": \"%s\"}", r->why);
		else
			printf("\"handover_ms\": %.3f, \"floor_ms\": %.3f, \"copy_ms\": %.1f, "
			       "\"handover_vs_floor\": %.3f, \"copy_vs_handover\": %.0f}",
			       r->handover_ms, r->floor_ms, r->copy_ms,
			       r->handover_ms / r->floor_ms, r->copy_ms / r->handover_ms);
		return;
	}
	if (r->skipped) {
		printf("%-5s %3u GiB %5u KiB  skipped: %s\n", r->mode, r->ram_gib, r->page_kib,
		       r->why);
		return;
	}
	printf("%-5s %3u GiB %5u KiB  handover %8.3f ms  floor %8.3f ms  copy %9.1f ms  "
	       "handover/floor %.3f  copy/handover %.0fx\n",
	       r->mode, r->ram_gib, r->page_kib, r->handover_ms, r->floor_ms, r->copy_ms,
	       r->handover_ms / r->floor_ms, r->copy_ms / r->handover_ms);
	fflush(stdout);
}

static void run_case(const struct bench_case *c, bool json, bool *first)
{
	long old_huge = -1;

	if (c->page_kib == 2048) {
		old_huge = huge_reserve((long)(c->ram_gib * GiB / HUGE_2M));
		if (old_huge < 0) {
			for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
				struct result r = { .mode = modes[m].name,
						    .ram_gib = c->ram_gib,
						    .page_kib = c->page_kib,
						    .skipped = true };

				snprintf(r.why, sizeof(r.why), "cannot reserve 2 MiB pages: %s",
					 strerror((int)-old_huge));
				print_result(&r, json, *first);
				*first = false;
			}
			return;
		}
	}
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		struct result r = { .mode = modes[m].name,
				    .ram_gib = c->ram_gib,
				    .page_kib = c->page_kib };

		modes[m].run(c, &r);
		print_result(&r, json, *first);
		*first = false;
	}
	if (old_huge >= 0)
		write_long(NR_HUGE, old_huge);
}

static int usage(void)
{
	fprintf(stderr, "usage: upgrade [--quick] [--json] [--samples] [--no-huge|--huge-only] "
			"[--sizes 1,4,8]\n");
	return 100;
}

int main(int argc, char **argv)
{
	unsigned sizes[8] = { 1, 4, 8 }, n_sizes = 3;
	bool json = false, huge = true, small = true, first = true;

	if (argc == 6 && strcmp(argv[1], "--exec-target") == 0)
		return exec_target(argv);
	if (argc == 5 && strcmp(argv[1], "--transfer-target") == 0)
		return transfer_target(argv);
	if (argc == 7 && strcmp(argv[1], "--floor-target") == 0)
		return floor_target(argv);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			n_sizes = 1;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--no-huge") == 0) {
			huge = false;
		} else if (strcmp(argv[i], "--samples") == 0) {
			show_samples = true;
		} else if (strcmp(argv[i], "--huge-only") == 0) {
			small = false;
		} else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
			char *s = argv[++i], *end;

			for (n_sizes = 0; *s && n_sizes < 8; s = *end ? end + 1 : end) {
				sizes[n_sizes++] = (unsigned)strtoul(s, &end, 10);
				if (end == s || sizes[n_sizes - 1] == 0)
					return usage();
			}
		} else {
			return usage();
		}
	}
	if (json)
		printf("[");
	/* Smallest first, page sizes side by side; the largest case runs once, last. */
	for (unsigned i = 0; i < n_sizes; i++) {
		struct bench_case c4 = { sizes[i], 4, 5, sizes[i] >= 4 ? 1 : 3 };
		struct bench_case c2 = { sizes[i], 2048, 5, sizes[i] >= 4 ? 1 : 3 };

		if (small)
			run_case(&c4, json, &first);
		if (huge)
			run_case(&c2, json, &first);
	}
	if (json)
		printf("\n]\n");
	return 0;
}
