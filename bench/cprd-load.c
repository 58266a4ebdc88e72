/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/cprd, under load: the daemon's request rate with 1,000 connections
 * open and two peers stalling (one connected and silent, one that pipelines
 * requests and reads no reply), against the rate of one connection alone in
 * the same run, and the daemon's RSS idle, with the connections open, and
 * once they are closed again.  A "hello" round trip is the unit of work.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "client.h"
#include "bench-cprd.h"

#define LOAD_CONNS 1000
#define LOAD_ROUNDS 5 /* hellos per connection */

static const char hello[] = "{\"op\":\"hello\"}";

static double load_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int load_recv_ok(int s)
{
	struct json_object *reply = NULL;
	int fds[4], ok;
	size_t n = 0;

	if (cprd_recv(s, cprd_timeout(), &reply, fds, 4, &n) < 0)
		return -1;
	ok = json_object_get_boolean(json_object_object_get(reply, "ok")) ? 0 : -1;
	json_object_put(reply);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	return ok;
}

/* @n hellos on each of @socks, all sent before any answer is read: per second. */
static double load_rate(const int *socks, size_t n_socks, int rounds)
{
	double t0 = load_now_s();

	for (int r = 0; r < rounds; r++) {
		for (size_t i = 0; i < n_socks; i++)
			if (send(socks[i], hello, strlen(hello), MSG_NOSIGNAL) < 0)
				return -1;
		for (size_t i = 0; i < n_socks; i++)
			if (load_recv_ok(socks[i]) < 0)
				return -1;
	}
	return (double)rounds * (double)n_socks / (load_now_s() - t0);
}

static int load_connect(const char *sockpath)
{
	int s;

	return cprd_connect(sockpath, &s) == 0 ? s : -1;
}

int bench_cprd_load(const char *sockpath, long (*rss_kb)(void), struct json_object *out)
{
	int *socks = calloc(LOAD_CONNS, sizeof(int)), silent, unread, one;
	double alone, loaded;
	long rss_idle = rss_kb(), rss_open, rss_after;
	unsigned pipelined = 0;

	if (!socks)
		return -ENOMEM;
	one = load_connect(sockpath);
	alone = load_rate(&one, 1, LOAD_CONNS * LOAD_ROUNDS / 10);
	silent = load_connect(sockpath);
	unread = load_connect(sockpath);
	while (unread >= 0 && send(unread, hello, strlen(hello), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
		pipelined++;
	for (size_t i = 0; i < LOAD_CONNS; i++)
		if ((socks[i] = load_connect(sockpath)) < 0)
			return -EIO;
	loaded = load_rate(socks, LOAD_CONNS, LOAD_ROUNDS);
	rss_open = rss_kb();
	for (size_t i = 0; i < LOAD_CONNS; i++)
		close(socks[i]);
	close(silent);
	close(unread);
	close(one);
	free(socks);
	usleep(100000); /* the daemon sees the hang-ups */
	rss_after = rss_kb();
	if (alone <= 0 || loaded <= 0)
		return -EIO;
	json_object_object_add(out, "load_connections", json_object_new_int(LOAD_CONNS));
	json_object_object_add(out, "load_unread_requests", json_object_new_int64(pipelined));
	json_object_object_add(out, "hello_per_s_alone", json_object_new_double(alone));
	json_object_object_add(out, "hello_per_s_loaded", json_object_new_double(loaded));
	json_object_object_add(out, "load_rate_ratio", json_object_new_double(loaded / alone));
	json_object_object_add(out, "rss_kb_idle", json_object_new_int64(rss_idle));
	json_object_object_add(out, "rss_kb_1000_connections", json_object_new_int64(rss_open));
	json_object_object_add(out, "rss_kb_after", json_object_new_int64(rss_after));
	return 0;
}
