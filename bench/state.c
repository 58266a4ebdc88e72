/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/state: encode and parse a state of 1,000 RAM blocks and 10,000 fds,
 * and round-trip the same content through json-c as the reference floor.
 * Reports medians; never fails a build.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cpr/state.h"
#include "internal.h"

#define N_RB 1000
#define N_FD 10000
#define REPS 21

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v)
{
	qsort(v, REPS, sizeof(*v), cmp_double);
	return v[REPS / 2];
}

static struct cpr_state *build(void)
{
	struct cpr_state *st;

	cpr_state_new(&st);
	cpr_state_set_producer(st, "bench-state", 0);
	for (uint32_t i = 0; i < N_FD; i++) {
		struct cpr_state_fd fd = { .slot = i,
					   .kind = i < N_RB ? CPR_FD_MEMFD : CPR_FD_EVENTFD,
					   .id = (int32_t)i };
		snprintf(fd.name, sizeof(fd.name), "/machine/peripheral/dev%u/irq", i);
		cpr_state_add_fd(st, &fd);
	}
	for (uint32_t i = 0; i < N_RB; i++) {
		struct cpr_state_ramblock rb = { .align = 2u << 20,
						 .used_length = 64u << 20,
						 .max_length = 64u << 20,
						 .fd_index = i,
						 .host_addr =
							 0x7f0000000000ull + ((uint64_t)i << 27) };
		snprintf(rb.idstr, sizeof(rb.idstr), "/machine/memory-backend-%u/ram", i);
		cpr_state_add_ramblock(st, &rb);
	}
	return st;
}

/* The same content as a JSON document: the reference for a text format. */
static struct json_object *to_json(const struct cpr_state *st)
{
	struct json_object *o = json_object_new_object(), *fds = json_object_new_array();
	struct json_object *rbs = json_object_new_array();

	for (size_t i = 0; i < cpr_state_fd_count(st); i++) {
		const struct cpr_state_fd *f = cpr_state_fd_get(st, i);
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "slot", json_object_new_int64(f->slot));
		json_object_object_add(x, "kind", json_object_new_int64(f->kind));
		json_object_object_add(x, "id", json_object_new_int64(f->id));
		json_object_object_add(x, "name", json_object_new_string(f->name));
		json_object_array_add(fds, x);
	}
	for (size_t i = 0; i < cpr_state_ramblock_count(st); i++) {
		const struct cpr_state_ramblock *r = cpr_state_ramblock_get(st, i);
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "idstr", json_object_new_string(r->idstr));
		json_object_object_add(x, "align", json_object_new_uint64(r->align));
		json_object_object_add(x, "used_length", json_object_new_uint64(r->used_length));
		json_object_object_add(x, "max_length", json_object_new_uint64(r->max_length));
		json_object_object_add(x, "host_addr", json_object_new_uint64(r->host_addr));
		json_object_object_add(x, "fd_index", json_object_new_int64(r->fd_index));
		json_object_array_add(rbs, x);
	}
	json_object_object_add(o, "fds", fds);
	json_object_object_add(o, "ramblocks", rbs);
	return o;
}

int main(int argc, char *argv[])
{
	bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
	double enc[REPS], par[REPS], js[REPS];
	struct cpr_state *st = build();
	struct cpr_error err;
	size_t len = 0, jlen = 0;

	for (int r = 0; r < REPS; r++) {
		void *buf;
		struct cpr_state *back;
		double t0 = now_us(), t1, t2;
		if (cpr_state_encode(st, 0, NULL, NULL, &buf, &len, &err) < 0) {
			fprintf(stderr, "encode: %s\n", err.message);
			return 1;
		}
		t1 = now_us();
		if (cpr_state_parse(buf, len, 0, &back, &err) < 0) {
			fprintf(stderr, "parse: %s\n", err.message);
			return 1;
		}
		t2 = now_us();
		enc[r] = t1 - t0;
		par[r] = t2 - t1;
		cpr_state_free(back);
		free(buf);
	}
	for (int r = 0; r < REPS; r++) {
		double t0 = now_us();
		struct json_object *o = to_json(st), *back;
		const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		jlen = strlen(s);
		back = json_tokener_parse(s);
		js[r] = now_us() - t0;
		json_object_put(back);
		json_object_put(o);
	}
	double e = median(enc), p = median(par), j = median(js);
	if (json)
		printf("{\"ramblocks\": %d, \"fds\": %d, \"bytes\": %zu, \"encode_us\": %.1f, "
		       "\"parse_us\": %.1f, \"jsonc_roundtrip_us\": %.1f, \"jsonc_bytes\": %zu, "
		       "\"jsonc_over_parse\": %.1f}\n",
		       N_RB, N_FD, len, e, p, j, jlen, j / p);
	else
		printf("state of %d RAM blocks + %d fds: %zu bytes\n"
		       "  encode (incl. self-check parse): %8.1f us\n"
		       "  parse + validate:                %8.1f us\n"
		       "  json-c round trip (reference):   %8.1f us  (%zu bytes)  = %.1fx parse\n",
		       N_RB, N_FD, len, e, p, j, jlen, j / p);
	cpr_state_free(st);
	return 0;
}
