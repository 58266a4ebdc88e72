/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A new image of cprd that fails to take over, for the upgrade tests: what
 * it does is the name it was copied to (the daemon runs it with its own
 * argv, so the name of the executable is all it has):
 *
 *   exit     exits at once with status 3
 *   crash    dies of SIGSEGV in main (a store to NULL)
 *   sigsys   makes a system call cprd.policy kills (the filter it inherited)
 *   hang     never answers
 *   badconf  executes the real cprd ($HELPER_CPRD) with the daemon's argv and
 *            --config $HELPER_CONF, a file it refuses
 *
 * A plain C library program, built without sanitizers: it starts under
 * cprd.policy.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *own_name(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	const char *slash;

	if (n < 0)
		return "";
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	return slash ? slash + 1 : buf;
}

static int run_badconf(int argc, char *argv[])
{
	const char *cprd = getenv("HELPER_CPRD"), *conf = getenv("HELPER_CONF");
	char **args = calloc((size_t)argc + 3, sizeof(char *));

	if (!cprd || !conf || !args)
		return 2;
	for (int i = 0; i < argc; i++)
		args[i] = argv[i];
	args[argc] = (char *)"--config";
	args[argc + 1] = (char *)conf;
	execv(cprd, args);
	return 2;
}

int main(int argc, char *argv[])
{
	char buf[PATH_MAX];
	const char *name = own_name(buf, sizeof(buf));

	if (strcmp(name, "exit") == 0)
		return 3;
	if (strcmp(name, "crash") == 0) {
		int *volatile nowhere = NULL;

		*nowhere = 1;
	}
	if (strcmp(name, "sigsys") == 0)
		syscall(SYS_mknodat, AT_FDCWD, "/nonexistent", 0, 0);
	if (strcmp(name, "hang") == 0)
		for (;;)
			poll(NULL, 0, -1); /* pause() is no call cprd.policy allows */
	if (strcmp(name, "badconf") == 0)
		return run_badconf(argc, argv);
	return 4;
}
