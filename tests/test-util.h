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
/* A usable KVM: /dev/kvm opened and its API version checked, returns the fd,
 * or -errno with the reason in @why (no device, no permission, not KVM). */
int test_kvm_open(char *why, size_t len);
/* A guest_memfd of @size bytes on a new VM: returns its fd (close-on-exec)
 * and the KVM and VM fds the caller closes too, or -errno with @why set. */
int test_guest_memfd(size_t size, int *ret_kvm, int *ret_vm, char *why, size_t len);
/* Exit 77 with @why printed, as automake's harness expects for a skip. */
void test_skip(const char *why) __attribute__((noreturn));

/* Inside a Check test: print and record that this case needs a feature the
 * machine lacks (printf-style reason), then end the case; the runner reports
 * it as skipped.  Release what the test holds before calling it. */
#define test_skip_case(...)                                \
	do {                                               \
		test_note_skip(tcase_name(), __VA_ARGS__); \
		return;                                    \
	} while (0)
void test_note_skip(const char *test, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Run @s with Check and return the exit status: Check's report per
 * CK_VERBOSITY, then TAP on stdout, one line per case, skipped ones marked. */
struct Suite;
int test_run(struct Suite *s);

/* Assert the fd count of the process is back to @before (Check assertion). */
#define test_assert_no_fd_leak(before) ck_assert_int_eq(test_count_fds(), (before))

#endif
