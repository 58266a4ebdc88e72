/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hand-off through cprd(8): the old image stores its libcpr state and
 * fds (RAM memfd, control socket) as a bundle; the new image, started while
 * the guest runs, claims it, adopts the RAM and builds its VM, and says so
 * on a rendezvous socket; then the vCPUs move exactly as in a transfer, and
 * once the guest runs in the new image it acknowledges the bundle, which
 * lets the daemon drop its copies.  A failure before that leaves the guest
 * in the old image, which drops the bundle.
 *
 * libcpr's side of it is cpr_handoff_export() and cpr_handoff_import().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cpr/cpr.h>

#include "client.h"
#include "vmm.h"

#define REPLY_PREPARED 'P'
#define BUNDLE_TTL_MS 60000
#define CLAIM_LEASE_MS 10000

const bool have_cprd_client = true;
#define PREPARE_TIMEOUT_MS 30000

static int memfd_write(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The outgoing state for a transfer, in a sealed memfd, and its fds. */
int export_bundle(struct vmm *m, int *ret_stream_fd, int **ret_fds, size_t *ret_n,
		  struct cpr_error *err)
{
	void *buf = NULL;
	size_t len = 0;
	int fd = -1, r;

	r = cpr_handoff_export(m->ctx, &buf, &len, ret_fds, ret_n, err);
	if (r < 0)
		return r;
	fd = memfd_create("minivmm-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		r = -errno;
	else if ((r = memfd_write(fd, buf, len)) >= 0 &&
		 fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) <
			 0)
		r = -errno;
	free(buf);
	if (r < 0) {
		fd_close(fd);
		free(*ret_fds);
		return r;
	}
	*ret_stream_fd = fd;
	return 0;
}

static void bundle_name(struct vmm *m, char *buf, size_t len)
{
	snprintf(buf, len, "minivmm.%d.%u", (int)getpid(), m->rec.upgrades + 1);
}

static int store_bundle(struct vmm *m, const char *name, char *why, size_t len)
{
	struct cpr_error err = { 0 };
	struct json_object *reply = NULL, *opts = NULL;
	int stream_fd = -1, sock = -1, *fds = NULL, r;
	size_t n = 0;

	r = export_bundle(m, &stream_fd, &fds, &n, &err);
	if (r < 0) {
		snprintf(why, len, "%s", err.message[0] ? err.message : strerror(-r));
		return r;
	}
	/* Tied to this process and short-lived: a hand-off that fails half-way
	 * (the receiver died holding a claim) leaves nothing behind for long. */
	opts = json_object_new_object();
	if (!opts)
		r = -ENOMEM;
	else {
		json_object_object_add(opts, "tie", json_object_new_boolean(1));
		json_object_object_add(opts, "ttl_ms", json_object_new_int64(BUNDLE_TTL_MS));
	}
	if (r >= 0)
		r = cprd_connect(m->opt.cprd_socket, &sock);
	if (r >= 0)
		r = cprd_store(sock, name, opts, stream_fd, fds, n, &reply);
	json_object_put(opts);
	if (r < 0)
		snprintf(why, len, "cprd at %s: %s%s%s", cprd_socket_path(m->opt.cprd_socket),
			 strerror(-r), reply ? ": " : "", reply ? cprd_reply_message(reply) : "");
	json_object_put(reply);
	fd_close(sock);
	fd_close(stream_fd);
	free(fds);
	return r;
}

static void drop_bundle(struct vmm *m, const char *name)
{
	int sock = -1;

	if (cprd_connect(m->opt.cprd_socket, &sock) >= 0)
		cprd_call_name(sock, "drop", name, NULL);
	fd_close(sock);
}

int upgrade_cprd(struct vmm *m, const char *path, char *why, size_t len)
{
	char name[64], ready = 0;
	pid_t pid = 0;
	int pidfd = -1, sock = -1, r;

	bundle_name(m, name, sizeof(name));
	r = store_bundle(m, name, why, len);
	if (r < 0)
		return r;
	sock = handoff_spawn(m, path, "--incoming-cprd", name, &pid, &pidfd, why, len);
	r = sock;
	if (r >= 0)
		r = wait_or_child(sock, pidfd, PREPARE_TIMEOUT_MS);
	if (r >= 0)
		r = read_all(sock, &ready, 1);
	if (r >= 0 && ready != REPLY_PREPARED)
		r = -EPROTO;
	if (sock >= 0 && r < 0)
		snprintf(why, len, "receiver pid %d did not prepare: %s", (int)pid,
			 r == -ECHILD || r == -ECONNRESET ? "it exited" : strerror(-r));
	if (r >= 0)
		r = handoff_vcpus(m, UPGRADE_CPRD, sock, pid, pidfd, why, len);
	fd_close(sock);
	if (r < 0) {
		child_stop(pid, pidfd);
		drop_bundle(m, name);
	}
	fd_close(pidfd);
	return r;
}

/* ---------------------------------------------------------------- new image */

static int read_stream(int fd, void **ret_buf, size_t *ret_len)
{
	struct stat st;
	void *buf;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size <= 0 || (uint64_t)st.st_size > CPR_STREAM_MAX)
		return -EMSGSIZE;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return -ENOMEM;
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		return -EIO;
	}
	*ret_buf = buf;
	*ret_len = (size_t)st.st_size;
	return 0;
}

/* Check and adopt a claimed bundle; on failure its fds are closed. */
int import_bundle(struct vmm *m, int stream_fd, int *fds, size_t n)
{
	struct cpr_error err = { 0 };
	void *buf = NULL;
	size_t len = 0;
	int r = read_stream(stream_fd, &buf, &len);

	if (r >= 0)
		r = cpr_handoff_import(m->ctx, buf, len, fds, n, &err);
	free(buf);
	if (r < 0) {
		fprintf(stderr, "minivmm: bundle refused: %s\n",
			err.message[0] ? err.message : strerror(-r));
		for (size_t i = 0; i < n; i++)
			fd_close(fds[i]);
	}
	return r;
}

static const char *reply_token(struct json_object *reply)
{
	struct json_object *t;

	return json_object_object_get_ex(reply, "token", &t) ? json_object_get_string(t) : NULL;
}

/* @arg: "NAME:RENDEZVOUS-SOCKET" */
int incoming_cprd(struct vmm *m, const char *arg)
{
	struct json_object *reply = NULL;
	char name[128], *path, prepared = REPLY_PREPARED, *token = NULL;
	int sock = -1, csock = -1, stream_fd = -1, *fds = NULL, r;
	size_t n = 0;

	snprintf(name, sizeof(name), "%s", arg);
	path = strchr(name, ':');
	if (!path)
		return -EINVAL;
	*path = '\0';
	path = strchr(arg, ':') + 1;
	r = cpr_transfer_connect(path, &sock);
	if (r >= 0)
		r = cprd_connect(m->opt.cprd_socket, &csock);
	if (r >= 0)
		r = cprd_claim(csock, name, CLAIM_LEASE_MS, &reply, &stream_fd, &fds, &n);
	if (r < 0) {
		fprintf(stderr, "minivmm: claiming %s from cprd: %s\n", name, strerror(-r));
		goto out;
	}
	token = reply_token(reply) ? strdup(reply_token(reply)) : NULL;
	r = import_bundle(m, stream_fd, fds, n);
	if (r >= 0)
		r = prepare_incoming(m);
	if (r >= 0)
		r = vm_arm(&m->vm);
	if (r >= 0)
		r = write_all(sock, &prepared, 1);
	if (r >= 0)
		r = receive_vcpus(m, sock);
	/* The guest runs here (or never will): settle the bundle. */
	if (token)
		cprd_token_op(csock, r >= 0 ? "ack" : "release", name, token, NULL);
out:
	json_object_put(reply);
	free(token);
	free(fds);
	fd_close(stream_fd);
	fd_close(csock);
	fd_close(sock);
	return r;
}
