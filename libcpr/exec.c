/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpr-exec: the state goes into a sealed memfd, CPR_EXEC_ENV names it
 * ("fd=<n>,id=<32 hex>,pid=<pid>[,reaper=<pid>]"), close-on-exec is cleared
 * on the listed fds right before execve() and restored if it fails.  The new
 * image validates everything before it adopts anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "ctx.h"
#include "internal.h"
#include "pipeline.h"

extern char **environ;

#define TOKEN_MAX EXEC_TOKEN_MAX
#define STATE_SEALS (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

struct token {
	int fd;
	uint8_t id[16];
	pid_t pid;
	pid_t reaper;	   /* 0 = none */
	int release;	   /* -1 = none */
	int exe;	   /* -1 = none: the previous binary, O_PATH */
	int args;	   /* -1 = none: its argv and envp */
	unsigned rollback; /* 0 = a hand-off, >= 1 = a rollback */
};

/* ---- the token ---- */

/*
 * The exec token (cpr_exec(3), EXEC TOKEN), frozen: comma-separated
 * KEY=VALUE items in any order; fd, id and pid are required, release only
 * with reaper, exe and args together (rollback.c); a known key appears
 * once and its value is strict
 * (decimal without sign or leading zero, id 32 lowercase hex digits); an
 * unknown key is ignored, so that a newer writer's token still reads here.
 */
static int parse_dec(const char *s, size_t n, long max, long *ret)
{
	long v = 0;

	if (n == 0 || (s[0] == '0' && n > 1))
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (max - (s[i] - '0')) / 10)
			return -EBADMSG;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int parse_id(const char *s, size_t n, uint8_t id[16])
{
	if (n != 32)
		return -EBADMSG;
	for (int i = 0; i < 16; i++) {
		int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EBADMSG;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

enum { TK_FD, TK_ID, TK_PID, TK_REAPER, TK_RELEASE, TK_EXE, TK_ARGS, TK_ROLLBACK, TK_N };
static const char *const token_keys[TK_N] = { "fd",	 "id",	"pid",	"reaper",
					      "release", "exe", "args", "rollback" };
/* Keys whose value is an fd number, which may be 0. */
#define TK_FDS ((1u << TK_FD) | (1u << TK_RELEASE) | (1u << TK_EXE) | (1u << TK_ARGS))

static bool token_key_ok(const char *s, size_t n)
{
	if (n == 0 || s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

static int token_item(struct token *t, unsigned *seen, const char *k, size_t kn, const char *v,
		      size_t vn)
{
	long x;
	int key = -1;

	for (int i = 0; i < TK_N; i++)
		if (strlen(token_keys[i]) == kn && memcmp(token_keys[i], k, kn) == 0)
			key = i;
	if (key < 0)
		return token_key_ok(k, kn) ? 0 : -EBADMSG; /* a newer writer's: ignored */
	if (*seen & (1u << key))
		return -EBADMSG;
	*seen |= 1u << key;
	if (key == TK_ID)
		return parse_id(v, vn, t->id);
	if (parse_dec(v, vn, INT_MAX, &x) < 0 || (!(TK_FDS & (1u << key)) && x < 1))
		return -EBADMSG;
	if (key == TK_FD)
		t->fd = (int)x;
	else if (key == TK_PID)
		t->pid = (pid_t)x;
	else if (key == TK_REAPER)
		t->reaper = (pid_t)x;
	else if (key == TK_RELEASE)
		t->release = (int)x;
	else if (key == TK_EXE)
		t->exe = (int)x;
	else if (key == TK_ARGS)
		t->args = (int)x;
	else
		t->rollback = (unsigned)x;
	return 0;
}

static int token_parse(const char *s, struct token *ret)
{
	struct token t = { .reaper = 0, .release = -1, .exe = -1, .args = -1 };
	unsigned seen = 0, helper = (1u << TK_REAPER) | (1u << TK_RELEASE);
	unsigned back = (1u << TK_EXE) | (1u << TK_ARGS);

	for (;;) {
		size_t n = strcspn(s, ","), kn = strcspn(s, "=");

		if (kn >= n || token_item(&t, &seen, s, kn, s + kn + 1, n - kn - 1) < 0)
			return -EBADMSG;
		if (!s[n])
			break;
		s += n + 1;
	}
	/* reaper alone is the helper's first form (before release= existed) */
	if ((seen & 7u) != 7u || (seen & helper) == (1u << TK_RELEASE) ||
	    ((seen & back) && (seen & back) != back))
		return -EBADMSG;
	*ret = t;
	return 0;
}

static void token_id(char sid[33], const uint8_t id[16])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		sid[2 * i] = hex[id[i] >> 4];
		sid[2 * i + 1] = hex[id[i] & 15];
	}
	sid[32] = 0;
}

/*
 * CPR_EXEC_ENV=... for the new image; exe and args only when the previous
 * binary can be run again and the token still fits what every reader takes.
 */
static int token_format(char *buf, size_t len, int fd, const uint8_t id[16],
			const struct teardown *t, const struct rollback *rb)
{
	size_t pre = strlen(CPR_EXEC_ENV) + 1;
	char sid[33];
	int n;

	token_id(sid, id);
	n = snprintf(buf, len, "%s=fd=%d,id=%s,pid=%d", CPR_EXEC_ENV, fd, sid, (int)getpid());
	if (n > 0 && t->pid > 0)
		n += snprintf(buf + n, len - (size_t)n, ",reaper=%d,release=%d", (int)t->pid,
			      t->wfd);
	if (n < 0 || (size_t)n >= len || (size_t)n - pre >= TOKEN_MAX)
		return -E2BIG;
	if (rb->exe_fd >= 0) {
		int k = snprintf(buf + n, len - (size_t)n, ",exe=%d,args=%d", rb->exe_fd,
				 rb->args_fd);

		if (k > 0 && (size_t)(n + k) < len && (size_t)(n + k) - pre < TOKEN_MAX)
			return 0;
		buf[n] = '\0'; /* no rollback rather than a token too long */
	}
	return 0;
}

/* ---- outgoing ---- */

static int state_memfd(const void *buf, size_t len)
{
	_cleanup_close_ int fd = memfd_create("cpr-exec-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t off = 0;

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, (const uint8_t *)buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS, STATE_SEALS) < 0)
		return -errno;
	return TAKE_FD(fd);
}

/* Clear FD_CLOEXEC on @fds, remembering the old flags; all or nothing. */
static int cloexec_clear(struct cpr_ctx *ctx, const int *fds, size_t n, int *old)
{
	for (size_t i = 0; i < n; i++) {
		old[i] = fcntl(fds[i], F_GETFD);
		if (old[i] < 0 || fcntl(fds[i], F_SETFD, old[i] & ~FD_CLOEXEC) < 0) {
			int r = -errno;

			ctx_log(ctx, LOG_ERR, "cpr: preserved fd %d: %s", fds[i], strerror(-r));
			while (i-- > 0)
				(void)fcntl(fds[i], F_SETFD, old[i]);
			return r;
		}
	}
	return 0;
}

static void cloexec_restore(const int *fds, size_t n, const int *old)
{
	for (size_t i = 0; i < n; i++)
		(void)fcntl(fds[i], F_SETFD, old[i]);
}

struct exec_plan {
	struct pipe_out out; /* the state, its stream and the preserved fds */
	int *fds;	     /* n + 4: the preserved fds, the state memfd, then the release
			      * fd, the previous binary and its args where they exist */
	int *old;	     /* their flags before */
	size_t n;
	int state_fd;
	char **env;
	size_t env_n;
	uint8_t id[16];
	struct rollback rb;
	char token[sizeof(CPR_EXEC_ENV) + TOKEN_MAX];
};

static void plan_free(struct exec_plan *p)
{
	pipeline_export_done(&p->out);
	free(p->fds);
	free(p->old);
	cpr_close(p->state_fd);
	free(p->env);
	rollback_free(&p->rb);
}

/* The pipeline's export, its stream in a sealed memfd, the fd list and the
 * environment for execve(). */
static int plan_build(struct cpr_ctx *ctx, char *const envp[], struct exec_plan *p,
		      struct cpr_error *ret_err)
{
	int r;

	r = pipeline_export(ctx, CPR_MODE_EXEC, "exec", &p->out, ret_err);
	if (r < 0)
		return r;
	p->n = p->out.n_fds;
	memcpy(p->id, p->out.id, sizeof(p->id));
	p->state_fd = state_memfd(p->out.buf, p->out.len);
	if (p->state_fd < 0)
		return cpr_fail(ret_err, p->state_fd, NO_TYPE, NO_INST, UINT64_MAX,
				"the state memfd: %s", strerror(-p->state_fd));
	p->fds = calloc(p->n + 4, sizeof(int));
	p->old = calloc(p->n + 4, sizeof(int));
	p->env = exec_env_copy(envp, &p->env_n);
	if (!p->fds || !p->old || !p->env)
		return cpr_fail(ret_err, -ENOMEM, NO_TYPE, NO_INST, UINT64_MAX, "out of memory");
	if (p->n)
		memcpy(p->fds, p->out.fds, p->n * sizeof(int));
	p->fds[p->n] = p->state_fd;
	p->env[p->env_n] = p->token;
	rollback_prepare(ctx, &p->rb); /* without it, no rollback: not fatal */
	return 0;
}

/* Make the new image's token, and the one the helper would roll back with. */
static int plan_tokens(struct exec_plan *p, struct teardown *t)
{
	int r = token_format(p->token, sizeof(p->token), p->state_fd, p->id, t, &p->rb);

	if (r < 0 || t->pid <= 0 || p->rb.exe_fd < 0)
		return r;
	return rollback_token(p->rb.token, sizeof(p->rb.token), p->state_fd, p->id, t->pid);
}

/* The errnos cpr_exec(3) lists (and, for cpr_exec(), any of execve(2)
 * itself); anything else is EIO, its message naming the original. */
static const int exec_errnos[] = { EINVAL, EALREADY, EBUSY,  EPROTONOSUPPORT, EBADF, E2BIG,
				   ENOMEM, ENOENT,   EACCES, EPERM,	      0 };
static const int incoming_errnos[] = { EINVAL, EALREADY,	EBADMSG, ESRCH,	 EBADF,
				       EPROTO, EMEDIUMTYPE,	EFBIG,	 ESTALE, EEXIST,
				       E2BIG,  EPROTONOSUPPORT, ENOMEM,	 0 };

CPR_EXPORT int cpr_exec(struct cpr_ctx *ctx, const char *path, char *const argv[],
			char *const envp[], struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;
	struct exec_plan p = { .state_fd = -EBADF, .rb = ROLLBACK_NONE };
	struct teardown t;
	size_t k;
	int r;

	if (!ctx || !path || !*path || !argv || !argv[0])
		return pipeline_finish(cpr_fail(&e, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
						"no context, path or argv[0]"),
				       &e, ret_err, exec_errnos, -EIO);
	teardown_reap(ctx, true);
	r = plan_build(ctx, envp ?: environ, &p, &e);
	if (r < 0) {
		r = pipeline_finish(r, &e, ret_err, exec_errnos, -EIO);
		goto out;
	}
	r = dma_handoff_begin(ctx, &e); /* type1 DMA: addresses invalid from here */
	if (r < 0) {
		r = pipeline_finish(r, &e, ret_err, exec_errnos, -EIO);
		goto out;
	}
	teardown_start(ctx, &t, p.fds, p.n + 1, &p.rb);
	k = p.n + 1;
	if (t.pid > 0)
		p.fds[k++] = t.wfd;
	if (p.rb.exe_fd >= 0) {
		p.fds[k++] = p.rb.exe_fd;
		p.fds[k++] = p.rb.args_fd;
	}
	r = plan_tokens(&p, &t);
	if (r >= 0)
		r = cloexec_clear(ctx, p.fds, k, p.old);
	if (r < 0) {
		teardown_stop(&t);
		dma_handoff_abort(ctx);
		cpr_error_set(ret_err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      r == -E2BIG ? "the exec token is too long: %s"
					  : "a preserved fd is no longer open: %s",
			      strerror(-r));
		goto out;
	}
	execve(path, argv, p.env);
	r = -errno;
	cloexec_restore(p.fds, k, p.old);
	teardown_stop(&t);
	dma_handoff_abort(ctx);
	cpr_error_set(ret_err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX, "execve(%s): %s", path,
		      strerror(-r));
	ctx_log(ctx, LOG_ERR, "cpr: execve(%s): %s; everything restored", path, strerror(-r));
out:
	plan_free(&p);
	return r;
}

/* ---- incoming ---- */

/* The token's fd must be a sealed memfd of sane size; read it privately. */
static int state_read(int fd, void **ret_buf, size_t *ret_len, struct cpr_error *ret_err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;
	int seals;
	size_t off = 0;

	if (fstat(fd, &st) < 0) {
		cpr_error_set(ret_err, -EBADF, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "%s names fd %d, which is not open", CPR_EXEC_ENV, fd);
		return -EBADF;
	}
	seals = fcntl(fd, F_GET_SEALS);
	if (cpr_fd_check_kind(fd, CPR_FD_MEMFD) < 0 || seals < 0 ||
	    (seals & STATE_SEALS) != STATE_SEALS) {
		cpr_error_set(ret_err, -EMEDIUMTYPE, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "%s names fd %d, which is not a sealed memfd", CPR_EXEC_ENV, fd);
		return -EMEDIUMTYPE;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > CPR_STREAM_MAX) {
		cpr_error_set(ret_err, -EFBIG, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "the exec state holds %lld bytes, more than the limit of %u",
			      (long long)st.st_size, CPR_STREAM_MAX);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (off < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + off, (size_t)st.st_size - off, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
	}
	*ret_buf = TAKE_PTR(buf);
	*ret_len = off;
	return 0;
}

static int token_get(struct token *t, struct cpr_error *ret_err)
{
	const char *v = getenv(CPR_EXEC_ENV);
	char copy[TOKEN_MAX];
	size_t len;

	if (!v)
		return 0;
	len = strnlen(v, TOKEN_MAX);
	memcpy(copy, v, len < TOKEN_MAX ? len + 1 : TOKEN_MAX);
	unsetenv(CPR_EXEC_ENV);
	if (len >= TOKEN_MAX || token_parse(copy, t) < 0) {
		char q[80];

		cpr_error_set(ret_err, -EBADMSG, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "malformed %s \"%s\"", CPR_EXEC_ENV,
			      cpr_quote(q, sizeof(q), copy, len < TOKEN_MAX ? len : TOKEN_MAX));
		return -EBADMSG;
	}
	if (t->pid != getpid()) {
		cpr_error_set(ret_err, -ESRCH, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "%s is meant for pid %d, this is pid %d: ignored", CPR_EXEC_ENV,
			      (int)t->pid, (int)getpid());
		return -ESRCH;
	}
	return 1;
}

/* The state memfd read into private memory, then the pipeline's import of
 * it and of the fds it names, inherited across execve() (slot = fd number). */
static int incoming_import(struct cpr_ctx *ctx, const struct token *t, struct pipe_in *in,
			   struct cpr_error *e)
{
	void *buf = NULL;
	size_t len = 0;
	int r;

	r = state_read(t->fd, &buf, &len, e);
	if (r < 0)
		return r;
	/* A sealed memfd the token named for this pid: ours, kept for a
	 * rollback (rollback.c) or closed now. */
	rollback_window_open(ctx, t->fd, t->id, t->exe, t->args, t->rollback);
	r = pipeline_import_parse(in, buf, len, t->id, 0, e);
	free(buf);
	if (r >= 0)
		r = pipeline_import_adopt(in, NULL, false, e);
	return r;
}

/*
 * A refused state: back to the previous binary if it can be run (this then
 * does not return; nothing was adopted, so every inherited fd still crosses
 * execve()), else every fd it names is ours (receiving owns): close them.
 */
static void incoming_refused(struct cpr_ctx *ctx, const struct pipe_in *in, int state_fd, int r)
{
	size_t n = in->st ? cpr_state_fd_count(in->st) : 0;

	rollback_run(ctx, r, NULL);
	rollback_window_close(ctx);

	ctx_log(ctx, LOG_ERR, "cpr: incoming exec state refused; closing its %zu fds", n);
	for (size_t i = 0; i < n; i++) {
		uint32_t slot = cpr_state_fd_get(in->st, i)->slot;

		if (slot <= INT_MAX && (int)slot != state_fd)
			close((int)slot);
	}
}

static int exec_incoming(struct cpr_ctx *ctx, struct cpr_error *e)
{
	struct pipe_in in = { .ctx = ctx, .slots = PIPE_SLOT_FD };
	struct token t;
	int r;

	if (!ctx)
		return cpr_fail(e, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "no context");
	exec_probe_answer(); /* returns only when this run is no probe */
	r = pipeline_import_ready(&in, e);
	if (r < 0)
		return r;
	r = token_get(&t, e);
	if (r <= 0)
		return r;
	if (t.reaper > 0) {
		teardown_adopt(ctx, t.reaper, t.release);
		teardown_reap(ctx, false);
	}
	in.exclude_fd = t.fd;
	r = incoming_import(ctx, &t, &in, e);
	if (r < 0) {
		incoming_refused(ctx, &in, t.fd, r);
		pipeline_import_done(&in);
		teardown_release(ctx);
		return r;
	}
	/* Inherited across exec with close-on-exec cleared: set it again.  (Fds
	 * received over a socket arrive close-on-exec already.) */
	for (size_t i = 0; i < in.n_fds; i++)
		(void)fcntl(in.fds[i], F_SETFD, FD_CLOEXEC);
	pipeline_import_done(&in);
	fdreg_release_if_adopted(ctx); /* a state without RAM blocks */
	return 1;
}

CPR_EXPORT int cpr_exec_incoming(struct cpr_ctx *ctx, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;

	return pipeline_finish(exec_incoming(ctx, &e), &e, ret_err, incoming_errnos, -EIO);
}
