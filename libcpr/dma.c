/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * DMA mappings of RAM blocks that survive cpr-exec and cpr-transfer.
 *
 * iommufd: the block is mapped by file (IOMMU_IOAS_MAP_FILE: memfd and
 * offset), so the mapping does not depend on this process's addresses and
 * nothing is done before the hand-off; the adopting process takes the pinned
 * pages' accounting over with IOMMU_IOAS_CHANGE_PROCESS.
 * VFIO type1: right before the fds leave, each mapping's virtual address is
 * invalidated (VFIO_DMA_UNMAP_FLAG_VADDR); the adopting process registers its
 * own (VFIO_DMA_MAP_FLAG_VADDR); a failed hand-off registers ours again.
 *
 * The mappings travel in libcpr's private record CPR_REC_DMA, one per
 * mapping, naming the block by idstr and the iommufd or container by its
 * registry key (name, id).  Layout (little-endian):
 *
 *     0 u32 version (1)    4 u32 kind      8 u32 ioas_id   12 u32 flags
 *    16 u64 iova          24 u64 offset   32 u64 length
 *    40 s32 fd id         44 u16 idstr length, 46 u16 fd name length
 *    48 idstr, then the fd name (no NUL)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <syslog.h>
#include <unistd.h>

#include "ctx.h"
#include "dma-uapi.h"
#include "internal.h"

#define DMA_REC_VERSION 1u
#define DMA_REC_FIXED 48u
#define DMA_PER_BLOCK_MAX 64u
#define DMA_FLAGS_ALL (CPR_DMA_READ | CPR_DMA_WRITE)

static const struct cpr_fd_entry *entry_of_fd(struct cpr_ctx *ctx, int fd)
{
	for (size_t i = 0; i < ctx->n_fds; i++)
		if (ctx->fds[i].fd == fd)
			return &ctx->fds[i];
	return NULL;
}

/* ---- the kernel calls ---- */

static int type1_map(const struct cpr_ramblock *rb, const struct cpr_dma *d, bool vaddr)
{
	struct cpr_vfio_dma_map m = {
		.argsz = sizeof(m),
		.vaddr = (uint64_t)(uintptr_t)(rb->host + d->offset),
		.iova = d->iova,
		.size = d->length,
	};

	if (vaddr)
		m.flags = CPR_VFIO_DMA_MAP_FLAG_VADDR;
	else
		m.flags = (d->flags & CPR_DMA_READ ? CPR_VFIO_DMA_MAP_FLAG_READ : 0) |
			  (d->flags & CPR_DMA_WRITE ? CPR_VFIO_DMA_MAP_FLAG_WRITE : 0);
	return ioctl(d->fd, CPR_VFIO_IOMMU_MAP_DMA, &m) < 0 ? -errno : 0;
}

static int type1_unmap(const struct cpr_dma *d, bool vaddr)
{
	struct cpr_vfio_dma_unmap u = {
		.argsz = sizeof(u),
		.flags = vaddr ? CPR_VFIO_DMA_UNMAP_FLAG_VADDR : 0,
		.iova = d->iova,
		.size = d->length,
	};

	return ioctl(d->fd, CPR_VFIO_IOMMU_UNMAP_DMA, &u) < 0 ? -errno : 0;
}

/* Register this process's address; a mapping whose address is still valid
 * (the previous owner did not invalidate it) is invalidated first. */
static int type1_take(const struct cpr_ramblock *rb, struct cpr_dma *d)
{
	int r = type1_map(rb, d, true);

	if (r == -EINVAL && type1_unmap(d, true) == 0)
		r = type1_map(rb, d, true);
	if (r == 0)
		d->vaddr_invalid = false;
	return r;
}

static unsigned iommufd_map_flags(const struct cpr_dma *d)
{
	return CPR_IOMMU_IOAS_MAP_FIXED_IOVA |
	       (d->flags & CPR_DMA_READ ? CPR_IOMMU_IOAS_MAP_READABLE : 0) |
	       (d->flags & CPR_DMA_WRITE ? CPR_IOMMU_IOAS_MAP_WRITEABLE : 0);
}

/* By file; 1 when the kernel lacks IOMMU_IOAS_MAP_FILE and the block was
 * mapped by address instead (then it cannot be handed off). */
static int iommufd_map(const struct cpr_ramblock *rb, const struct cpr_dma *d)
{
	struct cpr_iommu_ioas_map_file mf = {
		.size = sizeof(mf),
		.flags = iommufd_map_flags(d),
		.ioas_id = d->ioas_id,
		.fd = rb->fd,
		.start = rb->fd_offset + d->offset,
		.length = d->length,
		.iova = d->iova,
	};
	struct cpr_iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = mf.flags,
		.ioas_id = d->ioas_id,
		.user_va = (uint64_t)(uintptr_t)(rb->host + d->offset),
		.length = d->length,
		.iova = d->iova,
	};

	if (ioctl(d->fd, CPR_IOMMU_IOAS_MAP_FILE, &mf) == 0)
		return 0;
	if (errno != ENOTTY)
		return -errno;
	return ioctl(d->fd, CPR_IOMMU_IOAS_MAP, &m) < 0 ? -errno : 1;
}

static int iommufd_unmap(const struct cpr_dma *d)
{
	struct cpr_iommu_ioas_unmap u = {
		.size = sizeof(u), .ioas_id = d->ioas_id, .iova = d->iova, .length = d->length
	};

	return ioctl(d->fd, CPR_IOMMU_IOAS_UNMAP, &u) < 0 ? -errno : 0;
}

static int change_process(int iommufd)
{
	struct cpr_iommu_ioas_change_process cp = { .size = sizeof(cp) };

	return ioctl(iommufd, CPR_IOMMU_IOAS_CHANGE_PROCESS, &cp) < 0 ? -errno : 0;
}

/* ---- blockers for what this kernel cannot carry ---- */

static void dma_block(struct cpr_ramblock *rb, struct cpr_dma *d, unsigned modes,
		      const char *missing, const char *what)
{
	char reason[256];

	snprintf(reason, sizeof(reason),
		 "RAM block \"%.64s\" is mapped for DMA at IOVA %#" PRIx64 ", but %s lacks %s, "
		 "needed to %s",
		 rb->idstr, d->iova, d->kind == CPR_FD_IOMMUFD ? "iommufd" : "the VFIO container",
		 missing, what);
	if (cpr_blocker_add(rb->ctx, modes, reason, &d->blocker, NULL) < 0)
		d->blocker = 0;
	ctx_log(rb->ctx, LOG_WARNING, "cpr: %s", reason);
}

/* @by_address: iommufd_map() had to map by address. */
static void dma_check_kernel(struct cpr_ramblock *rb, struct cpr_dma *d, bool by_address)
{
	bool map_file = true, change = true;

	if (d->kind == CPR_FD_VFIO_CONTAINER) {
		if (ioctl(d->fd, CPR_VFIO_CHECK_EXTENSION, CPR_VFIO_UPDATE_VADDR) <= 0)
			dma_block(rb, d, CPR_MODES_ALL, "VFIO_UPDATE_VADDR",
				  "re-register the mapping in the new process (Linux 5.12; "
				  "refused with mdev groups)");
		return;
	}
	if (by_address || (probe_iommufd_calls(&map_file, &change) == 0 && !map_file))
		dma_block(rb, d, CPR_MODES_ALL, "IOMMU_IOAS_MAP_FILE (Linux 6.13)",
			  "map it by memfd rather than by address");
	else if (!change)
		dma_block(rb, d, CPR_MODE_TRANSFER, "IOMMU_IOAS_CHANGE_PROCESS (Linux 6.13)",
			  "move its pinned pages to another process");
}

/* ---- the API ---- */

static struct cpr_dma *dma_find(struct cpr_ramblock *rb, int fd, uint64_t iova)
{
	for (size_t i = 0; i < rb->n_dma; i++)
		if (rb->dma[i].fd == fd && rb->dma[i].iova == iova)
			return &rb->dma[i];
	return NULL;
}

static int dma_append(struct cpr_ramblock *rb, const struct cpr_dma *d)
{
	struct cpr_dma *n;

	if (rb->n_dma >= DMA_PER_BLOCK_MAX)
		return -E2BIG;
	n = reallocarray(rb->dma, rb->n_dma + 1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	rb->dma = n;
	rb->dma[rb->n_dma++] = *d;
	return 0;
}

static int dma_kernel_map(struct cpr_ramblock *rb, struct cpr_dma *d)
{
	int r;

	if (d->kind == CPR_FD_VFIO_CONTAINER) {
		r = type1_map(rb, d, false);
		if (r == 0)
			dma_check_kernel(rb, d, false);
		return r;
	}
	r = iommufd_map(rb, d);
	if (r >= 0)
		dma_check_kernel(rb, d, r == 1);
	return r < 0 ? r : 0;
}

CPR_EXPORT int cpr_ramblock_dma_map(struct cpr_ramblock *rb, int fd, uint32_t ioas_id,
				    uint64_t iova, unsigned flags)
{
	const struct cpr_fd_entry *e;
	struct cpr_dma d;
	int r;

	if (!rb || !flags || (flags & ~DMA_FLAGS_ALL) || iova % rb->page_size)
		return -EINVAL;
	if (fd < 0 || !(e = entry_of_fd(rb->ctx, fd)))
		return -EBADF;
	if (e->kind != CPR_FD_IOMMUFD && e->kind != CPR_FD_VFIO_CONTAINER)
		return -EMEDIUMTYPE;
	if ((e->kind == CPR_FD_VFIO_CONTAINER) != (ioas_id == 0))
		return -EINVAL;
	if (dma_find(rb, fd, iova))
		return -EEXIST;
	if (rb->n_dma >= DMA_PER_BLOCK_MAX)
		return -E2BIG;
	d = (struct cpr_dma){ .fd = fd,
			      .kind = e->kind,
			      .ioas_id = ioas_id,
			      .flags = flags,
			      .iova = iova,
			      .length = rb->used_length };
	r = dma_kernel_map(rb, &d);
	if (r < 0)
		return r;
	r = dma_append(rb, &d);
	if (r < 0) {
		if (d.blocker)
			cpr_blocker_remove(rb->ctx, d.blocker);
		if (d.kind == CPR_FD_VFIO_CONTAINER)
			type1_unmap(&d, false);
		else
			iommufd_unmap(&d);
	}
	return r;
}

CPR_EXPORT int cpr_ramblock_dma_unmap(struct cpr_ramblock *rb, int fd, uint64_t iova)
{
	struct cpr_dma *d;
	int r;

	if (!rb)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	d = dma_find(rb, fd, iova);
	if (!d)
		return -ENOENT;
	r = d->kind == CPR_FD_VFIO_CONTAINER ? type1_unmap(d, false) : iommufd_unmap(d);
	if (r < 0)
		return r;
	if (d->blocker)
		cpr_blocker_remove(rb->ctx, d->blocker);
	*d = rb->dma[--rb->n_dma];
	return 0;
}

CPR_EXPORT int cpr_ramblock_dma_count(const struct cpr_ramblock *rb)
{
	return rb ? (int)rb->n_dma : -EINVAL;
}

void dma_forget(struct cpr_ramblock *rb)
{
	for (size_t i = 0; i < rb->n_dma; i++)
		if (rb->dma[i].blocker)
			cpr_blocker_remove(rb->ctx, rb->dma[i].blocker);
	free(rb->dma);
	rb->dma = NULL;
	rb->n_dma = 0;
}

/* ---- records ---- */

/* One mapping as a record, the fd named by its registry key. */
static int add_record(struct cpr_state *st, uint32_t instance, const char *idstr,
		      const struct cpr_dma *d, const char *name, int32_t id)
{
	size_t il = strlen(idstr), nl = strlen(name);
	uint8_t buf[DMA_REC_FIXED + 2 * CPR_NAME_MAX] = { 0 };

	le32_store(buf, DMA_REC_VERSION);
	le32_store(buf + 4, d->kind);
	le32_store(buf + 8, d->ioas_id);
	le32_store(buf + 12, d->flags);
	le64_store(buf + 16, d->iova);
	le64_store(buf + 24, d->offset);
	le64_store(buf + 32, d->length);
	le32_store(buf + 40, (uint32_t)id);
	le16_store(buf + 44, (uint16_t)il);
	le16_store(buf + 46, (uint16_t)nl);
	memcpy(buf + DMA_REC_FIXED, idstr, il);
	memcpy(buf + DMA_REC_FIXED + il, name, nl);
	return cpr_state_add_private(st, CPR_REC_DMA, instance, buf, DMA_REC_FIXED + il + nl);
}

struct dma_rec {
	struct cpr_dma d;
	char idstr[CPR_NAME_MAX + 1];
	char name[CPR_NAME_MAX + 1];
	int32_t id;
};

static int parse_record(const struct cpr_state_private *p, struct dma_rec *ret)
{
	const uint8_t *b = p->data;
	size_t il, nl;

	if (p->len < DMA_REC_FIXED || le32_load(b) != DMA_REC_VERSION)
		return -EBADMSG;
	il = le16_load(b + 44);
	nl = le16_load(b + 46);
	if (!il || !nl || il > CPR_NAME_MAX || nl > CPR_NAME_MAX ||
	    p->len != DMA_REC_FIXED + il + nl)
		return -EBADMSG;
	*ret = (struct dma_rec){ .d = { .fd = -EBADF,
					.kind = le32_load(b + 4),
					.ioas_id = le32_load(b + 8),
					.flags = le32_load(b + 12),
					.iova = le64_load(b + 16),
					.offset = le64_load(b + 24),
					.length = le64_load(b + 32) },
				 .id = (int32_t)le32_load(b + 40) };
	memcpy(ret->idstr, b + DMA_REC_FIXED, il);
	memcpy(ret->name, b + DMA_REC_FIXED + il, nl);
	if ((ret->d.kind != CPR_FD_IOMMUFD && ret->d.kind != CPR_FD_VFIO_CONTAINER) ||
	    !ret->d.flags || (ret->d.flags & ~DMA_FLAGS_ALL) || !ret->d.length ||
	    memchr(ret->idstr, 0, il) || memchr(ret->name, 0, nl))
		return -EBADMSG;
	return 0;
}

static bool block_is_ours(struct cpr_ctx *ctx, const char *idstr)
{
	for (size_t i = 0; i < ctx->n_rbs; i++)
		if (strcmp(ctx->rbs[i]->idstr, idstr) == 0)
			return true;
	return false;
}

/* Records of incoming blocks nobody adopted (their memfds are carried on):
 * carried as they are, their type1 addresses still invalid. */
static int carry_records(struct cpr_ctx *ctx, struct cpr_state *st, uint32_t *instance)
{
	size_t n = ctx->incoming ? cpr_state_private_count(ctx->incoming) : 0;

	for (size_t i = 0; i < n; i++) {
		const struct cpr_state_private *p = cpr_state_private_get(ctx->incoming, i);
		struct dma_rec rec;
		int k, r;

		if (p->type != CPR_REC_DMA || parse_record(p, &rec) < 0 ||
		    block_is_ours(ctx, rec.idstr) || !fdreg_lookup(ctx, rec.name, rec.id))
			continue;
		k = cpr_state_ramblock_find(ctx->incoming, rec.idstr);
		if (k < 0 ||
		    !fdreg_lookup_rec(ctx,
				      cpr_state_ramblock_get(ctx->incoming, (size_t)k)->fd_index))
			continue;
		r = cpr_state_add_private(st, CPR_REC_DMA, (*instance)++, p->data, p->len);
		if (r < 0)
			return r;
	}
	return 0;
}

int dma_records(struct cpr_ctx *ctx, struct cpr_state *st)
{
	uint32_t instance = 0;
	int r;

	for (size_t i = 0; i < ctx->n_rbs; i++) {
		struct cpr_ramblock *rb = ctx->rbs[i];

		for (size_t j = 0; j < rb->n_dma; j++) {
			const struct cpr_fd_entry *e = entry_of_fd(ctx, rb->dma[j].fd);

			if (!e)
				return -EBADF; /* deleted from the registry while mapped */
			r = add_record(st, instance++, rb->idstr, &rb->dma[j], e->name, e->id);
			if (r < 0)
				return r;
		}
	}
	return carry_records(ctx, st, &instance);
}

/* ---- the hand-off ---- */

int dma_handoff_begin(struct cpr_ctx *ctx, struct cpr_error *ret_err)
{
	for (size_t i = 0; i < ctx->n_rbs; i++) {
		struct cpr_ramblock *rb = ctx->rbs[i];

		for (size_t j = 0; j < rb->n_dma; j++) {
			struct cpr_dma *d = &rb->dma[j];
			int r;

			if (d->kind != CPR_FD_VFIO_CONTAINER || d->vaddr_invalid)
				continue;
			r = type1_unmap(d, true);
			if (r < 0) {
				dma_handoff_abort(ctx);
				cpr_error_set(ret_err, r, UINT32_MAX, UINT32_MAX, UINT64_MAX,
					      "RAM block \"%s\": VFIO_IOMMU_UNMAP_DMA with "
					      "VFIO_DMA_UNMAP_FLAG_VADDR at IOVA %#" PRIx64 ": %s",
					      rb->idstr, d->iova, strerror(-r));
				return r;
			}
			d->vaddr_invalid = true;
		}
	}
	return 0;
}

/*
 * A hand-off over the caller's own channel (cpr_handoff_export(), a broker
 * such as cprd) has no point at which libcpr learns that it failed: the
 * type1 addresses it would invalidate before the fds leave could never be
 * registered again for this process, which keeps the guest when the next
 * one does not take it.  Refused before anything leaves, naming the first
 * such mapping; iommufd mappings (by file) go through.
 */
int dma_refuse_type1(struct cpr_ctx *ctx, const char *carrier, struct cpr_error *ret_err)
{
	for (size_t i = 0; i < ctx->n_rbs; i++) {
		struct cpr_ramblock *rb = ctx->rbs[i];

		for (size_t j = 0; j < rb->n_dma; j++) {
			if (rb->dma[j].kind != CPR_FD_VFIO_CONTAINER)
				continue;
			cpr_error_set(ret_err, -EBUSY, UINT32_MAX, UINT32_MAX, UINT64_MAX,
				      "RAM block \"%.64s\" is mapped for DMA through a VFIO type1 "
				      "container at IOVA %#" PRIx64 ": a %s cannot invalidate its "
				      "address (VFIO_DMA_UNMAP_FLAG_VADDR) and give it back if it "
				      "fails; use cpr-exec or cpr-transfer, or map through iommufd",
				      rb->idstr, rb->dma[j].iova, carrier);
			return -EBUSY;
		}
	}
	return 0;
}

/* Back to this process: our addresses, our accounting. */
void dma_handoff_abort(struct cpr_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_rbs; i++) {
		struct cpr_ramblock *rb = ctx->rbs[i];

		for (size_t j = 0; j < rb->n_dma; j++) {
			struct cpr_dma *d = &rb->dma[j];
			int r = 0;

			if (d->kind == CPR_FD_VFIO_CONTAINER && d->vaddr_invalid)
				r = type1_take(rb, d);
			else if (d->kind == CPR_FD_IOMMUFD &&
				 (r = change_process(d->fd)) == -ENOTTY)
				r = 0;
			if (r < 0)
				ctx_log(ctx, LOG_ERR,
					"cpr: RAM block \"%s\": DMA mapping at IOVA %#" PRIx64
					" not taken back: %s",
					rb->idstr, d->iova, strerror(-r));
		}
	}
}

/* In the adopting process: this process's address (type1) or accounting
 * (iommufd).  Without IOMMU_IOAS_CHANGE_PROCESS the pages stay accounted to
 * the previous image (exec only: the sender's blocker refused a transfer). */
static int dma_take(struct cpr_ramblock *rb, struct cpr_dma *d)
{
	int r;

	if (d->kind == CPR_FD_VFIO_CONTAINER) {
		d->vaddr_invalid = true;
		return type1_take(rb, d);
	}
	r = change_process(d->fd);
	if (r == -ENOTTY) {
		ctx_log(rb->ctx, LOG_WARNING,
			"cpr: RAM block \"%s\": no IOMMU_IOAS_CHANGE_PROCESS; its pinned pages "
			"stay accounted to the previous image",
			rb->idstr);
		return 0;
	}
	return r;
}

static int dma_adopt_one(struct cpr_ctx *ctx, struct cpr_ramblock *rb, struct dma_rec *rec)
{
	struct cpr_fd_entry *e = fdreg_lookup(ctx, rec->name, rec->id);
	int r;

	if (!e || e->kind != rec->d.kind) {
		ctx_log(ctx, LOG_ERR,
			"cpr: RAM block \"%s\": its DMA mapping names fd \"%s\" id %d, which is "
			"%s",
			rb->idstr, rec->name, rec->id, e ? "of another kind" : "not registered");
		return -EBADF;
	}
	if (rec->d.offset > rb->used_length || rec->d.length > rb->used_length - rec->d.offset)
		return -EBADMSG;
	rec->d.fd = e->fd;
	r = dma_take(rb, &rec->d);
	if (r < 0) {
		ctx_log(ctx, LOG_ERR,
			"cpr: RAM block \"%s\": cannot take over its DMA mapping at IOVA %#" PRIx64
			": %s",
			rb->idstr, rec->d.iova, strerror(-r));
		return r;
	}
	r = dma_append(rb, &rec->d);
	if (r < 0 && rec->d.kind == CPR_FD_VFIO_CONTAINER)
		type1_unmap(&rec->d, true);
	return r;
}

/* Undo dma_adopt(): the type1 addresses invalid again, for the next try. */
static void dma_adopt_undo(struct cpr_ramblock *rb)
{
	for (size_t i = 0; i < rb->n_dma; i++)
		if (rb->dma[i].kind == CPR_FD_VFIO_CONTAINER)
			type1_unmap(&rb->dma[i], true);
	dma_forget(rb);
}

int dma_adopt(struct cpr_ctx *ctx, struct cpr_ramblock *rb)
{
	size_t n = cpr_state_private_count(ctx->incoming);

	for (size_t i = 0; i < n; i++) {
		const struct cpr_state_private *p = cpr_state_private_get(ctx->incoming, i);
		struct dma_rec rec;
		int r;

		if (p->type != CPR_REC_DMA)
			continue;
		r = parse_record(p, &rec);
		if (r < 0) {
			ctx_log(ctx, LOG_ERR, "cpr: DMA record %u is malformed", p->instance);
		} else if (strcmp(rec.idstr, rb->idstr) == 0) {
			r = dma_adopt_one(ctx, rb, &rec);
		}
		if (r < 0) {
			dma_adopt_undo(rb);
			return r;
		}
	}
	for (size_t i = 0; i < rb->n_dma; i++)
		dma_check_kernel(rb, &rb->dma[i], false);
	return 0;
}
