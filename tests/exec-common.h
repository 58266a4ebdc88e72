/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by check-exec and helper-exec: what the new image must find. */
#ifndef CPR_EXEC_COMMON_H
#define CPR_EXEC_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EXEC_PRIV_TYPE 0x8001u
#define EXEC_RBS_MAX 4

struct exec_rb {
	char idstr[32];
	uint64_t used, max, align;
	uint32_t flags;
	uint32_t pad;
	uint64_t dev, ino, sum;
};

struct exec_expect {
	uint32_t n_ev; /* eventfds "ev" id 0..n_ev-1, counter id+1 */
	uint32_t n_rbs;
	uint32_t generation;
	uint32_t inherited; /* fds without FD_CLOEXEC before cpr_exec() */
	struct exec_rb rb[EXEC_RBS_MAX];
};

static inline uint64_t exec_word(uint64_t i, uint64_t seed)
{
	return (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;
}

static inline void exec_fill(void *p, uint64_t len, uint64_t seed)
{
	uint64_t *w = p;

	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = exec_word(i, seed);
}

static inline uint64_t exec_sum(const void *p, uint64_t len)
{
	const uint64_t *w = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (uint64_t i = 0; i < len / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ull;
	return h;
}

/* A field of /proc/self/status in KiB, or -1. */
static inline long exec_status_kib(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

#endif
