/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The exec pre-flight: before the guest is paused, run the target binary
 * with the VMM's own argv and CPR_EXEC_PROBE=<fd> and ask what it accepts.
 * The target answers from cpr_exec_incoming(), which every libcpr VMM calls
 * early at start, with one line
 *
 *	cpr-probe 1 levels=MIN-MAX token=1
 *
 * and exits 0.  A target that exits before answering (it refused its
 * command line, say), answers nothing (no libcpr, or one older than the
 * probe) or cannot read the state this context writes is refused here,
 * while the guest still runs, naming why.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctx.h"
#include "internal.h"
#include "stream.h"

#define PROBE_ANSWER_MAX 256
#define PROBE_TIMEOUT_MS 10000
#define PROBE_TOKEN_VERSION 1 /* of the exec token, cpr_exec(3) EXEC TOKEN */

extern char **environ;

/* In the target: answer a probe, if this run is one, and exit. */
void exec_probe_answer(void)
{
	const char *e = getenv(CPR_EXEC_PROBE_ENV);
	char line[PROBE_ANSWER_MAX];
	int fd, n;

	if (!e)
		return;
	fd = atoi(e);
	n = snprintf(line, sizeof(line), "cpr-probe 1 levels=%u-%u token=%u\n", CPR_LEVEL_MIN,
		     CPR_LEVEL_MAX, PROBE_TOKEN_VERSION);
	_exit(fd > 2 && write(fd, line, (size_t)n) == n ? 0 : 1);
}

/* envp plus CPR_EXEC_PROBE=<fd>, without an exec token. */
static char **probe_env(char *const envp[], int fd, char *buf, size_t len)
{
	size_t n = 0, k = 0;
	char **env;

	while (envp[n])
		n++;
	env = calloc(n + 2, sizeof(char *));
	if (!env)
		return NULL;
	snprintf(buf, len, "%s=%d", CPR_EXEC_PROBE_ENV, fd);
	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], CPR_EXEC_ENV "=", strlen(CPR_EXEC_ENV) + 1) != 0 &&
		    strncmp(envp[i], CPR_EXEC_PROBE_ENV "=", strlen(CPR_EXEC_PROBE_ENV) + 1) != 0)
			env[k++] = envp[i];
	env[k++] = buf;
	return env;
}

static pid_t probe_spawn(const char *path, char *const argv[], char **env, int wfd)
{
	pid_t pid = fork();

	if (pid == 0) {
		/* the answer fd alone crosses the exec; stdio goes nowhere */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (fcntl(wfd, F_SETFD, 0) < 0 || null < 0 || dup2(null, 0) < 0 ||
		    dup2(null, 1) < 0)
			_exit(127);
		/* its own group, killed whole on a timeout; confined, where the
		 * kernel has seccomp (probe-confine.c) */
		(void)setpgid(0, 0);
		(void)exec_probe_confine();
		execve(path, argv, env);
		_exit(127);
	}
	return pid;
}

/* Read the answer: until EOF, a full line, or the deadline. */
static ssize_t probe_read(int rfd, char *buf, size_t len)
{
	struct timespec t0;
	size_t off = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (off < len - 1 && !memchr(buf, '\n', off)) {
		struct pollfd p = { .fd = rfd, .events = POLLIN };
		struct timespec t;
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = PROBE_TIMEOUT_MS -
		       ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -ETIMEDOUT;
		n = read(rfd, buf + off, len - 1 - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	return (ssize_t)off;
}

static int probe_judge(struct cpr_ctx *ctx, const char *path, const char *answer, int status,
		       struct cpr_error *err)
{
	unsigned lo = 0, hi = 0, tok = 0, level = cpr_ctx_get_target_level(ctx);

	if (sscanf(answer, "cpr-probe 1 levels=%u-%u token=%u", &lo, &hi, &tok) != 3) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			cpr_error_set(err, -ENOEXEC, UINT32_MAX, UINT32_MAX, UINT64_MAX,
				      "%s cannot be executed", path);
		else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			cpr_error_set(err, -ENOEXEC, UINT32_MAX, UINT32_MAX, UINT64_MAX,
				      "%s exited with status %d before it answered (does it take "
				      "this command line? is its libcpr older than the probe?)",
				      path, WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			cpr_error_set(err, -ENOEXEC, UINT32_MAX, UINT32_MAX, UINT64_MAX,
				      "%s was killed by signal %d before it answered", path,
				      WTERMSIG(status));
		else
			cpr_error_set(err, -ENOEXEC, UINT32_MAX, UINT32_MAX, UINT64_MAX,
				      "%s gave no answer: it does not call cpr_exec_incoming() "
				      "at start, or its libcpr has no probe",
				      path);
		return -ENOEXEC;
	}
	if (level < lo || level > hi) {
		cpr_error_set(err, -EPROTONOSUPPORT, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "%s reads state levels %u..%u, this context writes level %u", path,
			      lo, hi, level);
		return -EPROTONOSUPPORT;
	}
	if (tok < PROBE_TOKEN_VERSION) {
		cpr_error_set(err, -EPROTONOSUPPORT, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "%s reads exec token version %u, this library writes %u", path, tok,
			      PROBE_TOKEN_VERSION);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

CPR_EXPORT int cpr_exec_probe(struct cpr_ctx *ctx, const char *path, char *const argv[],
			      char *const envp[], struct cpr_error *ret_err)
{
	char answer[PROBE_ANSWER_MAX] = "", var[64];
	int p[2], status = 0, r;
	ssize_t n;
	char **env;
	pid_t pid;

	if (!ctx || !path || !*path || !argv || !argv[0])
		return -EINVAL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	env = probe_env(envp ? envp : environ, p[1], var, sizeof(var));
	pid = env ? probe_spawn(path, argv, env, p[1]) : -1;
	r = pid < 0 ? (env ? -errno : -ENOMEM) : 0;
	free(env);
	cpr_close(p[1]);
	n = r == 0 ? probe_read(p[0], answer, sizeof(answer)) : 0;
	cpr_close(p[0]);
	if (r < 0)
		return r;
	if (n == -ETIMEDOUT)
		if (kill(-pid, SIGKILL) < 0) /* with whatever it started */
			kill(pid, SIGKILL);  /* (its setpgid() failed) */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n == -ETIMEDOUT) {
		cpr_error_set(ret_err, -ETIMEDOUT, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "%s did not answer the probe within %d ms", path, PROBE_TIMEOUT_MS);
		return -ETIMEDOUT;
	}
	r = probe_judge(ctx, path, answer, status, ret_err);
	ctx_log(ctx, r < 0 ? LOG_ERR : LOG_INFO, "cpr: probe of %s: %s", path,
		r < 0 ? ret_err && ret_err->message[0] ? ret_err->message : strerror(-r)
		      : "it takes this state");
	return r;
}
