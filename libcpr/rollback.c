/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpr-exec rollback: a new image that refuses the state, or dies before it
 * adopted it, gives the guest back to the previous binary (cpr_exec(3),
 * ROLLBACK).
 *
 * Nothing is destroyed on the way: the preserved fds cross execve() with
 * close-on-exec cleared whichever image they land in, so going back is one
 * more exec of the previous binary with the same state memfd.  Before its
 * execve() the old image opens its own executable O_PATH (the file it was
 * started from, even if it was replaced on disk since) and writes its argv
 * and environment into a sealed memfd; both go to the new image as
 * exe=<fd>,args=<fd> in the exec token.  Two paths lead back:
 *
 *   - in the new image, when cpr_exec_incoming() refuses the state or the
 *     VMM calls cpr_exec_rollback() before it adopted its RAM blocks: it
 *     execveat()s the previous binary itself, same PID;
 *   - in the teardown helper (teardown.c), when the new image is gone
 *     without having adopted (it exited, crashed, or never used libcpr and
 *     died): it execveat()s the previous binary with arrays the old image
 *     prepared here before the clone; the guest continues in the helper's
 *     PID.
 *
 * Either way the token says rollback=1, and an image started by a rollback
 * never rolls back again: a rollback that fails ends there, no loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <unistd.h>

#include "ctx.h"
#include "internal.h"

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

extern char **environ;

#define ARGS_MAX (4u << 20) /* argv + envp of the previous image, bytes */
#define ARGS_SEALS (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

/* ---- in the old image, before execve() ---- */

static int read_cmdline(char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1), *p;
	ssize_t n;

	if (fd < 0 || !buf) {
		free(buf);
		return fd < 0 ? -errno : -ENOMEM;
	}
	while ((n = read(fd, buf + len, cap - len)) > 0 || (n < 0 && errno == EINTR)) {
		if (n > 0 && (len += (size_t)n) == cap) {
			if (cap >= ARGS_MAX || !(p = realloc(buf, 2 * cap + 1))) {
				free(buf);
				return -E2BIG;
			}
			buf = p;
			cap *= 2;
		}
	}
	if (n < 0 || len == 0) {
		free(buf);
		return n < 0 ? -errno : -ENOENT;
	}
	if (buf[len - 1] != '\0')
		buf[len++] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* argv pointers into @buf (@len bytes of NUL-terminated strings). */
static char **split(char *buf, size_t len, size_t *ret_n)
{
	size_t n = 0, k = 0;
	char **v;

	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\0';
	v = calloc(n + 2, sizeof(char *));
	if (!v)
		return NULL;
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		v[k++] = buf + i;
	*ret_n = k;
	return v;
}

/* envp without any CPR_EXEC_ENV, plus a slot for the token at [n]. */
char **exec_env_copy(char *const envp[], size_t *ret_n)
{
	size_t len = strlen(CPR_EXEC_ENV), n = 0, count = 0;
	char **env;

	while (envp && envp[count])
		count++;
	env = calloc(count + 2, sizeof(char *));
	if (!env)
		return NULL;
	for (size_t i = 0; i < count; i++)
		if (strncmp(envp[i], CPR_EXEC_ENV, len) != 0 || envp[i][len] != '=')
			env[n++] = envp[i];
	*ret_n = n;
	return env;
}

static int write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The args memfd: "<argc>\0", argc strings, then the environment's. */
static int args_memfd(char *const *argv, size_t argc, char *const *envp)
{
	_cleanup_close_ int fd = memfd_create("cpr-exec-args", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	char num[24];
	int r;

	if (fd < 0)
		return -errno;
	snprintf(num, sizeof(num), "%zu", argc);
	r = write_all(fd, num, strlen(num) + 1);
	for (size_t i = 0; r >= 0 && i < argc; i++)
		r = write_all(fd, argv[i], strlen(argv[i]) + 1);
	for (size_t i = 0; r >= 0 && envp[i]; i++)
		r = write_all(fd, envp[i], strlen(envp[i]) + 1);
	if (r < 0)
		return r;
	if (fcntl(fd, F_ADD_SEALS, ARGS_SEALS) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int rollback_prepare(struct cpr_ctx *ctx, struct rollback *rb)
{
	size_t len = 0, argc = 0, envc = 0;
	int r;

	*rb = (struct rollback)ROLLBACK_NONE;
	r = read_cmdline(&rb->strings, &len);
	if (r >= 0) {
		rb->argv = split(rb->strings, len, &argc);
		rb->envp = exec_env_copy(environ, &envc);
		r = rb->argv && rb->envp ? 0 : -ENOMEM;
	}
	if (r >= 0) {
		rb->exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
		r = rb->exe_fd < 0 ? -errno : args_memfd(rb->argv, argc, rb->envp);
	}
	if (r < 0) {
		ctx_log(ctx, LOG_WARNING, "cpr: no rollback to this binary: %s", strerror(-r));
		rollback_free(rb);
		return r;
	}
	rb->args_fd = r;
	rb->envp[envc] = rb->token; /* written once the helper's PID is known */
	return 0;
}

void rollback_free(struct rollback *rb)
{
	rb->exe_fd = cpr_close(rb->exe_fd);
	rb->args_fd = cpr_close(rb->args_fd);
	free(rb->argv);
	free(rb->envp);
	free(rb->strings);
	rb->argv = rb->envp = NULL;
	rb->strings = NULL;
}

/* The token of a rollback: the same state, for @pid, never to roll back
 * again (cpr_exec(3), EXEC TOKEN). */
int rollback_token(char *buf, size_t len, int fd, const uint8_t id[16], pid_t pid)
{
	static const char hex[] = "0123456789abcdef";
	char sid[33];
	int n;

	for (int i = 0; i < 16; i++) {
		sid[2 * i] = hex[id[i] >> 4];
		sid[2 * i + 1] = hex[id[i] & 15];
	}
	sid[32] = 0;
	n = snprintf(buf, len, "%s=fd=%d,id=%s,pid=%d,rollback=1", CPR_EXEC_ENV, fd, sid, (int)pid);
	return n > 0 && (size_t)n < len ? 0 : -E2BIG;
}

/* ---- in the new image ---- */

static bool args_fd_ok(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	return cpr_fd_check_kind(fd, CPR_FD_MEMFD) >= 0 && seals >= 0 &&
	       (seals & ARGS_SEALS) == ARGS_SEALS;
}

static bool exe_fd_ok(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * The token named the state memfd, and maybe the previous binary: keep them
 * (close-on-exec again) while a rollback may still happen, or close the
 * state memfd now when none can.  @count is the token's rollback=.
 */
void rollback_window_open(struct cpr_ctx *ctx, int state_fd, const uint8_t id[16], int exe_fd,
			  int args_fd, unsigned count)
{
	ctx->rbw.count = count;
	if (count)
		ctx_log(ctx, LOG_WARNING,
			"cpr: this image runs again by a rollback: the new image refused or "
			"lost the state");
	if (count == 0 && exe_fd >= 0 && args_fd >= 0 && exe_fd != state_fd &&
	    args_fd != state_fd && exe_fd != args_fd && exe_fd_ok(exe_fd) && args_fd_ok(args_fd)) {
		(void)fcntl(exe_fd, F_SETFD, FD_CLOEXEC);
		(void)fcntl(args_fd, F_SETFD, FD_CLOEXEC);
		(void)fcntl(state_fd, F_SETFD, FD_CLOEXEC);
		ctx->rbw.exe_fd = exe_fd;
		ctx->rbw.args_fd = args_fd;
		ctx->rbw.state_fd = state_fd;
		memcpy(ctx->rbw.id, id, sizeof(ctx->rbw.id));
		return;
	}
	if (exe_fd >= 0 || args_fd >= 0)
		ctx_log(ctx, LOG_WARNING, "cpr: exec token: %s; no rollback",
			count ? "this image is a rollback" : "exe or args fd unusable");
	close(state_fd);
}

/* Adopted, or given up: no way back from here on. */
void rollback_window_close(struct cpr_ctx *ctx)
{
	ctx->rbw.exe_fd = cpr_close(ctx->rbw.exe_fd);
	ctx->rbw.args_fd = cpr_close(ctx->rbw.args_fd);
	ctx->rbw.state_fd = cpr_close(ctx->rbw.state_fd);
}

/* The args memfd, read privately into NUL-separated strings. */
static int args_read(int fd, char **ret, size_t *ret_len)
{
	struct stat st;
	size_t off = 0;
	char *buf;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size <= 0 || (uint64_t)st.st_size > ARGS_MAX)
		return -EBADMSG;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return -ENOMEM;
	while (off < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + off, (size_t)st.st_size - off, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
		off += (size_t)n;
	}
	if (buf[off - 1] != '\0') {
		free(buf);
		return -EBADMSG;
	}
	*ret = buf;
	*ret_len = off;
	return 0;
}

/* The previous image's argv and envp (+ the rollback token) from the args
 * memfd: "<argc>\0" then argc strings then the environment's. */
struct back {
	char *buf;
	char **v; /* argv at v[1], NULL, envp, token, NULL */
	char **argv, **envp;
	char token[sizeof(CPR_EXEC_ENV) + EXEC_TOKEN_MAX];
};

static int back_build(struct cpr_ctx *ctx, struct back *b)
{
	size_t len = 0, n = 0, argc;
	char *end;
	int r = args_read(ctx->rbw.args_fd, &b->buf, &len);

	if (r < 0)
		return r;
	b->v = split(b->buf, len, &n);
	if (!b->v)
		return -ENOMEM;
	errno = 0;
	argc = strtoul(b->v[0], &end, 10);
	if (errno || *end || end == b->v[0] || argc < 1 || argc > n - 1)
		return -EBADMSG;
	/* v: [argc] argv... envp... NULL NULL: shift argv down by one to end
	 * it with a NULL before envp. */
	memmove(&b->v[0], &b->v[1], argc * sizeof(char *));
	b->v[argc] = NULL;
	b->argv = b->v;
	b->envp = b->v + argc + 1;
	b->envp[n - 1 - argc] = b->token;
	b->envp[n - argc] = NULL;
	return rollback_token(b->token, sizeof(b->token), ctx->rbw.state_fd, ctx->rbw.id, getpid());
}

static void back_free(struct back *b)
{
	free(b->v);
	free(b->buf);
}

/* The adopted fds go back across the exec: every one the state names must
 * still be open at its number.  Returns how many were cleared. */
static int slots_inherit(struct cpr_ctx *ctx, bool on, size_t upto)
{
	size_t n = ctx->incoming ? cpr_state_fd_count(ctx->incoming) : 0;

	if (upto < n)
		n = upto;
	for (size_t i = 0; i < n; i++) {
		uint32_t slot = cpr_state_fd_get(ctx->incoming, i)->slot;
		int fd = slot <= INT_MAX ? (int)slot : -1;

		if (fcntl(fd, F_SETFD, on ? 0 : FD_CLOEXEC) < 0 && on) {
			slots_inherit(ctx, false, i);
			return -EBADF;
		}
	}
	return (int)n;
}

int rollback_run(struct cpr_ctx *ctx, int why, struct cpr_error *ret_err)
{
	struct back b = { .buf = NULL };
	int r;

	if (ctx->rbw.exe_fd < 0)
		return -ENOENT;
	r = back_build(ctx, &b);
	if (r >= 0)
		r = slots_inherit(ctx, true, SIZE_MAX);
	if (r < 0) {
		back_free(&b);
		cpr_error_set(ret_err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX, "no rollback: %s",
			      r == -EBADF ? "a preserved fd was closed"
					  : "the previous argv is unreadable");
		return r;
	}
	ctx_log(ctx, LOG_WARNING, "cpr: %s (%s); rolling back to the previous binary",
		why ? "incoming exec state refused" : "rollback requested",
		why ? strerror(-why) : "cpr_exec_rollback");
	/* The helper holds the old address space: let it go first, so that it
	 * neither rolls back too nor stays a zombie of the rolled-back image. */
	teardown_reap(ctx, true);
	(void)fcntl(ctx->rbw.state_fd, F_SETFD, 0);
	syscall(SYS_execveat, ctx->rbw.exe_fd, "", b.argv, b.envp, AT_EMPTY_PATH);
	r = -errno;
	(void)fcntl(ctx->rbw.state_fd, F_SETFD, FD_CLOEXEC);
	slots_inherit(ctx, false, SIZE_MAX);
	back_free(&b);
	ctx_log(ctx, LOG_ERR, "cpr: rollback: execveat: %s", strerror(-r));
	cpr_error_set(ret_err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX,
		      "rollback to the previous binary: execveat: %s", strerror(-r));
	return r;
}

CPR_EXPORT int cpr_exec_rollback(struct cpr_ctx *ctx, struct cpr_error *ret_err)
{
	if (!ctx)
		return -EINVAL;
	if (ctx->rbw.exe_fd < 0) {
		cpr_error_set(ret_err, -ENOENT, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      ctx->rbw.count ? "this image is itself a rollback"
					     : "no previous binary to roll back to");
		return -ENOENT;
	}
	return rollback_run(ctx, 0, ret_err);
}

CPR_EXPORT int cpr_exec_rolled_back(const struct cpr_ctx *ctx)
{
	return ctx && ctx->incoming && ctx->rbw.count > 0 ? 1 : 0;
}
