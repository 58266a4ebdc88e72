/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cprd.h"
#include "handle.h"
#include <errno.h>
int upgrade_incoming(void) { return 0; }
int upgrade_exec(void) { return -EOPNOTSUPP; }
int handle_upgrade(struct request *r) { return handle_fail(r, -EOPNOTSUPP, "x"); }
