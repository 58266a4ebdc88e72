/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Between luo.c (sessions, preserving) and luo-restore.c (after a kexec). */
#ifndef CPRD_LUO_H
#define CPRD_LUO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "luo-uapi.h"

/*
 * Tokens in the session: the index, then three kinds of pieces per bundle,
 * the bundle id in the high bits.
 */
#define LUO_TOKEN_INDEX 1u
#define LUO_PIECE_MANIFEST 0u
#define LUO_PIECE_STREAM 1u
#define LUO_PIECE_SLOT0 2u
#define LUO_PIECE_BITS 20u
#define LUO_ID_MAX ((UINT64_C(1) << (63 - LUO_PIECE_BITS)) - 1)
#define LUO_TOKEN(id, piece) (((uint64_t)(id) << LUO_PIECE_BITS) | (uint64_t)(piece))
/* The index: "cprd-luo 1\n" then one "<id>\n" per durable bundle. */
#define LUO_INDEX_SIZE (64u << 10)
#define LUO_INDEX_MAGIC "cprd-luo 1\n"
#define LUO_FDNAME "cprd-luo" /* the session's name in cprd's fd store */

enum luo_mode {
	LUO_OFF,     /* neither: durable requests are refused */
	LUO_AGENT,   /* cprd opened /dev/liveupdate itself */
	LUO_FDSTORE, /* a session from the service manager's fd store */
};

struct luo_state {
	enum luo_mode mode;
	int dev_fd;	/* /dev/liveupdate (agent mode) */
	int session_fd; /* the outgoing session, or -EBADF */
	int index_fd;	/* the preserved index memfd */
	char name[LIVEUPDATE_SESSION_NAME_LENGTH];
	char why[256];		  /* why durable requests are refused, "" when they are not */
	char retrieve_error[256]; /* a failed retrieve: permanent */
	unsigned restored, refused;
	bool restoring;
};

extern struct luo_state luo;

int luo_ioctl_retrieve_fd(int session_fd, uint64_t token, int *ret_fd);
int luo_ioctl_finish(int session_fd);
/* Retrieve every bundle of incoming session @session_fd, then finish it. */
int luo_restore(int session_fd);

#endif
