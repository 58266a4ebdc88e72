/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The old and the new image of the exec rollback tests (check-rollback).
 *
 *   helper-rollback old TARGET_MODE
 *     Without incoming state: build a guest (a RAM block filled with a
 *     pattern, an eventfd counter), record what it must look like, then
 *     cpr_exec() this binary as "helper-rollback TARGET_MODE".  With
 *     incoming state: it must be a rollback; adopt it, check that the RAM
 *     block is the same memfd with the same bytes, continue (write to it),
 *     and exit ROLLED_BACK_OK.  With CPR_TEST_OLD_REFUSES=1 in the
 *     environment the rolled-back image refuses the state too, and exits
 *     NO_LOOP when libcpr says there is no way back.
 *
 *   helper-rollback refuse|badtoken|exit|crash|giveup|adopt
 *     The new image: libcpr refuses the state (an fd key taken already), the
 *     token is mangled so it does not parse and the VMM exits, exit 1 at once
 *     before libcpr, SIGSEGV before libcpr, or adopt and then give the state
 *     back with cpr_exec_rollback(); or adopt, as a plain upgrade.
 *
 * Any failed check exits 1 with the reason on stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "exec-common.h"

#define ROLLED_BACK_OK 42
#define NO_LOOP 43
#define RB_SIZE (4u << 20)
#define EV_COUNT 7u

#define FAIL(...)                                                 \
	do {                                                      \
		fprintf(stderr, "helper-rollback: " __VA_ARGS__); \
		fputc('\n', stderr);                              \
		exit(1);                                          \
	} while (0)

struct rb_expect {
	uint64_t dev, ino, sum;
	int32_t first_pid; /* the PID the guest started in */
	uint32_t pad;
};

__attribute__((format(printf, 3, 0))) static void log_stderr(void *userdata, int priority,
							     const char *fmt, va_list ap)
{
	(void)userdata;
	fprintf(stderr, "helper-rollback[%d]: lib<%d>: ", (int)getpid(), priority);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

static struct cpr_ctx *ctx_new(void)
{
	struct cpr_ctx *ctx;

	if (cpr_ctx_new(&ctx) < 0)
		FAIL("cpr_ctx_new");
	cpr_ctx_set_log_fn(ctx, log_stderr, NULL);
	return ctx;
}

/* First run: the guest, then the upgrade to @mode. */
static void old_first(struct cpr_ctx *ctx, const char *mode)
{
	struct cpr_error err = { 0 };
	struct cpr_ramblock *rb;
	struct rb_expect x = { .first_pid = (int32_t)getpid() };
	char self[4096];
	char *av[] = { (char *)"helper-rollback", (char *)mode, NULL };
	struct stat st;
	ssize_t n;
	int ev;

	if (cpr_ramblock_new(ctx, "pc.ram", RB_SIZE, RB_SIZE, 0, 0, &rb, NULL) < 0)
		FAIL("cpr_ramblock_new");
	exec_fill(cpr_ramblock_host(rb), RB_SIZE, 5);
	x.sum = exec_sum(cpr_ramblock_host(rb), RB_SIZE);
	if (fstat(cpr_ramblock_fd(rb), &st) < 0)
		FAIL("fstat");
	x.dev = (uint64_t)st.st_dev;
	x.ino = (uint64_t)st.st_ino;
	ev = eventfd(EV_COUNT, EFD_CLOEXEC);
	if (ev < 0 || cpr_fd_save(ctx, "ev", 0, ev, CPR_FD_EVENTFD, NULL) < 0)
		FAIL("eventfd");
	if (cpr_ctx_set_private(ctx, EXEC_PRIV_TYPE, 0, &x, sizeof(x)) < 0)
		FAIL("set_private");
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		FAIL("readlink");
	self[n] = '\0';
	cpr_exec(ctx, self, av, NULL, &err);
	FAIL("cpr_exec: %s", err.message);
}

/* Run again by a rollback: the same guest, intact, and it goes on. */
static int old_again(struct cpr_ctx *ctx)
{
	struct cpr_error err = { 0 };
	const struct rb_expect *x;
	struct cpr_ramblock *rb;
	struct stat st;
	uint64_t v = 0;
	size_t len;
	int r, ev;

	if (!cpr_exec_rolled_back(ctx))
		FAIL("adopted, but cpr_exec_rolled_back() says no rollback");
	r = cpr_exec_rollback(ctx, &err);
	if (r != -ENOENT)
		FAIL("a rollback could roll back again: %d", r);
	if (cpr_state_private_find(cpr_ctx_incoming_state(ctx), EXEC_PRIV_TYPE, 0,
				   (const void **)&x, &len) < 0 ||
	    len != sizeof(*x))
		FAIL("no expectations record");
	if (cpr_ramblock_new(ctx, "pc.ram", RB_SIZE, RB_SIZE, 0, 0, &rb, NULL) < 0 ||
	    !cpr_ramblock_adopted(rb))
		FAIL("pc.ram not adopted");
	if (fstat(cpr_ramblock_fd(rb), &st) < 0 || (uint64_t)st.st_ino != x->ino ||
	    (uint64_t)st.st_dev != x->dev)
		FAIL("pc.ram: not the same memfd");
	if (exec_sum(cpr_ramblock_host(rb), RB_SIZE) != x->sum)
		FAIL("pc.ram: contents differ");
	exec_fill(cpr_ramblock_host(rb), RB_SIZE, 6); /* the guest goes on */
	if (cpr_fd_claim(ctx, "ev", 0, CPR_FD_EVENTFD, &ev, NULL) < 0 || read(ev, &v, 8) != 8 ||
	    v != EV_COUNT)
		FAIL("ev: counter %llu", (unsigned long long)v);
	/* stdio, the RAM block and the eventfd: no state memfd, exe, args or
	 * release pipe left over. */
	if (count_fds() != 5)
		FAIL("%d fds open, expected 5", count_fds());
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		FAIL("a child was left");
	fprintf(stderr, "helper-rollback: rolled back pid %d (first %d)\n", (int)getpid(),
		(int)x->first_pid);
	cpr_ramblock_free(rb);
	cpr_ctx_free(ctx);
	return ROLLED_BACK_OK;
}

static int old_main(const char *mode)
{
	struct cpr_ctx *ctx = ctx_new();
	struct cpr_error err = { 0 };
	const char *refuses = getenv("CPR_TEST_OLD_REFUSES");
	int r, ev = -1;

	if (getenv(CPR_EXEC_ENV) && refuses && strcmp(refuses, "1") == 0) {
		ev = eventfd(0, EFD_CLOEXEC);
		if (ev < 0 || cpr_fd_save(ctx, "ev", 0, ev, CPR_FD_EVENTFD, NULL) < 0)
			FAIL("eventfd");
	}
	r = cpr_exec_incoming(ctx, &err);
	if (r < 0 && ev >= 0 && r == -EEXIST) {
		fprintf(stderr, "helper-rollback: refused again, no way back: %s\n", err.message);
		close(ev);
		cpr_ctx_free(ctx);
		return NO_LOOP;
	}
	if (r < 0)
		FAIL("cpr_exec_incoming: %d %s", r, err.message);
	if (r == 0)
		old_first(ctx, mode);
	return old_again(ctx);
}

/* A plain upgrade (the helper's clone() refused): adopted, no helper. */
static int new_adopt(struct cpr_ctx *ctx, int r, const char *tok, struct cpr_error *err)
{
	const struct rb_expect *x;
	struct cpr_ramblock *rb;
	size_t len;

	if (r != 1)
		FAIL("adopt: cpr_exec_incoming: %d %s", r, err->message);
	if (strstr(tok, ",reaper=") || !strstr(tok, ",exe="))
		FAIL("adopt: token %s", tok);
	if (cpr_exec_rolled_back(ctx))
		FAIL("adopt: a rollback?");
	if (cpr_state_private_find(cpr_ctx_incoming_state(ctx), EXEC_PRIV_TYPE, 0,
				   (const void **)&x, &len) < 0 ||
	    len != sizeof(*x))
		FAIL("no expectations record");
	if (cpr_ramblock_new(ctx, "pc.ram", RB_SIZE, RB_SIZE, 0, 0, &rb, NULL) < 0 ||
	    !cpr_ramblock_adopted(rb) || exec_sum(cpr_ramblock_host(rb), RB_SIZE) != x->sum)
		FAIL("pc.ram not adopted intact");
	fprintf(stderr, "helper-rollback: adopted without a teardown helper\n");
	cpr_ramblock_free(rb);
	cpr_ctx_free(ctx);
	return 0;
}

/* The new image: each way an upgrade fails. */
static int new_main(const char *mode)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	char tok[512];
	int r;

	if (strcmp(mode, "exit") == 0)
		return 1;
	if (strcmp(mode, "crash") == 0) {
		signal(SIGSEGV, SIG_DFL);
		raise(SIGSEGV);
		return 1;
	}
	ctx = ctx_new();
	snprintf(tok, sizeof(tok), "%s", getenv(CPR_EXEC_ENV) ?: "");
	if (strcmp(mode, "refuse") == 0) {
		int ev = eventfd(0, EFD_CLOEXEC);

		if (ev < 0 || cpr_fd_save(ctx, "ev", 0, ev, CPR_FD_EVENTFD, NULL) < 0)
			FAIL("eventfd");
	} else if (strcmp(mode, "badtoken") == 0) {
		char bad[600];

		snprintf(bad, sizeof(bad), "%s,X", tok);
		setenv(CPR_EXEC_ENV, bad, 1);
	}
	r = cpr_exec_incoming(ctx, &err);
	if (strcmp(mode, "adopt") == 0)
		return new_adopt(ctx, r, tok, &err);
	if (strcmp(mode, "giveup") == 0 && r == 1) {
		r = cpr_exec_rollback(ctx, &err);
		FAIL("cpr_exec_rollback: %d %s", r, err.message);
	}
	/* What a VMM does when it cannot take the state: it gives up. */
	FAIL("%s: cpr_exec_incoming: %d %s", mode, r, err.message);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "old") == 0)
		return old_main(argv[2]);
	if (argc == 2)
		return new_main(argv[1]);
	FAIL("usage: helper-rollback old MODE | MODE");
}
