#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cprd as the cpr-transfer peer of real QEMUs (tests/qemu-peer.py): a TCG
# guest's old QEMU sends its cpr channel to cprd, which holds it as a bundle
# (cprctl show lists QEMU's fds by name and kind; another uid neither sees
# nor delivers it) and delivers it to the new QEMU; the guest's firmware
# tick counter goes on in the new QEMU, whose RAM is the old one's memfd.
# A new QEMU that died is not delivered to (the old QEMU resumes its guest)
# and a malformed stream from a fake QEMU is refused; cprd holds nothing
# afterwards and leaked no fd.  "cprctl qemu upgrade" does the whole
# upgrade (the old QEMU quits, the new one runs the guest on its memfd) and
# rolls back when the new binary exits at once (the old one runs on);
# cprd-hook's qemu-upgrade does the same for a domain XML's <emulator>.
# cprd runs under its seccomp policy.  QEMU 10
# comes from bookworm-backports (build-aux/vm.sh).
. "${top_srcdir:-.}/tests/cprd-lib.sh"
. "$top_srcdir/build-aux/vm.sh"
QEMU=${QEMU:-qemu-system-x86_64}
export CPRCTL CPRD_SOCKET

if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP: python3 is not installed (the QMP client and QEMU harness)"
	exit 77
fi
version=$("$QEMU" --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\.[0-9]*\).*/\1/p')
case $version in
"" | [0-9].*)
	echo "SKIP: QEMU 10 or later is not installed ($QEMU: ${version:-missing}; as root: . build-aux/vm.sh; cpr_vm_install_deps$(cpr_vm_missing qemu-system-x86 | sed 's/./, missing:&/'))"
	exit 77
	;;
esac

# mode 0666: a client of another uid reaches the daemon, whose rules refuse it
"$CPRD" --socket "$T/sock" --mode 0666 --policy "$POLICY" --config "$T/cprd.conf" -v 2> "$T/cprd.log" &
P=$!
PIDS=$P
wait_socket "$T/sock"
# fds_open: cprd's own fds when idle (one connection: the one that asks)
fds_idle=$("$CPRCTL" --json daemon debug | sed -n 's/.*"fds_open":\([0-9]*\).*/\1/p')

for s in upgrade new-dies malformed cprctl-upgrade cprctl-rollback hook-upgrade; do
	mkdir "$T/$s"
	rc=0
	python3 "$top_srcdir/tests/qemu-peer.py" "$QEMU" "$T/$s" "$T/sock" "$s" > "$T/$s.log" 2>&1 || rc=$?
	if [ "$rc" = 77 ]; then
		sed -n 's/^SKIP/SKIP/p' "$T/$s.log"
		exit 77
	fi
	[ "$rc" = 0 ] || fail "$s: exit $rc"
	sed "s/^/$s: /" "$T/$s.log"
	"$CPRCTL" --json daemon debug > "$T/debug"
	grep -q '"fds_held":0,' "$T/debug" || fail "$s: cprd still holds fds: $(cat "$T/debug")"
	grep -q '"bundles":0,' "$T/debug" || fail "$s: cprd still holds a bundle: $(cat "$T/debug")"
	grep -q "\"fds_open\":$fds_idle," "$T/debug" || fail "$s: cprd leaked fds ($fds_idle before): $(cat "$T/debug")"
done
grep -q "refused: 2 fd markers in the stream but 1 fds received" "$T/cprd.log" ||
	fail "the refusal is not in cprd's log"
kill -TERM "$P"
wait "$P" || fail "cprd did not exit cleanly"
PIDS=
echo ok
