# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python writer of cpr-state(5) streams against libcpr's reader and writer:
CRC32C vectors, byte-exact golden streams, cprdump --check, cprgen, and the
schema of every level."""

import glob
import json
import os
import subprocess
import warnings

from cprdtest import CPRDUMP, CPRGEN, GOLDEN, TOP_SRCDIR, TestCase, with_crc

import cprd_client
from cprd_client import (EncodeError, FdKind, FdRecord, PrivateRecord, RamBlock, State,
                         StreamWarning, crc32c, decode, encode)
from cprd_client import state as S


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def cprdump(data: bytes, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CPRDUMP, *args, "-"], input=data, capture_output=True)


def num(v: int | str) -> int:
    """A number as cprdump prints it: types, offsets and addresses in hex."""
    return int(v, 16) if isinstance(v, str) else v


def from_dump(dump: dict) -> State:
    """The State that cprdump's JSON describes."""
    h = dump["header"]
    st = State(producer="", libcpr_version=0, stream_id=bytes.fromhex(h["stream_id"]),
               generation=h["generation"], page_shift=h["page_shift"])
    for r in dump["records"]:
        name = r.get("type_name")
        if name == "PRODUCER":
            st.producer, st.vmm_version = r["name"], r["vmm_version"]
            st.libcpr_version = r["libcpr_version"]
        elif name == "FD":
            st.fds.append(FdRecord(r["name"], FdKind.from_label(r["kind"]), r["id"], r["slot"],
                                   r["must_flags"], r["hint_flags"]))
        elif name == "RAMBLOCK":
            st.ramblocks.append(RamBlock(
                r["idstr"], r["used_length"], r["max_length"], r["fd_index"], r["align"],
                num(r["host_addr"]), num(r["fd_offset"]), r["gmem_fd_ref"],
                num(r.get("gmem_offset", 0)),
                r["must_flags"], r["hint_flags"]))
        elif r.get("private"):
            st.private.append(PrivateRecord(num(r["type"]), bytes.fromhex(r["fixed_hex"] +
                                                                     r["var_hex"]),
                                            r["instance"]))
    return st


def level1_fixture() -> State:
    """tests/golden/level1.json, built with the Python API."""
    st = State(producer="fixture-vmm 1.0", vmm_version=0x10000, libcpr_version=0x100,
               stream_id=bytes.fromhex("5a173c9001020304deadbeeffeedface"), generation=7,
               page_shift=12)
    st.add_fd("pc.ram", FdKind.MEMFD, -1)
    st.add_fd("/rom@etc/acpi/tables", FdKind.MEMFD, -1)
    st.add_fd("0000:00:04.0_interrupt", FdKind.EVENTFD, 3)
    st.add_fd("chardev:serial0", FdKind.SOCKET, 0)
    st.ramblocks.append(RamBlock("pc.ram", 256 << 20, 256 << 20, 0, align=2 << 20,
                                 host_addr=0x7F1200000000, hint_flags=S.RB_HINT_DONTDUMP))
    st.ramblocks.append(RamBlock("/rom@etc/acpi/tables", 128 << 10, 2 << 20, 1,
                                 host_addr=0x7F1300000000,
                                 must_flags=S.RB_RESIZEABLE | S.RB_MAP_AT_ADDR))
    st.private.append(PrivateRecord(0x8001, b"rip=0xfff0 rflags=0x2 cr0=0x60000010"))
    return st


class TestCrc32c(TestCase):
    def test_crc32c_vectors(self):
        # RFC 3720 B.4 and the usual check value
        self.assertEqual(crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(crc32c(bytes(32)), 0x8A9136AA)
        self.assertEqual(crc32c(b"\xff" * 32), 0x62A8AB43)
        self.assertEqual(crc32c(bytes(range(32))), 0x46DD794E)
        self.assertEqual(crc32c(b""), 0)

    def test_crc32c_chains(self):
        data = os.urandom(1000)
        self.assertEqual(crc32c(data[300:], crc32c(data[:300])), crc32c(data))

    def test_crc32c_golden_headers(self):
        for path in glob.glob(os.path.join(GOLDEN, "*.cpr")):
            b = read(path)
            self.assertEqual(crc32c(b[:24] + bytes(4) + b[28:]),
                             int.from_bytes(b[24:28], "little"), path)


class TestGolden(TestCase):
    def test_golden_reencoded_byte_exact(self):
        paths = sorted(glob.glob(os.path.join(GOLDEN, "*.cpr")))
        self.assertGreaterEqual(len(paths), 3)
        for path in paths:
            with self.subTest(path=os.path.basename(path)):
                b = read(path)
                st = decode(b)
                self.assertEqual(encode(st, st.header.emit_level), b)

    def test_golden_decoded_as_cprdump_does(self):
        for path in sorted(glob.glob(os.path.join(GOLDEN, "*.cpr"))):
            with self.subTest(path=os.path.basename(path)):
                dump = json.loads(read(path[:-4] + ".json"))
                self.assertEqual(decode(read(path)), from_dump(dump))

    def test_golden_level1_from_api(self):
        golden = read(os.path.join(GOLDEN, "level1.cpr"))
        self.assertEqual(level1_fixture().encode(1), golden)


class TestCprdump(TestCase):
    def check(self, data: bytes, *args: str) -> dict:
        p = cprdump(data, "--check", "--json", *args)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        return json.loads(p.stdout)

    def test_encoder_named_fds_accepted(self):
        st = State(producer="python test")
        for i, kind in enumerate(FdKind):
            if kind is not FdKind.GUEST_MEMFD:
                st.add_fd(f"dev{i}", kind, i)
        for level in (1, 2, None):
            with self.subTest(level=level):
                out = self.check(encode(st, level))
                self.assertEqual(out["fds"], len(st.fds))
                self.assertEqual(out["emit_level"], level or S.LEVEL_MAX)
                self.assertEqual(out["producer"], "python test")

    def test_encoder_dump_matches_decode(self):
        st = level1_fixture()
        st.stream_id = os.urandom(16)
        data = encode(st, 2)
        p = cprdump(data, "--compact")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(from_dump(json.loads(p.stdout)), st)
        self.assertEqual(decode(data), st)

    def test_encoder_cprgen_same_bytes(self):
        """cprgen writes the same bytes from cprdump's JSON of our stream."""
        data = encode(level1_fixture(), 1)
        dump = cprdump(data).stdout
        gen = subprocess.run([CPRGEN], input=dump, capture_output=True)
        self.assertEqual(gen.returncode, 0, gen.stderr)
        self.assertEqual(gen.stdout, data)

    def test_encoder_empty_state(self):
        st = State(producer="")
        out = self.check(encode(st))
        self.assertEqual((out["fds"], out["ramblocks"], out["private"]), (0, 0, 0))

    def test_encoder_thp_dropped_for_level1(self):
        st = level1_fixture()
        st.ramblocks[0].hint_flags |= S.RB_HINT_THP
        self.assertEqual(self.check(encode(st, 2), "--max-level", "1")["min_reader_level"], 1)
        with self.assertWarns(StreamWarning) as w:
            data = encode(st, 1)
        self.assertIn("thp", str(w.warning))
        self.assertEqual(decode(data).ramblocks[0].hint_flags, S.RB_HINT_DONTDUMP)
        self.check(data, "--max-level", "1")

    def test_encoder_guest_memfd_needs_level2(self):
        st = level1_fixture()
        gmem = st.add_fd("gmem0", FdKind.GUEST_MEMFD)
        st.ramblocks[0].gmem_fd_ref = st.fds.index(gmem) + 1
        st.ramblocks[0].gmem_offset = 1 << 20
        with self.assertRaisesRegex(EncodeError, "required when used"):
            encode(st, 1)
        data = encode(st, 2)
        self.assertEqual(self.check(data)["min_reader_level"], 2)
        p = cprdump(data, "--check", "--max-level", "1")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"guest-memfd", p.stderr)

    def test_reader_refuses_what_decode_refuses(self):
        data = bytearray(encode(level1_fixture(), 1))
        data[-8] ^= 1  # END's record count
        for bad in (bytes(data), with_crc(data)):
            self.assertEqual(cprdump(bad, "--check").returncode, 1)
            with self.assertRaises(cprd_client.DecodeError):
                decode(bad)


class TestEncoderRefuses(TestCase):
    def test_bad_names(self):
        for name in ("", "a b", 'q"', "q'", "back\\slash", "x" * 256, "é"):
            with self.subTest(name=name), self.assertRaises(EncodeError):
                encode(State(fds=[FdRecord(name)]))

    def test_bad_values(self):
        cases = [State(fds=[FdRecord("a", kind=42)]),
                 State(fds=[FdRecord("a", id=1 << 31)]),
                 State(private=[PrivateRecord(0x10, b"")]),
                 State(private=[PrivateRecord(0x8000, bytes(70000))]),
                 State(producer="x" * 129),
                 State(stream_id=b"short"),
                 State(page_shift=11),
                 State(ramblocks=[RamBlock("r", -1, 4096, 0)])]
        for st in cases:
            with self.subTest(st=st), self.assertRaises(EncodeError):
                encode(st)
        with self.assertRaises(EncodeError):
            encode(State(), 3)

    def test_no_warning_when_nothing_dropped(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            encode(level1_fixture(), 1)


class TestSchema(TestCase):
    """The writer's layouts are those of the sealed schema of each level."""

    LAYOUTS = {"PRODUCER": S.PRODUCER_LAYOUT, "FD": S.FD_LAYOUT,
               "RAMBLOCK": S.RAMBLOCK_LAYOUT, "END": S.END_LAYOUT}
    TYPES = {"END": S.REC_END, "PRODUCER": S.REC_PRODUCER, "FD": S.REC_FD,
             "RAMBLOCK": S.REC_RAMBLOCK}

    def test_schema_matches(self):
        for level in (1, 2):
            schema = json.loads(read(os.path.join(TOP_SRCDIR, "libcpr",
                                                  f"schema-level{level}.json")))
            self.assertEqual(schema["header_size"], S.HEADER_SIZE)
            self.assertEqual(schema["header_size"], S.HEADER_LAYOUT.size)
            self.assertEqual(schema["record_header_size"], S.RECORD_LAYOUT.size)
            kinds = {k["name"]: (k["value"], k["level"]) for k in schema["fd_kinds"]}
            self.assertEqual(kinds, {k.label: (k.value, k.level) for k in FdKind
                                     if k.level <= level})
            for r in schema["records"]:
                with self.subTest(level=level, record=r["name"]):
                    self.assertEqual(self.TYPES[r["name"]], r["type"])
                    self.assertEqual(self.LAYOUTS[r["name"]].size >= r["fixed_len"], True)
                    if r["name"] == "RAMBLOCK":
                        self.assertEqual(S.RAMBLOCK_FIXED[level], r["fixed_len"])
                    self.check_fields(r, level)

    FIELDS = {"PRODUCER": ["libcpr_version", "vmm_version", "name_len"],
              "FD": ["slot", "kind", "name_len", "id", "must_flags", "hint_flags"],
              "RAMBLOCK": ["align", "used_length", "max_length", "host_addr", "fd_offset",
                           "fd_index", "gmem_fd_ref", "must_flags", "hint_flags", "idstr_len",
                           "gmem_offset"],
              "END": ["record_count"]}

    def check_fields(self, r: dict, level: int) -> None:
        """Each field's bytes, set alone, land where the schema says."""
        layout, order = self.LAYOUTS[r["name"]], self.FIELDS[r["name"]]
        self.assertEqual(len(order), len(layout.unpack(bytes(layout.size))))
        known = [f for f in r["fields"] if f["kind"] != "reserved"]
        for f in known:
            values = [0] * len(order)
            values[order.index(f["name"])] = 1
            self.assertEqual(layout.pack(*values).index(1), f["offset"], f["name"])
        if level == S.LEVEL_MAX:
            self.assertEqual(sorted(f["name"] for f in known), sorted(order))
