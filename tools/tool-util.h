/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the command-line tools share: exit codes and whole-file I/O. */
#ifndef CPR_TOOL_UTIL_H
#define CPR_TOOL_UTIL_H

#include <stddef.h>

/* Exit codes (s6 convention). */
#define EXIT_OK 0
#define EXIT_REFUSED 1
#define EXIT_USAGE 100
#define EXIT_TEMP 111

/* Read all of @path ("-" = stdin), at most @max bytes; returns length or -errno
 * (-EFBIG when longer than @max). */
long tool_read(const char *path, size_t max, void **ret_buf);
/* Write all of @buf to @path ("-" = stdout); 0 or -errno. */
int tool_write(const char *path, const void *buf, size_t len);
/* "prog: " prefix for messages. */
extern const char *tool_name;

#endif
