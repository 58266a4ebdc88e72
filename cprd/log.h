/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cprd logging: stderr, OpenBSD's split (log_warn appends strerror(errno)). */
#ifndef CPRD_LOG_H
#define CPRD_LOG_H

#include <stdbool.h>

#define _log_printf_(a, b) __attribute__((format(printf, a, b)))

void log_init(const char *progname, int verbosity);
int log_verbosity(void);
void log_warn(const char *fmt, ...) _log_printf_(1, 2);
void log_warnx(const char *fmt, ...) _log_printf_(1, 2);
void log_info(const char *fmt, ...) _log_printf_(1, 2);
void log_debug(const char *fmt, ...) _log_printf_(1, 2);
/* log_warn with an explicit negative errno instead of errno. */
void log_errno(int neg_errno, const char *fmt, ...) _log_printf_(2, 3);
/* Quote an untrusted string for a message (truncated, printable only). */
const char *log_quote(const char *s);

#endif
