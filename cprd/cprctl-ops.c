/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cprctl commands that read from cprd: hello, status, list, show, a raw
 * request, and "daemon status|upgrade|debug".  Human output by default, the
 * daemon's reply as JSON with --json.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client.h"
#include "cprctl.h"
#include "cprctl-ops.h"
#include "scm.h"

static const char *arg_socket;

int cprctl_connect(const char *path, int *ret_fd)
{
	int r = cprd_connect(path ? path : arg_socket, ret_fd);

	if (r < 0)
		cprctl_warnx("cannot connect to %s: %s", cprd_socket_path(path ? path : arg_socket),
			     strerror(-r));
	return r;
}

int cprctl_fail(const char *what, int r, struct json_object *reply)
{
	if (cprctl_opts.json && reply)
		cprctl_print_json(reply);
	if (reply && *cprd_reply_message(reply))
		cprctl_warnx("%s: %s (%s)", what, cprd_reply_message(reply), strerror(-r));
	else
		cprctl_warnx("%s: %s", what, strerror(-r));
	json_object_put(reply);
	/* a refusal by the daemon is permanent for this request; transport is not */
	if (r == -ECONNREFUSED || r == -ECONNRESET || r == -ENOENT || r == -EPIPE)
		return reply ? CPRCTL_EXIT_FAILED : CPRCTL_EXIT_TEMP;
	return cprctl_errno_exit(r);
}

void cprctl_print_json(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int64_t get_int(struct json_object *o, const char *path)
{
	char key[64];
	const char *dot;
	struct json_object *v;

	while ((dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		if (!json_object_object_get_ex(o, key, &o))
			return -1;
		path = dot + 1;
	}
	return json_object_object_get_ex(o, path, &v) ? json_object_get_int64(v) : -1;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

/*
 * Common options of the commands: --socket PATH, and --exe PATH where
 * @ret_exe is given (daemon upgrade).
 */
static int parse_opts(int argc, char *argv[], int min_args, int max_args, const char **ret_exe)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "exe", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, CPRCTL_OPT_JSON },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, ret_exe ? "s:e:h" : "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			arg_socket = optarg;
			break;
		case 'e':
			if (!ret_exe)
				return cprctl_usage_error("%s: invalid option", argv[0]);
			*ret_exe = optarg;
			break;
		case CPRCTL_OPT_JSON:
			cprctl_opts.json = true;
			break;
		case 'h':
			cprctl_print_usage(stdout, argv[0]);
			exit(0);
		default:
			return cprctl_usage_error("%s: invalid option", argv[0]);
		}
	}
	if (argc - optind < min_args || argc - optind > max_args)
		return cprctl_usage_error("%s: wrong number of arguments", argv[0]);
	return 0;
}

static int parse_socket_opt(int argc, char *argv[], int min_args, int max_args)
{
	return parse_opts(argc, argv, min_args, max_args, NULL);
}

/* Connect, send {"op": @op [, "name": @name]}, return the reply or fail. */
static int simple(const char *op, const char *name, struct json_object **ret)
{
	struct json_object *reply = NULL;
	int sock, r;

	if (cprctl_connect(NULL, &sock) < 0)
		return CPRCTL_EXIT_TEMP;
	r = cprd_call_name(sock, op, name, &reply);
	close(sock);
	if (r < 0)
		return cprctl_fail(op, r, reply);
	*ret = reply;
	return 0;
}

int cprctl_hello_main(int argc, char *argv[])
{
	struct json_object *reply = NULL, *ops;
	int r = parse_socket_opt(argc, argv, 0, 0);

	if (r || (r = simple("hello", NULL, &reply)))
		return r;
	if (cprctl_opts.json) {
		cprctl_print_json(reply);
	} else {
		printf("server:   %s\nprotocol: %lld\nlevels:   %s\npeer:     uid %lld pid "
		       "%lld%s\n",
		       get_str(reply, "server"), (long long)get_int(reply, "protocol"),
		       json_object_to_json_string(json_object_object_get(reply, "levels")),
		       (long long)get_int(reply, "peer.uid"), (long long)get_int(reply, "peer.pid"),
		       get_int(reply, "peer.admin") == 1 ? " (admin)" : "");
		ops = json_object_object_get(reply, "ops");
		printf("ops:     ");
		for (size_t i = 0; i < json_object_array_length(ops); i++)
			printf(" %s", json_object_get_string(json_object_array_get_idx(ops, i)));
		printf("\n");
	}
	json_object_put(reply);
	return 0;
}

int cprctl_status_main(int argc, char *argv[])
{
	struct json_object *reply = NULL;
	int r = parse_socket_opt(argc, argv, 0, 0);

	if (r || (r = simple("status", NULL, &reply)))
		return r;
	if (cprctl_opts.json)
		cprctl_print_json(reply);
	else
		printf("pid %lld, up %lld s, fd store %s\n"
		       "bundles: %lld open, %lld sealed, %lld claimed; %lld fds held\n"
		       "connections: %lld; requests: %lld\n"
		       "you (uid %lld): %lld of %lld fds, %lld of %lld bundles\n",
		       (long long)get_int(reply, "pid"),
		       (long long)get_int(reply, "uptime_ms") / 1000,
		       get_int(reply, "fdstore") == 1 ? "on" : "off",
		       (long long)get_int(reply, "bundles.open"),
		       (long long)get_int(reply, "bundles.sealed"),
		       (long long)get_int(reply, "bundles.claimed"),
		       (long long)get_int(reply, "fds"), (long long)get_int(reply, "connections"),
		       (long long)get_int(reply, "requests"), (long long)get_int(reply, "you.uid"),
		       (long long)get_int(reply, "you.fds"),
		       (long long)get_int(reply, "you.quota_fds"),
		       (long long)get_int(reply, "you.bundles"),
		       (long long)get_int(reply, "you.quota_bundles"));
	json_object_put(reply);
	return 0;
}

int cprctl_list_main(int argc, char *argv[])
{
	struct json_object *reply = NULL, *req, *a;
	int sock, r = parse_socket_opt(argc, argv, 0, 1);

	if (r)
		return r;
	if (cprctl_connect(NULL, &sock) < 0)
		return CPRCTL_EXIT_TEMP;
	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("list"));
	if (optind < argc)
		json_object_object_add(req, "prefix", json_object_new_string(argv[optind]));
	r = cprd_call(sock, req, NULL, 0, &reply);
	json_object_put(req);
	close(sock);
	if (r < 0)
		return cprctl_fail("list", r, reply);
	if (cprctl_opts.json) {
		cprctl_print_json(reply);
	} else {
		a = json_object_object_get(reply, "bundles");
		printf("%-32s %-8s %10s %6s\n", "NAME", "STATE", "OWNER", "FDS");
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			struct json_object *b = json_object_array_get_idx(a, i);

			printf("%-32s %-8s %10lld %6lld\n", get_str(b, "name"), get_str(b, "state"),
			       (long long)get_int(b, "owner_uid"), (long long)get_int(b, "fds"));
		}
	}
	json_object_put(reply);
	return 0;
}

/* "1,2,3" or "none" */
static void print_ids(struct json_object *a)
{
	size_t n = json_object_array_length(a);

	if (n == 0)
		printf("none");
	for (size_t i = 0; i < n; i++)
		printf("%s%lld", i ? "," : "",
		       (long long)json_object_get_int64(json_object_array_get_idx(a, i)));
}

/* A bundle fed by a QEMU's cpr channel: QEMU's fds by name and kind. */
static void show_qemu_human(struct json_object *st)
{
	struct json_object *a = json_object_object_get(st, "fd_records");
	size_t n = a ? json_object_array_length(a) : 0;

	printf("stream:    %lld bytes, QEMU CPR state, vfio %s, %zu fd records\n",
	       (long long)get_int(st, "bytes"), get_str(st, "vfio"), n);
	for (size_t i = 0; i < n; i++) {
		struct json_object *x = json_object_array_get_idx(a, i);

		printf("  fd %-3lld %-8s %s id %lld\n", (long long)get_int(x, "slot"),
		       get_str(x, "kind"), get_str(x, "name"), (long long)get_int(x, "id"));
	}
}

static void show_human(struct json_object *b)
{
	struct json_object *st = json_object_object_get(b, "stream"), *lease;

	printf("name:      %s\nstate:     %s\nowner:     uid %lld gid %lld pid %lld\n",
	       get_str(b, "name"), get_str(b, "state"), (long long)get_int(b, "owner_uid"),
	       (long long)get_int(b, "owner_gid"), (long long)get_int(b, "owner_pid"));
	printf("consumers: uids ");
	print_ids(json_object_object_get(json_object_object_get(b, "consumers"), "uids"));
	printf(", gids ");
	print_ids(json_object_object_get(json_object_object_get(b, "consumers"), "gids"));
	printf("\n");
	printf("fds:       %lld\nage:       %lld ms\nttl:       %lld ms\nclaims:    %lld\n"
	       "tied:      %s\npersisted: %s\n",
	       (long long)get_int(b, "fds"), (long long)get_int(b, "age_ms"),
	       (long long)get_int(b, "ttl_ms"), (long long)get_int(b, "claims"),
	       get_int(b, "tied") == 1 ? "yes" : "no", get_int(b, "persisted") == 1 ? "yes" : "no");
	if (json_object_object_get_ex(b, "lease", &lease))
		printf("lease:     uid %lld pid %lld, %lld ms left\n",
		       (long long)get_int(lease, "uid"), (long long)get_int(lease, "pid"),
		       (long long)get_int(lease, "expires_in_ms"));
	if (st && strcmp(get_str(st, "format"), "qemu-cpr") == 0)
		show_qemu_human(st);
	else if (st)
		printf("stream:    %lld bytes, level %lld, generation %lld, producer %s, "
		       "%zu ramblocks\n",
		       (long long)get_int(st, "bytes"), (long long)get_int(st, "level"),
		       (long long)get_int(st, "generation"), get_str(st, "producer"),
		       json_object_array_length(json_object_object_get(st, "ramblocks")));
}

int cprctl_show_main(int argc, char *argv[])
{
	struct json_object *reply = NULL;
	int r = parse_socket_opt(argc, argv, 1, 1);

	if (r || (r = simple("show", argv[optind], &reply)))
		return r;
	if (cprctl_opts.json)
		cprctl_print_json(reply);
	else
		show_human(json_object_object_get(reply, "bundle"));
	json_object_put(reply);
	return 0;
}

/* request JSON: send one request object as is (no fds), print the reply. */
int cprctl_request_main(int argc, char *argv[])
{
	struct json_object *reply = NULL, *req;
	int sock, r = parse_socket_opt(argc, argv, 1, 1);

	if (r)
		return r;
	req = json_tokener_parse(argv[optind]);
	if (!req || !json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		return cprctl_usage_error("request: not a JSON object");
	}
	if (cprctl_connect(NULL, &sock) < 0) {
		json_object_put(req);
		return CPRCTL_EXIT_TEMP;
	}
	r = cprd_call(sock, req, NULL, 0, &reply);
	json_object_put(req);
	close(sock);
	if (reply)
		cprctl_print_json(reply);
	json_object_put(reply);
	if (r < 0)
		return r == -ECONNRESET ? CPRCTL_EXIT_TEMP : cprctl_errno_exit(r);
	return 0;
}

/*
 * daemon upgrade: cprd hands every bundle to a new process of itself (or of
 * @exe), which answers on this very connection; if the new image does not
 * take over, the old one answers why and keeps everything.  The daemon is
 * given two thirds of our timeout, so that its answer arrives before we
 * give up.
 */
static int daemon_upgrade(const char *exe)
{
	struct json_object *req = json_object_new_object(), *reply = NULL;
	int sock, r;

	if (!req)
		return CPRCTL_EXIT_TEMP;
	json_object_object_add(req, "op", json_object_new_string("upgrade"));
	json_object_object_add(req, "timeout_ms", json_object_new_int(cprd_timeout() / 3 * 2));
	if (exe)
		json_object_object_add(req, "exe", json_object_new_string(exe));
	if (cprctl_connect(NULL, &sock) < 0) {
		json_object_put(req);
		return CPRCTL_EXIT_TEMP;
	}
	r = cprd_call(sock, req, NULL, 0, &reply);
	json_object_put(req);
	close(sock);
	if (r < 0)
		return cprctl_fail("upgrade", r, reply);
	if (cprctl_opts.json)
		cprctl_print_json(reply);
	else
		printf("cprd upgraded: pid %lld -> pid %lld, %lld bundles, %lld fds kept\n",
		       (long long)get_int(reply, "previous_pid"), (long long)get_int(reply, "pid"),
		       (long long)get_int(reply, "bundles"), (long long)get_int(reply, "fds"));
	json_object_put(reply);
	return 0;
}

/* daemon debug: the daemon's own counts, once it has finished what came before. */
static int daemon_debug(void)
{
	struct json_object *reply = NULL;
	int sock, r;

	if (cprctl_connect(NULL, &sock) < 0)
		return CPRCTL_EXIT_TEMP;
	r = cprd_call_name(sock, "debug", NULL, &reply);
	close(sock);
	if (r < 0)
		return cprctl_fail("debug", r, reply);
	if (cprctl_opts.json)
		cprctl_print_json(reply);
	else
		printf("fds open %lld, held %lld, queued %lld; bundles %lld; connections %lld\n",
		       (long long)get_int(reply, "fds_open"), (long long)get_int(reply, "fds_held"),
		       (long long)get_int(reply, "fds_queued"),
		       (long long)get_int(reply, "bundles"),
		       (long long)get_int(reply, "connections"));
	json_object_put(reply);
	return 0;
}

int cprctl_daemon_main(int argc, char *argv[])
{
	const char *exe = NULL;
	int r = parse_opts(argc, argv, 1, 1, &exe);

	if (r)
		return r;
	if (exe && strcmp(argv[optind], "upgrade") != 0)
		return cprctl_usage_error("daemon: --exe goes with upgrade only");
	if (strcmp(argv[optind], "upgrade") == 0)
		return daemon_upgrade(exe);
	if (strcmp(argv[optind], "debug") == 0)
		return daemon_debug();
	if (strcmp(argv[optind], "status") == 0) {
		char *args[] = { (char *)"status", NULL };

		optind = 0;
		return cprctl_status_main(1, args);
	}
	return cprctl_usage_error("daemon: unknown command '%s'", argv[optind]);
}
