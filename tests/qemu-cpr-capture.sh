#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A real QEMU's cpr-transfer channel, captured (tests/qemu-cpr-capture.py)
# and decoded by cprdump: one fd arrived with each marker byte, the entries
# are the golden capture's (tests/golden/qemu-10.0-transfer.*), and with the
# golden's QEMU release the whole decoded structure is the golden's.
# QEMU 10 comes from bookworm-backports (build-aux/vm.sh: cpr_vm_install_deps).
. "${top_srcdir:-.}/tests/lib.sh"
. "$top_srcdir/build-aux/vm.sh"
QEMU=${QEMU:-qemu-system-x86_64}
G=$top_srcdir/tests/golden/qemu-10.0-transfer
fds_open() { find /proc/$$/fd -mindepth 1 -printf '%f %l\n' | grep -v ' pipe:' | sort; }
fds_before=$(fds_open)

if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP: python3 is not installed (the QMP client and capture peer)"
	exit 77
fi
version=$("$QEMU" --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\.[0-9]*\).*/\1/p')
case $version in
"" | [0-9].*)
	echo "SKIP: QEMU 10 or later is not installed ($QEMU: ${version:-missing}; as root: . build-aux/vm.sh; cpr_vm_install_deps$(cpr_vm_missing qemu-system-x86 | sed 's/./, missing:&/'))"
	exit 77
	;;
esac

python3 "$top_srcdir/tests/qemu-cpr-capture.py" "$QEMU" "$T" "$T/cap.qcpr" "$T/cap.json" >"$T/py.out" 2>&1
rc=$?
if [ "$rc" = 77 ]; then
	sed -n 's/^SKIP/SKIP/p' "$T/py.out"
	exit 77
fi
[ "$rc" = 0 ] && ok || not_ok "capture failed (exit $rc): $(cat "$T/py.out")"

expect_exit 0 "capture: --check" "$CPRDUMP" --check "$T/cap.qcpr"
cat "$T/out"
"$CPRDUMP" "$T/cap.qcpr" >"$T/cap-decoded.json" || not_ok "capture does not decode"
python3 - "$T/cap-decoded.json" "$T/cap.json" "$G.json" "$G.capture.json" "$version" <<'P' && ok || not_ok "decoded capture differs (above)"
import json, sys
d, c, gd, gc = (json.load(open(p)) for p in sys.argv[1:5])
version = sys.argv[5]
fds = [(e["name"], e["id"]) for e in d["fds"]]
# one fd with each marker byte, and no fd with any other byte
assert [int(e["marker_offset"], 16) for e in d["fds"]] == [b["offset"] for b in c["fd_bytes"]], (d, c)
assert all(b["fds"] == 1 for b in c["fd_bytes"]) and d["markers"] == len(fds) == len(c["fd_targets"])
assert d["header"]["mode"] == "cpr-transfer" and d["header"]["length"] == c["length"]
assert ("ram0", 0) in fds, fds
assert all(t.startswith("/memfd:") for t in c["fd_targets"]), c["fd_targets"]
assert sorted(fds) == sorted((e["name"], e["id"]) for e in gd["fds"]), (fds, gd["fds"])
if gc["qemu"].startswith(version + "."):
    assert d == gd, "decoded structure differs from the golden's"
    assert c["fd_targets"] == gc["fd_targets"]
print(f"QEMU {version}: {len(fds)} fd entries, vfio {d['vfio']['shape']}")
P
[ "$(fds_open)" = "$fds_before" ] && ok || not_ok "fds leaked: $(fds_open)"
finish
