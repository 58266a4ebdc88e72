#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# minivmm across kernel upgrades, inside the test VM (tests/vm/check.sh
# runs it with tests/vm/run -b -n -a "kho=on liveupdate=on"): the same
# script runs at every boot and knows which one it is from cpr_kexec=N on
# /proc/cmdline (none: the first).
#
#   boot 0   cprd (the live-update agent), a fresh minivmm (interpreter);
#            a second minivmm told the next kernel has no Live Update
#            refuses "upgrade kexec" and keeps running; the first one's
#            "upgrade kexec" stores its RAM and vCPUs in cprd as a durable
#            bundle; kexec -s into /boot/bzImage with cpr_kexec=1
#   boot N   cprd retrieves its session and rebuilds the bundle (boot 1: a
#            claim by another uid is refused); a new minivmm
#            --incoming-kexec claims it, adopts the RAM, continues (counters
#            past the stored ones, checksum and RAM pattern ok); again
#   boot 2   (ROUNDS) as N, then stored once more; a session "forged" is
#            made by hand (tests/vm/luo-forge.c) with a copy of the bundle,
#            a copy whose manifest is truncated and one whose manifest was
#            edited; cprd is killed (SIGKILL); kexec
#   boot 3   cprd finds no session (its holder died: the bundles went with
#            it, as cprd(8) says) and the claim fails; cprd on session
#            "forged" restores the good copy, refuses the two others, and
#            a new minivmm continues the guest from the copy
#
# The next boot's initramfs is this one's root filesystem (cpio'd), so the
# files under /run/kexec go with it.  TAP lines (unnumbered: tests/vm/check.sh
# numbers them); exit 0 when every one passed.
#
# Environment: CPR_B (build dir), CPR_TOP (source dir), ROUNDS (default 2),
# RAM (default 64M), FAILURES (default 1; 0: the round trips only, the last
# boot quits after its checks: bench/kexec.sh).
set -u
FORGE=$CPR_B/tests/vm/luo-forge
B=$CPR_B TOP=$CPR_TOP
ROUNDS=${ROUNDS:-2} RAM=${RAM:-64M} FAILURES=${FAILURES:-1}
S=/run/kexec
CPRD="$B/cprd/cprd" VMM="$B/examples/minivmm/minivmm"
mkdir -p "$S"
N=$(sed -n 's/.*cpr_kexec=\([0-9]*\).*/\1/p' /proc/cmdline)
N=${N:-0}
NEXT="console=ttyS0 quiet panic=-1 no_timer_check kho=on liveupdate=on cpr_kexec=$((N + 1))"

# A failure fails the last boot's status too: $S/rc goes on to the next boot
# (a failure after the next initramfs was made stops before the kexec).
rc=$(cat "$S/rc" 2>/dev/null || echo 0)
ok() { echo "ok - boot $N: $*"; }
notok() {
	echo "not ok - boot $N: $*"
	rc=1
	echo 1 >"$S/rc"
}
check() { # check DESCRIPTION CMD...
	d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}
# continued STATUS: the counters move on (minivmm's own report checks that
# those in the adopted RAM are the ones stored, and that they moved past).
continued() {
	sleep 0.5
	st2=$(send status)
	a=$(field counters "$1" | cut -d, -f1) b=$(field counters "$st2" | cut -d, -f1)
	check "the guest runs: counters $(field counters "$1") -> $(field counters "$st2"), checksum $(field checksum "$st2")" \
		[ "${b:-0}" -gt "${a:-0}" -a "$(field checksum "$st2")" = ok ]
}
shmem_kib() { sed -n 's/^Shmem: *\([0-9]*\) kB/\1/p' /proc/meminfo; }
# field NAME LINE: the value of NAME=... in a minivmm reply
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
send() { "$VMM" --control "$S/vmm.ctl" --send "$*"; }
wait_for() { # wait_for PATH: up to 20 s
	i=0
	while [ ! -S "$1" ] && [ $i -lt 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -S "$1" ]
}
bye() {
	sed 's/^/# cprd: /' "$S/cprd.log" | tail -20
	[ "$rc" = 0 ] || dmesg | grep -i 'kho\|luo\|liveupdate\|memfd\|folio' | sed 's/^/# kernel: /' | tail -20
	exit "$rc"
}

# Failure: the next kernel has no Live Update.  Refused before the pause,
# nothing stored, the guest runs on.
no_luo() {
	"$VMM" --no-kvm --ram 8M --control "$S/noluo.ctl" --kexec-bundle noluo \
		--kexec-append "console=ttyS0 quiet no_timer_check kho=on" >"$S/noluo.log" 2>&1 &
	wait_for "$S/noluo.ctl" || { notok "minivmm did not start"; return; }
	sleep 0.5
	r=$("$VMM" --control "$S/noluo.ctl" --send "upgrade kexec")
	echo "# $r"
	case $r in
	"refused mode=kexec"*"lacks liveupdate=on"*) ok "next kernel without liveupdate=on: refused before the kexec" ;;
	*) notok "next kernel without liveupdate=on: $r" ;;
	esac
	a=$(field counters "$("$VMM" --control "$S/noluo.ctl" --send status)" | cut -d, -f1)
	sleep 0.5
	st=$("$VMM" --control "$S/noluo.ctl" --send status)
	b=$(field counters "$st" | cut -d, -f1)
	check "and the guest keeps running there ($a -> $b, checksum $(field checksum "$st"))" \
		[ "${b:-0}" -gt "${a:-0}" -a "$(field checksum "$st")" = ok ]
	check "and nothing was stored" sh -c '! "$0" show noluo >/dev/null 2>&1' "$B/cprd/cprctl"
	"$VMM" --control "$S/noluo.ctl" --send quit >/dev/null
}

# Failure: another uid claims the restored bundle (its owner is root).
other_uid() {
	chmod 755 / "$S" # (the initramfs root is 0700)
	chmod 666 "$S/cprd.sock" # cprd, not the file mode, must refuse
	grep -q '^cprtest:' /etc/passwd 2>/dev/null ||
		echo 'cprtest:x:1000:1000::/tmp:/bin/sh' >>/etc/passwd
	rc2=0
	su -s /bin/sh cprtest -c "CPRD_SOCKET=$CPRD_SOCKET $B/cprd/cprctl claim minivmm-kexec" \
		>"$S/uid.out" 2>&1 || rc2=$?
	echo "# uid 1000: $(head -c 300 "$S/uid.out")"
	check "a claim by uid 1000 is refused (exit $rc2)" [ "$rc2" != 0 ]
	check "and the bundle stays" "$B/cprd/cprctl" show minivmm-kexec >/dev/null
}

# cprd's pieces of the stored bundle: "PATH-OF-FD" for link pattern $1.
cprd_fd() {
	for f in /proc/$cprd_pid/fd/*; do
		case $(readlink "$f") in $1) echo "$f" && return 0 ;; esac
	done
	return 1
}

# Session "forged": bundle A a copy of the stored one; B the same with its
# manifest cut in half; C with a manifest edited (another id and name, and
# two fds where the session holds one).  First the copies of cprd's pieces.
forge() {
	F=/tmp/forge
	mkdir -p $F
	man=$(cprd_fd '/memfd:cprd-luo-manifest*') && str=$(cprd_fd '/memfd:minivmm-state*') &&
		ram=$(cprd_fd '/ (deleted)' || cprd_fd '/memfd:pc.ram*') ||
		{ notok "the bundle's pieces in cprd"; ls -l /proc/$cprd_pid/fd; return; }
	cat "$man" >$F/man.a
	id=$(tr -d ' \n' <$F/man.a | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
	cat "$str" >$F/stream
	cat "$ram" >$F/ram
	len=$(wc -c <$F/man.a)
	head -c $((len / 2)) $F/man.a >$F/man.b
	A=$id B2=$((id + 1)) C=$((id + 2))
	sed -e "s/\"id\": *$A/\"id\":$C/" -e 's/"name": *"minivmm-kexec"/"name":"tampered"/' \
		-e 's/"fds": *1/"fds":2/' $F/man.a >$F/man.c
}

# The session itself, once cprd is gone: /dev/liveupdate has one opener.
forge_session() {
	printf 'cprd-luo 1\n%s\n%s\n%s\n' $A $B2 $C >$F/index
	truncate -s 65536 $F/index
	"$FORGE" forged 1=$F/index \
		$((A << 20))=s:$F/man.a $((A << 20 | 1))=s:$F/stream $((A << 20 | 2))=$F/ram \
		$((B2 << 20))=s:$F/man.b $((B2 << 20 | 1))=s:$F/stream $((B2 << 20 | 2))=$F/ram \
		$((C << 20))=s:$F/man.c $((C << 20 | 1))=s:$F/stream $((C << 20 | 2))=$F/ram \
		>$F/out 2>&1 &
	i=0
	while ! grep -q ready $F/out && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	check "session \"forged\": bundle $A, $B2 (manifest truncated), $C (manifest edited)" \
		grep -q ready $F/out || sed 's/^/#   /' $F/out
	rm -rf $F
}

boot3() {
	start_cprd cprd
	grep -q 'no session "\?cprd"\? from a previous kernel' "$S/cprd.log" &&
		ok "cprd killed before the kexec: its session is gone, and cprd says so" ||
		{ notok "cprd's session after its death"; sed 's/^/#   /' "$S/cprd.log"; }
	rc2=0
	"$B/cprd/cprctl" claim minivmm-kexec >"$S/claim.out" 2>&1 || rc2=$?
	check "and the claim fails: $(head -c 200 "$S/claim.out")" [ "$rc2" != 0 ]
	kill "$cprd_pid"
	wait "$cprd_pid"
	start_cprd forged
	sed 's/^/# cprd: /' "$S/cprd.log"
	check "session \"forged\": the truncated manifest is refused" \
		grep -q "bundle id [0-9]* not restored: unreadable manifest" "$S/cprd.log"
	check "session \"forged\": the edited manifest is refused" \
		grep -q "bundle id [0-9]* not restored: slot 1" "$S/cprd.log"
	check "session \"forged\": the good bundle is restored (1 restored, 2 dropped)" \
		grep -q "retrieved: 1 bundles restored, 2 dropped" "$S/cprd.log"
	"$VMM" --no-kvm --control "$S/vmm.ctl" --incoming-kexec minivmm-kexec >"$S/vmm.log" 2>&1 &
	wait_for "$S/vmm.ctl" || { notok "minivmm did not resume"; cat "$S/vmm.log"; return; }
	sleep 1
	st=$(send status)
	echo "# $st"
	continued "$st"
	grep -q "checks    counters continued; guest checksum .* ok; RAM pattern ok" "$S/vmm.log" &&
		ok "and the guest continues from the good copy: checksum and RAM pattern ok" ||
		{ notok "the guest from the good copy"; sed 's/^/#   /' "$S/vmm.log"; }
	send quit >/dev/null
	wait "$!"
}

if [ ! -e /dev/liveupdate ]; then
	echo "SKIP: no /dev/liveupdate (the kernel needs LIVEUPDATE and kho=on liveupdate=on)"
	exit 77
fi
echo "# boot $N: $(cat /proc/cmdline)"
start_cprd() { # start_cprd SESSION
	printf 'live-update-agent = 1\nlive-update-session = %s\n' "$1" >"$S/cprd.conf"
	rm -f "$S/cprd.sock"
	: >"$S/cprd.log"
	"$CPRD" -v --policy "$TOP/policy/cprd.policy" --config "$S/cprd.conf" \
		--socket "$S/cprd.sock" >"$S/cprd.log" 2>&1 &
	cprd_pid=$!
	wait_for "$S/cprd.sock" || { notok "cprd did not start"; bye; }
	i=0 # the socket is bound before the session is restored
	while ! grep -q "ready: " "$S/cprd.log" && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	echo "# cprd ready $(cut -d' ' -f1 /proc/uptime) s after this kernel started"
}
rm -f "$S/vmm.ctl"
export CPRD_SOCKET=$S/cprd.sock
if [ "$N" = 3 ]; then
	boot3
	bye
fi
start_cprd cprd

if [ "$N" = 0 ]; then
	[ "$FAILURES" = 0 ] || no_luo
	"$VMM" --no-kvm --ram "$RAM" --control "$S/vmm.ctl" --kexec-append "$NEXT" \
		>"$S/vmm.log" 2>&1 &
	wait_for "$S/vmm.ctl" || { notok "minivmm did not start"; cat "$S/vmm.log"; bye; }
	sleep 1
else
	grep -q "bundle \"\\?minivmm-kexec\"\\? (.*) restored from live-update session" "$S/cprd.log" &&
		ok "cprd retrieved its session and rebuilt the bundle" ||
		notok "cprd did not restore the bundle"
	[ "$N" = 1 ] && [ "$FAILURES" != 0 ] && other_uid
	before=$(shmem_kib)
	"$VMM" --no-kvm --control "$S/vmm.ctl" --kexec-append "$NEXT" \
		--incoming-kexec minivmm-kexec >"$S/vmm.log" 2>&1 &
	wait_for "$S/vmm.ctl" || { notok "minivmm did not resume"; cat "$S/vmm.log"; bye; }
	sleep 1
	st=$(send status)
	echo "# $st"
	continued "$st"
	check "upgrades counted across the kexec ($(field upgrades "$st"))" \
		[ "$(field upgrades "$st")" = "$N" ]
	grep -q "checks    counters continued; guest checksum .* ok; RAM pattern ok" "$S/vmm.log" &&
		ok "checksum and the whole RAM pattern ok after the kexec" ||
		{ notok "checks after the kexec"; sed 's/^/#   /' "$S/vmm.log"; }
	# The RAM came back as the same pages: no second copy was made.
	after=$(shmem_kib) ram=$(($(field ram_mib "$st") * 1024))
	check "RAM not copied: Shmem $before -> $after kB with $ram kB of guest RAM" \
		[ $((after - before)) -lt $((ram / 4)) ]
	grep 'blackout\|pause' "$S/vmm.log" | sed 's/^/# /' | head -5
	if [ "$N" -ge "$ROUNDS" ] && [ "$FAILURES" = 0 ]; then
		send quit >/dev/null
		wait "$!"
		bye
	fi
fi

if [ "$N" -ge "$ROUNDS" ]; then
	NEXT="console=ttyS0 quiet panic=-1 no_timer_check kho=on liveupdate=on cpr_kexec=3"
fi
# The next kernel is loaded before the pause, as on a real host; its
# initramfs is this root filesystem (the files of $S, as they are now, too).
(cd / && find . -xdev ! -path ./tmp/next.cpio | cpio -o -H newc) >/tmp/next.cpio 2>/dev/null
kexec -s -l /boot/bzImage --initrd=/tmp/next.cpio --append "$NEXT" ||
	{ notok "kexec -s -l /boot/bzImage"; bye; }
ok "the next kernel loaded before the pause (kexec -s -l: kexec_file_load)"
r=$(send upgrade kexec)
echo "# $r"
case $r in
ok*) ok "the guest stored in cprd for the kexec" ;;
*) notok "upgrade kexec: $r"; bye ;;
esac
sleep 0.5
"$B/cprd/cprctl" --json show minivmm-kexec >"$S/show" 2>&1
tr -d ' \n' <"$S/show" | grep -q '"preserved":true' &&
	ok "the bundle is preserved in the live-update session" ||
	{ notok "the bundle is not preserved"; sed 's/^/#   /' "$S/show"; }
echo "# Shmem before the kexec: $(shmem_kib) kB"
if [ "$N" -ge "$ROUNDS" ]; then
	forge
	kill -9 "$cprd_pid"
	ok "cprd killed (SIGKILL) before the kexec"
	sleep 0.2
	forge_session
fi

[ "$rc" = 0 ] || bye # (a failure now would not reach the next boot's status)
sync
kexec -e
notok "kexec -e returned"
bye
