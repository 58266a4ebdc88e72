#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# "persisted" says exactly what survives a restart: a bundle the fd store
# cannot hold (FileDescriptorStoreMax= reached), or whose fd is an open file
# another parked bundle holds (the store keeps one copy of a file), is
# reported not persisted, and after kill -9 exactly the bundles reported
# persisted come back.
. "${top_srcdir:-.}/tests/cprd-lib.sh"
HARNESS=$top_builddir/tests/helper-cprd-systemd
S=$T/state
mkdir "$S"

HARNESS_FDSTORE_MAX=12 timeout 60 "$HARNESS" "$S" "$T/sock" "$CPRD" -v --policy "$POLICY" \
	--config "$T/cprd.conf" 2> "$T/cprd.log" &
PIDS=$!
wait_event "ready 1"
wait_socket "$T/sock"
persisted() { # persisted NAME STREAM FILE...: store, print the reply's "persisted"
	name=$1 stream=$2
	shift 2
	"$CPRCTL" --json store --stream "$stream" "$name" "$@" > "$T/$name.json" ||
		fail "store $name: $(cat "$T/$name.json")"
	sed -n 's/^ *"persisted": *\([a-z]*\).*/\1/p' "$T/$name.json"
}
for i in 0 1 2 3 4 5 6 7; do echo "file $i" > "$T/f$i"; done
mkstream "$T/st3" 3
mkstream "$T/st8" 8
mkstream "$T/st1" 1
# 3 fds + stream + manifest = 5 of 12
[ "$(persisted a "$T/st3" "$T/f0" "$T/f1" "$T/f2")" = true ] || fail "a not persisted"
# 8 + 2 = 10 more: beyond the 12 the store holds
[ "$(persisted b "$T/st8" "$T/f0" "$T/f1" "$T/f2" "$T/f3" "$T/f4" "$T/f5" "$T/f6" "$T/f7")" = false ] ||
	fail "b reported persisted beyond FileDescriptorStoreMax"
grep -q "bundle b: not parked in the fd store: the fd store holds 5 of 12 fds" "$T/cprd.log" ||
	fail "no reason logged for b"
# one open file in two bundles: the store would keep it once
{
	[ "$(persisted d1 "$T/st1" --fd 7)" = true ] || fail "d1 not persisted"
	[ "$(persisted d2 "$T/st1" --fd 7)" = false ] || fail "d2 reported persisted with d1's file"
} 7< "$T/f7"
grep -q "bundle d2: not parked.*open file bundle d1 holds" "$T/cprd.log" ||
	fail "no reason logged for d2"
"$CPRCTL" show b | grep -q "^persisted: *no" || fail "show b: persisted"

kill -9 "$(cat "$S/pid")"
wait_event "ready 2"
wait_socket "$T/sock"
"$CPRCTL" list > "$T/list"
for n in a d1; do grep -q "^$n *sealed" "$T/list" || fail "$n, reported persisted, lost"; done
for n in b d2; do grep -q "^$n " "$T/list" && fail "$n came back though reported not persisted"; done
mkdir "$T/got"
"$CPRCTL" claim --save "$T/got" --ack d1 >/dev/null || fail "claim d1"
cmp -s "$T/f7" "$T/got/fd-0" || fail "d1 content"
kill -TERM "$PIDS"
wait "$PIDS" || fail "harness/cprd exit"
PIDS=
echo ok
