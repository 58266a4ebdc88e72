#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 of cprd loses nothing: under a harness that plays the service
# manager (socket unit, NOTIFY_SOCKET with an fd store, restart on failure),
# every sealed bundle is parked in the fd store and re-adopted after the
# restart with its contents intact; acknowledged bundles leave the store.
. "${top_srcdir:-.}/tests/cprd-lib.sh"
HARNESS=$top_builddir/tests/helper-cprd-systemd
S=$T/state
mkdir "$S"

HARNESS_JUNK=1 WATCHDOG_USEC=200000 timeout 60 "$HARNESS" "$S" "$T/sock" "$CPRD" -v --policy "$POLICY" \
	--config "$T/cprd.conf" 2> "$T/cprd.log" &
H=$!
PIDS=$H
wait_event "ready 1"
wait_socket "$T/sock"
# what an interrupted parking left, and an entry not ours: closed and removed
grep -q "bundle id 99 (2 fds) dropped: no manifest" "$T/cprd.log" || fail "incomplete bundle kept"
grep -q "passed fd [0-9]* (not-cprd) is not a listening" "$T/cprd.log" || fail "unknown entry kept"
i=0
while grep -q "cprd-b99\|not-cprd" "$S/store"; do
	i=$((i + 1))
	[ "$i" -lt 500 ] || fail "junk not removed from the store"
	sleep 0.02
done

# three bundles: small, chunked (300 fds), and one holding the same file twice
for i in 0 1 2; do echo "small $i" > "$T/s$i"; done
mkstream "$T/st3" 3
"$CPRCTL" store --stream "$T/st3" small "$T/s0" "$T/s1" "$T/s2" >/dev/null || fail "store small"
mkdir "$T/big"
i=0
while [ $i -lt 300 ]; do echo "big $i" > "$T/big/$i"; i=$((i + 1)); done
mkstream "$T/st300" 300
files=$(i=0; while [ $i -lt 300 ]; do printf '%s ' "$T/big/$i"; i=$((i + 1)); done)
# shellcheck disable=SC2086
"$CPRCTL" store --stream "$T/st300" big $files >/dev/null || fail "store big"
echo twice > "$T/twice"
mkstream "$T/st2" 2
"$CPRCTL" store --stream "$T/st2" --fd 7 --fd 7 same 7< "$T/twice" >/dev/null || fail "store same"
# a claim in progress when cprd dies: the bundle comes back sealed
"$CPRCTL" claim claimed-later small >/dev/null 2>&1 || true
"$CPRCTL" claim --lease 600000 small > "$T/claim.out" || fail "claim before the kill"
# the harness gets the notifications asynchronously: poll its store
count() { grep -c "^cprd-b$1-" "$S/store" 2>/dev/null || true; }
i=0
until [ "$(count 1)" = 5 ] && [ "$(count 2)" = 302 ] && [ "$(count 3)" = 3 ]; do
	i=$((i + 1))
	[ "$i" -lt 500 ] || fail "not parked as expected: $(count 1) $(count 2) $(count 3)"
	sleep 0.02
done
grep -qx "cprd-b3-1" "$S/store" && fail "the same file parked twice"
# STATUS= follows the counts (at most every 100 ms, flushed within a second)
i=0
until grep -q "^3 bundles, 308 fds held" "$S/status" 2>/dev/null; do
	i=$((i + 1))
	[ "$i" -lt 150 ] || fail "STATUS= not updated: $(cat "$S/status")"
	sleep 0.02
done
# watchdog pings arrive at half of WATCHDOG_USEC
sleep 0.3
grep -q "^watchdog" "$S/events" || fail "no WATCHDOG=1"

kill -9 "$(cat "$S/pid")"
wait_event "exit 9"
wait_event "ready 2"
wait_socket "$T/sock"
grep -q "3 bundles re-adopted" "$T/cprd.log" || fail "not re-adopted"
"$CPRCTL" list > "$T/list"
for b in small big same; do grep -q "^$b *sealed" "$T/list" || fail "$b missing after kill -9"; done

mkdir "$T/g1" "$T/g2" "$T/g3"
"$CPRCTL" claim --save "$T/g1" --ack small >/dev/null || fail "claim small"
for i in 0 1 2; do cmp -s "$T/s$i" "$T/g1/fd-$i" || fail "small fd $i"; done
cmp -s "$T/st3" "$T/g1/stream" || fail "small stream"
"$CPRCTL" claim --save "$T/g2" --ack big >/dev/null || fail "claim big"
i=0
while [ $i -lt 300 ]; do cmp -s "$T/big/$i" "$T/g2/fd-$i" || fail "big fd $i"; i=$((i + 1)); done
"$CPRCTL" claim --save "$T/g3" --ack same >/dev/null || fail "claim same"
cmp -s "$T/twice" "$T/g3/fd-0" && cmp -s "$T/twice" "$T/g3/fd-1" || fail "same file"
i=0
until [ ! -s "$S/store" ]; do
	i=$((i + 1))
	[ "$i" -lt 500 ] || fail "fd store not emptied after acks: $(cat "$S/store")"
	sleep 0.02
done

kill -TERM "$H"
rc=0; wait "$H" || rc=$?
PIDS=
[ "$rc" = 0 ] || fail "harness/cprd exit $rc"
grep -qx stopping "$S/events" || fail "no STOPPING=1"
echo ok
