#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Record real memfds and eventfds in a stream, then decode and check it.
set -eu
B=${1:-_build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
bold "1. A VMM-like process records its RAM blocks and device fds"
"$B/examples/state-demo" "$out"
bold "2. cprdump decodes the stream (abridged)"
"$B/tools/cprdump" "$out/demo-level2.cpr" | head -48
echo "  ..."
bold "3. Would each reader accept it?"
printf '  level-2 reader: '; "$B/tools/cprdump" --check "$out/demo-level2.cpr"
printf '  level-1 reader: '; "$B/tools/cprdump" --check --max-level 1 "$out/demo-level1.cpr"
bold "4. Round trip: cprgen(cprdump(s)) == s"
"$B/tools/cprdump" "$out/demo-level2.cpr" | "$B/tools/cprgen" | cmp - "$out/demo-level2.cpr" && echo "  byte-identical"
bold "5. A corrupted stream is refused with a clear error"
cp "$out/demo-level2.cpr" "$out/bad.cpr"
printf '\377\377' | dd of="$out/bad.cpr" bs=1 seek=200 conv=notrunc 2>/dev/null
"$B/tools/cprdump" --check "$out/bad.cpr" || true
