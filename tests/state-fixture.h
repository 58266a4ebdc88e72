/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The reference states behind the golden streams (tests/golden/). */
#ifndef CPR_STATE_FIXTURE_H
#define CPR_STATE_FIXTURE_H

#include "cpr/state.h"

enum fixture {
	FIXTURE_LEVEL1,	     /* only level-1 elements */
	FIXTURE_LEVEL2_HINT, /* + a droppable level-2 hint (THP) */
	FIXTURE_LEVEL2_GMEM, /* + a required level-2 element (a live guest_memfd) */
};

struct cpr_state *fixture_state(enum fixture f);
/* Byte offset of record (@type, @instance) in an encoded stream, or 0. */
size_t fixture_record(const uint8_t *buf, size_t len, uint32_t type, uint32_t instance);
void fixture_fix_crc(uint8_t *buf, size_t len);

#endif
