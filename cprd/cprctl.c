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

#include "client.h"
#include "cprctl.h"
#include "cprctl-ops.h"

struct cprctl_options cprctl_opts;

static const struct cprctl_command commands[] = {
	{
		.name = "policy",
		.run = cprctl_policy_main,
		.usage = "policy check FILE\n"
			 "policy dump FILE [--pfc|--bpf]\n",
		.summary = "check a seccomp policy file or print the filter it compiles to",
	},
	{ "hello", cprctl_hello_main, "hello [--socket PATH]\n",
	  "the daemon's protocol version, state levels, ops and limits" },
	{ "status", cprctl_status_main, "status [--socket PATH]\n",
	  "bundles, fds and connections the daemon holds" },
	{ "list", cprctl_list_main, "list [--socket PATH] [PREFIX]\n",
	  "the bundles visible to the caller" },
	{ "show", cprctl_show_main, "show [--socket PATH] NAME\n", "one bundle in detail" },
	{ "store", cprctl_store_main,
	  "store [--socket PATH] --stream FILE [--consumer-uid UID]... [--consumer-gid GID]...\n"
	  "      [--ttl MS] [--tie] [--durable] [--fd N]... NAME [FILE]...\n",
	  "create a bundle, put its fds and seal it with a state stream" },
	{ "claim", cprctl_claim_main,
	  "claim [--socket PATH] [--lease MS] [--save DIR] [--ack | --take] NAME [PROG [ARG]...]\n",
	  "take a sealed bundle: save its contents, or run PROG with its fds" },
	{ "ack", cprctl_ack_main, "ack [--socket PATH] NAME TOKEN\n",
	  "confirm a claim: the daemon closes its copies" },
	{ "release", cprctl_release_main, "release [--socket PATH] NAME TOKEN\n",
	  "give a claimed bundle back (sealed again)" },
	{ "renew", cprctl_renew_main, "renew [--socket PATH] [--lease MS] NAME TOKEN\n",
	  "extend the lease of a claim" },
	{ "drop", cprctl_drop_main, "drop [--socket PATH] NAME\n",
	  "delete a bundle the caller owns" },
	{ "daemon", cprctl_daemon_main,
	  "daemon [--socket PATH] status|debug\ndaemon [--socket PATH] [--exe PATH] upgrade\n",
	  "daemon status or counts, or hand every bundle to a new cprd process" },
	{ "qemu", cprctl_qemu_main,
	  "qemu upgrade --qmp PATH --binary PATH [--new-qmp PATH] [--workdir DIR] [--name NAME] "
	  "[--add ARG]... [--drop -OPTION]... [--timeout MS] [--keep-old] [--direct] [--socket "
	  "PATH]\n",
	  "upgrade a running QEMU by cpr-transfer through cprd, rolling back on failure" },
	{ "request", cprctl_request_main, "request [--socket PATH] JSON\n",
	  "send one raw request object and print the reply" },
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
	       "  --timeout MS  give up on the daemon after MS milliseconds (default 30000)\n"
	       "  --help      this text\n"
	       "  --version   the version of cprctl\n"
	       "\nExit status: 0 success, 1 refused or failed, 100 usage or\n"
	       "configuration error, 111 temporary failure.  See cprctl(1).\n");
}

/* --timeout MS: the bound on connecting to the daemon and on each reply. */
static int parse_timeout(const char *s)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > CPRCTL_TIMEOUT_MAX_MS || *s == '-')
		return -EINVAL;
	return cprd_set_timeout((int)v);
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
	enum { OPT_VERSION = 0x101, OPT_TIMEOUT };
	static const struct option options[] = { { "json", no_argument, NULL, CPRCTL_OPT_JSON },
						 { "help", no_argument, NULL, CPRCTL_OPT_HELP },
						 { "version", no_argument, NULL, OPT_VERSION },
						 { "timeout", required_argument, NULL,
						   OPT_TIMEOUT },
						 {} };
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
		case OPT_TIMEOUT:
			if (parse_timeout(optarg) < 0)
				return cprctl_usage_error("--timeout: '%s' is not a number of "
							  "milliseconds from 1 to %d",
							  optarg, CPRCTL_TIMEOUT_MAX_MS);
			break;
		default:
			return cprctl_usage_error("invalid option");
		}
	}
	if (optind >= argc)
		return cprctl_usage_error("missing command");
	cmd = find_command(argv[optind]);
	if (!cmd) {
		char buf[40];

		return cprctl_usage_error(
			"unknown command '%s'",
			cpr_quote(buf, sizeof(buf), argv[optind], strlen(argv[optind])));
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* commands run getopt_long afresh over their own argv */
	return cmd->run(argc, argv);
}
