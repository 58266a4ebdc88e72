#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cprctl policy check / dump: output, --json, exit status 0, 1, 100.
set -u

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
cprctl=$top_builddir/cprd/cprctl
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0

# expect STATUS CMD...: run CMD, stdout to $tmp/out, stderr to $tmp/err.
expect() {
	want=$1
	shift
	"$@" >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ "$got" != "$want" ]; then
		echo "FAIL: exit $got, expected $want: $*" >&2
		sed 's/^/  stderr: /' "$tmp/err" >&2
		fail=1
	fi
}

# grep_in FILE PATTERN: fail unless PATTERN (fixed string) is in FILE.
grep_in() {
	if ! grep -qF -- "$2" "$1"; then
		echo "FAIL: '$2' not in $(basename "$1"):" >&2
		sed 's/^/  /' "$1" >&2
		fail=1
	fi
}

for p in cprd vmm-exec vmm-transfer; do
	expect 0 "$cprctl" policy check "$top_srcdir/policy/$p.policy"
	grep_in "$tmp/out" "$p.policy: valid: default"
	expect 0 "$cprctl" --json policy check "$top_srcdir/policy/$p.policy"
	grep_in "$tmp/out" '"valid":true'
	expect 0 "$cprctl" policy dump "$top_srcdir/policy/$p.policy"
	grep_in "$tmp/out" "# pseudo filter code start"
	expect 0 "$cprctl" policy dump --bpf "$top_srcdir/policy/$p.policy"
	size=$(wc -c <"$tmp/out")
	if [ "$size" -lt 64 ] || [ $((size % 8)) != 0 ]; then
		echo "FAIL: $p: BPF of $size bytes" >&2
		fail=1
	fi
done
expect 0 "$cprctl" policy dump --pfc "$top_srcdir/policy/cprd.policy"
grep_in "$tmp/out" 'filter for syscall "memfd_create"'

# Invalid: the message names file, line and column; exit 1.
bad=$top_srcdir/tests/policy/bad-unknown-syscall.policy
expect 1 "$cprctl" policy check "$bad"
grep_in "$tmp/err" ":3:7: unknown system call 'reed'"
expect 1 "$cprctl" policy check --json "$bad"
grep_in "$tmp/out" '"valid":false'
grep_in "$tmp/out" '"errno":"EINVAL","line":3,"column":7'
expect 1 "$cprctl" policy dump "$bad"
grep_in "$tmp/err" ":3:7:"
expect 1 "$cprctl" policy check "$tmp/missing.policy"
grep_in "$tmp/err" "missing.policy: No such file or directory"
expect 1 "$cprctl" --json policy check "$tmp/missing.policy"
grep_in "$tmp/out" '"errno":"ENOENT","line":0,"column":0'

# Usage errors: 100.
expect 100 "$cprctl"
expect 100 "$cprctl" frobnicate
expect 100 "$cprctl" policy
expect 100 "$cprctl" policy frobnicate
expect 100 "$cprctl" policy check
expect 100 "$cprctl" policy check a b
expect 100 "$cprctl" policy check --bpf "$top_srcdir/policy/cprd.policy"
expect 100 "$cprctl" policy dump --json "$top_srcdir/policy/cprd.policy"
expect 100 "$cprctl" --frobnicate
grep_in "$tmp/err" "Try 'cprctl --help'."

# Help and version: 0.
expect 0 "$cprctl" --help
grep_in "$tmp/out" "cprctl [--json] policy dump FILE [--pfc|--bpf]"
expect 0 "$cprctl" policy --help
grep_in "$tmp/out" "policy check FILE"
expect 0 "$cprctl" --version
grep_in "$tmp/out" "cprctl "

exit $fail
