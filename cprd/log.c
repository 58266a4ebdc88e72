/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Logging to stderr; the journal captures it under systemd.  log_warn()
 * appends strerror(errno), log_warnx() does not.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "log.h"

static const char *log_prog = "cprd";
static int log_level;

void log_init(const char *progname, int verbosity)
{
	log_prog = progname;
	log_level = verbosity;
}

int log_verbosity(void)
{
	return log_level;
}

static void _log_printf_(3, 0) log_vemit(const char *prefix, int err, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (err)
		fprintf(stderr, "%s: %s%s: %s\n", log_prog, prefix, msg, strerror(err));
	else
		fprintf(stderr, "%s: %s%s\n", log_prog, prefix, msg);
}

void log_warn(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit("", err, fmt, ap);
	va_end(ap);
	errno = err;
}

void log_errno(int neg_errno, const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit("", neg_errno < 0 ? -neg_errno : neg_errno, fmt, ap);
	va_end(ap);
	errno = err;
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit("", 0, fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	if (log_level < 1)
		return;
	va_start(ap, fmt);
	log_vemit("", 0, fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_level < 2)
		return;
	va_start(ap, fmt);
	log_vemit("debug: ", 0, fmt, ap);
	va_end(ap);
}

const char *log_quote(const char *s)
{
	static char buf[4][80];
	static unsigned next;
	char *b = buf[next++ % ARRAY_SIZE(buf)];

	if (!s)
		return "(null)";
	return cpr_quote(b, sizeof(buf[0]), s, strlen(s));
}
