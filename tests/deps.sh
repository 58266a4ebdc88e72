#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# libcpr's files depend on each other one way: derived from the objects
# (nm: which file defines each symbol, which files call it), the graph of
# "file A calls a function or uses data defined in file B" must have no
# cycle.  Each cycle found is listed with the symbols that close it.
set -eu
: "${top_builddir:=.}"
objs=$(ls "$top_builddir"/libcpr/.libs/libcpr_internal_la-*.o 2>/dev/null || true)
if [ -z "$objs" ]; then
	objs=$(ls "$top_builddir"/libcpr/libcpr_internal_la-*.o 2>/dev/null || true)
fi
[ -n "$objs" ] || { echo "SKIP: no libcpr objects under $top_builddir/libcpr"; exit 77; }
command -v nm >/dev/null || { echo "SKIP: nm not installed"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/cpr-deps.XXXXXX")
trap 'rm -rf "$T"' EXIT

# "file symbol" for every definition and every reference.
for o in $objs; do
	f=$(basename "$o" .o)
	f=${f#libcpr_internal_la-}.c
	nm -g "$o" | awk -v f="$f" '$1 == "U" { print f, $2 > "/dev/stderr"; next }
		NF == 3 && $2 ~ /[TDBRVW]/ { print f, $3 }' 2>>"$T/uses" >>"$T/defs"
done
# "user definer symbol" for every call across files.
awk 'NR == FNR { def[$2] = $1; next }
	($2 in def) && def[$2] != $1 { print $1, def[$2], $2 }' "$T/defs" "$T/uses" |
	sort -u >"$T/edges"
n_edges=$(cut -d' ' -f1,2 "$T/edges" | sort -u | wc -l)
cut -d' ' -f1,2 "$T/edges" | sort -u | tsort >/dev/null 2>"$T/tsort" || true
if grep -q loop "$T/tsort"; then
	echo "FAIL: libcpr's files import each other:"
	awk '/input contains a loop/ { if (n) print ""; n++; printf "  cycle:"; next }
		{ sub(/^tsort: /, ""); printf " %s", $0 } END { print "" }' "$T/tsort"
	# the calls along each pair of files in a cycle
	grep -v 'input contains a loop' "$T/tsort" | sed 's/^tsort: //' | sort -u >"$T/incycle"
	awk 'NR == FNR { in_[$1] = 1; next } ($1 in in_) && ($2 in in_) {
		printf "    %s -> %s: %s\n", $1, $2, $3 }' "$T/incycle" "$T/edges"
	exit 1
fi
echo "ok: $(echo "$objs" | wc -w) libcpr files, $n_edges dependencies between them, no cycle"
