/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Blockers and cpr_check(): every reason at once, per mode; kernel probes. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include <cpr/cpr.h>

#include "ctx.h"
#include "internal.h"
#include "test-util.h"

struct seen {
	int n;
	char msg[8][320];
	int code[8];
};

static void collect(void *userdata, const struct cpr_error *diag)
{
	struct seen *s = userdata;

	if (s->n < 8) {
		memcpy(s->msg[s->n], diag->message, sizeof(s->msg[0]));
		s->code[s->n] = diag->code;
	}
	s->n++;
}

static bool seen_has(const struct seen *s, const char *needle)
{
	for (int i = 0; i < s->n && i < 8; i++)
		if (strstr(s->msg[i], needle))
			return true;
	return false;
}

START_TEST(test_cpr_check_per_mode)
{
	struct cpr_ctx *ctx;
	struct seen s = { 0 };
	uint32_t a, b, c;
	int nfds = test_count_fds();

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_check(ctx, CPR_MODE_EXEC, 0, collect, &s), 0);
	ck_assert_int_eq(s.n, 0);
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODE_EXEC, "vhost-user backend", &a, NULL), 0);
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODE_TRANSFER, "local socket", &b, NULL), 0);
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODES_ALL, "migration in progress", &c, NULL), 0);
	ck_assert_uint_ne(a, b);
	ck_assert_int_eq(cpr_check(ctx, CPR_MODE_EXEC, 0, collect, &s), -EBUSY);
	ck_assert_int_eq(s.n, 2);
	ck_assert(seen_has(&s, "vhost-user backend"));
	ck_assert(seen_has(&s, "migration in progress"));
	ck_assert_int_eq(s.code[0], -EBUSY);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(cpr_check(ctx, CPR_MODE_TRANSFER, 0, collect, &s), -EBUSY);
	ck_assert_int_eq(s.n, 2);
	ck_assert(seen_has(&s, "local socket"));
	ck_assert_int_eq(cpr_check(ctx, CPR_MODE_TRANSFER, 0, NULL, NULL), -EBUSY);
	ck_assert_int_eq(cpr_blocker_remove(ctx, c), 0);
	ck_assert_int_eq(cpr_blocker_remove(ctx, c), -ENOENT);
	ck_assert_int_eq(cpr_blocker_remove(ctx, b), 0);
	ck_assert_int_eq(cpr_check(ctx, CPR_MODE_TRANSFER, 0, NULL, NULL), 0);
	ck_assert_int_eq(cpr_blocker_remove(ctx, a), 0);
	ck_assert_int_eq(cpr_check(ctx, CPR_MODE_EXEC, 0, NULL, NULL), 0);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_blocker_add_einval)
{
	struct cpr_error err;
	struct cpr_ctx *ctx;
	char big[300];
	int nfds = test_count_fds();

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_blocker_add(NULL, CPR_MODES_ALL, "r", NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_blocker_add(ctx, 1u << 2, "no such mode", NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_blocker_add(ctx, 0, "no mode", NULL, NULL), -EINVAL);
	/* cpr_check() judges one mode at a time */
	ck_assert_int_eq(cpr_check(ctx, (enum cpr_mode)CPR_MODES_ALL, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_check(ctx, (enum cpr_mode)0, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_blocker_add(ctx, 0, "r", NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_blocker_add(ctx, 1u << 7, "r", NULL, &err), -EINVAL);
	ck_assert_int_eq(err.code, -EINVAL);
	ck_assert_uint_eq(err.record_type, UINT32_MAX);
	ck_assert_str_eq(err.message, "blocker: modes 0x80 is 0 or has unknown bits");
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODES_ALL, "", NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODES_ALL, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODES_ALL, big, NULL, &err), -EINVAL);
	ck_assert_str_eq(err.message, "blocker: the reason is empty or 256 bytes or longer");
	ck_assert_int_eq(cpr_blocker_remove(NULL, 1), -EINVAL);
	ck_assert_int_eq(cpr_check(NULL, CPR_MODE_EXEC, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_check(ctx, 0, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpr_check(ctx, CPR_MODE_EXEC, CPR_LEVEL_MAX + 1, NULL, NULL),
			 -EPROTONOSUPPORT);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* The refusal reaches the transports: ctx_outgoing names the reason. */
START_TEST(test_ctx_outgoing_blocked)
{
	struct cpr_error err = { 0 };
	struct cpr_state *st;
	struct cpr_ctx *ctx;
	uint32_t id;
	int nfds = test_count_fds(), *fds;
	size_t n;

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODES_ALL, "device in reset", &id, NULL), 0);
	ck_assert_int_eq(ctx_outgoing(ctx, CPR_MODE_TRANSFER, 0, &st, &fds, &n, &err), -EBUSY);
	ck_assert_ptr_nonnull(strstr(err.message, "device in reset"));
	ck_assert_int_eq(cpr_blocker_remove(ctx, id), 0);
	ck_assert_int_eq(ctx_outgoing(ctx, CPR_MODE_TRANSFER, 0, &st, &fds, &n, &err), 0);
	cpr_state_free(st);
	free(fds);
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A guest_memfd needs level 2: at level 1 it is a reason, given with the
 * user's reasons in one call. */
START_TEST(test_cpr_check_guest_memfd_level)
{
	struct cpr_error err = { 0 };
	struct cpr_ctx *ctx;
	struct seen s = { 0 };
	int nfds = test_count_fds(), kvm = -1, vm = -1, g, ev, *fds;
	struct cpr_state *st;
	char why[160];
	size_t n;

	/* Whatever the machine has, the kind check refuses a fake. */
	ev = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_eq(cpr_fd_check_kind(ev, CPR_FD_GUEST_MEMFD), -EMEDIUMTYPE);
	close(ev);
	g = test_guest_memfd(2u << 20, &kvm, &vm, why, sizeof(why));
	if (g < 0)
		test_skip_case("%s", why);
	ck_assert_int_eq(cpr_fd_check_kind(g, CPR_FD_GUEST_MEMFD), 0);
	ck_assert_int_eq(cpr_fd_check_kind(g, CPR_FD_MEMFD), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "gmem", 0, g, CPR_FD_GUEST_MEMFD, NULL), 0);
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODES_ALL, "user reason", NULL, NULL), 0);
	ck_assert_int_eq(cpr_check(ctx, CPR_MODE_EXEC, 1, collect, &s), -EBUSY);
	ck_assert_int_ge(s.n, 2);
	ck_assert(seen_has(&s, "user reason"));
	ck_assert(seen_has(&s, "level 1 cannot carry"));
	ck_assert_int_eq(cpr_ctx_set_target_level(ctx, 1, NULL), 0);
	ck_assert_int_eq(ctx_outgoing(ctx, CPR_MODE_EXEC, 0, &st, &fds, &n, &err), -EBUSY);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(cpr_check(ctx, CPR_MODE_EXEC, 2, collect, &s), -EBUSY);
	ck_assert_int_eq(s.n, 1); /* only the user's reason at level 2 */
	cpr_ctx_free(ctx);
	close(g);
	close(vm);
	close(kvm);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* Without the feature, the probes say so and why. */
START_TEST(test_cpr_probe)
{
	char why[256] = "";
	int nfds = test_count_fds();
	int r = cpr_probe_vfio(why, sizeof(why));

	ck_assert_int_ge(r, 0);
	ck_assert_int_gt(strlen(why), 10);
	if (access("/dev/vfio/vfio", F_OK) < 0) {
		ck_assert_int_eq(r, 0);
		ck_assert_ptr_nonnull(strstr(why, "/dev/vfio/vfio is absent"));
	}
	r = cpr_probe_iommufd(why, sizeof(why));
	ck_assert_int_ge(r, 0);
	if (access("/dev/iommu", F_OK) < 0) {
		ck_assert_int_eq(r, 0);
		ck_assert_ptr_nonnull(strstr(why, "/dev/iommu is absent"));
	}
	ck_assert_int_ge(cpr_probe_vfio(NULL, 0), 0);
	ck_assert_int_eq(cpr_probe_vfio(NULL, 5), -EINVAL);
	ck_assert_int_eq(cpr_probe_iommufd(NULL, 5), -EINVAL);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_cpr_ramblock_dma_map_errors)
{
	int nfds = test_count_fds();
	struct cpr_ctx *ctx;
	struct cpr_ramblock *rb;
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_ge(efd, 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "ram", 1u << 20, 0, 0, 0, &rb, NULL), 0);
	ck_assert_int_eq(cpr_ramblock_dma_map(NULL, efd, 0, 0, CPR_DMA_READ), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_dma_map(rb, efd, 0, 0, 0), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_dma_map(rb, efd, 0, 0, 1u << 7), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_dma_map(rb, efd, 0, 1, CPR_DMA_READ), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_dma_map(rb, -1, 0, 0, CPR_DMA_READ), -EBADF);
	/* not registered, then registered but neither iommufd nor container */
	ck_assert_int_eq(cpr_ramblock_dma_map(rb, efd, 0, 0, CPR_DMA_READ), -EBADF);
	ck_assert_int_eq(cpr_fd_save(ctx, "ev", 0, efd, CPR_FD_EVENTFD, NULL), 0);
	ck_assert_int_eq(cpr_ramblock_dma_map(rb, efd, 1, 0, CPR_DMA_READ), -EMEDIUMTYPE);
	ck_assert_int_eq(cpr_ramblock_dma_unmap(rb, efd, 0), -ENOENT);
	ck_assert_int_eq(cpr_ramblock_dma_unmap(rb, -1, 0), -EBADF);
	ck_assert_int_eq(cpr_ramblock_dma_unmap(NULL, efd, 0), -EINVAL);
	ck_assert_int_eq(cpr_ramblock_dma_count(rb), 0);
	ck_assert_int_eq(cpr_ramblock_dma_count(NULL), -EINVAL);
	/* libcpr's own private record type is not the VMM's */
	ck_assert_int_eq(cpr_ctx_set_private(ctx, CPR_REC_DMA, 0, "x", 1), -EINVAL);
	cpr_ramblock_free(rb);
	cpr_ctx_free(ctx);
	close(efd);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *blocker_suite(void)
{
	Suite *s = suite_create("blocker");
	TCase *tc = tcase_create("blocker");

	tcase_add_test(tc, test_cpr_check_per_mode);
	tcase_add_test(tc, test_cpr_blocker_add_einval);
	tcase_add_test(tc, test_ctx_outgoing_blocked);
	tcase_add_test(tc, test_cpr_check_guest_memfd_level);
	tcase_add_test(tc, test_cpr_probe);
	tcase_add_test(tc, test_cpr_ramblock_dma_map_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(blocker_suite());
}
