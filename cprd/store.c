/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bundle table: a named state stream plus its fds, with a lifecycle
 * open -> sealed -> claimed -> acknowledged (removed) | released (sealed
 * again) | expired (removed).  Every held fd is counted against the global
 * and the per-uid limits before it is accepted.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"

struct usage {
	uid_t uid;
	unsigned fds;
	unsigned bundles;
};

static struct usage *usage;
static size_t n_usage;

static struct usage *usage_get(uid_t uid, bool create)
{
	struct usage *u;

	for (size_t i = 0; i < n_usage; i++)
		if (usage[i].uid == uid)
			return &usage[i];
	if (!create)
		return NULL;
	u = realloc(usage, (n_usage + 1) * sizeof(*usage));
	if (!u)
		return NULL;
	usage = u;
	usage[n_usage] = (struct usage){ .uid = uid };
	return &usage[n_usage++];
}

static void usage_sub(uid_t uid, unsigned fds, unsigned bundles)
{
	struct usage *u = usage_get(uid, false);

	if (!u)
		return;
	u->fds -= fds;
	u->bundles -= bundles;
	if (u->fds == 0 && u->bundles == 0) {
		*u = usage[--n_usage];
		if (n_usage == 0) {
			free(usage);
			usage = NULL;
		}
	}
}

void store_usage(uid_t uid, unsigned *ret_fds, unsigned *ret_bundles)
{
	struct usage *u = usage_get(uid, false);

	*ret_fds = u ? u->fds : 0;
	*ret_bundles = u ? u->bundles : 0;
}

/* -ENOSPC when the daemon is full, -EDQUOT when @uid is. */
int store_quota_check(uid_t uid, size_t add_fds, size_t add_bundles)
{
	const struct cprd_limits *l = &cprd.cfg.limits;
	unsigned q_fds, q_bundles, u_fds, u_bundles;

	if (add_fds > l->max_fds_total - cprd.n_fds ||
	    add_bundles > l->max_bundles - cprd.n_bundles)
		return -ENOSPC;
	conf_quota(&cprd.cfg, uid, &q_fds, &q_bundles);
	store_usage(uid, &u_fds, &u_bundles);
	if (add_fds > q_fds - MIN(q_fds, u_fds) ||
	    add_bundles > q_bundles - MIN(q_bundles, u_bundles))
		return -EDQUOT;
	return 0;
}

static int store_charge(uid_t uid, unsigned fds, unsigned bundles)
{
	struct usage *u = usage_get(uid, true);

	if (!u)
		return -ENOMEM;
	u->fds += fds;
	u->bundles += bundles;
	cprd.n_fds += fds;
	cprd.n_bundles += bundles;
	cprd.status_dirty = true;
	return 0;
}

const char *store_state_name(enum bundle_state s)
{
	switch (s) {
	case BUNDLE_OPEN:
		return "open";
	case BUNDLE_SEALED:
		return "sealed";
	case BUNDLE_CLAIMED:
		return "claimed";
	}
	return "?";
}

struct bundle *store_find(const char *name)
{
	for (struct bundle *b = cprd.bundles; b; b = b->next)
		if (strcmp(b->name, name) == 0)
			return b;
	return NULL;
}

struct bundle *store_find_id(uint64_t id)
{
	for (struct bundle *b = cprd.bundles; b; b = b->next)
		if (b->id == id)
			return b;
	return NULL;
}

static struct bundle *store_bundle_new(const char *name)
{
	struct bundle *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->stream_fd = -EBADF;
	b->luo_manifest_fd = -EBADF;
	b->tie = (struct cprd_src){ .tag = TAG_PIDFD, .obj = b, .fd = -EBADF };
	b->created_ns = now_boottime_ns();
	return b;
}

int store_create(const char *name, const struct cprd_peer *owner, struct bundle **ret)
{
	struct bundle *b;
	int r;

	if (store_find(name))
		return -EEXIST;
	r = store_quota_check(owner->uid, 0, 1);
	if (r < 0)
		return r;
	b = store_bundle_new(name);
	if (!b)
		return -ENOMEM;
	r = store_charge(owner->uid, 0, 1);
	if (r < 0) {
		free(b);
		return r;
	}
	b->id = cprd.next_id++;
	b->owner_uid = owner->uid;
	b->owner_gid = owner->gid;
	b->owner_pid = owner->pid;
	b->next = cprd.bundles;
	cprd.bundles = b;
	*ret = b;
	return 0;
}

/* Link a bundle rebuilt from the fd store or an upgrade: already complete. */
int store_adopt(struct bundle *b)
{
	int r = store_charge(b->owner_uid, (unsigned)b->n_fds + 1, 1);

	if (r < 0)
		return r;
	if (b->id >= cprd.next_id)
		cprd.next_id = b->id + 1;
	b->next = cprd.bundles;
	cprd.bundles = b;
	store_arm_timer();
	return 0;
}

/* Takes the fds on success (the caller's array entries become -EBADF). */
int store_put(struct bundle *b, int *fds, size_t n_fds)
{
	int r = store_quota_check(b->owner_uid, n_fds, 0);

	if (r < 0)
		return r;
	if (n_fds > b->cap_fds - b->n_fds) {
		size_t cap = MAX(b->cap_fds * 2, b->n_fds + n_fds);
		int *p = realloc(b->fds, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		b->fds = p;
		b->cap_fds = cap;
	}
	r = store_charge(b->owner_uid, (unsigned)n_fds, 0);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_fds; i++)
		b->fds[b->n_fds++] = TAKE_FD(fds[i]);
	return 0;
}

/* Every FD record's slot must name a distinct fd of the bundle. */
static int store_check_slots(const struct cpr_state *st, size_t n_fds, struct cpr_error *err)
{
	_cleanup_free_ uint8_t *seen = calloc(n_fds ? n_fds : 1, 1);

	if (!seen)
		return -ENOMEM;
	for (size_t i = 0; i < n_fds; i++) {
		const struct cpr_state_fd *f = cpr_state_fd_get(st, i);

		if (f->slot >= n_fds || seen[f->slot]) {
			cpr_error_set(err, -EBADMSG, CPR_REC_FD, (uint32_t)i, UINT64_MAX,
				      "FD record %zu: slot %u is %s", i, f->slot,
				      f->slot >= n_fds ? "out of range" : "used twice");
			return -EBADMSG;
		}
		seen[f->slot] = 1;
	}
	return 0;
}

/*
 * Each fd is of the kind its FD record states, checked cheaply (no path is
 * looked up, one readlink for anon inodes only): a memfd is a regular file
 * that answers F_GET_SEALS, a device kind a character device.  The consumer's
 * libcpr checks every fd fully again when it adopts the bundle
 * (cpr_fd_check_kind(3)); this refuses the obvious mistakes at seal time.
 */
static int store_kind_ok(int fd, uint32_t kind)
{
	struct stat st;

	switch (kind) {
	case CPR_FD_GENERIC:
		return 0;
	case CPR_FD_MEMFD:
		/* only regular files of shmem or hugetlbfs answer F_GET_SEALS */
		return fcntl(fd, F_GET_SEALS) >= 0 ? 0 : -EMEDIUMTYPE;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	switch (kind) {
	case CPR_FD_SOCKET:
		return S_ISSOCK(st.st_mode) ? 0 : -EMEDIUMTYPE;
	case CPR_FD_VFIO_CDEV:
	case CPR_FD_VFIO_GROUP:
	case CPR_FD_VFIO_CONTAINER:
	case CPR_FD_IOMMUFD:
		return S_ISCHR(st.st_mode) ? 0 : -EMEDIUMTYPE;
	default: /* eventfd, guest_memfd: anon inodes, told apart by name */
		return cpr_fd_check_kind(fd, (enum cpr_fd_kind)kind);
	}
}

static int store_check_kinds(const struct bundle *b, const struct cpr_state *st,
			     struct cpr_error *err)
{
	for (size_t i = 0; i < b->n_fds; i++) {
		const struct cpr_state_fd *f = cpr_state_fd_get(st, i);

		if (store_kind_ok(b->fds[f->slot], f->kind) < 0) {
			const char *kind = cpr_fd_kind_to_string(f->kind);

			cpr_error_set(err, -EBADMSG, CPR_REC_FD, (uint32_t)i, UINT64_MAX,
				      "FD record %zu: the fd in slot %u is not a %s", i, f->slot,
				      kind ? kind : "?");
			return -EBADMSG;
		}
	}
	return 0;
}

/* The stream parses and describes the bundle's fds (the parse is not kept). */
int store_validate(struct bundle *b, const void *buf, size_t len, struct cpr_error *err)
{
	struct cpr_state *st = NULL;
	int r = cpr_state_parse(buf, len, 0, &st, err);

	if (r < 0)
		return r;
	if (cpr_state_fd_count(st) != b->n_fds) {
		cpr_error_set(err, -EBADMSG, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "the stream has %zu FD records but the bundle holds %zu fds",
			      cpr_state_fd_count(st), b->n_fds);
		cpr_state_free(st);
		return -EBADMSG;
	}
	r = store_check_slots(st, b->n_fds, err);
	if (r == 0 && cprd.cfg.limits.check_kinds)
		r = store_check_kinds(b, st, err);
	cpr_state_free(st);
	return r;
}

#define STORE_SEALS_FROZEN (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)

/*
 * Validate the stream in *@stream_fd against the fds put so far and seal
 * the bundle.  The stream is copied into private memory before it is
 * parsed.  A memfd its producer sealed against writing, shrinking and
 * growing can never change again: it is kept as it is (taken: *@stream_fd
 * becomes -EBADF).  Any other stream is copied into a sealed memfd of the
 * daemon's own and *@stream_fd stays the caller's.
 */
int store_seal(struct bundle *b, int *stream_fd, struct cpr_error *err)
{
	_cleanup_free_ void *buf = NULL;
	_cleanup_close_ int mfd = -EBADF;
	/* before the read: seals are never removed, so what is read stays */
	int seals = fcntl(*stream_fd, F_GET_SEALS);
	bool frozen = seals >= 0 && (seals & STORE_SEALS_FROZEN) == STORE_SEALS_FROZEN;
	size_t len;
	int r;

	r = frozen ? fd_read_frozen(*stream_fd, cprd.cfg.limits.max_stream, &buf, &len)
		   : fd_read_all(*stream_fd, cprd.cfg.limits.max_stream, &buf, &len);
	if (r < 0) {
		cpr_error_set(err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX, "%s",
			      r == -EFBIG    ? "the stream exceeds max-stream"
			      : r == -EBADFD ? "the stream fd is not a memfd or regular file"
					     : "cannot read the stream");
		return r;
	}
	r = store_validate(b, buf, len, err);
	if (r < 0)
		return r;
	r = store_quota_check(b->owner_uid, 1, 0);
	if (r == 0 && !frozen)
		r = memfd_new_sealed("cprd-stream", buf, len, &mfd);
	if (r == 0)
		r = store_charge(b->owner_uid, 1, 0);
	if (r < 0) {
		cpr_error_set(err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX, "cannot keep the stream");
		return r;
	}
	b->stream_fd = frozen ? TAKE_FD(*stream_fd) : TAKE_FD(mfd);
	b->stream_len = len;
	b->state = BUNDLE_SEALED;
	b->open_conn = NULL;
	if (b->ttl_ms)
		b->expire_ns = now_boottime_ns() + b->ttl_ms * 1000000u;
	if (cprd.fdstore)
		fdstore_park(b);
	store_arm_timer();
	return 0;
}

int store_seal_checked(struct bundle *b, int *stream_fd, size_t len)
{
	int r = store_quota_check(b->owner_uid, 1, 0);

	if (r == 0)
		r = store_charge(b->owner_uid, 1, 0);
	if (r < 0)
		return r;
	b->stream_fd = TAKE_FD(*stream_fd);
	b->stream_len = len;
	b->state = BUNDLE_SEALED;
	b->open_conn = NULL;
	if (b->ttl_ms)
		b->expire_ns = now_boottime_ns() + b->ttl_ms * 1000000u;
	store_arm_timer();
	return 0;
}

int store_claim(struct bundle *b, const struct cprd_peer *peer, uint64_t lease_ms)
{
	int r = random_hex(b->token, CPRD_TOKEN_LEN);

	if (r < 0)
		return r;
	b->state = BUNDLE_CLAIMED;
	b->claimer_uid = peer->uid;
	b->claimer_pid = peer->pid;
	b->lease_ns = now_boottime_ns() + lease_ms * 1000000u;
	b->claims++;
	cprd.status_dirty = true;
	store_arm_timer();
	return 0;
}

void store_release(struct bundle *b)
{
	b->claim_conn = NULL;
	b->state = BUNDLE_SEALED;
	b->lease_ns = 0;
	memset(b->token, 0, sizeof(b->token));
	cprd.status_dirty = true;
	store_arm_timer();
}

static void store_unlink(struct bundle *b)
{
	for (struct bundle **pp = &cprd.bundles; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			return;
		}
}

/*
 * Close a bundle's fds.  Received together, they mostly hold consecutive
 * numbers in slot order: each such run is closed by one close_range(2)
 * (every number in it is the bundle's), the rest one by one.
 */
static void store_close_fds(const int *fds, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i + 1;

		while (j < n && fds[j] >= 0 && fds[j] == fds[j - 1] + 1)
			j++;
		if (j - i > 1 && fds[i] >= 0 &&
		    close_range((unsigned)fds[i], (unsigned)fds[j - 1], 0) == 0) {
			i = j;
			continue;
		}
		for (; i < j; i++)
			cpr_close(fds[i]);
	}
}

static void store_bundle_free(struct bundle *b)
{
	free(b->file_ids);
	/* The stream mostly arrived just before the fds: one run with them. */
	if (b->stream_fd >= 0 && b->n_fds && b->fds[0] == b->stream_fd + 1) {
		size_t j = 1;

		while (j < b->n_fds && b->fds[j] == b->fds[j - 1] + 1)
			j++;
		if (close_range((unsigned)b->stream_fd, (unsigned)b->fds[j - 1], 0) == 0) {
			for (size_t i = 0; i < j; i++)
				b->fds[i] = -EBADF;
			b->stream_fd = -EBADF;
		}
	}
	store_close_fds(b->fds, b->n_fds);
	free(b->fds);
	cpr_close(b->stream_fd);
	if (b->tie.fd >= 0) /* the peer's pidfd shares the file: delete explicitly */
		epoll_ctl(cprd.epoll_fd, EPOLL_CTL_DEL, b->tie.fd, NULL);
	cpr_close(b->tie.fd);
	cpr_close(b->luo_manifest_fd);
	free(b);
}

void store_bundle_discard(struct bundle *b)
{
	store_bundle_free(b);
}

/* Acknowledged, dropped or expired: close the daemon's copies. */
void store_remove(struct bundle *b, const char *why)
{
	unsigned held = (unsigned)b->n_fds + (b->stream_fd >= 0);

	log_debug("bundle %s (%zu fds) %s", log_quote(b->name), b->n_fds, why);
	if (b->qemu)
		qemu_peer_bundle_gone(b);
	if (b->n_parked) /* parked, or on its way there */
		fdstore_unpark(b);
	store_unlink(b);
	luo_forget(b);
	usage_sub(b->owner_uid, held, 1);
	cprd.n_fds -= held;
	cprd.n_bundles--;
	cprd.status_dirty = true;
	store_bundle_free(b);
	store_arm_timer();
}

/* An open bundle is lost with the connection that was filling it. */
void store_conn_closed(void *conn)
{
	struct bundle *b = cprd.bundles, *next;

	for (; b; b = next) {
		next = b->next;
		if (b->state == BUNDLE_OPEN && b->open_conn == conn) {
			store_remove(b, "abandoned before seal");
		} else if (b->state == BUNDLE_CLAIMED && b->claim_conn == conn) {
			log_info("bundle %s sealed again: pid %d hung up before acknowledging its "
				 "claim",
				 b->name, (int)b->claimer_pid);
			store_release(b);
		}
	}
}

static uint64_t store_deadline(const struct bundle *b)
{
	if (b->state == BUNDLE_CLAIMED)
		return b->lease_ns;
	return b->expire_ns;
}

/* The earliest deadline the timer is armed for (0: disarmed). */
static uint64_t armed_ns;

void store_arm_timer(void)
{
	struct itimerspec its = { 0 };
	uint64_t next = 0;

	for (struct bundle *b = cprd.bundles; b; b = b->next) {
		uint64_t d = store_deadline(b);

		if (d && (!next || d < next))
			next = d;
	}
	if (next == armed_ns)
		return; /* nothing to change: no system call */
	armed_ns = next;
	if (next) {
		its.it_value.tv_sec = (time_t)(next / 1000000000u);
		its.it_value.tv_nsec = (long)(next % 1000000000u);
	}
	if (timerfd_settime(cprd.timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		log_warn("timerfd_settime");
		armed_ns = 0;
	}
}

void store_timer_event(void)
{
	uint64_t now = now_boottime_ns(), ticks;
	struct bundle *b = cprd.bundles, *next;

	if (read(cprd.timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("timerfd read");
	armed_ns = 0; /* it fired: arm it again below */
	for (; b; b = next) {
		next = b->next;
		if (b->state == BUNDLE_CLAIMED && b->lease_ns <= now) {
			log_info("bundle %s: lease of uid %u lapsed, sealed again",
				 log_quote(b->name), (unsigned)b->claimer_uid);
			store_release(b);
		} else if (b->state != BUNDLE_CLAIMED && b->expire_ns && b->expire_ns <= now) {
			log_info("bundle %s expired", log_quote(b->name));
			store_remove(b, "expired");
		}
	}
	store_arm_timer();
}

void store_pidfd_event(struct bundle *b)
{
	log_info("bundle %s: owner pid %d exited", log_quote(b->name), (int)b->owner_pid);
	store_remove(b, "owner exited");
}

static bool fd_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/*
 * Before a "debug" reply: owners that have exited and deadlines that have
 * passed are processed, even if their events are still in the epoll queue.
 */
void store_settle(void)
{
	struct bundle *b = cprd.bundles, *next;

	for (; b; b = next) {
		next = b->next;
		if (b->tied && b->tie.fd >= 0 && fd_readable(b->tie.fd))
			store_pidfd_event(b);
	}
	if (armed_ns && armed_ns <= now_boottime_ns())
		store_timer_event();
}

void store_free_all(void)
{
	while (cprd.bundles) {
		struct bundle *b = cprd.bundles;

		cprd.bundles = b->next;
		store_bundle_free(b);
	}
	free(usage);
	usage = NULL;
	n_usage = 0;
	cprd.n_bundles = cprd.n_fds = 0;
}
