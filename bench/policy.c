/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/policy: what a policy costs.
 *  - compile: parse + build each shipped policy (cpr_policy_load) and
 *    generate its BPF program (cpr_policy_export_bpf);
 *  - run time: nanoseconds per getppid() (allowed whatever its arguments)
 *    and per fcntl(F_GETFD) (allowed by an argument filter in cprd.policy)
 *    in a forked child with no filter (the floor) and under each shipped
 *    policy, printed as ratios; each configuration runs in several
 *    children, interleaved, best kept.
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

#define ROUNDS 7 /* children per configuration, interleaved */
#define COMPILE_RUNS 50
#define CONFIGS 4 /* no filter + three policies */

struct result {
	const char *name;
	double load_us;	    /* median cpr_policy_load() */
	double bpf_us;	    /* median cpr_policy_export_bpf() */
	size_t bpf_insns;   /* instructions in the program */
	double ns_per_call; /* best getppid() under the filter */
	double ns_fcntl;    /* best fcntl(F_GETFD) under the filter */
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

/*
 * getppid() is allowed whatever its arguments, so the kernel's seccomp
 * action cache can skip the BPF program; fcntl(F_GETFD) under cprd.policy
 * depends on an argument and runs the program every time.
 */
static double time_calls(long nr, long arg0, long arg1, long iterations)
{
	double t0;

	for (long i = 0; i < iterations / 10; i++) /* warm up */
		syscall(nr, arg0, arg1);
	t0 = now_ns();
	for (long i = 0; i < iterations; i++)
		syscall(nr, arg0, arg1);
	return (now_ns() - t0) / (double)iterations;
}

/* In the child: ns per getppid() and per fcntl(F_GETFD) under @p. */
static void child_loop(const struct cpr_policy *p, long iterations, int out)
{
	double ns[2];

	if (p && cpr_policy_apply(p) < 0)
		_exit(1);
	ns[0] = time_calls(SYS_getppid, 0, 0, iterations);
	ns[1] = time_calls(SYS_fcntl, out, F_GETFD, iterations);
	_exit(write(out, ns, sizeof(ns)) == sizeof(ns) ? 0 : 2);
}

static int measure_calls(const struct cpr_policy *p, long iterations, double ret_ns[2])
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
	n = read(pfd[0], ret_ns, 2 * sizeof(double));
	close(pfd[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    n != 2 * sizeof(double))
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

/*
 * Interleave the configurations round by round and keep each one's best:
 * other load on the machine only ever adds time.
 */
static int measure_all(struct result *res, long iterations, double ret_floor[2])
{
	struct cpr_policy *p[CONFIGS] = { NULL };
	double best[CONFIGS][2];
	int r = 0;

	for (size_t i = 0; i < CONFIGS; i++)
		best[i][0] = best[i][1] = 1e30;
	for (size_t i = 1; r >= 0 && i < CONFIGS; i++) {
		r = measure_compile(&res[i - 1]);
		if (r >= 0)
			r = runtime_policy(res[i - 1].name, &p[i]);
	}
	for (int round = 0; r >= 0 && round < ROUNDS; round++)
		for (size_t i = 0; r >= 0 && i < CONFIGS; i++) {
			double ns[2];

			r = measure_calls(p[i], iterations, ns);
			for (int k = 0; r >= 0 && k < 2; k++)
				if (ns[k] < best[i][k])
					best[i][k] = ns[k];
		}
	for (size_t i = 0; i < CONFIGS; i++)
		cpr_policy_free(p[i]);
	if (r < 0)
		return r;
	ret_floor[0] = best[0][0];
	ret_floor[1] = best[0][1];
	for (size_t i = 1; i < CONFIGS; i++) {
		res[i - 1].ns_per_call = best[i][0];
		res[i - 1].ns_fcntl = best[i][1];
	}
	return 0;
}

static void print_human(const struct result *res, size_t n, const double floor[2], long iterations)
{
	printf("policy compile (median of %d); system call cost (best of %d children x %ld "
	       "calls, interleaved)\n",
	       COMPILE_RUNS, ROUNDS, iterations);
	printf("%-20s %8s %8s %6s %12s %6s %12s %6s\n", "policy", "load us", "bpf us", "insns",
	       "getppid ns", "ratio", "F_GETFD ns", "ratio");
	printf("%-20s %8s %8s %6s %12.1f %6.2f %12.1f %6.2f\n", "(no filter: floor)", "-", "-", "-",
	       floor[0], 1.0, floor[1], 1.0);
	for (size_t i = 0; i < n; i++)
		printf("%-20s %8.1f %8.1f %6zu %12.1f %6.2f %12.1f %6.2f\n", res[i].name,
		       res[i].load_us, res[i].bpf_us, res[i].bpf_insns, res[i].ns_per_call,
		       res[i].ns_per_call / floor[0], res[i].ns_fcntl, res[i].ns_fcntl / floor[1]);
}

static void print_json(const struct result *res, size_t n, const double floor[2], long iterations)
{
	printf("{\"bench\":\"policy\",\"iterations\":%ld,\"rounds\":%d,"
	       "\"floor_getppid_ns\":%.2f,\"floor_fcntl_ns\":%.2f,\"policies\":[",
	       iterations, ROUNDS, floor[0], floor[1]);
	for (size_t i = 0; i < n; i++)
		printf("%s{\"name\":\"%s\",\"load_us\":%.2f,\"bpf_us\":%.2f,\"bpf_insns\":%zu,"
		       "\"getppid_ns\":%.2f,\"getppid_overhead_ns\":%.2f,\"getppid_ratio\":%.3f,"
		       "\"fcntl_ns\":%.2f,\"fcntl_overhead_ns\":%.2f,\"fcntl_ratio\":%.3f}",
		       i ? "," : "", res[i].name, res[i].load_us, res[i].bpf_us, res[i].bpf_insns,
		       res[i].ns_per_call, res[i].ns_per_call - floor[0],
		       res[i].ns_per_call / floor[0], res[i].ns_fcntl, res[i].ns_fcntl - floor[1],
		       res[i].ns_fcntl / floor[1]);
	printf("]}\n");
}

int main(int argc, char *argv[])
{
	static const struct option options[] = { { "json", no_argument, NULL, 'j' },
						 { "iterations", required_argument, NULL, 'n' },
						 { "help", no_argument, NULL, 'h' },
						 {} };
	struct result res[] = {
		{ .name = "cprd.policy" },
		{ .name = "vmm-exec.policy" },
		{ .name = "vmm-transfer.policy" },
	};
	long iterations = 200000;
	double floor_ns[2];
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
	if (measure_all(res, iterations, floor_ns) < 0)
		return 1;
	if (json)
		print_json(res, ARRAY_SIZE(res), floor_ns, iterations);
	else
		print_human(res, ARRAY_SIZE(res), floor_ns, iterations);
	return 0;
}
