/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cprgen: build a libcpr state stream from its JSON description.  See cprgen(1). */
#include <getopt.h>
#include <stdio.h>

#include "cpr/state.h"
#include "internal.h"
#include "json-hex.h"
#include "json.h"
#include "tool-util.h"

const char *tool_name = "cprgen";

static void usage(FILE *f)
{
	fprintf(f, "usage: cprgen [-o OUTPUT] [JSON-FILE|-]\n"
		   "Write the state stream a JSON description (as cprdump prints) describes.\n");
}

int main(int argc, char *argv[])
{
	static const struct option opts[] = { { "output", required_argument, NULL, 'o' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_free_ void *text = NULL, *out = NULL;
	struct json_tokener *tok = NULL;
	struct json_object *o;
	struct cpr_error err = { 0 };
	const char *output = "-";
	size_t out_len;
	long len;
	int c, k;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
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
	len = tool_read(optind < argc ? argv[optind] : "-", 4u * CPR_STREAM_MAX, &text);
	if (len < 0) {
		fprintf(stderr, "cprgen: cannot read input: %s\n", strerror((int)-len));
		return len == -ENOENT || len == -EACCES ? EXIT_USAGE : EXIT_TEMP;
	}
	tok = json_tokener_new_ex(64);
	if (!tok)
		return EXIT_TEMP;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success) {
		fprintf(stderr, "cprgen: input is not valid JSON: %s\n",
			json_tokener_error_desc(json_tokener_get_error(tok)));
		json_object_put(o);
		json_tokener_free(tok);
		return EXIT_REFUSED;
	}
	json_tokener_free(tok);
	if (json_hex_undo(o) < 0) {
		fprintf(stderr, "cprgen: a \"0x\" type, offset or address is not a hex number\n");
		json_object_put(o);
		return EXIT_REFUSED;
	}
	k = json_gen_stream(o, &out, &out_len, &err);
	json_object_put(o);
	if (k < 0) {
		fprintf(stderr, "cprgen: %s\n", k == -EINVAL ? err.message : strerror(-k));
		return k == -EINVAL ? EXIT_REFUSED : EXIT_TEMP;
	}
	k = tool_write(output, out, out_len);
	if (k < 0) {
		fprintf(stderr, "cprgen: cannot write '%s': %s\n", output, strerror(-k));
		return EXIT_TEMP;
	}
	return EXIT_OK;
}
