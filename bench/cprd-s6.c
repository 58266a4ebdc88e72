/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The s6-fdholderd comparison of bench/cprd: store and retrieve-and-delete
 * the same fds through libs6, one fd per request as its protocol has it.
 * libs6 is loaded at run time (dlopen), so the benchmark builds without it;
 * the few declarations below follow <s6/fdholder.h> and <skalibs/tai.h>.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "bench-cprd.h"

struct s6_tain {
	uint64_t sec; /* struct tai_s */
	uint32_t nano;
};

/* TAIN_INFINITE: TAI_MAGIC (1 << 62) + (1 << 61) seconds */
static const struct s6_tain s6_infinite = { (1ull << 62) + (1ull << 61), 0 };

typedef int (*s6_start_fn)(void *a, const char *path, const struct s6_tain *deadline,
			   struct s6_tain *stamp);
typedef void (*s6_end_fn)(void *a);
typedef int (*s6_store_fn)(void *a, int fd, const char *id, const struct s6_tain *limit,
			   const struct s6_tain *deadline, struct s6_tain *stamp);
typedef int (*s6_retrieve_fn)(void *a, const char *id, int dodelete, const struct s6_tain *deadline,
			      struct s6_tain *stamp);

static struct {
	void *lib;
	s6_start_fn start;
	s6_end_fn end;
	s6_store_fn store;
	s6_retrieve_fn retrieve;
} s6;

static char s6_dir[64];
static pid_t s6_pid;

static int s6_load(void)
{
	s6.lib = dlopen("libs6.so.2.11", RTLD_NOW);
	if (!s6.lib)
		return -ENOENT;
	s6.start = (s6_start_fn)dlsym(s6.lib, "s6_fdholder_start");
	s6.end = (s6_end_fn)dlsym(s6.lib, "s6_fdholder_end");
	s6.store = (s6_store_fn)dlsym(s6.lib, "s6_fdholder_store");
	s6.retrieve = (s6_retrieve_fn)dlsym(s6.lib, "s6_fdholder_retrieve_maybe_delete");
	return s6.start && s6.end && s6.store && s6.retrieve ? 0 : -ENOENT;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* Rules: uid 0 may connect, store and retrieve any identifier. */
static void s6_rules(void)
{
	char p[160];

	snprintf(p, sizeof(p), "%s/rules", s6_dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/rules/uid", s6_dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/rules/uid/%u", s6_dir, (unsigned)getuid());
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/rules/uid/%u/allow", s6_dir, (unsigned)getuid());
	write_file(p, "");
	snprintf(p, sizeof(p), "%s/rules/uid/%u/env", s6_dir, (unsigned)getuid());
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/rules/uid/%u/env/S6_FDHOLDER_STORE_REGEX", s6_dir,
		 (unsigned)getuid());
	write_file(p, "^\n");
	snprintf(p, sizeof(p), "%s/rules/uid/%u/env/S6_FDHOLDER_RETRIEVE_REGEX", s6_dir,
		 (unsigned)getuid());
	write_file(p, "^\n");
}

static int s6_connect(void *a, const char *sock)
{
	struct s6_tain stamp = { 0 };

	for (int i = 0; i < 300; i++) {
		memset(a, 0, BENCH_S6_HANDLE);
		if (s6.start(a, sock, &s6_infinite, &stamp))
			return 0;
		usleep(10000);
	}
	return -ECONNREFUSED;
}

/* Start s6-fdholder-daemon on a socket of its own; 0 or -errno. */
int bench_s6_start(char *sock, size_t len)
{
	char rules[96], maxfds[16];

	if (s6_load() < 0)
		return -ENOENT;
	snprintf(s6_dir, sizeof(s6_dir), "/tmp/cprd-bench-s6-XXXXXX");
	if (!mkdtemp(s6_dir))
		return -errno;
	s6_rules();
	snprintf(sock, len, "%s/sock", s6_dir);
	snprintf(rules, sizeof(rules), "%s/rules", s6_dir);
	snprintf(maxfds, sizeof(maxfds), "%d", 2000);
	s6_pid = fork();
	if (s6_pid == 0) {
		execlp("s6-fdholder-daemon", "s6-fdholder-daemon", "-i", rules, "-n", maxfds, sock,
		       (char *)NULL);
		_exit(127);
	}
	return s6_pid < 0 ? -errno : 0;
}

void bench_s6_stop(void)
{
	char cmd[128];

	if (s6_pid > 0) {
		kill(s6_pid, SIGTERM);
		waitpid(s6_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", s6_dir);
	(void)!system(cmd);
}

/* Store @n fds, then retrieve-and-delete each, @iters times: us per fd. */
double bench_s6_us_per_fd(const char *sock, const int *fds, size_t n, int iters)
{
	_cleanup_free_ void *a = calloc(1, BENCH_S6_HANDLE);
	struct s6_tain stamp = { 0 };
	struct timespec t0, t1;
	char id[32];

	if (!a || s6_connect(a, sock) < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int it = 0; it < iters; it++) {
		for (size_t i = 0; i < n; i++) {
			snprintf(id, sizeof(id), "b%zu", i);
			if (!s6.store(a, fds[i], id, &s6_infinite, &s6_infinite, &stamp))
				return -1;
		}
		for (size_t i = 0; i < n; i++) {
			int fd;

			snprintf(id, sizeof(id), "b%zu", i);
			fd = s6.retrieve(a, id, 1, &s6_infinite, &stamp);
			if (fd < 0)
				return -1;
			close(fd);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s6.end(a);
	return ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) /
	       ((double)iters * (double)n);
}
