/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Rebuilding a sealed bundle from its manifest and its fds, after a restart
 * (fd store) or an upgrade (exec).  Nothing is trusted: the manifest is
 * parsed as strictly as a request and the stream is validated again, as a
 * seal would.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include <cpr/state.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"
#include "proto.h"

static const char *const manifest_keys[] = {
	"cprd_manifest", "id",	 "name",    "owner_uid", "owner_gid", "owner_pid",
	"uids",		 "gids", "fds",	    "ttl_ms",	 "expire_ns", "created_ns",
	"claims",	 "same", "durable", NULL,
};

static int rebuild_ids(struct json_object *m, const char *key, unsigned *ids, size_t *ret_n)
{
	struct json_object *a = proto_get_obj(m, key);
	size_t n;

	if (!a || !json_object_is_type(a, json_type_array))
		return -EBADMSG;
	n = json_object_array_length(a);
	if (n > CPRD_CONSUMERS_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(a, i);
		int64_t x = json_object_get_int64(v);

		if (!json_object_is_type(v, json_type_int) || x < 0 || x >= (int64_t)UINT32_MAX)
			return -EBADMSG;
		ids[i] = (unsigned)x;
	}
	*ret_n = n;
	return 0;
}

static int rebuild_fields(struct json_object *m, struct bundle *b, size_t n_fds)
{
	uint64_t v, id, uid, gid, pid, fds, claims;
	const char *name;
	char why[128];

	if (proto_check_keys(m, manifest_keys, why, sizeof(why)) < 0 ||
	    proto_get_u64(m, "cprd_manifest", true, 1, &v) < 0 || v != 1 ||
	    proto_get_u64(m, "id", true, INT64_MAX - 1, &id) < 0 ||
	    proto_get_str(m, "name", true, CPRD_BUNDLE_NAME_MAX, &name) < 0 ||
	    !proto_name_valid(name) ||
	    proto_get_u64(m, "owner_uid", true, UINT32_MAX - 1, &uid) < 0 ||
	    proto_get_u64(m, "owner_gid", true, UINT32_MAX - 1, &gid) < 0 ||
	    proto_get_u64(m, "owner_pid", true, INT32_MAX, &pid) < 0 ||
	    proto_get_u64(m, "fds", true, UINT32_MAX, &fds) < 0 || fds != n_fds ||
	    proto_get_u64(m, "ttl_ms", true, UINT32_MAX, &b->ttl_ms) < 0 ||
	    proto_get_u64(m, "expire_ns", true, INT64_MAX - 1, &b->expire_ns) < 0 ||
	    proto_get_u64(m, "created_ns", true, INT64_MAX - 1, &b->created_ns) < 0 ||
	    proto_get_u64(m, "claims", true, UINT32_MAX, &claims) < 0 ||
	    rebuild_ids(m, "uids", b->uids, &b->n_uids) < 0 ||
	    rebuild_ids(m, "gids", b->gids, &b->n_gids) < 0 ||
	    proto_get_bool(m, "durable", false, &b->durable) < 0)
		return -EBADMSG;
	b->id = id;
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->owner_uid = (uid_t)uid;
	b->owner_gid = (gid_t)gid;
	b->owner_pid = (pid_t)pid;
	b->claims = (unsigned)claims;
	return 0;
}

/* Slots the manifest marks as "same file as slot j < i" are dup()ed. */
static int rebuild_same(struct json_object *m, int *fds, size_t n)
{
	struct json_object *a = proto_get_obj(m, "same");

	if (!a) { /* no copies: every slot has its own fd */
		for (size_t i = 0; i < n; i++)
			if (fds[i] < 0)
				return -EBADMSG;
		return 0;
	}
	if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) != n)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(a, i);
		int64_t j = json_object_get_int64(v);

		if (!json_object_is_type(v, json_type_int) || j < -1 || j >= (int64_t)i)
			return -EBADMSG;
		if ((j < 0) != (fds[i] >= 0))
			return -EBADMSG; /* missing fd, or an fd where a copy was promised */
		if (j >= 0) {
			fds[i] = fcntl(fds[j], F_DUPFD_CLOEXEC, 3);
			if (fds[i] < 0)
				return -errno;
		}
	}
	return 0;
}

static int rebuild_stream(struct bundle *b, int stream_fd, char *why, size_t why_len)
{
	struct cpr_error err = { 0 };
	_cleanup_free_ void *buf = NULL;
	size_t len;
	int seals = fcntl(stream_fd, F_GET_SEALS);
	int r;

	if (seals < 0 || !(seals & F_SEAL_WRITE) || !(seals & F_SEAL_SHRINK)) {
		snprintf(why, why_len, "the stream memfd is not sealed");
		return -EBADMSG;
	}
	r = fd_read_all(stream_fd, CPR_STREAM_MAX, &buf, &len);
	if (r == 0)
		r = store_validate(b, buf, len, &err);
	if (r < 0) {
		snprintf(why, why_len, "stream: %s", err.message[0] ? err.message : strerror(-r));
		return r;
	}
	b->stream_len = len;
	return 0;
}

/*
 * Build a sealed bundle from manifest @m, @stream_fd and @fds[@n] (entries
 * of slots the manifest marks as copies are -EBADF).  On success every fd
 * belongs to the new bundle (the caller's entries become -EBADF); on failure
 * the caller still owns and closes them.
 */
int rebuild_bundle(struct json_object *m, int *stream_fd, int *fds, size_t n, struct bundle **ret,
		   char *why, size_t why_len)
{
	struct bundle *b = calloc(1, sizeof(*b));
	int r;

	if (!b)
		return -ENOMEM;
	b->stream_fd = -EBADF;
	b->luo_manifest_fd = -EBADF;
	b->tie = (struct cprd_src){ .tag = TAG_PIDFD, .obj = b, .fd = -EBADF };
	b->n_fds = n;
	r = rebuild_fields(m, b, n);
	if (r < 0)
		snprintf(why, why_len, "bad manifest");
	else if (store_find(b->name) || store_find_id(b->id))
		r = -EEXIST, snprintf(why, why_len, "a bundle of that name or id exists");
	else if ((r = rebuild_same(m, fds, n)) < 0)
		snprintf(why, why_len, "fds missing or manifest \"same\" map wrong");
	else if (!(b->fds = malloc((n ? n : 1) * sizeof(int))))
		r = -ENOMEM;
	else {
		/* the numbers only, for the checks; taken below on success */
		memcpy(b->fds, fds, n * sizeof(int));
		r = rebuild_stream(b, *stream_fd, why, why_len);
	}
	if (r < 0) {
		free(b->fds);
		free(b);
		return r;
	}
	for (size_t i = 0; i < n; i++)
		b->fds[i] = TAKE_FD(fds[i]);
	b->cap_fds = n;
	b->stream_fd = TAKE_FD(*stream_fd);
	b->state = BUNDLE_SEALED;
	*ret = b;
	return 0;
}

/* Serialise a sealed bundle's manifest (the fds travel separately, one each). */
struct json_object *rebuild_manifest(const struct bundle *b)
{
	return fdstore_manifest_json(b, NULL);
}
