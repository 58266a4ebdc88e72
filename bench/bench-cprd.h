/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/cprd: the s6-fdholderd comparison (bench/cprd-s6.c) and the load
 * figures (bench/cprd-load.c). */
#ifndef BENCH_CPRD_H
#define BENCH_CPRD_H

#include <stddef.h>

struct json_object;

/* Rates and RSS with 1,000 connections and two stalled peers, into @out. */
int bench_cprd_load(const char *sockpath, long (*rss_kb)(void), struct json_object *out);

/* Room for an s6_fdholder_t (a skalibs unixconnection and its buffers). */
#define BENCH_S6_HANDLE (256u << 10)

int bench_s6_start(char *sock, size_t len);
void bench_s6_stop(void);
/* < 0 when the comparison failed. */
double bench_s6_us_per_fd(const char *sock, const int *fds, size_t n, int iters);

#endif
