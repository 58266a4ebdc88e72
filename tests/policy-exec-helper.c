/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The new image in the "cprctl daemon upgrade" test of the shipped
 * cprd.policy: a plain C library program, built without sanitizers, that
 * must start under the filter it inherited from the old image (fork +
 * execve), receive the old image's state by cpr-transfer on the socket
 * the old image named, and ack it.  Checks that it runs under a filter and
 * that the preserved eventfd arrived.
 * Usage:
 *   policy-exec-helper SOCKET_FD
 * Exits 42 when every check holds, another code naming the first failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	uint64_t v = 0;
	int sock, ev;

	if (argc != 2 || (sock = atoi(argv[1])) < 3)
		return 1;
	if (cpr_ctx_new(&ctx) < 0 || cpr_transfer_recv(ctx, sock, &err) != 0) {
		fprintf(stderr, "cpr_transfer_recv: %s\n", err.message);
		return 2;
	}
	if (cpr_fd_claim(ctx, "ev", 0, CPR_FD_EVENTFD, &ev, NULL) < 0 ||
	    read(ev, &v, sizeof(v)) != sizeof(v) || v != 7)
		return 3;
	if (seccomp_mode() != 2)
		return 4;
	if (cpr_transfer_ack(ctx, sock, NULL) < 0)
		return 5;
	cpr_ctx_free(ctx);
	return 42;
}
