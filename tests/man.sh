#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every man page is mandoc-lint clean; an alias page is the single line
# ".so manN/page.N" naming a page that exists.
. "${top_srcdir:-.}/tests/lib.sh"
if ! command -v mandoc >/dev/null; then
	echo "SKIP: mandoc is not installed"
	exit 77
fi
for m in "$top_srcdir"/man/*.[1-8]; do
	so=$(sed -n '1s/^\.so man[1-8]\/\([^/ ]*\)$/\1/p' "$m")
	if [ -n "$so" ] && [ "$(wc -l <"$m")" -eq 1 ]; then
		if [ -f "$top_srcdir/man/$so" ]; then ok; else not_ok "$m: alias of missing $so"; fi
		continue
	fi
	if out=$(mandoc -T lint -W warning "$m" 2>&1) && [ -z "$out" ]; then ok; else not_ok "$m: $out"; fi
done
finish
