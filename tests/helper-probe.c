/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Probes a machine feature for the shell tests, the way the suites do:
 * exit 0 when it is usable, 77 with the reason on stdout when it is not,
 * 100 on a usage error.  Usage: helper-probe kvm */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test-util.h"

static int probe_kvm(char *why, size_t len)
{
	int fd = test_kvm_open(why, len);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

static const struct {
	const char *name;
	int (*probe)(char *why, size_t len);
} probes[] = {
	{ "kvm", probe_kvm },
};

int main(int argc, char **argv)
{
	char why[256] = "";

	if (argc != 2) {
		fprintf(stderr, "usage: helper-probe FEATURE\n");
		return 100;
	}
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (strcmp(argv[1], probes[i].name) != 0)
			continue;
		if (probes[i].probe(why, sizeof(why)) == 0)
			return 0;
		printf("%s\n", why);
		return 77;
	}
	fprintf(stderr, "helper-probe: unknown feature '%.32s'\n", argv[1]);
	return 100;
}
