/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whether /dev/kvm is a KVM this machine can use: one probe for minivmm,
 * the benches and the tests, so they agree on it and on the reason. */
#ifndef MINIVMM_KVM_PROBE_H
#define MINIVMM_KVM_PROBE_H

#include <stddef.h>

/* /dev/kvm opened (close-on-exec) and its API version checked: returns the
 * fd, or -errno with the reason in @why (no device, no permission, a device
 * that is not KVM, another API version). */
int kvm_probe(char *why, size_t len);

#endif
