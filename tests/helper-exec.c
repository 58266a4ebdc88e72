/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The new image in the exec tests: adopt the incoming state and prove that
 * everything arrived intact and uncopied.  Usage:
 *   helper-exec adopt|hop|none
 * Exits 0 when every check holds, 1 otherwise (the reason on stderr).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "exec-common.h"

#define FAIL(...)                                             \
	do {                                                  \
		fprintf(stderr, "helper-exec: " __VA_ARGS__); \
		fputc('\n', stderr);                          \
		exit(1);                                      \
	} while (0)

__attribute__((format(printf, 3, 0))) static void log_stderr(void *userdata, int priority,
							     const char *fmt, va_list ap)
{
	(void)userdata;
	fprintf(stderr, "helper-exec: lib<%d>: ", priority);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* Open fds, not counting the pidfd libcpr may hold on the teardown helper. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char path[300], link[64] = "";

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		if (readlink(path, link, sizeof(link) - 1) > 0 &&
		    strcmp(link, "anon_inode:[pidfd]") == 0)
			continue;
		n++;
	}
	closedir(d);
	return n - 1;
}

static void check_rb(struct cpr_ctx *ctx, const struct exec_rb *e, struct cpr_ramblock **ret)
{
	struct cpr_ramblock *rb;
	struct stat st;
	long shmem;
	int r;

	r = cpr_ramblock_new(ctx, e->idstr, e->used, e->max, e->align, e->flags, &rb, NULL);
	if (r < 0)
		FAIL("cpr_ramblock_new(%s, NULL): %s", e->idstr, strerror(-r));
	if (!cpr_ramblock_adopted(rb))
		FAIL("%s was created fresh, not adopted", e->idstr);
	if (fstat(cpr_ramblock_fd(rb), &st) < 0 || (uint64_t)st.st_dev != e->dev ||
	    (uint64_t)st.st_ino != e->ino)
		FAIL("%s: not the same memfd (inode %llu, expected %llu)", e->idstr,
		     (unsigned long long)st.st_ino, (unsigned long long)e->ino);
	if (e->align && (uintptr_t)cpr_ramblock_host(rb) % e->align)
		FAIL("%s: mapping %p not aligned to %llu", e->idstr, cpr_ramblock_host(rb),
		     (unsigned long long)e->align);
	if (cpr_ramblock_used_length(rb) != e->used)
		FAIL("%s: used_length %llu", e->idstr,
		     (unsigned long long)cpr_ramblock_used_length(rb));
	/* Mapped, not copied: nothing of it is resident in this image yet. */
	shmem = exec_status_kib("RssShmem");
	if (shmem < 0 || (uint64_t)shmem * 1024 >= e->used / 2)
		FAIL("%s: %ld KiB of shared memory already resident before any access", e->idstr,
		     shmem);
	*ret = rb;
}

static void check_rbs(struct cpr_ctx *ctx, const struct exec_expect *x, struct cpr_ramblock **rbs)
{
	uint64_t total = 0;
	long rss_anon;

	for (uint32_t i = 0; i < x->n_rbs; i++)
		check_rb(ctx, &x->rb[i], &rbs[i]);
	for (uint32_t i = 0; i < x->n_rbs; i++) {
		uint64_t sum = exec_sum(cpr_ramblock_host(rbs[i]), x->rb[i].used);

		if (sum != x->rb[i].sum)
			FAIL("%s: contents differ", x->rb[i].idstr);
		total += x->rb[i].used;
	}
	/* Every page was read: still shared pages, no private copy. */
	rss_anon = exec_status_kib("RssAnon");
	if (rss_anon < 0 || (uint64_t)rss_anon * 1024 >= total / 2)
		FAIL("%ld KiB anonymous memory after reading %llu bytes of RAM blocks", rss_anon,
		     (unsigned long long)total);
}

static void check_fds(struct cpr_ctx *ctx, const struct exec_expect *x)
{
	for (uint32_t id = 0; id < x->n_ev; id++) {
		uint64_t v = 0;
		int fd, r;

		r = cpr_fd_claim(ctx, "ev", (int32_t)id, CPR_FD_EVENTFD, &fd, NULL);
		if (r < 0)
			FAIL("cpr_fd_claim(ev, %u, NULL): %s", id, strerror(-r));
		if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
			FAIL("ev %u: fd %d not close-on-exec", id, fd);
		if (read(fd, &v, 8) != 8 || v != id + 1u)
			FAIL("ev %u: counter %llu, expected %u", id, (unsigned long long)v, id + 1);
		if (write(fd, &v, 8) != 8)
			FAIL("ev %u: write back", id);
	}
}

int main(int argc, char **argv)
{
	struct cpr_ramblock *rbs[EXEC_RBS_MAX] = { NULL };
	struct cpr_error err = { 0 };
	struct cpr_state_info info;
	const struct exec_expect *x;
	const char *tok = getenv(CPR_EXEC_ENV);
	struct cpr_ctx *ctx;
	size_t len;
	int r;

	if (argc != 2)
		FAIL("usage: helper-exec adopt|hop|none|nohelper");
	if (cpr_ctx_new(&ctx) < 0)
		FAIL("cpr_ctx_new");
	cpr_ctx_set_log_fn(ctx, log_stderr, NULL);
	r = cpr_exec_incoming(ctx, &err);
	if (strcmp(argv[1], "none") == 0) {
		cpr_ctx_free(ctx);
		return r == 0 ? 0 : 1;
	}
	if (r != 1)
		FAIL("cpr_exec_incoming: %d %s", r, err.message);
	if (strcmp(argv[1], "nohelper") == 0 ? !tok || strstr(tok, ",reaper=")
					     : !tok || !strstr(tok, ",reaper="))
		FAIL("the token %s a teardown helper: %s",
		     strcmp(argv[1], "nohelper") == 0 ? "names" : "names no", tok ? tok : "(none)");
	if (getenv(CPR_EXEC_ENV))
		FAIL("%s still set", CPR_EXEC_ENV);
	if (cpr_state_private_find(cpr_ctx_incoming_state(ctx), EXEC_PRIV_TYPE, 0,
				   (const void **)&x, &len) < 0 ||
	    len != sizeof(*x))
		FAIL("no expectations record");
	if (cpr_state_get_info(cpr_ctx_incoming_state(ctx), &info) < 0 ||
	    info.generation != x->generation)
		FAIL("generation %u, expected %u", info.generation, x->generation);
	check_rbs(ctx, x, rbs);
	/* Only the preserved fds arrived; the state memfd is gone, and with every
	 * RAM block adopted the teardown helper's release fd too. */
	if (count_fds() != (int)x->inherited)
		FAIL("%d fds open, expected %u", count_fds(), x->inherited);
	check_fds(ctx, x);
	if (cpr_fd_unclaimed(ctx, NULL, NULL) != 0)
		FAIL("unclaimed fds left");
	if (strcmp(argv[1], "hop") == 0) {
		struct exec_expect next = *x;
		char *av[] = { argv[0], (char *)"adopt", NULL };

		next.generation++;
		if (cpr_ctx_set_private(ctx, EXEC_PRIV_TYPE, 0, &next, sizeof(next)) < 0)
			FAIL("set_private");
		r = cpr_exec(ctx, "/proc/self/exe", av, NULL, &err);
		FAIL("second hop: %d %s", r, err.message);
	}
	for (uint32_t i = 0; i < x->n_rbs; i++)
		cpr_ramblock_free(rbs[i]);
	cpr_ctx_free(ctx); /* reaps the teardown helper */
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		FAIL("a child (the teardown helper?) was left unreaped");
	return 0;
}
