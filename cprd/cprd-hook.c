/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprd-hook: a libvirt qemu hook (/etc/libvirt/hooks/qemu) that looks after
 * the cprd bundles of a domain, named "libvirt/<domain>/...".  libvirt runs
 * it as
 *
 *	qemu <domain> <operation> <sub-operation> <extra>
 *
 * with the domain XML on stdin; a non-zero exit aborts the operation.
 *
 *	prepare begin	refuse to start a domain whose bundles are claimed by
 *			someone else (a hand-off in progress): exit 1
 *	started begin	report bundles the new VMM left sealed
 *	stopped end,	drop the domain's bundles: the guest is gone, so is
 *	release end	what it parked
 *
 * Everything else is accepted and ignored.  See cprd-hook(8).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "client.h"

#define HOOK_XML_MAX (1u << 20)
#define HOOK_PREFIX "libvirt/"
#define EXIT_FAILED 1
#define EXIT_USAGE 100

static void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx(const char *fmt, ...)
{
	va_list ap;

	fputs("cprd-hook: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The domain XML from stdin, bounded; NULL if too large or unreadable. */
static char *read_xml(void)
{
	char *buf = malloc(HOOK_XML_MAX + 1);
	size_t off = 0;

	if (!buf)
		return NULL;
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf + off, HOOK_XML_MAX - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
		if (off == HOOK_XML_MAX) {
			free(buf);
			return NULL;
		}
	}
	buf[off] = 0;
	return buf;
}

/* The text of the first <tag>...</tag> at the domain's top level (no nesting). */
static bool xml_text(const char *xml, const char *tag, char *out, size_t len)
{
	char open[32], close_[32];
	const char *a, *b;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close_, sizeof(close_), "</%s>", tag);
	a = strstr(xml, open);
	if (!a)
		return false;
	a += strlen(open);
	b = strstr(a, close_);
	if (!b || (size_t)(b - a) >= len)
		return false;
	memcpy(out, a, (size_t)(b - a));
	out[b - a] = 0;
	return true;
}

/* Domain names become bundle name prefixes: same character set. */
static bool name_ok(const char *s)
{
	if (!*s || strlen(s) > 64 || s[0] == '.' || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._:@+=-", *s)))
			return false;
	return true;
}

/* The domain's bundles: "list" with its prefix. */
static int list_bundles(int sock, const char *prefix, struct json_object **ret)
{
	struct json_object *req = json_object_new_object(), *reply = NULL;
	int r;

	json_object_object_add(req, "op", json_object_new_string("list"));
	json_object_object_add(req, "prefix", json_object_new_string(prefix));
	r = cprd_call(sock, req, NULL, 0, &reply);
	json_object_put(req);
	if (r < 0) {
		json_object_put(reply);
		return r;
	}
	*ret = reply;
	return 0;
}

static const char *field(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

/* prepare: a claimed bundle means another VMM is taking this guest over. */
static int hook_prepare(struct json_object *a)
{
	int ret = 0;

	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *b = json_object_array_get_idx(a, i);

		if (strcmp(field(b, "state"), "claimed") == 0) {
			warnx("bundle %s is claimed by another process: not starting the domain",
			      field(b, "name"));
			ret = EXIT_FAILED;
		}
	}
	return ret;
}

static int hook_started(struct json_object *a)
{
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *b = json_object_array_get_idx(a, i);

		if (strcmp(field(b, "state"), "sealed") == 0)
			warnx("bundle %s was not taken by the new VMM", field(b, "name"));
	}
	return 0;
}

static int hook_stopped(int sock, struct json_object *a)
{
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *b = json_object_array_get_idx(a, i);
		const char *name = field(b, "name");
		int r = cprd_call_name(sock, "drop", name, NULL);

		if (r < 0)
			warnx("bundle %s: cannot drop it: %s", name, strerror(-r));
	}
	return 0; /* cleanup never blocks libvirt */
}

static int hook_run(const char *domain, const char *op, const char *sub)
{
	struct json_object *reply = NULL, *a;
	char prefix[96];
	int sock, r, ret = 0;
	bool prepare = strcmp(op, "prepare") == 0 && strcmp(sub, "begin") == 0;
	bool started = strcmp(op, "started") == 0 && strcmp(sub, "begin") == 0;
	bool stopped = (strcmp(op, "stopped") == 0 || strcmp(op, "release") == 0) &&
		       strcmp(sub, "end") == 0;

	if (!prepare && !started && !stopped)
		return 0;
	r = cprd_connect(NULL, &sock);
	if (r < 0) {
		/* no daemon, no bundles to protect: the domain starts afresh */
		warnx("cprd unreachable (%s): nothing to do for %s", strerror(-r), domain);
		return 0;
	}
	snprintf(prefix, sizeof(prefix), HOOK_PREFIX "%s/", domain);
	r = list_bundles(sock, prefix, &reply);
	if (r < 0) {
		warnx("cannot list the bundles of %s: %s", domain, strerror(-r));
		close(sock);
		return prepare ? EXIT_FAILED : 0;
	}
	a = json_object_object_get(reply, "bundles");
	if (prepare)
		ret = hook_prepare(a);
	else if (started)
		ret = hook_started(a);
	else
		ret = hook_stopped(sock, a);
	json_object_put(reply);
	close(sock);
	return ret;
}

int main(int argc, char *argv[])
{
	char name[128];
	char *xml;
	int r;

	if (argc != 5) {
		warnx("usage: %s DOMAIN OPERATION SUB-OPERATION EXTRA < DOMAIN-XML", argv[0]);
		return EXIT_USAGE;
	}
	if (!name_ok(argv[1])) {
		warnx("domain name '%.64s' cannot name bundles", argv[1]);
		return EXIT_USAGE;
	}
	xml = read_xml();
	if (!xml) {
		warnx("domain XML missing or larger than %u bytes", HOOK_XML_MAX);
		return EXIT_USAGE;
	}
	if (*xml && (!xml_text(xml, "name", name, sizeof(name)) || strcmp(name, argv[1]) != 0)) {
		warnx("the domain XML does not describe domain %s", argv[1]);
		free(xml);
		return EXIT_USAGE;
	}
	free(xml);
	r = hook_run(argv[1], argv[2], argv[3]);
	return r;
}
