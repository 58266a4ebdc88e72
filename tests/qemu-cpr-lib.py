# SPDX-License-Identifier: LGPL-2.1-or-later
"""QEMU CPR streams for the tests: the golden capture's bytes rewritten into
the other shapes the decoder knows (the cpr-exec memfd, the vfio subsection
of a stub build and of a VFIO build), and broken variants of each."""
import struct
import sys

SUB = b"\x05\x15CprState/vfio devices\x00\x00\x00\x01"


def entries(fds, exec_fds=None):
    """The fd list: (name, id) pairs, each fd a marker or a be32 number."""
    out = b""
    for i, (name, id_) in enumerate(fds):
        n = name.encode() + b"\0"
        out += b"\x01" + struct.pack(">I", len(n)) + n + struct.pack(">i", id_)
        out += b"\x20" if exec_fds is None else struct.pack(">i", exec_fds[i])
    return out + b"\x00"


def vfio(devs):
    out = SUB
    for name, devid, ioas, hwpt in devs:
        n = name.encode() + b"\0"
        out += b"\x01" + struct.pack(">I", len(n)) + n + struct.pack(">iII", devid, ioas, hwpt)
    return out + b"\x00"


HDR = b"QCPR\x00\x00\x00\x01"
FDS = [("ram0", 0), ("0000:00:04.0_kvm_interrupt", 3)]
SHAPES = {
    "exec": HDR + entries(FDS, [5, 17]),
    "stub": HDR + entries(FDS) + SUB,
    "vfio": HDR + entries(FDS) + vfio([("0000:00:04.0", 1, 2, 3)]),
    "exec-vfio": HDR + entries(FDS, [5, 17]) + vfio([("a", 1, 2, 3), ("b", -1, 0, 0)]),
    "empty": HDR + b"\x00",
}
BROKEN = {
    # name: (bytes, text the error must contain)
    "bad-magic": (b"QCPX" + SHAPES["stub"][4:], "bad magic"),
    "bad-version": (b"QCPR\x00\x00\x00\x02" + SHAPES["stub"][8:], "offset 0x4: unsupported version 2"),
    "trailing": (SHAPES["vfio"] + b"\x00", "trailing"),
    "trailing-after-list": (HDR + entries(FDS) + b"\x07", "trailing"),
    "absurd-name-length": (HDR + b"\x01\x7f\xff\xff\xff", "offset 0x9: name length 2147483647"),
    "zero-name-length": (HDR + b"\x01\x00\x00\x00\x00", "name length 0"),
    "name-without-nul": (HDR + b"\x01\x00\x00\x00\x02ab\x00\x00\x00\x00\x20\x00", "NUL"),
    "bad-list-byte": (HDR + b"\x02", "offset 0x8: fd list: byte 0x02"),
    "bad-marker": (HDR + entries(FDS).replace(b"\x20", b"\x21", 1), "fd marker is 0x21"),
    "unknown-subsection": (HDR + b"\x00\x05\x03abc\x00\x00\x00\x01", "unknown subsection"),
    "bad-subsection-version": (HDR + b"\x00" + SUB[:-1] + b"\x02", "vfio subsection version 2"),
    "negative-exec-fd": (HDR + entries(FDS, [5, -1]), "fd number -1"),
}

if __name__ == "__main__":
    outdir = sys.argv[1]
    for name, data in SHAPES.items():
        open(f"{outdir}/{name}.qcpr", "wb").write(data)
    with open(f"{outdir}/broken.list", "w") as f:
        for name, (data, pattern) in BROKEN.items():
            open(f"{outdir}/broken-{name}.qcpr", "wb").write(data)
            fmt = "qemu-transfer" if name == "bad-marker" else "qemu"
            f.write(f"{name}\t{fmt}\t{pattern}\n")
