/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The configuration file (cprd.conf(5)): "key = value" lines, '#' comments.
 * It sets defaults and per-uid quotas; command-line options override it.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <cpr/state.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"
#include "proto.h"

#define CONF_LINE_MAX 1024

void conf_defaults(struct cprd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->limits = (struct cprd_limits){
		.max_connections = 256,
		.max_fds_total = 16384,
		.max_fds_per_uid = 4096,
		.max_bundles = 1024,
		.max_bundles_per_uid = 256,
		.max_request = 65536,
		.max_depth = 16,
		.max_stream = 1u << 20,
		.lease_default_ms = 30000,
		.lease_max_ms = 3600000,
		.ttl_max_ms = 0,
		.idle_timeout_ms = 60000,
		.check_kinds = 1,
	};
	snprintf(cfg->luo_session, sizeof(cfg->luo_session), "cprd");
}

/* A decimal number in [min, max], nothing else. */
int conf_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

struct conf_key {
	const char *key;
	size_t off; /* in struct cprd_limits */
	bool is64;
	uint64_t min, max;
};

#define LIM(f) offsetof(struct cprd_limits, f)
static const struct conf_key conf_keys[] = {
	{ "max-connections", LIM(max_connections), false, 1, 65536 },
	{ "max-fds", LIM(max_fds_total), false, 1, 1u << 20 },
	{ "max-fds-per-uid", LIM(max_fds_per_uid), false, 1, 1u << 20 },
	{ "max-bundles", LIM(max_bundles), false, 1, 65536 },
	{ "max-bundles-per-uid", LIM(max_bundles_per_uid), false, 1, 65536 },
	{ "max-request", LIM(max_request), false, 256, 1u << 20 },
	{ "max-json-depth", LIM(max_depth), false, 2, 64 },
	{ "max-stream", LIM(max_stream), false, 4096, CPR_STREAM_MAX },
	{ "lease-default-ms", LIM(lease_default_ms), true, 1, UINT32_MAX },
	{ "lease-max-ms", LIM(lease_max_ms), true, 1, UINT32_MAX },
	{ "ttl-max-ms", LIM(ttl_max_ms), true, 0, UINT32_MAX },
	{ "idle-timeout-ms", LIM(idle_timeout_ms), true, 0, UINT32_MAX },
	{ "check-fd-kinds", LIM(check_kinds), false, 0, 1 },
	{ "live-update-agent", LIM(luo_agent), false, 0, 1 },
};
#undef LIM

int conf_set_limit(struct cprd_limits *l, const char *key, const char *value)
{
	for (size_t i = 0; i < ARRAY_SIZE(conf_keys); i++) {
		const struct conf_key *k = &conf_keys[i];
		uint64_t v;
		int r;

		if (strcmp(k->key, key) != 0)
			continue;
		r = conf_parse_u64(value, k->min, k->max, &v);
		if (r < 0)
			return r;
		if (k->is64)
			*(uint64_t *)((char *)l + k->off) = v;
		else
			*(unsigned *)((char *)l + k->off) = (unsigned)v;
		return 0;
	}
	return -ENOENT;
}

/* "quota = UID FDS BUNDLES" */
static int conf_add_quota(struct cprd_config *cfg, char *value)
{
	char *f[3], *save = NULL;
	uint64_t uid, fds, bundles;
	size_t n = 0;

	for (char *t = strtok_r(value, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == 3)
			return -EINVAL;
		f[n++] = t;
	}
	if (n != 3 || conf_parse_u64(f[0], 0, UINT32_MAX - 1, &uid) < 0 ||
	    conf_parse_u64(f[1], 0, 1u << 20, &fds) < 0 ||
	    conf_parse_u64(f[2], 0, 65536, &bundles) < 0)
		return -EINVAL;
	if (cfg->n_quotas == CPRD_QUOTAS_MAX)
		return -E2BIG;
	cfg->quotas[cfg->n_quotas++] =
		(struct cprd_quota){ (uid_t)uid, (unsigned)fds, (unsigned)bundles };
	return 0;
}

static int conf_add_admin(struct cprd_config *cfg, const char *value)
{
	uint64_t uid;

	if (conf_parse_u64(value, 0, UINT32_MAX - 1, &uid) < 0)
		return -EINVAL;
	if (cfg->n_admins == ARRAY_SIZE(cfg->admins))
		return -E2BIG;
	cfg->admins[cfg->n_admins++] = (uid_t)uid;
	return 0;
}

/* "namespace = PREFIX WHO..." with WHO a uid, @GID or "*" (anyone). */
static int conf_add_namespace(struct cprd_config *cfg, char *value)
{
	struct cprd_namespace ns = { 0 };
	char *save = NULL, *prefix = strtok_r(value, " \t", &save);
	uint64_t id;

	if (!prefix || (strcmp(prefix, "*") != 0 && !proto_name_valid(prefix)))
		return -EINVAL;
	snprintf(ns.prefix, sizeof(ns.prefix), "%s", strcmp(prefix, "*") == 0 ? "" : prefix);
	for (char *t = strtok_r(NULL, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (strcmp(t, "*") == 0) {
			ns.anyone = true;
		} else if (t[0] == '@' && conf_parse_u64(t + 1, 0, UINT32_MAX - 1, &id) == 0 &&
			   ns.n_gids < CPRD_NAMESPACE_WHO_MAX) {
			ns.gids[ns.n_gids++] = (gid_t)id;
		} else if (conf_parse_u64(t, 0, UINT32_MAX - 1, &id) == 0 &&
			   ns.n_uids < CPRD_NAMESPACE_WHO_MAX) {
			ns.uids[ns.n_uids++] = (uid_t)id;
		} else {
			return -EINVAL;
		}
	}
	if (!ns.anyone && !ns.n_uids && !ns.n_gids)
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_namespaces; i++)
		if (strcmp(cfg->namespaces[i].prefix, ns.prefix) == 0)
			return -EEXIST;
	if (cfg->n_namespaces == CPRD_NAMESPACES_MAX)
		return -E2BIG;
	cfg->namespaces[cfg->n_namespaces++] = ns;
	return 0;
}

static char *conf_strip(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

static int conf_line(struct cprd_config *cfg, char *line)
{
	char *eq, *key, *value;

	line = conf_strip(line);
	if (!*line || *line == '#')
		return 0;
	eq = strchr(line, '=');
	if (!eq)
		return -EINVAL;
	*eq = 0;
	key = conf_strip(line);
	value = conf_strip(eq + 1);
	if (strcmp(key, "quota") == 0)
		return conf_add_quota(cfg, value);
	if (strcmp(key, "admin") == 0)
		return conf_add_admin(cfg, value);
	if (strcmp(key, "namespace") == 0)
		return conf_add_namespace(cfg, value);
	if (strcmp(key, "live-update-session") == 0) {
		int r = luo_name_check(value);

		if (r < 0)
			return r == -ENOENT ? -EINVAL : r;
		snprintf(cfg->luo_session, sizeof(cfg->luo_session), "%s", value);
		return 0;
	}
	return conf_set_limit(&cfg->limits, key, value);
}

int conf_load(struct cprd_config *cfg, const char *path, bool must_exist)
{
	char line[CONF_LINE_MAX];
	unsigned lineno = 0;
	FILE *f = fopen(path, "re");
	int r = 0;

	if (!f) {
		if (errno == ENOENT && !must_exist)
			return 0;
		log_warn("%s", path);
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			log_warnx("%s:%u: line too long", path, lineno);
			r = -EINVAL;
			break;
		}
		r = conf_line(cfg, line);
		if (r < 0) {
			log_errno(r == -ENOENT ? -EINVAL : r, "%s:%u: %s", path, lineno,
				  r == -ENOENT	 ? "unknown key"
				  : r == -EEXIST ? "a second namespace line for that prefix"
				  : r == -EPERM
					  ? "the session name \"systemd\" is the service manager's"
				  : r == -ENAMETOOLONG ? "a session name is 1 to 63 bytes"
						       : "bad value");
			break;
		}
	}
	fclose(f);
	return r;
}

/* The quota of @uid: its own line, else the per-uid defaults. */
int conf_quota(const struct cprd_config *cfg, uid_t uid, unsigned *ret_fds, unsigned *ret_bundles)
{
	for (size_t i = 0; i < cfg->n_quotas; i++)
		if (cfg->quotas[i].uid == uid) {
			*ret_fds = cfg->quotas[i].fds;
			*ret_bundles = cfg->quotas[i].bundles;
			return 1;
		}
	*ret_fds = cfg->limits.max_fds_per_uid;
	*ret_bundles = cfg->limits.max_bundles_per_uid;
	return 0;
}

bool conf_is_admin(const struct cprd_config *cfg, uid_t uid)
{
	if (uid == 0)
		return true;
	for (size_t i = 0; i < cfg->n_admins; i++)
		if (cfg->admins[i] == uid)
			return true;
	return false;
}
