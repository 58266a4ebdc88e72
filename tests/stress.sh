#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The whole suite RUNS times in a row (default 5) in the normal and the
# ASan+UBSan build, with a CPU hog on every core beside it: no test may
# depend on timing or load.  Run from the top of the tree as
# tests/stress.sh [RUNS]; it builds what is missing.  Prints one line per
# run and "N passed, N failed" last; exits 1 when any run failed.
set -eu
cd "$(dirname "$0")/.."
. build-aux/bootstrap.sh
runs=${1:-5}
LOGS=_build-logs/stress
mkdir -p "$LOGS"

cpr_build _build >"$LOGS/build.log" 2>&1 || { tail -30 "$LOGS/build.log"; exit 1; }
cpr_build _build-asan --enable-sanitizers >"$LOGS/build-asan.log" 2>&1 ||
	{ tail -30 "$LOGS/build-asan.log"; exit 1; }

# Twice as many busy workers as cores, at the suite's own priority.
hogs=
hog() {
	if ! command -v stress-ng >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null 2>&1 || true
	fi
	n=$(($(nproc) * 2))
	if command -v stress-ng >/dev/null 2>&1; then
		stress-ng --cpu "$n" --quiet --timeout 4h &
		hogs=$!
		echo "load: stress-ng --cpu $n"
	else
		for _ in $(seq "$n"); do
			sh -c 'while :; do :; done' &
			hogs="$hogs $!"
		done
		echo "load: $n busy shell loops"
	fi
}
trap 'kill $hogs 2>/dev/null || true' EXIT INT TERM
hog

pass=0 fail=0
for dir in _build _build-asan; do
	i=1
	while [ "$i" -le "$runs" ]; do
		log=$LOGS/$(basename "$dir")-$i.log
		if $cpr_isolate make -C "$dir" -s -j"$(nproc)" check </dev/null >"$log" 2>&1; then
			pass=$((pass + 1))
			echo "$dir run $i: ok ($(grep '^# TOTAL' "$dir/test-suite.log"))"
		else
			fail=$((fail + 1))
			echo "$dir run $i: FAILED"
			grep -E "^(FAIL|ERROR)" "$log" || tail -20 "$log"
			for f in "$dir"/tests/*.log; do
				grep -q "^# FAIL\|^not ok" "$f" 2>/dev/null || continue
				cp "$f" "$LOGS/$(basename "$dir")-$i-$(basename "$f")"
			done
		fi
		i=$((i + 1))
	done
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
