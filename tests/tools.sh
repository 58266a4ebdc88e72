#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cprdump and cprgen: exit codes, and deliberately broken streams built from JSON.
. "${top_srcdir:-.}/tests/lib.sh"
G=$top_srcdir/tests/golden/level1.cpr

expect_exit 100 "cprdump bad option" "$CPRDUMP" --bogus
expect_exit 100 "cprdump bad level" "$CPRDUMP" --max-level 9 "$G"
expect_exit 100 "cprdump missing file" "$CPRDUMP" "$T/nonexistent"
expect_exit 0 "cprdump --help" "$CPRDUMP" --help
expect_exit 100 "cprgen bad option" "$CPRGEN" --bogus
echo '{"records": [' >"$T/bad.json"
expect_exit 1 "cprgen invalid JSON" "$CPRGEN" "$T/bad.json"
echo '{"records": [{"type": "NOPE"}]}' >"$T/bad.json"
expect_exit 1 "cprgen unknown record name" "$CPRGEN" "$T/bad.json"
head -c 100 "$G" >"$T/short.cpr"
expect_exit 1 "cprdump truncated" "$CPRDUMP" --check "$T/short.cpr"
expect_grep "total_len" "$T/err" "truncated stream error"
expect_exit 1 "cprdump empty" "$CPRDUMP" --check /dev/null
expect_exit 1 "cprdump --json error" "$CPRDUMP" --check --json "$T/short.cpr"
expect_grep '"valid": false' "$T/out" "JSON error output"

# A minimal valid stream, then one broken variant per case: edit the JSON the
# way a test author would and check the refusal.
cat >"$T/base.json" <<'J'
{ "header": { "emit_level": 2 },
  "records": [
    { "type": "PRODUCER", "name": "tools-test" },
    { "type": "FD", "slot": 0, "kind": "memfd", "id": -1, "name": "ram0" },
    { "type": "FD", "slot": 1, "kind": "eventfd", "id": 0, "name": "irq0" },
    { "type": "RAMBLOCK", "align": 4096, "used_length": 1048576, "max_length": 1048576, "fd_index": 0, "idstr": "ram0" },
    { "type": "END" } ] }
J
expect_exit 0 "cprgen base" "$CPRGEN" -o "$T/base.cpr" "$T/base.json"
expect_exit 0 "base stream valid" "$CPRDUMP" --check "$T/base.cpr"

# case NAME EXIT PATTERN PYTHON-EXPRESSION-EDITING-d
broken() {
	name=$1 want=$2 pat=$3 edit=$4
	python3 -c "
import json,sys
d=json.load(open('$T/base.json'))
r=d['records']
$edit
json.dump(d,open('$T/case.json','w'))"
	if ! "$CPRGEN" -o "$T/case.cpr" "$T/case.json" 2>"$T/err"; then not_ok "$name: cprgen failed: $(cat "$T/err")"; return; fi
	expect_exit "$want" "$name" "$CPRDUMP" --check "$T/case.cpr"
	[ -z "$pat" ] || expect_grep "$pat" "$T/err" "$name"
}
broken "bad crc" 1 "CRC32C" "d['header']['crc32c']=1234"
broken "bad total_len" 1 "total_len" "d['header']['total_len']=64"
broken "non-zero padding" 1 "padding" "r[0]['pad_hex']='000000000001'"
broken "body_len too long" 1 "runs past" "r[1]['body_len']=4000"
broken "fixed_len too short" 1 "shorter than" "r[1]['fixed_len']=8; r[1]['var_hex']='00'*16+'72616d30'"
broken "grown fixed part, zero tail" 0 "" "r[1]['fixed_len']=32; r[1]['fixed_tail_hex']='0000000000000000'"
broken "grown fixed part, non-zero tail" 1 "offset 31 unknown" "r[1]['fixed_len']=32; r[1]['fixed_tail_hex']='0000000000000001'"
broken "unknown must flag" 1 "requires flag" "r[3]['must_flags']=1<<20"
broken "unknown hint flag" 0 "" "r[3]['hint_flags']=1<<20"
broken "dangling fd reference" 1 "fd_index" "r[3]['fd_index']=7"
broken "reference to wrong kind" 1 "fd_index" "r[3]['fd_index']=1"
broken "duplicate fd key" 1 "appears twice" "r[2]['name']='ram0'; r[2]['id']=-1"
broken "duplicate idstr" 1 "appears twice" "r.insert(4, dict(r[3])); r[4]['fd_offset']=1048576"
broken "duplicate slot" 1 "reuses slot" "r[2]['slot']=0"
broken "unknown critical record" 1 "unknown critical record type 0x300" "r.insert(3, {'type': 768, 'critical': True, 'fixed_hex': '', 'var_hex': 'aa'})"
broken "unknown optional record" 0 "" "r.insert(3, {'type': 768, 'critical': False, 'fixed_hex': '', 'var_hex': 'aa'})"
broken "private record critical" 1 "CRITICAL" "r.insert(3, {'type': 32769, 'critical': True, 'fixed_hex': '', 'var_hex': 'aa'})"
broken "END missing" 1 "without an END" "r.pop()"
broken "END not last" 1 "follow the END" "r.insert(2, {'type': 'END'})"
broken "two ENDs" 1 "follow the END" "r.append({'type': 'END'})"
broken "END count wrong" 1 "END counts" "r[4]['record_count']=9"
broken "bytes after END" 1 "total_len\|follow" "d['trailing_hex']='0000000000000000'"
broken "string with NUL" 1 "not allowed" "r[1]['name']=None; r[1]['var_hex']='72006d30'; r[1]['name_len']=4; del r[1]['name']"
broken "name too long" 1 "outside" "r[1]['name']='x'*256"
broken "reserved header field" 1 "reserved header" "d['header']['header_flags']=1"
broken "unknown incompat feature" 1 "incompatible features" "d['header']['incompat_features']=4"
broken "unknown compat feature" 0 "" "d['header']['compat_features']=4"
broken "longer header, zero tail" 0 "" "d['header']['header_len']=88; d['header']['header_tail_hex']='00'*8"
broken "longer header, data in tail" 1 "beyond byte 80" "d['header']['header_len']=88; d['header']['header_tail_hex']='00'*7+'01'"
broken "truncated stream" 1 "total_len" "d['truncate']=120"
broken "END grown" 1 "END record is malformed" "r[4]['fixed_len']=16; r[4]['fixed_hex']='04000000'+'00'*12"
broken "fixed part ends inside a field" 1 "ends inside a field" "r[3]['fixed_len']=66; r[3]['fixed_hex']='00'*66"
GM="r.insert(3, {'type': 'FD', 'slot': 2, 'kind': 'guest-memfd', 'id': 0, 'name': 'gmem0'}); r[4]['gmem_fd_ref']=3"
broken "guest_memfd block" 0 "" "$GM"
broken "level-1 stream using guest_memfd" 1 "declares level 1 but uses 'guest-memfd'" "$GM; d['header']['emit_level']=1"
broken "level-1 stream using gmem_offset" 1 "declares level 1 but uses 'gmem_offset'" "d['header']['emit_level']=1; r[3]['fixed_len']=72; r[3]['gmem_offset']=4096"
broken "gmem_offset overflows" 1 "gmem_offset" "$GM; r[4]['gmem_offset']=2**64-4096"
broken "gmem_offset unaligned" 1 "gmem_offset is not a page multiple" "$GM; r[4]['gmem_offset']=512"
broken "gmem extents overlap" 1 "same guest_memfd" "$GM; r.insert(5, dict(r[4])); r[5]['idstr']='ram1'; r[5]['fd_offset']=1048576"
broken "gmem extents apart" 0 "" "$GM; r.insert(5, dict(r[4])); r[5]['idstr']='ram1'; r[5]['fd_offset']=1048576; r[5]['gmem_offset']=1048576"
broken "hugetlb fd_offset" 1 "fd_offset" "r[3]['must_flags']=2; r[3]['align']=2097152; r[3]['used_length']=r[3]['max_length']=2097152; r[3]['fd_offset']=4096"

# --force after a CRC mismatch: the records are decoded, the failure is said
# on stderr and in "refused", the exit is 1, and cprgen gives the bytes back.
python3 -c "
import json; d=json.load(open('$T/base.json')); d['header']['crc32c']=1234
json.dump(d, open('$T/badcrc.json','w'))"
"$CPRGEN" -o "$T/badcrc.cpr" "$T/badcrc.json"
expect_exit 1 "bad crc refused" "$CPRDUMP" "$T/badcrc.cpr"
expect_exit 1 "bad crc, --force" "$CPRDUMP" --force "$T/badcrc.cpr"
expect_grep "CRC32C check FAILED" "$T/err" "--force says the CRC failed"
expect_grep '"type_name": "RAMBLOCK"' "$T/out" "--force decodes the records"
expect_grep '"refused"' "$T/out" "--force reports the refusal"
expect_grep '"offset": "0x18"' "$T/out" "error offset in hex"
expect_grep '"crc32c": 1234' "$T/out" "the stream's own CRC kept"
"$CPRGEN" -o "$T/badcrc.again" "$T/out"
cmp -s "$T/badcrc.cpr" "$T/badcrc.again" && ok || not_ok "cprgen(cprdump --force s) != s"
expect_exit 0 "hex types and offsets" "$CPRDUMP" --compact "$T/base.cpr"
expect_grep '"type":"0x0010","type_name":"FD"' "$T/out" "type in hex"
expect_grep '"fd_offset":"0x0"' "$T/out" "offset in hex"
echo '{"records": [{"type": "0xzz"}]}' >"$T/bad.json"
expect_exit 1 "cprgen bad hex type" "$CPRGEN" "$T/bad.json"

# Every count limit, seen by the reader: one record more than allowed.
many() {
	python3 -c "
import json
kind, n = '$1', $2
r=[{'type': 'PRODUCER', 'name': 'limits'}]
if kind == 'FD':
    r += [{'type': 'FD', 'slot': i, 'kind': 'eventfd', 'id': i, 'name': 'e'} for i in range(n)]
elif kind == 'RAMBLOCK':
    r.append({'type': 'FD', 'slot': 0, 'kind': 'memfd', 'id': -1, 'name': 'm'})
    r += [{'type': 'RAMBLOCK', 'align': 4096, 'used_length': 4096, 'max_length': 4096, 'fd_offset': 4096*i, 'idstr': 'b%d' % i} for i in range(n)]
else:
    r += [{'type': 32768, 'instance': i, 'fixed_hex': '', 'var_hex': ''} for i in range(n)]
r.append({'type': 'END'})
json.dump({'records': r}, open('$T/many.json', 'w'))"
	"$CPRGEN" -o "$T/many.cpr" "$T/many.json"
}
many FD 16384; expect_exit 0 "16384 FD records" "$CPRDUMP" --check "$T/many.cpr"
many FD 16385; expect_exit 1 "16385 FD records" "$CPRDUMP" --check "$T/many.cpr"
expect_grep "more than 16384 FD records" "$T/err" "FD limit"
many RAMBLOCK 1024; expect_exit 0 "1024 RAMBLOCK records" "$CPRDUMP" --check "$T/many.cpr"
many RAMBLOCK 1025; expect_exit 1 "1025 RAMBLOCK records" "$CPRDUMP" --check "$T/many.cpr"
expect_grep "more than 1024 RAMBLOCK records" "$T/err" "RAMBLOCK limit"
many PRIVATE 4096; expect_exit 0 "4096 private records" "$CPRDUMP" --check "$T/many.cpr"
many PRIVATE 4097; expect_exit 1 "4097 private records" "$CPRDUMP" --check "$T/many.cpr"
expect_grep "more than 4096 VMM-private records" "$T/err" "private limit"

# A JSON null where a string or hex belongs: refused, never a crash.
for j in '{"records":[{"type":"END","var_hex":null}]}' '{"records":[{"type":"FD","name":null}]}' \
	'{"header":{"magic":null},"records":[]}'; do
	echo "$j" >"$T/null.json"
	expect_exit 1 "cprgen null: $j" "$CPRGEN" -o "$T/null.cpr" "$T/null.json"
done
finish
