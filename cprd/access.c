/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may do what with a bundle.  Default deny across users: only the
 * owner's uid and the consumers it listed by uid or gid may see or claim a
 * bundle.  Root gets nothing implicitly: an admin (root, or an "admin" of
 * cprd.conf) may see and drop sealed bundles of other users, to clean up,
 * and run daemon operations, but never claim another user's bundle.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cprd.h"

bool access_is_owner(const struct bundle *b, const struct cprd_peer *p)
{
	return p->uid == b->owner_uid;
}

static bool access_in_group(const struct cprd_peer *p, gid_t gid)
{
	if (p->gid == gid)
		return true;
	for (size_t i = 0; i < p->n_groups; i++)
		if (p->groups[i] == gid)
			return true;
	return false;
}

bool access_may_claim(const struct bundle *b, const struct cprd_peer *p)
{
	if (access_is_owner(b, p))
		return true;
	for (size_t i = 0; i < b->n_uids; i++)
		if (b->uids[i] == p->uid)
			return true;
	for (size_t i = 0; i < b->n_gids; i++)
		if (access_in_group(p, b->gids[i]))
			return true;
	return false;
}

/* Open bundles are visible to their owner only. */
bool access_may_see(const struct bundle *b, const struct cprd_peer *p)
{
	if (b->state == BUNDLE_OPEN)
		return access_is_owner(b, p);
	return access_may_claim(b, p) || conf_is_admin(&cprd.cfg, p->uid);
}

static bool access_namespace_admits(const struct cprd_namespace *ns, const struct cprd_peer *p)
{
	if (ns->anyone)
		return true;
	for (size_t i = 0; i < ns->n_uids; i++)
		if (ns->uids[i] == p->uid)
			return true;
	for (size_t i = 0; i < ns->n_gids; i++)
		if (access_in_group(p, ns->gids[i]))
			return true;
	return false;
}

/* "uid-N/...": uid N's own namespace, always there; N, or -1. */
static int64_t access_uid_prefix(const char *name)
{
	char *end;
	unsigned long long uid;

	if (strncmp(name, "uid-", 4) != 0 || name[4] < '0' || name[4] > '9')
		return -1;
	errno = 0;
	uid = strtoull(name + 4, &end, 10);
	if (errno || *end != '/' || uid > UINT32_MAX - 1)
		return -1;
	return (int64_t)uid;
}

/*
 * Checked before the name is looked up, so that a peer learns nothing of
 * the names it may not create: uid 0 creates anywhere; "uid-N/" is uid
 * N's; else the namespace line with the longest matching prefix decides;
 * with none, only administrators create.
 */
int access_may_create(const char *name, const struct cprd_peer *p, char *why, size_t why_len)
{
	const struct cprd_namespace *best = NULL;
	int64_t own = access_uid_prefix(name);

	if (p->uid == 0)
		return 0;
	if (own >= 0) {
		if ((uid_t)own == p->uid)
			return 0;
		snprintf(why, why_len, "names under uid-%" PRId64 "/ are uid %" PRId64 "'s", own,
			 own);
		return -EACCES;
	}
	for (size_t i = 0; i < cprd.cfg.n_namespaces; i++) {
		const struct cprd_namespace *ns = &cprd.cfg.namespaces[i];

		if (strncmp(name, ns->prefix, strlen(ns->prefix)) == 0 &&
		    (!best || strlen(ns->prefix) > strlen(best->prefix)))
			best = ns;
	}
	if (best ? access_namespace_admits(best, p) : conf_is_admin(&cprd.cfg, p->uid))
		return 0;
	if (best)
		snprintf(why, why_len,
			 "uid %u may not create names under \"%s\" (cprd.conf namespace)",
			 (unsigned)p->uid, best->prefix[0] ? best->prefix : "*");
	else
		snprintf(why, why_len,
			 "uid %u may create names under uid-%u/ only (no cprd.conf namespace "
			 "covers this name)",
			 (unsigned)p->uid, (unsigned)p->uid);
	return -EACCES;
}
