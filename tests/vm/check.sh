#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The suite's "vm" part: the test VM harness itself, then the programs that
# run inside the VM (tests/vm/*.c, built here against the test kernel's
# uapi headers).  One TAP-style line per check, the guest programs' own
# lines with them, and "N passed, N failed, N skipped" last.
#
#   tests/vm/check.sh [BUILDDIR]     (default: _build, already configured)
#
# Exits 0 when everything passed, 1 when anything failed, 77 (with the
# reason) when the VM cannot be had at all.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
b=$(cd "${1:-$top/_build}" && pwd) || exit 99
run=$top/tests/vm/run
T=$(mktemp -d "${TMPDIR:-/tmp}/cpr-vmcheck.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
pass=0 fail=0 n=0

result() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		pass=$((pass + 1))
		echo "ok $n - $2"
	else
		fail=$((fail + 1))
		echo "not ok $n - $2"
		sed 's/^/#   /' "$T/out" "$T/err"
	fi
}

# vm_case NAME WANT_STATUS WANT_OUTPUT RUN-ARGS...: one boot; the case
# passes when the status and the output (unless WANT_OUTPUT is "-") match.
vm_case() {
	name=$1 want=$2 wantout=$3
	shift 3
	"$run" "$@" >"$T/out" 2>"$T/err"
	got=$?
	sed -n 's/^cpr-vm: /# /p' "$T/err"
	if [ "$got" != "$want" ]; then
		echo "status $got, want $want" >>"$T/err"
		result 1 "$name"
	elif [ "$wantout" != - ] && [ "$(cat "$T/out")" != "$wantout" ]; then
		printf 'want output:\n%s\n' "$wantout" >>"$T/err"
		result 1 "$name"
	else
		result 0 "$name"
	fi
}

# A guest program's TAP lines, counted as checks of their own.
guest_tap() {
	while IFS= read -r line; do
		case $line in
		"ok "*) pass=$((pass + 1)) n=$((n + 1)) ;;
		"not ok "*) fail=$((fail + 1)) n=$((n + 1)) ;;
		*) continue ;;
		esac
		echo "  $line"
	done <"$T/out"
}

kdir=$("$run" -p)
rc=$?
if [ "$rc" = 77 ]; then
	echo "$kdir"
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
elif [ "$rc" != 0 ]; then
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
echo "# kernel: $kdir ($(cat "$kdir/build-seconds" 2>/dev/null || echo '?') s to build)"

vm_case "the harness returns the command's output and a status of 77" 77 "$(printf 'a  b\nno newline')" \
	-- sh -c 'echo "a  b"; printf "no newline"; exit 77'
vm_case "-n -e -i: environment, no vfio binding, a project program with its libraries, status 3" 3 \
	"it's \"quoted\" \$HOME
unbound
usage: cprdump" \
	-n -e "X=it's \"quoted\" \$HOME" -i "$b/tools/cprdump" \
	-- sh -c 'echo "$X"; echo "${CPR_VM_VFIO_DEV:-unbound}"; '"$b"'/tools/cprdump --help | head -1 | cut -c1-14; exit 3'
vm_case "a command past the timeout is killed and reported (99)" 99 - -t 10 -- sleep 600

if make -C "$b" -s vm-programs VM_UAPI="$kdir/usr/include" >"$T/out" 2>"$T/err"; then
	result 0 "the VM programs build against the test kernel's headers"
	vm_case "vfio-iommufd in the VM" 0 - -i "$b/tests/vm/vfio-iommufd" -- "$b/tests/vm/vfio-iommufd"
	guest_tap
	# RAM blocks mapped for DMA across cpr-exec and cpr-transfer, both ways
	# of opening the device, in one boot (tests/vm/dma-cpr.c says what each
	# mode checks).
	d=$b/tests/vm/dma-cpr
	vm_case "dma-cpr in the VM: exec, transfer, failures, blockers, kinds, probes" 0 - \
		-i "$d" -- sh -c 'rc=0; for m in probe kinds "exec iommufd" "exec type1" \
			"exec-fail iommufd" "exec-fail type1" "transfer iommufd" "transfer type1" \
			"transfer-killed iommufd" "transfer-killed type1" "blocker iommufd" \
			"blocker change" "blocker type1"; do
			echo "# dma-cpr $m"; '"$d"' $m || rc=1; done; exit $rc'
	guest_tap
	# minivmm owning the passthrough device across its upgrades
	# (tests/vm/minivmm-vfio.sh says what it checks).
	vm_case "minivmm with a passthrough device in the VM: exec, transfer, cprd" 0 - \
		-i "$b/examples/minivmm/minivmm" -i "$b/cprd/cprd" -i "$top/tests/vm/minivmm-vfio.sh" \
		-- sh "$top/tests/vm/minivmm-vfio.sh" "$b/examples/minivmm/minivmm" "$b/cprd/cprd"
	guest_tap
	# minivmm across two kexecs through cprd's Live Update session; every
	# boot's lines reach this console (tests/vm/kexec.sh says what it checks).
	k=$top/tests/vm/kexec.sh
	vm_case "kexec round trips: minivmm's guest across two kernel upgrades" 0 - \
		-b -n -a "kho=on liveupdate=on" -t 300 -e CPR_B="$b" -e CPR_TOP="$top" \
		-i "$k" -i "$b/cprd/cprd" -i "$b/cprd/cprctl" -i "$b/examples/minivmm/minivmm" \
		-i "$top/policy/cprd.policy" -i "$(command -v kexec)" -i "$b/tests/vm/luo-forge" \
		-- sh "$k"
	guest_tap
else
	result 1 "the VM programs build against the test kernel's headers"
fi

echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" = 0 ]
