/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the two halves of check-policy: text and filter, live seccomp. */
#ifndef CPR_CHECK_POLICY_H
#define CPR_CHECK_POLICY_H

#include <check.h>

#include <cpr/policy.h>

/* Environment variable that turns the test binary into an exec helper. */
#define HELPER_ENV "CPR_CHECK_POLICY_HELPER"
#define HELPER_OK 42

/* A policy from a string; fails the test if it does not parse. */
struct cpr_policy *policy_from_text(const char *text);
/* A shipped policy from $top_srcdir/policy. */
struct cpr_policy *policy_shipped(const char *name);

TCase *policy_apply_tcase(void);
TCase *policy_apply_shipped_tcase(void);
TCase *policy_exec_tcase(void);
/* The exec helper: runs inside the new image, exits HELPER_OK when fine. */
int policy_exec_helper(const char *mode);
/* Mode "cpr": adopt the state cpr_exec() passed; exits HELPER_OK when fine. */
int policy_exec_helper_cpr(void);

#endif
