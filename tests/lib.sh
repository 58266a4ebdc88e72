# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the shell tests: paths, a scratch dir, and counted assertions.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
CPRDUMP=$top_builddir/tools/cprdump
CPRGEN=$top_builddir/tools/cprgen
T=$(mktemp -d "${TMPDIR:-/tmp}/cpr-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }
not_ok() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect_exit CODE DESCRIPTION COMMAND...
expect_exit() {
	want=$1 desc=$2
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	if [ "$got" = "$want" ]; then ok; else not_ok "$desc: exit $got, want $want: $(cat "$T/err")"; fi
}

# expect_grep PATTERN FILE DESCRIPTION
expect_grep() {
	if grep -q -- "$1" "$2"; then ok; else not_ok "$3: '$1' not in $(cat "$2")"; fi
}

finish() {
	echo "$pass passed, $fail failed"
	[ "$fail" = 0 ]
}
