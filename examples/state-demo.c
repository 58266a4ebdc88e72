/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * state-demo: record a VMM-like set of real kernel objects (memfd RAM blocks,
 * interrupt eventfds) in a precreate vmstate stream, for the newest level and
 * for a rollback to level 1, and write both streams out.
 */
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "cpr/state.h"
#include "internal.h"

struct block {
	const char *idstr;
	uint64_t used, max;
	uint32_t flags, hints;
};

static void warn_cb(void *ud, const struct cpr_error *w)
{
	printf("  warning: %s\n", w->message);
}

static int write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "we");

	if (!f || fwrite(buf, 1, len, f) != len) {
		perror(path);
		return -1;
	}
	return fclose(f);
}

/* Encode for @level and write DIR/demo-levelN.cpr. */
static int encode_to(const struct cpr_state *st, uint32_t level, const char *dir)
{
	struct cpr_error err;
	char path[4096];
	void *buf;
	size_t len;
	int r;

	printf("Encoding for level %u%s:\n", level,
	       level < CPR_LEVEL_MAX ? " (a rollback)" : " (newest)");
	if (cpr_state_encode(st, level, warn_cb, NULL, &buf, &len, &err) < 0) {
		fprintf(stderr, "encode: %s\n", err.message);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/demo-level%u.cpr", dir, level);
	printf("  %zu bytes -> %s\n", len, path);
	r = write_file(path, buf, len);
	free(buf);
	return r;
}

int main(int argc, char *argv[])
{
	static const struct block blocks[] = {
		{ "pc.ram", 64u << 20, 64u << 20, 0,
		  CPR_STATE_RB_HINT_DONTDUMP | CPR_STATE_RB_HINT_THP },
		{ "vga.vram", 8u << 20, 8u << 20, 0, 0 },
		{ "/rom@etc/acpi/tables", 128u << 10, 2u << 20, CPR_STATE_RB_RESIZEABLE, 0 },
	};
	const char *dir = argc > 1 ? argv[1] : ".";
	struct cpr_state *st = NULL;
	uint32_t n = 0;

	cpr_state_new(&st);
	cpr_state_set_producer(st, "state-demo (libcpr example)", 0x000100);
	printf("Guest RAM blocks (memfds):\n");
	for (size_t i = 0; i < ARRAY_SIZE(blocks); i++, n++) {
		int fd = memfd_create(blocks[i].idstr, MFD_CLOEXEC | MFD_ALLOW_SEALING);
		struct cpr_state_fd f = { .slot = (uint32_t)fd, .kind = CPR_FD_MEMFD, .id = -1 };
		struct cpr_state_ramblock rb = { .align = 2u << 20,
						 .used_length = blocks[i].used,
						 .max_length = blocks[i].max,
						 .fd_index = n,
						 .must_flags = blocks[i].flags,
						 .hint_flags = blocks[i].hints };
		struct stat sb;
		void *host;

		if (fd < 0 || ftruncate(fd, (off_t)blocks[i].max) < 0 || fstat(fd, &sb) < 0)
			return 1;
		host = mmap(NULL, blocks[i].max, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (host == MAP_FAILED)
			return 1;
		rb.host_addr = (uint64_t)(uintptr_t)host;
		snprintf(f.name, sizeof(f.name), "%s", blocks[i].idstr);
		snprintf(rb.idstr, sizeof(rb.idstr), "%s", blocks[i].idstr);
		cpr_state_add_fd(st, &f);
		cpr_state_add_ramblock(st, &rb);
		printf("  %-22s fd %2d  inode %-8lu used %6llu KiB  max %6llu KiB  at %p\n",
		       blocks[i].idstr, fd, (unsigned long)sb.st_ino,
		       (unsigned long long)blocks[i].used >> 10,
		       (unsigned long long)blocks[i].max >> 10, host);
	}
	printf("Device fds (interrupt eventfds):\n");
	for (int32_t v = 0; v < 2; v++) {
		struct cpr_state_fd f = { .kind = CPR_FD_EVENTFD, .id = v };
		int fd = eventfd(0, EFD_CLOEXEC);
		if (fd < 0)
			return 1;
		f.slot = (uint32_t)fd;
		snprintf(f.name, sizeof(f.name), "0000:00:04.0_interrupt");
		cpr_state_add_fd(st, &f);
		printf("  %s/%d  fd %d\n", f.name, v, fd);
	}
	cpr_state_add_private(st, 0x8001, 0, "vcpu0: rip=0x1000", 17);

	if (encode_to(st, CPR_LEVEL_MAX, dir) < 0 || encode_to(st, 1, dir) < 0)
		return 1;
	cpr_state_free(st);
	return 0;
}
