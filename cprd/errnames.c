/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The error names of cprd-protocol(7), ERRORS; see errnames.h. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "errnames.h"

#define E(x)          \
	{             \
		x, #x \
	}
static const struct {
	int err;
	const char *name;
} errnames[] = {
	E(EPROTO), E(EINVAL),	 E(EMSGSIZE), E(EOPNOTSUPP),	  E(EBADF),	E(ENOENT),
	E(EEXIST), E(EACCES),	 E(EPERM),    E(EBUSY),		  E(ESTALE),	E(EDQUOT),
	E(ENOSPC), E(EBADMSG),	 E(EFBIG),    E(EAGAIN),	  E(ENOMEM),	E(EIO),
	E(EBADFD), E(EMFILE),	 E(ENFILE),   E(EPROTONOSUPPORT), E(ETIMEDOUT), E(ERANGE),
	E(ESRCH),  E(ECANCELED),
};
#undef E

const char *cprd_errno_name(int err)
{
	if (err < 0)
		err = -err;
	for (size_t i = 0; i < ARRAY_SIZE(errnames); i++)
		if (errnames[i].err == err)
			return errnames[i].name;
	return "EIO";
}

int cprd_errno_from_name(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(errnames); i++)
		if (strcmp(errnames[i].name, name) == 0)
			return errnames[i].err;
	return EIO;
}
