/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cprd internals: the daemon's objects and the functions between its files. */
#ifndef CPRD_H
#define CPRD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;
struct cpr_state;
struct cpr_error;

/* What an epoll event refers to: data.ptr points at one of these. */
enum cprd_tag {
	TAG_LISTEN = 1,
	TAG_CONN,
	TAG_TIMER,
	TAG_SIGNAL,
	TAG_WATCHDOG,
	TAG_PIDFD,
	TAG_SWEEP,
	TAG_NOTIFY,
	TAG_QEMU, /* cprd/qemu-peer.c: obj is a struct qpeer */
};

struct cprd_src {
	enum cprd_tag tag;
	void *obj;
	int fd;
};

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

/* cprd-protocol(7), VERSIONS: 1 the first ops; 2 "store", a claim's "ack"
 * confirmed by the consumer, "upgrade" by hand-off; 3 "qemu-listen",
 * "qemu-deliver". */
#define CPRD_PROTOCOL_VERSION 3
#define CPRD_BUNDLE_NAME_MAX 128u /* bytes in a bundle name */
#define CPRD_CONSUMERS_MAX 64u	  /* uids, and gids, per bundle */
#define CPRD_TOKEN_LEN 32u	  /* hex characters in a claim token */
#define CPRD_MSG_FDS_MAX 253u	  /* fds in one message (SCM_MAX_FD) */
#define CPRD_REPLY_MAX (1u << 20) /* bytes in one reply */
#define CPRD_QUOTAS_MAX 256u	  /* quota lines in the config file */
#define CPRD_LISTEN_MAX 8u	  /* listening sockets */

/* Limits: defaults, then the config file, then the command line. */
struct cprd_limits {
	unsigned max_connections;
	unsigned max_fds_total;
	unsigned max_fds_per_uid;
	unsigned max_bundles;
	unsigned max_bundles_per_uid;
	unsigned max_request; /* bytes */
	unsigned max_depth;   /* JSON nesting */
	unsigned max_stream;  /* bytes of a state stream */
	uint64_t lease_default_ms;
	uint64_t lease_max_ms;
	uint64_t ttl_max_ms;	  /* 0: bundles may live forever */
	uint64_t idle_timeout_ms; /* connection without a request */
	unsigned check_kinds;	  /* seal checks each fd's kind (1) or not (0) */
	unsigned luo_agent;	  /* cprd opens /dev/liveupdate itself (1) or not (0) */
};

struct cprd_quota {
	uid_t uid;
	unsigned fds;
	unsigned bundles;
};

/* "namespace = PREFIX WHO...": who may create names beginning with PREFIX. */
#define CPRD_NAMESPACES_MAX 64u
#define CPRD_NAMESPACE_WHO_MAX 16u
struct cprd_namespace {
	char prefix[CPRD_BUNDLE_NAME_MAX + 1]; /* "" for "*": every name */
	bool anyone;
	uid_t uids[CPRD_NAMESPACE_WHO_MAX];
	size_t n_uids;
	gid_t gids[CPRD_NAMESPACE_WHO_MAX];
	size_t n_gids;
};

struct cprd_config {
	struct cprd_limits limits;
	struct cprd_namespace namespaces[CPRD_NAMESPACES_MAX];
	size_t n_namespaces;
	struct cprd_quota quotas[CPRD_QUOTAS_MAX];
	size_t n_quotas;
	uid_t admins[16]; /* may run daemon ops; uid 0 is always an admin */
	size_t n_admins;
	char luo_session[64]; /* live-update-session: the agent's session name */
};

/* The identity of a connected peer, read at accept. */
struct cprd_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* supplementary groups (SO_PEERGROUPS) */
	size_t n_groups;
	int pidfd; /* SO_PEERPIDFD, or -EBADF */
};

enum bundle_state {
	BUNDLE_OPEN,
	BUNDLE_SEALED,
	BUNDLE_CLAIMED,
};

struct bundle {
	struct bundle *next;
	uint64_t id; /* unique in this daemon's life, persisted */
	char name[CPRD_BUNDLE_NAME_MAX + 1];
	enum bundle_state state;
	uid_t owner_uid;
	gid_t owner_gid;
	pid_t owner_pid;
	uid_t uids[CPRD_CONSUMERS_MAX];
	size_t n_uids;
	gid_t gids[CPRD_CONSUMERS_MAX];
	size_t n_gids;
	int *fds; /* in slot order */
	size_t n_fds;
	size_t cap_fds;
	int stream_fd;	     /* sealed memfd holding the stream, or -EBADF */
	size_t stream_len;   /* parsed again for show, not kept: 276 bytes an fd */
	uint64_t created_ns; /* CLOCK_BOOTTIME */
	uint64_t ttl_ms;
	uint64_t expire_ns; /* CLOCK_BOOTTIME, 0 = never */
	uint64_t lease_ns;  /* claim deadline, CLOCK_BOOTTIME */
	char token[CPRD_TOKEN_LEN + 1];
	uid_t claimer_uid;
	pid_t claimer_pid;
	unsigned claims;     /* how many times handed out */
	struct cprd_src tie; /* fd: owner's pidfd; the bundle dies with it */
	bool persisted;	     /* parked in the service manager's fd store */
	unsigned n_parked;   /* fds it holds there (pieces, stream, manifest) */
	uint64_t *file_ids;  /* parked: st_dev, st_ino of each slot, or NULL */
	bool tied;	     /* created with "tie": dies with its owner */
	bool durable;	     /* created with "durable": survives a kexec (luo.c) */
	bool luo_kept;	     /* its pieces are in the live-update session */
	int luo_manifest_fd; /* the manifest preserved there, or -EBADF */
	void *open_conn;     /* the connection filling an open bundle */
	void *claim_conn;    /* claim with "ack": released if it ends before the ack */
	void *qemu;	     /* fed by a QEMU's cpr channel: its struct qpeer */
};

struct outmsg;

/* A client connection. */
struct conn {
	struct cprd_src src; /* first: epoll data.ptr */
	struct conn *next;
	struct cprd_peer peer;
	struct outmsg *out_head, *out_tail;
	size_t n_out;
	bool closing;	  /* close once the output queue is flushed */
	bool want_out;	  /* EPOLLOUT armed */
	bool debug_due;	  /* a "debug" reply is due at the end of the loop turn */
	uint64_t last_ns; /* last request, CLOCK_BOOTTIME */
	unsigned version; /* agreed by "hello"; 0 until then: the daemon's */
};

/* Global daemon state (one per process). */
struct cprd {
	struct cprd_config cfg;
	int epoll_fd;
	int listen_fds[CPRD_LISTEN_MAX];
	size_t n_listen;
	int *listen_store_fds; /* fd store pieces passed at start */
	char **listen_store_names;
	size_t n_listen_store;
	char **listen_names; /* from sd_listen_fds_with_names() */
	char *socket_path;
	int timer_fd; /* leases and expiries */
	int signal_fd;
	int watchdog_fd;
	uint64_t watchdog_usec;
	bool fdstore;	       /* park bundles in the service manager's fd store */
	unsigned fdstore_max;  /* FileDescriptorStoreMax= ($FDSTORE), 0: unknown */
	unsigned fdstore_used; /* fds parked there */
	unsigned n_conns;
	struct bundle *bundles;
	unsigned n_bundles;
	unsigned n_fds; /* fds held in bundles, streams included */
	uint64_t next_id;
	uint64_t started_ns;
	uint64_t n_requests;
	bool status_dirty;
	bool debug_due; /* some connection waits for a "debug" reply */
	bool quit;
	bool upgrade;	/* an upgrade was requested */
	char *self_exe; /* for upgrade */
	char **argv;
};

extern struct cprd cprd;

/* util.c */
uint64_t now_boottime_ns(void);
int fd_set_nonblock(int fd);
int memfd_new_sealed(const char *name, const void *buf, size_t len, int *ret_fd);
int fd_read_all(int fd, size_t max, void **ret_buf, size_t *ret_len);
/* The same for a memfd sealed against write, shrink and grow: no fstat(). */
int fd_read_frozen(int fd, size_t max, void **ret_buf, size_t *ret_len);
#define FD_READ_SMALL 4096u
int random_hex(char *buf, size_t n_hex);

/* conf.c */
void conf_defaults(struct cprd_config *cfg);
int conf_load(struct cprd_config *cfg, const char *path, bool must_exist);
int conf_quota(const struct cprd_config *cfg, uid_t uid, unsigned *ret_fds, unsigned *ret_bundles);
bool conf_is_admin(const struct cprd_config *cfg, uid_t uid);
int conf_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);
int conf_set_limit(struct cprd_limits *l, const char *key, const char *value);

/* control.c: listening sockets and connections */
int control_listen(const char *path, const char *group, unsigned mode, int *ret_fd);
int control_add_listener(int fd);
void control_accept(int listen_fd);
void control_event(struct conn *c, uint32_t events);
/* Send one message (borrowing @fds); queued when the peer is slow. */
int control_send(struct conn *c, const char *buf, size_t len, const int *fds, size_t n_fds);
int control_send_json(struct conn *c, struct json_object *o, const int *fds, size_t n_fds);
void control_close_all(void);
void control_idle_sweep(void);
/* End of a loop turn: hang-ups, owner exits, deadlines, then "debug" replies. */
void control_debug_settle(void);
/* fds duplicated into replies queued for slow peers. */
unsigned control_queued_fds(void);

/* handle.c: the dispatch table */
void handle_request(struct conn *c, const char *buf, size_t len, int *fds, size_t n_fds);
struct json_object *handle_ops_json(unsigned version);
/* The protocol version agreed on @c. */
unsigned handle_version(const struct conn *c);
struct json_object *handle_limits_json(void);
/* Send the "debug" reply @c waits for (handle-info.c). */
void handle_debug_reply(struct conn *c);

/* store.c: the bundle table */
struct bundle *store_find(const char *name);
struct bundle *store_find_id(uint64_t id);
int store_create(const char *name, const struct cprd_peer *owner, struct bundle **ret);
int store_put(struct bundle *b, int *fds, size_t n_fds);
int store_seal(struct bundle *b, int *stream_fd, struct cpr_error *ret_err);
int store_claim(struct bundle *b, const struct cprd_peer *peer, uint64_t lease_ms);
void store_release(struct bundle *b);
void store_remove(struct bundle *b, const char *why);
int store_quota_check(uid_t uid, size_t add_fds, size_t add_bundles);
void store_usage(uid_t uid, unsigned *ret_fds, unsigned *ret_bundles);
void store_arm_timer(void);
void store_timer_event(void);
void store_pidfd_event(struct bundle *b);
void store_settle(void);
void store_free_all(void);
void store_conn_closed(void *conn);
const char *store_state_name(enum bundle_state s);
int store_adopt(struct bundle *b);
int store_validate(struct bundle *b, const void *buf, size_t len, struct cpr_error *err);
/* Free a bundle that was never adopted (its fds closed). */
void store_bundle_discard(struct bundle *b);
/* Seal with a stream its own decoder checked (QEMU's): takes *@stream_fd. */
int store_seal_checked(struct bundle *b, int *stream_fd, size_t len);

/* access.c */
bool access_is_owner(const struct bundle *b, const struct cprd_peer *p);
bool access_may_claim(const struct bundle *b, const struct cprd_peer *p);
bool access_may_see(const struct bundle *b, const struct cprd_peer *p);
/* May @p create a bundle named @name (cprd.conf(5), NAMESPACES)?  0, or
 * -EACCES with @why filled. */
int access_may_create(const char *name, const struct cprd_peer *p, char *why, size_t why_len);

/* notify.c: never blocks; text waits in a queue, fds are sent now or not */
int notify_setup(void);
int notify_send(const char *text);
/*
 * FDSTORE=1 with @fd, piece @slot of bundle @bundle: 1 sent, 0 queued (the
 * fd is looked up again when it goes out; *@owned, if given, is taken by the
 * queue), -ENOTCONN without a service manager, other -errno on failure.
 */
int notify_send_piece(const char *text, uint64_t bundle, long slot, int fd, int *owned);
void notify_flush(void);
int notify_drain(int timeout_ms);
bool notify_pending(void);
void notify_free(void);
void notify_ready(void);
void notify_status(void);
void notify_stopping(void);
int notify_watchdog_setup(void);
void notify_watchdog_event(void);

/* fdstore.c */
#define FDSTORE_SLOT_NONE (-3L)	    /* a text notification */
#define FDSTORE_SLOT_MANIFEST (-2L) /* a bundle's manifest memfd */
#define FDSTORE_SLOT_STREAM (-1L)   /* a bundle's stream */
int fdstore_setup(void);
/* For a queued piece: its fd now (*ret_close: a temporary to close), or < 0. */
int fdstore_piece_fd(uint64_t id, long slot, int *ret_fd, bool *ret_close);
/* A queued piece went out (@r 0) or failed; the manifest makes it persisted. */
void fdstore_piece_sent(uint64_t id, long slot, int r);
int fdstore_park(struct bundle *b);
void fdstore_unpark(struct bundle *b);
int fdstore_adopt(int *fds, char **names, size_t n);
struct stat;
/* Slot @i holds the open file of an earlier slot (@st: their fstat()s): it, else -1. */
long fdstore_dup_of(const struct bundle *b, const struct stat *st, size_t i);
struct json_object *fdstore_manifest_json(const struct bundle *b, struct json_object *same);

/* rebuild.c */
int rebuild_bundle(struct json_object *m, int *stream_fd, int *fds, size_t n, struct bundle **ret,
		   char *why, size_t why_len);
struct json_object *rebuild_manifest(const struct bundle *b);

/* luo.c: kexec-durable bundles in a live-update session */
/* 0, or -ENAMETOOLONG (>= 64 bytes or empty), -EINVAL (space), -EPERM ("systemd"). */
int luo_name_check(const char *name);
/* At start: takes the session fd of the fd store (FDNAME "cprd-luo") out of
 * @fds/@names, or opens /dev/liveupdate in agent mode; restores bundles. */
int luo_setup(int *fds, char **names, size_t *n);
/* Preserve sealed @b; refused (-errno, @why names the fd) when it cannot be. */
int luo_preserve(struct bundle *b, char *why, size_t why_len);
/* @b goes away: it is preserved no more. */
void luo_forget(struct bundle *b);
struct json_object *luo_status_json(void);
void luo_close(void);

/* sandbox.c */
int sandbox_rlimits(struct cprd_limits *l);
int sandbox_apply(const char *policy_path);
int sandbox_dump(const char *policy_path);

/* qemu-peer.c, qemu-peer-check.c: cprd as QEMU's cpr-transfer peer */
void qemu_peer_event(struct cprd_src *src, uint32_t events);
void qemu_peer_bundle_gone(struct bundle *b);
void qemu_peer_conn_closed(struct conn *c);
unsigned qemu_peer_count(void);
void qemu_peer_free_all(void);
struct json_object *qemu_peer_stream_json(const struct bundle *b);

/* upgrade.c */
/* New image: 1 when started by an upgrade, 0 if not, < 0 refused (exit). */
int upgrade_incoming(void);
/* New image, set up and sandboxed: ack and wait for the commit (< 0: exit). */
int upgrade_take_over(void);
/* Old image: returns only when the new image did not take over. */
int upgrade_run(void);
void upgrade_reply(void);

#endif
