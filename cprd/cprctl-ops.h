/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cprctl commands that talk to cprd (cprd-protocol(7)). */
#ifndef CPRD_CPRCTL_OPS_H
#define CPRD_CPRCTL_OPS_H

struct json_object;

/* cprctl-ops.c */
int cprctl_hello_main(int argc, char *argv[]);
int cprctl_status_main(int argc, char *argv[]);
int cprctl_list_main(int argc, char *argv[]);
int cprctl_show_main(int argc, char *argv[]);
int cprctl_request_main(int argc, char *argv[]);
int cprctl_daemon_main(int argc, char *argv[]);
/* Connect to cprd: @path or $CPRD_SOCKET or the default. */
int cprctl_connect(const char *path, int *ret_fd);
/* Print an error reply (or a failed call) and return the exit status. */
int cprctl_fail(const char *what, int r, struct json_object *reply);
/* --json: print @o on stdout. */
void cprctl_print_json(struct json_object *o);

/* cprctl-qemu.c: qemu upgrade */
int cprctl_qemu_main(int argc, char *argv[]);

/* cprctl-bundle.c */
int cprctl_store_main(int argc, char *argv[]);
int cprctl_claim_main(int argc, char *argv[]);
int cprctl_ack_main(int argc, char *argv[]);
int cprctl_release_main(int argc, char *argv[]);
int cprctl_renew_main(int argc, char *argv[]);
int cprctl_drop_main(int argc, char *argv[]);

#endif
