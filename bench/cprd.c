/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/cprd: what a bundle hand-off through cprd costs per fd, against the
 * floor measured in the same run, and against s6-fdholderd when installed.
 * Each side moves the same memfds, and every side's receiver closes what
 * it received:
 *
 *   raw    one hop: sendmsg() of the fds (chunks of 253) to another
 *          process, which receives and closes them and writes a one-byte
 *          ack; the sender waits for it.
 *   cprd   two hops (producer -> cprd -> consumer) plus the protocol, with
 *          the stream parsed and the kind of every fd checked at seal:
 *          "store" (create + put + seal in one request; up to 252 fds,
 *          else create, put in chunks of 253 and seal, pipelined), then
 *          "claim" with "ack": true (the daemon sends the stream and the
 *          fds; the consumer acks once it has every one, and the daemon
 *          forgets the bundle), each waiting for its reply
 *          (cprd_us_per_fd).  The producer's stream memfd is sealed, so
 *          the daemon keeps it rather than a copy (cprd-protocol(7)).
 *   leased the same store, then "claim" (token, lease) and a separate
 *          "ack": the consumer may still release for a rollback
 *          (cprd_leased_us_per_fd).
 *   relay  the floor of any broker that checks kinds: the same two hops
 *          and two round trips through a minimal process that receives
 *          the fds, checks each one's kind (F_GET_SEALS, as cprd does),
 *          says "stored", and on a one-byte claim sends them back and
 *          closes its copies; no protocol, no bookkeeping
 *          (relay_us_per_fd; rate_ratio cannot exceed relay_rate_ratio).
 *   s6     store of each fd, then retrieve-and-delete of each, one fd per
 *          request as s6-fdholderd's protocol has it (bench/cprd-s6.c).
 *
 * Also the daemon's idle RSS and its memory per held fd, and under load
 * (bench/cprd-load.c): the hello rate over 1,000 connections with a silent
 * and a non-reading peer, against one connection alone, and the RSS idle,
 * loaded and after.
 *
 *	bench/cprd [--json] [--cprd PATH] [--policy PATH] [--rounds N] [--fds N]
 *		   [--no-kind-check] [--cpu N]
 *
 * --no-kind-check runs cprd with check-fd-kinds=0 (cprd.conf(5)): seal then
 * leaves the per-fd kind check to the consumer's libcpr.
 *
 * Every process of every side (bench, receivers, cprd, s6-fdholderd) runs
 * on CPU --cpu (default 0; -1: wherever the scheduler puts them).  With
 * small messages a round trip between two CPUs costs several times one on
 * a single CPU, and where the scheduler places two processes that ping-pong
 * differs from run to run and from one daemon to the other: pinned, the
 * sides are compared under the same placement.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "scm.h"
#include "client.h"
#include "bench-cprd.h"

static size_t sizes[] = { 1, 64, 1000 };
static size_t n_sizes = 3;
static int arg_rounds = 1;
static bool arg_json;
static const char *arg_cprd;
static const char *arg_policy = SRC_POLICYDIR "/cprd.policy";
static bool arg_no_kind_check;
static int arg_cpu; /* -1: no pinning */
static char sockpath[108];
static char dirpath[64];
static pid_t daemon_pid;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int *memfds(size_t n)
{
	int *fds = calloc(n, sizeof(int));

	for (size_t i = 0; fds && i < n; i++) {
		fds[i] = memfd_create("bench", MFD_CLOEXEC);
		if (fds[i] < 0) {
			perror("memfd_create");
			exit(111);
		}
	}
	return fds;
}

static int stream_for(size_t n)
{
	struct cpr_state *st = NULL;
	void *buf = NULL;
	size_t len = 0;
	int fd;

	if (cpr_state_new(&st) < 0)
		exit(111);
	for (size_t i = 0; i < n; i++) {
		struct cpr_state_fd f = {
			.slot = (uint32_t)i, .kind = CPR_FD_MEMFD, .id = (int32_t)i, .name = "ram"
		};

		cpr_state_add_fd(st, &f);
	}
	if (cpr_state_encode(st, 0, NULL, NULL, &buf, &len, NULL) < 0)
		exit(111);
	cpr_state_free(st);
	/* sealed against any change, as a producer hands a stream over */
	fd = memfd_create("stream", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		exit(111);
	free(buf);
	return fd;
}

/* ---- the floor: raw SCM_RIGHTS to another process ---- */

/* Receive @n fds sent in chunks of at most 253 (one byte each). */
static void hop_recv(int sock, int *fds, size_t n)
{
	char b[16];

	for (size_t got = 0; got < n;) {
		size_t want = n - got < CPR_SCM_MAX_FDS ? n - got : CPR_SCM_MAX_FDS, k = 0;

		if (scm_recv(sock, b, sizeof(b), fds + got, want, &k, 0) <= 0 || !k)
			_exit(111); /* both sides: the bench fails */
		got += k;
	}
}

static void hop_send(int sock, const int *fds, size_t n)
{
	for (size_t off = 0; off < n; off += CPR_SCM_MAX_FDS) {
		size_t k = n - off < CPR_SCM_MAX_FDS ? n - off : CPR_SCM_MAX_FDS;

		if (scm_send(sock, "f", 1, fds + off, k) < 0)
			_exit(111); /* both sides: the bench fails */
	}
}

static void raw_receiver(int sock, size_t n, int iters)
{
	int *fds = malloc(n * sizeof(int));

	for (int it = 0; fds && it < iters; it++) {
		hop_recv(sock, fds, n);
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		if (write(sock, "a", 1) != 1)
			_exit(1);
	}
	_exit(fds ? 0 : 1);
}

/* A child that runs @peer(sock, n, iters) on one end of a SEQPACKET pair
 * and exits; returns the other end. */
static int peer_start(void (*peer)(int, size_t, int), size_t n, int iters, pid_t *ret_pid)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		exit(111);
	*ret_pid = fork();
	if (*ret_pid < 0)
		exit(111);
	if (*ret_pid == 0) {
		close(sv[0]);
		peer(sv[1], n, iters); /* does not return */
	}
	close(sv[1]);
	return sv[0];
}

static double raw_us_per_fd(size_t n, int iters)
{
	int *fds = memfds(n), status;
	double t0, t1;
	char ack;
	pid_t pid;
	int sock = peer_start(raw_receiver, n, iters, &pid);

	t0 = now_us();
	for (int it = 0; it < iters; it++) {
		hop_send(sock, fds, n);
		if (read(sock, &ack, 1) != 1)
			exit(111);
	}
	t1 = now_us();
	close(sock);
	waitpid(pid, &status, 0);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return (t1 - t0) / ((double)iters * (double)n);
}

/* ---- the floor of a checking broker: a minimal relay ---- */

static void relay_process(int sock, size_t n, int iters)
{
	int *held = malloc(n * sizeof(int));
	char b;

	for (int it = 0; held && it < iters; it++) {
		hop_recv(sock, held, n);
		for (size_t i = 0; i < n; i++)
			if (fcntl(held[i], F_GET_SEALS) < 0)
				_exit(1);
		if (write(sock, "s", 1) != 1 || read(sock, &b, 1) != 1)
			_exit(1);
		hop_send(sock, held, n);
		for (size_t i = 0; i < n; i++)
			close(held[i]);
	}
	_exit(held ? 0 : 1);
}

static double relay_us_per_fd(size_t n, int iters)
{
	int *fds = memfds(n), *got = malloc(n * sizeof(int)), status;
	double t0, t1;
	char b;
	pid_t pid;
	int sock;

	if (!got)
		exit(111);
	sock = peer_start(relay_process, n, iters, &pid);
	t0 = now_us();
	for (int it = 0; it < iters; it++) {
		hop_send(sock, fds, n);
		if (read(sock, &b, 1) != 1 || write(sock, "c", 1) != 1)
			exit(111);
		hop_recv(sock, got, n);
		for (size_t i = 0; i < n; i++)
			close(got[i]);
	}
	t1 = now_us();
	close(sock);
	waitpid(pid, &status, 0);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	free(got);
	return (t1 - t0) / ((double)iters * (double)n);
}

/* ---- cprd ---- */

static void daemon_start(void)
{
	char path[4096];
	int fd;

	snprintf(dirpath, sizeof(dirpath), "/tmp/cprd-bench-XXXXXX");
	if (!mkdtemp(dirpath))
		exit(111);
	snprintf(sockpath, sizeof(sockpath), "%s/sock", dirpath);
	if (arg_cprd)
		snprintf(path, sizeof(path), "%s", arg_cprd);
	else
		snprintf(path, sizeof(path), "%s/cprd/cprd",
			 getenv("top_builddir") ? getenv("top_builddir") : ".");
	daemon_pid = fork();
	if (daemon_pid == 0) {
		execl(path, path, "--socket", sockpath, "--policy", arg_policy, "--config",
		      "/dev/null", "--limit", "max-fds=16384", "--limit", "max-connections=1100",
		      "--limit", "idle-timeout-ms=0", "--limit",
		      arg_no_kind_check ? "check-fd-kinds=0" : "check-fd-kinds=1", (char *)NULL);
		perror(path);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		if (cprd_connect(sockpath, &fd) == 0) {
			close(fd);
			return;
		}
		usleep(10000);
	}
	fprintf(stderr, "bench/cprd: %s did not start\n", path);
	exit(111);
}

static void daemon_stop(void)
{
	char cmd[128];

	kill(daemon_pid, SIGTERM);
	waitpid(daemon_pid, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dirpath);
	(void)!system(cmd);
}

static long daemon_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)daemon_pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* store, then claim with "ack" (@leased: claim, then ack). */
static void one_handoff(int sock, const int *fds, size_t n, int stream, bool leased)
{
	struct json_object *reply = NULL;
	int got_stream = -1, *got = NULL, r;
	size_t n_got = 0;

	if (cprd_store(sock, "bench", NULL, stream, fds, n, NULL) < 0)
		exit(111);
	if (leased)
		r = cprd_claim(sock, "bench", 0, &reply, &got_stream, &got, &n_got);
	else
		r = cprd_claim_ack(sock, "bench", &reply, &got_stream, &got, &n_got);
	if (r < 0)
		exit(111);
	if (leased) {
		const char *token = json_object_get_string(json_object_object_get(reply, "token"));

		if (cprd_token_op(sock, "ack", "bench", token, NULL) < 0)
			exit(111);
	}
	json_object_put(reply);
	close(got_stream);
	for (size_t i = 0; i < n_got; i++)
		close(got[i]);
	free(got);
}

static double cprd_us_per_fd(size_t n, int iters, bool leased)
{
	int *fds = memfds(n), stream = stream_for(n), sock;
	double t0, t1;

	if (cprd_connect(sockpath, &sock) < 0)
		exit(111);
	one_handoff(sock, fds, n, stream, leased); /* warm up */
	t0 = now_us();
	for (int it = 0; it < iters; it++)
		one_handoff(sock, fds, n, stream, leased);
	t1 = now_us();
	close(sock);
	close(stream);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return (t1 - t0) / ((double)iters * (double)n);
}

/* VmRSS growth while holding 4 bundles of 1,000 fds, per fd. */
static double bytes_per_held_fd(void)
{
	int *fds = memfds(1000), stream = stream_for(1000), sock;
	long before, after;
	char name[16];

	if (cprd_connect(sockpath, &sock) < 0)
		exit(111);
	before = daemon_rss_kb();
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "held%d", i);
		if (cprd_store(sock, name, NULL, stream, fds, 1000, NULL) < 0)
			exit(111);
	}
	after = daemon_rss_kb();
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "held%d", i);
		cprd_call_name(sock, "drop", name, NULL);
	}
	close(sock);
	close(stream);
	for (size_t i = 0; i < 1000; i++)
		close(fds[i]);
	free(fds);
	return (double)(after - before) * 1024.0 / 4000.0;
}

/* s6 moves one fd per request: fewer rounds. */
static double s6_measure(const char *sock, size_t n)
{
	int *fds = memfds(n), iters = n == 1 ? 100 : n == 64 ? 4 : 1;
	double us = bench_s6_us_per_fd(sock, fds, n, iters);

	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return us;
}

static int iters_for(size_t n)
{
	return n == 1 ? 400 : n == 64 ? 40 : 4;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#define SAMPLES_MAX 64

struct figures {
	double raw, relay, cprd, leased, s6; /* us per fd; s6 < 0: not measured */
};

static double median(double *v, int k)
{
	qsort(v, (size_t)k, sizeof(double), cmp_double);
	return v[k / 2];
}

/*
 * The machine is shared and noisy: the floor, cprd (both ways) and s6 are
 * measured in alternation, 5 * --rounds samples each, and the medians are
 * reported.
 */
static void measure(size_t n, const char *s6_sock, struct figures *ret)
{
	double raw[SAMPLES_MAX], relay[SAMPLES_MAX], cp[SAMPLES_MAX], lease[SAMPLES_MAX];
	double s6[SAMPLES_MAX];
	int k = 5 * arg_rounds > SAMPLES_MAX ? SAMPLES_MAX : 5 * arg_rounds;

	for (int i = 0; i < k; i++) {
		raw[i] = raw_us_per_fd(n, iters_for(n));
		relay[i] = relay_us_per_fd(n, iters_for(n));
		cp[i] = cprd_us_per_fd(n, iters_for(n), false);
		lease[i] = cprd_us_per_fd(n, iters_for(n), true);
		s6[i] = s6_sock ? s6_measure(s6_sock, n) : -1;
	}
	ret->raw = median(raw, k);
	ret->relay = median(relay, k);
	ret->cprd = median(cp, k);
	ret->leased = median(lease, k);
	ret->s6 = s6[0] < 0 ? -1 : median(s6, k);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "cprd", required_argument, NULL, 'c' },
		{ "policy", required_argument, NULL, 'p' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "fds", required_argument, NULL, 'n' },
		{ "no-kind-check", no_argument, NULL, 'k' },
		{ "cpu", required_argument, NULL, 'u' },
		{ 0 },
	};
	struct json_object *out = json_object_new_object(), *rows = json_object_new_array();
	char s6_sock[128];
	bool have_s6;
	long idle;
	double per_fd;
	int c;

	while ((c = getopt_long(argc, argv, "jc:p:r:n:ku:", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			arg_json = true;
			break;
		case 'c':
			arg_cprd = optarg;
			break;
		case 'p':
			arg_policy = optarg;
			break;
		case 'r':
			arg_rounds = atoi(optarg) > 0 ? atoi(optarg) : 1;
			break;
		case 'k':
			arg_no_kind_check = true;
			break;
		case 'u':
			arg_cpu = atoi(optarg);
			break;
		case 'n': /* one size only, e.g. for a profiler */
			sizes[0] = strtoul(optarg, NULL, 10);
			if (sizes[0] < 1 || sizes[0] > 4096)
				return 100;
			n_sizes = 1;
			break;
		default:
			return 100;
		}
	}
	if (arg_cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(arg_cpu, &set);
		/* inherited by every process started from here on */
		if (sched_setaffinity(0, sizeof(set), &set) < 0) {
			fprintf(stderr, "cprd bench: --cpu %d: %s\n", arg_cpu, strerror(errno));
			return 100;
		}
	}
	raise_nofile();
	have_s6 = bench_s6_start(s6_sock, sizeof(s6_sock)) == 0;
	daemon_start();
	usleep(50000);
	idle = daemon_rss_kb();
	/* On a fresh daemon: later, memory kept from the hand-offs would absorb
	 * what holding the fds needs, and hide it. */
	per_fd = bytes_per_held_fd();
	if (!arg_json)
		printf("%6s %16s %16s %12s %12s %16s %14s\n", "fds", "cprd_us_per_fd",
		       "raw_us_per_fd", "rate_ratio", "relay_ratio", "leased_us_per_fd",
		       "s6_us_per_fd");
	for (size_t i = 0; i < n_sizes; i++) {
		size_t n = sizes[i];
		struct json_object *row = json_object_new_object();
		char s6txt[32] = "-";
		struct figures f;

		measure(n, have_s6 ? s6_sock : NULL, &f);

		json_object_object_add(row, "fds", json_object_new_int64((int64_t)n));
		json_object_object_add(row, "cprd_us_per_fd", json_object_new_double(f.cprd));
		json_object_object_add(row, "raw_us_per_fd", json_object_new_double(f.raw));
		json_object_object_add(row, "rate_ratio", json_object_new_double(f.raw / f.cprd));
		json_object_object_add(row, "relay_us_per_fd", json_object_new_double(f.relay));
		json_object_object_add(row, "relay_rate_ratio",
				       json_object_new_double(f.raw / f.relay));
		json_object_object_add(row, "cprd_leased_us_per_fd",
				       json_object_new_double(f.leased));
		json_object_object_add(row, "leased_rate_ratio",
				       json_object_new_double(f.raw / f.leased));
		/* null: s6-fdholderd not installed (or the comparison failed) */
		json_object_object_add(row, "s6_us_per_fd",
				       f.s6 >= 0 ? json_object_new_double(f.s6) : NULL);
		json_object_array_add(rows, row);
		if (f.s6 >= 0)
			snprintf(s6txt, sizeof(s6txt), "%.3f", f.s6);
		if (!arg_json)
			printf("%6zu %16.3f %16.3f %12.2f %12.2f %16.3f %14s\n", n, f.cprd, f.raw,
			       f.raw / f.cprd, f.raw / f.relay, f.leased, s6txt);
	}
	if (bench_cprd_load(sockpath, daemon_rss_kb, out) < 0)
		fprintf(stderr, "bench/cprd: the load figures failed\n");
	daemon_stop();
	if (have_s6)
		bench_s6_stop();
	json_object_object_add(out, "results", rows);
	json_object_object_add(out, "idle_rss_kb", json_object_new_int64(idle));
	json_object_object_add(out, "bytes_per_held_fd", json_object_new_double(per_fd));
	json_object_object_add(out, "s6_installed", json_object_new_boolean(have_s6));
	json_object_object_add(out, "check_fd_kinds", json_object_new_boolean(!arg_no_kind_check));
	json_object_object_add(out, "cpu", json_object_new_int(arg_cpu));
	if (arg_json)
		puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY));
	else
		printf("check-fd-kinds=%d; idle RSS %ld kB; %.0f bytes of daemon memory per held "
		       "fd\n"
		       "(medians; rate_ratio = raw / cprd: a cprd hand-off is two hops, so 0.5 is "
		       "parity;\n"
		       " cprd: store + claim with ack; leased: store + claim + ack)\n",
		       !arg_no_kind_check, idle, per_fd);
	if (!arg_json && json_object_object_get(out, "load_rate_ratio"))
		printf("load: %.0f hello/s over %d connections with a silent and a non-reading "
		       "peer, %.0f/s on one alone (ratio %.2f); RSS %lld kB idle, %lld kB with "
		       "them open, %lld kB after\n",
		       json_object_get_double(json_object_object_get(out, "hello_per_s_loaded")),
		       json_object_get_int(json_object_object_get(out, "load_connections")),
		       json_object_get_double(json_object_object_get(out, "hello_per_s_alone")),
		       json_object_get_double(json_object_object_get(out, "load_rate_ratio")),
		       (long long)json_object_get_int64(json_object_object_get(out, "rss_kb_idle")),
		       (long long)json_object_get_int64(
			       json_object_object_get(out, "rss_kb_1000_connections")),
		       (long long)json_object_get_int64(
			       json_object_object_get(out, "rss_kb_after")));
	json_object_put(out);
	return 0;
}
