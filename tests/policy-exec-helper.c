/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The new image in the "cprctl daemon upgrade" test: a plain C library
 * program, built without sanitizers, that must start under the filter of
 * cprd.policy it inherited through execve().  Checks that it runs under a
 * filter and that the exec state memfd and the preserved eventfd arrived.
 * Usage:
 *   policy-exec-helper EVENTFD
 * Exits 42 when every check holds, another code naming the first failure.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpr/cpr.h>

static int seccomp_mode(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	int mode = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	fclose(f);
	return mode;
}

int main(int argc, char *argv[])
{
	const char *token = getenv(CPR_EXEC_ENV);
	uint64_t v = 0;
	int state_fd, ev;

	if (argc != 2 || !token || sscanf(token, "fd=%d,", &state_fd) != 1)
		return 1;
	if (fcntl(state_fd, F_GETFD) < 0)
		return 2;
	ev = atoi(argv[1]);
	if (read(ev, &v, sizeof(v)) != sizeof(v) || v != 7)
		return 3;
	if (seccomp_mode() != 2)
		return 4;
	return 42;
}
