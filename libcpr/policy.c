/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Seccomp policies: build the libseccomp filter from a parsed policy, load
 * it, export it.  The text format lives in policy-parse.c; cpr-policy(5)
 * describes it and cpr_policy_parse(3) this API.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "policy-internal.h"

#define PFC_MAX (16u << 20) /* PFC text of the largest policy is far smaller */

const char *policy_arch_name(uint32_t arch)
{
	static const struct {
		uint32_t token;
		const char *name;
	} names[] = {
		{ SCMP_ARCH_X86, "x86" },	    { SCMP_ARCH_X86_64, "x86_64" },
		{ SCMP_ARCH_X32, "x32" },	    { SCMP_ARCH_ARM, "arm" },
		{ SCMP_ARCH_AARCH64, "aarch64" },   { SCMP_ARCH_MIPS, "mips" },
		{ SCMP_ARCH_MIPS64, "mips64" },	    { SCMP_ARCH_MIPSEL, "mipsel" },
		{ SCMP_ARCH_MIPSEL64, "mipsel64" }, { SCMP_ARCH_PPC, "ppc" },
		{ SCMP_ARCH_PPC64, "ppc64" },	    { SCMP_ARCH_PPC64LE, "ppc64le" },
		{ SCMP_ARCH_S390, "s390" },	    { SCMP_ARCH_S390X, "s390x" },
		{ SCMP_ARCH_RISCV64, "riscv64" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].token == arch)
			return names[i].name;
	return "unknown";
}

const struct policy_rule *policy_rule_get(const struct cpr_policy *p, size_t index)
{
	return p && index < p->n_rules ? &p->rules[index] : NULL;
}

static int build_rule(scmp_filter_ctx ctx, const struct policy_rule *rule)
{
	struct scmp_arg_cmp cmp[POLICY_ARGS];

	for (unsigned i = 0; i < rule->n_conds; i++) {
		const struct policy_cond *c = &rule->conds[i];

		cmp[i] = (struct scmp_arg_cmp){
			.arg = c->arg,
			.op = (enum scmp_compare)c->op,
			.datum_a = c->op == POLICY_OP_MASKED_EQ ? c->mask : c->value,
			.datum_b = c->op == POLICY_OP_MASKED_EQ ? c->value : 0,
		};
	}
	return seccomp_rule_add_array(ctx, rule->action, rule->nr, rule->n_conds, cmp);
}

static int build_attrs(scmp_filter_ctx ctx)
{
	int r;

	/* Calls through an architecture the policy does not name kill. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	/* cpr_policy_apply() sets PR_SET_NO_NEW_PRIVS itself. */
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	return r;
}

static int build_arches(scmp_filter_ctx ctx, const struct cpr_policy *p, const char *file,
			struct cpr_error *err)
{
	for (size_t i = 0; i < p->n_arches; i++) {
		int r = seccomp_arch_add(ctx, p->arches[i]);

		if (r < 0) {
			cpr_error_set(err, -EINVAL, UINT32_MAX, p->arch_line[i], p->arch_col[i],
				      "%s:%u:%u: libseccomp cannot combine architecture '%s' with "
				      "the others: %s",
				      file, p->arch_line[i], p->arch_col[i],
				      policy_arch_name(p->arches[i]), strerror(-r));
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Compile the program once, into a private memfd, to learn its length: the
 * kernel refuses programs longer than BPF_MAXINSNS, and a policy that parses
 * must be one that loads.
 */
static int program_size(scmp_filter_ctx ctx, size_t *ret_insns)
{
	_cleanup_close_ int fd = memfd_create("cpr-policy-bpf", MFD_CLOEXEC);
	struct stat st;
	int r;

	if (fd < 0)
		return -errno;
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0)
		return -errno;
	*ret_insns = (size_t)st.st_size / sizeof(struct sock_filter);
	return 0;
}

static int build_rules(scmp_filter_ctx ctx, const struct cpr_policy *p, const char *file,
		       struct cpr_error *err)
{
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct policy_rule *rule = &p->rules[i];
		int r = build_rule(ctx, rule);

		if (r < 0) {
			r = r == -ENOMEM ? r : -EINVAL;
			cpr_error_set(err, r, UINT32_MAX, rule->line, rule->syscall_col,
				      "%s:%u:%u: libseccomp refused the rule for '%s': %s", file,
				      rule->line, rule->syscall_col, rule->name, strerror(-r));
			return r;
		}
	}
	return 0;
}

/* The program must fit the kernel: BPF_MAXINSNS instructions at most. */
static int check_program(scmp_filter_ctx ctx, struct cpr_policy *p, const char *file,
			 struct cpr_error *err)
{
	int r = program_size(ctx, &p->n_insns);

	if (r < 0) {
		cpr_error_set(err, r, UINT32_MAX, 0, 0, "%s: cannot compile the filter: %s", file,
			      strerror(-r));
		return r;
	}
	if (p->n_insns > BPF_MAXINSNS) {
		cpr_error_set(err, -E2BIG, UINT32_MAX, 0, 0,
			      "%s: the filter compiles to %zu BPF instructions; the kernel loads "
			      "at most %u",
			      file, p->n_insns, BPF_MAXINSNS);
		return -E2BIG;
	}
	return 0;
}

/* The filter for a parsed policy; libseccomp's refusals name the rule. */
static int policy_build(struct cpr_policy *p, const char *filename, struct cpr_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(p->default_action);
	const char *name = filename ? filename : "<policy>";
	char file[200];
	int r;

	cpr_quote(file, sizeof(file), name, strlen(name));
	if (!ctx) {
		cpr_error_set(err, -ENOMEM, UINT32_MAX, 0, 0, "%s: cannot create a filter", file);
		return -ENOMEM;
	}
	r = build_attrs(ctx);
	if (r < 0)
		cpr_error_set(err, r, UINT32_MAX, 0, 0, "%s: cannot set up the filter: %s", file,
			      strerror(-r));
	if (r >= 0)
		r = build_arches(ctx, p, file, err);
	if (r >= 0)
		r = build_rules(ctx, p, file, err);
	if (r >= 0)
		r = check_program(ctx, p, file, err);
	if (r < 0) {
		seccomp_release(ctx);
		return r;
	}
	p->filter = ctx;
	return 0;
}

CPR_EXPORT int cpr_policy_parse(const char *text, size_t len, const char *filename,
				struct cpr_policy **ret_policy, struct cpr_error *ret_err)
{
	struct cpr_policy *p;
	int r;

	if ((!text && len) || !ret_policy)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	r = policy_parse_text(p, text ? text : "", len, filename, ret_err);
	if (r >= 0)
		r = policy_build(p, filename, ret_err);
	if (r < 0) {
		cpr_policy_free(p);
		return r;
	}
	*ret_policy = p;
	return 0;
}

/* Read all of @fd, at most CPR_POLICY_TEXT_MAX bytes, sized by fstat(). */
static int read_policy_file(int fd, char **ret_buf, size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	size_t off = 0, cap;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_size > CPR_POLICY_TEXT_MAX)
		return -E2BIG;
	/* One byte more than expected tells a file that grew meanwhile. */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf + off, cap - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		off += (size_t)n;
		if (off > CPR_POLICY_TEXT_MAX)
			return -E2BIG;
		if (off == cap) {
			char *bigger;

			cap = cap * 2 > CPR_POLICY_TEXT_MAX + 1 ? CPR_POLICY_TEXT_MAX + 1 : cap * 2;
			bigger = realloc(buf, cap);
			if (!bigger)
				return -ENOMEM;
			buf = bigger;
		}
	}
	*ret_buf = TAKE_PTR(buf);
	*ret_len = off;
	return 0;
}

CPR_EXPORT int cpr_policy_load(const char *path, struct cpr_policy **ret_policy,
			       struct cpr_error *ret_err)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	char file[200];
	size_t len = 0;
	int r;

	if (!path || !*path || !ret_policy)
		return -EINVAL;
	cpr_quote(file, sizeof(file), path, strlen(path));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	r = fd < 0 ? -errno : read_policy_file(fd, &buf, &len);
	if (r < 0) {
		if (r == -E2BIG)
			cpr_error_set(ret_err, r, UINT32_MAX, 0, 0,
				      "%s: larger than the limit of %u bytes", file,
				      CPR_POLICY_TEXT_MAX);
		else if (r == -EINVAL)
			cpr_error_set(ret_err, r, UINT32_MAX, 0, 0, "%s: not a regular file", file);
		else
			cpr_error_set(ret_err, r, UINT32_MAX, 0, 0, "%s: %s", file, strerror(-r));
		return r;
	}
	return cpr_policy_parse(buf, len, path, ret_policy, ret_err);
}

CPR_EXPORT void cpr_policy_free(struct cpr_policy *policy)
{
	if (!policy)
		return;
	if (policy->filter)
		seccomp_release(policy->filter);
	free(policy->rules);
	free(policy);
}

CPR_EXPORT int cpr_policy_apply(const struct cpr_policy *policy)
{
	int r;

	if (!policy || !policy->filter)
		return -EINVAL;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	r = seccomp_load(policy->filter);
	/* TSYNC names a thread it could not synchronise as a positive id. */
	return r > 0 ? -ESRCH : r;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * libseccomp writes PFC through stdio and drops write errors, so render it
 * into a memfd first and copy it with every error reported.
 */
CPR_EXPORT int cpr_policy_export_pfc(const struct cpr_policy *policy, int fd)
{
	_cleanup_close_ int mfd = -EBADF;
	void *map;
	off_t size;
	int r;

	if (!policy || !policy->filter)
		return -EINVAL;
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	mfd = memfd_create("cpr-policy-pfc", MFD_CLOEXEC);
	if (mfd < 0)
		return -errno;
	r = seccomp_export_pfc(policy->filter, mfd);
	if (r < 0)
		return r;
	size = lseek(mfd, 0, SEEK_END);
	if (size < 0)
		return -errno;
	if (size == 0 || size > PFC_MAX)
		return -EIO;
	map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, mfd, 0);
	if (map == MAP_FAILED)
		return -errno;
	r = write_all(fd, map, (size_t)size);
	munmap(map, (size_t)size);
	return r;
}

CPR_EXPORT int cpr_policy_export_bpf(const struct cpr_policy *policy, int fd)
{
	if (!policy || !policy->filter)
		return -EINVAL;
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	return seccomp_export_bpf(policy->filter, fd);
}

CPR_EXPORT uint32_t cpr_policy_default_action(const struct cpr_policy *policy)
{
	return policy ? policy->default_action : UINT32_MAX;
}

CPR_EXPORT size_t cpr_policy_rule_count(const struct cpr_policy *policy)
{
	return policy ? policy->n_rules : 0;
}
