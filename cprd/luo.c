/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kexec-durable bundles through the kernel's Live Update Orchestrator.
 *
 * cprd keeps one LUO session.  It comes from the service manager's fd
 * store (systemd >= 262, LUOSession=cprd-luo: the fd named "cprd-luo"), or,
 * when cprd.conf says live-update-agent = 1, from /dev/liveupdate, which
 * cprd then opens itself (the device has one opener: cprd is then the
 * host's live-update agent).  Never by default.
 *
 * A durable bundle's memfds are preserved in the session as they are (the
 * same pages: nothing is copied), with its state stream and its manifest
 * (the fd store's, fdstore_manifest_json()), under tokens that carry the
 * bundle id; an index memfd (token 1) lists the ids.  After the kexec
 * cprd retrieves the session (luo-restore.c), rebuilds the bundles and
 * finishes it.  The kernel preserves memfds only: a bundle holding anything
 * else is refused when it asks, naming the fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cpr/state.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"
#include "luo.h"
#include "proto.h"

struct luo_state luo = { .dev_fd = -EBADF, .session_fd = -EBADF, .index_fd = -EBADF };

int luo_name_check(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= LIVEUPDATE_SESSION_NAME_LENGTH)
		return -ENAMETOOLONG;
	for (const char *p = name; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return -EINVAL;
	/* systemd's own session: taking it would hijack the host's. */
	if (strcmp(name, "systemd") == 0)
		return -EPERM;
	return 0;
}

static int luo_ioctl_preserve(int session_fd, int fd, uint64_t token)
{
	struct liveupdate_session_preserve_fd a = { .size = sizeof(a), .fd = fd, .token = token };

	return ioctl(session_fd, LIVEUPDATE_SESSION_PRESERVE_FD, &a) < 0 ? -errno : 0;
}

int luo_ioctl_retrieve_fd(int session_fd, uint64_t token, int *ret_fd)
{
	struct liveupdate_session_retrieve_fd a = { .size = sizeof(a), .fd = -1, .token = token };

	if (ioctl(session_fd, LIVEUPDATE_SESSION_RETRIEVE_FD, &a) < 0)
		return -errno;
	/* the kernel does not set close-on-exec */
	if (fcntl(a.fd, F_SETFD, FD_CLOEXEC) < 0) {
		int r = -errno;

		close(a.fd);
		return r;
	}
	*ret_fd = a.fd;
	return 0;
}

int luo_ioctl_finish(int session_fd)
{
	struct liveupdate_session_finish a = { .size = sizeof(a) };

	return ioctl(session_fd, LIVEUPDATE_SESSION_FINISH, &a) < 0 ? -errno : 0;
}

/* The session's name from the kernel (7.2+): 0, or -ENOTTY/-EINVAL before. */
static int luo_get_name(int session_fd, char *buf, size_t len)
{
	struct liveupdate_session_get_name a = { .size = sizeof(a) };

	if (ioctl(session_fd, LIVEUPDATE_SESSION_GET_NAME, &a) < 0)
		return -errno;
	a.name[sizeof(a.name) - 1] = 0;
	snprintf(buf, len, "%s", (const char *)a.name);
	return 0;
}

static int luo_dev_session(unsigned long cmd, const char *name, int *ret_fd)
{
	struct liveupdate_ioctl_create_session a = { .size = sizeof(a), .fd = -1 };

	snprintf((char *)a.name, sizeof(a.name), "%s", name);
	if (ioctl(luo.dev_fd, cmd, &a) < 0)
		return -errno;
	*ret_fd = a.fd;
	return 0;
}

/* The index memfd: written in place (a preserved file keeps its size). */
static int luo_index_write(void)
{
	_cleanup_free_ char *buf = calloc(1, LUO_INDEX_SIZE);
	size_t off = strlen(LUO_INDEX_MAGIC);

	if (!buf)
		return -ENOMEM;
	memcpy(buf, LUO_INDEX_MAGIC, off);
	for (const struct bundle *b = cprd.bundles; b; b = b->next) {
		if (!b->luo_kept)
			continue;
		if (LUO_INDEX_SIZE - off < 24)
			return -ENOSPC;
		off += (size_t)snprintf(buf + off, LUO_INDEX_SIZE - off, "%" PRIu64 "\n", b->id);
	}
	if (pwrite(luo.index_fd, buf, LUO_INDEX_SIZE, 0) != LUO_INDEX_SIZE)
		return -EIO;
	return 0;
}

static int luo_index_new(void)
{
	int fd = memfd_create("cprd-luo-index", MFD_CLOEXEC | MFD_ALLOW_SEALING), r;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, LUO_INDEX_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	luo.index_fd = fd;
	r = luo_index_write();
	if (r == 0)
		r = luo_ioctl_preserve(luo.session_fd, fd, LUO_TOKEN_INDEX);
	if (r < 0)
		luo.index_fd = cpr_close(luo.index_fd);
	return r;
}

/* Agent mode: a new outgoing session and its index. */
static int luo_session_new(void)
{
	int r = luo_dev_session(LIVEUPDATE_IOCTL_CREATE_SESSION, luo.name, &luo.session_fd);

	if (r < 0) {
		snprintf(luo.why, sizeof(luo.why), "creating live-update session %s: %s",
			 log_quote(luo.name), strerror(-r));
		return r;
	}
	r = luo_index_new();
	if (r < 0) {
		snprintf(luo.why, sizeof(luo.why), "preserving the session index: %s",
			 strerror(-r));
		luo.session_fd = cpr_close(luo.session_fd);
		return r;
	}
	luo.why[0] = 0;
	return 0;
}

/* A description of slot @i's fd for messages: its record name and its file. */
static void luo_slot_desc(const struct bundle *b, const struct cpr_state *st, size_t i, char *buf,
			  size_t len)
{
	char path[40], link[96] = "?";
	const char *rec = NULL;
	ssize_t n;

	for (size_t k = 0; st && k < cpr_state_fd_count(st); k++)
		if (cpr_state_fd_get(st, k)->slot == i)
			rec = cpr_state_fd_get(st, k)->name;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", b->fds[i]);
	n = readlink(path, link, sizeof(link) - 1);
	if (n > 0)
		link[n] = 0;
	snprintf(buf, len, "slot %zu%s%s%s (%s)", i, rec ? " \"" : "", rec ? rec : "",
		 rec ? "\"" : "", link);
}

/*
 * What the kernel can preserve: an unlinked shmem file, a memfd (its own
 * test, memfd_luo_can_preserve()).  Not by name: a memfd the kernel gave
 * back after a kexec has none ("/ (deleted)"), and must be preservable for
 * the next one.  F_GET_SEALS answers on shmem and hugetlbfs files only; the
 * kernel refuses a hugetlb memfd itself, and luo_piece() names it then.
 */
static bool luo_fd_is_memfd(int fd)
{
	struct stat st;

	return fcntl(fd, F_GET_SEALS) >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	       st.st_nlink == 0;
}

static struct cpr_state *luo_parse_stream(const struct bundle *b)
{
	_cleanup_free_ void *buf = NULL;
	struct cpr_error err = { 0 };
	struct cpr_state *st = NULL;
	size_t len;

	if (fd_read_all(b->stream_fd, CPR_STREAM_MAX, &buf, &len) < 0)
		return NULL;
	if (cpr_state_parse(buf, len, 0, &st, &err) < 0)
		return NULL;
	return st;
}

/* Preserve @fd as @token; on refusal @why names the piece and the errno. */
static int luo_piece(int fd, uint64_t token, const char *what, char *why, size_t why_len)
{
	int r = luo_ioctl_preserve(luo.session_fd, fd, token);

	if (r < 0)
		snprintf(why, why_len, "%s: the kernel refused to preserve it: %s (%s)", what,
			 strerrorname_np(-r) ? strerrorname_np(-r) : "?", strerror(-r));
	return r;
}

/* Every piece of @b into the session; the manifest memfd is kept in @b. */
static int luo_preserve_pieces(struct bundle *b, const struct cpr_state *st, char *why,
			       size_t why_len)
{
	_cleanup_free_ struct stat *sts = calloc(b->n_fds ? b->n_fds : 1, sizeof(*sts));
	struct json_object *same = json_object_new_array(), *m;
	char desc[400];
	size_t len;
	int r = sts && same ? 0 : -ENOMEM;

	for (size_t i = 0; r == 0 && i < b->n_fds; i++) {
		long dup;

		if (fstat(b->fds[i], &sts[i]) < 0)
			r = -errno;
		dup = r == 0 ? fdstore_dup_of(b, sts, i) : -1;
		json_object_array_add(same, json_object_new_int64(dup));
		if (r == 0 && dup < 0) {
			luo_slot_desc(b, st, i, desc, sizeof(desc));
			r = luo_piece(b->fds[i], LUO_TOKEN(b->id, LUO_PIECE_SLOT0 + i), desc, why,
				      why_len);
		}
	}
	if (r == 0)
		r = luo_piece(b->stream_fd, LUO_TOKEN(b->id, LUO_PIECE_STREAM), "the state stream",
			      why, why_len);
	m = fdstore_manifest_json(b, same);
	if (r == 0 && b->luo_manifest_fd < 0) {
		const char *s = proto_format(m, &len);

		r = memfd_new_sealed("cprd-luo-manifest", s, len, &b->luo_manifest_fd);
	}
	json_object_put(m);
	if (r == 0)
		r = luo_piece(b->luo_manifest_fd, LUO_TOKEN(b->id, LUO_PIECE_MANIFEST),
			      "the manifest", why, why_len);
	if (r == 0)
		b->luo_kept = true;
	return r;
}

/*
 * Closing the session is the only way to unpreserve its files: agent mode
 * starts a new session and preserves again every bundle still durable.
 */
static void luo_rebuild(void)
{
	char why[256];

	if (luo.mode != LUO_AGENT)
		return;
	luo.index_fd = cpr_close(luo.index_fd);
	luo.session_fd = cpr_close(luo.session_fd);
	if (luo_session_new() < 0) {
		log_warnx("live update: %s; durable bundles are not preserved now", luo.why);
		for (struct bundle *b = cprd.bundles; b; b = b->next)
			b->luo_kept = false;
		return;
	}
	for (struct bundle *b = cprd.bundles; b; b = b->next) {
		struct cpr_state *st;

		if (!b->luo_kept)
			continue;
		b->luo_kept = false;
		st = luo_parse_stream(b);
		if (luo_preserve_pieces(b, st, why, sizeof(why)) < 0)
			log_warnx("bundle %s is no longer durable: %s", log_quote(b->name), why);
		cpr_state_free(st);
	}
	if (luo_index_write() < 0)
		log_warnx("live update: cannot write the session index");
}

static int luo_refuse(struct bundle *b, int r, char *why, size_t why_len)
{
	luo.refused++;
	log_warnx("bundle %s refused as durable: %s", log_quote(b->name), why);
	(void)why_len;
	return r;
}

/* Before anything is preserved: what the kernel is sure to refuse. */
static int luo_precheck(struct bundle *b, const struct cpr_state *st, char *why, size_t why_len)
{
	char desc[400];

	if (b->tied) {
		snprintf(why, why_len, "a tied bundle dies with its owner: it cannot be durable");
		return -EINVAL;
	}
	if (b->id > LUO_ID_MAX || b->n_fds >= (1u << LUO_PIECE_BITS) - LUO_PIECE_SLOT0) {
		snprintf(why, why_len, "bundle id or fd count beyond the session's tokens");
		return -EOVERFLOW;
	}
	for (size_t i = 0; i < b->n_fds; i++) {
		if (luo_fd_is_memfd(b->fds[i]))
			continue;
		luo_slot_desc(b, st, i, desc, sizeof(desc));
		snprintf(why, why_len,
			 "%s is not a memfd: the kernel preserves only memfds across a kexec",
			 desc);
		return -EOPNOTSUPP;
	}
	/* after the fds: a bundle no kernel could preserve is told so */
	if (luo.session_fd < 0) {
		snprintf(why, why_len, "no live-update session: %s", luo.why);
		return -EOPNOTSUPP;
	}
	return 0;
}

int luo_preserve(struct bundle *b, char *why, size_t why_len)
{
	struct cpr_state *st = luo_parse_stream(b);
	int r = luo_precheck(b, st, why, why_len);

	if (r == 0)
		r = luo_preserve_pieces(b, st, why, why_len);
	cpr_state_free(st);
	if (r < 0) {
		/* what went in before the refusal must come out again */
		if (luo.session_fd >= 0 && r != -EOPNOTSUPP)
			luo_rebuild();
		return luo_refuse(b, r, why, why_len);
	}
	r = luo_index_write();
	if (r < 0) {
		snprintf(why, why_len, "the session index is full");
		b->luo_kept = false;
		luo_rebuild();
		return luo_refuse(b, r, why, why_len);
	}
	log_info("bundle %s preserved for a kexec (%zu fds) in session %s", log_quote(b->name),
		 b->n_fds, log_quote(luo.name));
	return 0;
}

void luo_forget(struct bundle *b)
{
	bool kept = b->luo_kept;

	b->luo_kept = false;
	b->luo_manifest_fd = cpr_close(b->luo_manifest_fd);
	if (!kept || luo.restoring)
		return;
	if (luo.mode == LUO_AGENT)
		luo_rebuild();
	else if (luo_index_write() < 0)
		log_warnx("live update: cannot write the session index");
}

/* Restored bundles go into the new outgoing session (agent mode). */
static void luo_preserve_restored(void)
{
	char why[256];

	for (struct bundle *b = cprd.bundles; b; b = b->next) {
		struct cpr_state *st;

		if (!b->durable || b->luo_kept)
			continue;
		st = luo_parse_stream(b);
		if (luo_preserve_pieces(b, st, why, sizeof(why)) < 0)
			log_warnx("bundle %s: not preserved for the next kexec: %s",
				  log_quote(b->name), why);
		cpr_state_free(st);
	}
	if (luo_index_write() < 0)
		log_warnx("live update: cannot write the session index");
}

static int luo_open_agent(void)
{
	int fd, r;

	fd = open("/dev/liveupdate", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(luo.why, sizeof(luo.why), "%s",
			 r == -ENOENT  ? "no /dev/liveupdate: the kernel needs CONFIG_LIVEUPDATE "
					 "and kho=on liveupdate=on on its command line"
			 : r == -EBUSY ? "/dev/liveupdate is held by another process (the "
					 "host's live-update agent)"
				       : strerror(-r));
		return r;
	}
	luo.dev_fd = fd;
	r = luo_dev_session(LIVEUPDATE_IOCTL_RETRIEVE_SESSION, luo.name, &fd);
	if (r == 0) {
		luo_restore(fd);
		close(fd);
	} else if (r == -ENOENT) {
		log_info("live update: no session %s from a previous kernel", log_quote(luo.name));
	} else {
		snprintf(luo.retrieve_error, sizeof(luo.retrieve_error),
			 "retrieving session %s failed: %s (permanent: the kernel does not retry)",
			 luo.name, strerror(-r));
		log_warnx("live update: %s", luo.retrieve_error);
	}
	r = luo_session_new();
	if (r == 0)
		luo_preserve_restored();
	return r;
}

/* fd-store mode: an outgoing session is used, an incoming one restored. */
static int luo_take_session(int fd)
{
	char name[LIVEUPDATE_SESSION_NAME_LENGTH] = "";
	int idx = -EBADF, r = luo_get_name(fd, name, sizeof(name));

	if (r < 0)
		log_warnx("live update: the session's name is unknown (%s: "
			  "LIVEUPDATE_SESSION_GET_NAME needs Linux 7.2); taking FDNAME=%s on trust",
			  strerror(-r), LUO_FDNAME);
	else if (luo_name_check(name) < 0) {
		snprintf(luo.why, sizeof(luo.why), "the fd store's session is named %s: refused",
			 log_quote(name));
		close(fd);
		return -EPERM;
	} else
		snprintf(luo.name, sizeof(luo.name), "%s", name);
	r = luo_ioctl_retrieve_fd(fd, LUO_TOKEN_INDEX, &idx);
	cpr_close(idx);
	if (r != -EINVAL) { /* EINVAL: an outgoing session, where retrieving is invalid */
		luo_restore(fd);
		snprintf(luo.why, sizeof(luo.why),
			 "the fd store's session was retrieved and finished; the service manager "
			 "hands a new one");
		close(fd);
		return 0;
	}
	luo.session_fd = fd;
	r = luo_index_new();
	if (r < 0) {
		snprintf(luo.why, sizeof(luo.why), "preserving the session index: %s%s",
			 strerror(-r),
			 r == -EEXIST ? " (cprd restarted: until the next kexec)" : "");
		luo.session_fd = cpr_close(luo.session_fd);
	}
	return r;
}

int luo_setup(int *fds, char **names, size_t *n)
{
	int fd = -EBADF;

	snprintf(luo.name, sizeof(luo.name), "%s", cprd.cfg.luo_session);
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(names[i], LUO_FDNAME) != 0)
			continue;
		cpr_close(fd);
		fd = fds[i];
		memmove(fds + i, fds + i + 1, (*n - i - 1) * sizeof(*fds));
		memmove(names + i, names + i + 1, (*n - i - 1) * sizeof(*names));
		(*n)--, i--;
	}
	if (fd >= 0) {
		luo.mode = LUO_FDSTORE;
		return luo_take_session(fd);
	}
	if (!cprd.cfg.limits.luo_agent) {
		snprintf(luo.why, sizeof(luo.why),
			 "the service manager handed no session (FDNAME=%s) and cprd is not the "
			 "live-update agent (cprd.conf: live-update-agent)",
			 LUO_FDNAME);
		return 0;
	}
	luo.mode = LUO_AGENT;
	return luo_open_agent();
}

struct json_object *luo_status_json(void)
{
	static const char *const modes[] = { "off", "agent", "fdstore" };
	struct json_object *o = json_object_new_object();
	unsigned n = 0;

	for (const struct bundle *b = cprd.bundles; b; b = b->next)
		n += b->luo_kept;
	json_object_object_add(o, "mode", json_object_new_string(modes[luo.mode]));
	json_object_object_add(o, "session", json_object_new_string(luo.name));
	json_object_object_add(o, "available", json_object_new_boolean(luo.session_fd >= 0));
	if (luo.why[0])
		json_object_object_add(o, "why", json_object_new_string(luo.why));
	if (luo.retrieve_error[0])
		json_object_object_add(o, "retrieve_error",
				       json_object_new_string(luo.retrieve_error));
	json_object_object_add(o, "preserved", json_object_new_int64(n));
	json_object_object_add(o, "restored", json_object_new_int64(luo.restored));
	json_object_object_add(o, "refused", json_object_new_int64(luo.refused));
	return o;
}

void luo_close(void)
{
	luo.restoring = true; /* no rebuilds while the bundles go */
	luo.index_fd = cpr_close(luo.index_fd);
	luo.session_fd = cpr_close(luo.session_fd);
	luo.dev_fd = cpr_close(luo.dev_fd);
}
