/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpr-transfer wire format, shared by transfer.c and the tests that forge
 * hostile peers.  Specified byte by byte in cpr_transfer_send(3) PROTOCOL.
 */
#ifndef CPR_TRANSFER_H
#define CPR_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#define XFER_VERSION 1u
#define XFER_PREAMBLE_SIZE 48u
#define XFER_REPLY_SIZE 32u
#define XFER_MSG_MAX 255u /* bytes of a NAK message */

/* Preamble: magic, version, size, flags 0, stream length, fd count, id. */
void xfer_preamble_store(uint8_t p[XFER_PREAMBLE_SIZE], uint64_t stream_len, uint32_t n_fds,
			 const uint8_t id[16]);
/* Reply header: @code 0 = ACK, -errno = NAK with @msg_len message bytes. */
void xfer_reply_store(uint8_t r[XFER_REPLY_SIZE], int code, size_t msg_len, const uint8_t id[16]);

#endif
