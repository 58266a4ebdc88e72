#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The seccomp filter of cprd.policy is really loaded: cprd runs with
# NoNewPrivs and a filter, a test build that makes a forbidden system call on
# request dies by SIGSYS (and answers without --no-sandbox's absence), and
# --dump-filter prints the filter cprctl compiles from the same file.
. "${top_srcdir:-.}/tests/cprd-lib.sh"
HOOKED=$top_builddir/tests/cprd-testhooks

"$HOOKED" --socket "$T/sock" --policy "$POLICY" --config "$T/cprd.conf" 2> "$T/cprd.log" &
P=$!
PIDS=$P
wait_socket "$T/sock"
grep -q "^NoNewPrivs:[[:space:]]*1" /proc/$P/status || fail "NoNewPrivs not set"
grep -q "^Seccomp:[[:space:]]*2" /proc/$P/status || fail "no seccomp filter (mode 2)"
grep -q "^Seccomp_filters:[[:space:]]*[1-9]" /proc/$P/status || fail "no filter loaded"
rc=0; "$CPRCTL" request '{"op":"test-syscall"}' > "$T/out" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "the forbidden call was answered: $(cat "$T/out")"
rc=0; wait "$P" || rc=$?
PIDS=
[ "$rc" = $((128 + 31)) ] || fail "cprd died with status $rc, not by SIGSYS"

# the same request is answered when the filter is not loaded: the call itself is harmless
"$HOOKED" --socket "$T/sock" --no-sandbox --config "$T/cprd.conf" 2> "$T/cprd2.log" &
P=$!
PIDS=$P
wait_socket "$T/sock"
grep -q "^Seccomp:[[:space:]]*0" /proc/$P/status || fail "filter loaded despite --no-sandbox"
"$CPRCTL" request '{"op":"test-syscall"}' > "$T/out" || fail "test-syscall without the filter"
grep -q '"personality"' "$T/out" || fail "no personality in the reply"
kill -TERM "$P"
wait "$P" || fail "cprd --no-sandbox did not exit cleanly"
PIDS=

# --dump-filter prints exactly what cprctl compiles from the file
"$CPRD" --dump-filter --policy "$POLICY" > "$T/pfc1" || fail "--dump-filter"
"$CPRCTL" policy dump --pfc "$POLICY" > "$T/pfc2" || fail "cprctl policy dump"
cmp -s "$T/pfc1" "$T/pfc2" || fail "--dump-filter differs from cprctl policy dump"
grep -q "accept4" "$T/pfc1" || fail "the dump does not look like PFC"
rc=0; "$CPRD" --dump-filter --policy "$T/missing.policy" 2>/dev/null || rc=$?
[ "$rc" = 100 ] || fail "missing policy: exit $rc, want 100"
echo ok
