/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * After a kexec: the durable bundles back from the retrieved session (see
 * luo.c for the tokens).  Nothing is trusted: each manifest is parsed and
 * each bundle rebuilt as after a restart (rebuild.c); a bundle whose pieces
 * are missing or bad is dropped with a message saying why, and the others
 * are restored.  A failed retrieve is permanent (the kernel keeps its error),
 * so nothing is retried.  The session is finished at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"
#include "luo.h"
#include "proto.h"

#define LUO_MANIFEST_MAX (256u << 10)

static int restore_manifest(int session_fd, uint64_t id, struct json_object **ret)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	size_t len;
	char why[128];
	int r = luo_ioctl_retrieve_fd(session_fd, LUO_TOKEN(id, LUO_PIECE_MANIFEST), &fd);

	if (r == 0)
		r = fd_read_all(fd, LUO_MANIFEST_MAX, (void **)&buf, &len);
	if (r == 0)
		r = proto_parse(buf, len, 8, ret, why, sizeof(why));
	return r;
}

/* The "same" entry of slot @i: >= 0 a copy of an earlier slot, -1 its own fd. */
static int64_t restore_same(struct json_object *m, size_t i)
{
	struct json_object *a = proto_get_obj(m, "same");

	if (!a || !json_object_is_type(a, json_type_array) || i >= json_object_array_length(a))
		return -1;
	return json_object_get_int64(json_object_array_get_idx(a, i));
}

static void restore_close(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cpr_close(fds[i]);
}

static int restore_pieces(int session_fd, uint64_t id, struct json_object *m, int *stream_fd,
			  int *fds, size_t n, char *why, size_t why_len)
{
	int r = luo_ioctl_retrieve_fd(session_fd, LUO_TOKEN(id, LUO_PIECE_STREAM), stream_fd);

	if (r < 0) {
		snprintf(why, why_len, "the stream: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (restore_same(m, i) >= 0)
			continue;
		r = luo_ioctl_retrieve_fd(session_fd, LUO_TOKEN(id, LUO_PIECE_SLOT0 + i), &fds[i]);
		if (r < 0) {
			snprintf(why, why_len, "slot %zu: %s", i, strerror(-r));
			return r;
		}
	}
	return 0;
}

/* A restored bundle lives on from now: its deadlines restart in this boot. */
static void restore_times(struct bundle *b)
{
	b->created_ns = now_boottime_ns();
	b->expire_ns = b->ttl_ms ? b->created_ns + b->ttl_ms * 1000000u : 0;
}

static int restore_bundle(int session_fd, uint64_t id, char *why, size_t why_len)
{
	struct json_object *m = NULL;
	_cleanup_free_ int *fds = NULL;
	int stream_fd = -EBADF, r;
	struct bundle *b;
	size_t n;

	r = restore_manifest(session_fd, id, &m);
	if (r < 0) {
		snprintf(why, why_len, "unreadable manifest: %s", strerror(-r));
		return r;
	}
	n = (size_t)json_object_get_int64(proto_get_obj(m, "fds"));
	fds = n <= cprd.cfg.limits.max_fds_total ? malloc((n ? n : 1) * sizeof(int)) : NULL;
	if (!fds) {
		json_object_put(m);
		snprintf(why, why_len, "bad fd count");
		return -EBADMSG;
	}
	for (size_t i = 0; i < n; i++)
		fds[i] = -EBADF;
	r = restore_pieces(session_fd, id, m, &stream_fd, fds, n, why, why_len);
	if (r == 0)
		r = rebuild_bundle(m, &stream_fd, fds, n, &b, why, why_len);
	json_object_put(m);
	if (r == 0 && b->id != id) {
		snprintf(why, why_len, "the manifest names another id");
		r = -EBADMSG;
		store_bundle_discard(b);
	}
	if (r < 0) {
		restore_close(fds, n);
		cpr_close(stream_fd);
		return r;
	}
	b->durable = true;
	restore_times(b);
	r = store_adopt(b);
	if (r < 0) {
		snprintf(why, why_len, "over the owner's quota");
		store_bundle_discard(b);
		return r;
	}
	log_info("bundle %s (%zu fds) restored from live-update session %s", log_quote(b->name), n,
		 log_quote(luo.name));
	return 0;
}

/* The index's ids, in order; at most @max. */
static size_t restore_index(int session_fd, uint64_t *ids, size_t max)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	size_t len, n = 0, magic = strlen(LUO_INDEX_MAGIC);
	int r = luo_ioctl_retrieve_fd(session_fd, LUO_TOKEN_INDEX, &fd);

	if (r == 0)
		r = fd_read_all(fd, LUO_INDEX_SIZE, (void **)&buf, &len);
	if (r < 0 || len != LUO_INDEX_SIZE || memcmp(buf, LUO_INDEX_MAGIC, magic) != 0) {
		log_warnx("live update: session %s has no readable index (%s): nothing restored",
			  log_quote(luo.name), r < 0 ? strerror(-r) : "bad contents");
		return 0;
	}
	buf[len - 1] = 0;
	for (char *p = buf + magic, *e; *p && n < max; p = e + 1) {
		e = strchr(p, '\n');
		if (!e)
			break;
		*e = 0;
		if (conf_parse_u64(p, 1, LUO_ID_MAX, &ids[n]) == 0)
			n++;
		else
			log_warnx("live update: index entry %s ignored", log_quote(p));
	}
	return n;
}

int luo_restore(int session_fd)
{
	size_t max = cprd.cfg.limits.max_bundles;
	_cleanup_free_ uint64_t *ids = malloc(max * sizeof(*ids));
	size_t n = ids ? restore_index(session_fd, ids, max) : 0;
	unsigned dropped = 0;
	int r;

	luo.restoring = true;
	for (size_t i = 0; i < n; i++) {
		char why[256] = "";

		if (restore_bundle(session_fd, ids[i], why, sizeof(why)) == 0) {
			luo.restored++;
			continue;
		}
		dropped++;
		log_warnx("live update: bundle id %" PRIu64 " not restored: %s", ids[i], why);
	}
	luo.restoring = false;
	r = luo_ioctl_finish(session_fd);
	if (r < 0)
		log_errno(r,
			  "live update: finishing session %s (what it holds stays preserved "
			  "until the next live update)",
			  log_quote(luo.name));
	log_info("live update: session %s retrieved: %u bundles restored, %u dropped",
		 log_quote(luo.name), luo.restored, dropped);
	return (int)luo.restored;
}
