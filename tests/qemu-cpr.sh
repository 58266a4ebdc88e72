#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cprdump on QEMU's CPR state: the golden capture from a real QEMU decodes to
# its committed JSON; the other shapes (cpr-exec memfd, vfio subsection of a
# stub and of a VFIO build) decode; every broken variant, and every prefix of
# the golden capture, is refused with exit 1 and the offset named.
. "${top_srcdir:-.}/tests/lib.sh"
# This shell's fds (the pipe of the command substitution itself left out).
fds_open() { find /proc/$$/fd -mindepth 1 -printf '%f %l\n' | grep -v ' pipe:' | sort; }
fds_before=$(fds_open)
G=$top_srcdir/tests/golden/qemu-10.0-transfer

expect_exit 0 "golden: --check" "$CPRDUMP" --check "$G.qcpr"
expect_grep "6 fd entries, 6 fd markers, vfio subsection absent" "$T/out" "golden summary"
"$CPRDUMP" "$G.qcpr" >"$T/golden.json"
if cmp -s "$T/golden.json" "$G.json"; then ok; else
	not_ok "golden capture decodes differently from $G.json"
	diff "$G.json" "$T/golden.json" >&2
fi
expect_exit 0 "golden: --format qemu-transfer" "$CPRDUMP" --format qemu-transfer --compact "$G.qcpr"
expect_grep '"marker_offset":"0x95"' "$T/out" "hex marker offsets"
expect_exit 1 "golden read as a libcpr stream" "$CPRDUMP" --format cpr --check "$G.qcpr"
expect_exit 100 "unknown --format" "$CPRDUMP" --format nope "$G.qcpr"
# The marker offsets are exactly the bytes the capture saw an fd arrive with.
python3 - "$G.json" "$G.capture.json" <<'P' && ok || not_ok "marker offsets differ from the captured fd bytes"
import json, sys
d, c = (json.load(open(p)) for p in sys.argv[1:])
assert [int(e["marker_offset"], 16) for e in d["fds"]] == [b["offset"] for b in c["fd_bytes"]]
assert all(b["fds"] == 1 for b in c["fd_bytes"]) and d["markers"] == len(c["fd_targets"])
assert "ram0" in [e["name"] for e in d["fds"]]
P

python3 "$top_srcdir/tests/qemu-cpr-lib.py" "$T"
expect_exit 0 "exec memfd" "$CPRDUMP" --compact "$T/exec.qcpr"
expect_grep '"mode":"cpr-exec"' "$T/out" "exec detected"
expect_grep '"fd":17,"fd_offset":"0x' "$T/out" "exec fd numbers"
expect_exit 0 "exec memfd, explicit" "$CPRDUMP" --format qemu-exec --check "$T/exec.qcpr"
expect_exit 1 "exec memfd read as transfer" "$CPRDUMP" --format qemu-transfer --check "$T/exec.qcpr"
expect_exit 0 "stub vfio subsection" "$CPRDUMP" --compact "$T/stub.qcpr"
expect_grep '"vfio":{"shape":"stub","offset":"0x3d","name":"CprState/vfio devices","version":1}' "$T/out" "stub shape"
expect_exit 0 "vfio device list" "$CPRDUMP" --compact "$T/vfio.qcpr"
expect_grep '"devices":\[{"offset":"0x58","name":"0000:00:04.0","devid":1,"ioas_id":2,"hwpt_id":3}\]' "$T/out" "vfio list"
expect_exit 0 "exec with vfio list" "$CPRDUMP" --check --json --compact "$T/exec-vfio.qcpr"
expect_grep '"valid":true,"format":"qemu-cpr","fds":2,"markers":0,"vfio":"list","vfio_devices":2' "$T/out" "check --json"
expect_exit 0 "no entries" "$CPRDUMP" --check "$T/empty.qcpr"

while IFS="	" read -r name fmt pattern; do
	expect_exit 1 "$name" "$CPRDUMP" --format "$fmt" --check "$T/broken-$name.qcpr"
	expect_grep "$pattern" "$T/err" "$name"
	expect_exit 1 "$name --json" "$CPRDUMP" --format "$fmt" --check --json --compact "$T/broken-$name.qcpr"
	expect_grep '"valid":false,"format":"qemu-cpr","error":{"code":-[0-9]*,"errno":"E[A-Z]*","offset":"0x' "$T/out" "$name --json"
done <"$T/broken.list"
expect_exit 1 "bad magic, forced" "$CPRDUMP" --format qemu "$T/broken-bad-magic.qcpr"
expect_grep '"offset": "0x0"' "$T/out" "bad magic at offset 0"

# Every proper prefix of the real capture is refused, naming where it ends.
n=$(wc -c <"$G.qcpr")
i=0
while [ "$i" -lt "$n" ]; do
	head -c "$i" "$G.qcpr" >"$T/prefix"
	"$CPRDUMP" --format qemu --check "$T/prefix" >/dev/null 2>"$T/err"
	rc=$?
	if [ "$rc" = 1 ] && grep -q "offset 0x" "$T/err"; then ok; else
		not_ok "prefix of $i bytes: exit $rc: $(cat "$T/err")"
	fi
	i=$((i + 1))
done

[ "$(fds_open)" = "$fds_before" ] && ok || not_ok "fds leaked: $(fds_open)"
finish
