/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The registry of preserved fds, keyed by (name, id): its entries and hash
 * indexes, save and delete, and each entry's file identity.  The fd kinds
 * are in fdkind.c, taking the incoming fds in fdadopt.c. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "ctx.h"
#include "internal.h"
#include "stream.h"

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
void fdreg_entry_free_name(struct cpr_fd_entry *e)
{
	if (!e->incoming)
		free(e->name);
}

/* Keeps the order of the others: it is the order of the FD records.  Its
 * index slots go stale and are dropped at the next rebuild. */
void fdreg_remove(struct cpr_ctx *ctx, struct cpr_fd_entry *e)
{
	size_t i = (size_t)(e - ctx->fds);

	fdreg_entry_free_name(e);
	memmove(e, e + 1, (ctx->n_fds - i - 1) * sizeof(*e));
	ctx->n_fds--;
}

void fdreg_free_all(struct cpr_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_fds; i++) {
		if (ctx->fds[i].owned)
			cpr_close(ctx->fds[i].fd);
		fdreg_entry_free_name(&ctx->fds[i]);
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

/* The rules of cpr-state(5): what the stream could not carry is refused now,
 * not at the next upgrade. */
bool fdreg_name_ok(const char *name)
{
	return name && state_name_valid(name, NULL);
}

void fdreg_identity(int fd, uint64_t *ret_dev, uint64_t *ret_ino)
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
		fdreg_identity(e->fd, &dev, &ino);
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

/* Why fd @fd cannot be saved as (name, id) of @kind, or 0. */
static int fd_save_check(struct cpr_ctx *ctx, const char *name, int32_t id, int fd,
			 enum cpr_fd_kind kind, struct cpr_error *err)
{
	char q[80];
	int r;

	if (!ctx)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX, "fd save: ctx is NULL");
	if (!fdreg_name_ok(name) || id == -1 || kind < CPR_FD_GENERIC || kind > CPR_FD_KIND_MAX)
		return cpr_fail(err, -EINVAL, NO_TYPE, NO_INST, UINT64_MAX,
				"fd %d: the name, id %d or kind %d is not valid", fd, id,
				(int)kind);
	cpr_quote(q, sizeof(q), name, strlen(name));
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return cpr_fail(err, -EBADF, NO_TYPE, NO_INST, UINT64_MAX,
				"fd %d for '%s' id %d is not open", fd, q, id);
	if (fdreg_lookup(ctx, name, id)) {
		ctx_log(ctx, LOG_ERR, "cpr: an fd is already saved as \"%s\" id %d", q, id);
		return cpr_fail(err, -EEXIST, NO_TYPE, NO_INST, UINT64_MAX,
				"fd %d: an fd is already saved as '%s' id %d", fd, q, id);
	}
	if (fdreg_fd_in_use(ctx, fd)) {
		ctx_log(ctx, LOG_ERR, "cpr: fd %d is already preserved under another key", fd);
		return cpr_fail(err, -EEXIST, NO_TYPE, NO_INST, UINT64_MAX,
				"fd %d for '%s' id %d is already preserved under another key", fd,
				q, id);
	}
	r = fdkind_check_logged(ctx, fd, kind, name, id);
	if (r == -EMEDIUMTYPE)
		return cpr_fail(err, r, NO_TYPE, NO_INST, UINT64_MAX,
				"fd %d for '%s' id %d is not a %s", fd, q, id,
				cpr_fd_kind_to_string(kind));
	if (r < 0)
		return cpr_fail(err, r, NO_TYPE, NO_INST, UINT64_MAX, "fd %d for '%s' id %d: %s",
				fd, q, id, strerror(-r));
	if (ctx->n_fds + ctx->n_rbs >= CPR_FDS_MAX)
		return cpr_fail(err, -E2BIG, NO_TYPE, NO_INST, UINT64_MAX,
				"fd %d for '%s' id %d: the registry holds CPR_FDS_MAX fds and "
				"RAM blocks",
				fd, q, id);
	return 0;
}

static int fd_save(struct cpr_ctx *ctx, const char *name, int32_t id, int fd, enum cpr_fd_kind kind,
		   struct cpr_error *err)
{
	struct cpr_fd_entry e;
	char *copy;
	int r = fd_save_check(ctx, name, id, fd, kind, err);

	if (r < 0)
		return r;
	r = fdreg_reserve(ctx, 1, false);
	if (r < 0)
		return r;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	e = (struct cpr_fd_entry){ .name = copy, .id = id, .kind = kind, .fd = fd };
	fdreg_identity(fd, &e.dev, &e.ino);
	fdreg_append(ctx, &e);
	return 0;
}

/* cpr_fd_save(3) ERRORS of cpr_fd_save(). */
static const int fd_save_errnos[] = { EINVAL, EBADF, EEXIST, EMEDIUMTYPE, E2BIG, ENOMEM, 0 };

CPR_EXPORT int cpr_fd_save(struct cpr_ctx *ctx, const char *name, int32_t id, int fd,
			   enum cpr_fd_kind kind, struct cpr_error *ret_err)
{
	struct cpr_error e = CPR_ERROR_INIT;

	return cpr_error_finish(fd_save(ctx, name, id, fd, kind, &e), &e, ret_err, fd_save_errnos,
				-EIO);
}

CPR_EXPORT int cpr_fd_delete(struct cpr_ctx *ctx, const char *name, int32_t id)
{
	struct cpr_fd_entry *e;

	if (!ctx || !fdreg_name_ok(name) || id == -1)
		return -EINVAL;
	e = fdreg_lookup(ctx, name, id);
	if (!e)
		return -ENOENT;
	if (e->owned)
		cpr_close(e->fd);
	fdreg_remove(ctx, e);
	fdreg_release_if_adopted(ctx);
	return 0;
}

/* Release once no preserved RAM block waits for adoption: that closes the
 * rollback window too. */
void fdreg_release_if_adopted(struct cpr_ctx *ctx)
{
	size_t n;

	if (ctx->release_fd < 0 && ctx->rbw.state_fd < 0)
		return;
	n = ctx->incoming ? cpr_state_ramblock_count(ctx->incoming) : 0;
	for (size_t i = 0; i < n; i++) {
		const struct cpr_state_ramblock *rb = cpr_state_ramblock_get(ctx->incoming, i);
		struct cpr_fd_entry *e = fdreg_lookup_rec(ctx, rb->fd_index);

		if (e && e->owned)
			return;
	}
	teardown_release(ctx);
	rollback_window_close(ctx);
}
