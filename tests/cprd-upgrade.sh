#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cprctl daemon upgrade: cprd re-executes itself through libcpr's exec path,
# under its seccomp filter, and keeps every bundle (sealed and claimed), its
# listening socket and its pid; the new image answers the request.
. "${top_srcdir:-.}/tests/cprd-lib.sh"
# A sanitizer runtime's start-up in the new image needs system calls (shadow
# memory, /proc/self/maps) cprd.policy does not allow: test the upgrade logic
# without the filter there; the normal build tests it under the filter.
SANDBOX="--policy $POLICY"
if [ -n "$SANITIZED" ]; then
	SANDBOX=--no-sandbox
	echo "SKIP: the upgrade under cprd's seccomp filter: a sanitizer build runs it without the filter"
fi

# shellcheck disable=SC2086
"$CPRD" -v --socket "$T/sock" $SANDBOX --config "$T/cprd.conf" 2> "$T/cprd.log" &
P=$!
PIDS=$P
wait_socket "$T/sock"
for i in 0 1 2 3; do echo "data $i" > "$T/f$i"; done
mkstream "$T/st4" 4
mkstream "$T/st1" 1
"$CPRCTL" store --stream "$T/st4" --consumer-uid 65534 a "$T/f0" "$T/f1" "$T/f2" "$T/f3" \
	>/dev/null || fail "store a"
"$CPRCTL" store --stream "$T/st1" b "$T/f0" >/dev/null || fail "store b"
"$CPRCTL" --json claim --lease 600000 b > "$T/claim.json" || fail "claim b"
token=$(sed -n 's/^ *"token": *"\([0-9a-f]*\)".*/\1/p' "$T/claim.json")
fds_before=$(ls /proc/$P/fd | wc -l)

"$CPRCTL" daemon upgrade > "$T/up.out" || fail "upgrade: $(cat "$T/up.out")"
grep -q "pid $P, 2 bundles, 7 fds kept" "$T/up.out" || fail "upgrade output: $(cat "$T/up.out")"
grep -q "upgrade: running the new image with 2 bundles" "$T/cprd.log" || fail "no new image"
[ -n "$SANITIZED" ] || grep -q "^Seccomp:[[:space:]]*2" /proc/$P/status ||
	fail "no filter after the upgrade"
"$CPRCTL" list > "$T/list"
grep -q "^a *sealed" "$T/list" || fail "bundle a lost"
grep -q "^b *claimed" "$T/list" || fail "claim of b lost"
"$CPRCTL" show a | grep -q "uids 65534, gids none" || fail "consumers lost"
# the claim made before the upgrade can be acknowledged after it
"$CPRCTL" ack b "$token" >/dev/null || fail "ack of a claim made before the upgrade"
mkdir "$T/got"
"$CPRCTL" claim --save "$T/got" --ack a >/dev/null || fail "claim a"
for i in 0 1 2 3; do cmp -s "$T/f$i" "$T/got/fd-$i" || fail "fd $i"; done
fds_after=$(ls /proc/$P/fd | wc -l)
[ "$fds_after" -le "$fds_before" ] || fail "fds grew over the upgrade: $fds_before -> $fds_after"
# twice more: nothing accumulates
"$CPRCTL" daemon upgrade >/dev/null || fail "second upgrade"
"$CPRCTL" daemon upgrade >/dev/null || fail "third upgrade"
"$CPRCTL" hello >/dev/null || fail "hello after upgrades"
kill -TERM "$P"
wait "$P" || fail "cprd did not exit cleanly"
PIDS=

# an exec that fails (the binary is gone) leaves everything as it was
cp "$CPRD" "$T/cprd-copy"
# shellcheck disable=SC2086
"$T/cprd-copy" -v --socket "$T/sock" $SANDBOX --config "$T/cprd.conf" 2> "$T/copy.log" &
P=$!
PIDS=$P
wait_socket "$T/sock"
"$CPRCTL" store --stream "$T/st1" kept "$T/f1" >/dev/null || fail "store kept"
rm "$T/cprd-copy"
rc=0; "$CPRCTL" daemon upgrade 2> "$T/err" || rc=$?
[ "$rc" = 1 ] || fail "upgrade without a binary: exit $rc, want 1"
grep -q "execve" "$T/err" || fail "no reason given: $(cat "$T/err")"
"$CPRCTL" list | grep -q "^kept *sealed" || fail "bundle lost by a failed upgrade"
mkdir "$T/got2"
"$CPRCTL" claim --save "$T/got2" --ack kept >/dev/null || fail "claim after a failed upgrade"
cmp -s "$T/f1" "$T/got2/fd-0" || fail "content after a failed upgrade"
kill -TERM "$P"
wait "$P" || fail "cprd did not exit cleanly after a failed upgrade"
PIDS=

# an unprivileged peer may not upgrade the daemon (EPERM: exit 1)
"$CPRD" --socket "$T/sock" --mode 0666 --policy "$POLICY" --config "$T/cprd.conf" 2>> "$T/cprd.log" &
PIDS=$!
wait_socket "$T/sock"
if command -v setpriv >/dev/null; then
	rc=0
	setpriv --reuid 65534 --regid 65534 --clear-groups "$CPRCTL" daemon upgrade 2>/dev/null || rc=$?
	[ "$rc" = 1 ] || fail "unprivileged upgrade: exit $rc, want 1"
fi
echo ok
