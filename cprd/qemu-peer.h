/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprd as QEMU's cpr-transfer peer (cprd-protocol(7), "qemu-listen" and
 * "qemu-deliver"): the old QEMU's cpr channel ends in cprd, the new QEMU's
 * begins there.  One struct qpeer per VM: a listening socket the client
 * made, the old QEMU's connection, the bundle the stream became, and the
 * new QEMU's cpr socket with the new QEMU's pidfd.
 */
#ifndef CPRD_QEMU_PEER_H
#define CPRD_QEMU_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cprd.h"
#include "qemu-cpr.h"

#define QPEER_FDS_MAX 1024u	/* fds in one QEMU's CPR state */
#define QPEER_RECV_FDS 16u	/* fds one recvmsg() takes: QEMU's SOCKET_MAX_FDS */
#define QPEER_RECV_CHUNK 65536u /* bytes one recvmsg() asks for */

enum qpeer_state {
	QP_LISTEN,  /* waiting for the old QEMU to connect */
	QP_RECV,    /* reading its stream and fds to EOF */
	QP_HELD,    /* a sealed bundle; the old QEMU waits for the HUP */
	QP_DELIVER, /* writing to the new QEMU */
	QP_WAIT,    /* written and half-closed: waiting for the new QEMU's close */
};

struct qpeer {
	struct qpeer *next;
	enum qpeer_state state;
	char name[CPRD_BUNDLE_NAME_MAX + 1];
	uid_t req_uid;		/* who asked: a consumer of the bundle */
	struct bundle tmpl;	/* consumers and ttl for the bundle */
	struct cprd_src lsrc;	/* the listening socket */
	struct cprd_src osrc;	/* the old QEMU's connection */
	struct cprd_src tsrc;	/* the new QEMU's cpr socket */
	struct cprd_src psrc;	/* the new QEMU's pidfd, or -EBADF */
	struct cprd_peer owner; /* the old QEMU, by SO_PEERCRED */
	uint8_t *buf;		/* the stream as received */
	size_t len, cap;
	int *fds;	/* received, in order; owned until the bundle takes them */
	size_t *fd_at;	/* stream offset of the chunk each fd came with */
	size_t *fd_end; /* ... and its end */
	size_t n_fds, cap_fds;
	struct qcpr_state *st; /* decoded, kept for the delivery */
	struct bundle *b;      /* held */
	struct qcpr_writer w;
	struct conn *waiter; /* the request whose reply is due */
	const char *waiter_op;
	uint64_t t_listen, t_accept, t_eof, t_held, t_deliver, t_written, t_hup;
};

/* qemu-peer.c */
extern struct qpeer *qpeers;
struct qpeer *qpeer_new(const char *name, uid_t req_uid, int listen_fd);
int qpeer_watch(struct qpeer *qp, struct cprd_src *src, int fd, uint32_t events);
/* Give up: reply to the waiter with @err and @why, release everything. */
void qpeer_fail(struct qpeer *qp, int err, const char *why);
/* Release everything, reply to no one. */
void qpeer_free(struct qpeer *qp);
void qpeer_reply(struct qpeer *qp, struct json_object *o);
struct json_object *qpeer_timings_json(const struct qpeer *qp);

/* qemu-peer-check.c */
/* What @fd is: "memfd", "file", "eventfd", "vfio", "iommufd", "chardev", "socket"... */
const char *qpeer_fd_kind(int fd);
/* The stream decodes and describes the fds that came with it. */
int qpeer_check(struct qpeer *qp, char *why, size_t why_len);
/* Has the process behind @pidfd exited or begun to exit? */
bool qpeer_pid_exiting(int pidfd);

/* qemu-peer-ops.c */
int qpeer_deliver_start(struct qpeer *qp);
void qpeer_deliver_event(struct qpeer *qp, uint32_t events);

#endif
