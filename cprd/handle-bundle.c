/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Handlers that change bundles: create, put, seal (the producer), claim,
 * ack, release, renew (the consumer), drop (the owner).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "cprd.h"
#include "handle.h"
#include "log.h"
#include "proto.h"

static int parse_ids(struct request *r, struct json_object *c, const char *key, unsigned *ids,
		     size_t *ret_n)
{
	struct json_object *a;
	size_t n;

	if (!json_object_object_get_ex(c, key, &a))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return handle_bad_field(r, key, -EINVAL);
	n = json_object_array_length(a);
	if (n > CPRD_CONSUMERS_MAX)
		return handle_bad_field(r, key, -EINVAL);
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(a, i);
		int64_t x;

		if (!json_object_is_type(v, json_type_int))
			return handle_bad_field(r, key, -EINVAL);
		x = json_object_get_int64(v);
		if (x < 0 || x >= (int64_t)UINT32_MAX)
			return handle_bad_field(r, key, -EINVAL);
		ids[i] = (unsigned)x;
	}
	*ret_n = n;
	return 0;
}

/* "consumers": {"uids": [...], "gids": [...]} */
int parse_consumers(struct request *r, struct bundle *b)
{
	static const char *const keys[] = { "uids", "gids", NULL };
	struct json_object *c = proto_get_obj(r->req, "consumers");
	int ret;

	if (!c)
		return 0;
	if (!json_object_is_type(c, json_type_object))
		return handle_bad_field(r, "consumers", -EINVAL);
	json_object_object_foreach(c, key, val)
	{
		bool ok = false;

		(void)val;
		for (size_t i = 0; keys[i]; i++)
			ok |= strcmp(key, keys[i]) == 0;
		if (!ok)
			return handle_bad_field(r, "consumers", -EINVAL);
	}
	ret = parse_ids(r, c, "uids", b->uids, &b->n_uids);
	if (ret == 0)
		ret = parse_ids(r, c, "gids", b->gids, &b->n_gids);
	return ret;
}

/* The bundle dies with its owner: watch the owner's pidfd. */
static int tie_owner(struct request *r, struct bundle *b)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &b->tie };
	int fd;

	if (r->peer->pidfd >= 0)
		fd = fcntl(r->peer->pidfd, F_DUPFD_CLOEXEC, 3);
	else /* no SO_PEERPIDFD: the pid, which the peer still holds */
		fd = (int)syscall(SYS_pidfd_open, r->peer->pid, 0);
	if (fd < 0)
		return handle_fail(r, -errno, "cannot watch the owner process");
	b->tie.fd = fd;
	if (epoll_ctl(cprd.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return handle_fail(r, -errno, "cannot watch the owner process");
	b->tied = true;
	return 0;
}

int create_options(struct request *r, uint64_t *ttl, bool *tie, bool *durable)
{
	uint64_t ttl_max = cprd.cfg.limits.ttl_max_ms;

	if (proto_get_u64(r->req, "ttl_ms", false, UINT32_MAX, ttl) < 0)
		return handle_bad_field(r, "ttl_ms", -EINVAL);
	if (proto_get_bool(r->req, "tie", false, tie) < 0)
		return handle_bad_field(r, "tie", -EINVAL);
	if (proto_get_bool(r->req, "durable", false, durable) < 0)
		return handle_bad_field(r, "durable", -EINVAL);
	if (*tie && *durable)
		return handle_fail(r, -EINVAL,
				   "a tied bundle dies with its owner: it cannot be durable");
	if (ttl_max && *ttl > ttl_max)
		return handle_fail(r, -ERANGE, "ttl_ms %llu exceeds ttl-max-ms %llu",
				   (unsigned long long)*ttl, (unsigned long long)ttl_max);
	if (ttl_max && *ttl == 0)
		*ttl = ttl_max;
	return 0;
}

/* Create the bundle a create or store request describes; open on this connection. */
static int create_bundle(struct request *r, struct bundle **ret_b)
{
	struct bundle tmp = { 0 }, *b;
	const char *name;
	uint64_t ttl = 0;
	bool tie = false, durable = false;
	int ret;

	char why[160];

	ret = handle_name(r, &name);
	if (ret < 0)
		return ret;
	ret = access_may_create(name, r->peer, why, sizeof(why));
	if (ret < 0)
		return handle_fail(r, ret, "%s", why);
	ret = parse_consumers(r, &tmp);
	if (ret == 0)
		ret = create_options(r, &ttl, &tie, &durable);
	if (ret < 0)
		return ret;
	ret = store_create(name, r->peer, &b);
	if (ret < 0)
		return handle_fail(r, ret, "%s",
				   ret == -EEXIST   ? "a bundle of that name exists"
				   : ret == -EDQUOT ? "max-bundles-per-uid reached"
				   : ret == -ENOSPC ? "max-bundles reached"
						    : "cannot create the bundle");
	memcpy(b->uids, tmp.uids, sizeof(b->uids));
	memcpy(b->gids, tmp.gids, sizeof(b->gids));
	b->n_uids = tmp.n_uids;
	b->n_gids = tmp.n_gids;
	b->ttl_ms = ttl;
	b->durable = durable;
	b->open_conn = r->conn;
	if (tie) {
		ret = tie_owner(r, b);
		if (ret < 0) {
			store_remove(b, "not created");
			return ret;
		}
	}
	*ret_b = b;
	return 0;
}

int handle_create(struct request *r)
{
	struct bundle *b;
	int ret = create_bundle(r, &b);

	if (ret < 0)
		return ret;
	json_object_object_add(r->reply, "name", json_object_new_string(b->name));
	return 0;
}

/* The owner's open bundle, filled through this connection. */
static int open_bundle(struct request *r, struct bundle **ret_b)
{
	struct bundle *b;
	int ret = handle_bundle(r, &b);

	if (ret < 0)
		return ret;
	if (b->state != BUNDLE_OPEN)
		return handle_fail(r, -EBUSY, "bundle %s is %s, not open", b->name,
				   store_state_name(b->state));
	if (b->open_conn != r->conn)
		return handle_fail(r, -EBUSY, "bundle %s is being filled by another connection",
				   b->name);
	*ret_b = b;
	return 0;
}

static int put_fds(struct request *r, struct bundle *b, int *fds, size_t n_fds)
{
	int ret = store_put(b, fds, n_fds);

	if (ret < 0)
		return handle_fail(r, ret, "%s",
				   ret == -EDQUOT   ? "max-fds-per-uid reached"
				   : ret == -ENOSPC ? "max-fds reached"
						    : "cannot keep the fds");
	return 0;
}

int handle_put(struct request *r)
{
	struct bundle *b;
	int ret = open_bundle(r, &b);

	if (ret == 0)
		ret = put_fds(r, b, r->fds, r->n_fds);
	if (ret < 0)
		return ret;
	json_object_object_add(r->reply, "fds", json_object_new_int64((int64_t)b->n_fds));
	return 0;
}

static int seal_bundle(struct request *r, struct bundle *b, int *stream_fd)
{
	struct cpr_error err = { 0 };
	int ret = store_seal(b, stream_fd, &err);

	char why[256];

	if (ret < 0)
		return handle_fail(r, ret, "state stream refused: %s", err.message);
	/* refused as durable: the bundle is not kept (the caller removes it) */
	if (b->durable && (ret = luo_preserve(b, why, sizeof(why))) < 0)
		return handle_fail(r, ret, "not durable: %s", why);
	json_object_object_add(r->reply, "fds", json_object_new_int64((int64_t)b->n_fds));
	json_object_object_add(r->reply, "stream_bytes",
			       json_object_new_int64((int64_t)b->stream_len));
	json_object_object_add(r->reply, "persisted", json_object_new_boolean(b->persisted));
	json_object_object_add(r->reply, "durable", json_object_new_boolean(b->luo_kept));
	return 0;
}

int handle_seal(struct request *r)
{
	struct bundle *b;
	int ret = open_bundle(r, &b);

	if (ret < 0)
		return ret;
	ret = seal_bundle(r, b, &r->fds[0]);
	if (ret < 0 && b->state == BUNDLE_SEALED)
		store_remove(b, "refused as durable");
	return ret;
}

/*
 * create + put + seal in one request: fd 0 is the stream, the others are
 * the bundle's fds in slot order.  All or nothing: after an error no
 * bundle is left behind.
 */
int handle_store(struct request *r)
{
	struct bundle *b;
	int ret = create_bundle(r, &b);

	if (ret < 0)
		return ret;
	if (r->n_fds > 1)
		ret = put_fds(r, b, r->fds + 1, r->n_fds - 1);
	if (ret == 0)
		ret = seal_bundle(r, b, &r->fds[0]);
	if (ret < 0) {
		store_remove(b, "not stored");
		return ret;
	}
	json_object_object_add(r->reply, "name", json_object_new_string(b->name));
	return 0;
}

/*
 * The stream memfd rides on the reply with the fds of the first @n_inline
 * slots; the other fds follow in chunks.
 */
static int claim_reply(struct request *r, struct bundle *b, size_t n_inline)
{
	struct json_object *o = r->reply;
	int *out = malloc((b->n_fds + 1) * sizeof(int));

	if (!out)
		return -ENOMEM;
	out[0] = b->stream_fd;
	if (b->n_fds)
		memcpy(out + 1, b->fds, b->n_fds * sizeof(int));
	r->out_own = out;
	r->out_fds = out;
	r->n_out_fds = b->n_fds + 1;
	r->out_first = 1 + n_inline;
	r->out_lead = 1;
	json_object_object_add(o, "name", json_object_new_string(b->name));
	json_object_object_add(o, "fds", json_object_new_int64((int64_t)b->n_fds));
	json_object_object_add(o, "inline", json_object_new_int64((int64_t)n_inline));
	json_object_object_add(
		o, "chunks",
		json_object_new_int64((int64_t)((b->n_fds - n_inline + CPRD_MSG_FDS_MAX - 1) /
						CPRD_MSG_FDS_MAX)));
	json_object_object_add(o, "stream_bytes", json_object_new_int64((int64_t)b->stream_len));
	return 0;
}

static int lease_arg(struct request *r, uint64_t *ret)
{
	uint64_t lease = cprd.cfg.limits.lease_default_ms;

	if (proto_get_u64(r->req, "lease_ms", false, UINT32_MAX, &lease) < 0)
		return handle_bad_field(r, "lease_ms", -EINVAL);
	if (lease == 0 || lease > cprd.cfg.limits.lease_max_ms)
		return handle_fail(r, -ERANGE, "lease_ms must be 1..%llu",
				   (unsigned long long)cprd.cfg.limits.lease_max_ms);
	*ret = lease;
	return 0;
}

/* "lease_ms" and "ack". */
static int claim_args(struct request *r, bool *ret_ack, uint64_t *ret_lease)
{
	bool ack = false;

	if (proto_get_bool(r->req, "ack", false, &ack) < 0)
		return handle_bad_field(r, "ack", -EINVAL);
	*ret_ack = ack;
	return lease_arg(r, ret_lease);
}

int handle_claim(struct request *r)
{
	struct bundle *b;
	uint64_t lease = 0;
	bool ack = false;
	int ret = claim_args(r, &ack, &lease);

	if (ret == 0)
		ret = handle_bundle(r, &b);
	if (ret < 0)
		return ret;
	if (!access_may_claim(b, r->peer))
		return handle_fail(r, -EACCES, "uid %u may not claim bundle %s",
				   (unsigned)r->peer->uid, b->name);
	if (b->state != BUNDLE_SEALED)
		return handle_fail(r, -EBUSY, "bundle %s is %s", b->name,
				   store_state_name(b->state));
	/*
	 * With "ack": true the claim is for taking the bundle for good (as
	 * s6-fdholderd's retrieve-and-delete): up to 252 fds ride on the reply
	 * itself, and the claim ends with this connection unless the consumer
	 * acks first, once it has every fd.  A consumer whose fd table was
	 * full (MSG_CTRUNC) never acks, and the bundle is sealed again.
	 */
	ret = store_claim(b, r->peer, lease);
	if (ret == 0)
		ret = claim_reply(r, b, ack ? MIN(b->n_fds, CPRD_MSG_FDS_MAX - 1) : 0);
	if (ret < 0) {
		store_release(b);
		return handle_fail(r, ret, "cannot claim");
	}
	if (ack)
		b->claim_conn = r->conn;
	json_object_object_add(r->reply, "token", json_object_new_string(b->token));
	json_object_object_add(r->reply, "lease_ms", json_object_new_int64((int64_t)lease));
	log_info("bundle %s claimed by pid %d uid %u%s", b->name, (int)r->peer->pid,
		 (unsigned)r->peer->uid, ack ? ", to be acknowledged on its connection" : "");
	return 0;
}

/* The claimed bundle whose token the request repeats. */
static int claimed_bundle(struct request *r, struct bundle **ret_b)
{
	const char *token;
	struct bundle *b;
	unsigned diff = 0;
	int ret;

	/* every field is checked before the bundle is looked up */
	if (proto_get_str(r->req, "token", true, CPRD_TOKEN_LEN, &token) < 0 ||
	    strlen(token) != CPRD_TOKEN_LEN)
		return handle_bad_field(r, "token", -EINVAL);
	if (proto_get_u64(r->req, "lease_ms", false, UINT32_MAX, &(uint64_t){ 0 }) < 0)
		return handle_bad_field(r, "lease_ms", -EINVAL);
	ret = handle_bundle(r, &b);
	if (ret < 0)
		return ret;
	if (b->state == BUNDLE_CLAIMED)
		for (size_t i = 0; i < CPRD_TOKEN_LEN; i++)
			diff |= (unsigned)(token[i] ^ b->token[i]);
	if (b->state != BUNDLE_CLAIMED || diff || r->peer->uid != b->claimer_uid)
		return handle_fail(r, -ESTALE, "no claim of bundle %s with that token", b->name);
	*ret_b = b;
	return 0;
}

int handle_ack(struct request *r)
{
	struct bundle *b;
	int ret = claimed_bundle(r, &b);

	if (ret < 0)
		return ret;
	log_info("bundle %s acknowledged by pid %d", b->name, (int)r->peer->pid);
	r->done = b; /* removed after the reply */
	return 0;
}

int handle_release(struct request *r)
{
	struct bundle *b;
	int ret = claimed_bundle(r, &b);

	if (ret < 0)
		return ret;
	store_release(b);
	json_object_object_add(r->reply, "state", json_object_new_string("sealed"));
	return 0;
}

int handle_renew(struct request *r)
{
	struct bundle *b;
	uint64_t lease;
	int ret = claimed_bundle(r, &b);

	if (ret == 0)
		ret = lease_arg(r, &lease);
	if (ret < 0)
		return ret;
	b->lease_ns = now_boottime_ns() + lease * 1000000u;
	store_arm_timer();
	json_object_object_add(r->reply, "lease_ms", json_object_new_int64((int64_t)lease));
	return 0;
}

int handle_drop(struct request *r)
{
	struct bundle *b;
	int ret = handle_bundle(r, &b);

	if (ret < 0)
		return ret;
	/* an admin may clean up (never claim) another user's bundle it can see */
	if (!access_is_owner(b, r->peer) && !conf_is_admin(&cprd.cfg, r->peer->uid))
		return handle_fail(r, -EACCES, "only the owner may drop bundle %s", b->name);
	if (b->state == BUNDLE_CLAIMED)
		return handle_fail(r, -EBUSY, "bundle %s is claimed", b->name);
	store_remove(b, "dropped");
	return 0;
}
