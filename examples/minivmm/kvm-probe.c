/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm-probe.h"

int kvm_probe(char *why, size_t len)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), r;

	if (fd < 0) {
		r = -errno;
		snprintf(why, len, "/dev/kvm: %s", strerror(errno));
		return r;
	}
	r = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (r == KVM_API_VERSION)
		return fd;
	if (r < 0)
		snprintf(why, len, "/dev/kvm: KVM_GET_API_VERSION: %s (not a KVM device)",
			 strerror(errno));
	else
		snprintf(why, len, "/dev/kvm: API version %d, want %d", r, KVM_API_VERSION);
	close(fd);
	return -ENODEV;
}
