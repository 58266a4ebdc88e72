/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * luo-forge NAME TOKEN=FILE...: a Live Update session made by hand, for the
 * tests of what cprd does with a bad one after the kexec (tests/vm/kexec.sh).
 * Creates session NAME on /dev/liveupdate (closed again at once: the device
 * has one opener), and preserves in it, for each TOKEN=FILE, a memfd holding
 * FILE's bytes (sealed against growing and shrinking, as libcpr's RAM is;
 * TOKEN=s:FILE also against writing, as cprd's manifests and streams are).
 * Prints "ready" and then holds the session until killed: the kernel drops a
 * session whose holder is gone before the kexec.
 *
 * Exit: 0 never (killed), 1 when a step failed (named on stderr), 100 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/liveupdate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int fail(const char *what)
{
	fprintf(stderr, "luo-forge: %s: %s\n", what, strerror(errno));
	return 1;
}

/* A memfd with @path's contents, sealed with @seals. */
static int memfd_of(const char *path, int seals)
{
	char buf[1 << 16];
	int in = open(path, O_RDONLY | O_CLOEXEC), fd;
	ssize_t n;

	if (in < 0)
		return -1;
	fd = memfd_create("luo-forge", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	while (fd >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)n) != n) {
			close(fd);
			fd = -1;
		}
	close(in);
	if (fd >= 0 && fcntl(fd, F_ADD_SEALS, seals) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int preserve(int session, const char *spec)
{
	struct liveupdate_session_preserve_fd p = { .size = sizeof(p) };
	const char *eq = strchr(spec, '=');
	char *end;

	if (!eq)
		return -1;
	p.token = strtoull(spec, &end, 0);
	if (end != eq)
		return -1;
	if (strncmp(eq + 1, "s:", 2) == 0)
		p.fd = memfd_of(eq + 3, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	else
		p.fd = memfd_of(eq + 1, F_SEAL_SHRINK | F_SEAL_GROW);
	if (p.fd < 0 || ioctl(session, LIVEUPDATE_SESSION_PRESERVE_FD, &p) < 0)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct liveupdate_ioctl_create_session c = { .size = sizeof(c) };
	int dev;

	if (argc < 2 || strlen(argv[1]) >= sizeof(c.name)) {
		fprintf(stderr, "usage: luo-forge NAME TOKEN=FILE...\n");
		return 100;
	}
	dev = open("/dev/liveupdate", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return fail("/dev/liveupdate");
	strcpy((char *)c.name, argv[1]);
	if (ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, &c) < 0)
		return fail("creating the session");
	close(dev);
	for (int i = 2; i < argc; i++)
		if (preserve(c.fd, argv[i]) < 0)
			return fail(argv[i]);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
