/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may create which names (cprd.conf(5), NAMESPACES), against a real
 * cprd: "uid-N/" is uid N's, a namespace line opens a prefix to uids and
 * gids, everything else is for administrators; the check comes before the
 * name is looked up, so that nobody learns of a name it may not create.
 * And a malformed name is refused saying what is wrong with it.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "client.h"
#include "cprd-test.h"
#include "test-util.h"

/* Store @name (1 fd) as @uid/@gid in a child: 0, or the errno. */
static int store_as(const struct cprd_daemon *d, uid_t uid, gid_t gid, const char *name)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int s, r;

		if (uid)
			cprd_test_become(uid, gid);
		if (cprd_connect(d->sock, &s) < 0)
			_exit(200);
		r = cprd_test_store(s, name, 1, "ns", NULL);
		_exit(r == 0 ? 0 : r == -EACCES ? 1 : r == -EEXIST ? 2 : 3);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

#define OK 0
#define REFUSED 1 /* EACCES */
#define EXISTS 2  /* EEXIST */

START_TEST(test_namespaces_default)
{
	struct cprd_daemon d;
	int nfds = test_count_fds();

	/* a namespace line for something else: the defaults stay in force */
	cprd_daemon_start(&d, NULL, "namespace = test/ 1\n", NULL);
	ck_assert_int_eq(store_as(&d, OTHER_UID, OTHER_GID, "libvirt/domain/x"), REFUSED);
	ck_assert_int_eq(store_as(&d, OTHER_UID, OTHER_GID, "uid-65534/vm1"), OK);
	ck_assert_int_eq(store_as(&d, THIRD_UID, THIRD_GID, "uid-65534/vm2"), REFUSED);
	ck_assert_int_eq(store_as(&d, THIRD_UID, THIRD_GID, "uid-4242/vm2"), OK);
	ck_assert_int_eq(store_as(&d, 0, 0, "libvirt/domain/x"), OK);
	/* not a uid prefix: "uid-65534x/" or a name without the slash */
	ck_assert_int_eq(store_as(&d, OTHER_UID, OTHER_GID, "uid-65534x/vm"), REFUSED);
	ck_assert_int_eq(store_as(&d, OTHER_UID, OTHER_GID, "uid-65534"), REFUSED);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

START_TEST(test_namespaces_configured)
{
	struct cprd_daemon d;
	int nfds = test_count_fds();

	cprd_daemon_start(&d, NULL,
			  "namespace = libvirt/ 4242\n"
			  "namespace = libvirt/shared/ @65534 4242\n"
			  "namespace = scratch/ *\n",
			  NULL);
	ck_assert_int_eq(store_as(&d, THIRD_UID, THIRD_GID, "libvirt/a"), OK);
	ck_assert_int_eq(store_as(&d, OTHER_UID, OTHER_GID, "libvirt/b"), REFUSED);
	/* the longest prefix decides; a gid admits its members */
	ck_assert_int_eq(store_as(&d, OTHER_UID, OTHER_GID, "libvirt/shared/c"), OK);
	ck_assert_int_eq(store_as(&d, THIRD_UID, THIRD_GID, "libvirt/shared/d"), OK);
	ck_assert_int_eq(store_as(&d, OTHER_UID, OTHER_GID, "scratch/e"), OK);
	ck_assert_int_eq(store_as(&d, THIRD_UID, THIRD_GID, "other/f"), REFUSED);
	/*
	 * No existence leak: a name root took under libvirt/ is EEXIST for
	 * those who may create there, and for everyone else the same refusal
	 * as for a free name.
	 */
	ck_assert_int_eq(store_as(&d, 0, 0, "libvirt/taken"), OK);
	ck_assert_int_eq(store_as(&d, OTHER_UID, OTHER_GID, "libvirt/taken"), REFUSED);
	ck_assert_int_eq(store_as(&d, OTHER_UID, OTHER_GID, "libvirt/free"), REFUSED);
	ck_assert_int_eq(store_as(&d, THIRD_UID, THIRD_GID, "libvirt/taken"), EXISTS);
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

/* A config that gets namespaces wrong does not start (exit 100). */
START_TEST(test_namespaces_bad_config)
{
	static const char *const bad[] = {
		"namespace = libvirt/\n",		/* nobody */
		"namespace = .hidden/ 1\n",		/* not a valid name prefix */
		"namespace = a/ 1\nnamespace = a/ 2\n", /* twice */
		"namespace = a/ @x\n",
	};
	int nfds = test_count_fds();

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char dir[] = "/tmp/cprd-names-XXXXXX", conf[64], cprd[4096];
		int status;
		pid_t pid;
		FILE *f;

		ck_assert_ptr_nonnull(mkdtemp(dir));
		snprintf(conf, sizeof(conf), "%s/conf", dir);
		f = fopen(conf, "we");
		ck_assert_ptr_nonnull(f);
		fputs(bad[i], f);
		fclose(f);
		snprintf(cprd, sizeof(cprd), "%s", test_build_path("cprd/cprd"));
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			execl(cprd, "cprd", "--no-sandbox", "--config", conf, "--socket",
			      "/nonexistent/s", (char *)NULL);
			_exit(127);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 100, "%s: status %#x",
			      bad[i], status);
		unlink(conf);
		rmdir(dir);
	}
	test_assert_no_fd_leak(nfds);
}
END_TEST

static void expect_name_error(const struct cprd_daemon *d, const char *req, const char *want)
{
	struct json_object *o = json_tokener_parse(req), *reply = NULL;
	int s = cprd_test_connect(d);

	ck_assert_int_eq(cprd_call(s, o, NULL, 0, &reply), -EINVAL);
	ck_assert_msg(strstr(cprd_reply_message(reply), want), "%s: %s", req,
		      cprd_reply_message(reply));
	json_object_put(reply);
	json_object_put(o);
	close(s);
}

/* Missing, malformed and over-long names each say what is wrong. */
START_TEST(test_name_errors_say_why)
{
	struct cprd_daemon d;
	int nfds = test_count_fds();
	char longreq[256];

	snprintf(longreq, sizeof(longreq), "{\"op\":\"show\",\"name\":\"%0129d\"}", 0);
	cprd_daemon_start(&d, NULL, NULL, NULL);
	expect_name_error(&d, "{\"op\":\"show\"}", "\"name\" is required");
	expect_name_error(&d, "{\"op\":\"show\",\"name\":7}", "\"name\" must be a string");
	expect_name_error(&d, longreq, "\"name\" is longer than 128 bytes");
	expect_name_error(&d, "{\"op\":\"create\",\"name\":\"a b\"}", "may hold only letters");
	expect_name_error(&d, "{\"op\":\"create\",\"name\":\"\"}", "may hold only letters");
	cprd_daemon_stop(&d);
	test_assert_no_fd_leak(nfds);
}
END_TEST

static Suite *cprd_names_suite(void)
{
	Suite *s = suite_create("cprd-names");
	TCase *tc = tcase_create("names");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_namespaces_default);
	tcase_add_test(tc, test_namespaces_configured);
	tcase_add_test(tc, test_namespaces_bad_config);
	tcase_add_test(tc, test_name_errors_say_why);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run(cprd_names_suite());
}
