/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/blackout: what its parts share. */
#ifndef BENCH_BLACKOUT_H
#define BENCH_BLACKOUT_H

#include <stddef.h>

#define BLACKOUT_MAX_REPS 20

/* Median of @v[0..n) (sorts @v); NAN when @n is 0. */
double blackout_median(double *v, unsigned n);

/* 1 if @qemu is QEMU 10 or newer (cpr-transfer); else 0 and why. */
int qemu_usable(const char *qemu, char *why, size_t len);
/* QEMU's cpr-transfer pause (ms, median of @reps chained hand-overs) of a
 * guest with @gib GiB of populated RAM on @page_kib pages, under @accel
 * ("kvm" or "tcg"); NAN if it could not be measured (the reason is on
 * stderr).  Scratch files in @dir. */
double qemu_cpr_pause(const char *qemu, const char *accel, const char *dir, unsigned gib,
		      unsigned page_kib, unsigned reps);

#endif
