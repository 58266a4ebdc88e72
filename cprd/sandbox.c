/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Narrowing cprd, in a fixed order: resource limits, then
 * PR_SET_NO_NEW_PRIVS, then the seccomp filter of cprd.policy (default
 * kill).  After sandbox_apply() the daemon can do only what the policy lists.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cpr/policy.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"

/* fds the daemon needs besides held ones: epoll, timers, config, sd_notify */
#define SANDBOX_FDS_RESERVE 64u

/*
 * RLIMIT_NOFILE must hold every held fd, one per connection and a reserve;
 * raise the soft limit up to the hard one, and clamp max-fds (as
 * s6-fdholderd clamps -n) when even that is too small.  No core dumps: a
 * daemon image would show which fds it holds.
 */
int sandbox_rlimits(struct cprd_limits *l)
{
	struct rlimit rl, core = { 0, 0 };
	uint64_t need = (uint64_t)l->max_fds_total + l->max_connections * 2u + SANDBOX_FDS_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur < need) {
		rl.rlim_cur =
			rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -errno;
	}
	if (rl.rlim_cur < need) {
		uint64_t room =
			rl.rlim_cur > l->max_connections * 2u + SANDBOX_FDS_RESERVE
				? rl.rlim_cur - l->max_connections * 2u - SANDBOX_FDS_RESERVE
				: 0;

		if (room == 0)
			return -EMFILE;
		log_warnx("RLIMIT_NOFILE is %llu: max-fds lowered from %u to %llu",
			  (unsigned long long)rl.rlim_cur, l->max_fds_total,
			  (unsigned long long)room);
		l->max_fds_total = (unsigned)room;
	}
	if (setrlimit(RLIMIT_CORE, &core) < 0)
		return -errno;
	return 0;
}

static int sandbox_load(const char *path, struct cpr_policy **ret)
{
	struct cpr_error err = { 0 };
	int r = cpr_policy_load(path, ret, &err);

	/* the message names the file and the reason already */
	if (r == -ENOENT)
		log_warnx("%s; give the seccomp policy with --policy PATH (policy/cprd.policy "
			  "in the source tree), or --no-sandbox to run without one",
			  err.message[0] ? err.message : path);
	else if (r < 0)
		log_warnx("%s", err.message[0] ? err.message : "cannot load the seccomp policy");
	return r;
}

int sandbox_apply(const char *policy_path)
{
	struct cpr_policy *pol = NULL;
	int r = sandbox_load(policy_path, &pol);

	if (r < 0)
		return r;
	/* cpr_policy_apply() sets PR_SET_NO_NEW_PRIVS itself; setting it here
	 * first keeps the order explicit and fails early if it is refused. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		log_warn("PR_SET_NO_NEW_PRIVS");
	} else {
		r = cpr_policy_apply(pol);
		if (r < 0)
			log_errno(r, "cannot load the seccomp filter of %s", policy_path);
	}
	cpr_policy_free(pol);
	return r;
}

int sandbox_dump(const char *policy_path)
{
	struct cpr_policy *pol = NULL;
	int r = sandbox_load(policy_path, &pol);

	if (r < 0)
		return r;
	fflush(stdout);
	r = cpr_policy_export_pfc(pol, STDOUT_FILENO);
	if (r < 0)
		log_errno(r, "cannot export the filter");
	cpr_policy_free(pol);
	return r;
}
