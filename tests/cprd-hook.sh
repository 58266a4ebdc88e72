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
