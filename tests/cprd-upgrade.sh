#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cprctl daemon upgrade: cprd hands every bundle (sealed and claimed), its
# listening socket and the requester's connection to a new process of
# itself, under its seccomp filter, and exits once that process has taken
# over.  A new image that cannot be executed, exits, crashes, is killed by
# the filter, refuses its configuration or hangs loses nothing: the old
# daemon answers why and keeps serving every bundle.
. "${top_srcdir:-.}/tests/cprd-lib.sh"
# A sanitizer runtime's start-up in the new image needs system calls (shadow
# memory, /proc/self/maps) cprd.policy does not allow: test the upgrade logic
# without the filter there; the normal build tests it under the filter.
SANDBOX="--policy $POLICY"
if [ -n "$SANITIZED" ]; then
	SANDBOX=--no-sandbox
	echo "SKIP: the upgrade under cprd's seccomp filter: a sanitizer build runs it without the filter"
fi
IMAGE=$top_builddir/tests/helper-cprd-image

# stop PID: SIGTERM to a daemon that is not our child, and wait for its exit
stop() {
	kill -TERM "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -lt 500 ] || fail "pid $1 did not exit"
		sleep 0.02
	done
}
newpid() { sed -n 's/.*-> pid \([0-9]*\),.*/\1/p' "$1"; }
# the daemon's open fds, counted once it has finished what came before
# (hang-ups of earlier connections included): "daemon debug"
nfds() { "$CPRCTL" --json daemon debug | sed -n 's/^ *"fds_open": *\([0-9]*\).*/\1/p'; }

# Started as cprd(8) EXAMPLES show: -c /dev/null, the shipped policy.
# shellcheck disable=SC2086
"$CPRD" -v --socket "$T/sock" $SANDBOX --config /dev/null 2> "$T/cprd.log" &
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
fds_before=$(nfds)

"$CPRCTL" daemon upgrade > "$T/up.out" || fail "upgrade: $(cat "$T/up.out")"
grep -q "pid $P -> pid [0-9]*, 2 bundles, 7 fds kept" "$T/up.out" ||
	fail "upgrade output: $(cat "$T/up.out")"
N=$(newpid "$T/up.out")
PIDS="$P $N"
wait "$P" || fail "the old image did not exit cleanly after the hand-over"
grep -q "upgrade: the new image holds 2 bundles" "$T/cprd.log" || fail "no new image"
[ -n "$SANITIZED" ] || grep -q "^Seccomp:[[:space:]]*2" "/proc/$N/status" ||
	fail "no filter in the new image"
"$CPRCTL" list > "$T/list"
grep -q "^a *sealed" "$T/list" || fail "bundle a lost"
grep -q "^b *claimed" "$T/list" || fail "claim of b lost"
"$CPRCTL" show a | grep -q "uids 65534, gids none" || fail "consumers lost"
# the claim made before the upgrade can be acknowledged after it
"$CPRCTL" ack b "$token" >/dev/null || fail "ack of a claim made before the upgrade"
mkdir "$T/got"
"$CPRCTL" claim --save "$T/got" --ack a >/dev/null || fail "claim a"
for i in 0 1 2 3; do cmp -s "$T/f$i" "$T/got/fd-$i" || fail "fd $i"; done
[ "$(nfds)" -le "$fds_before" ] || fail "fds grew over the upgrade: $fds_before -> $(nfds)"
# twice more: nothing accumulates
"$CPRCTL" store --stream "$T/st1" c "$T/f2" >/dev/null || fail "store c"
"$CPRCTL" daemon upgrade > "$T/up2.out" || fail "second upgrade"
N2=$(newpid "$T/up2.out")
PIDS="$N2"
n2=$(nfds)
"$CPRCTL" daemon upgrade > "$T/up3.out" || fail "third upgrade"
N3=$(newpid "$T/up3.out")
PIDS="$N3"
[ "$(nfds)" -le "$n2" ] || fail "fds grew over upgrades: $n2 -> $(nfds)"
"$CPRCTL" list | grep -q "^c *sealed" || fail "bundle c lost over upgrades"
stop "$N3"
PIDS=

# Each way a new image can fail: the old daemon answers why, exit 1, and keeps
# serving with every bundle; nothing leaks.
printf 'this is no = config\n' > "$T/bad.conf"
for mode in exit crash sigsys hang badconf; do
	cp "$IMAGE" "$T/$mode"
done
export HELPER_CPRD="$CPRD" HELPER_CONF="$T/bad.conf"
# shellcheck disable=SC2086
"$CPRD" -v --socket "$T/sock" $SANDBOX --config /dev/null 2> "$T/fail.log" &
P=$!
PIDS=$P
wait_socket "$T/sock"
"$CPRCTL" store --stream "$T/st1" kept "$T/f1" >/dev/null || fail "store kept"
"$CPRCTL" --json claim --lease 600000 b 2>/dev/null >/dev/null || true
"$CPRCTL" store --stream "$T/st1" held "$T/f3" >/dev/null || fail "store held"
"$CPRCTL" --json claim --lease 600000 held > "$T/claim2.json" || fail "claim held"
token=$(sed -n 's/^ *"token": *"\([0-9a-f]*\)".*/\1/p' "$T/claim2.json")
fds_before=$(nfds)
try_fail() { # try_fail IMAGE EXPECTED-REASON [cprctl options]
	image=$1 want=$2
	shift 2
	rc=0
	"$CPRCTL" "$@" daemon upgrade --exe "$image" > "$T/out" 2> "$T/err" || rc=$?
	[ "$rc" = 1 ] || fail "upgrade to $image: exit $rc, want 1: $(cat "$T/err")"
	grep -q "$want" "$T/err" || fail "upgrade to $image: reason: $(cat "$T/err")"
	kill -0 "$P" || fail "the old daemon died with $image"
	"$CPRCTL" list > "$T/list"
	grep -q "^kept *sealed" "$T/list" || fail "bundle lost by a failed upgrade to $image"
	grep -q "^held *claimed" "$T/list" || fail "claim lost by a failed upgrade to $image"
	n=$(nfds)
	[ "$n" -le "$fds_before" ] || fail "fds leaked by $image: $fds_before -> $n"
}
try_fail "$T/missing" "could not be executed"
try_fail "$T/exit" "exited with status 3 before taking over"
try_fail "$T/crash" "killed by signal 11"
try_fail "$T/badconf" "exited with status 100 before taking over"
try_fail "$T/hang" "did not take over within the timeout" --timeout 1500
if [ -z "$SANITIZED" ]; then
	try_fail "$T/sigsys" "killed by SIGSYS"
fi
grep -q "upgrade failed" "$T/fail.log" || fail "no failure in the daemon's log"
# after all that: the claim acks, the bundle claims, a real upgrade works
"$CPRCTL" ack held "$token" >/dev/null || fail "ack after failed upgrades"
mkdir "$T/got2"
"$CPRCTL" claim --save "$T/got2" --ack kept >/dev/null || fail "claim after failed upgrades"
cmp -s "$T/f1" "$T/got2/fd-0" || fail "content after a failed upgrade"
"$CPRCTL" daemon upgrade > "$T/up4.out" || fail "upgrade after failed ones"
N=$(newpid "$T/up4.out")
PIDS="$P $N"
wait "$P" || fail "old image exit after failed upgrades"
stop "$N"
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
