/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small system helpers used across cprd. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "cprd.h"

uint64_t now_boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int fd_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* A new memfd holding @buf, sealed against any change. */
int memfd_new_sealed(const char *name, const void *buf, size_t len, int *ret_fd)
{
	_cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	const uint8_t *p = buf;
	size_t off = 0;

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/*
 * Read a whole regular file or memfd from offset 0 into private memory
 * (never parse a shared mapping): at most @max bytes, -EFBIG beyond.
 */
int fd_read_all(int fd, size_t max, void **ret_buf, size_t *ret_len)
{
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;
	size_t len, off = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	if (st.st_size < 0 || (uint64_t)st.st_size > max)
		return -EFBIG;
	len = (size_t)st.st_size;
	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	while (off < len) {
		ssize_t n = pread(fd, buf + off, len - off, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* shrank under us */
		off += (size_t)n;
	}
	*ret_buf = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

/*
 * fd_read_all() of a memfd sealed against writing, shrinking and growing:
 * its size cannot change, so a read shorter than a small buffer has it all,
 * without an fstat() first.
 */
int fd_read_frozen(int fd, size_t max, void **ret_buf, size_t *ret_len)
{
	_cleanup_free_ uint8_t *buf = malloc(FD_READ_SMALL);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	do
		n = pread(fd, buf, FD_READ_SMALL, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n == FD_READ_SMALL)
		return fd_read_all(fd, max, ret_buf, ret_len);
	if ((size_t)n > max)
		return -EFBIG;
	*ret_buf = TAKE_PTR(buf);
	*ret_len = (size_t)n;
	return 0;
}

int random_hex(char *buf, size_t n_hex)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t raw[64];
	size_t n = (n_hex + 1) / 2;

	if (n > sizeof(raw))
		return -EINVAL;
	if (getrandom(raw, n, 0) != (ssize_t)n)
		return -errno ? -errno : -EIO;
	for (size_t i = 0; i < n_hex; i++)
		buf[i] = hex[(raw[i / 2] >> ((i & 1) ? 0 : 4)) & 0xf];
	buf[n_hex] = 0;
	return 0;
}
