#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cprd started by socket activation (systemd-socket-activate, which plays the
# socket unit): the passed SOCK_SEQPACKET socket is checked and used,
# bundles go through store/claim/ack and store/claim --take with cprctl, and
# a socket of the wrong type is refused as a configuration error (exit
# status 100).
. "${top_srcdir:-.}/tests/cprd-lib.sh"
command -v systemd-socket-activate >/dev/null || { echo "SKIP: no systemd-socket-activate"; exit 77; }

# (systemd-socket-activate passes only the variables named with -E)
# shellcheck disable=SC2086
systemd-socket-activate --seqpacket -l "$T/sock" ${SANITIZED:+-E ASAN_OPTIONS} -- \
	"$CPRD" -v --policy "$POLICY" --config "$T/cprd.conf" 2> "$T/cprd.log" &
SA=$!
PIDS=$SA
wait_socket "$T/sock"
grep -q "passed by the service manager" "$T/cprd.log" || fail "cprd did not use the passed socket"
[ "$("$CPRCTL" --json status | sed -n 's/^ *"pid": *\([0-9]*\).*/\1/p')" = "$SA" ] ||
	fail "the daemon is not the activated process"
grep -q "^Seccomp:[[:space:]]*2" /proc/$SA/status || fail "no seccomp filter in the activated cprd"

# a producer stores three files and a stream; a consumer saves and acks
for i in 0 1 2; do echo "payload $i" > "$T/f$i"; done
mkstream "$T/stream" 3
"$CPRCTL" store --stream "$T/stream" vm-a "$T/f0" "$T/f1" "$T/f2" > "$T/out" || fail "store"
grep -q "stored vm-a: 3 fds" "$T/out" || fail "store output: $(cat "$T/out")"
"$CPRCTL" list | grep -q "^vm-a *sealed" || fail "list"
"$CPRCTL" show vm-a | grep -q "^fds: *3" || fail "show"
mkdir "$T/got"
"$CPRCTL" claim --save "$T/got" --ack vm-a > "$T/out" || fail "claim"
for i in 0 1 2; do cmp -s "$T/f$i" "$T/got/fd-$i" || fail "fd $i content"; done
cmp -s "$T/stream" "$T/got/stream" || fail "stream content"
"$CPRCTL" --json status | grep -q '"sealed": *0' || fail "bundle not gone after ack"
"$CPRCTL" show vm-a 2>/dev/null && fail "bundle still visible"
rc=0; "$CPRCTL" show vm-a 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "show of a missing bundle: exit $rc, want 1"
# claim --take: the daemon forgets the bundle once cprctl has saved it and acked
"$CPRCTL" store --stream "$T/stream" vm-b "$T/f0" "$T/f1" "$T/f2" > /dev/null || fail "store vm-b"
rc=0; "$CPRCTL" claim --take --ack vm-b 2>/dev/null || rc=$?
[ "$rc" = 100 ] || fail "claim --take --ack: exit $rc, want 100"
mkdir "$T/took"
"$CPRCTL" claim --save "$T/took" --take vm-b > "$T/out" || fail "claim --take"
grep -q "taken vm-b: 3 fds, acknowledged" "$T/out" || fail "take output: $(cat "$T/out")"
for i in 0 1 2; do cmp -s "$T/f$i" "$T/took/fd-$i" || fail "taken fd $i content"; done
cmp -s "$T/stream" "$T/took/stream" || fail "taken stream content"
"$CPRCTL" show vm-b 2>/dev/null && fail "a taken bundle is still visible"
# claim checks what it can before claiming: nothing is claimed for a missing
# --save directory or program (exit 100), with a JSON answer under --json
"$CPRCTL" store --stream "$T/stream" vm-c "$T/f0" "$T/f1" "$T/f2" > /dev/null || fail "store vm-c"
rc=0; "$CPRCTL" claim --save "$T/missing" --ack vm-c 2> "$T/err" || rc=$?
[ "$rc" = 100 ] || fail "claim --save MISSING: exit $rc, want 100"
grep -q "nothing claimed" "$T/err" || fail "claim --save MISSING: $(cat "$T/err")"
rc=0; "$CPRCTL" --json claim --save "$T/missing" --take vm-c > "$T/out" 2>/dev/null || rc=$?
[ "$rc" = 100 ] || fail "claim --json --save MISSING: exit $rc, want 100"
grep -q '"claimed": *false' "$T/out" || fail "no JSON answer: $(cat "$T/out")"
rc=0; "$CPRCTL" claim vm-c no-such-program-here 2>/dev/null || rc=$?
[ "$rc" = 100 ] || fail "claim with a missing program: exit $rc, want 100"
"$CPRCTL" list | grep -q "^vm-c *sealed" || fail "vm-c claimed by a refused command"
# a save that fails after the claim gives the claim back, with or without --take
mkdir -p "$T/trap/fd-1"
for how in --ack --take; do
	rc=0; "$CPRCTL" claim --save "$T/trap" $how vm-c 2> "$T/err" || rc=$?
	[ "$rc" = 1 ] || fail "claim $how with a failing save: exit $rc, want 1"
	grep -q "given back" "$T/err" || fail "claim $how with a failing save: $(cat "$T/err")"
	"$CPRCTL" list | grep -q "^vm-c *sealed" || fail "vm-c not sealed again after $how"
done
# a stream that needs a newer reader: refused (EPROTONOSUPPORT), nothing kept
cat > "$T/new.json" <<'JSON'
{ "header": { "emit_level": 1, "incompat_features": 128 }, "records": [ { "type": "END" } ] }
JSON
"$CPRGEN" -o "$T/new.cpr" "$T/new.json"
rc=0; "$CPRCTL" store --stream "$T/new.cpr" vm-new 2> "$T/err" || rc=$?
[ "$rc" = 1 ] || fail "a stream for a newer reader: exit $rc, want 1"
grep -q "incompatible features" "$T/err" || fail "no reason: $(cat "$T/err")"
grep -q "Protocol not supported" "$T/err" || fail "not EPROTONOSUPPORT: $(cat "$T/err")"
"$CPRCTL" show vm-new 2>/dev/null && fail "a refused bundle was kept"
kill -TERM "$SA"
wait "$SA" || fail "cprd did not exit cleanly on SIGTERM"
PIDS=

# a daemon that never answers: cprctl gives up after --timeout (exit 111),
# and by default after 30 s rather than never
systemd-socket-activate --seqpacket -l "$T/mute" -- sleep 60 2>/dev/null &
MUTE=$!
PIDS=$MUTE
i=0
until [ -S "$T/mute" ]; do
	i=$((i + 1))
	[ "$i" -lt 300 ] || fail "no mute socket"
	sleep 0.02
done
rc=0; "$CPRCTL" --timeout 300 hello --socket "$T/mute" 2> "$T/err" || rc=$?
[ "$rc" = 111 ] || fail "a mute daemon: exit $rc, want 111: $(cat "$T/err")"
grep -qi "timed out" "$T/err" || fail "no timeout reason: $(cat "$T/err")"
rc=0; "$CPRCTL" --timeout 0 hello --socket "$T/mute" 2>/dev/null || rc=$?
[ "$rc" = 100 ] || fail "--timeout 0: exit $rc, want 100"
kill "$MUTE" 2>/dev/null || true
wait "$MUTE" 2>/dev/null || true
PIDS=

# a passed fd that is not a SOCK_SEQPACKET listening socket: refused, exit 100
rc=0
LISTEN_FDS=1 LISTEN_FDNAMES=cprd.socket timeout 10 sh -c 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"' \
	"$CPRD" --policy "$POLICY" --config "$T/cprd.conf" 3< "$T/f0" 2> "$T/bad.log" || rc=$?
[ "$rc" = 100 ] || fail "a file as the listening socket: exit $rc, want 100"
grep -q "not a listening SOCK_SEQPACKET" "$T/bad.log" || fail "no message about the socket type"
echo "ok"
