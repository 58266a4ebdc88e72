/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the two halves of check-policy: text and filter, live seccomp. */
#ifndef CPR_CHECK_POLICY_H
#define CPR_CHECK_POLICY_H

#include <check.h>

#include <cpr/policy.h>

/* Environment variable that turns the test binary into an exec helper. */
#define HELPER_ENV "CPR_CHECK_POLICY_HELPER"
#define HELPER_OK 42

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* A child's exit status when it could not even set itself up. */
#define CHILD_SETUP_FAILED 250

/* A policy from a string; fails the test if it does not parse. */
struct cpr_policy *policy_from_text(const char *text);
/* A shipped policy from $top_srcdir/policy. */
struct cpr_policy *policy_shipped(const char *name);

/* check-policy-apply.c: children and the semantics engine. */
/* Fork; the child applies @p (may be NULL), runs @fn, exits with its result. */
int run_child(const struct cpr_policy *p, int (*fn)(void *), void *arg);
/* exit_group() without any library or sanitizer teardown. */
void child_exit(int code);
/* Each rule satisfied, then each condition violated: outcome as documented. */
void check_rules(const struct cpr_policy *p, const char *name);
/* Every native system call @p does not name gets the default action. */
void check_unnamed_calls(const struct cpr_policy *p, const char *name);

TCase *policy_apply_tcase(void);
TCase *policy_apply_shipped_tcase(void);
TCase *policy_exec_tcase(void);
/* The exec helper: runs inside the new image, exits HELPER_OK when fine. */
int policy_exec_helper(const char *mode);
/* Mode "cpr": adopt the state cpr_exec() passed; exits HELPER_OK when fine. */
int policy_exec_helper_cpr(void);

#endif
