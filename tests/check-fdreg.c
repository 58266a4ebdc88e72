/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The context and the fd registry: save, find, delete, kinds, adoption. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "ctx.h"
#include "internal.h"
#include "test-util.h"

START_TEST(test_cpr_ctx_new_einval)
{
	int nfds = test_count_fds();

	ck_assert_int_eq(cpr_ctx_new(NULL), -EINVAL);
	cpr_ctx_free(NULL);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_ctx_settings)
{
	struct cpr_error err;
	char want[128];
	struct cpr_ctx *ctx;
	char longname[CPR_PRODUCER_MAX + 2];
	int nfds = test_count_fds();

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_ctx_incoming(ctx), 0);
	ck_assert_ptr_null(cpr_ctx_incoming_state(ctx));
	ck_assert_int_eq(cpr_ctx_set_producer(ctx, "minivmm", 0x010203), 0);
	ck_assert_int_eq(cpr_ctx_set_producer(ctx, "", 0), -EINVAL);
	ck_assert_int_eq(cpr_ctx_set_producer(ctx, longname, 0), -EINVAL);
	ck_assert_uint_eq(cpr_ctx_get_target_level(ctx), CPR_LEVEL_MAX);
	ck_assert_int_eq(cpr_ctx_set_target_level(ctx, 1, NULL), 0);
	ck_assert_uint_eq(cpr_ctx_get_target_level(ctx), 1);
	ck_assert_int_eq(cpr_ctx_set_target_level(ctx, CPR_LEVEL_MAX + 1, &err), -EPROTONOSUPPORT);
	ck_assert_int_eq(err.code, -EPROTONOSUPPORT);
	ck_assert_uint_eq(err.record_type, UINT32_MAX);
	snprintf(want, sizeof(want), "target level %u is not one this library writes (%u to %u)",
		 CPR_LEVEL_MAX + 1, CPR_LEVEL_MIN, CPR_LEVEL_MAX);
	ck_assert_str_eq(err.message, want);
	ck_assert_int_eq(cpr_ctx_set_target_level(ctx, 0, NULL), 0);
	ck_assert_uint_eq(cpr_ctx_get_target_level(ctx), CPR_LEVEL_MAX);
	ck_assert_int_eq(cpr_ctx_set_target_level(NULL, 1, NULL), -EINVAL);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_ctx_set_private)
{
	struct cpr_state *st;
	struct cpr_ctx *ctx;
	const void *data;
	size_t len;
	int nfds = test_count_fds();

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, 1, "abc", 3), 0);
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, 1, "abcd", 4), 0); /* replaces */
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, 2, "x", 1), 0);
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, 2, NULL, 0), 0); /* removes */
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, 2, NULL, 0), -ENOENT);
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x10, 0, "x", 1), -EINVAL);
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0xffff, 0, "x", 1), -EINVAL);
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, 0, NULL, 5), -EINVAL);
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, 0, "x", CPR_RECORD_MAX + 1), -EINVAL);
	ck_assert_int_eq(cpr_ctx_build_state(ctx, &st), 0);
	ck_assert_uint_eq(cpr_state_private_count(st), 1);
	ck_assert_int_ge(cpr_state_private_find(st, 0x8000, 1, &data, &len), 0);
	ck_assert_uint_eq(len, 4);
	ck_assert_int_eq(memcmp(data, "abcd", 4), 0);
	cpr_state_free(st);
	ck_assert_int_eq(cpr_ctx_build_state(ctx, NULL), -EINVAL);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/*
 * In a mount namespace of its own, a /dev where the VFIO and iommufd node
 * names are copies of /dev/null (1:3): right name, another driver.  Each
 * is refused; the kind is the driver behind the device number.
 */
static int child_fake_vfio_nodes(void)
{
	static const struct {
		const char *path;
		enum cpr_fd_kind kind;
	} nodes[] = {
		{ "/dev/vfio/vfio", CPR_FD_VFIO_CONTAINER },
		{ "/dev/vfio/7", CPR_FD_VFIO_GROUP },
		{ "/dev/vfio/devices/vfio0", CPR_FD_VFIO_CDEV },
		{ "/dev/iommu", CPR_FD_IOMMUFD },
	};

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("cpr-test", "/dev", "tmpfs", 0, "mode=0755") < 0 ||
	    mkdir("/dev/vfio", 0755) < 0 || mkdir("/dev/vfio/devices", 0755) < 0)
		return 77;
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		int fd, r;

		if (mknod(nodes[i].path, S_IFCHR | 0600, makedev(1, 3)) < 0)
			return 77;
		fd = open(nodes[i].path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return 77;
		r = cpr_fd_check_kind(fd, nodes[i].kind);
		close(fd);
		if (r != -EMEDIUMTYPE) {
			fprintf(stderr, "%s: %d\n", nodes[i].path, r);
			return 1;
		}
	}
	return 0;
}

START_TEST(test_cpr_fd_check_kind_by_driver)
{
	int nfds = test_count_fds(), status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(child_fake_vfio_nodes());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		test_skip_case("no mount namespace with a tmpfs /dev here (needs CAP_SYS_ADMIN)");
	ck_assert_msg(WEXITSTATUS(status) == 0, "a /dev/null copy passed as a VFIO/iommufd node");
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_fd_check_kind_real_objects)
{
	int nfds = test_count_fds();
	int m = test_memfd("m", 4096), ev = eventfd(0, EFD_CLOEXEC), sp[2], p[2];
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int tmp = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_ge(tmp, 0);
	ck_assert_int_eq(cpr_fd_check_kind(m, CPR_FD_MEMFD), 0);
	ck_assert_int_eq(cpr_fd_check_kind(ev, CPR_FD_EVENTFD), 0);
	ck_assert_int_eq(cpr_fd_check_kind(sp[0], CPR_FD_SOCKET), 0);
	ck_assert_int_eq(cpr_fd_check_kind(p[0], CPR_FD_GENERIC), 0);
	ck_assert_int_eq(cpr_fd_check_kind(p[0], CPR_FD_MEMFD), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_fd_check_kind(tmp, CPR_FD_MEMFD), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_fd_check_kind(m, CPR_FD_EVENTFD), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_fd_check_kind(ev, CPR_FD_SOCKET), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_fd_check_kind(ev, CPR_FD_GUEST_MEMFD), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_fd_check_kind(null, CPR_FD_VFIO_CONTAINER), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_fd_check_kind(null, CPR_FD_VFIO_GROUP), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_fd_check_kind(null, CPR_FD_VFIO_CDEV), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_fd_check_kind(null, CPR_FD_IOMMUFD), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_fd_check_kind(m, CPR_FD_IOMMUFD), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_fd_check_kind(-1, CPR_FD_GENERIC), -EBADF);
	ck_assert_int_eq(cpr_fd_check_kind(900, CPR_FD_GENERIC), -EBADF);
	ck_assert_int_eq(cpr_fd_check_kind(m, 0), -EINVAL);
	ck_assert_int_eq(cpr_fd_check_kind(m, CPR_FD_KIND_MAX + 1), -EINVAL);
	close(m);
	close(ev);
	close(sp[0]);
	close(sp[1]);
	close(p[0]);
	close(p[1]);
	close(null);
	close(tmp);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_fd_save_errors)
{
	struct cpr_error err;
	struct cpr_ctx *ctx;
	char longname[CPR_NAME_MAX + 2];
	int nfds = test_count_fds();
	int m = test_memfd("m", 4096), p[2];

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "m", 0, m, CPR_FD_MEMFD, NULL), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "m", 0, p[0], CPR_FD_GENERIC, NULL), -EEXIST);
	ck_assert_int_eq(cpr_fd_save(ctx, "m2", 0, m, CPR_FD_MEMFD, &err), -EEXIST);
	ck_assert_int_eq(err.code, -EEXIST);
	ck_assert_msg(strstr(err.message, "for 'm2' id 0 is already preserved under another key"),
		      "%s", err.message);
	ck_assert_int_eq(cpr_fd_save(ctx, "p", 0, p[0], CPR_FD_MEMFD, &err), -EMEDIUMTYPE);
	ck_assert_int_eq(err.code, -EMEDIUMTYPE);
	ck_assert_uint_eq(err.record_type, UINT32_MAX);
	ck_assert_uint_eq(err.instance, UINT32_MAX);
	ck_assert_msg(strstr(err.message, "for 'p' id 0 is not a memfd"), "%s", err.message);
	ck_assert_int_eq(cpr_fd_save(ctx, "p", -1, p[0], CPR_FD_GENERIC, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_save(ctx, "", 0, p[0], CPR_FD_GENERIC, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_save(ctx, "tap 0", 0, p[0], CPR_FD_GENERIC, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_save(ctx, "tap\\0", 0, p[0], CPR_FD_GENERIC, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_save(ctx, NULL, 0, p[0], CPR_FD_GENERIC, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_save(ctx, longname, 0, p[0], CPR_FD_GENERIC, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_save(ctx, "p", 0, p[0], 0, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_save(NULL, "p", 0, p[0], CPR_FD_GENERIC, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_save(ctx, "p", 0, 900, CPR_FD_GENERIC, &err), -EBADF);
	ck_assert_str_eq(err.message, "fd 900 for 'p' id 0 is not open");
	ck_assert_int_eq(cpr_fd_save(ctx, "p", 0, -1, CPR_FD_GENERIC, NULL), -EBADF);
	ck_assert_int_eq(cpr_fd_save(ctx, "p", 0, p[0], CPR_FD_GENERIC, NULL), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "p", 1, p[1], CPR_FD_GENERIC, NULL), 0);
	cpr_ctx_free(ctx);
	/* The registry borrowed them. */
	ck_assert_int_ge(fcntl(m, F_GETFD), 0);
	close(m);
	close(p[0]);
	close(p[1]);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_fd_claim_delete)
{
	struct cpr_error err;
	struct cpr_ctx *ctx;
	int nfds = test_count_fds();
	int ev = eventfd(0, EFD_CLOEXEC), fd = -1;

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "irq", 7, ev, CPR_FD_EVENTFD, NULL), 0);
	ck_assert_int_eq(cpr_fd_claim(ctx, "irq", 7, CPR_FD_EVENTFD, &fd, NULL), 0);
	ck_assert_int_eq(fd, ev);
	ck_assert_int_eq(cpr_fd_claim(ctx, "irq", 7, 0, &fd, NULL), 0);
	ck_assert_int_eq(cpr_fd_claim(ctx, "irq", 7, CPR_FD_MEMFD, &fd, &err), -EMEDIUMTYPE);
	ck_assert_int_eq(err.code, -EMEDIUMTYPE);
	ck_assert_uint_eq(err.record_type, UINT32_MAX); /* saved here, not incoming */
	ck_assert_str_eq(err.message, "fd 'irq' id 7: is a eventfd, not a memfd");
	ck_assert_int_eq(cpr_fd_claim(ctx, "irq", 8, 0, &fd, &err), -ENOENT);
	ck_assert_str_eq(err.message, "fd 'irq' id 8: not registered");
	ck_assert_int_eq(cpr_fd_claim(ctx, "irq", -1, 0, &fd, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_claim(ctx, "irq", 7, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_claim(ctx, "irq", 7, CPR_FD_KIND_MAX + 1, &fd, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_delete(ctx, "irq", 8), -ENOENT);
	ck_assert_int_eq(cpr_fd_delete(ctx, "irq", -1), -EINVAL);
	ck_assert_int_eq(cpr_fd_delete(ctx, "irq", 7), 0);
	ck_assert_int_eq(cpr_fd_claim(ctx, "irq", 7, 0, &fd, NULL), -ENOENT);
	ck_assert_int_ge(fcntl(ev, F_GETFD), 0); /* borrowed: still open */
	ck_assert_int_eq(cpr_fd_unclaimed(ctx, NULL, NULL), 0);
	ck_assert_int_eq(cpr_fd_unclaimed(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_fd_close_unclaimed(NULL), -EINVAL);
	cpr_ctx_free(ctx);
	close(ev);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The registry's indexes through churn: deleted keys and fds are free again,
 * live ones are still found, and the FD records keep registration order. */
START_TEST(test_cpr_fd_registry_churn)
{
	enum { N = 1000 };
	struct cpr_ctx *ctx;
	struct cpr_state *st;
	int nfds = test_count_fds(), ev = eventfd(0, EFD_CLOEXEC), fds[N], fd;

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	for (int i = 0; i < N; i++) {
		fds[i] = fcntl(ev, F_DUPFD_CLOEXEC, 0);
		ck_assert_int_ge(fds[i], 0);
		ck_assert_int_eq(cpr_fd_save(ctx, "dev", i, fds[i], CPR_FD_EVENTFD, NULL), 0);
	}
	for (int i = 0; i < N; i += 2)
		ck_assert_int_eq(cpr_fd_delete(ctx, "dev", i), 0);
	for (int i = 0; i < N; i += 2)
		ck_assert_int_eq(cpr_fd_claim(ctx, "dev", i, 0, &fd, NULL), -ENOENT);
	for (int i = 0; i < N; i++) {
		if (i % 2) {
			ck_assert_int_eq(cpr_fd_save(ctx, "dev", i, ev, CPR_FD_EVENTFD, NULL),
					 -EEXIST);
			ck_assert_int_eq(cpr_fd_save(ctx, "other", i, fds[i], CPR_FD_EVENTFD, NULL),
					 -EEXIST);
		} else {
			ck_assert_int_eq(cpr_fd_save(ctx, "dev", i, fds[i], CPR_FD_EVENTFD, NULL),
					 0);
		}
	}
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(cpr_fd_claim(ctx, "dev", i, CPR_FD_EVENTFD, &fd, NULL), 0);
		ck_assert_int_eq(fd, fds[i]);
	}
	ck_assert_int_eq(cpr_ctx_build_state(ctx, &st), 0);
	ck_assert_uint_eq(cpr_state_fd_count(st), N);
	for (int i = 0; i < N; i++) /* the odd ids as first saved, then the even */
		ck_assert_int_eq(cpr_state_fd_get(st, (size_t)i)->id,
				 i < N / 2 ? 2 * i + 1 : 2 * (i - N / 2));
	cpr_state_free(st);
	cpr_ctx_free(ctx);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	close(ev);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* ---- adoption, in one process: ctx "old" -> state + dup'ed fds -> ctx "new" */

struct pair {
	struct cpr_ctx *old, *new;
	struct cpr_state *st;
	int *fds;
	size_t n;
	int ev, m, sp[2];
};

static void pair_init(struct pair *p)
{
	int *fds;

	ck_assert_int_eq(cpr_ctx_new(&p->old), 0);
	ck_assert_int_eq(cpr_ctx_new(&p->new), 0);
	p->ev = eventfd(3, EFD_CLOEXEC);
	p->m = test_memfd("dev-state", 8192);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->sp), 0);
	ck_assert_int_eq(cpr_fd_save(p->old, "irq", 0, p->ev, CPR_FD_EVENTFD, NULL), 0);
	ck_assert_int_eq(cpr_fd_save(p->old, "state", 0, p->m, CPR_FD_MEMFD, NULL), 0);
	ck_assert_int_eq(cpr_fd_save(p->old, "chardev", 3, p->sp[0], CPR_FD_SOCKET, NULL), 0);
	ck_assert_int_eq(ctx_outgoing(p->old, CPR_MODE_TRANSFER, 0, &p->st, &fds, &p->n, NULL), 0);
	ck_assert_uint_eq(p->n, 3);
	for (size_t i = 0; i < p->n; i++) {
		ck_assert_uint_eq(cpr_state_fd_get(p->st, i)->slot, i);
		fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0); /* what the receiver would get */
	}
	p->fds = fds;
}

static void pair_free(struct pair *p, bool adopted)
{
	if (!adopted) {
		for (size_t i = 0; i < p->n; i++)
			close(p->fds[i]);
		cpr_state_free(p->st);
	}
	free(p->fds);
	cpr_ctx_free(p->old);
	cpr_ctx_free(p->new);
	close(p->ev);
	close(p->m);
	close(p->sp[0]);
	close(p->sp[1]);
}

static void count_report(void *userdata, const char *name, int32_t id, enum cpr_fd_kind kind,
			 int fd)
{
	(void)name;
	(void)id;
	(void)kind;
	ck_assert_int_ge(fcntl(fd, F_GETFD), 0);
	(*(int *)userdata)++;
}

START_TEST(test_ctx_adopt_claim_and_close_unclaimed)
{
	struct cpr_state_info info;
	struct cpr_error err;
	struct pair p;
	int nfds = test_count_fds(), fd, n = 0, dupm;

	pair_init(&p);
	ck_assert_int_eq(ctx_adopt(p.new, p.st, p.fds, p.n, NULL), 0);
	ck_assert_int_eq(cpr_ctx_incoming(p.new), 1);
	ck_assert_ptr_eq(cpr_ctx_incoming_state(p.new), p.st);
	ck_assert_int_eq(cpr_state_get_info(p.st, &info), 0);
	ck_assert_uint_eq(info.generation, 1);
	ck_assert_uint_eq(cpr_ctx_get_target_level(p.new), info.emit_level);
	for (size_t i = 0; i < p.n; i++)
		ck_assert_int_eq(fcntl(p.fds[i], F_GETFD), FD_CLOEXEC);
	ck_assert_int_eq(cpr_fd_unclaimed(p.new, count_report, &n), 3);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(cpr_fd_claim(p.new, "state", 0, CPR_FD_EVENTFD, &fd, &err), -EMEDIUMTYPE);
	ck_assert_uint_eq(err.record_type, CPR_REC_FD); /* an incoming fd: its record */
	ck_assert_uint_eq(err.instance, 1);
	ck_assert_str_eq(err.message, "fd 'state' id 0: is a memfd, not a eventfd");
	ck_assert_int_eq(cpr_fd_claim(p.new, "irq", 0, CPR_FD_EVENTFD, &fd, NULL), 0);
	ck_assert_int_eq(fd, p.fds[0]);
	ck_assert_int_eq(cpr_fd_unclaimed(p.new, NULL, NULL), 2);
	dupm = p.fds[1];
	ck_assert_int_eq(cpr_fd_close_unclaimed(p.new), 2);
	ck_assert_int_lt(fcntl(dupm, F_GETFD), 0);
	ck_assert_int_lt(fcntl(p.fds[2], F_GETFD), 0);
	ck_assert_int_eq(cpr_fd_unclaimed(p.new, NULL, NULL), 0);
	/* The claimed one stays registered (borrowed): preserved again next hop. */
	{
		struct cpr_state *st2;

		ck_assert_int_eq(cpr_ctx_build_state(p.new, &st2), 0);
		ck_assert_uint_eq(cpr_state_fd_count(st2), 1);
		ck_assert_int_eq(cpr_state_get_info(st2, &info), 0);
		ck_assert_uint_eq(info.generation, 2);
		cpr_state_free(st2);
	}
	ck_assert_int_eq(ctx_adopt(p.new, p.st, NULL, 0, NULL), -EALREADY);
	pair_free(&p, true);
	close(fd); /* claimed: ours */
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_ctx_adopt_kind_mismatch)
{
	struct cpr_error err = { 0 };
	struct pair p;
	int nfds = test_count_fds(), tmp;

	pair_init(&p);
	tmp = p.fds[0];
	p.fds[0] = p.fds[1];
	p.fds[1] = tmp;
	ck_assert_int_eq(ctx_adopt(p.new, p.st, p.fds, p.n, &err), -EMEDIUMTYPE);
	ck_assert_ptr_nonnull(strstr(err.message, "is not a"));
	ck_assert_int_eq(cpr_ctx_incoming(p.new), 0);
	for (size_t i = 0; i < p.n; i++) /* untouched: still ours, flags as given */
		ck_assert_int_eq(fcntl(p.fds[i], F_GETFD), FD_CLOEXEC);
	ck_assert_int_eq(ctx_adopt(p.new, p.st, p.fds, p.n - 1, &err), -EBADMSG);
	pair_free(&p, false);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_ctx_adopt_duplicate_key)
{
	struct cpr_error err = { 0 };
	struct pair p;
	int nfds = test_count_fds(), ev = eventfd(0, EFD_CLOEXEC);

	pair_init(&p);
	ck_assert_int_eq(cpr_fd_save(p.new, "irq", 0, ev, CPR_FD_EVENTFD, NULL), 0);
	ck_assert_int_eq(ctx_adopt(p.new, p.st, p.fds, p.n, &err), -EEXIST);
	pair_free(&p, false);
	close(ev);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_ctx_adopt_page_size)
{
	struct cpr_error err = { 0 };
	struct pair p;
	int nfds = test_count_fds();

	pair_init(&p);
	ck_assert_int_eq(cpr_state_set_page_shift(p.st, 16), 0);
	ck_assert_int_eq(ctx_adopt(p.new, p.st, p.fds, p.n, &err), -EMEDIUMTYPE);
	ck_assert_ptr_nonnull(strstr(err.message, "pages"));
	pair_free(&p, false);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_ctx_outgoing_exec_slots)
{
	struct cpr_state *st;
	struct cpr_ctx *ctx;
	int nfds = test_count_fds(), *fds;
	int ev = eventfd(0, EFD_CLOEXEC);
	size_t n;

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "irq", 0, ev, CPR_FD_EVENTFD, NULL), 0);
	ck_assert_int_eq(ctx_outgoing(ctx, CPR_MODE_EXEC, 0, &st, &fds, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(cpr_state_fd_get(st, 0)->slot, (uint32_t)ev);
	ck_assert_int_eq(fds[0], ev);
	ck_assert_int_eq(ctx_outgoing(ctx, 7, 0, &st, &fds, &n, NULL), -EINVAL);
	cpr_state_free(st);
	free(fds);
	cpr_ctx_free(ctx);
	close(ev);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_ctx_set_private_e2big)
{
	struct cpr_ctx *ctx;
	int nfds = test_count_fds();

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	for (uint32_t i = 0; i < CPR_PRIVATE_MAX; i++)
		ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, i, &i, sizeof(i)), 0);
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, CPR_PRIVATE_MAX, "x", 1), -E2BIG);
	ck_assert_int_eq(cpr_ctx_set_private(ctx, 0x8000, 0, "x", 1), 0); /* replacing is fine */
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* CPR_FDS_MAX distinct fd numbers fill the registry. */
START_TEST(test_cpr_fd_save_e2big)
{
	struct cpr_error err;
	struct rlimit rl;
	struct cpr_ctx *ctx;
	int nfds = test_count_fds(), ev = eventfd(0, EFD_CLOEXEC), *fds;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < CPR_FDS_MAX + 64) {
		close(ev);
		test_skip_case("RLIMIT_NOFILE hard limit %lu cannot hold CPR_FDS_MAX + 64 fds",
			       (unsigned long)rl.rlim_max);
	}
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	fds = calloc(CPR_FDS_MAX + 1, sizeof(int));
	ck_assert_ptr_nonnull(fds);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	for (uint32_t i = 0; i <= CPR_FDS_MAX; i++) {
		fds[i] = fcntl(ev, F_DUPFD_CLOEXEC, 0);
		ck_assert_int_ge(fds[i], 0);
		ck_assert_int_eq(cpr_fd_save(ctx, "ev", (int32_t)i, fds[i], CPR_FD_EVENTFD, &err),
				 i < CPR_FDS_MAX ? 0 : -E2BIG);
	}
	ck_assert_int_eq(err.code, -E2BIG);
	ck_assert_msg(strstr(err.message, "the registry holds CPR_FDS_MAX"), "%s", err.message);
	cpr_ctx_free(ctx);
	for (uint32_t i = 0; i <= CPR_FDS_MAX; i++)
		close(fds[i]);
	free(fds);
	close(ev);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A state with one RAM block over memfd @m, as a peer could send it. */
static struct cpr_state *rb_state(uint64_t used, uint64_t max)
{
	struct cpr_state_ramblock rec = { .used_length = used,
					  .max_length = max,
					  .align = (uint64_t)getpagesize(),
					  .idstr = "ram" };
	struct cpr_state_fd f = { .kind = CPR_FD_MEMFD, .id = -1, .name = "ram" };
	struct cpr_state *st;

	ck_assert_int_eq(cpr_state_new(&st), 0);
	ck_assert_int_eq(cpr_state_set_page_shift(st, (uint32_t)__builtin_ctz(getpagesize())), 0);
	ck_assert_int_ge(cpr_state_add_fd(st, &f), 0);
	ck_assert_int_ge(cpr_state_add_ramblock(st, &rec), 0);
	return st;
}

START_TEST(test_ctx_adopt_ramblock_checks)
{
	struct cpr_error err = { 0 };
	struct cpr_state *st;
	struct cpr_ctx *ctx;
	int nfds = test_count_fds(), m = test_memfd("ram", 1 << 20), p[2];
	uint64_t ps = (uint64_t)getpagesize();

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	st = rb_state(2 << 20, 2 << 20); /* the memfd holds only 1 MiB */
	ck_assert_int_eq(ctx_adopt(ctx, st, &m, 1, &err), -EMEDIUMTYPE);
	ck_assert_ptr_nonnull(strstr(err.message, "memfd holds"));
	ck_assert_int_eq(ctx_adopt(ctx, st, &p[0], 1, &err), -EMEDIUMTYPE); /* not a memfd */
	cpr_state_free(st);
	st = rb_state(ps + 1, ps + 1);
	ck_assert_int_eq(ctx_adopt(ctx, st, &m, 1, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.message, "multiples"));
	cpr_state_free(st);
	st = rb_state(ps, ps);
	ck_assert_int_eq(ctx_adopt(ctx, st, &m, 1, &err), 0);
	ck_assert_int_eq(fcntl(m, F_GETFD), FD_CLOEXEC);
	cpr_ctx_free(ctx); /* owned, unclaimed: closed */
	ck_assert_int_lt(fcntl(m, F_GETFD), 0);
	close(p[0]);
	close(p[1]);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *fdreg_suite(void)
{
	Suite *s = suite_create("fdreg");
	TCase *tc = tcase_create("fdreg");

	tcase_add_test(tc, test_cpr_ctx_new_einval);
	tcase_add_test(tc, test_cpr_ctx_settings);
	tcase_add_test(tc, test_cpr_ctx_set_private);
	tcase_add_test(tc, test_cpr_ctx_set_private_e2big);
	tcase_add_test(tc, test_cpr_fd_save_e2big);
	tcase_add_test(tc, test_cpr_fd_check_kind_real_objects);
	tcase_add_test(tc, test_cpr_fd_check_kind_by_driver);
	tcase_add_test(tc, test_cpr_fd_save_errors);
	tcase_add_test(tc, test_cpr_fd_claim_delete);
	tcase_add_test(tc, test_cpr_fd_registry_churn);
	tcase_add_test(tc, test_ctx_adopt_claim_and_close_unclaimed);
	tcase_add_test(tc, test_ctx_adopt_kind_mismatch);
	tcase_add_test(tc, test_ctx_adopt_duplicate_key);
	tcase_add_test(tc, test_ctx_adopt_page_size);
	tcase_add_test(tc, test_ctx_outgoing_exec_slots);
	tcase_add_test(tc, test_ctx_adopt_ramblock_checks);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(fdreg_suite());
}
