/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Seccomp policies: a small text format (cpr-policy(5)) compiled through
 * libseccomp into a filter that can be loaded into the calling process or
 * exported as libseccomp PFC text or raw BPF.  See cpr_policy_parse(3).
 */
#ifndef CPR_POLICY_H
#define CPR_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <cpr/state.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Named limits; see cpr-policy(5) LIMITS. */
#define CPR_POLICY_TEXT_MAX (1u << 20) /* bytes of policy text */
#define CPR_POLICY_LINE_MAX 1024u      /* bytes in one line, newline excluded */
#define CPR_POLICY_RULES_MAX 2048u     /* rules in one policy */
#define CPR_POLICY_ARCHES_MAX 8u       /* architectures named by "arch" */

struct cpr_policy;

/*
 * Parse policy text (@len bytes, need not be NUL-terminated) into a compiled
 * filter.  @filename (may be NULL) is only used in messages.  On failure
 * nothing is returned, and @ret_err (may be NULL) says why: its message reads
 * "FILE:LINE:COLUMN: what is wrong", its instance field holds the line and its
 * offset field the column (both 1-based; 0 when not tied to a place).
 */
int cpr_policy_parse(const char *text, size_t len, const char *filename,
		     struct cpr_policy **ret_policy, struct cpr_error *ret_err);
/* Read the file at @path (at most CPR_POLICY_TEXT_MAX bytes) and parse it. */
int cpr_policy_load(const char *path, struct cpr_policy **ret_policy, struct cpr_error *ret_err);
void cpr_policy_free(struct cpr_policy *policy);

/*
 * Set PR_SET_NO_NEW_PRIVS, then load the filter into every thread of the
 * calling process (SECCOMP_FILTER_FLAG_TSYNC).  Irreversible.
 */
int cpr_policy_apply(const struct cpr_policy *policy);

/* Write the filter to @fd (borrowed) as libseccomp PFC text or raw BPF. */
int cpr_policy_export_pfc(const struct cpr_policy *policy, int fd);
int cpr_policy_export_bpf(const struct cpr_policy *policy, int fd);

/* The default action as a libseccomp SCMP_ACT_* value; UINT32_MAX for NULL. */
uint32_t cpr_policy_default_action(const struct cpr_policy *policy);
/* Number of rules (syscall lines), 0 for NULL. */
size_t cpr_policy_rule_count(const struct cpr_policy *policy);

#ifdef __cplusplus
}
#endif

#endif
