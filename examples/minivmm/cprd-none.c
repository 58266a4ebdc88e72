/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Built without the cprd client: the cprd mode is refused before the pause. */
#include <errno.h>
#include <stdio.h>

#include "vmm.h"

const bool have_cprd_client = false;

int upgrade_cprd(struct vmm *m, const char *path, char *why, size_t len)
{
	snprintf(why, len, "this minivmm was built without the cprd client");
	return -EOPNOTSUPP;
}

int incoming_cprd(struct vmm *m, const char *arg)
{
	fprintf(stderr, "minivmm: this build cannot receive through cprd\n");
	return -EOPNOTSUPP;
}

int upgrade_kexec(struct vmm *m, char *why, size_t len)
{
	snprintf(why, len, "this minivmm was built without the cprd client");
	return -EOPNOTSUPP;
}

int incoming_kexec(struct vmm *m, const char *name)
{
	fprintf(stderr, "minivmm: this build cannot resume from cprd\n");
	return -EOPNOTSUPP;
}
