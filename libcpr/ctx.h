/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The context a process keeps: its registry of preserved fds, its RAM
 * blocks, its blockers, VMM-private records and the incoming state it was
 * restored from.  Shared by fdreg.c, ramblock.c, blocker.c, exec.c and the
 * socket transport.  Not installed.
 */
#ifndef CPR_CTX_H
#define CPR_CTX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cpr/cpr.h>

#include "internal.h"

/* One registered fd.  RAM block memfds are not here while a block owns them. */
struct cpr_fd_entry {
	char *name;    /* owned; an incoming entry's is its FD record's */
	int32_t id;    /* -1 only for an unclaimed incoming RAM block memfd */
	uint32_t kind; /* enum cpr_fd_kind */
	int fd;
	bool owned;    /* the context owns @fd: incoming and not yet claimed */
	bool incoming; /* arrived with the incoming state */
	uint32_t rec;  /* incoming: index of its FD record */
	uint32_t seq;  /* registration order: strictly increasing along ctx->fds */
	uint64_t dev;  /* the file registered (st_dev, st_ino; 0, 0: unknown), so */
	uint64_t ino;  /* that an fd closed and its number reused is caught */
};

/*
 * A hash index over the registry (fdreg.c): slots hold (hash << 32 | seq + 1)
 * of an entry, 0 = empty.  Entries are found from their seq by binary search,
 * so removing one (which shifts the array) leaves a stale slot, skipped like
 * a tombstone and dropped at the next rebuild.
 */
struct fdreg_index {
	uint64_t *slots;
	size_t cap, used;
};

struct cpr_blocker {
	uint32_t id;
	unsigned modes; /* CPR_MODE_* or'ed */
	char *reason;
};

struct cpr_private {
	uint32_t type;
	uint32_t instance;
	size_t len;
	void *data;
};

/* A DMA mapping of (part of) a RAM block (dma.c). */
struct cpr_dma {
	int fd;		  /* the iommufd or VFIO container: a registered fd, borrowed */
	uint32_t kind;	  /* CPR_FD_IOMMUFD or CPR_FD_VFIO_CONTAINER */
	uint32_t ioas_id; /* iommufd only */
	unsigned flags;	  /* CPR_DMA_* */
	uint64_t iova;
	uint64_t offset; /* into the block */
	uint64_t length;
	uint32_t blocker;   /* a blocker this mapping added, 0 = none */
	bool vaddr_invalid; /* type1: unmapped with VFIO_DMA_UNMAP_FLAG_VADDR */
};

struct cpr_ramblock {
	struct cpr_ctx *ctx;
	char *idstr;
	int fd;	       /* memfd, owned by the block */
	uint8_t *host; /* aligned start of the mapping */
	void *reserve; /* reserved address range (max_length) */
	size_t reserve_len;
	uint64_t used_length;
	uint64_t max_length;
	uint64_t align;
	uint64_t fd_offset;
	uint64_t page_size;
	unsigned flags; /* CPR_RAMBLOCK_* as requested (or taken) */
	bool hugetlb;
	bool thp;
	bool adopted;
	struct cpr_dma *dma; /* its DMA mappings (dma.c) */
	size_t n_dma;
};

/* An exec'd image's way back to the previous binary (rollback.c). */
struct rollback_window {
	int state_fd; /* the exec state memfd, -EBADF = no way back */
	int exe_fd;   /* the previous binary, O_PATH */
	int args_fd;  /* its argv and envp, a sealed memfd */
	uint8_t id[16];
	unsigned count; /* the token's rollback=: >= 1, this image is a rollback */
};

struct cpr_ctx {
	cpr_log_fn log_fn;
	void *log_userdata;
	char *producer;
	uint32_t vmm_version;
	uint32_t target_level; /* explicit target, 0 = sticky default */
	uint32_t sticky_level; /* emit level of the incoming state, 0 = none */

	struct cpr_state *incoming;

	struct cpr_fd_entry *fds;
	size_t n_fds, cap_fds;
	uint32_t next_seq;
	struct fdreg_index by_key; /* (name, id) */
	struct fdreg_index by_fd;  /* fd number */
	struct fdreg_index by_rec; /* FD record of an incoming entry */

	struct cpr_ramblock **rbs;
	size_t n_rbs, cap_rbs;

	struct cpr_blocker *blockers;
	size_t n_blockers, cap_blockers;
	uint32_t next_blocker_id;

	struct cpr_private *privs;
	size_t n_privs, cap_privs;

	pid_t reaper;		    /* exec teardown helper not yet reaped, 0 = none */
	int reaper_pidfd;	    /* its pidfd, -EBADF = none (then by PID) */
	int release_fd;		    /* closing it lets the teardown helper go, -EBADF = none */
	struct rollback_window rbw; /* the way back to the previous binary */

	bool sent_pending;   /* a transfer was sent and awaits its ack */
	uint8_t sent_id[16]; /* the stream id that ack must repeat */
	bool handed_off;     /* a receiver acked: this context owns nothing to hand off */
	bool acked;	     /* cpr_transfer_ack() was sent for the incoming state */
};

/*
 * Build the outgoing state for @mode at @level (0 = ctx target level): runs
 * every blocker and the level check first (refusal => -EBUSY /
 * -EPROTONOSUPPORT with ret_err naming the reason), FD records get slot = the
 * fd number for CPR_MODE_EXEC, slot = index 0..n-1 for CPR_MODE_TRANSFER;
 * (*ret_fds)[i] is the (borrowed) fd of FD record i; random stream_id
 * (getrandom), generation = incoming generation + 1, producer set.
 * *ret_fds is malloc()ed (NULL when there is no fd); free() it.
 */
int ctx_outgoing(struct cpr_ctx *ctx, enum cpr_mode mode, uint32_t level,
		 struct cpr_state **ret_state, int **ret_fds, size_t *ret_n_fds,
		 struct cpr_error *ret_err);

/*
 * Environment checks then adopt: every fds[i] must match FD record i's kind
 * (cpr_fd_check_kind) and each RAMBLOCK's memfd must be >= fd_offset +
 * max_length and the page size must match; only if all hold, @ctx takes
 * ownership of @st and of every fd in @fds (n_fds ==
 * cpr_state_fd_count(st)), marks them close-on-exec and unclaimed, and sets
 * the sticky target level to st's emit_level.  On failure nothing changed:
 * the caller still owns @st and every fd.
 */
int ctx_adopt(struct cpr_ctx *ctx, struct cpr_state *st, int *fds, size_t n_fds,
	      struct cpr_error *ret_err);
/*
 * The per-fd half of ctx_adopt()'s checks, for FD record @i of @st and the
 * fd that came for it: its key is not registered here yet and the fd is of
 * the record's kind.  A receiver runs it on each fd as it arrives, then
 * adopts with ctx_adopt_prechecked(), which runs every other check.
 */
int ctx_adopt_check_fd(struct cpr_ctx *ctx, const struct cpr_state *st, size_t i, int fd,
		       struct cpr_error *ret_err);
int ctx_adopt_prechecked(struct cpr_ctx *ctx, struct cpr_state *st, int *fds, size_t n_fds,
			 struct cpr_error *ret_err);

/* log.c: through the context's log function, if any (NULL-safe). */
void ctx_log(struct cpr_ctx *ctx, int priority, const char *fmt, ...) _cpr_printf_(3, 4);

/* ---- internal to the runtime files ---- */

/* outgoing.c: the state without blockers or level check, the common part
 * of ctx_outgoing() (also there). */
int ctx_build(struct cpr_ctx *ctx, enum cpr_mode mode, struct cpr_state **ret_state, int **ret_fds,
	      size_t *ret_n_fds, struct cpr_error *ret_err);

/* fdreg.c (the registry), fdkind.c, fdadopt.c */
/* Let the teardown helper go once no preserved RAM block waits for
 * adoption. */
void fdreg_release_if_adopted(struct cpr_ctx *ctx);
struct cpr_fd_entry *fdreg_lookup(struct cpr_ctx *ctx, const char *name, int32_t id);
/* Every registered fd is still the file it was registered as: 0, or -EBADF
 * with @ret_err naming the first that is not. */
int fdreg_verify(struct cpr_ctx *ctx, struct cpr_error *ret_err);
/* exec-probe.c: in a probe run of this image, answer and exit. */
void exec_probe_answer(void);
/* probe-confine.c: in the probe's child before execve(), no effects outside
 * the process (EPERM); 0, or -errno when the kernel cannot confine. */
int exec_probe_confine(void);
/* envp without any CPR_EXEC_ENV, plus a slot for the token at [*ret_n]. */
char **exec_env_copy(char *const envp[], size_t *ret_n);
/* The incoming entry of FD record @rec, claimed or not. */
struct cpr_fd_entry *fdreg_lookup_rec(struct cpr_ctx *ctx, uint32_t rec);
/* Room for @n more entries (@incoming ones: with an FD record), in the
 * array and in the indexes. */
int fdreg_reserve(struct cpr_ctx *ctx, size_t n, bool incoming);
/* Append @e (room reserved, for an incoming one as such): cannot fail. */
void fdreg_append(struct cpr_ctx *ctx, const struct cpr_fd_entry *e);
void fdreg_remove(struct cpr_ctx *ctx, struct cpr_fd_entry *e);
void fdreg_free_all(struct cpr_ctx *ctx);
/* Whether an fd number is already registered (or owned by a RAM block). */
bool fdreg_fd_in_use(struct cpr_ctx *ctx, int fd);
/* Free an entry's name, unless it is its incoming FD record's. */
void fdreg_entry_free_name(struct cpr_fd_entry *e);
/* The rules of cpr-state(5) for a registry name. */
bool fdreg_name_ok(const char *name);
/* The (st_dev, st_ino) of @fd; left alone when fstat() fails. */
void fdreg_identity(int fd, uint64_t *ret_dev, uint64_t *ret_ino);

/* fdkind.c: cpr_fd_check_kind() that logs why @fd for (@name, @id) is not
 * of @kind. */
int fdkind_check_logged(struct cpr_ctx *ctx, int fd, uint32_t kind, const char *name, int32_t id);

/* ramblock.c */
void ramblock_unregister(struct cpr_ctx *ctx, struct cpr_ramblock *rb);
/* Fill a RAMBLOCK record for @rb (fd_index left 0). */
void ramblock_record(const struct cpr_ramblock *rb, struct cpr_state_ramblock *ret);

/*
 * dma.c: the DMA mappings of RAM blocks at the points of a hand-off.
 * dma_records() adds their records to an outgoing state;
 * dma_handoff_begin() invalidates the type1 virtual addresses right before
 * the fds leave (exec, transfer); dma_handoff_abort() gives the mappings
 * back to this process when the hand-off failed; dma_adopt() re-establishes
 * an adopted block's mappings in the new process; dma_forget() frees them.
 */
int dma_records(struct cpr_ctx *ctx, struct cpr_state *st);
int dma_handoff_begin(struct cpr_ctx *ctx, struct cpr_error *ret_err);
/* -EBUSY when a type1 mapping forbids a hand-off over the caller's channel. */
int dma_refuse_type1(struct cpr_ctx *ctx, const char *carrier, struct cpr_error *ret_err);
void dma_handoff_abort(struct cpr_ctx *ctx);
int dma_adopt(struct cpr_ctx *ctx, struct cpr_ramblock *rb);
void dma_forget(struct cpr_ramblock *rb);

/* blocker.c: every reason forbidding @mode at @level; returns the count. */
int blocker_collect(struct cpr_ctx *ctx, enum cpr_mode mode, uint32_t level, cpr_diag_fn fn,
		    void *userdata, int *ret_n_level);
void blocker_free_all(struct cpr_ctx *ctx);

/* exec.c: the longest exec token value any reader takes. */
#define EXEC_TOKEN_MAX 128u

/* rollback.c: what the old image leaves to go back to it (see there). */
struct rollback {
	int exe_fd;    /* this binary, O_PATH; -EBADF = no rollback */
	int args_fd;   /* sealed memfd of argv and envp, for the new image */
	char *strings; /* /proc/self/cmdline */
	char **argv;   /* into strings */
	char **envp;   /* environ without CPR_EXEC_ENV, then token */
	char token[sizeof(CPR_EXEC_ENV) + EXEC_TOKEN_MAX]; /* the helper's */
};
#define ROLLBACK_NONE                               \
	{                                           \
		.exe_fd = -EBADF, .args_fd = -EBADF \
	}
int rollback_prepare(struct cpr_ctx *ctx, struct rollback *rb);
void rollback_free(struct rollback *rb);
/* CPR_EXEC_ENV=... of a rollback: the same state, for @pid, rollback=1. */
int rollback_token(char *buf, size_t len, int fd, const uint8_t id[16], pid_t pid);
void rollback_window_open(struct cpr_ctx *ctx, int state_fd, const uint8_t id[16], int exe_fd,
			  int args_fd, unsigned count);
void rollback_window_close(struct cpr_ctx *ctx);
/* Back to the previous binary (@why: the refusal, 0 = asked); returns only
 * on failure, with the adopted fds as they were. */
int rollback_run(struct cpr_ctx *ctx, int why, struct cpr_error *ret_err);

/* teardown.c: the cpr-exec teardown helper (see there). */
struct teardown {
	pid_t pid;
	int wfd; /* preserved across execve(); the new image's release fd */
	void *stack;
	int *keep; /* the fds the helper holds */
	int pidfd; /* of this process, until the helper has its copy */
};
/* @keep: the fds the helper holds for a rollback to @rb (none if no exe). */
void teardown_start(struct cpr_ctx *ctx, struct teardown *t, const int *keep, size_t n_keep,
		    const struct rollback *rb);
void teardown_stop(struct teardown *t);
void teardown_adopt(struct cpr_ctx *ctx, pid_t reaper, int release_fd);
void teardown_release(struct cpr_ctx *ctx);
/* Reap the previous image's helper (@wait: release it first, then block). */
void teardown_reap(struct cpr_ctx *ctx, bool wait);

/* Page size of this process, and its shift. */
static inline uint64_t ctx_page_size(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

static inline uint32_t ctx_page_shift(void)
{
	return (uint32_t)__builtin_ctzll(ctx_page_size());
}

#endif
