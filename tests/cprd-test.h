/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the cprd suites: a real daemon process, clients, bundles. */
#ifndef CPRD_TEST_H
#define CPRD_TEST_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;

struct cprd_daemon {
	pid_t pid;
	char dir[64];
	char sock[96];
	char log[96];
};

/*
 * Start cprd (built binary @exe, NULL = cprd/cprd) on a socket in a fresh
 * directory, with the seccomp filter of the source tree, @conf as its
 * configuration file text (may be NULL; without a "namespace" line, every
 * name is open to every uid) and extra arguments (NULL-ended).
 * Returns once the socket accepts connections.
 */
void cprd_daemon_start(struct cprd_daemon *d, const char *exe, const char *conf,
		       const char *const *args);
/* SIGTERM, wait, assert a clean exit (status 0); remove the directory. */
void cprd_daemon_stop(struct cprd_daemon *d);
/* Every test of @tc runs against a fresh default daemon in @d. */
void cprd_test_fixture(TCase *tc, struct cprd_daemon *d);

/* Users the tests switch to (setresuid) as consumers and strangers. */
#define OTHER_UID 65534
#define OTHER_GID 65534
#define THIRD_UID 4242
#define THIRD_GID 4242
/* Wait for the daemon to exit: its wait status. */
int cprd_daemon_wait(struct cprd_daemon *d);

/* The "debug" reply: the daemon's counts once all it was sent is done. */
struct cprd_debug {
	int fds_open; /* the daemon's open fds */
	int fds_held; /* in bundles, streams included */
	int fds_queued;
	int bundles;
	int connections;
};
/* "debug" on @sock: answered once every earlier request, hang-up, owner
 * exit and passed deadline has been processed. */
void cprd_test_debug(int sock, struct cprd_debug *ret);
/* The same on a connection of its own, closed again. */
void cprd_daemon_sync(const struct cprd_daemon *d);
/* The daemon's open fds once all before is done, less the asking connection's. */
int cprd_daemon_fds(const struct cprd_daemon *d);
long cprd_daemon_rss_kb(const struct cprd_daemon *d);

int cprd_test_connect(const struct cprd_daemon *d);
/* A state stream naming @n memfds (slot i = "ram" id i), in a memfd. */
int cprd_test_stream(size_t n);
/* @n memfds, memfd i holding the text "fd <i> <tag>". */
int *cprd_test_memfds(size_t n, const char *tag);
void cprd_test_close_fds(int *fds, size_t n);
/* Check memfd @fd holds "fd <i> <tag>". */
bool cprd_test_memfd_is(int fd, size_t i, const char *tag);
/* Store a bundle of @n memfds tagged @tag; returns the cprd_store() result. */
int cprd_test_store(int sock, const char *name, size_t n, const char *tag,
		    struct json_object *opts);
/* Claim and verify; returns the claim's result; the token is copied out. */
int cprd_test_claim_verify(int sock, const char *name, size_t n, const char *tag, uint64_t lease_ms,
			   char *token, size_t token_len);
/* Become @uid/@gid (forked children only). */
void cprd_test_become(uid_t uid, gid_t gid);
/* The "error" of a reply, or "". */
const char *cprd_test_error(struct json_object *reply);
/* A bundle's state as "show" reports it, or "absent". */
const char *cprd_test_bundle_state(const struct cprd_daemon *d, const char *name);

#endif
