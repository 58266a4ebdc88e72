/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Taking parked bundles back from LISTEN_FDS/LISTEN_FDNAMES at start (see
 * fdstore.c for the names).  Whatever is incomplete or invalid is closed
 * and removed from the store, with a message saying why.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>
#include <systemd/sd-daemon.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"
#include "proto.h"

#define PIECE_MANIFEST (-2L) /* sorts first */
#define PIECE_STREAM (-1L)

struct piece {
	uint64_t id;
	long slot; /* >= 0, or PIECE_MANIFEST / PIECE_STREAM */
	int fd;
	const char *name;
};

/* "cprd-b<ID>-<SLOT|s|m>" */
static int piece_parse(const char *name, struct piece *p)
{
	char idbuf[24], part[24];
	const char *dash;
	uint64_t v;

	if (strncmp(name, "cprd-b", 6) != 0)
		return -EINVAL;
	name += 6;
	dash = strchr(name, '-');
	if (!dash || (size_t)(dash - name) >= sizeof(idbuf) || strlen(dash + 1) >= sizeof(part))
		return -EINVAL;
	memcpy(idbuf, name, (size_t)(dash - name));
	idbuf[dash - name] = 0;
	strcpy(part, dash + 1);
	if (conf_parse_u64(idbuf, 0, INT64_MAX - 1, &p->id) < 0)
		return -EINVAL;
	if (strcmp(part, "m") == 0)
		p->slot = PIECE_MANIFEST;
	else if (strcmp(part, "s") == 0)
		p->slot = PIECE_STREAM;
	else if (conf_parse_u64(part, 0, UINT32_MAX, &v) == 0)
		p->slot = (long)v;
	else
		return -EINVAL;
	return 0;
}

static int piece_cmp(const void *a, const void *b)
{
	const struct piece *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static void piece_discard(struct piece *p)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", p->name);
	notify_send(msg);
	p->fd = cpr_close(p->fd);
}

static int read_manifest(int fd, struct json_object **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	char why[128];
	int r = fd_read_all(fd, 256u << 10, (void **)&buf, &len);

	if (r < 0)
		return r;
	return proto_parse(buf, len, 8, ret, why, sizeof(why));
}

/* Pieces [0, n) share one id, sorted: manifest, stream, slots 0..n_fds-1. */
static int adopt_group(struct piece *p, size_t n, char *why, size_t why_len, char *name,
		       size_t name_len)
{
	const char *s = NULL;
	_cleanup_free_ int *fds = NULL;
	struct json_object *m = NULL;
	struct bundle *b;
	size_t n_fds, k = 0;
	int stream_fd = -EBADF, r;

	if (n < 2 || p[0].slot != PIECE_MANIFEST || p[1].slot != PIECE_STREAM) {
		snprintf(why, why_len, "no manifest or no stream");
		return -EBADMSG;
	}
	r = read_manifest(p[0].fd, &m);
	if (r < 0) {
		snprintf(why, why_len, "unreadable manifest");
		return r;
	}
	if (proto_get_str(m, "name", false, CPRD_BUNDLE_NAME_MAX, &s) == 0 && s)
		snprintf(name, name_len, "%s", s);
	n_fds = (size_t)json_object_get_int64(proto_get_obj(m, "fds"));
	fds = malloc((n_fds ? n_fds : 1) * sizeof(int));
	if (!fds || n_fds > cprd.cfg.limits.max_fds_total) {
		json_object_put(m);
		snprintf(why, why_len, "bad fd count");
		return -EBADMSG;
	}
	for (size_t i = 0; i < n_fds; i++) {
		fds[i] = -EBADF;
		if (2 + k < n && p[2 + k].slot == (long)i)
			fds[i] = p[2 + k++].fd;
	}
	if (2 + k != n) {
		json_object_put(m);
		snprintf(why, why_len, "fds beyond the manifest's count");
		return -EBADMSG;
	}
	stream_fd = p[1].fd;
	r = rebuild_bundle(m, &stream_fd, fds, n_fds, &b, why, why_len);
	json_object_put(m);
	if (r < 0) {
		/* dups rebuild_bundle() made are ours; the pieces are closed by the caller */
		for (size_t i = 0, j = 0; i < n_fds; i++) {
			if (j < k && p[2 + j].slot == (long)i)
				j++;
			else
				cpr_close(fds[i]);
		}
		return r;
	}
	b->persisted = true;
	b->n_parked = (unsigned)n;
	cprd.fdstore_used += (unsigned)n;
	for (size_t i = 0; i < n; i++)
		p[i].fd = -EBADF; /* the bundle owns them now */
	r = store_adopt(b);
	if (r < 0)
		return r;
	log_info("bundle %s (%zu fds) re-adopted from the fd store", log_quote(b->name), n_fds);
	return 0;
}

/* Takes every fd of @fds (@names are the LISTEN_FDNAMES of each). */
int fdstore_adopt(int *fds, char **names, size_t n)
{
	_cleanup_free_ struct piece *p = calloc(n ? n : 1, sizeof(*p));
	size_t n_p = 0, adopted = 0;

	if (!p) {
		for (size_t i = 0; i < n; i++)
			cpr_close(fds[i]);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct piece x = { .fd = fds[i], .name = names[i] };

		if (piece_parse(names[i], &x) < 0) {
			log_warnx("fd store entry %s: unknown name, removed", log_quote(names[i]));
			piece_discard(&x);
			continue;
		}
		p[n_p++] = x;
	}
	qsort(p, n_p, sizeof(*p), piece_cmp);
	for (size_t i = 0, j; i < n_p; i = j) {
		char why[256] = "", name[CPRD_BUNDLE_NAME_MAX + 1] = "";

		for (j = i + 1; j < n_p && p[j].id == p[i].id; j++)
			;
		if (adopt_group(p + i, j - i, why, sizeof(why), name, sizeof(name)) == 0) {
			adopted++;
			continue;
		}
		log_warnx("fd store: bundle %s%sid %" PRIu64 " (%zu fds) dropped: %s",
			  name[0] ? log_quote(name) : "", name[0] ? ", " : "", p[i].id, j - i, why);
		for (size_t k = i; k < j; k++)
			piece_discard(&p[k]);
	}
	return (int)adopted;
}
