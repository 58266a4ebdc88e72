#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The demo: minivmm boots a small guest, then upgrades its own VMM in place a
# few times (cpr-exec into its own binary, cpr-transfer to a new process,
# alternately).  For each upgrade the new image prints that the guest's
# counters continued, that its RAM is the same memfd (inode), and how long
# the guest was paused.
#
#   examples/demo.sh [minivmm options]     e.g. --ram 4G --hugepages, --no-kvm
#
# MINIVMM=path overrides the binary; RAM, UPGRADES, EVERY tune the run.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${MINIVMM:-}
if [ -z "$bin" ]; then
	for c in "$top/_build/examples/minivmm/minivmm" "$top/examples/minivmm/minivmm"; do
		if [ -x "$c" ]; then bin=$c; break; fi
	done
fi
if [ -z "$bin" ]; then
	echo "demo: build first: autoreconf -fi && mkdir -p _build && cd _build && ../configure && make" >&2
	exit 100
fi

modes=exec,transfer
upgrades=${UPGRADES:-6}
run=$(mktemp -d /tmp/minivmm-demo.XXXXXX)
trap 'rm -rf "$run"' EXIT

echo "== minivmm demo: $upgrades in-place upgrades of a running guest ($modes)"
echo
# The pipe through cat waits for the last image: after a transfer the old
# process exits and the new one carries on writing to the same pipe.
"$bin" --ram "${RAM:-1G}" --vcpus 2 --run-dir "$run" \
	--upgrade-every "${EVERY:-1}" --modes "$modes" --upgrades "$upgrades" \
	--exit-after 1 "$@" | cat
