/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Parking bundles in the service manager's fd store, so that even kill -9
 * of cprd loses nothing.  Each sealed bundle is uploaded as one fd per
 * message (FDSTORE=1, FDPOLL=0: memfds cannot be polled), named
 *
 *	cprd-b<ID>-<SLOT>	the bundle's fd in slot SLOT
 *	cprd-b<ID>-s		the state stream (a sealed memfd)
 *	cprd-b<ID>-m		the manifest: a sealed memfd holding JSON
 *
 * the manifest last, so a bundle with a manifest is complete.  At start the
 * fds come back through LISTEN_FDS/LISTEN_FDNAMES, in no particular order;
 * fdstore_adopt() groups them by ID, validates each group as a seal would,
 * and removes from the store whatever it cannot use.  The service manager
 * keeps only one copy of an open file: a file description that occurs twice
 * in a bundle is uploaded once and the manifest's "same" map restores it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kcmp.h>

#include <json-c/json.h>
#include <systemd/sd-daemon.h>

#include <cpr/state.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"
#include "proto.h"

#define FDSTORE_MANIFEST_MAX (256u << 10)
#define FDSTORE_NAME_MAX 64u

static void fdstore_piece_name(uint64_t id, long slot, char *buf, size_t len)
{
	if (slot == FDSTORE_SLOT_MANIFEST)
		snprintf(buf, len, "cprd-b%" PRIu64 "-m", id);
	else if (slot == FDSTORE_SLOT_STREAM)
		snprintf(buf, len, "cprd-b%" PRIu64 "-s", id);
	else
		snprintf(buf, len, "cprd-b%" PRIu64 "-%ld", id, slot);
}

int fdstore_setup(void)
{
	const char *e = getenv("FDSTORE");
	uint64_t max = 0;

	if (!getenv("NOTIFY_SOCKET"))
		return 0;
	if (e && conf_parse_u64(e, 0, UINT32_MAX, &max) < 0)
		max = 0;
	if (!max && !cprd.fdstore)
		return 0;
	cprd.fdstore = true;
	cprd.fdstore_max = (unsigned)max;
	if (max && max < (uint64_t)cprd.cfg.limits.max_fds_total + 2u * cprd.cfg.limits.max_bundles)
		log_warnx("FileDescriptorStoreMax=%" PRIu64 " is below max-fds + 2 * max-bundles "
			  "(%u): bundles beyond it are not persisted",
			  max, cprd.cfg.limits.max_fds_total + 2u * cprd.cfg.limits.max_bundles);
	return 1;
}

/* FDSTORE=1 for piece @slot of @b: 1 sent, 0 queued, -errno. */
static int fdstore_send(const struct bundle *b, long slot, int fd, int *owned)
{
	char msg[FDSTORE_NAME_MAX + 40], name[FDSTORE_NAME_MAX];

	fdstore_piece_name(b->id, slot, name, sizeof(name));
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDPOLL=0\nFDNAME=%s", name);
	return notify_send_piece(msg, b->id, slot, fd, owned);
}

static void fdstore_remove(const char *name)
{
	char msg[FDSTORE_NAME_MAX + 40];

	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	notify_send(msg);
}

static bool fdstore_same_file(int a, int b)
{
	pid_t me = getpid();

	return syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

/* Slot i duplicates an earlier slot: return it, else -1. */
long fdstore_dup_of(const struct bundle *b, const struct stat *st, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (st[j].st_dev == st[i].st_dev && st[j].st_ino == st[i].st_ino &&
		    fdstore_same_file(b->fds[j], b->fds[i]))
			return (long)j;
	return -1;
}

struct json_object *fdstore_manifest_json(const struct bundle *b, struct json_object *same)
{
	struct json_object *o = json_object_new_object(), *u = json_object_new_array(),
			   *g = json_object_new_array();

	json_object_object_add(o, "cprd_manifest", json_object_new_int(1));
	json_object_object_add(o, "id", json_object_new_int64((int64_t)b->id));
	json_object_object_add(o, "name", json_object_new_string(b->name));
	json_object_object_add(o, "owner_uid", json_object_new_int64(b->owner_uid));
	json_object_object_add(o, "owner_gid", json_object_new_int64(b->owner_gid));
	json_object_object_add(o, "owner_pid", json_object_new_int64(b->owner_pid));
	for (size_t i = 0; i < b->n_uids; i++)
		json_object_array_add(u, json_object_new_int64(b->uids[i]));
	for (size_t i = 0; i < b->n_gids; i++)
		json_object_array_add(g, json_object_new_int64(b->gids[i]));
	json_object_object_add(o, "uids", u);
	json_object_object_add(o, "gids", g);
	json_object_object_add(o, "fds", json_object_new_int64((int64_t)b->n_fds));
	json_object_object_add(o, "ttl_ms", json_object_new_int64((int64_t)b->ttl_ms));
	json_object_object_add(o, "expire_ns", json_object_new_int64((int64_t)b->expire_ns));
	json_object_object_add(o, "created_ns", json_object_new_int64((int64_t)b->created_ns));
	json_object_object_add(o, "claims", json_object_new_int64(b->claims));
	if (same)
		json_object_object_add(o, "same", same);
	if (b->durable)
		json_object_object_add(o, "durable", json_object_new_boolean(true));
	return o;
}

static void fdstore_unpark_upto(const struct bundle *b, size_t n_slots, bool stream)
{
	char name[FDSTORE_NAME_MAX];

	for (size_t i = 0; i < n_slots; i++) {
		fdstore_piece_name(b->id, (long)i, name, sizeof(name));
		fdstore_remove(name);
	}
	if (stream) {
		fdstore_piece_name(b->id, FDSTORE_SLOT_STREAM, name, sizeof(name));
		fdstore_remove(name);
	}
}

/* Is @fd, of @st, an open file another parked bundle holds? */
static const struct bundle *fdstore_held_elsewhere(const struct bundle *self, int fd,
						   const struct stat *st)
{
	for (const struct bundle *o = cprd.bundles; o; o = o->next) {
		if (o == self || !o->persisted)
			continue;
		for (size_t i = 0; i < o->n_fds; i++) {
			struct stat ost = { 0 };

			/* the files it parked, recorded then; else asked now */
			if (o->file_ids) {
				ost.st_dev = (dev_t)o->file_ids[2 * i];
				ost.st_ino = (ino_t)o->file_ids[2 * i + 1];
			} else if (fstat(o->fds[i], &ost) < 0) {
				continue;
			}
			if (ost.st_dev == st->st_dev && ost.st_ino == st->st_ino &&
			    fdstore_same_file(o->fds[i], fd))
				return o;
		}
	}
	return NULL;
}

/*
 * What parking @b takes: one fd per distinct open file, the stream and the
 * manifest; refused (-EXFULL, @why says why) when the store could not keep
 * all of it.  The service manager keeps one copy of an open file however
 * often it is sent: a file another parked bundle holds would be dropped.
 */
static int fdstore_plan(const struct bundle *b, struct stat *st, struct json_object *same,
			unsigned *ret_need, char *why, size_t why_len)
{
	unsigned need = 2;

	for (size_t i = 0; i < b->n_fds; i++) {
		const struct bundle *o;
		long dup;

		if (fstat(b->fds[i], &st[i]) < 0)
			return -errno;
		dup = fdstore_dup_of(b, st, i);
		json_object_array_add(same, json_object_new_int64(dup));
		if (dup >= 0)
			continue;
		o = fdstore_held_elsewhere(b, b->fds[i], &st[i]);
		if (o) {
			snprintf(
				why, why_len,
				"the fd in slot %zu is the open file bundle %s holds, which the fd "
				"store keeps once",
				i, log_quote(o->name));
			return -EXFULL;
		}
		need++;
	}
	if (cprd.fdstore_max &&
	    need > cprd.fdstore_max - MIN(cprd.fdstore_used, cprd.fdstore_max)) {
		snprintf(why, why_len, "the fd store holds %u of %u fds and this bundle needs %u",
			 cprd.fdstore_used, cprd.fdstore_max, need);
		return -EXFULL;
	}
	*ret_need = need;
	return 0;
}

/* A new open file of the stream memfd: never the same file as any other. */
static int fdstore_stream_copy(const struct bundle *b)
{
	char path[40];
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", b->stream_fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int fdstore_piece_fd(uint64_t id, long slot, int *ret_fd, bool *ret_close)
{
	const struct bundle *b = store_find_id(id);
	int fd;

	if (!b || !b->n_parked)
		return -ENOENT;
	if (slot == FDSTORE_SLOT_STREAM) {
		fd = fdstore_stream_copy(b);
		if (fd < 0)
			return fd;
		*ret_close = true;
		*ret_fd = fd;
		return 0;
	}
	if (slot < 0 || (size_t)slot >= b->n_fds)
		return -ENOENT;
	*ret_close = false;
	*ret_fd = b->fds[slot];
	return 0;
}

/* Every piece is out: the bundle survives a restart from now on. */
static void fdstore_parked(struct bundle *b)
{
	b->persisted = true;
	log_debug("bundle %s parked in the fd store (%u fds)", log_quote(b->name), b->n_parked);
}

void fdstore_piece_sent(uint64_t id, long slot, int r)
{
	struct bundle *b = store_find_id(id);

	if (!b || !b->n_parked)
		return;
	if (r < 0) {
		log_errno(r, "bundle %s: the fd store refused a piece; not persisted",
			  log_quote(b->name));
		fdstore_unpark(b);
	} else if (slot == FDSTORE_SLOT_MANIFEST) {
		fdstore_parked(b);
	}
}

static int fdstore_park_fds(struct bundle *b, struct json_object *same, size_t *ret_sent)
{
	_cleanup_close_ int stream = -EBADF;
	int r;

	for (size_t i = 0; i < b->n_fds; i++) {
		*ret_sent = i;
		if (json_object_get_int64(json_object_array_get_idx(same, i)) >= 0)
			continue;
		r = fdstore_send(b, (long)i, b->fds[i], NULL);
		if (r < 0)
			return r;
	}
	*ret_sent = b->n_fds;
	stream = fdstore_stream_copy(b);
	if (stream < 0)
		return stream;
	r = fdstore_send(b, FDSTORE_SLOT_STREAM, stream, NULL);
	return r < 0 ? r : 0;
}

/*
 * Park @b: its distinct fds, a fresh open file of its stream, then the
 * manifest, so that a bundle with a manifest is complete.  Pieces the
 * service manager cannot take now wait in the notification queue; the
 * bundle is persisted once its manifest has gone out (at once, usually).
 */
int fdstore_park(struct bundle *b)
{
	_cleanup_free_ struct stat *st = calloc(b->n_fds ? b->n_fds : 1, sizeof(*st));
	struct json_object *same = json_object_new_array(), *m;
	_cleanup_close_ int mfd = -EBADF;
	char why[256] = "";
	unsigned need = 0;
	size_t sent = 0, len;
	const char *s;
	int r = st && same ? fdstore_plan(b, st, same, &need, why, sizeof(why)) : -ENOMEM;

	if (r == -EXFULL) {
		log_warnx("bundle %s: not parked in the fd store: %s", log_quote(b->name), why);
		json_object_put(same);
		return r;
	}
	b->n_parked = need; /* reserved: the pieces may still be queued */
	cprd.fdstore_used += need;
	free(b->file_ids);
	b->file_ids = r == 0 ? malloc(2 * (b->n_fds ? b->n_fds : 1) * sizeof(uint64_t)) : NULL;
	for (size_t i = 0; b->file_ids && i < b->n_fds; i++) {
		b->file_ids[2 * i] = (uint64_t)st[i].st_dev;
		b->file_ids[2 * i + 1] = (uint64_t)st[i].st_ino;
	}
	if (r == 0)
		r = fdstore_park_fds(b, same, &sent);
	m = fdstore_manifest_json(b, same);
	if (r == 0) {
		s = proto_format(m, &len);
		r = memfd_new_sealed("cprd-manifest", s, len, &mfd);
	}
	json_object_put(m);
	if (r == 0)
		r = fdstore_send(b, FDSTORE_SLOT_MANIFEST, mfd, &mfd);
	if (r < 0) {
		log_errno(r, "bundle %s: cannot park it in the fd store, ignoring",
			  log_quote(b->name));
		fdstore_unpark_upto(b, sent, sent == b->n_fds);
		cprd.fdstore_used -= MIN(b->n_parked, cprd.fdstore_used);
		b->n_parked = 0;
		return r;
	}
	if (r == 1)
		fdstore_parked(b);
	return 0;
}

void fdstore_unpark(struct bundle *b)
{
	char name[FDSTORE_NAME_MAX];

	fdstore_piece_name(b->id, FDSTORE_SLOT_MANIFEST, name, sizeof(name));
	fdstore_remove(name); /* the manifest first: what is left is incomplete */
	fdstore_unpark_upto(b, b->n_fds, true);
	b->persisted = false;
	cprd.fdstore_used -= MIN(b->n_parked, cprd.fdstore_used);
	b->n_parked = 0;
}
