/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cprdump: print a libcpr state stream as JSON, or check it.  See cprdump(1). */
#include <getopt.h>
#include <stdio.h>

#include "cpr/state.h"
#include "internal.h"
#include "json.h"
#include "tool-util.h"

const char *tool_name = "cprdump";

static void usage(FILE *f)
{
	fprintf(f, "usage: cprdump [--check] [--max-level N] [--force] [--compact] [FILE|-]\n"
		   "Print a libcpr state stream as JSON, or validate it with --check.\n");
}

static void print_json(struct json_object *o, bool compact)
{
	puts(json_object_to_json_string_ext(
		o, compact ? JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE
			   : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
				     JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int report_error(const struct cpr_error *err, bool json, bool compact)
{
	if (json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "valid", json_object_new_boolean(0));
		json_object_object_add(o, "error", json_error(err));
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

int main(int argc, char *argv[])
{
	static const struct option opts[] = { { "check", no_argument, NULL, 'c' },
					      { "max-level", required_argument, NULL, 'l' },
					      { "force", no_argument, NULL, 'f' },
					      { "compact", no_argument, NULL, 'C' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	bool do_check = false, force = false, compact = false, json = false;
	_cleanup_free_ void *buf = NULL;
	struct cpr_state *st = NULL;
	struct cpr_error err = { 0 };
	struct json_object *o = NULL;
	unsigned long level = 0;
	long len;
	int c, k;

	while ((c = getopt_long(argc, argv, "cl:fCjh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			do_check = true;
			break;
		case 'l': {
			char *end;
			level = strtoul(optarg, &end, 10);
			if (*end || level < CPR_LEVEL_MIN || level > CPR_LEVEL_MAX) {
				fprintf(stderr, "cprdump: --max-level must be %u..%u\n",
					CPR_LEVEL_MIN, CPR_LEVEL_MAX);
				return EXIT_USAGE;
			}
			break;
		}
		case 'f':
			force = true;
			break;
		case 'C':
			compact = true;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	len = tool_read(optind < argc ? argv[optind] : "-", CPR_STREAM_MAX, &buf);
	if (len == -EFBIG) {
		fprintf(stderr, "cprdump: input exceeds the stream limit of %u bytes\n",
			CPR_STREAM_MAX);
		return EXIT_REFUSED;
	}
	if (len < 0) {
		fprintf(stderr, "cprdump: cannot read input: %s\n", strerror((int)-len));
		return len == -ENOENT || len == -EACCES || len == -EISDIR ? EXIT_USAGE : EXIT_TEMP;
	}
	k = cpr_state_parse(buf, (size_t)len, (uint32_t)level, &st, &err);
	if (do_check) {
		int r = k < 0 ? report_error(&err, json, compact) : check(st, json, compact);
		cpr_state_free(st);
		return r;
	}
	cpr_state_free(st);
	if (k < 0 && !force)
		return report_error(&err, true, compact);
	if (k < 0)
		fprintf(stderr, "cprdump: refused (dumping anyway): %s\n", err.message);
	k = json_dump_stream(buf, (size_t)len, &o, &err);
	if (k < 0) {
		fprintf(stderr, "cprdump: framing is unreadable: %s\n", err.message);
		return EXIT_REFUSED;
	}
	print_json(o, compact);
	json_object_put(o);
	return EXIT_OK;
}
