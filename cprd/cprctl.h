/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cprctl: the front end's contract with its command families. */
#ifndef CPR_CPRCTL_H
#define CPR_CPRCTL_H

#include <stdbool.h>
#include <stdio.h>

#include "internal.h"

/* Exit status, cprctl(1) EXIT STATUS. */
#define CPRCTL_EXIT_OK 0
#define CPRCTL_EXIT_FAILED 1  /* refused, invalid, or the operation failed */
#define CPRCTL_EXIT_USAGE 100 /* usage or configuration error: permanent */
#define CPRCTL_EXIT_TEMP 111  /* temporary failure: retrying may help */

#define CPRCTL_TIMEOUT_MAX_MS 3600000 /* --timeout */

/* Options shared by every command; set by the front end and by commands. */
struct cprctl_options {
	bool json; /* --json: machine-readable output on stdout */
};
extern struct cprctl_options cprctl_opts;

/*
 * A command family: run() gets argv[0] = its name and returns an exit
 * status; usage is printed by "cprctl --help", one line per form.
 */
struct cprctl_command {
	const char *name;
	int (*run)(int argc, char *argv[]);
	const char *usage;
	const char *summary;
};

/* cprctl-policy.c */
int cprctl_policy_main(int argc, char *argv[]);

/* cprctl.c */
/* "cprctl: message" on stderr and a pointer to --help; returns 100. */
int cprctl_usage_error(const char *fmt, ...) _cpr_printf_(1, 2);
/* "cprctl: message" on stderr. */
void cprctl_warnx(const char *fmt, ...) _cpr_printf_(1, 2);
/* Exit status for a failed call returning -errno: 111 if temporary, else 1. */
int cprctl_errno_exit(int r);
/* Print a command family's usage lines (from the table) to @f. */
void cprctl_print_usage(FILE *f, const char *name);
/* "--json" and "--help" as getopt_long options with these values. */
#define CPRCTL_OPT_JSON 0x100
#define CPRCTL_OPT_HELP 'h'

#endif
