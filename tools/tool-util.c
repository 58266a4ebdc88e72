/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdio.h>

#include "internal.h"
#include "tool-util.h"

long tool_read(const char *path, size_t max, void **ret_buf)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 65536;
	int in = STDIN_FILENO;

	if (strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		in = fd;
	}
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;
		if (len == cap) {
			char *n;
			if (cap > max)
				return -EFBIG;
			n = realloc(buf, cap * 2);
			if (!n)
				return -ENOMEM;
			buf = n;
			cap *= 2;
		}
		r = read(in, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > max)
		return -EFBIG;
	*ret_buf = TAKE_PTR(buf);
	return (long)len;
}

int tool_write(const char *path, const void *buf, size_t len)
{
	_cleanup_close_ int fd = -EBADF;
	const char *p = buf;
	int out = STDOUT_FILENO;

	if (strcmp(path, "-") != 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		out = fd;
	}
	while (len) {
		ssize_t w = write(out, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	if (fd >= 0 && close(TAKE_FD(fd)) < 0)
		return -errno;
	return 0;
}
