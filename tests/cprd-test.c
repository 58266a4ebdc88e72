/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cpr/state.h>

#include "internal.h"
#include "client.h"
#include "cprd-test.h"
#include "test-util.h"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void exec_daemon(const struct cprd_daemon *d, const char *exe, const char *conf,
			const char *const *args)
{
	const char *argv[32];
	size_t n = 0;
	int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
	/* a failed test exits without its teardown: the daemon goes with it */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	argv[n++] = exe;
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	argv[n++] = "--policy";
	argv[n++] = SRC_POLICYDIR "/cprd.policy";
	argv[n++] = "--mode"; /* the tests connect as other uids too */
	argv[n++] = "0666";
	argv[n++] = "--config";
	argv[n++] = conf;
	for (size_t i = 0; args && args[i] && n < ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
#ifdef __SANITIZE_ADDRESS__
	{
		/* LeakSanitizer stops the world with ptrace(2) at exit, which
		 * cprd.policy rightly kills: leaks are checked by the runs without
		 * the filter (test_store_lifecycle_no_sandbox).  A small quarantine
		 * keeps VmRSS meaningful for the growth test. */
		bool sandboxed = true;
		char opts[512];

		for (size_t i = 0; i < n; i++)
			sandboxed &= strcmp(argv[i], "--no-sandbox") != 0;
		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=1%s",
			 getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "",
			 getenv("ASAN_OPTIONS") ? ":" : "", sandboxed ? ":detect_leaks=0" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	execv(exe, (char *const *)argv);
	_exit(127);
}

void cprd_daemon_start(struct cprd_daemon *d, const char *exe, const char *conf,
		       const char *const *args)
{
	char confpath[128], path[4096], text[8192];

	snprintf(d->dir, sizeof(d->dir), "/tmp/cprd-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	chmod(d->dir, 0755); /* other uids of the tests reach the socket */
	snprintf(d->sock, sizeof(d->sock), "%s/sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/log", d->dir);
	snprintf(confpath, sizeof(confpath), "%s/cprd.conf", d->dir);
	/* The suites store as several uids under names of their choice: every
	 * name is open to every uid unless @conf says otherwise (the default
	 * namespaces are tested on their own, test_namespaces_default). */
	snprintf(text, sizeof(text), "%s%s", conf ? conf : "# defaults\n",
		 conf && strstr(conf, "namespace") ? "" : "namespace = * *\n");
	write_file(confpath, text);
	snprintf(path, sizeof(path), "%s", test_build_path(exe ? exe : "cprd/cprd"));
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0)
		exec_daemon(d, path, confpath, args);
	for (int i = 0; i < 500; i++) {
		int fd;

		if (cprd_connect(d->sock, &fd) == 0) {
			close(fd);
			return;
		}
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid)
			break;
		usleep(10000);
	}
	ck_abort_msg("cprd did not start (see %s)", d->log);
}

static void remove_dir(const char *dir)
{
	char path[512];
	DIR *dd = opendir(dir);
	struct dirent *de;

	while (dd && (de = readdir(dd))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (dd)
		closedir(dd);
	rmdir(dir);
}

int cprd_daemon_wait(struct cprd_daemon *d)
{
	int status = 0;

	while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
		;
	d->pid = 0;
	return status;
}

void cprd_daemon_stop(struct cprd_daemon *d)
{
	int status;

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		status = cprd_daemon_wait(d);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			char cmd[160];

			snprintf(cmd, sizeof(cmd), "cat %s >&2", d->log);
			(void)!system(cmd);
		}
		remove_dir(d->dir);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "cprd exited with status 0x%x", status);
		return;
	}
	remove_dir(d->dir);
}

long cprd_daemon_rss_kb(const struct cprd_daemon *d)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int reply_int(struct json_object *reply, const char *key)
{
	struct json_object *v;

	ck_assert_msg(json_object_object_get_ex(reply, key, &v), "no \"%s\" in the reply", key);
	return json_object_get_int(v);
}

void cprd_test_debug(int sock, struct cprd_debug *ret)
{
	struct json_object *reply = NULL;

	ck_assert_int_eq(cprd_call_name(sock, "debug", NULL, &reply), 0);
	ret->fds_open = reply_int(reply, "fds_open");
	ret->fds_held = reply_int(reply, "fds_held");
	ret->fds_queued = reply_int(reply, "fds_queued");
	ret->bundles = reply_int(reply, "bundles");
	ret->connections = reply_int(reply, "connections");
	json_object_put(reply);
}

/* "debug" on a fresh connection; its own fds: the socket and the peer pidfd. */
static int daemon_debug(const struct cprd_daemon *d, struct cprd_debug *ret)
{
	struct json_object *reply = NULL, *peer, *v;
	int sock = cprd_test_connect(d), own = 1;

	ck_assert_int_eq(cprd_call_name(sock, "hello", NULL, &reply), 0);
	ck_assert(json_object_object_get_ex(reply, "peer", &peer));
	if (json_object_object_get_ex(peer, "pidfd", &v) && json_object_get_boolean(v))
		own++;
	json_object_put(reply);
	cprd_test_debug(sock, ret);
	close(sock);
	return own;
}

void cprd_daemon_sync(const struct cprd_daemon *d)
{
	struct cprd_debug dbg;

	daemon_debug(d, &dbg);
}

int cprd_daemon_fds(const struct cprd_daemon *d)
{
	struct cprd_debug dbg;
	int own = daemon_debug(d, &dbg);

	return dbg.fds_open - own;
}

int cprd_test_connect(const struct cprd_daemon *d)
{
	int fd = -1;

	ck_assert_int_eq(cprd_connect(d->sock, &fd), 0);
	return fd;
}

int cprd_test_stream(size_t n)
{
	struct cpr_state *st = NULL;
	struct cpr_error err = { 0 };
	void *buf = NULL;
	size_t len = 0;
	int fd;

	ck_assert_int_eq(cpr_state_new(&st), 0);
	cpr_state_set_producer(st, "cprd-test", 1);
	for (size_t i = 0; i < n; i++) {
		struct cpr_state_fd f = { .slot = (uint32_t)i,
					  .kind = CPR_FD_MEMFD,
					  .id = (int32_t)i };

		snprintf(f.name, sizeof(f.name), "ram");
		ck_assert_int_ge(cpr_state_add_fd(st, &f), 0);
	}
	ck_assert_msg(cpr_state_encode(st, 0, NULL, NULL, &buf, &len, &err) == 0, "%s",
		      err.message);
	cpr_state_free(st);
	fd = test_memfd("stream", 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	free(buf);
	return fd;
}

int *cprd_test_memfds(size_t n, const char *tag)
{
	int *fds = calloc(n ? n : 1, sizeof(int));

	ck_assert_ptr_nonnull(fds);
	for (size_t i = 0; i < n; i++) {
		char text[64];
		int len = snprintf(text, sizeof(text), "fd %zu %s", i, tag);

		fds[i] = test_memfd("bundle", 0);
		ck_assert_int_ge(fds[i], 0);
		ck_assert_int_eq(write(fds[i], text, (size_t)len), len);
	}
	return fds;
}

void cprd_test_close_fds(int *fds, size_t n)
{
	for (size_t i = 0; fds && i < n; i++)
		close(fds[i]);
	free(fds);
}

bool cprd_test_memfd_is(int fd, size_t i, const char *tag)
{
	char want[64], got[64] = "";
	int len = snprintf(want, sizeof(want), "fd %zu %s", i, tag);
	ssize_t n = pread(fd, got, sizeof(got) - 1, 0);

	return n == len && memcmp(want, got, (size_t)len) == 0;
}

int cprd_test_store(int sock, const char *name, size_t n, const char *tag, struct json_object *opts)
{
	int *fds = cprd_test_memfds(n, tag), stream = cprd_test_stream(n);
	int r = cprd_store(sock, name, opts, stream, fds, n, NULL);

	close(stream);
	cprd_test_close_fds(fds, n);
	return r;
}

int cprd_test_claim_verify(int sock, const char *name, size_t n, const char *tag, uint64_t lease_ms,
			   char *token, size_t token_len)
{
	struct json_object *reply = NULL, *t;
	int stream = -1, *fds = NULL;
	size_t got = 0;
	int r = cprd_claim(sock, name, lease_ms, &reply, &stream, &fds, &got);

	if (r < 0) {
		json_object_put(reply);
		return r;
	}
	ck_assert_uint_eq(got, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(cprd_test_memfd_is(fds[i], i, tag), "fd %zu has the wrong content",
			      i);
	{
		struct cpr_state *st = NULL;
		void *buf = NULL;
		struct stat sb;

		ck_assert_int_eq(fstat(stream, &sb), 0);
		buf = malloc((size_t)sb.st_size);
		ck_assert_int_eq(pread(stream, buf, (size_t)sb.st_size, 0), sb.st_size);
		ck_assert_int_eq(cpr_state_parse(buf, (size_t)sb.st_size, 0, &st, NULL), 0);
		ck_assert_uint_eq(cpr_state_fd_count(st), n);
		cpr_state_free(st);
		free(buf);
	}
	ck_assert(json_object_object_get_ex(reply, "token", &t));
	snprintf(token, token_len, "%s", json_object_get_string(t));
	json_object_put(reply);
	close(stream);
	cprd_test_close_fds(fds, n);
	return 0;
}

void cprd_test_become(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		_exit(99);
}

const char *cprd_test_error(struct json_object *reply)
{
	struct json_object *e;

	if (reply && json_object_object_get_ex(reply, "error", &e))
		return json_object_get_string(e);
	return "";
}

const char *cprd_test_bundle_state(const struct cprd_daemon *d, const char *name)
{
	static char state[16];
	struct json_object *reply = NULL, *b, *s;
	int sock = cprd_test_connect(d);

	if (cprd_call_name(sock, "show", name, &reply) < 0) {
		json_object_put(reply);
		close(sock);
		return "absent";
	}
	ck_assert(json_object_object_get_ex(reply, "bundle", &b));
	ck_assert(json_object_object_get_ex(b, "state", &s));
	snprintf(state, sizeof(state), "%s", json_object_get_string(s));
	json_object_put(reply);
	close(sock);
	return state;
}

static struct cprd_daemon *fixture_daemon;

static void fixture_setup(void)
{
	cprd_daemon_start(fixture_daemon, NULL, NULL, NULL);
}

static void fixture_teardown(void)
{
	cprd_daemon_stop(fixture_daemon);
}

void cprd_test_fixture(TCase *tc, struct cprd_daemon *d)
{
	fixture_daemon = d;
	tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
}
