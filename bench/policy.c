/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/policy: what a policy costs.
 *  - compile: parse + build each shipped policy (cpr_policy_load) and
 *    generate its BPF program (cpr_policy_export_bpf);
 *  - run time: nanoseconds per getppid() in a forked child with no filter
 *    (the floor) and under each shipped policy, printed as ratios.
 * cprd.policy does not allow getppid(), so it is measured with one more
 * line, "allow getppid", appended: the call then walks cprd's real filter.
 *
 * Usage: bench/policy [--json] [--iterations N]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cpr/policy.h>

#include "internal.h"

#define ROUNDS 5
#define COMPILE_RUNS 50

struct result {
	const char *name;
	double load_us;	  /* median cpr_policy_load() */
	double bpf_us;	  /* median cpr_policy_export_bpf() */
	size_t bpf_insns; /* instructions in the program */
	double ns_per_call; /* median getppid() under the filter */
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static char *policy_path(const char *name)
{
	static char path[4096];
	const char *dir = getenv("top_srcdir");

	if (dir)
		snprintf(path, sizeof(path), "%s/policy/%s", dir, name);
	else
		snprintf(path, sizeof(path), "%s/%s", SRC_POLICYDIR, name);
	return path;
}

static int load(const char *name, struct cpr_policy **ret)
{
	struct cpr_error err = { .message = "" };
	int r = cpr_policy_load(policy_path(name), ret, &err);

	if (r < 0)
		fprintf(stderr, "bench/policy: %s\n", err.message);
	return r;
}

static int measure_compile(struct result *res)
{
	double load_us[COMPILE_RUNS], bpf_us[COMPILE_RUNS];
	int mfd = memfd_create("bpf", MFD_CLOEXEC);

	if (mfd < 0)
		return -errno;
	for (int i = 0; i < COMPILE_RUNS; i++) {
		struct cpr_policy *p = NULL;
		double t0 = now_ns(), t1, t2;
		int r = load(res->name, &p);

		t1 = now_ns();
		if (r >= 0 && (ftruncate(mfd, 0) < 0 || lseek(mfd, 0, SEEK_SET) < 0))
			r = -errno;
		if (r >= 0)
			r = cpr_policy_export_bpf(p, mfd);
		t2 = now_ns();
		cpr_policy_free(p);
		if (r < 0) {
			close(mfd);
			return r;
		}
		load_us[i] = (t1 - t0) / 1e3;
		bpf_us[i] = (t2 - t1) / 1e3;
	}
	res->bpf_insns = (size_t)lseek(mfd, 0, SEEK_END) / 8;
	res->load_us = median(load_us, COMPILE_RUNS);
	res->bpf_us = median(bpf_us, COMPILE_RUNS);
	close(mfd);
	return 0;
}

/* In the child: ns per getppid(), best-of-ROUNDS median, under @p. */
static void child_loop(const struct cpr_policy *p, long iterations, int out)
{
	double v[ROUNDS];

	if (p && cpr_policy_apply(p) < 0)
		_exit(1);
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_ns();

		for (long i = 0; i < iterations; i++)
			syscall(SYS_getppid);
		v[r] = (now_ns() - t0) / (double)iterations;
	}
	v[0] = median(v, ROUNDS);
	_exit(write(out, &v[0], sizeof(v[0])) == sizeof(v[0]) ? 0 : 2);
}

static int measure_calls(const struct cpr_policy *p, long iterations, double *ret_ns)
{
	int pfd[2], status;
	pid_t pid;
	ssize_t n;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		child_loop(p, iterations, pfd[1]);
	close(pfd[1]);
	n = read(pfd[0], ret_ns, sizeof(*ret_ns));
	close(pfd[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    n != sizeof(*ret_ns))
		return -ECHILD;
	return 0;
}

/* The policy to measure getppid() under: cprd's gets "allow getppid". */
static int runtime_policy(const char *name, struct cpr_policy **ret)
{
	struct cpr_error err = { .message = "" };
	_cleanup_free_ void *text = NULL;
	struct stat st;
	int fd, r;

	if (strcmp(name, "cprd.policy") != 0)
		return load(name, ret);
	fd = open(policy_path(name), O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !(text = calloc(1, (size_t)st.st_size + 64)) ||
	    read(fd, text, (size_t)st.st_size) != st.st_size) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r ? r : -EIO;
	}
	close(fd);
	strcat(text, "\nallow getppid\n");
	r = cpr_policy_parse(text, strlen(text), name, ret, &err);
	if (r < 0)
		fprintf(stderr, "bench/policy: %s\n", err.message);
	return r;
}

static void print_human(const struct result *res, size_t n, double floor_ns, long iterations)
{
	printf("policy compile (median of %d) and getppid() cost (median of %d x %ld calls)\n",
	       COMPILE_RUNS, ROUNDS, iterations);
	printf("%-22s %10s %10s %6s %10s %8s\n", "policy", "load us", "bpf us", "insns",
	       "ns/call", "ratio");
	printf("%-22s %10s %10s %6s %10.1f %8.2f\n", "(no filter: floor)", "-", "-", "-", floor_ns,
	       1.0);
	for (size_t i = 0; i < n; i++)
		printf("%-22s %10.1f %10.1f %6zu %10.1f %8.2f\n", res[i].name, res[i].load_us,
		       res[i].bpf_us, res[i].bpf_insns, res[i].ns_per_call,
		       res[i].ns_per_call / floor_ns);
}

static void print_json(const struct result *res, size_t n, double floor_ns, long iterations)
{
	printf("{\"bench\":\"policy\",\"iterations\":%ld,\"rounds\":%d,"
	       "\"floor_ns_per_call\":%.2f,\"policies\":[",
	       iterations, ROUNDS, floor_ns);
	for (size_t i = 0; i < n; i++)
		printf("%s{\"name\":\"%s\",\"load_us\":%.2f,\"bpf_us\":%.2f,\"bpf_insns\":%zu,"
		       "\"ns_per_call\":%.2f,\"overhead_ns\":%.2f,\"ratio\":%.3f}",
		       i ? "," : "", res[i].name, res[i].load_us, res[i].bpf_us, res[i].bpf_insns,
		       res[i].ns_per_call, res[i].ns_per_call - floor_ns,
		       res[i].ns_per_call / floor_ns);
	printf("]}\n");
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct result res[] = {
		{ .name = "cprd.policy" },
		{ .name = "vmm-exec.policy" },
		{ .name = "vmm-transfer.policy" },
	};
	long iterations = 200000;
	double floor_ns;
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, "jn:h", options, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'n':
			iterations = strtol(optarg, NULL, 10);
			if (iterations <= 0)
				return 100;
			break;
		case 'h':
			printf("Usage: %s [--json] [--iterations N]\n", argv[0]);
			return 0;
		default:
			return 100;
		}
	}
	if (measure_calls(NULL, iterations, &floor_ns) < 0)
		return 1;
	for (size_t i = 0; i < ARRAY_SIZE(res); i++) {
		struct cpr_policy *p = NULL;

		if (measure_compile(&res[i]) < 0 || runtime_policy(res[i].name, &p) < 0)
			return 1;
		if (measure_calls(p, iterations, &res[i].ns_per_call) < 0) {
			cpr_policy_free(p);
			return 1;
		}
		cpr_policy_free(p);
	}
	if (json)
		print_json(res, ARRAY_SIZE(res), floor_ns, iterations);
	else
		print_human(res, ARRAY_SIZE(res), floor_ns, iterations);
	return 0;
}
