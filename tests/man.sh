#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every man page is mandoc-lint clean.
. "${top_srcdir:-.}/tests/lib.sh"
if ! command -v mandoc >/dev/null; then
	echo "SKIP: mandoc is not installed"
	exit 77
fi
for m in "$top_srcdir"/man/*.[1-8]; do
	if out=$(mandoc -T lint -W warning "$m" 2>&1) && [ -z "$out" ]; then ok; else not_ok "$m: $out"; fi
done
finish
