/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Can two rules for one system call match the same call?  libseccomp lays
 * overlapping rules out in a way their order in the file does not decide,
 * so the parser refuses two rules with different actions that overlap.
 *
 * Each rule compares an argument at most once, so two rules overlap exactly
 * when, for every argument both compare, the two sets of 64-bit values they
 * accept intersect.  Each set is one of: an interval (==, <, <=, >, >=),
 * all values but one (!=), or the values whose masked bits are fixed
 * (& mask ==).  Every pair is decided exactly.
 */
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "policy-internal.h"

/* The interval a comparison accepts; false for != and masked ==. */
static bool cond_interval(const struct policy_cond *c, uint64_t *lo, uint64_t *hi)
{
	*lo = 0;
	*hi = UINT64_MAX;
	switch (c->op) {
	case POLICY_OP_EQ:
		*lo = *hi = c->value;
		return true;
	case POLICY_OP_LT:
		*hi = c->value - 1; /* the parser refuses "< 0" */
		return true;
	case POLICY_OP_LE:
		*hi = c->value;
		return true;
	case POLICY_OP_GT:
		*lo = c->value + 1; /* the parser refuses "> UINT64_MAX" */
		return true;
	case POLICY_OP_GE:
		*lo = c->value;
		return true;
	default:
		return false;
	}
}

/*
 * The smallest x >= @lo with (x & @mask) == @value, if any.  Walk the bits
 * from the top, staying equal to @lo while possible; remember the lowest
 * free bit where @lo has a 0 (raising it makes x larger than @lo at once),
 * and fall back to it when a fixed bit would make x smaller than @lo.
 */
bool policy_masked_min_ge(uint64_t mask, uint64_t value, uint64_t lo, uint64_t *ret)
{
	int bump = -1;

	for (int b = 63; b >= 0; b--) {
		uint64_t bit = UINT64_C(1) << b;

		if (!(mask & bit)) {
			if (!(lo & bit))
				bump = b;
			continue;
		}
		if ((value & bit) == (lo & bit))
			continue;
		if (value & bit) {
			/* Larger than lo from here: lo's prefix, then the least. */
			*ret = (lo & ~((bit << 1) - 1)) | bit | (value & (bit - 1));
			return true;
		}
		if (bump < 0)
			return false;
		bit = UINT64_C(1) << bump;
		*ret = (lo & ~((bit << 1) - 1)) | bit | (value & (bit - 1));
		return true;
	}
	*ret = lo; /* lo itself has the fixed bits */
	return true;
}

static bool masked_meets_interval(const struct policy_cond *m, uint64_t lo, uint64_t hi)
{
	uint64_t x;

	return policy_masked_min_ge(m->mask, m->value, lo, &x) && x <= hi;
}

/* Does the set of @a intersect the set of @b (same argument)? */
bool policy_conds_intersect(const struct policy_cond *a, const struct policy_cond *b)
{
	uint64_t alo, ahi, blo, bhi;
	bool ai = cond_interval(a, &alo, &ahi), bi = cond_interval(b, &blo, &bhi);

	if (ai && bi)
		return (alo > blo ? alo : blo) <= (ahi < bhi ? ahi : bhi);
	if (!ai && !bi && a->op == POLICY_OP_NE && b->op == POLICY_OP_NE)
		return true;
	if (!ai && !bi && a->op == POLICY_OP_MASKED_EQ && b->op == POLICY_OP_MASKED_EQ)
		return ((a->value ^ b->value) & a->mask & b->mask) == 0;
	if (!ai && !bi) {
		/* Masked == against !=: empty only if the mask pins every bit. */
		const struct policy_cond *m = a->op == POLICY_OP_MASKED_EQ ? a : b;
		const struct policy_cond *n = a->op == POLICY_OP_NE ? a : b;

		return !(m->mask == UINT64_MAX && m->value == n->value);
	}
	if (!ai && a->op == POLICY_OP_NE)
		return !(blo == bhi && blo == a->value);
	if (!bi && b->op == POLICY_OP_NE)
		return !(alo == ahi && alo == b->value);
	return ai ? masked_meets_interval(b, alo, ahi) : masked_meets_interval(a, blo, bhi);
}

/* Both rules can match one call (same system call assumed). */
bool policy_rules_overlap(const struct policy_rule *a, const struct policy_rule *b)
{
	for (unsigned i = 0; i < a->n_conds; i++)
		for (unsigned k = 0; k < b->n_conds; k++)
			if (a->conds[i].arg == b->conds[k].arg &&
			    !policy_conds_intersect(&a->conds[i], &b->conds[k]))
				return false;
	return true;
}
