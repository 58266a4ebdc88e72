/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "state-fixture.h"

static const uint8_t fixture_id[16] = { 0x5a, 0x17, 0x3c, 0x90, 0x01, 0x02, 0x03, 0x04,
					0xde, 0xad, 0xbe, 0xef, 0xfe, 0xed, 0xfa, 0xce };

struct cpr_state *fixture_state(enum fixture f)
{
	struct cpr_state *st = NULL;
	struct cpr_state_fd fds[] = {
		{ .slot = 0, .kind = CPR_FD_MEMFD, .id = -1, .name = "pc.ram" },
		{ .slot = 1, .kind = CPR_FD_MEMFD, .id = -1, .name = "/rom@etc/acpi/tables" },
		{ .slot = 2, .kind = CPR_FD_EVENTFD, .id = 3, .name = "0000:00:04.0_interrupt" },
		{ .slot = 3, .kind = CPR_FD_SOCKET, .id = 0, .name = "chardev:serial0" },
	};
	struct cpr_state_ramblock rbs[] = {
		{ .idstr = "pc.ram",
		  .align = 2u << 20,
		  .used_length = 256u << 20,
		  .max_length = 256u << 20,
		  .host_addr = 0x7f1200000000ull,
		  .fd_index = 0,
		  .hint_flags = CPR_STATE_RB_HINT_DONTDUMP },
		{ .idstr = "/rom@etc/acpi/tables",
		  .align = 4096,
		  .used_length = 128u << 10,
		  .max_length = 2u << 20,
		  .host_addr = 0x7f1300000000ull,
		  .fd_index = 1,
		  .must_flags = CPR_STATE_RB_RESIZEABLE | CPR_STATE_RB_MAP_AT_ADDR },
	};
	static const char vcpu[] = "rip=0xfff0 rflags=0x2 cr0=0x60000010";

	cpr_state_new(&st);
	cpr_state_set_producer(st, "fixture-vmm 1.0", 0x010000);
	cpr_state_set_stream_id(st, fixture_id);
	cpr_state_set_generation(st, 7);
	if (f == FIXTURE_LEVEL2_HINT)
		rbs[0].hint_flags |= CPR_STATE_RB_HINT_THP;
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		cpr_state_add_fd(st, &fds[i]);
	if (f == FIXTURE_LEVEL2_GMEM) {
		struct cpr_state_fd g = {
			.slot = 4, .kind = CPR_FD_GUEST_MEMFD, .id = 0, .name = "gmem0"
		};
		cpr_state_add_fd(st, &g);
		rbs[0].gmem_fd_ref = 5;
		rbs[0].gmem_offset = 1u << 20;
	}
	for (size_t i = 0; i < ARRAY_SIZE(rbs); i++)
		cpr_state_add_ramblock(st, &rbs[i]);
	cpr_state_add_private(st, 0x8001, 0, vcpu, sizeof(vcpu) - 1);
	return st;
}

size_t fixture_record(const uint8_t *buf, size_t len, uint32_t type, uint32_t instance)
{
	size_t off = le16_load(buf + 8);

	while (off + 16 <= len) {
		uint32_t body = le32_load(buf + off + 12);
		if (le32_load(buf + off) == type && le32_load(buf + off + 8) == instance)
			return off;
		if (le32_load(buf + off) == CPR_REC_END)
			break;
		off += 16 + ALIGN8(body);
	}
	return 0;
}

void fixture_fix_crc(uint8_t *buf, size_t len)
{
	le32_store(buf + 24, 0);
	le32_store(buf + 24, cpr_crc32c(0, buf, len));
}
