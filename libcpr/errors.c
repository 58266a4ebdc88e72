/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cpr/state.h"
#include "internal.h"

void cpr_error_setv(struct cpr_error *err, int code, uint32_t type, uint32_t instance,
		    uint64_t offset, const char *fmt, va_list ap)
{
	err->code = code;
	err->record_type = type;
	err->instance = instance;
	err->offset = offset;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
}

void cpr_error_set(struct cpr_error *err, int code, uint32_t type, uint32_t instance,
		   uint64_t offset, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	cpr_error_setv(err, code, type, instance, offset, fmt, ap);
	va_end(ap);
}

int cpr_fail(struct cpr_error *err, int code, uint32_t type, uint32_t instance, uint64_t offset,
	     const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	va_start(ap, fmt);
	cpr_error_setv(err, code, type, instance, offset, fmt, ap);
	va_end(ap);
	return code;
}

static bool errno_listed(int code, const int *allowed)
{
	for (; *allowed; allowed++)
		if (*allowed == code)
			return true;
	return false;
}

int cpr_errno_filter(int r, struct cpr_error *e, const int *allowed, int other)
{
	char msg[sizeof(e->message)];
	size_t n;

	if (r >= 0)
		return r;
	if (e->code == 0 || !e->message[0])
		cpr_error_set(e, r, e->record_type, e->instance, e->offset, "%s", strerror(-r));
	if (r == other || errno_listed(-r, allowed))
		return r;
	/* the original's name first, so that truncation cannot lose it */
	n = (size_t)snprintf(msg, sizeof(msg), "unexpected %s: ", strerror(-r));
	if (n < sizeof(msg))
		memcpy(msg + n, e->message, strnlen(e->message, sizeof(msg) - 1 - n) + 1);
	msg[sizeof(msg) - 1] = 0;
	cpr_error_set(e, other, e->record_type, e->instance, e->offset, "%s", msg);
	return other;
}

int cpr_error_finish(int r, struct cpr_error *e, struct cpr_error *ret_err, const int *allowed,
		     int other)
{
	r = cpr_errno_filter(r, e, allowed, other);
	if (r < 0 && ret_err)
		*ret_err = *e;
	return r;
}

const char *cpr_quote(char *buf, size_t len, const char *s, size_t n)
{
	size_t o = 0;

	if (len < 4) {
		if (len)
			buf[0] = 0;
		return buf;
	}
	for (size_t i = 0; i < n && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[8];
		size_t k;

		if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
			tmp[0] = (char)c;
			k = 1;
		} else {
			k = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		}
		if (o + k + 4 > len) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		memcpy(buf + o, tmp, k);
		o += k;
	}
	buf[o] = 0;
	return buf;
}
