#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Cross-build hand-offs: minivmm of an older commit of this repository
# (tests/cross-build.commits, built by build-aux/old-build.sh and cached by
# hash) and minivmm of this tree hand the guest to each other, old -> new and
# new -> old, by exec and by transfer.  Each pair either works (counters
# continue, static checksum ok, guest RAM the same memfd inode) or is
# refused before the pause with a reason that names what refused, while the
# guest keeps running in the old VMM.  A pair that loses the guest fails.
# Prints a table of pair -> outcome.
#
# Skips (77, with the reason) when the source tree has no git history (a
# release tarball, make distcheck) or an old build cannot be configured on
# this machine (a tool or library outside the tree missing).
. "${top_srcdir:-.}/tests/lib.sh"
fds_open() { find /proc/$$/fd -mindepth 1 -printf '%f %l\n' | grep -v ' pipe:' | sort; }
fds_before=$(fds_open)

new=$top_builddir/examples/minivmm/minivmm
[ -x "$new" ] || { echo "minivmm not built: $new"; exit 1; }
commits=$top_srcdir/tests/cross-build.commits

cleanup() {
	for s in "$T"/*/c.sock; do
		[ -S "$s" ] || continue
		p=$("$new" --control "$s" --send status 2>/dev/null | field pid) || true
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT

field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
ctl() { "$new" --control "$sock" --send "$*"; }

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
		cmp_all lt "$1" "$(ctl status 2>/dev/null | field counters)" && return 0
		sleep 0.05
	done
	return 1
}

# The old builds, first: a skip or a broken build ends the test here.
olds=
while read -r c why; do
	case $c in '' | '#'*) continue ;; esac
	[ -n "$why" ] || { echo "FAIL: $commits: $c has no reason"; exit 1; }
	dir=$("$top_srcdir/build-aux/old-build.sh" "$top_srcdir" "$c" 2>"$T/build.err" </dev/null)
	rc=$?
	case $rc in
	0) olds="$olds $c:$dir/examples/minivmm/minivmm" ;;
	77) echo "SKIP: cross-build: $(tail -1 "$T/build.err")"; exit 77 ;;
	*) cat "$T/build.err"; echo "FAIL: the build of $c failed"; exit 1 ;;
	esac
done <"$commits"
[ -n "$olds" ] || { echo "FAIL: no commit in $commits"; exit 1; }

engine=kvm
if ! why=$("$top_builddir/tests/helper-probe" kvm); then
	engine=interp
	echo "# the interpreter: $why"
fi

# pair FROM TO MODE LABEL: one hand-off, judged; its outcome in $outcome.
pair() {
	from=$1 to=$2 mode=$3
	d=$(mktemp -d "$T/pair.XXXXXX")
	sock=$d/c.sock
	set -- --ram 64M --vcpus 2 --control "$sock" --run-dir "$d" --quiet --exit-after 60
	[ "$engine" = kvm ] || set -- "$@" --no-kvm
	"$from" "$@" >"$d/log" 2>&1 &
	for _ in $(seq 100); do
		[ -S "$sock" ] && ctl status >/dev/null 2>&1 && break
		sleep 0.05
	done
	st=$(ctl status) || { outcome="FAIL: $from did not come up"; return; }
	wait_progress "$(echo "$st" | field counters)" || {
		outcome="FAIL: the guest of $from does not run"; return; }
	st=$(ctl status)
	out=$(ctl upgrade "$mode" "$to" 2>&1)
	now=$(ctl status 2>/dev/null) || {
		outcome="FAIL: guest lost (no VMM answers after: $out)"; sed 's/^/  vmm: /' "$d/log"; return; }
	case $out in
	ok*) judge_ok ;;
	refused*) judge_refused ;;
	*) outcome="FAIL: unexpected reply: $out" ;;
	esac
	case $outcome in FAIL*) sed 's/^/  vmm: /' "$d/log" ;; esac
	ctl quit >/dev/null 2>&1
}

judge_ok() {
	before=$(echo "$out" | field before) after=$(echo "$out" | field after)
	if [ "$(echo "$out" | field check)" != ok ]; then
		outcome="FAIL: checks after the hand-off: $out"
	elif [ "$(echo "$out" | field old_ino)" != "$(echo "$out" | field ino)" ]; then
		outcome="FAIL: guest RAM is not the same memfd: $out"
	elif ! cmp_all le "$(echo "$st" | field counters)" "$before" ||
		! cmp_all lt "$before" "$after"; then
		outcome="FAIL: counters did not continue: $out"
	elif [ "$(echo "$now" | field checksum)" != ok ]; then
		outcome="FAIL: static checksum changed: $now"
	elif ! wait_progress "$after"; then
		outcome="FAIL: the guest stopped after the hand-off: $now"
	else
		outcome="works (pause $(($(echo "$out" | field pause_ns) / 1000)) us, pid $(echo "$out" | field old_pid) -> $(echo "$out" | field pid))"
	fi
}

# Refused: before the pause (the old VMM still runs the guest, no upgrade
# counted), naming what refused: the target binary, or the element.
judge_refused() {
	name=minivmm@$c
	[ "$to" = "$new" ] && name=minivmm@tree
	reason=$(echo "${out#*reason=}" | sed "s|$to|$name|g")
	if [ "$(echo "$now" | field pid)" != "$(echo "$st" | field pid)" ] ||
		[ "$(echo "$now" | field upgrades)" != "$(echo "$st" | field upgrades)" ]; then
		outcome="FAIL: refused, but the guest moved: $now"
	elif [ "$(echo "$now" | field checksum)" != ok ]; then
		outcome="FAIL: refused, and the static checksum changed: $now"
	elif ! wait_progress "$(echo "$now" | field counters)"; then
		outcome="FAIL: refused, and the guest does not run: $now"
	elif ! echo "$reason" | grep -q -e "$name" -e record -e level -e token; then
		outcome="FAIL: the refusal names neither the target nor an element: $out"
	elif grep -q -i "roll" "$d/log"; then
		outcome="rolled back: $reason"
	else
		outcome="refused before the pause: $reason"
	fi
}

t0=$(date +%s)
printf '%-8s %-7s %-8s  %s\n' commit way mode outcome >"$T/table"
for o in $olds; do
	c=${o%%:*} old=${o#*:}
	for mode in exec transfer; do
		for way in old-new new-old; do
			if [ $way = old-new ]; then pair "$old" "$new" $mode; else pair "$new" "$old" $mode; fi
			case $outcome in FAIL*) not_ok "$c $way $mode: $outcome" ;; *) ok ;; esac
			printf '%-8s %-7s %-8s  %.150s\n' "$c" $way $mode "$outcome" >>"$T/table"
		done
	done
done
echo "# cross-build hand-offs ($engine, $(($(date +%s) - t0)) s)"
cat "$T/table"
[ "$(fds_open)" = "$fds_before" ] && ok || not_ok "fds leaked: $(fds_open)"
finish
