/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Checksums of the released levels' schema files.  Never edit a sealed line. */
static const uint32_t schema_seal[CPR_LEVEL_MAX + 1] = {
	[1] = 0x70136487,
	[2] = 0x13ab6fb7,
};
