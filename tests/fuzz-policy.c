/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the cpr-policy(5) parser and filter builder.  Seed
 * corpus: tests/policy/ and policy/.  Either a whole policy or nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cpr/policy.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cpr_policy *p = NULL;
	struct cpr_error err;
	int r = cpr_policy_parse((const char *)data, size, "fuzz", &p, &err);

	if (r == 0) {
		if (!p || cpr_policy_rule_count(p) > CPR_POLICY_RULES_MAX)
			abort();
		cpr_policy_free(p);
	} else if (p || err.code != r) {
		abort();
	}
	return 0;
}
