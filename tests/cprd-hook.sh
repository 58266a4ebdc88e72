#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cprd-hook invoked exactly as libvirt invokes /etc/libvirt/hooks/qemu:
# "qemu DOMAIN OPERATION SUB-OPERATION EXTRA" with the domain XML on stdin.
. "${top_srcdir:-.}/tests/cprd-lib.sh"
HOOK=$top_builddir/cprd/cprd-hook
cat > "$T/vm1.xml" <<'XML'
<domain type='kvm'>
  <name>vm1</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <memory unit='KiB'>1048576</memory>
</domain>
XML
hook() { "$HOOK" "$@" < "$T/vm1.xml"; }

# domxml FILE MEMORYBACKING [NUMA]: vm1's XML with that <memoryBacking> body
# (none when "-") and that <cpu><numa> body (none when empty).
domxml() {
	{
		echo "<domain type='kvm'>"
		echo "  <!-- <name>vm2</name> in a comment is no name -->"
		echo "  <metadata><app><name>vm2</name></app></metadata>"
		echo "  <name>vm1</name>"
		echo "  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>"
		[ "$2" = - ] || echo "  <memoryBacking>$2</memoryBacking>"
		[ -z "${3:-}" ] || echo "  <cpu><numa>$3</numa></cpu>"
		echo "</domain>"
	} > "$1"
}
# upgrade_refused FILE WANT-IN-MESSAGE: cpr-upgrade begin exits 1 naming it
upgrade_refused() {
	rc=0; "$HOOK" vm1 cpr-upgrade begin - < "$1" 2> "$T/hook.err" || rc=$?
	[ "$rc" = 1 ] || fail "cpr-upgrade of $(basename "$1"): exit $rc, want 1"
	grep -qF "$2" "$T/hook.err" || fail "cpr-upgrade of $(basename "$1"): no '$2' in: $(cat "$T/hook.err")"
}
# bad_xml FILE WANT-IN-MESSAGE: the XML itself is refused (exit 100)
bad_xml() {
	rc=0; "$HOOK" vm1 prepare begin - < "$1" 2> "$T/hook.err" || rc=$?
	[ "$rc" = 100 ] || fail "XML $(basename "$1"): exit $rc, want 100"
	grep -qF "$2" "$T/hook.err" || fail "XML $(basename "$1"): no '$2' in: $(cat "$T/hook.err")"
}
shared="<source type='memfd'/><access mode='shared'/>"
domxml "$T/none.xml" -
domxml "$T/file.xml" "<source type='file'/><access mode='shared'/>"
domxml "$T/private.xml" "<source type='memfd'/>"
domxml "$T/shared.xml" "$shared"
domxml "$T/cells.xml" "<source type='memfd'/>" \
	"<cell id='0' cpus='0' memory='512' memAccess='shared'/><cell id='1' cpus='1' memory='512' memAccess='shared'/>"
domxml "$T/cell1.xml" "$shared" \
	"<cell id='0' cpus='0' memory='512'/><cell id='1' cpus='1' memory='512' memAccess='private'/>"

# Guest RAM a new VMM cannot adopt: refused before cprd is even asked,
# naming the element to change.
upgrade_refused "$T/none.xml" "no <memoryBacking><source>): set <memoryBacking><source type='memfd'/>"
upgrade_refused "$T/file.xml" "(<source type='file'/>): set <memoryBacking><source type='memfd'/>"
upgrade_refused "$T/private.xml" "private (the default): set <memoryBacking><access mode='shared'/>"
upgrade_refused "$T/cell1.xml" "NUMA cell 1 is private: set memAccess='shared' on <cpu><numa><cell id='1'>"
grep -q "4dea22b3-1d52-d8f3-2516-782e98ab3fa0" "$T/hook.err" || fail "refusal without the uuid"
# shared and memfd-backed, but no cprd: nothing to hand over
upgrade_refused "$T/shared.xml" "cprd unreachable"

# qemu-upgrade begin QMP: the checks of cpr-upgrade begin, then cprctl qemu
# upgrade runs (here a stand-in that records its arguments: the upgrade of a
# real QEMU through this operation is in tests/qemu-peer.sh) and its exit
# status is the hook's.  Refusals run nothing.
emu() { sed "s|</domain>|  <devices><emulator>$2</emulator></devices>\n</domain>|" "$1"; }
emu "$T/shared.xml" /opt/qemu-11/bin/qemu-system-x86_64 > "$T/emu.xml"
emu "$T/private.xml" /opt/qemu-11/bin/qemu-system-x86_64 > "$T/emu-private.xml"
emu "$T/shared.xml" qemu-system-x86_64 > "$T/emu-relative.xml"
printf '#!/bin/sh\nprintf "%%s\\n" "$@" > "%s"\nexit 2\n' "$T/cprctl.args" > "$T/cprctl"
chmod +x "$T/cprctl"
# qemu_upgrade WANT-RC XML [QMP] [WANT-IN-MESSAGE]
qemu_upgrade() {
	rm -f "$T/cprctl.args"
	rc=0
	CPRCTL=${HOOK_CPRCTL:-$T/cprctl} "$HOOK" vm1 qemu-upgrade begin "${3:-/run/vm1.qmp}" \
		< "$2" 2> "$T/hook.err" || rc=$?
	[ "$rc" = "$1" ] || fail "qemu-upgrade of $(basename "$2"): exit $rc, want $1: $(cat "$T/hook.err")"
	[ -z "${4:-}" ] || grep -qF "$4" "$T/hook.err" ||
		fail "qemu-upgrade of $(basename "$2"): no '$4' in: $(cat "$T/hook.err")"
	if [ "$1" != 2 ] && [ -e "$T/cprctl.args" ]; then
		fail "qemu-upgrade of $(basename "$2") refused (exit $1) but ran cprctl"
	fi
	return 0
}
qemu_upgrade 100 "$T/shared.xml" "" "needs the new QEMU as an absolute path in <devices><emulator>"
qemu_upgrade 100 "$T/emu-relative.xml" "" "not a relative one"
qemu_upgrade 100 "$T/emu.xml" vm1.qmp "must be the absolute path of the domain's QMP socket"
qemu_upgrade 1 "$T/emu-private.xml" "" "private (the default): set <memoryBacking><access mode='shared'/>"
qemu_upgrade 1 "$T/emu.xml" "" "cprd unreachable"

# The XML is parsed, not searched: comments and nested elements named
# <name> are not the domain's name; malformed XML and DTDs are refused.
hook vm1 prepare begin - < "$T/shared.xml" || fail "a <name> in a comment or <metadata> was taken"
printf '<domain><name>vm1</name>\n<uuid>x</uuid></domain>' > "$T/uuid.xml"
bad_xml "$T/uuid.xml" "<uuid> is not a UUID"
printf '<domain><name>vm1</name><name>vm1</name></domain>' > "$T/two.xml"
bad_xml "$T/two.xml" "more than one <name>"
printf '<domain><name>vm1</name>\n<memoryBacking>\n</domain>' > "$T/broken.xml"
bad_xml "$T/broken.xml" "not well-formed: line 3"
printf '<!DOCTYPE domain [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<domain><name>vm1&b;</name></domain>' > "$T/dtd.xml"
bad_xml "$T/dtd.xml" "has a DOCTYPE"
printf '<vm><name>vm1</name></vm>' > "$T/root.xml"
bad_xml "$T/root.xml" "not a <domain>"

# no daemon: nothing to protect, the domain may start
rc=0; hook vm1 prepare begin - 2> "$T/hook.err" || rc=$?
[ "$rc" = 0 ] || fail "prepare without cprd: exit $rc"

"$CPRD" --socket "$T/sock" --policy "$POLICY" --config "$T/cprd.conf" 2> "$T/cprd.log" &
PIDS=$!
wait_socket "$T/sock"
hook vm1 prepare begin - || fail "prepare, no bundles"
echo ram > "$T/ram"
mkstream "$T/st" 1
"$CPRCTL" store --stream "$T/st" libvirt/vm1/ram "$T/ram" >/dev/null || fail "store"
"$CPRCTL" store --stream "$T/st" libvirt/vm10/ram "$T/ram" >/dev/null || fail "store vm10"

# a hand-off in progress (claimed): starting the domain now is refused
"$CPRCTL" --json claim libvirt/vm1/ram > "$T/claim.json" || fail "claim"
token=$(sed -n 's/^ *"token": *"\([0-9a-f]*\)".*/\1/p' "$T/claim.json")
rc=0; hook vm1 prepare begin - 2> "$T/hook.err" || rc=$?
[ "$rc" = 1 ] || fail "prepare with a claimed bundle: exit $rc, want 1"
grep -q "claimed by another process" "$T/hook.err" || fail "no reason given"
"$CPRCTL" release libvirt/vm1/ram "$token" >/dev/null || fail "release"
hook vm1 prepare begin - || fail "prepare with a sealed bundle"

# cpr-upgrade begin: shared memfd RAM and no hand-off in progress
"$HOOK" vm1 cpr-upgrade begin - < "$T/shared.xml" || fail "cpr-upgrade of a shared memfd domain"
"$HOOK" vm1 cpr-upgrade begin - < "$T/cells.xml" || fail "cpr-upgrade, every NUMA cell shared"
"$CPRCTL" --json claim libvirt/vm1/ram > "$T/claim.json" || fail "claim"
token=$(sed -n 's/^ *"token": *"\([0-9a-f]*\)".*/\1/p' "$T/claim.json")
upgrade_refused "$T/shared.xml" "claimed by another process"
qemu_upgrade 1 "$T/emu.xml" "" "claimed by another process"
"$CPRCTL" release libvirt/vm1/ram "$token" >/dev/null || fail "release"
# no hand-off in progress: cprctl qemu upgrade runs, on the domain's bundle
qemu_upgrade 2 "$T/emu.xml"
printf '%s\n' qemu upgrade --qmp /run/vm1.qmp --binary /opt/qemu-11/bin/qemu-system-x86_64 \
	--name libvirt/vm1/qemu | cmp -s - "$T/cprctl.args" || fail "cprctl run as: $(cat "$T/cprctl.args")"
HOOK_CPRCTL=$T/missing qemu_upgrade 111 "$T/emu.xml" "" "cannot run $T/missing"

# started: a bundle the new VMM left sealed is reported, the start goes on
hook vm1 started begin - 2> "$T/hook.err" || fail "started"
grep -q "libvirt/vm1/ram was not taken" "$T/hook.err" || fail "started: no report"

# operations the hook does not handle are accepted untouched
for op in "start begin -" "migrate begin -" "restore begin -" "reconnect begin -" \
	"attach begin -" "stopped begin -"; do
	# shellcheck disable=SC2086
	hook vm1 $op > "$T/out" || fail "$op"
	[ ! -s "$T/out" ] || fail "$op printed XML"
done
"$CPRCTL" list | grep -q "^libvirt/vm1/ram" || fail "bundle gone too early"

# stopped/release end: the domain's bundles are dropped, other domains' kept
hook vm1 stopped end - || fail "stopped end"
"$CPRCTL" list > "$T/list"
grep -q "^libvirt/vm1/" "$T/list" && fail "vm1 bundle not dropped"
grep -q "^libvirt/vm10/ram" "$T/list" || fail "vm10 bundle dropped by vm1's hook"
hook vm1 release end - || fail "release end"

# malformed invocations abort (non-zero)
rc=0; "$HOOK" vm1 prepare begin < "$T/vm1.xml" 2>/dev/null || rc=$?
[ "$rc" = 100 ] || fail "3 arguments: exit $rc"
rc=0; "$HOOK" vm2 prepare begin - < "$T/vm1.xml" 2>/dev/null || rc=$?
[ "$rc" = 100 ] || fail "XML of another domain: exit $rc"
rc=0; "$HOOK" "../x" prepare begin - < /dev/null 2>/dev/null || rc=$?
[ "$rc" = 100 ] || fail "a domain name that cannot name bundles: exit $rc"
echo ok
