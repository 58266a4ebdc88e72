/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The in-memory state: what a VMM records about its RAM blocks and preserved
 * fds, plus its own private records.  Pure data; the writer is encode.c and
 * the reader is parse.c.
 */
#include <stdio.h>

#include "cpr/state.h"
#include "internal.h"
#include "stream.h"

/*
 * Open-addressing hash index of entry numbers (stored +1; 0 = empty slot),
 * kept at most half full, so find and add stay O(1) at CPR_FDS_MAX entries.
 */
struct index {
	uint32_t *slots;
	size_t cap;
};

struct cpr_state {
	struct cpr_state_info info;
	struct cpr_state_fd *fds;
	size_t n_fds, cap_fds;
	struct cpr_state_ramblock *rbs;
	size_t n_rbs, cap_rbs;
	struct cpr_state_private *priv;
	size_t n_priv, cap_priv;
	struct index fd_index; /* (name, id) -> fds[] */
	struct index rb_index; /* idstr -> rbs[] */
};

/* Eight bytes per step: names are long enough for a byte loop to dominate. */
static uint32_t hash_name(const char *s, uint32_t salt)
{
	size_t n = strlen(s);
	uint64_t h = 0x9e3779b97f4a7c15ull ^ salt ^ ((uint64_t)n << 32), w;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, s, n);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 29;
	return (uint32_t)((h * 0x9e3779b97f4a7c15ull) >> 32);
}

static const char *entry_name(const struct cpr_state *st, bool fd, size_t i)
{
	return fd ? st->fds[i].name : st->rbs[i].idstr;
}

/* The entry with this key (>= 0), or -1 - the empty slot where it would go. */
static long index_probe(const struct cpr_state *st, bool fd, const char *name, int32_t id)
{
	const struct index *ix = fd ? &st->fd_index : &st->rb_index;
	size_t mask = ix->cap - 1, h;

	for (h = hash_name(name, fd ? (uint32_t)id : 0) & mask; ix->slots[h]; h = (h + 1) & mask) {
		size_t i = ix->slots[h] - 1;
		if ((!fd || st->fds[i].id == id) && strcmp(entry_name(st, fd, i), name) == 0)
			return (long)i;
	}
	return -1 - (long)h;
}

static int index_lookup(const struct cpr_state *st, bool fd, const char *name, int32_t id)
{
	const struct index *ix = fd ? &st->fd_index : &st->rb_index;
	long k;

	if (!ix->cap)
		return -ENOENT;
	k = index_probe(st, fd, name, id);
	return k >= 0 ? (int)k : -ENOENT;
}

static void index_put(struct cpr_state *st, bool fd, size_t i)
{
	struct index *ix = fd ? &st->fd_index : &st->rb_index;
	long k = index_probe(st, fd, entry_name(st, fd, i), fd ? st->fds[i].id : 0);

	ix->slots[-1 - k] = (uint32_t)i + 1;
}

static int index_resize(struct cpr_state *st, bool fd, size_t n, size_t cap)
{
	struct index *ix = fd ? &st->fd_index : &st->rb_index;
	uint32_t *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	free(ix->slots);
	ix->slots = slots;
	ix->cap = cap;
	for (size_t i = 0; i < n; i++)
		index_put(st, fd, i);
	return 0;
}

/* Index entry @n (already stored at the end of its array): -EEXIST if its
 * key is present, with one probe. */
static int index_add(struct cpr_state *st, bool fd, size_t n)
{
	struct index *ix = fd ? &st->fd_index : &st->rb_index;
	long k;

	if ((n + 1) * 2 > ix->cap) {
		int r = index_resize(st, fd, n, ix->cap ? ix->cap * 2 : 64);
		if (r < 0)
			return r;
	}
	k = index_probe(st, fd, entry_name(st, fd, n), fd ? st->fds[n].id : 0);
	if (k >= 0)
		return -EEXIST;
	ix->slots[-1 - k] = (uint32_t)n + 1;
	return 0;
}

const uint8_t cpr_magic[8] = { 0x89, 'C', 'P', 'R', 0x0d, 0x0a, 0x1a, 0x0a };

static int grow(void **array, size_t *cap, size_t n, size_t size, size_t max)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	if (n >= max)
		return -E2BIG;
	ncap = *cap ? *cap * 2 : 8;
	if (ncap > max)
		ncap = max;
	p = reallocarray(*array, ncap, size);
	if (!p)
		return -ENOMEM;
	*array = p;
	*cap = ncap;
	return 0;
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 64;

	while (p < n)
		p *= 2;
	return p;
}

/* Size arrays and indexes once for up to @n_fds / @n_rbs entries (the
 * reader's bound from the stream length), so parsing never reallocates. */
int state_reserve(struct cpr_state *st, size_t n_fds, size_t n_rbs)
{
	int k = 0;

	if (n_fds > st->cap_fds) {
		/* calloc: large fresh arrays come as zero pages, so entries built in
		 * place never show stale bytes after their strings. */
		void *p = st->fds ? reallocarray(st->fds, n_fds, sizeof(*st->fds))
				  : calloc(n_fds, sizeof(*st->fds));
		if (!p)
			return -ENOMEM;
		st->fds = p;
		st->cap_fds = n_fds;
		k = index_resize(st, true, st->n_fds, pow2_at_least(n_fds * 2 + 2));
	}
	if (k >= 0 && n_rbs > st->cap_rbs) {
		void *p = st->rbs ? reallocarray(st->rbs, n_rbs, sizeof(*st->rbs))
				  : calloc(n_rbs, sizeof(*st->rbs));
		if (!p)
			return -ENOMEM;
		st->rbs = p;
		st->cap_rbs = n_rbs;
		k = index_resize(st, false, st->n_rbs, pow2_at_least(n_rbs * 2 + 2));
	}
	return k;
}

CPR_EXPORT int cpr_state_new(struct cpr_state **ret_state)
{
	struct cpr_state *st;

	if (!ret_state)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->info.emit_level = CPR_LEVEL_MAX;
	st->info.producer_level = CPR_LEVEL_MAX;
	st->info.min_reader_level = CPR_LEVEL_MIN;
	st->info.page_shift = 12;
	st->info.libcpr_version = CPR_LIBCPR_VERSION;
	*ret_state = st;
	return 0;
}

CPR_EXPORT void cpr_state_free(struct cpr_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_priv; i++)
		free((void *)st->priv[i].data);
	free(st->priv);
	free(st->fd_index.slots);
	free(st->rb_index.slots);
	free(st->rbs);
	free(st->fds);
	free(st);
}

CPR_EXPORT int cpr_state_get_info(const struct cpr_state *st, struct cpr_state_info *ret_info)
{
	if (!st || !ret_info)
		return -EINVAL;
	*ret_info = st->info;
	return 0;
}

int state_set_info(struct cpr_state *st, const struct cpr_state_info *info)
{
	st->info = *info;
	return 0;
}

static bool producer_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

CPR_EXPORT int cpr_state_set_producer(struct cpr_state *st, const char *name, uint32_t vmm_version)
{
	size_t n;

	if (!st || !name)
		return -EINVAL;
	n = strlen(name);
	if (n > CPR_PRODUCER_MAX || !producer_valid(name, n))
		return -EINVAL;
	memcpy(st->info.producer, name, n + 1);
	st->info.vmm_version = vmm_version;
	return 0;
}

CPR_EXPORT int cpr_state_set_stream_id(struct cpr_state *st, const uint8_t id[16])
{
	if (!st || !id)
		return -EINVAL;
	memcpy(st->info.stream_id, id, 16);
	return 0;
}

CPR_EXPORT int cpr_state_set_generation(struct cpr_state *st, uint32_t generation)
{
	if (!st)
		return -EINVAL;
	st->info.generation = generation;
	return 0;
}

CPR_EXPORT int cpr_state_set_page_shift(struct cpr_state *st, uint32_t page_shift)
{
	if (!st || page_shift < 12 || page_shift > 30)
		return -EINVAL;
	st->info.page_shift = page_shift;
	return 0;
}

/* Names and idstrs: 1..CPR_NAME_MAX printable ASCII bytes, no space, quote or backslash. */
bool state_name_valid(const char *s, size_t *ret_len)
{
	size_t n = strnlen(s, CPR_NAME_MAX + 1);

	if (n == 0 || n > CPR_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\'' || c == '\\')
			return false;
	}
	if (ret_len)
		*ret_len = n;
	return true;
}

CPR_EXPORT int cpr_state_add_fd(struct cpr_state *st, const struct cpr_state_fd *fd)
{
	int r;

	if (!st || !fd || !state_name_valid(fd->name, NULL) || fd->kind == 0 ||
	    fd->kind > CPR_FD_KIND_MAX)
		return -EINVAL;
	r = state_append_fd(st, fd);
	return r < 0 ? r : (int)st->n_fds - 1;
}

CPR_EXPORT int cpr_state_add_ramblock(struct cpr_state *st, const struct cpr_state_ramblock *rb)
{
	int r;

	if (!st || !rb || !state_name_valid(rb->idstr, NULL))
		return -EINVAL;
	r = state_append_ramblock(st, rb);
	return r < 0 ? r : (int)st->n_rbs - 1;
}

int state_add_private_owned(struct cpr_state *st, uint32_t type, uint32_t instance, void *data,
			    size_t len)
{
	int r;

	if (cpr_state_private_find(st, type, instance, NULL, NULL) == 0)
		return -EEXIST;
	r = grow((void **)&st->priv, &st->cap_priv, st->n_priv, sizeof(*st->priv), CPR_PRIVATE_MAX);
	if (r < 0)
		return r;
	st->priv[st->n_priv++] = (struct cpr_state_private){
		.type = type,
		.instance = instance,
		.len = len,
		.data = data,
	};
	return 0;
}

CPR_EXPORT int cpr_state_add_private(struct cpr_state *st, uint32_t type, uint32_t instance,
				     const void *data, size_t len)
{
	_cleanup_free_ void *copy = NULL;
	int r;

	if (!st || (!data && len) || type < CPR_REC_PRIVATE_FIRST || type > CPR_REC_PRIVATE_LAST)
		return -EINVAL;
	if (len > CPR_RECORD_MAX)
		return -E2BIG;
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	r = state_add_private_owned(st, type, instance, copy, len);
	if (r < 0)
		return r;
	TAKE_PTR(copy);
	return 0;
}

CPR_EXPORT size_t cpr_state_fd_count(const struct cpr_state *st)
{
	return st ? st->n_fds : 0;
}

CPR_EXPORT const struct cpr_state_fd *cpr_state_fd_get(const struct cpr_state *st, size_t index)
{
	return st && index < st->n_fds ? &st->fds[index] : NULL;
}

CPR_EXPORT int cpr_state_fd_find(const struct cpr_state *st, const char *name, int32_t id)
{
	if (!st || !name)
		return -EINVAL;
	return index_lookup(st, true, name, id);
}

CPR_EXPORT size_t cpr_state_ramblock_count(const struct cpr_state *st)
{
	return st ? st->n_rbs : 0;
}

CPR_EXPORT const struct cpr_state_ramblock *cpr_state_ramblock_get(const struct cpr_state *st,
								   size_t index)
{
	return st && index < st->n_rbs ? &st->rbs[index] : NULL;
}

CPR_EXPORT int cpr_state_ramblock_find(const struct cpr_state *st, const char *idstr)
{
	if (!st || !idstr)
		return -EINVAL;
	return index_lookup(st, false, idstr, 0);
}

CPR_EXPORT size_t cpr_state_private_count(const struct cpr_state *st)
{
	return st ? st->n_priv : 0;
}

CPR_EXPORT const struct cpr_state_private *cpr_state_private_get(const struct cpr_state *st,
								 size_t index)
{
	return st && index < st->n_priv ? &st->priv[index] : NULL;
}

CPR_EXPORT int cpr_state_private_find(const struct cpr_state *st, uint32_t type, uint32_t instance,
				      const void **ret_data, size_t *ret_len)
{
	if (!st)
		return -EINVAL;
	for (size_t i = 0; i < st->n_priv; i++) {
		if (st->priv[i].type != type || st->priv[i].instance != instance)
			continue;
		if (ret_data)
			*ret_data = st->priv[i].data;
		if (ret_len)
			*ret_len = st->priv[i].len;
		return 0;
	}
	return -ENOENT;
}

/*
 * Appending is two steps so the reader can build an entry in place: *_next()
 * makes room and returns the slot after the last entry, *_commit() indexes it
 * and makes it part of the state (-EEXIST for a duplicate key).
 */
struct cpr_state_fd *state_next_fd(struct cpr_state *st, int *ret_err)
{
	int r = grow((void **)&st->fds, &st->cap_fds, st->n_fds, sizeof(*st->fds), CPR_FDS_MAX);

	if (r < 0) {
		*ret_err = r;
		return NULL;
	}
	return &st->fds[st->n_fds];
}

int state_commit_fd(struct cpr_state *st)
{
	int r = index_add(st, true, st->n_fds);

	if (r < 0)
		return r;
	st->n_fds++;
	return 0;
}

struct cpr_state_ramblock *state_next_ramblock(struct cpr_state *st, int *ret_err)
{
	int r = grow((void **)&st->rbs, &st->cap_rbs, st->n_rbs, sizeof(*st->rbs),
		     CPR_RAMBLOCKS_MAX);

	if (r < 0) {
		*ret_err = r;
		return NULL;
	}
	return &st->rbs[st->n_rbs];
}

int state_commit_ramblock(struct cpr_state *st)
{
	int r = index_add(st, false, st->n_rbs);

	if (r < 0)
		return r;
	st->n_rbs++;
	return 0;
}

int state_append_fd(struct cpr_state *st, const struct cpr_state_fd *fd)
{
	int r = 0;
	struct cpr_state_fd *slot = state_next_fd(st, &r);

	if (!slot)
		return r;
	*slot = *fd;
	return state_commit_fd(st);
}

int state_append_ramblock(struct cpr_state *st, const struct cpr_state_ramblock *rb)
{
	int r = 0;
	struct cpr_state_ramblock *slot = state_next_ramblock(st, &r);

	if (!slot)
		return r;
	*slot = *rb;
	return state_commit_ramblock(st);
}
