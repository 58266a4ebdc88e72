/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the Check suites: fd accounting, real memfds, paths. */
#ifndef CPR_TEST_UTIL_H
#define CPR_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Number of open fds in this process (entries of /proc/self/fd). */
int test_count_fds(void);
/* A memfd of @size bytes (MFD_CLOEXEC|MFD_ALLOW_SEALING), or -errno. */
int test_memfd(const char *name, size_t size);
/* Read a whole file into a malloc()ed buffer; returns length or -errno. */
long test_read_file(const char *path, void **ret_buf);
/* $top_srcdir / $top_builddir (set by the test harness), or ".". */
const char *test_srcdir(void);
const char *test_builddir(void);
/* Path under the build tree: builddir "/" rel, in a static buffer. */
const char *test_build_path(const char *rel);
/* Exit 77 with @why printed, as automake's harness expects for a skip. */
void test_skip(const char *why) __attribute__((noreturn));

/* Run @s with Check (output per CK_VERBOSITY) and return the exit status. */
struct Suite;
int test_run(struct Suite *s);

/* Assert the fd count of the process is back to @before (Check assertion). */
#define test_assert_no_fd_leak(before) ck_assert_int_eq(test_count_fds(), (before))

#endif
