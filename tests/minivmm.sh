#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# minivmm upgraded in place, for real: three upgrades through each mode
# (exec, transfer, and cprd when the daemon is built), in the interpreter
# always and under KVM when /dev/kvm works.  After every
# upgrade the guest's counters must have strictly increased, its RAM must be
# the same memfd inode and its static checksum unchanged; refused hand-offs
# (dead receiver, missing binary, a blocker) must leave the guest running in
# the same process, and so must an exec to a target that refuses the state
# (a rollback to the old binary).
set -eu

: "${top_builddir:=.}"
bin=$top_builddir/examples/minivmm/minivmm
[ -x "$bin" ] || { echo "minivmm not built: $bin"; exit 1; }
tmp=$(mktemp -d /tmp/minivmm-test.XXXXXX)
cprd_pid=""
stop_cprd() {
	if [ -n "$cprd_pid" ]; then kill "$cprd_pid" 2>/dev/null || true; fi
}

cleanup() {
	# cprd first: a bundle it still holds keeps a control socket open.
	stop_cprd
	for s in "$tmp"/*.sock; do
		[ -S "$s" ] || continue
		p=$("$bin" --control "$s" --send status 2>/dev/null | field pid) || true
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	[ -f "$tmp/log" ] && sed 's/^/  vmm: /' "$tmp/log"
	exit 1
}

# field NAME < "k=v k=v ..."
field() {
	tr ' ' '\n' | sed -n "s/^$1=//p"
}

ctl() {
	"$bin" --control "$sock" --send "$*"
}

# Every comma-separated number in $2 is below ($1 = lt) or not above
# ($1 = le) its peer in $3.
cmp_all() {
	op=$1 a=$2 b=$3
	[ -n "$a" ] && [ -n "$b" ] || return 1
	while [ -n "$a" ]; do
		x=${a%%,*} y=${b%%,*}
		[ "$x" -"$op" "$y" ] || return 1
		case $a in *,*) a=${a#*,} b=${b#*,} ;; *) a="" ;; esac
	done
}

# The guest runs: every counter moves past $1 within a few seconds.
wait_progress() {
	for _ in $(seq 100); do
		cmp_all lt "$1" "$(ctl status | field counters)" && return 0
		sleep 0.05
	done
	return 1
}

start_vmm() {
	sock=$tmp/$1.sock
	shift
	"$bin" --ram 64M --vcpus 2 --control "$sock" --run-dir "$tmp" --quiet \
		--exit-after 120 "$@" >"$tmp/log" 2>&1 &
	for _ in $(seq 100); do
		[ -S "$sock" ] && ctl status >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	fail "minivmm did not come up"
}

upgrade_ok() {
	mode=$1
	prev=$(ctl status | field counters)
	out=$(ctl upgrade "$mode" ${2:-}) || fail "upgrade $mode ${2:-}: $out"
	before=$(echo "$out" | field before)
	after=$(echo "$out" | field after)
	[ "$(echo "$out" | field check)" = ok ] || fail "checks after $mode: $out"
	[ "$(echo "$out" | field old_ino)" = "$(echo "$out" | field ino)" ] ||
		fail "RAM is not the same memfd after $mode: $out"
	# prev <= before (at the stop) < after (in the new image) < later
	cmp_all le "$prev" "$before" || fail "counters went back before $mode: $prev -> $before"
	cmp_all lt "$before" "$after" || fail "counters did not continue after $mode: $out"
	[ "$(echo "$out" | field pid)" != "$(echo "$out" | field old_pid)" ] ||
		[ "$mode" = exec ] || fail "transfer did not move to a new process: $out"
	now=$(ctl status)
	[ "$(echo "$now" | field checksum)" = ok ] || fail "static checksum changed: $now"
	[ "$(echo "$now" | field engine)" = "$engine" ] || fail "engine changed: $now"
	wait_progress "$after" || fail "guest stopped after $mode"
	printf '  %-8s pid %s -> %s  pause %s us (stop %s + hand-off %s + restore %s)  counters %s -> %s\n' \
		"$mode" "$(echo "$out" | field old_pid)" "$(echo "$out" | field pid)" \
		"$(($(echo "$out" | field pause_ns) / 1000))" \
		"$(($(echo "$out" | field stop_ns) / 1000))" \
		"$(($(echo "$out" | field handoff_ns) / 1000))" \
		"$(($(echo "$out" | field restore_ns) / 1000))" "$before" "$after"
}

refused_ok() {
	what=$1
	shift
	st=$(ctl status)
	pid=$(echo "$st" | field pid)
	if out=$(ctl "$@"); then
		fail "$what was not refused: $out"
	fi
	case $out in refused*) ;; *) fail "$what: unexpected reply: $out" ;; esac
	now=$(ctl status)
	[ "$(echo "$now" | field pid)" = "$pid" ] || fail "$what: guest moved: $now"
	[ "$(echo "$now" | field checksum)" = ok ] || fail "$what: static checksum: $now"
	wait_progress "$(echo "$st" | field counters)" ||
		fail "$what: guest not running after the refusal: $now"
	echo "  refused  ($what): guest still running in pid $pid"
}

# cprd, when it is built: the third mode goes through it.
modes="exec transfer exec transfer exec transfer"
if [ -x "$top_builddir/cprd/cprd" ]; then
	"$top_builddir/cprd/cprd" --socket "$tmp/cprd" --config /dev/null --no-sandbox \
		>"$tmp/cprd.log" 2>&1 &
	cprd_pid=$!
	for _ in $(seq 100); do [ -S "$tmp/cprd" ] && break; sleep 0.05; done
	export CPRD_SOCKET="$tmp/cprd"
	modes="exec transfer cprd exec transfer cprd exec transfer cprd"
fi
run_engine() {
	engine=$1
	shift
	echo "# $engine"
	start_vmm "$engine" "$@"
	[ "$(ctl status | field engine)" = "$engine" ] || fail "not running under $engine"
	for mode in $modes; do
		upgrade_ok "$mode"
	done
	# Another build of the VMM (as a rollback would be), both ways.
	cp "$bin" "$tmp/minivmm-other"
	upgrade_ok exec "$tmp/minivmm-other"
	upgrade_ok transfer "$bin"
	refused_ok "dead receiver" upgrade transfer /bin/false
	refused_ok "missing binary" upgrade exec "$tmp/no-such-minivmm"
	if [ -n "$cprd_pid" ]; then
		refused_ok "dead receiver through cprd" upgrade cprd /bin/false
	else
		refused_ok "no cprd" upgrade cprd
	fi
	[ "$(ctl status | field upgrades)" = $(($(echo $modes | wc -w) + 2)) ] ||
		fail "upgrade count"
	ctl quit >/dev/null
	sleep 0.2

	start_vmm "$engine-blocked" --block transfer "$@"
	refused_ok "blocker" upgrade transfer
	upgrade_ok exec
	ctl quit >/dev/null

	# A target that refuses the state it adopted: the guest goes back to
	# the old binary (same PID) and its counters continue there.
	MINIVMM_FAIL_AT=exec start_vmm "$engine-rollback" "$@"
	upgrade_ok exec
	[ "$(echo "$out" | field rolled_back)" = 1 ] || fail "exec to a refusing target: $out"
	grep -q "giving the state back" "$tmp/log" || fail "the target did not refuse"
	echo "  rolled back to the old binary"
	ctl quit >/dev/null

	# Receivers that die in the middle of the hand-off: after their ack,
	# and holding the registers before they answer.
	for at in ack run; do
		MINIVMM_FAIL_AT=$at start_vmm "$engine-fail-$at" "$@"
		refused_ok "receiver dies at $at" upgrade transfer
		if [ -n "$cprd_pid" ]; then
			refused_ok "receiver through cprd dies at $at" upgrade cprd
		fi
		upgrade_ok exec
		ctl quit >/dev/null
	done
}

# An exec upgrade registers only the boot slot in the pause.  With a boot
# slot below the guest's data and the other slots held back, the guest's
# first data access exits to minivmm and waits for its slot, then is done on
# the same pages; the guest must not notice beyond the wait.  With the
# default boot slot it never exits.
late_slots() {
	echo "# kvm: RAM slots registered after the resume"
	start_vmm kvm-late --boot-slot 8K --slot-delay 300
	upgrade_ok exec
	exits=$(echo "$out" | field ram_exits) late=$(echo "$out" | field late_slots_ns)
	waited=$(echo "$out" | field ram_wait_ns)
	[ "$exits" -gt 0 ] || fail "no guest access waited for its slot: $out"
	[ "$late" -ge 300000000 ] || fail "slots joined before the delay: $out"
	[ "$waited" -ge 100000000 ] || fail "guest accesses did not wait for the slots: $out"
	upgrade_ok exec
	ctl quit >/dev/null
	start_vmm kvm-boot-slot
	upgrade_ok exec
	[ "$(echo "$out" | field ram_exits)" = 0 ] || fail "guest left its boot slot: $out"
	[ "$(echo "$out" | field late_slots_ns)" -gt 0 ] || fail "no deferred slots: $out"
	ctl quit >/dev/null
}

run_engine interp --no-kvm
if why=$("$top_builddir/tests/helper-probe" kvm); then
	run_engine kvm
	late_slots
else
	echo "SKIP: minivmm under KVM and its deferred memory slots: $why"
fi
echo "ok"
