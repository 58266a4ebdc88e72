/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reader, framing half: the header and the record walk (cpr-state(5)
 * phases 1 and 2).  Pure: no system calls.  Record contents are judged by
 * parse.c; the tools walk records with the same code.
 */
#include <stdio.h>

#include "cpr/state.h"
#include "internal.h"
#include "schema.h"
#include "stream.h"

void stream_header_info(const uint8_t *buf, struct cpr_state_info *info)
{
	memset(info, 0, sizeof(*info));
	info->emit_level = le32_load(buf + HDR_EMIT);
	info->producer_level = le32_load(buf + HDR_PRODUCER_LEVEL);
	info->min_reader_level = le32_load(buf + HDR_MIN_READER);
	info->compat_features = le64_load(buf + HDR_COMPAT);
	memcpy(info->stream_id, buf + HDR_ID, 16);
	info->generation = le32_load(buf + HDR_GENERATION);
	info->page_shift = buf[HDR_PAGE_SHIFT];
}

static int check_magic(const uint8_t *buf, struct cpr_error *err)
{
	if (memcmp(buf, cpr_magic, sizeof(cpr_magic)) == 0)
		return 0;
	if (buf[0] == 0x89 && buf[1] == 'C' && buf[2] == 'P' && buf[3] == 'R')
		return cpr_fail(
			err, -EBADMSG, NO_TYPE, NO_INST, 0,
			"magic is mangled after 'CPR' (text-mode line-ending or EOF translation?)");
	if (buf[0] == 'C' && buf[1] == 'P' && buf[2] == 'R')
		return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, 0,
				"magic lost its first byte (7-bit transfer?)");
	return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, 0,
			"not a libcpr state stream (bad magic)");
}

/* Phase 1: the header, in the order cpr-state(5) gives. */
static int check_header(const uint8_t *buf, size_t len, struct cpr_error *err)
{
	uint32_t hlen, version, emit, plevel, minr, shift;
	uint64_t total, incompat;
	int k;

	if (len < CPR_HEADER_SIZE)
		return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, 0,
				"stream of %zu bytes is shorter than the %u-byte header", len,
				CPR_HEADER_SIZE);
	k = check_magic(buf, err);
	if (k < 0)
		return k;
	hlen = le16_load(buf + HDR_LEN);
	if (hlen < CPR_HEADER_SIZE || hlen > CPR_HEADER_MAX || hlen % 8)
		return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, HDR_LEN,
				"header_len %u is not a multiple of 8 in [%u, %u]", hlen,
				CPR_HEADER_SIZE, CPR_HEADER_MAX);
	version = le16_load(buf + HDR_VERSION);
	if (version != CPR_FORMAT_VERSION)
		return cpr_fail(err, -EPROTONOSUPPORT, NO_TYPE, NO_INST, HDR_VERSION,
				"format_version %u is not supported (this libcpr reads version %u)",
				version, CPR_FORMAT_VERSION);
	if (le32_load(buf + HDR_FLAGS) || !mem_is_zero(buf + HDR_RESERVED, 3))
		return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, HDR_FLAGS,
				"reserved header bytes are not zero");
	total = le64_load(buf + HDR_TOTAL);
	if (total > CPR_STREAM_MAX)
		return cpr_fail(err, -E2BIG, NO_TYPE, NO_INST, HDR_TOTAL,
				"total_len %llu exceeds the limit of %u bytes",
				(unsigned long long)total, CPR_STREAM_MAX);
	if (total % 8 || total < hlen)
		return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, HDR_TOTAL,
				"total_len %llu is not a multiple of 8 of at least header_len",
				(unsigned long long)total);
	if (total != len)
		return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, HDR_TOTAL,
				"total_len %llu does not match the %zu bytes received",
				(unsigned long long)total, len);
	if (hlen > len || !mem_is_zero(buf + CPR_HEADER_SIZE, hlen - CPR_HEADER_SIZE))
		return cpr_fail(err, -EPROTONOSUPPORT, NO_TYPE, NO_INST, CPR_HEADER_SIZE,
				"header has non-zero fields beyond byte %u unknown to this libcpr",
				CPR_HEADER_SIZE);
#ifndef CPR_FUZZING
	{
		uint8_t crcz[4] = { 0 };
		uint32_t crc = cpr_crc32c(0, buf, HDR_CRC);
		crc = cpr_crc32c(crc, crcz, 4);
		crc = cpr_crc32c(crc, buf + HDR_CRC + 4, len - HDR_CRC - 4);
		if (crc != le32_load(buf + HDR_CRC))
			return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, HDR_CRC,
					"CRC32C mismatch: stream says %08x, bytes give %08x",
					le32_load(buf + HDR_CRC), crc);
	}
#endif
	incompat = le64_load(buf + HDR_INCOMPAT);
	if (incompat & ~SCHEMA_INCOMPAT_KNOWN)
		return cpr_fail(
			err, -EPROTONOSUPPORT, NO_TYPE, NO_INST, HDR_INCOMPAT,
			"stream requires incompatible features 0x%llx unknown to this libcpr",
			(unsigned long long)(incompat & ~SCHEMA_INCOMPAT_KNOWN));
	emit = le32_load(buf + HDR_EMIT);
	plevel = le32_load(buf + HDR_PRODUCER_LEVEL);
	minr = le32_load(buf + HDR_MIN_READER);
	if (emit < 1 || plevel < emit || minr < 1 || minr > emit)
		return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, HDR_EMIT,
				"inconsistent levels: emit %u, producer %u, min reader %u", emit,
				plevel, minr);
	shift = buf[HDR_PAGE_SHIFT];
	if (shift < 12 || shift > 30)
		return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, HDR_PAGE_SHIFT,
				"page_shift %u is outside [12, 30]", shift);
	return (int)hlen;
}

static int walk_one(const uint8_t *buf, uint64_t off, uint64_t total, struct stream_rec *rec,
		    struct cpr_error *err)
{
	const uint8_t *p = buf + off;
	uint64_t remaining = total - off;
	uint32_t pad;

	if (remaining < CPR_REC_HDR_SIZE)
		return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, off,
				"truncated record header at offset %llu", (unsigned long long)off);
	rec->type = le32_load(p);
	rec->rflags = le16_load(p + 4);
	rec->fixed_len = le16_load(p + 6);
	rec->instance = le32_load(p + 8);
	rec->body_len = le32_load(p + 12);
	rec->offset = off;
	if (rec->rflags & ~CPR_RFLAG_CRITICAL)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, off,
				"record has reserved rflags bits 0x%x set", rec->rflags);
	if (rec->body_len > CPR_RECORD_MAX)
		return cpr_fail(err, -E2BIG, rec->type, rec->instance, off,
				"record body of %u bytes exceeds the limit of %u", rec->body_len,
				CPR_RECORD_MAX);
	pad = PAD8(rec->body_len);
	if (rec->body_len + pad > remaining - CPR_REC_HDR_SIZE)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, off,
				"record body of %u bytes runs past the end of the stream",
				rec->body_len);
	if (rec->fixed_len > rec->body_len)
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, off,
				"fixed_len %u exceeds body_len %u", rec->fixed_len, rec->body_len);
	if (!mem_is_zero(p + CPR_REC_HDR_SIZE + rec->body_len, pad))
		return cpr_fail(err, -EBADMSG, rec->type, rec->instance, off,
				"non-zero padding after the record body");
	rec->fixed = p + CPR_REC_HDR_SIZE;
	rec->var = rec->fixed + rec->fixed_len;
	rec->var_len = rec->body_len - rec->fixed_len;
	return (int)(CPR_REC_HDR_SIZE + rec->body_len + pad);
}

static int check_end(const struct stream_rec *rec, uint64_t next, uint64_t total, uint32_t count,
		     struct cpr_error *err)
{
	if (!(rec->rflags & CPR_RFLAG_CRITICAL) || rec->instance != 0 || rec->fixed_len != 8 ||
	    rec->body_len != 8 || le32_load(rec->fixed + 4))
		return cpr_fail(err, -EBADMSG, CPR_REC_END, rec->instance, rec->offset,
				"END record is malformed");
	if (le32_load(rec->fixed) != count)
		return cpr_fail(err, -EBADMSG, CPR_REC_END, 0, rec->offset,
				"END counts %u records but the stream has %u",
				le32_load(rec->fixed), count);
	if (next != total)
		return cpr_fail(err, -EBADMSG, CPR_REC_END, 0, rec->offset,
				"%llu bytes follow the END record",
				(unsigned long long)(total - next));
	return 0;
}

int stream_walk(const uint8_t *buf, size_t len, stream_rec_fn fn, void *userdata,
		struct cpr_error *err)
{
	uint32_t count = 0;
	uint64_t off;
	int k = check_header(buf, len, err);

	if (k < 0)
		return k;
	for (off = (uint64_t)k; off < len;) {
		struct stream_rec rec;
		k = walk_one(buf, off, len, &rec, err);
		if (k < 0)
			return k;
		if (rec.type == CPR_REC_END) {
			int r = check_end(&rec, off + (uint64_t)k, len, count, err);
			return r < 0 || !fn ? r : fn(userdata, &rec, err);
		}
		if (++count >= CPR_RECORDS_MAX)
			return cpr_fail(err, -E2BIG, rec.type, rec.instance, off,
					"more than %u records", CPR_RECORDS_MAX - 1);
		if (fn) {
			int r = fn(userdata, &rec, err);
			if (r < 0)
				return r;
		}
		off += (uint64_t)k;
	}
	return cpr_fail(err, -EBADMSG, NO_TYPE, NO_INST, len, "stream ends without an END record");
}
