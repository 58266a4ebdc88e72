/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The error names of cprd-protocol(7): the daemon says only these, and the
 * client reads them back.  One table for both sides.
 */
#ifndef CPRD_ERRNAMES_H
#define CPRD_ERRNAMES_H

/* The name of -@err (or @err); "EIO" for an errno outside the protocol. */
const char *cprd_errno_name(int err);
/* The positive errno a name stands for; EIO for an unknown name. */
int cprd_errno_from_name(const char *name);

#endif
