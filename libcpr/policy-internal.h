/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The parsed form of a policy, shared by the parser (policy-parse.c), the
 * filter builder (policy.c), cprctl and the tests.  Not installed.
 */
#ifndef CPR_POLICY_INTERNAL_H
#define CPR_POLICY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cpr/policy.h>

#define POLICY_ARGS 6	   /* arg0 .. arg5 */
#define POLICY_NAME_MAX 48 /* longest system call name we keep */

/* Comparison operators, numbered as libseccomp's enum scmp_compare. */
enum policy_op {
	POLICY_OP_NE = 1,
	POLICY_OP_LT = 2,
	POLICY_OP_LE = 3,
	POLICY_OP_EQ = 4,
	POLICY_OP_GE = 5,
	POLICY_OP_GT = 6,
	POLICY_OP_MASKED_EQ = 7,
};

struct policy_cond {
	unsigned arg; /* 0 .. POLICY_ARGS - 1 */
	enum policy_op op;
	uint64_t mask; /* POLICY_OP_MASKED_EQ only */
	uint64_t value;
	unsigned col; /* where the condition starts */
};

struct policy_rule {
	int nr;		 /* native number, or libseccomp's pseudo number */
	uint32_t action; /* SCMP_ACT_* */
	unsigned line;
	unsigned action_col;
	unsigned syscall_col;
	unsigned n_conds;
	struct policy_cond conds[POLICY_ARGS]; /* sorted by arg */
	char name[POLICY_NAME_MAX];
};

struct cpr_policy {
	void *filter;	/* scmp_filter_ctx, built from what follows */
	size_t n_insns; /* length of its BPF program */
	uint32_t default_action;
	unsigned default_line;
	size_t n_arches;
	uint32_t arches[CPR_POLICY_ARCHES_MAX]; /* besides the native one */
	unsigned arch_line[CPR_POLICY_ARCHES_MAX];
	unsigned arch_col[CPR_POLICY_ARCHES_MAX];
	size_t n_rules;
	size_t n_alloc;
	struct policy_rule *rules;
};

/* policy-parse.c: text -> struct cpr_policy without a filter. */
int policy_parse_text(struct cpr_policy *p, const char *text, size_t len, const char *filename,
		      struct cpr_error *err);

/* policy-overlap.c: can two rules for one system call match the same call? */
bool policy_rules_overlap(const struct policy_rule *a, const struct policy_rule *b);
bool policy_conds_intersect(const struct policy_cond *a, const struct policy_cond *b);
/* The smallest x >= @lo with (x & @mask) == @value (value within mask). */
bool policy_masked_min_ge(uint64_t mask, uint64_t value, uint64_t lo, uint64_t *ret);

/* policy-names.c: the named constants and errno names of cpr-policy(5). */
bool policy_constant_lookup(const char *name, uint64_t *ret);
bool policy_errno_lookup(const char *name, uint64_t *ret);
const char *policy_errno_name(int e);
/* "allow", "kill", "errno EPERM", ...: formats @action into @buf. */
const char *policy_action_format(uint32_t action, char *buf, size_t len);

/* policy.c */
const char *policy_arch_name(uint32_t arch);
const struct policy_rule *policy_rule_get(const struct cpr_policy *p, size_t index);

#endif
