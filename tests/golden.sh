#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Golden streams: each is valid, decodes to the committed JSON, and
# cprgen(cprdump(s)) == s byte for byte.
. "${top_srcdir:-.}/tests/lib.sh"

for s in "$top_srcdir"/tests/golden/*.cpr; do
	name=$(basename "$s" .cpr)
	expect_exit 0 "$name: --check" "$CPRDUMP" --check "$s"
	"$CPRDUMP" "$s" >"$T/$name.json"
	if cmp -s "$T/$name.json" "$top_srcdir/tests/golden/$name.json"; then ok; else
		not_ok "$name: decodes differently from tests/golden/$name.json"
		diff "$top_srcdir/tests/golden/$name.json" "$T/$name.json" >&2
	fi
	"$CPRGEN" -o "$T/$name.again" "$T/$name.json"
	if cmp -s "$s" "$T/$name.again"; then ok; else not_ok "$name: cprgen(cprdump(s)) != s"; fi
	"$CPRDUMP" --compact "$s" | "$CPRGEN" >"$T/$name.pipe"
	if cmp -s "$s" "$T/$name.pipe"; then ok; else not_ok "$name: compact round trip differs"; fi
done

# Level-capped readers: the droppable hint is accepted, the live guest_memfd refused.
expect_exit 0 "level-1 reader, thp hint" "$CPRDUMP" --check --max-level 1 "$top_srcdir/tests/golden/level2-thp.cpr"
expect_exit 1 "level-1 reader, guest_memfd" "$CPRDUMP" --check --max-level 1 "$top_srcdir/tests/golden/level2-gmem.cpr"
expect_grep "guest-memfd" "$T/err" "refusal names the element"
expect_grep "fixture-vmm 1.0" "$T/err" "refusal names the producer"
finish
