/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Every carrier and every call with a struct cpr_error, driven through the
 * errnos its man page documents: the code is the one expected, it is in the
 * page's ERRORS list (read from man/ here, so the two cannot drift), and
 * ret_err is filled with the same code and a message.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cpr/cpr.h>

#include "internal.h"
#include "scm.h"
#include "transfer.h"
#include "test-util.h"

#define MAX_ERRNOS 64

static const struct {
	const char *name;
	int code;
} errno_names[] = {
	{ "EINVAL", EINVAL },
	{ "EBADF", EBADF },
	{ "EBUSY", EBUSY },
	{ "EALREADY", EALREADY },
	{ "ESOCKTNOSUPPORT", ESOCKTNOSUPPORT },
	{ "EPROTONOSUPPORT", EPROTONOSUPPORT },
	{ "E2BIG", E2BIG },
	{ "EPIPE", EPIPE },
	{ "ECONNRESET", ECONNRESET },
	{ "ETIMEDOUT", ETIMEDOUT },
	{ "ECONNREFUSED", ECONNREFUSED },
	{ "ENOTSOCK", ENOTSOCK },
	{ "ENOMEM", ENOMEM },
	{ "ENOENT", ENOENT },
	{ "EBADMSG", EBADMSG },
	{ "EPROTO", EPROTO },
	{ "ESTALE", ESTALE },
	{ "EEXIST", EEXIST },
	{ "EMSGSIZE", EMSGSIZE },
	{ "EMEDIUMTYPE", EMEDIUMTYPE },
	{ "EIO", EIO },
	{ "EACCES", EACCES },
	{ "EPERM", EPERM },
	{ "ESRCH", ESRCH },
	{ "EFBIG", EFBIG },
	{ "ERANGE", ERANGE },
	{ "EADDRINUSE", EADDRINUSE },
	{ "EMFILE", EMFILE },
	{ "ENFILE", ENFILE },
	{ "ENAMETOOLONG", ENAMETOOLONG },
};

struct errset {
	int code[MAX_ERRNOS];
	size_t n;
};

static void errset_add(struct errset *s, const char *name)
{
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++) {
		if (strcmp(errno_names[i].name, name) != 0)
			continue;
		ck_assert_uint_lt(s->n, MAX_ERRNOS);
		s->code[s->n++] = errno_names[i].code;
		return;
	}
	ck_abort_msg("a man page names errno %s that this test does not know", name);
}

/* ".It Bq Er EPIPE , ECONNRESET": every name of the entry. */
static void errset_add_line(struct errset *s, char *line)
{
	char *save = NULL;

	for (char *t = strtok_r(line + strlen(".It Bq Er"), " ,\n", &save); t;
	     t = strtok_r(NULL, " ,\n", &save))
		errset_add(s, t);
}

struct man_walk {
	bool names_fn;	 /* the paragraph names @fn with .Fn */
	bool names_any;	 /* ... or any function */
	bool with_parse; /* ... and says "the errors of cpr_state_parse(3)" */
	bool errors_of;	 /* the previous line ended in "errors of" */
	int depth;	 /* .Bl nesting inside ERRORS */
	bool list_is_fn; /* the open list applies to @fn */
};

static void man_errnos(const char *page, const char *fn, struct errset *s);

static void man_line(struct man_walk *w, char *line, const char *fn, struct errset *s)
{
	size_t fl = strlen(fn);

	if (w->depth) {
		if (strncmp(line, ".Bl", 3) == 0)
			w->depth++;
		else if (strncmp(line, ".El", 3) == 0 && --w->depth == 0)
			*w = (struct man_walk){ 0 };
		else if (w->depth == 1 && w->list_is_fn && strncmp(line, ".It Bq Er ", 10) == 0)
			errset_add_line(s, line);
		return;
	}
	if (strncmp(line, ".Bl", 3) == 0) {
		w->depth = 1;
		/* a list that follows no .Fn is the page's one list for all */
		w->list_is_fn = w->names_fn || !w->names_any;
		if (w->list_is_fn && w->with_parse)
			man_errnos("cpr_state_parse.3", "cpr_state_parse", s);
		return;
	}
	if (strncmp(line, ".Pp", 3) == 0) {
		*w = (struct man_walk){ 0 };
		return;
	}
	if (strncmp(line, ".Fn ", 4) == 0) {
		w->names_any = true;
		if (strncmp(line + 4, fn, fl) == 0 && strchr(" :,\n", line[4 + fl]))
			w->names_fn = true;
	}
	if (w->errors_of && strncmp(line, ".Xr cpr_state_parse 3", 21) == 0)
		w->with_parse = true;
	w->errors_of = strstr(line, "errors of") != NULL;
}

/* The errnos man/@page lists for @fn under ERRORS. */
static void man_errnos(const char *page, const char *fn, struct errset *s)
{
	struct man_walk w = { 0 };
	char path[512], line[512];
	bool in_errors = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/man/%s", test_srcdir(), page);
	f = fopen(path, "re");
	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, ".Sh ", 4) == 0) {
			in_errors = strcmp(line, ".Sh ERRORS\n") == 0;
			continue;
		}
		if (in_errors)
			man_line(&w, line, fn, s);
	}
	fclose(f);
	ck_assert_msg(s->n > 0, "%s lists no errno for %s", page, fn);
}

/*
 * @r is -@want, @want is documented for @fn in @page, and @err says the
 * same with a message.
 */
static void expect(const char *page, const char *fn, int r, int want, const struct cpr_error *err)
{
	struct errset s = { 0 };
	bool listed = false;

	man_errnos(page, fn, &s);
	ck_assert_msg(r == -want, "%s: %d (%s), expected -%s", fn, r, strerror(-r), strerror(want));
	for (size_t i = 0; i < s.n; i++)
		listed |= s.code[i] == want;
	ck_assert_msg(listed, "%s: %s is not in the ERRORS of %s", fn, strerror(want), page);
	ck_assert_msg(err->code == r, "%s: ret_err code %d, returned %d", fn, err->code, r);
	ck_assert_msg(err->message[0], "%s: ret_err has no message", fn);
}

static struct cpr_error fresh_err(void)
{
	struct cpr_error e;

	memset(&e, 0x55, sizeof(e)); /* what the call does not fill shows */
	e.message[0] = 0;
	return e;
}

#define EXPECT(page, fn, want, call)                 \
	do {                                         \
		struct cpr_error err_ = fresh_err(); \
		int r_ = (call);                     \
		expect(page, #fn, r_, want, &err_);  \
	} while (0)

START_TEST(test_errno_man_pages_parse)
{
	struct errset s = { 0 };
	int nfds = test_count_fds();
	bool parse_errs = false, estale = false;

	man_errnos("cpr_transfer_send.3", "cpr_transfer_recv", &s);
	for (size_t i = 0; i < s.n; i++) {
		estale |= s.code[i] == ESTALE;
		parse_errs |= s.code[i] == EIO; /* the catch-all shared by five */
	}
	ck_assert(estale && parse_errs);
	s.n = 0;
	man_errnos("cpr_transfer_send.3", "cpr_transfer_reclaim", &s);
	for (size_t i = 0; i < s.n; i++)
		ck_assert_int_ne(s.code[i], ESTALE); /* not recv's list */
	test_assert_no_fd_leak(nfds);
}
END_TEST

static struct cpr_ctx *ctx_with_fd(int *ret_ev)
{
	struct cpr_ctx *ctx;

	*ret_ev = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(*ret_ev, 0);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	ck_assert_int_eq(cpr_fd_save(ctx, "ev", 0, *ret_ev, CPR_FD_EVENTFD, NULL), 0);
	return ctx;
}

START_TEST(test_errno_transfer_send)
{
	const char *p = "cpr_transfer_send.3";
	int nfds = test_count_fds(), ev, sv[2], pp[2];
	struct cpr_ctx *ctx = ctx_with_fd(&ev);
	uint32_t id;

	EXPECT(p, cpr_transfer_send, EINVAL, cpr_transfer_send(NULL, 0, &err_));
	EXPECT(p, cpr_transfer_send, EBADF, cpr_transfer_send(ctx, -1, &err_));
	ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
	EXPECT(p, cpr_transfer_send, ENOTSOCK, cpr_transfer_send(ctx, pp[1], &err_));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	EXPECT(p, cpr_transfer_send, ESOCKTNOSUPPORT, cpr_transfer_send(ctx, sv[0], &err_));
	close(sv[0]);
	close(sv[1]);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODE_TRANSFER, "device busy", &id, NULL), 0);
	EXPECT(p, cpr_transfer_send, EBUSY, cpr_transfer_send(ctx, sv[0], &err_));
	ck_assert_int_eq(cpr_blocker_remove(ctx, id), 0);
	EXPECT(p, cpr_transfer_wait_ack, ENOENT, cpr_transfer_wait_ack(ctx, sv[0], 0, &err_));
	EXPECT(p, cpr_transfer_wait_ack, EINVAL, cpr_transfer_wait_ack(ctx, sv[0], -2, &err_));
	EXPECT(p, cpr_transfer_reclaim, ENOENT, cpr_transfer_reclaim(ctx, sv[0], &err_));
	EXPECT(p, cpr_transfer_reclaim, EBADF, cpr_transfer_reclaim(ctx, -1, &err_));
	EXPECT(p, cpr_transfer_ack, ENOENT, cpr_transfer_ack(ctx, sv[0], &err_));
	EXPECT(p, cpr_transfer_ack, EINVAL, cpr_transfer_ack(NULL, sv[0], &err_));
	close(sv[0]);
	close(sv[1]);
	close(pp[0]);
	close(pp[1]);
	cpr_ctx_free(ctx);
	close(ev);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A real stream naming one eventfd, and its id. */
static void *stream_of_one(size_t *ret_len, uint8_t id[16])
{
	struct cpr_state_info info;
	struct cpr_state *st;
	struct cpr_ctx *ctx;
	void *buf;
	int ev;

	ctx = ctx_with_fd(&ev);
	ck_assert_int_eq(cpr_ctx_build_state(ctx, &st), 0);
	ck_assert_int_eq(cpr_state_encode(st, 0, NULL, NULL, &buf, ret_len, NULL), 0);
	ck_assert_int_eq(cpr_state_get_info(st, &info), 0);
	memcpy(id, info.stream_id, 16);
	cpr_state_free(st);
	cpr_ctx_free(ctx);
	close(ev);
	return buf;
}

/* Send a preamble (announcing @claim_fds, id @id), @stream and @attach
 * eventfds in one chunk, then receive it here. */
static int recv_forged(const void *stream, size_t len, const uint8_t id[16], uint32_t claim_fds,
		       size_t attach, bool bad_magic, struct cpr_error *err)
{
	uint8_t pre[XFER_PREAMBLE_SIZE], h[SCM_CHUNK_SIZE];
	struct cpr_ctx *ctx;
	int sv[2], fds[4], r;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	xfer_preamble_store(pre, len, claim_fds, id);
	if (bad_magic)
		pre[0] ^= 0xff;
	ck_assert_int_eq(write(sv[0], pre, sizeof(pre)), (ssize_t)sizeof(pre));
	ck_assert_int_eq(write(sv[0], stream, len), (ssize_t)len);
	for (size_t i = 0; i < attach; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	memset(h, 0, sizeof(h));
	le32_store(h, SCM_CHUNK_MAGIC);
	le16_store(h + 8, (uint16_t)attach);
	ck_assert_int_eq(scm_send(sv[0], h, sizeof(h), fds, attach), (ssize_t)sizeof(h));
	for (size_t i = 0; i < attach; i++)
		close(fds[i]);
	shutdown(sv[0], SHUT_WR);
	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	r = cpr_transfer_recv(ctx, sv[1], err);
	ck_assert_int_eq(cpr_ctx_incoming(ctx), 0);
	cpr_ctx_free(ctx);
	close(sv[0]);
	close(sv[1]);
	return r;
}

START_TEST(test_errno_transfer_recv)
{
	const char *p = "cpr_transfer_send.3";
	int nfds = test_count_fds();
	uint8_t id[16], other[16];
	size_t len;
	void *s = stream_of_one(&len, id);

	memcpy(other, id, 16);
	other[0] ^= 1;
	EXPECT(p, cpr_transfer_recv, EBADMSG, recv_forged(s, len, id, 1, 1, true, &err_));
	EXPECT(p, cpr_transfer_recv, ESTALE, recv_forged(s, len, other, 1, 1, false, &err_));
	EXPECT(p, cpr_transfer_recv, EPROTO, recv_forged(s, len, id, 2, 2, false, &err_));
	EXPECT(p, cpr_transfer_recv, EINVAL, cpr_transfer_recv(NULL, 0, &err_));
	free(s);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_errno_handoff)
{
	const char *p = "cpr_handoff_export.3";
	int nfds = test_count_fds(), ev, ev2 = eventfd(0, EFD_CLOEXEC), two[2];
	struct cpr_ctx *ctx = ctx_with_fd(&ev), *in;
	void *buf;
	size_t len, n;
	int *fds;
	uint32_t id;

	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODE_TRANSFER, "vhost busy", &id, NULL), 0);
	EXPECT(p, cpr_handoff_export, EBUSY, cpr_handoff_export(ctx, &buf, &len, &fds, &n, &err_));
	ck_assert_int_eq(cpr_blocker_remove(ctx, id), 0);
	EXPECT(p, cpr_handoff_export, EINVAL, cpr_handoff_export(ctx, NULL, &len, &fds, &n, &err_));
	ck_assert_int_eq(cpr_handoff_export(ctx, &buf, &len, &fds, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(cpr_ctx_new(&in), 0);
	two[0] = fds[0];
	two[1] = ev2;
	EXPECT(p, cpr_handoff_import, EPROTO, cpr_handoff_import(in, buf, len, two, 2, &err_));
	((uint8_t *)buf)[len / 2] ^= 0xff; /* the CRC no longer holds */
	EXPECT(p, cpr_handoff_import, EBADMSG, cpr_handoff_import(in, buf, len, fds, 1, &err_));
	EXPECT(p, cpr_handoff_import, E2BIG,
	       cpr_handoff_import(in, buf, len, fds, CPR_FDS_MAX + 1, &err_));
	EXPECT(p, cpr_handoff_import, EINVAL, cpr_handoff_import(in, NULL, len, fds, 1, &err_));
	ck_assert_int_eq(cpr_ctx_incoming(in), 0);
	cpr_ctx_free(in);
	free(buf);
	free(fds);
	cpr_ctx_free(ctx);
	close(ev);
	close(ev2);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_errno_exec)
{
	const char *p = "cpr_exec.3";
	char *av[] = { (char *)"x", NULL }, path[] = "/tmp/cpr-errno-XXXXXX";
	int nfds = test_count_fds(), ev, tmp;
	struct cpr_ctx *ctx = ctx_with_fd(&ev);
	uint32_t id;

	EXPECT(p, cpr_exec, EINVAL, cpr_exec(ctx, NULL, av, NULL, &err_));
	ck_assert_int_eq(cpr_blocker_add(ctx, CPR_MODE_EXEC, "device busy", &id, NULL), 0);
	EXPECT(p, cpr_exec, EBUSY, cpr_exec(ctx, "/nonexistent/vmm", av, NULL, &err_));
	ck_assert_int_eq(cpr_blocker_remove(ctx, id), 0);
	EXPECT(p, cpr_exec, ENOENT, cpr_exec(ctx, "/nonexistent/vmm", av, NULL, &err_));
	tmp = mkostemp(path, O_CLOEXEC); /* a file without x bits */
	ck_assert_int_ge(tmp, 0);
	close(tmp);
	if (geteuid() != 0)
		EXPECT(p, cpr_exec, EACCES, cpr_exec(ctx, path, av, NULL, &err_));
	unlink(path);
	ck_assert_int_eq(fcntl(ev, F_GETFD), FD_CLOEXEC); /* restored */
	ck_assert_int_eq(setenv(CPR_EXEC_ENV, "garbage", 1), 0);
	EXPECT(p, cpr_exec_incoming, EBADMSG, cpr_exec_incoming(ctx, &err_));
	ck_assert_int_eq(unsetenv(CPR_EXEC_ENV), 0);
	EXPECT(p, cpr_exec_incoming, EINVAL, cpr_exec_incoming(NULL, &err_));
	cpr_ctx_free(ctx);
	close(ev);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_errno_ramblock)
{
	const char *p = "cpr_ramblock_new.3";
	uint64_t ps = (uint64_t)getpagesize();
	int nfds = test_count_fds(), fd, r;
	struct cpr_error err = fresh_err();
	struct cpr_ramblock *rb, *rb2;
	struct rlimit rl, low;
	struct cpr_ctx *ctx;

	ck_assert_int_eq(cpr_ctx_new(&ctx), 0);
	EXPECT(p, cpr_ramblock_new, EINVAL,
	       cpr_ramblock_new(ctx, "a", ps + 1, 0, 0, 0, &rb, &err_));
	/* A full fd table: memfd_create(2) refuses, with EMFILE. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	fd = fcntl(0, F_DUPFD_CLOEXEC, 0); /* the lowest free number */
	ck_assert_int_ge(fd, 0);
	close(fd);
	low.rlim_cur = (rlim_t)fd;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	r = cpr_ramblock_new(ctx, "a", ps, 0, 0, 0, &rb, &err);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0); /* before reading the page */
	expect(p, "cpr_ramblock_new", r, EMFILE, &err);
	ck_assert_int_eq(cpr_ramblock_new(ctx, "a", ps, 0, 0, 0, &rb, NULL), 0);
	EXPECT(p, cpr_ramblock_new, EEXIST, cpr_ramblock_new(ctx, "a", ps, 0, 0, 0, &rb2, &err_));
	EXPECT(p, cpr_ramblock_resize, EPERM, cpr_ramblock_resize(rb, 2 * ps, &err_));
	ck_assert_int_eq(
		cpr_ramblock_new(ctx, "b", ps, 4 * ps, 0, CPR_RAMBLOCK_RESIZEABLE, &rb2, NULL), 0);
	EXPECT(p, cpr_ramblock_resize, ERANGE, cpr_ramblock_resize(rb2, 8 * ps, &err_));
	EXPECT(p, cpr_ramblock_resize, EINVAL, cpr_ramblock_resize(NULL, ps, &err_));
	cpr_ctx_free(ctx);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_errno_registry)
{
	const char *p = "cpr_fd_save.3";
	int nfds = test_count_fds(), ev, fd;
	struct cpr_ctx *ctx = ctx_with_fd(&ev);

	EXPECT(p, cpr_fd_save, EEXIST, cpr_fd_save(ctx, "ev", 0, ev, CPR_FD_EVENTFD, &err_));
	EXPECT(p, cpr_fd_save, EBADF, cpr_fd_save(ctx, "x", 0, 999, CPR_FD_EVENTFD, &err_));
	EXPECT(p, cpr_fd_save, EMEDIUMTYPE, cpr_fd_save(ctx, "x", 0, 0, CPR_FD_MEMFD, &err_));
	EXPECT(p, cpr_fd_save, EINVAL, cpr_fd_save(ctx, "x", -1, ev, CPR_FD_EVENTFD, &err_));
	EXPECT(p, cpr_fd_claim, ENOENT, cpr_fd_claim(ctx, "x", 0, 0, &fd, &err_));
	EXPECT(p, cpr_fd_claim, EMEDIUMTYPE, cpr_fd_claim(ctx, "ev", 0, CPR_FD_MEMFD, &fd, &err_));
	EXPECT(p, cpr_fd_claim, EINVAL, cpr_fd_claim(ctx, "ev", 0, 0, NULL, &err_));
	EXPECT("cpr_check.3", cpr_blocker_add, EINVAL,
	       cpr_blocker_add(ctx, 0, "no mode", NULL, &err_));
	EXPECT("cpr_ctx_new.3", cpr_ctx_set_target_level, EPROTONOSUPPORT,
	       cpr_ctx_set_target_level(ctx, CPR_LEVEL_MAX + 1, &err_));
	EXPECT("cpr_ctx_new.3", cpr_ctx_set_target_level, EINVAL,
	       cpr_ctx_set_target_level(NULL, 1, &err_));
	cpr_ctx_free(ctx);
	close(ev);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *errno_suite(void)
{
	Suite *s = suite_create("errno");
	TCase *tc = tcase_create("errno");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_errno_man_pages_parse);
	tcase_add_test(tc, test_errno_transfer_send);
	tcase_add_test(tc, test_errno_transfer_recv);
	tcase_add_test(tc, test_errno_handoff);
	tcase_add_test(tc, test_errno_exec);
	tcase_add_test(tc, test_errno_ramblock);
	tcase_add_test(tc, test_errno_registry);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(errno_suite());
}
