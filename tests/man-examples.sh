#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every C example in a man page compiles, warning-free, against the public
# headers of this tree: the pages cannot drift from the API they show.
. "${top_srcdir:-.}/tests/lib.sh"
cc=${CPR_CC:-cc}
n=0
for m in "$top_srcdir"/man/*.[1-8]; do
	# the .Bd -literal blocks that include a libcpr header, roff escapes undone
	awk -v out="$T/ex" '
		/^\.Bd -literal/ { inblk = 1; buf = ""; next }
		/^\.Ed/ && inblk {
			inblk = 0
			if (buf ~ /#include <cpr\//) { k++; f = out "-" k ".c"; printf "%s", buf > f; close(f) }
			next
		}
		inblk { gsub(/\\e/, "\\"); gsub(/\\&/, ""); gsub(/\\-/, "-"); buf = buf $0 "\n" }
	' "$m"
	for c in "$T"/ex-*.c; do
		[ -e "$c" ] || continue
		n=$((n + 1))
		# shellcheck disable=SC2086
		if $cc -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -Wno-unused-parameter \
			-I"$top_srcdir/include" -fsyntax-only "$c" 2> "$T/cc.err"; then
			ok
		else
			not_ok "$(basename "$m"): example $(basename "$c" .c) does not compile: $(cat "$T/cc.err")"
		fi
		rm -f "$c"
	done
done
[ "$n" -gt 0 ] || not_ok "no C example found in man/"
echo "$n examples"
finish
