/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request handlers and their dispatch table. */
#ifndef CPRD_HANDLE_H
#define CPRD_HANDLE_H

#include <stdbool.h>
#include <stddef.h>

#include <cpr/state.h>

#include "cprd.h"

struct json_object;

struct request {
	struct conn *conn;
	const struct cprd_peer *peer;
	const char *op;
	struct json_object *req;
	int *fds; /* owned; a handler keeps one by TAKE_FD */
	size_t n_fds;
	struct json_object *reply; /* handlers add their fields */
	const int *out_fds;	   /* borrowed; sent after the reply, see out_first */
	size_t n_out_fds;
	size_t out_first;    /* fds riding on the reply itself; the rest in chunks */
	size_t out_lead;     /* leading fds that are no slot (the stream): chunks
			      * count "first" from after them */
	int *out_own;	     /* freed after the reply (the array, not the fds) */
	struct bundle *done; /* removed once the reply is out (ack) */
	bool fatal;	     /* malformed: close the connection after the reply */
	bool no_reply;	     /* answered later (upgrade) */
	char why[256];
};

/* Flags of a dispatch entry. */
#define H_FDS_NONE 0x0u /* no fds */
#define H_FDS_ONE 0x1u	/* exactly one */
#define H_FDS_SOME 0x2u /* 1..253 */
#define H_ADMIN 0x10u	/* uid 0 or an admin of cprd.conf */
#define H_SELF 0x20u	/* uid 0 or the daemon's own uid */

struct handler {
	const char *op;
	int (*fn)(struct request *r);
	unsigned flags;
	const char *const *keys; /* allowed fields besides "op" */
	unsigned since;		 /* the protocol version that introduced it */
};

/* Malformed: fill r->why, mark fatal, return -EINVAL. */
int handle_bad_field(struct request *r, const char *key, int err);
/* Semantic failure: fill r->why, return @err. */
int handle_fail(struct request *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The "name" field: present, a string, at most 128 bytes, of the allowed
 * characters; each failure says which (malformed: fatal). */
int handle_name(struct request *r, const char **ret);
/* Find the bundle named by the "name" field, visible to the peer. */
int handle_bundle(struct request *r, struct bundle **ret);
struct json_object *handle_bundle_json(const struct bundle *b, bool detail);

int handle_hello(struct request *r);
int handle_status(struct request *r);
int handle_list(struct request *r);
int handle_show(struct request *r);
int handle_create(struct request *r);
int handle_store(struct request *r);
int handle_put(struct request *r);
int handle_seal(struct request *r);
int handle_claim(struct request *r);
int handle_ack(struct request *r);
int handle_release(struct request *r);
int handle_renew(struct request *r);
int handle_drop(struct request *r);
int handle_upgrade(struct request *r);
int handle_debug(struct request *r);
int handle_qemu_listen(struct request *r);
int handle_qemu_deliver(struct request *r);
/* handle-bundle.c: "consumers" into @b; "ttl_ms", "tie" and "durable". */
int parse_consumers(struct request *r, struct bundle *b);
int create_options(struct request *r, uint64_t *ttl, bool *tie, bool *durable);

#endif
