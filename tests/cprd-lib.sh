# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the cprd integration scripts: paths, a scratch directory, state
# streams built with cprgen, and waiting for a socket.
set -eu
: "${top_builddir:=.}" "${top_srcdir:=.}"
CPRD=$top_builddir/cprd/cprd
CPRCTL=$top_builddir/cprd/cprctl
CPRGEN=$top_builddir/tools/cprgen
POLICY=$top_srcdir/policy/cprd.policy
T=$(mktemp -d /tmp/cprd-sh-XXXXXX)
chmod 755 "$T"
: > "$T/cprd.conf"
export CPRD_SOCKET=$T/sock
# A sanitizer build: LeakSanitizer cannot run under the seccomp filter (it
# stops the world with ptrace); the C suites check leaks without the filter.
SANITIZED=
if ldd "$CPRD" 2>/dev/null | grep -q 'libasan'; then
	SANITIZED=1
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fi
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$T"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; cat "$f" >&2; }; done
	exit 1
}
# mkstream FILE N: a level-1 state stream with N FD records (slots 0..N-1)
mkstream() {
	{
		echo '{ "header": { "emit_level": 1, "stream_id": "00112233445566778899aabbccddeeff" },'
		echo '  "records": ['
		i=0
		while [ "$i" -lt "$2" ]; do
			echo "    { \"type\": \"FD\", \"slot\": $i, \"kind\": \"generic\", \"id\": $i, \"name\": \"dev\" },"
			i=$((i + 1))
		done
		echo '    { "type": "END" } ] }'
	} > "$1.json"
	"$CPRGEN" -o "$1" "$1.json"
}
# wait_socket PATH: until a client gets an answer
wait_socket() {
	i=0
	until "$CPRCTL" hello --socket "$1" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 300 ] || fail "no daemon on $1"
		sleep 0.02
	done
}
# wait_event LINE: until the service-manager harness (tests/helper-cprd-systemd,
# state directory $S) has logged LINE in $S/events
wait_event() {
	i=0
	until grep -qx "$1" "$S/events" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -lt 500 ] || fail "no '$1' event"
		sleep 0.02
	done
}
