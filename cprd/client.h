/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The client side of cprd-protocol(7): used by cprctl, cprd-hook, the tests
 * and the benchmark.  Sending borrows fds; receiving owns every fd that
 * arrives and closes them all on any error.
 */
#ifndef CPRD_CLIENT_H
#define CPRD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct json_object;

#define CPRD_CLIENT_REPLY_MAX (256u << 10)
#define CPRD_SOCKET_ENV "CPRD_SOCKET"
#define CPRD_CLIENT_TIMEOUT_MS 30000 /* default bound on connect, each send and each reply */

/* The bound on every connect, send and reply wait of this process (ms). */
int cprd_set_timeout(int timeout_ms);
int cprd_timeout(void);

/* @path, else $CPRD_SOCKET, else the default socket. */
const char *cprd_socket_path(const char *path);
int cprd_connect(const char *path, int *ret_fd);

int cprd_send(int sock, struct json_object *req, const int *fds, size_t n_fds);
/* One message: a JSON object and up to @max_fds fds (owned on success). */
int cprd_recv(int sock, int timeout_ms, struct json_object **ret, int *fds, size_t max_fds,
	      size_t *ret_n_fds);
/*
 * A request without fds in the reply.  Returns 0 when the reply says "ok",
 * the -errno its "error" names otherwise; *ret_reply (if not NULL) gets the
 * reply either way when one arrived.
 */
int cprd_call(int sock, struct json_object *req, const int *fds, size_t n_fds,
	      struct json_object **ret_reply);
/* Same, with a request built from "op" and "name" only. */
int cprd_call_name(int sock, const char *op, const char *name, struct json_object **ret_reply);

/*
 * Store a bundle: one "store" request for up to 252 fds, else create (with
 * @opts: consumers, ttl_ms, tie; may be NULL), put in chunks of 253 and seal
 * with @stream_fd, pipelined.  The fds stay the caller's.
 */
int cprd_store(int sock, const char *name, struct json_object *opts, int stream_fd, const int *fds,
	       size_t n_fds, struct json_object **ret_reply);
/*
 * claim: the stream memfd, then the fds in slot order (malloc()ed array).
 * @lease_ms 0: the daemon's default.
 */
int cprd_claim(int sock, const char *name, uint64_t lease_ms, struct json_object **ret_reply,
	       int *ret_stream_fd, int **ret_fds, size_t *ret_n_fds);
/*
 * claim with "ack": true: the claim is bound to @sock.  The caller sends
 * "ack" with the reply's token (cprd_reply_token()) on @sock once it holds
 * every fd and is done with what may fail; closing @sock before that seals
 * the bundle again.
 */
int cprd_claim_take(int sock, const char *name, struct json_object **ret_reply, int *ret_stream_fd,
		    int **ret_fds, size_t *ret_n_fds);
/* The "token" of a claim's reply, or NULL. */
const char *cprd_reply_token(struct json_object *reply);
/*
 * Take a bundle for good: cprd_claim_take(), then, once every fd has
 * arrived, "ack" on the same connection; the daemon forgets the bundle.  If
 * the fds cannot all be received (a full fd table: -EPROTO) no ack is sent,
 * and the daemon seals the bundle again when @sock is closed.
 */
int cprd_claim_ack(int sock, const char *name, struct json_object **ret_reply, int *ret_stream_fd,
		   int **ret_fds, size_t *ret_n_fds);
/* ack/release with the token of a claim. */
int cprd_token_op(int sock, const char *op, const char *name, const char *token,
		  struct json_object **ret_reply);

/* The "message" of an error reply, or "". */
const char *cprd_reply_message(struct json_object *reply);

#endif
