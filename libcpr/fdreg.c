/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The registry of preserved fds, keyed by (name, id), with kinds. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>

#include "ctx.h"
#include "internal.h"
#include "stream.h"

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif
#define HUGETLBFS_MAGIC_BLKSIZE (2u << 20)

/* ---- the registry and its hash indexes ---- */

enum fdreg_key { BY_KEY, BY_FD, BY_REC };

static uint32_t mix32(uint64_t v)
{
	v ^= v >> 33;
	v *= 0xff51afd7ed558ccdull;
	v ^= v >> 33;
	v *= 0xc4ceb9fe1a85ec53ull;
	return (uint32_t)(v >> 32);
}

static uint32_t hash_key(const char *name, int32_t id)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3ull;
	return mix32(h ^ (uint32_t)id);
}

static uint32_t entry_hash(const struct cpr_fd_entry *e, enum fdreg_key k)
{
	if (k == BY_KEY)
		return hash_key(e->name, e->id);
	return mix32(k == BY_FD ? (uint32_t)e->fd : (uint64_t)e->rec << 32);
}

static struct fdreg_index *index_of(struct cpr_ctx *ctx, enum fdreg_key k)
{
	return k == BY_KEY ? &ctx->by_key : k == BY_FD ? &ctx->by_fd : &ctx->by_rec;
}

/* Only incoming entries have an FD record. */
static bool indexed(const struct cpr_fd_entry *e, enum fdreg_key k)
{
	return k != BY_REC || e->incoming;
}

/* The entry registered as @seq, or NULL once it was removed. */
static struct cpr_fd_entry *entry_by_seq(struct cpr_ctx *ctx, uint32_t seq)
{
	size_t lo = 0, hi = ctx->n_fds;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ctx->fds[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ctx->n_fds && ctx->fds[lo].seq == seq ? &ctx->fds[lo] : NULL;
}

static void index_put(struct fdreg_index *ix, uint32_t h, uint32_t seq)
{
	size_t mask = ix->cap - 1, i;

	assert((ix->used + 1) * 2 <= ix->cap);
	for (i = h & mask; ix->slots[i]; i = (i + 1) & mask)
		;
	ix->slots[i] = (uint64_t)h << 32 | ((uint64_t)seq + 1);
	ix->used++;
}

/* Rebuild index @k from the live entries, at most a third full with room
 * for @extra more: the next rebuild comes after as many inserts again. */
static int index_rebuild(struct cpr_ctx *ctx, enum fdreg_key k, size_t extra)
{
	struct fdreg_index *ix = index_of(ctx, k);
	size_t cap = 64, live = 0;
	uint64_t *slots;

	for (size_t i = 0; i < ctx->n_fds; i++)
		live += indexed(&ctx->fds[i], k);
	while (cap < 3 * (live + extra))
		cap *= 2;
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	free(ix->slots);
	*ix = (struct fdreg_index){ .slots = slots, .cap = cap };
	for (size_t i = 0; i < ctx->n_fds; i++)
		if (indexed(&ctx->fds[i], k))
			index_put(ix, entry_hash(&ctx->fds[i], k), ctx->fds[i].seq);
	return 0;
}

static bool entry_matches(const struct cpr_fd_entry *e, enum fdreg_key k, const char *name,
			  int64_t v)
{
	if (k == BY_KEY)
		return e->id == v && strcmp(e->name, name) == 0;
	if (k == BY_FD)
		return e->fd == v;
	return e->incoming && e->rec == v;
}

static struct cpr_fd_entry *index_find(struct cpr_ctx *ctx, enum fdreg_key k, uint32_t h,
				       const char *name, int64_t v)
{
	struct fdreg_index *ix = index_of(ctx, k);
	size_t mask = ix->cap - 1;

	if (!ix->cap)
		return NULL;
	for (size_t i = h & mask; ix->slots[i]; i = (i + 1) & mask) {
		struct cpr_fd_entry *e;

		if ((uint32_t)(ix->slots[i] >> 32) != h)
			continue;
		e = entry_by_seq(ctx, (uint32_t)ix->slots[i] - 1);
		if (e && entry_matches(e, k, name, v))
			return e;
	}
	return NULL;
}

struct cpr_fd_entry *fdreg_lookup(struct cpr_ctx *ctx, const char *name, int32_t id)
{
	return index_find(ctx, BY_KEY, hash_key(name, id), name, id);
}

struct cpr_fd_entry *fdreg_lookup_rec(struct cpr_ctx *ctx, uint32_t rec)
{
	return index_find(ctx, BY_REC, mix32((uint64_t)rec << 32), NULL, rec);
}

bool fdreg_fd_in_use(struct cpr_ctx *ctx, int fd)
{
	if (index_find(ctx, BY_FD, mix32((uint32_t)fd), NULL, fd))
		return true;
	for (size_t i = 0; i < ctx->n_rbs; i++)
		if (ctx->rbs[i]->fd == fd)
			return true;
	return false;
}

int fdreg_reserve(struct cpr_ctx *ctx, size_t n, bool incoming)
{
	bool renumber = ctx->next_seq > UINT32_MAX - 1 - n;
	int r;

	if (n > ctx->cap_fds - ctx->n_fds) {
		size_t cap = ctx->n_fds + n;
		struct cpr_fd_entry *fds;

		if (cap < 2 * ctx->cap_fds)
			cap = 2 * ctx->cap_fds;
		fds = reallocarray(ctx->fds, cap, sizeof(*fds));
		if (!fds)
			return -ENOMEM;
		ctx->fds = fds;
		ctx->cap_fds = cap;
	}
	if (renumber) { /* four billion registrations later: start again */
		for (size_t i = 0; i < ctx->n_fds; i++)
			ctx->fds[i].seq = (uint32_t)i;
		ctx->next_seq = (uint32_t)ctx->n_fds;
	}
	for (enum fdreg_key k = BY_KEY; k <= BY_REC; k++) {
		struct fdreg_index *ix = index_of(ctx, k);
		size_t more = k == BY_REC && !incoming ? 0 : n;

		if (!renumber && (ix->used + more) * 2 <= ix->cap && ix->cap)
			continue;
		r = index_rebuild(ctx, k, more);
		if (r < 0)
			return r;
	}
	return 0;
}

void fdreg_append(struct cpr_ctx *ctx, const struct cpr_fd_entry *e)
{
	struct cpr_fd_entry *d;

	assert(ctx->n_fds < ctx->cap_fds);
	d = &ctx->fds[ctx->n_fds++];
	*d = *e;
	d->seq = ctx->next_seq++;
	for (enum fdreg_key k = BY_KEY; k <= BY_REC; k++)
		if (indexed(d, k))
			index_put(index_of(ctx, k), entry_hash(d, k), d->seq);
}

/* An incoming entry's name is its FD record's, in ctx->incoming. */
static void entry_free_name(struct cpr_fd_entry *e)
{
	if (!e->incoming)
		free(e->name);
}

/* Keeps the order of the others: it is the order of the FD records.  Its
 * index slots go stale and are dropped at the next rebuild. */
void fdreg_remove(struct cpr_ctx *ctx, struct cpr_fd_entry *e)
{
	size_t i = (size_t)(e - ctx->fds);

	entry_free_name(e);
	memmove(e, e + 1, (ctx->n_fds - i - 1) * sizeof(*e));
	ctx->n_fds--;
}

void fdreg_free_all(struct cpr_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_fds; i++) {
		if (ctx->fds[i].owned)
			cpr_close(ctx->fds[i].fd);
		entry_free_name(&ctx->fds[i]);
	}
	free(ctx->fds);
	ctx->fds = NULL;
	ctx->n_fds = ctx->cap_fds = 0;
	ctx->next_seq = 0;
	for (enum fdreg_key k = BY_KEY; k <= BY_REC; k++) {
		free(index_of(ctx, k)->slots);
		*index_of(ctx, k) = (struct fdreg_index){ 0 };
	}
}

/* The /proc/self/fd link of @fd, e.g. "anon_inode:[eventfd]" or "/dev/vfio/7". */
static int fd_link(int fd, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

/* A character device whose path is @want (or starts with @prefix) and still
 * names the same device node. */
static int check_chardev(int fd, const struct stat *st, const char *want, const char *prefix)
{
	char link[PATH_MAX];
	struct stat pst;
	int r;

	if (!S_ISCHR(st->st_mode))
		return -EMEDIUMTYPE;
	r = fd_link(fd, link, sizeof(link));
	if (r < 0)
		return r;
	if (want && strcmp(link, want) != 0)
		return -EMEDIUMTYPE;
	if (prefix && (strncmp(link, prefix, strlen(prefix)) != 0 || !link[strlen(prefix)] ||
		       strchr(link + strlen(prefix), '/')))
		return -EMEDIUMTYPE;
	if (stat(link, &pst) < 0 || !S_ISCHR(pst.st_mode) || pst.st_rdev != st->st_rdev)
		return -EMEDIUMTYPE;
	return 0;
}

/*
 * Does character device @rdev belong to @driver?  A misc device (major 10)
 * is named in /proc/misc by its minor, any other in /proc/devices by its
 * major: a node of the right name with another driver's numbers behind it
 * (a copy of /dev/null at /dev/vfio/devices/vfio0) is not that device.
 */
#define MISC_MAJOR_NR 10u
static bool chardev_is(dev_t rdev, const char *driver)
{
	bool misc = major(rdev) == MISC_MAJOR_NR, section = misc, found = false;
	FILE *f = fopen(misc ? "/proc/misc" : "/proc/devices", "re");
	char line[128], name[64];
	unsigned num;

	while (f && !found && fgets(line, sizeof(line), f)) {
		if (!misc && strncmp(line, "Character devices:", 18) == 0)
			section = true;
		else if (!misc && strncmp(line, "Block devices:", 14) == 0)
			section = false;
		else if (section && sscanf(line, "%u %63s", &num, name) == 2)
			found = num == (misc ? minor(rdev) : major(rdev)) &&
				strcmp(name, driver) == 0;
	}
	if (f)
		fclose(f);
	return found;
}

static int check_driver(int r, const struct stat *st, const char *driver)
{
	if (r < 0)
		return r;
	return chardev_is(st->st_rdev, driver) ? 0 : -EMEDIUMTYPE;
}

static int check_anon(int fd, const char *name)
{
	char link[PATH_MAX];
	int r = fd_link(fd, link, sizeof(link));

	if (r < 0)
		return r;
	return strcmp(link, name) == 0 ? 0 : -EMEDIUMTYPE;
}

/*
 * The devices of the kernel's internal shmem and hugetlbfs mounts, where every
 * memfd lives and no mounted tmpfs (such as /dev/shm) does.  Learnt once from
 * probe memfds; 0 when a probe failed (then the /proc link decides).
 */
static dev_t memfd_dev[2];
static pthread_once_t memfd_dev_once = PTHREAD_ONCE_INIT;

static void memfd_dev_probe(void)
{
	static const unsigned flags[2] = { MFD_CLOEXEC, MFD_CLOEXEC | MFD_HUGETLB };

	for (int i = 0; i < 2; i++) {
		struct stat st;
		int fd = memfd_create("cpr-probe", flags[i]);
		if (fd >= 0 && fstat(fd, &st) == 0)
			memfd_dev[i] = st.st_dev;
		cpr_close(fd);
	}
}

/* A memfd is a regular file on the internal shmem or hugetlbfs mount.
 * Checked by device number: no path lookup or extra call per fd.  Should a
 * probe have failed, F_GET_SEALS and the /proc link decide instead. */
static int check_memfd(int fd, const struct stat *st)
{
	char link[PATH_MAX];
	int r;

	if (!S_ISREG(st->st_mode))
		return -EMEDIUMTYPE;
	pthread_once(&memfd_dev_once, memfd_dev_probe);
	/* Only memfds live on those mounts: the device alone decides, with no
	 * further system call per fd. */
	if (st->st_dev && (st->st_dev == memfd_dev[0] || st->st_dev == memfd_dev[1]))
		return 0;
	if ((memfd_dev[0] && memfd_dev[1]) || fcntl(fd, F_GET_SEALS) < 0)
		return -EMEDIUMTYPE;
	r = fd_link(fd, link, sizeof(link));
	if (r < 0)
		return r;
	return strncmp(link, "/memfd:", 7) == 0 ? 0 : -EMEDIUMTYPE;
}

CPR_EXPORT int cpr_fd_check_kind(int fd, enum cpr_fd_kind kind)
{
	struct stat st;

	if (fd < 0)
		return -EBADF;
	if (kind < CPR_FD_GENERIC || kind > CPR_FD_KIND_MAX)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	switch (kind) {
	case CPR_FD_GENERIC:
		return 0;
	case CPR_FD_MEMFD:
		return check_memfd(fd, &st);
	case CPR_FD_EVENTFD:
		return check_anon(fd, "anon_inode:[eventfd]");
	case CPR_FD_GUEST_MEMFD:
		return check_anon(fd, "anon_inode:[kvm-gmem]");
	case CPR_FD_SOCKET:
		return S_ISSOCK(st.st_mode) ? 0 : -EMEDIUMTYPE;
	/* the node's name, then its driver by device number */
	case CPR_FD_VFIO_CDEV:
		return check_driver(check_chardev(fd, &st, NULL, "/dev/vfio/devices/vfio"), &st,
				    "vfio-dev");
	case CPR_FD_VFIO_GROUP:
		if (check_chardev(fd, &st, "/dev/vfio/vfio", NULL) == 0)
			return -EMEDIUMTYPE;
		return check_driver(check_chardev(fd, &st, NULL, "/dev/vfio/"), &st, "vfio");
	case CPR_FD_VFIO_CONTAINER:
		return check_driver(check_chardev(fd, &st, "/dev/vfio/vfio", NULL), &st, "vfio");
	case CPR_FD_IOMMUFD:
		return check_driver(check_chardev(fd, &st, "/dev/iommu", NULL), &st, "iommu");
	}
	return -EINVAL;
}

static int check_kind_logged(struct cpr_ctx *ctx, int fd, uint32_t kind, const char *name,
			     int32_t id)
{
	char q[80];
	int r = cpr_fd_check_kind(fd, (enum cpr_fd_kind)kind);

	if (r == -EMEDIUMTYPE)
		ctx_log(ctx, LOG_ERR, "cpr: fd %d for \"%s\" id %d is not a %s", fd,
			cpr_quote(q, sizeof(q), name, strlen(name)), id,
			cpr_fd_kind_to_string(kind));
	else if (r < 0)
		ctx_log(ctx, LOG_ERR, "cpr: fd %d for \"%s\" id %d: %s", fd,
			cpr_quote(q, sizeof(q), name, strlen(name)), id, strerror(-r));
	return r;
}

/* The rules of cpr-state(5): what the stream could not carry is refused now,
 * not at the next upgrade. */
static bool name_ok(const char *name)
{
	return name && state_name_valid(name, NULL);
}

static void fd_identity(int fd, uint64_t *ret_dev, uint64_t *ret_ino)
{
	struct stat st;

	if (fstat(fd, &st) == 0) {
		*ret_dev = (uint64_t)st.st_dev;
		*ret_ino = (uint64_t)st.st_ino;
	}
}

int fdreg_verify(struct cpr_ctx *ctx, struct cpr_error *ret_err)
{
	for (size_t i = 0; i < ctx->n_fds; i++) {
		const struct cpr_fd_entry *e = &ctx->fds[i];
		uint64_t dev = 0, ino = 0;

		if (!e->dev && !e->ino)
			continue;
		fd_identity(e->fd, &dev, &ino);
		if (dev == e->dev && ino == e->ino)
			continue;
		cpr_error_set(ret_err, -EBADF, CPR_REC_FD, (uint32_t)i, UINT64_MAX,
			      "fd %d, saved as \"%s\" id %d, is %s: it was closed behind the "
			      "registry%s",
			      e->fd, e->name, e->id, dev || ino ? "another file now" : "not open",
			      dev || ino ? " and its number reused" : "");
		return -EBADF;
	}
	return 0;
}

CPR_EXPORT int cpr_fd_save(struct cpr_ctx *ctx, const char *name, int32_t id, int fd,
			   enum cpr_fd_kind kind)
{
	struct cpr_fd_entry e;
	char *copy;
	int r;

	if (!ctx || !name_ok(name) || id == -1)
		return -EINVAL;
	if (kind < CPR_FD_GENERIC || kind > CPR_FD_KIND_MAX)
		return -EINVAL;
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	if (fdreg_lookup(ctx, name, id)) {
		ctx_log(ctx, LOG_ERR, "cpr: an fd is already saved as \"%s\" id %d", name, id);
		return -EEXIST;
	}
	if (fdreg_fd_in_use(ctx, fd)) {
		ctx_log(ctx, LOG_ERR, "cpr: fd %d is already preserved under another key", fd);
		return -EEXIST;
	}
	r = check_kind_logged(ctx, fd, kind, name, id);
	if (r < 0)
		return r;
	if (ctx->n_fds + ctx->n_rbs >= CPR_FDS_MAX)
		return -E2BIG;
	r = fdreg_reserve(ctx, 1, false);
	if (r < 0)
		return r;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	e = (struct cpr_fd_entry){ .name = copy, .id = id, .kind = kind, .fd = fd };
	fd_identity(fd, &e.dev, &e.ino);
	fdreg_append(ctx, &e);
	return 0;
}

CPR_EXPORT int cpr_fd_find(struct cpr_ctx *ctx, const char *name, int32_t id, enum cpr_fd_kind kind,
			   int *ret_fd)
{
	struct cpr_fd_entry *e;

	if (!ctx || !name_ok(name) || id == -1 || !ret_fd)
		return -EINVAL;
	if ((int)kind < 0 || kind > CPR_FD_KIND_MAX)
		return -EINVAL;
	e = fdreg_lookup(ctx, name, id);
	if (!e)
		return -ENOENT;
	if (kind && e->kind != kind) {
		ctx_log(ctx, LOG_ERR, "cpr: \"%s\" id %d is a %s, not a %s", name, id,
			cpr_fd_kind_to_string(e->kind), cpr_fd_kind_to_string(kind));
		return -EMEDIUMTYPE;
	}
	e->owned = false; /* claimed: the caller owns it now */
	*ret_fd = e->fd;
	teardown_release_if_adopted(ctx);
	return 0;
}

CPR_EXPORT int cpr_fd_delete(struct cpr_ctx *ctx, const char *name, int32_t id)
{
	struct cpr_fd_entry *e;

	if (!ctx || !name_ok(name) || id == -1)
		return -EINVAL;
	e = fdreg_lookup(ctx, name, id);
	if (!e)
		return -ENOENT;
	if (e->owned)
		cpr_close(e->fd);
	fdreg_remove(ctx, e);
	teardown_release_if_adopted(ctx);
	return 0;
}

CPR_EXPORT int cpr_fd_unclaimed(struct cpr_ctx *ctx, cpr_fd_report_fn fn, void *userdata)
{
	int n = 0;

	if (!ctx)
		return -EINVAL;
	for (size_t i = 0; i < ctx->n_fds; i++) {
		struct cpr_fd_entry *e = &ctx->fds[i];

		if (!e->owned)
			continue;
		if (fn)
			fn(userdata, e->name, e->id, (enum cpr_fd_kind)e->kind, e->fd);
		n++;
	}
	return n;
}

CPR_EXPORT int cpr_fd_close_unclaimed(struct cpr_ctx *ctx)
{
	size_t kept = 0;
	int n = 0;

	if (!ctx)
		return -EINVAL;
	/* One pass that keeps the claimed entries in order: their index
	 * slots stay valid, the closed ones' go stale. */
	for (size_t i = 0; i < ctx->n_fds; i++) {
		struct cpr_fd_entry *e = &ctx->fds[i];

		if (!e->owned) {
			ctx->fds[kept++] = *e;
			continue;
		}
		ctx_log(ctx, LOG_INFO, "cpr: closing unclaimed %s \"%s\" id %d (fd %d)",
			cpr_fd_kind_to_string(e->kind), e->name, e->id, e->fd);
		cpr_close(e->fd);
		entry_free_name(e);
		n++;
	}
	ctx->n_fds = kept;
	teardown_release_if_adopted(ctx);
	return n;
}

/* ---- adopting an incoming state ---- */

int ctx_adopt_check_fd(struct cpr_ctx *ctx, const struct cpr_state *st, size_t i, int fd,
		       struct cpr_error *ret_err)
{
	const struct cpr_state_fd *rec = cpr_state_fd_get(st, i);
	char q[80];
	int r;

	if (fdreg_lookup(ctx, rec->name, rec->id)) {
		cpr_error_set(ret_err, -EEXIST, CPR_REC_FD, (uint32_t)i, UINT64_MAX,
			      "incoming fd \"%s\" id %d is already registered here",
			      cpr_quote(q, sizeof(q), rec->name, strlen(rec->name)), rec->id);
		return -EEXIST;
	}
	r = check_kind_logged(ctx, fd, rec->kind, rec->name, rec->id);
	if (r < 0) {
		cpr_error_set(ret_err, r == -EMEDIUMTYPE ? r : -EBADF, CPR_REC_FD, (uint32_t)i,
			      UINT64_MAX, "incoming fd %d for \"%s\" id %d is not a %s", fd,
			      cpr_quote(q, sizeof(q), rec->name, strlen(rec->name)), rec->id,
			      cpr_fd_kind_to_string(rec->kind));
		return r == -EMEDIUMTYPE ? r : -EBADF;
	}
	return 0;
}

static int adopt_check_fds(struct cpr_ctx *ctx, const struct cpr_state *st, const int *fds,
			   size_t n, struct cpr_error *ret_err)
{
	for (size_t i = 0; i < n; i++) {
		int r = ctx_adopt_check_fd(ctx, st, i, fds[i], ret_err);

		if (r < 0)
			return r;
	}
	return 0;
}

static int adopt_check_ramblock(const struct cpr_state_ramblock *rb, size_t i, int fd,
				struct cpr_error *ret_err)
{
	bool want_huge = rb->must_flags & CPR_STATE_RB_HUGETLB;
	struct stat st;
	char q[80];

	cpr_quote(q, sizeof(q), rb->idstr, strlen(rb->idstr));
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < rb->fd_offset ||
	    rb->max_length > (uint64_t)st.st_size - rb->fd_offset) {
		cpr_error_set(ret_err, -EMEDIUMTYPE, CPR_REC_RAMBLOCK, (uint32_t)i, UINT64_MAX,
			      "RAM block \"%s\": memfd holds %lld bytes, the block needs %llu at "
			      "offset %llu",
			      q, (long long)st.st_size, (unsigned long long)rb->max_length,
			      (unsigned long long)rb->fd_offset);
		return -EMEDIUMTYPE;
	}
	if (((rb->used_length | rb->max_length | rb->fd_offset) &
	     ((want_huge ? HUGETLBFS_MAGIC_BLKSIZE : ctx_page_size()) - 1)) ||
	    !rb->used_length) {
		cpr_error_set(
			ret_err, -EBADMSG, CPR_REC_RAMBLOCK, (uint32_t)i, UINT64_MAX,
			"RAM block \"%s\": lengths and offset are not multiples of its %s pages", q,
			want_huge ? "2 MiB" : "base");
		return -EBADMSG;
	}
	if (want_huge != ((uint64_t)st.st_blksize == HUGETLBFS_MAGIC_BLKSIZE)) {
		cpr_error_set(
			ret_err, -EMEDIUMTYPE, CPR_REC_RAMBLOCK, (uint32_t)i, UINT64_MAX,
			"RAM block \"%s\": recorded page size %s, the memfd has %ld-byte pages", q,
			want_huge ? "2 MiB" : "base", (long)st.st_blksize);
		return -EMEDIUMTYPE;
	}
	return 0;
}

static int adopt_check_ramblocks(const struct cpr_state *st, const int *fds,
				 struct cpr_error *ret_err)
{
	size_t n = cpr_state_ramblock_count(st);

	for (size_t i = 0; i < n; i++) {
		const struct cpr_state_ramblock *rb = cpr_state_ramblock_get(st, i);
		const struct cpr_state_fd *f = cpr_state_fd_get(st, rb->fd_index);
		int r;

		if (!f || f->kind != CPR_FD_MEMFD) {
			cpr_error_set(ret_err, -EBADMSG, CPR_REC_RAMBLOCK, (uint32_t)i, UINT64_MAX,
				      "RAM block %zu refers to FD record %u, not a memfd", i,
				      rb->fd_index);
			return -EBADMSG;
		}
		r = adopt_check_ramblock(rb, i, fds[rb->fd_index], ret_err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int adopt_check(struct cpr_ctx *ctx, const struct cpr_state *st, const int *fds,
		       size_t n_fds, bool fds_checked, struct cpr_error *ret_err)
{
	struct cpr_state_info info;
	int r;

	if (ctx->incoming) {
		cpr_error_set(ret_err, -EALREADY, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "this context already adopted an incoming state");
		return -EALREADY;
	}
	r = cpr_state_get_info(st, &info);
	if (r < 0)
		return r;
	if (info.page_shift != ctx_page_shift()) {
		cpr_error_set(ret_err, -EMEDIUMTYPE, UINT32_MAX, UINT32_MAX, UINT64_MAX,
			      "the state was written with %llu-byte pages, this process has %llu",
			      1ull << (info.page_shift & 63), (unsigned long long)ctx_page_size());
		return -EMEDIUMTYPE;
	}
	if (n_fds != cpr_state_fd_count(st)) {
		cpr_error_set(ret_err, -EBADMSG, CPR_REC_FD, UINT32_MAX, UINT64_MAX,
			      "%zu fds for %zu FD records", n_fds, cpr_state_fd_count(st));
		return -EBADMSG;
	}
	if (!fds_checked) {
		r = adopt_check_fds(ctx, st, fds, n_fds, ret_err);
		if (r < 0)
			return r;
	}
	return adopt_check_ramblocks(st, fds, ret_err);
}

static int adopt(struct cpr_ctx *ctx, struct cpr_state *st, int *fds, size_t n_fds,
		 bool fds_checked, struct cpr_error *ret_err)
{
	struct cpr_state_info info;
	int r;

	if (!ctx || !st || (n_fds && !fds))
		return -EINVAL;
	r = adopt_check(ctx, st, fds, n_fds, fds_checked, ret_err);
	if (r < 0)
		return r;
	r = fdreg_reserve(ctx, n_fds, true);
	if (r < 0)
		return r;
	/* Nothing can fail from here on.  The names stay in the state's FD
	 * records, which the context keeps as long as its registry. */
	for (size_t i = 0; i < n_fds; i++) {
		const struct cpr_state_fd *rec = cpr_state_fd_get(st, i);

		struct cpr_fd_entry e = {
			.name = (char *)rec->name,
			.id = rec->id,
			.kind = rec->kind,
			.fd = fds[i],
			.owned = true,
			.incoming = true,
			.rec = (uint32_t)i,
		};

		fd_identity(fds[i], &e.dev, &e.ino);
		fdreg_append(ctx, &e);
	}
	ctx->incoming = st;
	if (cpr_state_get_info(st, &info) >= 0)
		/* A newer writer may have targeted a level this library cannot
		 * write: the sticky default is the newest level both know. */
		ctx->sticky_level =
			info.emit_level < CPR_LEVEL_MAX ? info.emit_level : CPR_LEVEL_MAX;
	return 0;
}

int ctx_adopt(struct cpr_ctx *ctx, struct cpr_state *st, int *fds, size_t n_fds,
	      struct cpr_error *ret_err)
{
	return adopt(ctx, st, fds, n_fds, false, ret_err);
}

int ctx_adopt_prechecked(struct cpr_ctx *ctx, struct cpr_state *st, int *fds, size_t n_fds,
			 struct cpr_error *ret_err)
{
	return adopt(ctx, st, fds, n_fds, true, ret_err);
}
