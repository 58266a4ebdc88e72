/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprdump: print a libcpr state stream, or QEMU's CPR state, as JSON, or
 * check it.  See cprdump(1).
 */
#include <getopt.h>
#include <stdio.h>

#include "cpr/state.h"
#include "internal.h"
#include "json-hex.h"
#include "json.h"
#include "qemu-cpr.h"
#include "stream.h"
#include "tool-util.h"

const char *tool_name = "cprdump";

enum format { FMT_AUTO, FMT_CPR, FMT_QEMU, FMT_QEMU_TRANSFER, FMT_QEMU_EXEC };

struct opts {
	bool check, force, compact, json;
	unsigned long level;
	enum format format;
	const char *path;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: cprdump [--check [--json]] [--max-level N] [--force] [--compact]\n"
		   "               [--format auto|cpr|qemu|qemu-transfer|qemu-exec] [FILE|-]\n"
		   "Print a libcpr state stream or QEMU's CPR state as JSON, or validate it with "
		   "--check.\n");
}

static void print_json(struct json_object *o, bool compact)
{
	puts(json_object_to_json_string_ext(
		o, compact ? JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE
			   : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
				     JSON_C_TO_STRING_NOSLASHESCAPE));
}

static struct json_object *error_json(const struct cpr_error *err)
{
	struct json_object *e = json_error(err);

	json_hex_error(e);
	return e;
}

static int report_error(const struct cpr_error *err, bool json, bool compact)
{
	if (json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "valid", json_object_new_boolean(0));
		json_object_object_add(o, "error", error_json(err));
		print_json(o, compact);
		json_object_put(o);
	} else {
		fprintf(stderr, "cprdump: refused: %s\n", err->message);
	}
	return EXIT_REFUSED;
}

static int check(const struct cpr_state *st, bool json, bool compact)
{
	struct cpr_state_info info;

	cpr_state_get_info(st, &info);
	if (json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "valid", json_object_new_boolean(1));
		json_object_object_add(o, "emit_level", json_object_new_int((int)info.emit_level));
		json_object_object_add(o, "min_reader_level",
				       json_object_new_int((int)info.min_reader_level));
		json_object_object_add(o, "producer", json_object_new_string(info.producer));
		json_object_object_add(o, "fds", json_object_new_int((int)cpr_state_fd_count(st)));
		json_object_object_add(o, "ramblocks",
				       json_object_new_int((int)cpr_state_ramblock_count(st)));
		json_object_object_add(o, "private",
				       json_object_new_int((int)cpr_state_private_count(st)));
		print_json(o, compact);
		json_object_put(o);
	} else {
		printf("valid: level %u (readable from level %u), producer '%s', %zu fds, %zu RAM "
		       "blocks, "
		       "%zu private records\n",
		       info.emit_level, info.min_reader_level, info.producer,
		       cpr_state_fd_count(st), cpr_state_ramblock_count(st),
		       cpr_state_private_count(st));
	}
	return EXIT_OK;
}

/*
 * The walker refuses a stream whose CRC does not match before it looks at a
 * record.  For --force, walk a copy carrying the CRC its bytes give, and put
 * the stream's own value back into the dump so that cprgen writes the same
 * bytes again.
 */
static int dump_bad_crc(const void *buf, size_t len, struct json_object **ret,
			struct cpr_error *err)
{
	_cleanup_free_ uint8_t *copy = malloc(len);
	struct json_object *h;
	uint32_t stated;
	int k;

	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	stated = le32_load(copy + HDR_CRC);
	le32_store(copy + HDR_CRC, 0);
	le32_store(copy + HDR_CRC, cpr_crc32c(0, copy, len));
	k = json_dump_stream(copy, len, ret, err);
	if (k < 0)
		return k;
	if (json_object_object_get_ex(*ret, "header", &h))
		json_object_object_add(h, "crc32c", json_object_new_uint64(stated));
	return 0;
}

static bool crc_failed(const struct cpr_error *err, size_t len)
{
	return err->code == -EBADMSG && err->offset == HDR_CRC && len >= CPR_HEADER_SIZE;
}

static int dump_cpr(const struct opts *o, const void *buf, size_t len)
{
	struct cpr_state *st = NULL;
	struct cpr_error err = { 0 }, walk_err = { 0 };
	struct json_object *dump = NULL;
	int k, rc = EXIT_OK;

	k = cpr_state_parse(buf, len, (uint32_t)o->level, &st, &err);
	if (o->check) {
		rc = k < 0 ? report_error(&err, o->json, o->compact)
			   : check(st, o->json, o->compact);
		cpr_state_free(st);
		return rc;
	}
	cpr_state_free(st);
	if (k < 0 && !o->force)
		return report_error(&err, true, o->compact);
	if (k < 0) {
		fprintf(stderr, "cprdump: refused (dumping anyway): %s\n", err.message);
		rc = EXIT_REFUSED;
	}
	k = json_dump_stream(buf, len, &dump, &walk_err);
	if (k < 0 && o->force && crc_failed(&walk_err, len)) {
		fprintf(stderr, "cprdump: the CRC32C check FAILED; decoding the records anyway\n");
		k = dump_bad_crc(buf, len, &dump, &walk_err);
	}
	if (k < 0) {
		fprintf(stderr, "cprdump: framing is unreadable: %s\n", walk_err.message);
		return EXIT_REFUSED;
	}
	json_hex_dump(dump);
	if (rc != EXIT_OK)
		json_object_object_add(dump, "refused", error_json(&err));
	print_json(dump, o->compact);
	json_object_put(dump);
	return rc;
}

static int qemu_refused(const struct opts *o, const struct qcpr_error *err)
{
	struct json_object *x, *e;
	char off[24];

	if (!o->json || !o->check) {
		fprintf(stderr, "cprdump: refused: QEMU CPR stream: %s\n", err->message);
		if (o->check)
			return EXIT_REFUSED;
	}
	x = json_object_new_object();
	e = json_object_new_object();
	snprintf(off, sizeof(off), "0x%zx", err->offset);
	json_object_object_add(x, "valid", json_object_new_boolean(0));
	json_object_object_add(x, "format", json_object_new_string("qemu-cpr"));
	json_object_object_add(e, "code", json_object_new_int(err->code));
	json_object_object_add(e, "errno", json_object_new_string(strerrorname_np(-err->code)));
	json_object_object_add(e, "offset", json_object_new_string(off));
	json_object_object_add(e, "message", json_object_new_string(err->message));
	json_object_object_add(x, "error", e);
	print_json(x, o->compact);
	json_object_put(x);
	return EXIT_REFUSED;
}

static int qemu_check(const struct opts *o, const struct qcpr_state *st)
{
	struct json_object *x;
	char line[256];

	if (!o->json) {
		qcpr_summary(st, line, sizeof(line));
		puts(line);
		return EXIT_OK;
	}
	x = json_object_new_object();
	json_object_object_add(x, "valid", json_object_new_boolean(1));
	json_object_object_add(x, "format", json_object_new_string("qemu-cpr"));
	json_object_object_add(x, "fds", json_object_new_int64((int64_t)st->n_fds));
	json_object_object_add(x, "markers", json_object_new_int64((int64_t)st->markers));
	json_object_object_add(x, "vfio",
			       json_object_new_string(qcpr_vfio_shape_name(st->vfio_shape)));
	json_object_object_add(x, "vfio_devices", json_object_new_int64((int64_t)st->n_vfio));
	print_json(x, o->compact);
	json_object_put(x);
	return EXIT_OK;
}

static int dump_qemu(const struct opts *o, const void *buf, size_t len)
{
	enum qcpr_fd_encoding enc = o->format == FMT_QEMU_TRANSFER ? QCPR_FD_MARKER
				    : o->format == FMT_QEMU_EXEC   ? QCPR_FD_BE32
								   : QCPR_FD_AUTO;
	struct qcpr_state *st = NULL;
	struct qcpr_error err = { 0 };
	struct json_object *x;
	int k;

	k = qcpr_parse(buf, len, enc, &st, &err);
	if (k == -ENOMEM) {
		fprintf(stderr, "cprdump: out of memory\n");
		return EXIT_TEMP;
	}
	if (k < 0)
		return qemu_refused(o, &err);
	if (o->check) {
		k = qemu_check(o, st);
		qcpr_free(st);
		return k;
	}
	x = qcpr_to_json(st);
	print_json(x, o->compact);
	json_object_put(x);
	qcpr_free(st);
	return EXIT_OK;
}

static int parse_format(const char *s, enum format *ret)
{
	static const char *const names[] = { "auto", "cpr", "qemu", "qemu-transfer", "qemu-exec" };

	for (unsigned i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i]) == 0) {
			*ret = (enum format)i;
			return 0;
		}
	fprintf(stderr, "cprdump: --format must be auto, cpr, qemu, qemu-transfer or qemu-exec\n");
	return -EINVAL;
}

static int parse_level(const char *s, unsigned long *ret)
{
	char *end;
	unsigned long level = strtoul(s, &end, 10);

	if (*end || level < CPR_LEVEL_MIN || level > CPR_LEVEL_MAX) {
		fprintf(stderr, "cprdump: --max-level must be %u..%u\n", CPR_LEVEL_MIN,
			CPR_LEVEL_MAX);
		return -EINVAL;
	}
	*ret = level;
	return 0;
}

/* 0 to go on, -1 when done (--help), else the exit code. */
static int parse_args(int argc, char *argv[], struct opts *o)
{
	static const struct option opts[] = {
		{ "check", no_argument, NULL, 'c' }, { "max-level", required_argument, NULL, 'l' },
		{ "force", no_argument, NULL, 'f' }, { "compact", no_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },  { "format", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },  {}
	};
	int c;

	while ((c = getopt_long(argc, argv, "cl:fCjF:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->check = true;
			break;
		case 'l':
			if (parse_level(optarg, &o->level) < 0)
				return EXIT_USAGE;
			break;
		case 'f':
			o->force = true;
			break;
		case 'C':
			o->compact = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'F':
			if (parse_format(optarg, &o->format) < 0)
				return EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	o->path = optind < argc ? argv[optind] : "-";
	return 0;
}

int main(int argc, char *argv[])
{
	struct opts o = { 0 };
	_cleanup_free_ void *buf = NULL;
	long len;
	int k;

	k = parse_args(argc, argv, &o);
	if (k)
		return k < 0 ? EXIT_OK : k;
	len = tool_read(o.path, CPR_STREAM_MAX, &buf);
	if (len == -EFBIG) {
		fprintf(stderr, "cprdump: input exceeds the stream limit of %u bytes\n",
			CPR_STREAM_MAX);
		return EXIT_REFUSED;
	}
	if (len < 0) {
		fprintf(stderr, "cprdump: cannot read input: %s\n", strerror((int)-len));
		return len == -ENOENT || len == -EACCES || len == -EISDIR ? EXIT_USAGE : EXIT_TEMP;
	}
	if (o.format >= FMT_QEMU || (o.format == FMT_AUTO && qcpr_detect(buf, (size_t)len)))
		return dump_qemu(&o, buf, (size_t)len);
	return dump_cpr(&o, buf, (size_t)len);
}
