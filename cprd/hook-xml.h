/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPRD_HOOK_XML_H
#define CPRD_HOOK_XML_H

#include <stdbool.h>
#include <stddef.h>

/* What cprd-hook reads of a libvirt domain XML (cprd-hook(8) DOMAIN XML). */
struct hook_domain {
	char name[128];	       /* /domain/name */
	char uuid[40];	       /* /domain/uuid, "" when absent */
	char emulator[256];    /* /domain/devices/emulator, "" when absent */
	bool ram_shared_memfd; /* <memoryBacking> memfd + shared access */
	char ram_why[256];     /* if not: which element to change */
	char why[256];	       /* why hook_domain_parse() failed */
};

/* Parse @len bytes of domain XML; -1 with ret->why set when it is not one. */
int hook_domain_parse(const char *xml, size_t len, struct hook_domain *ret);

#endif
