/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Handlers that only read: hello, status, list, show, debug. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "cprd.h"
#include "handle.h"
#include "proto.h"

#define LIST_MAX 2048u	  /* bundles in one list reply */
#define SHOW_FDS_MAX 512u /* FD records in one show reply */

static void add_int(struct json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static int64_t ms_left(uint64_t deadline_ns)
{
	uint64_t now = now_boottime_ns();

	return deadline_ns > now ? (int64_t)((deadline_ns - now) / 1000000u) : 0;
}

struct json_object *handle_limits_json(void)
{
	const struct cprd_limits *l = &cprd.cfg.limits;
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	add_int(o, "max_connections", l->max_connections);
	add_int(o, "max_fds", l->max_fds_total);
	add_int(o, "max_fds_per_uid", l->max_fds_per_uid);
	add_int(o, "max_bundles", l->max_bundles);
	add_int(o, "max_bundles_per_uid", l->max_bundles_per_uid);
	add_int(o, "max_request", l->max_request);
	add_int(o, "max_json_depth", l->max_depth);
	add_int(o, "max_stream", l->max_stream);
	add_int(o, "max_fds_per_message", CPRD_MSG_FDS_MAX);
	add_int(o, "max_name", CPRD_BUNDLE_NAME_MAX);
	add_int(o, "max_consumers", CPRD_CONSUMERS_MAX);
	add_int(o, "lease_default_ms", (int64_t)l->lease_default_ms);
	add_int(o, "lease_max_ms", (int64_t)l->lease_max_ms);
	add_int(o, "ttl_max_ms", (int64_t)l->ttl_max_ms);
	add_int(o, "idle_timeout_ms", (int64_t)l->idle_timeout_ms);
	add_int(o, "check_fd_kinds", l->check_kinds);
	return o;
}

int handle_hello(struct request *r)
{
	struct json_object *o = r->reply, *levels, *peer;
	uint64_t v = 0;

	if (proto_get_u64(r->req, "version", false, UINT32_MAX, &v) < 0 ||
	    (v == 0 && json_object_object_get_ex(r->req, "version", NULL)))
		return handle_bad_field(r, "version", -EINVAL);
	if (v) /* the lower of the two, for the rest of the connection */
		r->conn->version = (unsigned)MIN(v, CPRD_PROTOCOL_VERSION);
	if (proto_get_str(r->req, "client", false, 128, &(const char *){ NULL }) < 0)
		return handle_bad_field(r, "client", -EINVAL);
	levels = json_object_new_array();
	add_int(o, "protocol", CPRD_PROTOCOL_VERSION);
	add_int(o, "version", handle_version(r->conn));
	json_object_object_add(o, "server", json_object_new_string("cprd " PACKAGE_VERSION));
	for (uint32_t l = CPR_LEVEL_MIN; levels && l <= CPR_LEVEL_MAX; l++)
		json_object_array_add(levels, json_object_new_int((int)l));
	json_object_object_add(o, "levels", levels);
	json_object_object_add(o, "ops", handle_ops_json(handle_version(r->conn)));
	json_object_object_add(o, "limits", handle_limits_json());
	peer = json_object_new_object();
	if (peer) {
		add_int(peer, "pid", r->peer->pid);
		add_int(peer, "uid", r->peer->uid);
		add_int(peer, "gid", r->peer->gid);
		json_object_object_add(peer, "pidfd", json_object_new_boolean(r->peer->pidfd >= 0));
		json_object_object_add(
			peer, "admin",
			json_object_new_boolean(conf_is_admin(&cprd.cfg, r->peer->uid)));
	}
	json_object_object_add(o, "peer", peer);
	return 0;
}

int handle_status(struct request *r)
{
	struct json_object *o = r->reply, *b = json_object_new_object(), *you;
	unsigned n[3] = { 0 }, u_fds, u_bundles, q_fds, q_bundles;

	for (struct bundle *x = cprd.bundles; x; x = x->next)
		n[x->state]++;
	add_int(b, "open", n[BUNDLE_OPEN]);
	add_int(b, "sealed", n[BUNDLE_SEALED]);
	add_int(b, "claimed", n[BUNDLE_CLAIMED]);
	json_object_object_add(o, "bundles", b);
	add_int(o, "fds", cprd.n_fds);
	add_int(o, "connections", cprd.n_conns);
	add_int(o, "requests", (int64_t)cprd.n_requests);
	add_int(o, "pid", getpid());
	add_int(o, "uptime_ms", (int64_t)((now_boottime_ns() - cprd.started_ns) / 1000000u));
	json_object_object_add(o, "fdstore", json_object_new_boolean(cprd.fdstore));
	json_object_object_add(o, "live_update", luo_status_json());
	json_object_object_add(o, "limits", handle_limits_json());
	store_usage(r->peer->uid, &u_fds, &u_bundles);
	conf_quota(&cprd.cfg, r->peer->uid, &q_fds, &q_bundles);
	you = json_object_new_object();
	add_int(you, "uid", r->peer->uid);
	add_int(you, "fds", u_fds);
	add_int(you, "bundles", u_bundles);
	add_int(you, "quota_fds", q_fds);
	add_int(you, "quota_bundles", q_bundles);
	json_object_object_add(o, "you", you);
	return 0;
}

int handle_list(struct request *r)
{
	const char *prefix = "";
	struct json_object *a;
	size_t n = 0, plen;

	if (proto_get_str(r->req, "prefix", false, CPRD_BUNDLE_NAME_MAX, &prefix) < 0)
		return handle_bad_field(r, "prefix", -EINVAL);
	a = json_object_new_array();
	plen = strlen(prefix);
	for (struct bundle *b = cprd.bundles; a && b; b = b->next) {
		if (!access_may_see(b, r->peer) || strncmp(b->name, prefix, plen) != 0)
			continue;
		if (n++ == LIST_MAX) {
			json_object_object_add(r->reply, "truncated", json_object_new_boolean(1));
			break;
		}
		json_object_array_add(a, handle_bundle_json(b, false));
	}
	json_object_object_add(r->reply, "bundles", a);
	return 0;
}

static struct json_object *handle_ids_json(const unsigned *ids, size_t n, size_t stride)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < n; i++)
		json_object_array_add(
			a,
			json_object_new_int64(*(const unsigned *)((const char *)ids + i * stride)));
	return a;
}

/* What the stream describes: parsed again from the bundle's sealed memfd. */
static struct json_object *handle_stream_json(const struct bundle *b)
{
	struct json_object *o = json_object_new_object(), *fds, *rbs;
	_cleanup_free_ void *buf = NULL;
	struct cpr_state_info info;
	struct cpr_state *st = NULL;
	size_t n, len;

	if (!o)
		return NULL;
	add_int(o, "bytes", (int64_t)b->stream_len);
	if (fd_read_all(b->stream_fd, CPR_STREAM_MAX, &buf, &len) < 0 ||
	    cpr_state_parse(buf, len, 0, &st, NULL) < 0 || cpr_state_get_info(st, &info) < 0) {
		cpr_state_free(st);
		return o;
	}
	n = cpr_state_fd_count(st);
	add_int(o, "level", info.emit_level);
	add_int(o, "generation", info.generation);
	json_object_object_add(o, "producer", json_object_new_string(info.producer));
	fds = json_object_new_array();
	for (size_t i = 0; fds && i < n && i < SHOW_FDS_MAX; i++) {
		const struct cpr_state_fd *f = cpr_state_fd_get(st, i);
		struct json_object *x = json_object_new_object();
		const char *kind = cpr_fd_kind_to_string(f->kind);

		add_int(x, "slot", f->slot);
		json_object_object_add(x, "kind", json_object_new_string(kind ? kind : "?"));
		json_object_object_add(x, "name", json_object_new_string(f->name));
		add_int(x, "id", f->id);
		json_object_array_add(fds, x);
	}
	json_object_object_add(o, "fd_records", fds);
	if (n > SHOW_FDS_MAX)
		json_object_object_add(o, "fd_records_truncated", json_object_new_boolean(1));
	rbs = json_object_new_array();
	for (size_t i = 0; rbs && i < cpr_state_ramblock_count(st); i++) {
		const struct cpr_state_ramblock *rb = cpr_state_ramblock_get(st, i);
		struct json_object *x = json_object_new_object();

		json_object_object_add(x, "idstr", json_object_new_string(rb->idstr));
		add_int(x, "used_length", (int64_t)rb->used_length);
		add_int(x, "max_length", (int64_t)rb->max_length);
		add_int(x, "fd_index", rb->fd_index);
		json_object_array_add(rbs, x);
	}
	json_object_object_add(o, "ramblocks", rbs);
	cpr_state_free(st);
	return o;
}

struct json_object *handle_bundle_json(const struct bundle *b, bool detail)
{
	struct json_object *o = json_object_new_object(), *c;

	if (!o)
		return NULL;
	json_object_object_add(o, "name", json_object_new_string(b->name));
	json_object_object_add(o, "state", json_object_new_string(store_state_name(b->state)));
	add_int(o, "owner_uid", b->owner_uid);
	add_int(o, "fds", (int64_t)b->n_fds);
	if (!detail)
		return o;
	add_int(o, "owner_gid", b->owner_gid);
	add_int(o, "owner_pid", b->owner_pid);
	c = json_object_new_object();
	json_object_object_add(c, "uids", handle_ids_json(b->uids, b->n_uids, sizeof(uid_t)));
	json_object_object_add(c, "gids", handle_ids_json(b->gids, b->n_gids, sizeof(gid_t)));
	json_object_object_add(o, "consumers", c);
	add_int(o, "age_ms", (int64_t)((now_boottime_ns() - b->created_ns) / 1000000u));
	add_int(o, "ttl_ms", (int64_t)b->ttl_ms);
	if (b->expire_ns)
		add_int(o, "expires_in_ms", ms_left(b->expire_ns));
	add_int(o, "claims", b->claims);
	json_object_object_add(o, "tied", json_object_new_boolean(b->tied));
	json_object_object_add(o, "persisted", json_object_new_boolean(b->persisted));
	json_object_object_add(o, "durable", json_object_new_boolean(b->durable));
	json_object_object_add(o, "preserved", json_object_new_boolean(b->luo_kept));
	if (b->state == BUNDLE_CLAIMED) {
		c = json_object_new_object();
		add_int(c, "uid", b->claimer_uid);
		add_int(c, "pid", b->claimer_pid);
		add_int(c, "expires_in_ms", ms_left(b->lease_ns));
		json_object_object_add(o, "lease", c);
	}
	if (b->state != BUNDLE_OPEN && b->stream_fd >= 0)
		json_object_object_add(o, "stream",
				       b->qemu ? qemu_peer_stream_json(b) : handle_stream_json(b));
	return o;
}

/* The bundle named in the request, if the peer may see it. */
int handle_bundle(struct request *r, struct bundle **ret)
{
	const char *name;
	struct bundle *b;

	int err = handle_name(r, &name);

	if (err < 0)
		return err;
	b = store_find(name);
	if (!b || !access_may_see(b, r->peer))
		/* the same answer for "absent" and "not yours": names do not leak */
		return handle_fail(r, -ENOENT, "no bundle %s visible to uid %u", name,
				   (unsigned)r->peer->uid);
	*ret = b;
	return 0;
}

int handle_show(struct request *r)
{
	struct bundle *b;
	int ret = handle_bundle(r, &b);

	if (ret < 0)
		return ret;
	json_object_object_add(r->reply, "bundle", handle_bundle_json(b, true));
	return 0;
}

/* Answered at the end of the loop turn: see control_debug_settle(). */
int handle_debug(struct request *r)
{
	r->conn->debug_due = true;
	cprd.debug_due = true;
	r->no_reply = true;
	return 0;
}

/* The daemon's own open fds, less the one that reads them. */
static int debug_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

void handle_debug_reply(struct conn *c)
{
	int n = debug_count_fds();
	struct json_object *o;

	if (n < 0) {
		o = proto_error_new("debug", n, "cannot read /proc/self/fd", false);
	} else {
		o = proto_reply_new("debug");
		if (o) {
			add_int(o, "fds_open", n);
			add_int(o, "fds_held", cprd.n_fds);
			add_int(o, "fds_queued", control_queued_fds());
			add_int(o, "bundles", cprd.n_bundles);
			add_int(o, "connections", cprd.n_conns);
		}
	}
	control_send_json(c, o, NULL, 0);
	json_object_put(o);
}
