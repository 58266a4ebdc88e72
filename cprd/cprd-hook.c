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
 *	cpr-upgrade	(not libvirt's: a management layer's, before an in-place
 *	begin		upgrade of the VMM) refuse a domain whose RAM is not shared
 *			and memfd-backed, or whose bundles are claimed: exit 1
 *	qemu-upgrade	(not libvirt's either) the same checks, then upgrade the
 *	begin QMP	domain's running QEMU in place to its <emulator>: runs
 *			"cprctl qemu upgrade" on the QMP socket QMP, whose exit
 *			status is the hook's
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
#include "hook-xml.h"

#define HOOK_XML_MAX (1u << 20)
#define HOOK_PREFIX "libvirt/"
#define EXIT_FAILED 1
#define EXIT_USAGE 100
#define EXIT_NOTHING 111 /* cprctl(1)'s "nothing started" */

#ifndef CPRD_HOOK_CPRCTL
#define CPRD_HOOK_CPRCTL "/usr/bin/cprctl"
#endif

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
static char *read_xml(size_t *ret_len)
{
	char *buf = malloc(HOOK_XML_MAX + 1);
	size_t off = 0;

	if (!buf)
		return NULL;
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf + off, HOOK_XML_MAX - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		off += (size_t)n;
		if (off == HOOK_XML_MAX) {
			free(buf);
			return NULL;
		}
	}
	buf[off] = 0;
	*ret_len = off;
	return buf;
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

enum hook_op { OP_NONE, OP_PREPARE, OP_STARTED, OP_STOPPED, OP_UPGRADE, OP_QEMU_UPGRADE };

static enum hook_op hook_op(const char *op, const char *sub)
{
	bool begin = strcmp(sub, "begin") == 0, end = strcmp(sub, "end") == 0;

	if (strcmp(op, "prepare") == 0 && begin)
		return OP_PREPARE;
	if (strcmp(op, "started") == 0 && begin)
		return OP_STARTED;
	if ((strcmp(op, "stopped") == 0 || strcmp(op, "release") == 0) && end)
		return OP_STOPPED;
	if (strcmp(op, "cpr-upgrade") == 0 && begin)
		return OP_UPGRADE;
	if (strcmp(op, "qemu-upgrade") == 0 && begin)
		return OP_QEMU_UPGRADE;
	return OP_NONE;
}

static int hook_run(const struct hook_domain *d, enum hook_op op)
{
	struct json_object *reply = NULL, *a;
	char prefix[160];
	int sock, r, ret = 0;

	/*
	 * cpr-upgrade begin: a new VMM adopts guest RAM, never copies it, so it
	 * must be shared and memfd-backed; refused before anything is asked.
	 */
	if ((op == OP_UPGRADE || op == OP_QEMU_UPGRADE) && !d->ram_shared_memfd) {
		warnx("domain %s%s%s: %s", d->name, *d->uuid ? " " : "", d->uuid, d->ram_why);
		return EXIT_FAILED;
	}
	r = cprd_connect(NULL, &sock);
	if (r < 0) {
		/* no daemon, no bundles to protect: the domain starts afresh */
		warnx("cprd unreachable (%s): nothing to do for %s", strerror(-r), d->name);
		return op == OP_UPGRADE || op == OP_QEMU_UPGRADE ? EXIT_FAILED : 0;
	}
	snprintf(prefix, sizeof(prefix), HOOK_PREFIX "%s/", d->name);
	r = list_bundles(sock, prefix, &reply);
	if (r < 0) {
		warnx("cannot list the bundles of %s: %s", d->name, strerror(-r));
		close(sock);
		return op == OP_STARTED || op == OP_STOPPED ? 0 : EXIT_FAILED;
	}
	a = json_object_object_get(reply, "bundles");
	if (op == OP_PREPARE)
		ret = hook_prepare(a);
	else if (op == OP_STARTED)
		ret = hook_started(a);
	else if (op == OP_UPGRADE || op == OP_QEMU_UPGRADE)
		ret = hook_prepare(a); /* a hand-off in progress: not now */
	else
		ret = hook_stopped(sock, a);
	json_object_put(reply);
	close(sock);
	return ret;
}

/*
 * qemu-upgrade begin: the domain's QEMU, reached on its QMP socket @qmp, is
 * upgraded in place to the domain's <emulator> by cprctl(1), the one
 * implementation of the upgrade; cprd holds QEMU's CPR state in the
 * domain's bundle "libvirt/<domain>/qemu", so prepare refuses to start the
 * domain meanwhile.  Returns only when cprctl cannot be run.
 */
static int hook_qemu_upgrade(const struct hook_domain *d, const char *qmp)
{
	const char *cprctl = getenv("CPRCTL");
	char name[160];

	if (!cprctl || !*cprctl)
		cprctl = CPRD_HOOK_CPRCTL;
	snprintf(name, sizeof(name), HOOK_PREFIX "%s/qemu", d->name);
	fflush(NULL);
	execl(cprctl, cprctl, "qemu", "upgrade", "--qmp", qmp, "--binary", d->emulator, "--name",
	      name, (char *)NULL);
	warnx("cannot run %s: %s", cprctl, strerror(errno));
	return EXIT_NOTHING;
}

/* What qemu-upgrade needs beyond the XML: refused before anything starts. */
static int qemu_upgrade_usable(const struct hook_domain *d, const char *qmp)
{
	if (qmp[0] != '/') {
		warnx("qemu-upgrade begin: the extra argument must be the absolute path of the "
		      "domain's QMP socket, not '%.64s'",
		      qmp);
		return EXIT_USAGE;
	}
	if (d->emulator[0] != '/') {
		warnx("domain %s: qemu-upgrade needs the new QEMU as an absolute path in "
		      "<devices><emulator>%s",
		      d->name, *d->emulator ? ", not a relative one" : "");
		return EXIT_USAGE;
	}
	return 0;
}

/* The domain XML of stdin, which must describe @domain.  Empty is allowed
 * except for @need (an operation that reads it). */
static int read_domain(const char *domain, bool need, struct hook_domain *d)
{
	size_t len = 0;
	char *xml = read_xml(&len);
	int r = 0;

	memset(d, 0, sizeof(*d));
	if (!xml) {
		warnx("domain XML unreadable or larger than %u bytes", HOOK_XML_MAX);
		return EXIT_USAGE;
	}
	if (len == 0 && !need) {
		snprintf(d->name, sizeof(d->name), "%s", domain);
	} else if (hook_domain_parse(xml, len, d) < 0) {
		warnx("domain %s: %s", domain, d->why);
		r = EXIT_USAGE;
	} else if (strcmp(d->name, domain) != 0) {
		warnx("the domain XML describes domain %.64s, not %s", d->name, domain);
		r = EXIT_USAGE;
	}
	free(xml);
	return r;
}

int main(int argc, char *argv[])
{
	struct hook_domain d;
	enum hook_op op;
	int r;

	if (argc != 5) {
		warnx("usage: %s DOMAIN OPERATION SUB-OPERATION EXTRA < DOMAIN-XML", argv[0]);
		return EXIT_USAGE;
	}
	if (!name_ok(argv[1])) {
		warnx("domain name '%.64s' cannot name bundles", argv[1]);
		return EXIT_USAGE;
	}
	op = hook_op(argv[2], argv[3]);
	r = read_domain(argv[1], op == OP_UPGRADE || op == OP_QEMU_UPGRADE, &d);
	if (r == 0 && op == OP_QEMU_UPGRADE)
		r = qemu_upgrade_usable(&d, argv[4]);
	if (r != 0 || op == OP_NONE)
		return r;
	r = hook_run(&d, op);
	if (r != 0 || op != OP_QEMU_UPGRADE)
		return r;
	return hook_qemu_upgrade(&d, argv[4]);
}
