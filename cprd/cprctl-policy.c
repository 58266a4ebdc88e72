/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprctl policy: check a cpr-policy(5) file, or print the filter it
 * compiles to as libseccomp PFC text or raw BPF.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <json-c/json.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cpr/policy.h>

#include "cprctl.h"
#include "policy-internal.h"

enum dump_format { DUMP_PFC, DUMP_BPF };

/*
 * Options of a policy verb: --json, --help and, for dump, --pfc/--bpf, then
 * one FILE.  Returns -1 to go on with *ret_file, or an exit status.
 */
static int parse_verb_options(int argc, char *argv[], bool dump, enum dump_format *format,
			      const char **ret_file)
{
	enum { OPT_PFC = 0x200, OPT_BPF };
	static const struct option options[] = { { "json", no_argument, NULL, CPRCTL_OPT_JSON },
						 { "help", no_argument, NULL, CPRCTL_OPT_HELP },
						 { "pfc", no_argument, NULL, OPT_PFC },
						 { "bpf", no_argument, NULL, OPT_BPF },
						 {} };
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case CPRCTL_OPT_JSON:
			cprctl_opts.json = true;
			break;
		case CPRCTL_OPT_HELP:
			cprctl_print_usage(stdout, "policy");
			return CPRCTL_EXIT_OK;
		case OPT_PFC:
		case OPT_BPF:
			if (!dump)
				return cprctl_usage_error("--pfc and --bpf go with 'dump'");
			*format = c == OPT_PFC ? DUMP_PFC : DUMP_BPF;
			break;
		default:
			return cprctl_usage_error("invalid option for 'policy %s'", argv[0]);
		}
	}
	if (argc - optind != 1)
		return cprctl_usage_error("'policy %s' takes exactly one FILE", argv[0]);
	*ret_file = argv[optind];
	return -1;
}

static const char *errno_name(int r)
{
	const char *n = policy_errno_name(-r);

	return n ? n : "unknown";
}

static void json_put_error(json_object *o, const struct cpr_error *err, int r)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "errno", json_object_new_string(errno_name(r)));
	json_object_object_add(
		e, "line", json_object_new_int64(err->instance == UINT32_MAX ? 0 : err->instance));
	json_object_object_add(
		e, "column",
		json_object_new_int64(err->offset == UINT64_MAX ? 0 : (int64_t)err->offset));
	json_object_object_add(e, "message", json_object_new_string(err->message));
	json_object_object_add(o, "error", e);
}

static json_object *json_arches(const struct cpr_policy *p)
{
	json_object *a = json_object_new_array();

	json_object_array_add(a, json_object_new_string(policy_arch_name(seccomp_arch_native())));
	for (size_t i = 0; i < p->n_arches; i++)
		json_object_array_add(a, json_object_new_string(policy_arch_name(p->arches[i])));
	return a;
}

static int check_report_json(const char *file, const struct cpr_policy *p,
			     const struct cpr_error *err, int r)
{
	json_object *o = json_object_new_object();
	char buf[32];

	json_object_object_add(o, "file", json_object_new_string(file));
	json_object_object_add(o, "valid", json_object_new_boolean(r >= 0));
	if (r >= 0) {
		json_object_object_add(o, "default",
				       json_object_new_string(policy_action_format(
					       p->default_action, buf, sizeof(buf))));
		json_object_object_add(o, "rules", json_object_new_int64((int64_t)p->n_rules));
		json_object_object_add(o, "bpf_instructions",
				       json_object_new_int64((int64_t)p->n_insns));
		json_object_object_add(o, "architectures", json_arches(p));
	} else {
		json_put_error(o, err, r);
	}
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return r >= 0 ? CPRCTL_EXIT_OK : cprctl_errno_exit(r);
}

static int check_report_text(const char *file, const struct cpr_policy *p,
			     const struct cpr_error *err, int r)
{
	char buf[32], name[PATH_MAX];

	if (r < 0) {
		fprintf(stderr, "%s\n", err->message[0] ? err->message : strerror(-r));
		return cprctl_errno_exit(r);
	}
	printf("%s: valid: default %s, %zu rules, %zu BPF instructions, architectures %s",
	       cpr_quote(name, sizeof(name), file, strlen(file)),
	       policy_action_format(p->default_action, buf, sizeof(buf)), p->n_rules, p->n_insns,
	       policy_arch_name(seccomp_arch_native()));
	for (size_t i = 0; i < p->n_arches; i++)
		printf(" %s", policy_arch_name(p->arches[i]));
	putchar('\n');
	return CPRCTL_EXIT_OK;
}

static int verb_check(int argc, char *argv[])
{
	struct cpr_error err = { .message = "" };
	struct cpr_policy *p = NULL;
	const char *file;
	int r, ret;

	r = parse_verb_options(argc, argv, false, NULL, &file);
	if (r >= 0)
		return r;
	r = cpr_policy_load(file, &p, &err);
	if (cprctl_opts.json)
		ret = check_report_json(file, p, &err, r);
	else
		ret = check_report_text(file, p, &err, r);
	cpr_policy_free(p);
	return ret;
}

static int verb_dump(int argc, char *argv[])
{
	enum dump_format format = DUMP_PFC;
	struct cpr_error err = { .message = "" };
	struct cpr_policy *p = NULL;
	const char *file;
	int r;

	r = parse_verb_options(argc, argv, true, &format, &file);
	if (r >= 0)
		return r;
	if (cprctl_opts.json)
		return cprctl_usage_error("'policy dump' has no JSON form; use --pfc or --bpf");
	if (format == DUMP_BPF && isatty(STDOUT_FILENO))
		return cprctl_usage_error("refusing to write binary BPF to a terminal");
	r = cpr_policy_load(file, &p, &err);
	if (r < 0) {
		fprintf(stderr, "%s\n", err.message[0] ? err.message : strerror(-r));
		return cprctl_errno_exit(r);
	}
	fflush(stdout);
	r = format == DUMP_BPF ? cpr_policy_export_bpf(p, STDOUT_FILENO)
			       : cpr_policy_export_pfc(p, STDOUT_FILENO);
	cpr_policy_free(p);
	if (r < 0) {
		cprctl_warnx("cannot write the filter: %s", strerror(-r));
		return cprctl_errno_exit(r);
	}
	return CPRCTL_EXIT_OK;
}

int cprctl_policy_main(int argc, char *argv[])
{
	static const struct {
		const char *verb;
		int (*run)(int argc, char *argv[]);
	} verbs[] = {
		{ "check", verb_check },
		{ "dump", verb_dump },
	};
	char buf[40];

	if (argc < 2)
		return cprctl_usage_error("'policy' needs a verb: check or dump");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		cprctl_print_usage(stdout, "policy");
		return CPRCTL_EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (strcmp(argv[1], verbs[i].verb) == 0)
			return verbs[i].run(argc - 1, argv + 1);
	return cprctl_usage_error("unknown verb 'policy %s'",
				  cpr_quote(buf, sizeof(buf), argv[1], strlen(argv[1])));
}
