/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "cprctl daemon upgrade": cprd re-executes itself through libcpr's exec
 * path with every sealed and claimed bundle intact.  Each held fd is
 * registered with cpr_fd_save() ("cprd-b<ID>" slot, "cprd-b<ID>-s" stream),
 * the bundle table travels as VMM-private records (one JSON manifest per
 * bundle), and so do the listening sockets and the requester's connection,
 * on which the new image answers once it is ready.  If the exec fails,
 * libcpr has restored everything and the old image keeps serving.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "cprd.h"
#include "handle.h"
#include "log.h"
#include "proto.h"

#define UPGRADE_REC_HEADER 0x8c0cu /* {"next_id", "bundles"} */
#define UPGRADE_REC_BUNDLE 0x8c0du /* one manifest per bundle, instance = index */
#define UPGRADE_KEY_LISTEN "cprd-listen"
#define UPGRADE_KEY_CONN "cprd-upgrade-conn"

extern char **environ;

static struct conn *upgrade_conn;     /* the requester, old image */
static int upgrade_reply_fd = -EBADF; /* the requester, new image */

int handle_upgrade(struct request *r)
{
	size_t need = cprd.n_fds + cprd.n_listen + 1;

	if (need > CPR_FDS_MAX)
		return handle_fail(r, -EFBIG, "%zu fds exceed what one exec state carries (%u)",
				   need, CPR_FDS_MAX);
	if (!cprd.self_exe)
		return handle_fail(r, -ENOENT, "the daemon's own executable is unknown");
	upgrade_conn = r->conn;
	cprd.upgrade = true;
	r->no_reply = true; /* the new image answers */
	return 0;
}

static struct json_object *upgrade_bundle_json(const struct bundle *b)
{
	struct json_object *o = rebuild_manifest(b);

	json_object_object_add(o, "persisted", json_object_new_boolean(b->persisted));
	if (b->state == BUNDLE_CLAIMED) {
		json_object_object_add(o, "token", json_object_new_string(b->token));
		json_object_object_add(o, "claimer_uid", json_object_new_int64(b->claimer_uid));
		json_object_object_add(o, "claimer_pid", json_object_new_int64(b->claimer_pid));
		json_object_object_add(o, "lease_ns", json_object_new_int64((int64_t)b->lease_ns));
	}
	return o;
}

static int upgrade_save_bundle(struct cpr_ctx *ctx, const struct bundle *b, uint32_t index)
{
	struct json_object *m;
	char key[64];
	const char *s;
	size_t len;
	int r;

	snprintf(key, sizeof(key), "cprd-b%" PRIu64, b->id);
	for (size_t i = 0; i < b->n_fds; i++) {
		r = cpr_fd_save(ctx, key, (int32_t)i, b->fds[i], CPR_FD_GENERIC);
		if (r < 0)
			return r;
	}
	snprintf(key, sizeof(key), "cprd-b%" PRIu64 "-s", b->id);
	r = cpr_fd_save(ctx, key, 0, b->stream_fd, CPR_FD_MEMFD);
	if (r < 0)
		return r;
	m = upgrade_bundle_json(b);
	s = proto_format(m, &len);
	r = cpr_ctx_set_private(ctx, UPGRADE_REC_BUNDLE, index, s, len);
	json_object_put(m);
	return r;
}

static int upgrade_save(struct cpr_ctx *ctx)
{
	char hdr[96];
	uint32_t n = 0;
	int r;

	for (size_t i = 0; i < cprd.n_listen; i++) {
		r = cpr_fd_save(ctx, UPGRADE_KEY_LISTEN, (int32_t)i, cprd.listen_fds[i],
				CPR_FD_SOCKET);
		if (r < 0)
			return r;
	}
	r = cpr_fd_save(ctx, UPGRADE_KEY_CONN, 0, upgrade_conn->src.fd, CPR_FD_SOCKET);
	for (struct bundle *b = cprd.bundles; r == 0 && b; b = b->next)
		if (b->state != BUNDLE_OPEN) /* open bundles die with their connection */
			r = upgrade_save_bundle(ctx, b, n++);
	if (r < 0)
		return r;
	snprintf(hdr, sizeof(hdr), "{\"next_id\":%" PRIu64 ",\"bundles\":%u}", cprd.next_id, n);
	return cpr_ctx_set_private(ctx, UPGRADE_REC_HEADER, 0, hdr, strlen(hdr));
}

static void upgrade_refuse(int r, const char *why)
{
	struct json_object *e = proto_error_new("upgrade", r, why, false);

	control_send_json(upgrade_conn, e, NULL, 0);
	json_object_put(e);
}

/* Returns only on failure, with everything as before. */
int upgrade_exec(void)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx = NULL;
	int r = cpr_ctx_new(&ctx);

	if (r == 0)
		r = cpr_ctx_set_producer(ctx, "cprd " PACKAGE_VERSION, 0);
	if (r == 0)
		r = upgrade_save(ctx);
	if (r == 0) {
		log_info("upgrade: re-executing %s with %u bundles, %u fds", cprd.self_exe,
			 cprd.n_bundles, cprd.n_fds);
		r = cpr_exec(ctx, cprd.self_exe, cprd.argv, environ, &err);
	}
	log_errno(r, "upgrade failed%s%s; still serving", err.message[0] ? ": " : "", err.message);
	upgrade_refuse(r, err.message[0] ? err.message : "cannot re-execute");
	cpr_ctx_free(ctx); /* saved fds are borrowed: the bundles keep them */
	upgrade_conn = NULL;
	return r;
}

static int upgrade_claim_state(struct json_object *m, struct bundle *b)
{
	const char *token = NULL;
	uint64_t uid, pid;

	if (proto_get_str(m, "token", false, CPRD_TOKEN_LEN, &token) < 0)
		return -EBADMSG;
	if (!token)
		return 0;
	if (strlen(token) != CPRD_TOKEN_LEN ||
	    proto_get_u64(m, "claimer_uid", true, UINT32_MAX - 1, &uid) < 0 ||
	    proto_get_u64(m, "claimer_pid", true, INT32_MAX, &pid) < 0 ||
	    proto_get_u64(m, "lease_ns", true, INT64_MAX - 1, &b->lease_ns) < 0)
		return -EBADMSG;
	memcpy(b->token, token, CPRD_TOKEN_LEN + 1);
	b->claimer_uid = (uid_t)uid;
	b->claimer_pid = (pid_t)pid;
	b->state = BUNDLE_CLAIMED;
	return 0;
}

/* Take the fds of bundle @id from the registry: the caller owns them. */
static int upgrade_take_fds(struct cpr_ctx *ctx, uint64_t id, size_t n, int *fds, int *ret_stream)
{
	char key[64];
	int r;

	snprintf(key, sizeof(key), "cprd-b%" PRIu64, id);
	for (size_t i = 0; i < n; i++) {
		r = cpr_fd_find(ctx, key, (int32_t)i, 0, &fds[i]);
		if (r < 0)
			return r;
	}
	snprintf(key, sizeof(key), "cprd-b%" PRIu64 "-s", id);
	return cpr_fd_find(ctx, key, 0, CPR_FD_MEMFD, ret_stream);
}

static const char *const upgrade_extra_keys[] = {
	"persisted", "token", "claimer_uid", "claimer_pid", "lease_ns", NULL,
};

static int upgrade_rebuild(struct cpr_ctx *ctx, struct json_object *m, uint64_t id, size_t n,
			   int *fds, int *stream, char *why, size_t why_len)
{
	struct bundle claim = { .state = BUNDLE_SEALED }, *b;
	bool persisted = false;
	int r;

	if (proto_get_bool(m, "persisted", true, &persisted) < 0 ||
	    upgrade_claim_state(m, &claim) < 0) {
		snprintf(why, why_len, "bad upgrade fields");
		return -EBADMSG;
	}
	r = upgrade_take_fds(ctx, id, n, fds, stream);
	if (r < 0) {
		snprintf(why, why_len, "fds missing from the exec state");
		return r;
	}
	for (size_t i = 0; upgrade_extra_keys[i]; i++)
		json_object_object_del(m, upgrade_extra_keys[i]);
	r = rebuild_bundle(m, stream, fds, n, &b, why, why_len);
	if (r < 0)
		return r;
	memcpy(b->token, claim.token, sizeof(b->token));
	b->claimer_uid = claim.claimer_uid;
	b->claimer_pid = claim.claimer_pid;
	b->lease_ns = claim.lease_ns;
	b->state = claim.state;
	b->persisted = persisted;
	return store_adopt(b);
}

static int upgrade_adopt_bundle(struct cpr_ctx *ctx, const void *data, size_t len)
{
	struct json_object *m = NULL;
	_cleanup_free_ int *fds = NULL;
	int stream = -EBADF, r;
	char why[256] = "";
	uint64_t id = 0, n = 0;

	r = proto_parse(data, len, 8, &m, why, sizeof(why));
	if (r == 0 && (proto_get_u64(m, "id", true, INT64_MAX - 1, &id) < 0 ||
		       proto_get_u64(m, "fds", true, CPR_FDS_MAX, &n) < 0))
		r = -EBADMSG;
	if (r == 0 && !(fds = calloc(n ? n : 1, sizeof(int))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++)
		fds[i] = -EBADF;
	if (r == 0)
		r = upgrade_rebuild(ctx, m, id, (size_t)n, fds, &stream, why, sizeof(why));
	json_object_put(m);
	if (r < 0) {
		for (size_t i = 0; fds && i < n; i++)
			cpr_close(fds[i]);
		cpr_close(stream);
		log_errno(r, "upgrade: bundle id %" PRIu64 " lost: %s", id, why);
	}
	return r;
}

static void upgrade_adopt_all(struct cpr_ctx *ctx, const struct cpr_state *st)
{
	size_t n = cpr_state_private_count(st);
	const void *data;
	size_t len;

	if (cpr_state_private_find(st, UPGRADE_REC_HEADER, 0, &data, &len) == 0) {
		struct json_object *h = NULL;
		char why[64];
		uint64_t next = 0;

		if (proto_parse(data, len, 4, &h, why, sizeof(why)) == 0 &&
		    proto_get_u64(h, "next_id", true, INT64_MAX - 1, &next) == 0 &&
		    next > cprd.next_id)
			cprd.next_id = next;
		json_object_put(h);
	}
	for (size_t i = 0; i < n; i++) {
		const struct cpr_state_private *p = cpr_state_private_get(st, i);

		if (p->type == UPGRADE_REC_BUNDLE)
			upgrade_adopt_bundle(ctx, p->data, p->len);
	}
}

/* 1 when started by an upgrade (listeners and bundles taken), 0 if not. */
int upgrade_incoming(void)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx = NULL;
	int r = cpr_ctx_new(&ctx), fd;

	if (r == 0)
		r = cpr_exec_incoming(ctx, &err);
	if (r <= 0) {
		if (r < 0)
			log_errno(r, "upgrade: incoming state refused: %s", err.message);
		cpr_ctx_free(ctx);
		return 0;
	}
	for (int32_t i = 0; cpr_fd_find(ctx, UPGRADE_KEY_LISTEN, i, CPR_FD_SOCKET, &fd) == 0; i++)
		if (control_add_listener(fd) < 0)
			cpr_close(fd);
	if (cpr_fd_find(ctx, UPGRADE_KEY_CONN, 0, CPR_FD_SOCKET, &fd) == 0)
		upgrade_reply_fd = fd;
	upgrade_adopt_all(ctx, cpr_ctx_incoming_state(ctx));
	cpr_fd_close_unclaimed(ctx);
	cpr_ctx_free(ctx);
	log_info("upgrade: running the new image with %u bundles, %u fds", cprd.n_bundles,
		 cprd.n_fds);
	return cprd.n_listen > 0 ? 1 : 0;
}

/* Once the new image is ready: answer the upgrade request and hang up. */
void upgrade_reply(void)
{
	struct json_object *o;
	size_t len;
	const char *s;

	if (upgrade_reply_fd < 0)
		return;
	o = proto_reply_new("upgrade");
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "bundles", json_object_new_int64(cprd.n_bundles));
	json_object_object_add(o, "fds", json_object_new_int64(cprd.n_fds));
	s = proto_format(o, &len);
	if (write(upgrade_reply_fd, s, len) < 0)
		log_warn("upgrade: cannot answer the requester");
	json_object_put(o);
	upgrade_reply_fd = cpr_close(upgrade_reply_fd);
}
