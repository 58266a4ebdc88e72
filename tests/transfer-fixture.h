/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fixtures of check-transfer: a sending context with RAM blocks and memfds,
 * the receiving helper process, and forged sender bytes.
 */
#ifndef CPR_TRANSFER_FIXTURE_H
#define CPR_TRANSFER_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cpr/cpr.h>

#define MIB (1024ull * 1024)

/* A context with three RAM blocks (one resizeable, one 2 MiB aligned) and
 * n_fds memfds saved in its registry as ("dev", i). */
struct sender {
	struct cpr_ctx *ctx;
	struct cpr_ramblock *rb[3];
	int *fds;
	size_t n_fds;
};

/* A fork+exec'd tests/helper-transfer. */
struct helper {
	pid_t pid;
	int sock; /* our end, or -1 for the listen mode */
	int out;  /* the helper's stdout */
};

/* A real stream and its id, for forged preambles. */
struct forged {
	void *stream;
	size_t len;
	uint8_t id[16];
};

unsigned long fd_ino(int fd);
void raise_nofile(void);

struct sender *sender_new(size_t n);
void sender_free(struct sender *s);
/* The lines a receiver that adopted everything prints. */
char *sender_expect(const struct sender *s);
/* The sender still holds every fd and every byte. */
void sender_assert_intact(const struct sender *s, const char *expect);

struct helper helper_spawn(const char *mode, const char *path);
/* Everything the helper printed, and its wait status. */
char *helper_finish(struct helper *h, int *ret_status);
/* A complete transfer to a fresh receiver: same inodes, same bytes, acked. */
void transfer_ok(struct sender *s);

/* A stream from a context with @n fds (slots 0..n-1) and no RAM block. */
struct forged forge_stream(size_t n);
/* Forge preamble, stream and one chunk, receive in this process, check the
 * NAK repeats the refusal; returns what cpr_transfer_recv() said. */
int forge_and_recv(const struct forged *f, uint32_t claim_fds, size_t attach, uint16_t claim_chunk,
		   const uint8_t *preamble, size_t stream_len, char *ret_nak, size_t nak_len);

#endif
