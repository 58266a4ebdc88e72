/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Check runner every suite's main() uses (its own object, so programs
 * that only need the fd helpers do not pull Check in).
 *
 * A suite reports in TAP, one line per test, so the harness counts every
 * case.  A case that needs a feature this machine lacks ends with
 * test_skip_case(): the forked test records its name and reason in a file,
 * and the runner turns its "ok" line into "ok ... # SKIP reason". */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test-util.h"

#define SKIP_LINE_MAX 512

/* Set before the tests fork, so every test process knows it. */
static char skip_path[256];

void test_note_skip(const char *test, const char *fmt, ...)
{
	char line[SKIP_LINE_MAX];
	va_list ap;
	int n, fd;

	n = snprintf(line, sizeof(line), "%s\t", test);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	/* One reason is one line. */
	for (char *p = line + n; *p; p++)
		if (*p == '\n' || *p == '\t' || *p == '#')
			*p = ' ';
	fprintf(stderr, "skipping %s: %s\n", test, line + n);
	strcat(line, "\n");
	if (!skip_path[0])
		return;
	fd = open(skip_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, line, strlen(line)) < 0)
		fprintf(stderr, "%s: %s\n", skip_path, strerror(errno));
	close(fd);
}

/* The reason recorded for the test named in a TAP line, or NULL. */
static const char *skip_reason(char *skips, const char *tap, char *buf, size_t len)
{
	for (char *l = skips; l && *l;) {
		char *nl = strchr(l, '\n'), *tab = strchr(l, '\t');
		char key[SKIP_LINE_MAX];

		if (!nl || !tab || tab > nl)
			break;
		snprintf(key, sizeof(key), ":%.*s: ", (int)(tab - l), l);
		if (strstr(tap, key)) {
			snprintf(buf, len, "%.*s", (int)(nl - tab - 1), tab + 1);
			return buf;
		}
		l = nl + 1;
	}
	return NULL;
}

/* Copy Check's TAP to stdout, marking the skipped cases. */
static void print_tap(const char *tap_path)
{
	char *skips = NULL, line[4096], reason[SKIP_LINE_MAX];
	FILE *f;

	if (test_read_file(skip_path, (void **)&skips) < 0)
		skips = NULL;
	f = fopen(tap_path, "re");
	if (!f) {
		printf("Bail out! %s: %s\n", tap_path, strerror(errno));
		free(skips);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "ok ", 3) && skip_reason(skips, line, reason, sizeof(reason)))
			printf("%s # SKIP %s\n", line, reason);
		else
			printf("%s\n", line);
	}
	fclose(f);
	free(skips);
	fflush(stdout);
}

static int temp_file(char *path, size_t len, const char *what)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, len, "%s/cpr-%s.XXXXXX", dir && *dir ? dir : "/tmp", what);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

int test_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	char tap_path[256];
	int failed;

	if (temp_file(skip_path, sizeof(skip_path), "skips") < 0 ||
	    temp_file(tap_path, sizeof(tap_path), "tap") < 0) {
		printf("Bail out! cannot create a temporary file: %s\n", strerror(errno));
		srunner_free(sr);
		return EXIT_FAILURE;
	}
	srunner_set_tap(sr, tap_path);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	print_tap(tap_path);
	unlink(tap_path);
	unlink(skip_path);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
