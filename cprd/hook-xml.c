/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The domain XML, as cprd-hook reads it: parsed by libxml2 (as libvirt
 * itself does), never searched as text.  What the hook needs is
 *
 *	/domain/name			the bundles' prefix
 *	/domain/uuid			reported beside the name
 *	/domain/memoryBacking/source	@type: memfd for guest RAM a new VMM can
 *					adopt
 *	/domain/memoryBacking/access	@mode: shared, unless every NUMA cell
 *	/domain/cpu/numa/cell		sets its own @memAccess
 *	/domain/devices/emulator	the VMM binary a qemu-upgrade starts
 *
 * The parser fetches nothing from the network, substitutes no entities and
 * loads no DTD: the XML is data, whoever wrote it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "hook-xml.h"

static void why(struct hook_domain *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why(struct hook_domain *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
}

static bool is_elem(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && n->ns == NULL &&
	       strcmp((const char *)n->name, name) == 0;
}

/*
 * The one child element @name of @parent: NULL when there is none, and
 * *ret_dup set when there are several (libvirt's schema allows one).
 */
static xmlNode *child(const xmlNode *parent, const char *name, bool *ret_dup)
{
	xmlNode *found = NULL;

	if (!parent)
		return NULL;
	for (xmlNode *n = parent->children; n; n = n->next) {
		if (!is_elem(n, name))
			continue;
		if (found && ret_dup)
			*ret_dup = true;
		if (!found)
			found = n;
	}
	return found;
}

/* The text of @n, trimmed, into @out; false when it does not fit. */
static bool text_of(xmlNode *n, char *out, size_t len)
{
	xmlChar *s = xmlNodeGetContent(n);
	const char *a, *b;
	bool ok = false;

	if (!s)
		return false;
	a = (const char *)s;
	while (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r')
		a++;
	b = a + strlen(a);
	while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\n' || b[-1] == '\r'))
		b--;
	if ((size_t)(b - a) < len) {
		memcpy(out, a, (size_t)(b - a));
		out[b - a] = 0;
		ok = true;
	}
	xmlFree(s);
	return ok;
}

/* Attribute @name of @n into @out ("" when absent or too long). */
static void attr_of(xmlNode *n, const char *name, char *out, size_t len)
{
	xmlChar *s = n ? xmlGetNoNsProp(n, (const xmlChar *)name) : NULL;

	out[0] = 0;
	if (s && strlen((const char *)s) < len)
		strcpy(out, (const char *)s);
	xmlFree(s);
}

static bool uuid_ok(const char *s)
{
	static const char form[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != sizeof(form) - 1)
		return false;
	for (size_t i = 0; form[i]; i++) {
		bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
			   (s[i] >= 'A' && s[i] <= 'F');

		if (form[i] == '-' ? s[i] != '-' : !hex)
			return false;
	}
	return true;
}

/*
 * Is guest RAM shared and memfd-backed?  If not, d->ram_why says which
 * element to change.
 */
static void read_memory(xmlNode *dom, struct hook_domain *d)
{
	xmlNode *mb = child(dom, "memoryBacking", NULL);
	xmlNode *numa = child(child(dom, "cpu", NULL), "numa", NULL);
	char type[32], mode[32], cell_mode[32], cell_id[32];
	bool cells = false;

	attr_of(child(mb, "source", NULL), "type", type, sizeof(type));
	attr_of(child(mb, "access", NULL), "mode", mode, sizeof(mode));
	if (strcmp(type, "memfd") != 0) {
		snprintf(d->ram_why, sizeof(d->ram_why),
			 "guest RAM is not memfd-backed (%s%s%s): set "
			 "<memoryBacking><source type='memfd'/></memoryBacking>",
			 *type ? "<source type='" : "no <memoryBacking><source>", type,
			 *type ? "'/>" : "");
		return;
	}
	for (xmlNode *c = numa ? numa->children : NULL; c; c = c->next) {
		if (!is_elem(c, "cell"))
			continue;
		cells = true;
		attr_of(c, "memAccess", cell_mode, sizeof(cell_mode));
		attr_of(c, "id", cell_id, sizeof(cell_id));
		if (strcmp(*cell_mode ? cell_mode : mode, "shared") == 0)
			continue;
		if (*cell_mode)
			snprintf(d->ram_why, sizeof(d->ram_why),
				 "guest RAM of NUMA cell %s is %s: set memAccess='shared' on "
				 "<cpu><numa><cell id='%s'>",
				 *cell_id ? cell_id : "?", cell_mode, *cell_id ? cell_id : "?");
		else
			snprintf(d->ram_why, sizeof(d->ram_why),
				 "guest RAM of NUMA cell %s is %s: set "
				 "<memoryBacking><access mode='shared'/></memoryBacking> or "
				 "memAccess='shared' on <cpu><numa><cell id='%s'>",
				 *cell_id ? cell_id : "?", *mode ? mode : "private (the default)",
				 *cell_id ? cell_id : "?");
		return;
	}
	if (!cells && strcmp(mode, "shared") != 0) {
		snprintf(d->ram_why, sizeof(d->ram_why),
			 "guest RAM is %s: set <memoryBacking><access "
			 "mode='shared'/></memoryBacking>",
			 *mode ? mode : "private (the default)");
		return;
	}
	d->ram_shared_memfd = true;
}

static int read_domain(xmlDoc *doc, struct hook_domain *d)
{
	xmlNode *dom = xmlDocGetRootElement(doc), *n;
	bool dup = false;

	if (doc->intSubset || doc->extSubset) {
		/* libvirt never writes one; entities are not ours to expand */
		why(d, "the domain XML has a DOCTYPE");
		return -1;
	}
	if (!dom || !is_elem(dom, "domain")) {
		why(d, "the XML is not a <domain>");
		return -1;
	}
	n = child(dom, "name", &dup);
	if (!n || dup || !text_of(n, d->name, sizeof(d->name)) || !*d->name) {
		why(d, "the <domain> has %s", dup ? "more than one <name>" : "no usable <name>");
		return -1;
	}
	dup = false;
	n = child(dom, "uuid", &dup);
	if (dup || (n && (!text_of(n, d->uuid, sizeof(d->uuid)) || !uuid_ok(d->uuid)))) {
		why(d, "the <domain>'s <uuid> is %s", dup ? "repeated" : "not a UUID");
		return -1;
	}
	dup = false;
	n = child(child(dom, "devices", NULL), "emulator", &dup);
	if (dup || (n && !text_of(n, d->emulator, sizeof(d->emulator)))) {
		why(d, "the <domain>'s <emulator> is %s", dup ? "repeated" : "too long");
		return -1;
	}
	read_memory(dom, d);
	return 0;
}

int hook_domain_parse(const char *xml, size_t len, struct hook_domain *ret)
{
	xmlDoc *doc;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (len > (size_t)0x7fffffff) {
		why(ret, "the XML is too large");
		return -1;
	}
	doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlGetLastError();

		why(ret, "the domain XML is not well-formed: line %d: %s", e ? e->line : 0,
		    e && e->message ? e->message : "parse error");
		/* libxml2's messages end with a newline */
		ret->why[strcspn(ret->why, "\n")] = 0;
		return -1;
	}
	r = read_domain(doc, ret);
	xmlFreeDoc(doc);
	return r;
}
