/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may do what with a bundle.  Default deny across users: only the
 * owner's uid and the consumers it listed by uid or gid may see or claim a
 * bundle.  Root gets nothing implicitly: an admin (root, or an "admin" of
 * cprd.conf) may see and drop sealed bundles of other users, to clean up,
 * and run daemon operations, but never claim another user's bundle.
 */
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
