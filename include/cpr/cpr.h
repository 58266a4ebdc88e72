/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcpr: keep a VMM's guest RAM and device fds across execve() of a new
 * binary (cpr-exec), or hand them to a new process over a UNIX socket
 * (cpr-transfer), with no copy of guest RAM.  See libcpr(3).
 *
 * Conventions: functions return >= 0 on success and -errno on failure;
 * outputs are named ret_* and written only on success.  A last argument
 * struct cpr_error *ret_err (may be NULL) is filled on failure with the
 * code, the record concerned and a message; each such function returns only
 * the errnos its man page lists.
 */
#ifndef CPR_CPR_H
#define CPR_CPR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cpr/policy.h>
#include <cpr/state.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CPR_VERSION_MAJOR 0
#define CPR_VERSION_MINOR 1
#define CPR_VERSION_PATCH 0

/* Environment variable that carries the exec transport token. */
#define CPR_EXEC_ENV "CPR_EXEC_STATE"
/* Set by cpr_exec_probe() for the probe run of the target (cpr_exec(3)). */
#define CPR_EXEC_PROBE_ENV "CPR_EXEC_PROBE"
/* "0" in the VMM's environment: cpr_exec() starts no teardown helper. */
#define CPR_EXEC_HELPER_ENV "CPR_EXEC_HELPER"

/* Largest number of fds in one SCM_RIGHTS message (the kernel's SCM_MAX_FD). */
#define CPR_SCM_MAX_FDS 253u

/* A mode is one bit: cpr_blocker_add() takes several or'ed, cpr_check() one. */
enum cpr_mode {
	CPR_MODE_EXEC = 1u << 0,
	CPR_MODE_TRANSFER = 1u << 1,
};
#define CPR_MODES_ALL ((unsigned)CPR_MODE_EXEC | (unsigned)CPR_MODE_TRANSFER)

struct cpr_ctx;
struct cpr_ramblock;

/* Log priorities follow syslog(3): LOG_ERR .. LOG_DEBUG. */
typedef void (*cpr_log_fn)(void *userdata, int priority, const char *fmt, va_list ap);

/* Context: one per process. */
int cpr_ctx_new(struct cpr_ctx **ret_ctx);
void cpr_ctx_free(struct cpr_ctx *ctx);
void cpr_ctx_set_log_fn(struct cpr_ctx *ctx, cpr_log_fn fn, void *userdata);
int cpr_ctx_set_producer(struct cpr_ctx *ctx, const char *name, uint32_t vmm_version);
/* 0 restores the sticky default: the level this process was restored from. */
int cpr_ctx_set_target_level(struct cpr_ctx *ctx, uint32_t level, struct cpr_error *ret_err);
uint32_t cpr_ctx_get_target_level(const struct cpr_ctx *ctx);
/* 1 if the context holds incoming state (after cpr_exec_incoming() or
 * cpr_transfer_recv()), 0 otherwise. */
int cpr_ctx_incoming(const struct cpr_ctx *ctx);
/* The incoming state, or NULL; owned by the context. */
const struct cpr_state *cpr_ctx_incoming_state(const struct cpr_ctx *ctx);
/* VMM-private records carried in the next outgoing state (copied). */
int cpr_ctx_set_private(struct cpr_ctx *ctx, uint32_t type, uint32_t instance, const void *data,
			size_t len);
/* Build (without encoding) the state this context would send now. */
int cpr_ctx_build_state(struct cpr_ctx *ctx, struct cpr_state **ret_state);

/*
 * The fd registry.  cpr_fd_save() borrows @fd: the caller keeps owning it
 * and must keep it open until cpr_fd_delete().  The kind is checked now and
 * again when the fd is adopted on the other side.
 */
int cpr_fd_save(struct cpr_ctx *ctx, const char *name, int32_t id, int fd, enum cpr_fd_kind kind,
		struct cpr_error *ret_err);
/*
 * Claim (name, id): for an incoming fd not yet claimed, ownership passes to
 * the caller with this call (the entry stays registered, borrowed, so it is
 * preserved again on the next hop); for an fd this process saved, or one
 * claimed before, the fd is returned still borrowed.  @kind 0 accepts any
 * kind.
 */
int cpr_fd_claim(struct cpr_ctx *ctx, const char *name, int32_t id, enum cpr_fd_kind kind,
		 int *ret_fd, struct cpr_error *ret_err);
int cpr_fd_delete(struct cpr_ctx *ctx, const char *name, int32_t id);
/* Call @fn for every incoming fd nobody claimed; returns how many. */
typedef void (*cpr_fd_report_fn)(void *userdata, const char *name, int32_t id,
				 enum cpr_fd_kind kind, int fd);
int cpr_fd_unclaimed(struct cpr_ctx *ctx, cpr_fd_report_fn fn, void *userdata);
/* Close every incoming fd nobody claimed and unregister it; returns how many. */
int cpr_fd_close_unclaimed(struct cpr_ctx *ctx);
/* Check that @fd is of @kind (fstat, seals, anon-inode name, /dev path). */
int cpr_fd_check_kind(int fd, enum cpr_fd_kind kind);

/* RAM blocks. */
#define CPR_RAMBLOCK_RESIZEABLE (1u << 0)    /* reserve max_length, map used_length */
#define CPR_RAMBLOCK_HUGEPAGES (1u << 1)     /* 2 MiB pages: hugetlb if reserved, else THP */
#define CPR_RAMBLOCK_DONTDUMP (1u << 2)	     /* MADV_DONTDUMP */
#define CPR_RAMBLOCK_MAP_AT_ADDR (1u << 3)   /* incoming: map at the recorded address */
#define CPR_RAMBLOCK_TAKE_RECORDED (1u << 4) /* incoming: adopt recorded properties */
#define CPR_RAMBLOCK_POPULATE (1u << 5)	     /* prefault the mapping */

int cpr_ramblock_new(struct cpr_ctx *ctx, const char *idstr, uint64_t used_length,
		     uint64_t max_length, uint64_t align, unsigned flags,
		     struct cpr_ramblock **ret_rb, struct cpr_error *ret_err);
void cpr_ramblock_free(struct cpr_ramblock *rb);
void *cpr_ramblock_host(const struct cpr_ramblock *rb);
int cpr_ramblock_fd(const struct cpr_ramblock *rb);
uint64_t cpr_ramblock_used_length(const struct cpr_ramblock *rb);
uint64_t cpr_ramblock_max_length(const struct cpr_ramblock *rb);
uint64_t cpr_ramblock_page_size(const struct cpr_ramblock *rb);
/* 1 if the block adopted a preserved memfd, 0 if it was created fresh. */
int cpr_ramblock_adopted(const struct cpr_ramblock *rb);
int cpr_ramblock_resize(struct cpr_ramblock *rb, uint64_t used_length, struct cpr_error *ret_err);
const char *cpr_ramblock_idstr(const struct cpr_ramblock *rb);

/*
 * DMA mappings of RAM blocks (cpr_ramblock_dma_map(3)).  @fd is a registered
 * fd (cpr_fd_save()) of kind CPR_FD_IOMMUFD (then @ioas_id names the IOAS)
 * or CPR_FD_VFIO_CONTAINER (type1; @ioas_id 0).  libcpr maps the block's
 * used length at @iova, records the mapping in the state, and keeps it
 * across cpr_exec() and cpr_transfer_send(): the adopting process's
 * cpr_ramblock_new() re-establishes it without re-pinning anything.
 */
#define CPR_DMA_READ (1u << 0)	/* the device may read */
#define CPR_DMA_WRITE (1u << 1) /* the device may write */
/* The private record type libcpr carries the mappings in (cpr-state(5)). */
#define CPR_REC_DMA 0xfffeu

int cpr_ramblock_dma_map(struct cpr_ramblock *rb, int fd, uint32_t ioas_id, uint64_t iova,
			 unsigned flags);
int cpr_ramblock_dma_unmap(struct cpr_ramblock *rb, int fd, uint64_t iova);
/* The number of the block's DMA mappings. */
int cpr_ramblock_dma_count(const struct cpr_ramblock *rb);

/* Blockers: reasons that forbid CPR in some modes. */
int cpr_blocker_add(struct cpr_ctx *ctx, unsigned modes, const char *reason, uint32_t *ret_id,
		    struct cpr_error *ret_err);
int cpr_blocker_remove(struct cpr_ctx *ctx, uint32_t id);
/*
 * Report every reason that forbids @mode at @target_level (0 = the context's
 * target) through @fn, all at once.  Returns 0 when CPR may proceed, or
 * -EBUSY with the number of reasons delivered through @fn.
 */
int cpr_check(struct cpr_ctx *ctx, enum cpr_mode mode, uint32_t target_level, cpr_diag_fn fn,
	      void *userdata);

/* Kernel feature probes: 1 supported, 0 unsupported (reason in @ret_why). */
int cpr_probe_vfio(char *ret_why, size_t len);
int cpr_probe_iommufd(char *ret_why, size_t len);

/*
 * cpr-exec.  Encodes the state into a sealed memfd, publishes CPR_EXEC_ENV,
 * clears close-on-exec on the preserved fds and calls execve(@path).  Returns
 * only on failure, with every fd, flag and mapping as before.
 */
int cpr_exec(struct cpr_ctx *ctx, const char *path, char *const argv[], char *const envp[],
	     struct cpr_error *ret_err);
/*
 * In the new image: 1 if incoming exec state was found, validated and
 * adopted into @ctx; 0 if there is none.  A refused state goes back to the
 * previous binary where it can (cpr_exec(3), ROLLBACK): then this does not
 * return.  Otherwise -errno (every inherited fd named by the state is then
 * closed).
 */
int cpr_exec_incoming(struct cpr_ctx *ctx, struct cpr_error *ret_err);
/*
 * In the new image, before every preserved RAM block is adopted: give the
 * state back to the previous binary, which adopts it again (same PID).
 * Returns only on failure (-ENOENT: no way back), with @ctx as it was.
 */
int cpr_exec_rollback(struct cpr_ctx *ctx, struct cpr_error *ret_err);
/* 1 if this image adopted its incoming exec state by a rollback, else 0. */
int cpr_exec_rolled_back(const struct cpr_ctx *ctx);
/*
 * Before the pause: run @path with @argv and @envp as cpr_exec() would, in
 * a probe run that ends in its cpr_exec_incoming(), and refuse (-ENOEXEC,
 * -EPROTONOSUPPORT, -ETIMEDOUT) a target that cannot take this state.
 */
int cpr_exec_probe(struct cpr_ctx *ctx, const char *path, char *const argv[], char *const envp[],
		   struct cpr_error *ret_err);

/*
 * cpr-transfer over a connected SOCK_STREAM UNIX socket.  The sender keeps
 * owning everything until the receiver's acknowledgement; on failure it can
 * resume or retry with another receiver.
 */
int cpr_transfer_send(struct cpr_ctx *ctx, int sock, struct cpr_error *ret_err);
/* Wait (up to @timeout_ms, -1 = forever) for the receiver's ack. */
int cpr_transfer_wait_ack(struct cpr_ctx *ctx, int sock, int timeout_ms, struct cpr_error *ret_err);
/* After an ack, take the state back once the receiver's end of @sock is closed. */
int cpr_transfer_reclaim(struct cpr_ctx *ctx, int sock, struct cpr_error *ret_err);
int cpr_transfer_recv(struct cpr_ctx *ctx, int sock, struct cpr_error *ret_err);
/* Receiver: everything is validated and adopted; let the sender go. */
int cpr_transfer_ack(struct cpr_ctx *ctx, int sock, struct cpr_error *ret_err);
int cpr_transfer_listen(const char *path, int *ret_fd);
int cpr_transfer_accept(int listen_fd, int timeout_ms, int *ret_fd);
int cpr_transfer_connect(const char *path, int *ret_fd);

/*
 * A hand-off over a channel of the caller's own, such as a broker that holds
 * the fds between two processes (cprd(8)).  cpr_handoff_export() applies the
 * blockers and level checks of cpr_transfer_send() and returns the encoded
 * state (malloc()ed; free() it) and the fds it names, in slot order (the
 * array is malloc()ed; the fds are borrowed: the context keeps owning them).
 * cpr_handoff_import() checks the state and the fds as cpr_transfer_recv()
 * does and adopts them: on success the context owns every fd in @fds; on
 * failure nothing changed and the caller still owns them.
 */
int cpr_handoff_export(struct cpr_ctx *ctx, void **ret_stream, size_t *ret_len, int **ret_fds,
		       size_t *ret_n_fds, struct cpr_error *ret_err);
int cpr_handoff_import(struct cpr_ctx *ctx, const void *stream, size_t len, const int *fds,
		       size_t n_fds, struct cpr_error *ret_err);

/*
 * SCM_RIGHTS helpers.  Sending borrows @fds.  Receiving owns every fd the
 * kernel delivered: on error all of them are closed.  More than
 * CPR_SCM_MAX_FDS fds are sent in chunks.
 */
int cpr_fds_send(int sock, const void *data, size_t len, const int *fds, size_t n_fds);
int cpr_fds_recv(int sock, void *data, size_t len, int *fds, size_t n_fds, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
