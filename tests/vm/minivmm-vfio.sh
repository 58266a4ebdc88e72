#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Inside the test VM (tests/vm/run; tests/vm/check.sh runs it): minivmm owns
# the passthrough device, opened both ways (--vfio-cdev: cdev + iommufd;
# --vfio-group: group + type1 container), its guest RAM mapped for DMA, and
# upgrades twice by exec and once by transfer while the guest counts.  After
# each upgrade the new image checks that the registers written at boot read
# back and that the kernel still maps guest RAM at its IOVA (a fixed map
# over it fails with EEXIST), beside the counters and the guest checksum.
# Then the hand-off through cprd: it goes through with iommufd, and is
# refused before the pause with a type1 container (the guest runs on, and
# an exec upgrade after the refusal finds the device and mapping intact).
#
#   minivmm-vfio.sh MINIVMM CPRD
#
# TAP lines; exit 0 when all passed, 77 outside the VM.
set -u
vmm=$1 cprd=$2
T=/tmp/minivmm-vfio
n=0 failed=0
[ "${CPR_VM:-}" = 1 ] || { echo "SKIP: not inside the test VM (tests/vm/run)"; exit 77; }
mkdir -p "$T"

tap() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2"
		sed 's/^/#   /' "$T/out" "$T/err"
	fi
}

# count PATTERN: lines of the last run's output matching PATTERN.
count() {
	grep -c -- "$1" "$T/out"
}

# run WAY-OPTION... : minivmm with the device and scheduled upgrades; the
# status is the first image's, and the run ends when the last image (a
# transfer or cprd receiver is no child of ours) has printed its summary.
run() {
	"$vmm" --no-kvm --ram 64M --vcpus 2 --run-dir "$T" --upgrade-every 0.5 --exit-after 0.3 \
		"$@" >"$T/out" 2>"$T/err"
	st=$?
	for _ in $(seq 300); do
		grep -q '^minivmm: guest stopped after' "$T/out" && return $st
		sleep 0.1
	done
	echo "the last image did not stop within 30 s" >>"$T/err"
	return 1
}

# upgrades WAY NAME OPTION...: exec, exec, transfer.
upgrades() {
	way=$1 what=$2
	shift 2
	run "$@" --modes exec,exec,transfer --upgrades 3
	rc=$?
	tap "$rc" "$way: minivmm with $what: three upgrades, exit status 0 (was $rc)"
	[ "$(count '^  device .* ok: PCI_COMMAND 0x....\( and RDBAL0\)\? read back; RAM still mapped at IOVA 0 (fixed re-map: EEXIST)')" = 4 ]
	tap $? "$way: the device is checked at boot and after each upgrade: registers read back, mapping intact"
	[ "$(count '^upgrade [123]/3 by ')" = 3 ] &&
		[ "$(sed -n 's/^upgrade \([123]\)\/3 by \([a-z]*\):.*/\1\2/p' "$T/out" | tr -d '\n')" = 1exec2exec3transfer ]
	tap $? "$way: upgrades 1 and 2 by exec, 3 by transfer"
	[ "$(count '^  checks    counters continued; guest checksum [0-9a-f]* ok; RAM pattern ok$')" = 3 ] &&
		[ "$(count 'FAILED\|REFUSED')" = 0 ]
	tap $? "$way: after each upgrade the counters continued and the checksum and RAM pattern are ok"
	grep -q '^  checks    guest checksum and RAM pattern ok$' "$T/out"
	tap $? "$way: the last image stops the guest with its checks ok"
}

upgrades iommufd "--vfio-cdev $CPR_VM_VFIO_CDEV" --vfio-cdev "$CPR_VM_VFIO_CDEV"
upgrades type1 "--vfio-group $CPR_VM_VFIO_GROUP" --vfio-group "$CPR_VM_VFIO_GROUP"

# The broker path: cprd holds the bundle between the two images.
"$cprd" --socket "$T/cprd" --config /dev/null --no-sandbox >"$T/cprd.log" 2>&1 &
cprd_pid=$!
for _ in $(seq 100); do [ -S "$T/cprd" ] && break; sleep 0.05; done
export CPRD_SOCKET="$T/cprd"

run --vfio-cdev "$CPR_VM_VFIO_CDEV" --modes cprd --upgrades 1
rc=$?
[ "$rc" = 0 ] && [ "$(count '^upgrade 1/1 by cprd: ')" = 1 ] &&
	[ "$(count '^  device .* ok: ')" = 2 ] && [ "$(count '^  checks    counters continued')" = 1 ]
tap $? "iommufd: the hand-off through cprd keeps the device and its mapping (status $rc)"

run --vfio-group "$CPR_VM_VFIO_GROUP" --modes cprd,exec --upgrades 2
rc=$?
[ "$rc" = 0 ] &&
	[ "$(count '^upgrade 1 by cprd REFUSED: RAM block "pc.ram" is mapped for DMA through a VFIO type1 container at IOVA 0: a hand-off over the caller.s channel cannot invalidate its address (VFIO_DMA_UNMAP_FLAG_VADDR)')" = 1 ]
tap $? "type1: the hand-off through cprd is refused before the pause, naming why (status $rc)"
execs=$(count '^upgrade [12]/2 by exec: ')
[ "$(count '^  the guest keeps running in pid ')" = 1 ] && [ "$execs" -ge 1 ] &&
	[ "$(count '^  device .* ok: ')" = $((execs + 1)) ] &&
	[ "$(count '^  checks    counters continued')" = "$execs" ] && [ "$(count 'FAILED')" = 0 ]
tap $? "type1: after the refusal the guest ran on; an exec upgrade then finds the device and mapping intact"

kill "$cprd_pid" 2>/dev/null
wait "$cprd_pid" 2>/dev/null
# Every image has exited: no process keeps the group open (it opens once).
(exec 3<>"/dev/vfio/$CPR_VM_VFIO_GROUP") 2>"$T/err" >"$T/out"
tap $? "no image is left holding the device: the VFIO group opens again"

echo "# $((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
