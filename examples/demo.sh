#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The demo: minivmm boots a small guest, then upgrades its own VMM in place a
# few times: cpr-exec into its own binary, cpr-transfer to a new process,
# and through cprd when the daemon is built.  For each upgrade the new image
# prints that the guest's counters continued, that its RAM is the same memfd
# (inode), and how long the guest was paused.
#
#   examples/demo.sh [BUILD-DIR] [minivmm options]   e.g. _build --ram 4G --hugepages
#
# MINIVMM=path overrides the binary; RAM, UPGRADES, EVERY tune the run.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${MINIVMM:-}
if [ $# -gt 0 ] && [ -d "$1" ]; then
	[ -n "$bin" ] || bin=$(cd "$1" && pwd)/examples/minivmm/minivmm
	shift
fi
if [ -z "$bin" ]; then
	for c in "$top/_build/examples/minivmm/minivmm" "$top/examples/minivmm/minivmm"; do
		if [ -x "$c" ]; then bin=$c; break; fi
	done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	echo "demo: build first: autoreconf -fi && mkdir -p _build && cd _build && ../configure && make" >&2
	exit 100
fi
build=$(cd "$(dirname "$bin")/../.." && pwd)
run=$(mktemp -d /tmp/minivmm-demo.XXXXXX)
cprd_pid=""
cleanup() {
	if [ -n "$cprd_pid" ]; then kill "$cprd_pid" 2>/dev/null || true; fi
	rm -rf "$run"
}
trap cleanup EXIT

# cprd, if it is built and minivmm has its client: a private daemon on a
# private socket, confined by its seccomp policy when that loads here.
modes=exec,transfer
cprd=$build/cprd/cprd
if [ -x "$cprd" ] && "$bin" --help | grep -q -- --cprd-socket; then
	for sandbox in "--policy $top/policy/cprd.policy" --no-sandbox; do
		# shellcheck disable=SC2086
		"$cprd" --socket "$run/cprd.sock" --config /dev/null $sandbox \
			>"$run/cprd.log" 2>&1 &
		cprd_pid=$!
		for _ in $(seq 40); do [ -S "$run/cprd.sock" ] && break; sleep 0.05; done
		[ -S "$run/cprd.sock" ] && break
		kill "$cprd_pid" 2>/dev/null || true
		cprd_pid=""
	done
	if [ -n "$cprd_pid" ]; then
		export CPRD_SOCKET="$run/cprd.sock"
		modes=exec,transfer,cprd
		case $sandbox in
		--no-sandbox) how="without its seccomp filter (the policy did not load here)" ;;
		*) how="confined by policy/cprd.policy" ;;
		esac
		echo "== cprd: a private daemon (pid $cprd_pid) on $CPRD_SOCKET, $how"
	fi
fi
upgrades=${UPGRADES:-$(( $(echo "$modes" | tr ',' ' ' | wc -w) * 2 ))}

echo "== minivmm demo: $upgrades in-place upgrades of a running guest ($modes)"
echo
# The pipe through cat waits for the last image: after a transfer the old
# process exits and the new one carries on writing to the same pipe.
"$bin" --ram "${RAM:-1G}" --vcpus 2 --run-dir "$run" \
	--upgrade-every "${EVERY:-1}" --modes "$modes" --upgrades "$upgrades" \
	--exit-after 1 "$@" | cat
