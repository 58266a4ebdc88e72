#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# libcpr's ABI is the one recorded in libcpr/libcpr.abi (Debian's
# abigail-tools: abidw, over the public headers only): any change to an
# exported function or type fails here until the baseline is updated on
# purpose, with "make abi-update", in the same commit as the change.
set -eu
: "${top_builddir:=.}" "${top_srcdir:=.}"
so=$top_builddir/libcpr/.libs/libcpr.so
base=$top_srcdir/libcpr/libcpr.abi
command -v abidiff >/dev/null || { echo "SKIP: abidiff not installed (Debian's abigail-tools)"; exit 77; }
[ -e "$so" ] || { echo "SKIP: this build has no shared libcpr"; exit 77; }
if ldd "$so" | grep -q libasan; then
	echo "SKIP: a sanitizer build's libcpr is not the one whose ABI is recorded"
	exit 77
fi
# The seal: soname 1, every exported symbol in LIBCPR_1 or a later node.
if command -v readelf >/dev/null; then
	soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
	if [ "$soname" != libcpr.so.1 ]; then
		echo "FAIL: the soname is '$soname', sealed as libcpr.so.1"
		exit 1
	fi
	outside=$(readelf --dyn-syms -W "$so" |
		awk '$7 != "UND" && $5 == "GLOBAL" && $8 !~ /^(.*@@?)?LIBCPR_1(\.[0-9]+)*$/ { print $8 }')
	if [ -n "$outside" ]; then
		echo "FAIL: exported outside LIBCPR_1:" $outside
		exit 1
	fi
fi
rc=0
abidiff --headers-dir2 "$top_srcdir/include/cpr" "$base" "$so" > abi.diff 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
	cat abi.diff
	echo "FAIL: libcpr's ABI differs from libcpr/libcpr.abi (abidiff exit $rc)."
	echo "If the change is on purpose: make abi-update, and commit the new baseline with it."
	exit 1
fi
rm -f abi.diff
echo "ok: the ABI of $(basename "$(readlink -f "$so")") is libcpr/libcpr.abi"
