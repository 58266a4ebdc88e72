#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The event loop never blocks on the service manager: with a notification
# socket nobody reads, a bundle of more fds than its queue holds is stored
# at once (not yet persisted), every other client is served, and SIGTERM
# stops the daemon.  When the manager reads again, the waiting messages go
# out in order and the bundle becomes persisted.
. "${top_srcdir:-.}/tests/cprd-lib.sh"
HARNESS=$top_builddir/tests/helper-cprd-systemd
mkdir "$T/s1" "$T/s2"
for i in 0 1 2 3 4 5 6 7 8 9 10 11; do echo "file $i" > "$T/f$i"; done
files=$(i=0; while [ $i -lt 12 ]; do printf '%s ' "$T/f$i"; i=$((i + 1)); done)
mkstream "$T/st12" 12
wait_count() { # wait_count STATEDIR N: until the harness's store holds N fds
	i=0
	until [ "$({ wc -l < "$1/store"; } 2>/dev/null || echo 0)" -ge "$2" ]; do
		i=$((i + 1))
		[ "$i" -lt 500 ] || fail "the store holds $({ wc -l < "$1/store"; } 2>/dev/null) fds, want $2"
		sleep 0.02
	done
}

HARNESS_STALL=1 timeout 60 "$HARNESS" "$T/s1" "$T/sock" "$CPRD" -v --policy "$POLICY" \
	--config "$T/cprd.conf" 2> "$T/cprd.log" &
H=$!
PIDS=$H
wait_socket "$T/sock"
# shellcheck disable=SC2086
"$CPRCTL" --timeout 20000 --json store --stream "$T/st12" big $files > "$T/store.json" ||
	fail "store with a stalled service manager: $(cat "$T/store.json")"
grep -q '"persisted": *false' "$T/store.json" || fail "persisted before the pieces went out"
"$CPRCTL" --timeout 20000 hello > /dev/null || fail "hello with a stalled service manager"
"$CPRCTL" show big | grep -q "^persisted: *no" || fail "show: persisted"
grep -q "^ready" "$T/s1/events" 2>/dev/null && fail "the stalled manager got READY=1"
# the manager reads again: READY=1, then every piece, in order; persisted
# ($H is timeout(1); the harness is its child)
pkill -USR1 -P "$H" || fail "no harness to wake"
wait_count "$T/s1" 14
grep -q "^ready 1" "$T/s1/events" || fail "no READY=1 after the stall"
i=0
until "$CPRCTL" show big | grep -q "^persisted: *yes"; do
	i=$((i + 1))
	[ "$i" -lt 500 ] || fail "not persisted once the pieces went out"
	sleep 0.02
done
kill -TERM "$H"
wait "$H" || fail "harness/cprd exit after the stall"

# SIGTERM while the manager stalls with messages waiting: the daemon stops
HARNESS_STALL=1 timeout 60 "$HARNESS" "$T/s2" "$T/sock" "$CPRD" -v --policy "$POLICY" \
	--config "$T/cprd.conf" 2>> "$T/cprd.log" &
H=$!
PIDS=$H
wait_socket "$T/sock"
# shellcheck disable=SC2086
"$CPRCTL" --timeout 20000 store --stream "$T/st12" big $files > /dev/null || fail "store 2"
kill -TERM "$H"
rc=0; wait "$H" || rc=$?
PIDS=
[ "$rc" = 0 ] || fail "cprd did not stop on SIGTERM with a stalled manager: exit $rc"
echo ok
