/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprctl: the operator's and scripts' front end.  Generic options, then a
 * command family looked up in a table; each family parses the rest.  Human
 * output by default, --json for scripts; exit status as in cprctl(1).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cprctl.h"

struct cprctl_options cprctl_opts;

static const struct cprctl_command commands[] = {
	{
		.name = "policy",
		.run = cprctl_policy_main,
		.usage = "policy check FILE\n"
			 "policy dump FILE [--pfc|--bpf]\n",
		.summary = "check a seccomp policy file or print the filter it compiles to",
	},
};

void cprctl_warnx(const char *fmt, ...)
{
	va_list ap;

	fputs("cprctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cprctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("cprctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'cprctl --help'.\n", stderr);
	return CPRCTL_EXIT_USAGE;
}

int cprctl_errno_exit(int r)
{
	switch (-r) {
	case EAGAIN:
	case EINTR:
	case EIO:
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
	case ETIMEDOUT:
		return CPRCTL_EXIT_TEMP;
	default:
		return CPRCTL_EXIT_FAILED;
	}
}

/* Each line of a command's usage, indented under "Usage:". */
static void print_command_usage(FILE *f, const struct cprctl_command *c)
{
	const char *s = c->usage;

	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);

		fprintf(f, "  cprctl [--json] %.*s\n", (int)n, s);
		s += n + (nl ? 1 : 0);
	}
}

void cprctl_print_usage(FILE *f, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!name || strcmp(commands[i].name, name) == 0)
			print_command_usage(f, &commands[i]);
}

static void help(void)
{
	printf("Usage:\n");
	cprctl_print_usage(stdout, NULL);
	printf("\nCommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		printf("  %-10s %s\n", commands[i].name, commands[i].summary);
	printf("\nOptions:\n"
	       "  --json      machine-readable output (one JSON object) on stdout\n"
	       "  --help      this text\n"
	       "  --version   the version of cprctl\n"
	       "\nExit status: 0 success, 1 refused or failed, 100 usage or\n"
	       "configuration error, 111 temporary failure.  See cprctl(1).\n");
}

static const struct cprctl_command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char *argv[])
{
	enum { OPT_VERSION = 0x101 };
	static const struct option options[] = {
		{ "json", no_argument, NULL, CPRCTL_OPT_JSON },
		{ "help", no_argument, NULL, CPRCTL_OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{}
	};
	const struct cprctl_command *cmd;
	int c;

	/* "+": stop at the command; what follows belongs to it. */
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
		switch (c) {
		case CPRCTL_OPT_JSON:
			cprctl_opts.json = true;
			break;
		case CPRCTL_OPT_HELP:
			help();
			return CPRCTL_EXIT_OK;
		case OPT_VERSION:
			printf("cprctl %s\n", PACKAGE_VERSION);
			return CPRCTL_EXIT_OK;
		default:
			return cprctl_usage_error("invalid option");
		}
	}
	if (optind >= argc)
		return cprctl_usage_error("missing command");
	cmd = find_command(argv[optind]);
	if (!cmd) {
		char buf[40];

		return cprctl_usage_error("unknown command '%s'",
					  cpr_quote(buf, sizeof(buf), argv[optind],
						    strlen(argv[optind])));
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* commands run getopt_long afresh over their own argv */
	return cmd->run(argc, argv);
}
