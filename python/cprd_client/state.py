# SPDX-License-Identifier: LGPL-2.1-or-later
"""The cpr-state(5) stream: its constants and what a stream says.

A :class:`State` holds FD records, RAM blocks, VMM-private records and the
header values a writer chooses.  :func:`cprd_client.writer.encode` writes it
as libcpr's writer does; :func:`cprd_client.reader.decode` reads a stream
back.  The judge of a stream is libcpr's reader: ``cprdump --check``, or
the daemon when it seals a bundle.
"""

import enum
import os
import struct
from dataclasses import dataclass, field

LEVEL_MIN = 1
LEVEL_MAX = 2
"""The compatibility levels this writer and reader know."""

WRITER_VERSION = 0x000100
"""Written as PRODUCER ``libcpr_version`` (major<<16 | minor<<8 | patch):
the libcpr release whose format this writer implements, 0.1.0."""

MAGIC = bytes.fromhex("894350520d0a1a0a")
FORMAT_VERSION = 1
HEADER_SIZE = 80
RECORD_HEADER_SIZE = 16
RFLAG_CRITICAL = 0x0001

REC_END = 0x0000
REC_PRODUCER = 0x0001
REC_FD = 0x0010
REC_RAMBLOCK = 0x0020
REC_PRIVATE_FIRST = 0x8000
REC_PRIVATE_LAST = 0xFFFE

STREAM_MAX = 16 << 20
RECORD_MAX = 64 << 10
RECORDS_MAX = 65536
FDS_MAX = 16384
RAMBLOCKS_MAX = 1024
PRIVATE_MAX = 4096
NAME_MAX = 255
PRODUCER_MAX = 128

# RAMBLOCK flags: must-understand, then hints.
RB_RESIZEABLE = 1 << 0
RB_HUGETLB = 1 << 1
RB_MAP_AT_ADDR = 1 << 2
RB_HINT_DONTDUMP = 1 << 0
RB_HINT_THP = 1 << 1  # level 2, droppable

HEADER_LAYOUT = struct.Struct("<8sHHIQIIQQII16sIB3x")
RECORD_LAYOUT = struct.Struct("<IHHII")
PRODUCER_LAYOUT = struct.Struct("<IIH2x4x")
FD_LAYOUT = struct.Struct("<IHHiII4x")
RAMBLOCK_LAYOUT = struct.Struct("<QQQQQIIIIH6xQ")
END_LAYOUT = struct.Struct("<I4x")
RAMBLOCK_FIXED = {1: 64, 2: 72}
"""The length of the RAMBLOCK fixed part at each level."""


class FdKind(enum.IntEnum):
    """The kind an FD record states; :attr:`label` is its name in the format."""

    GENERIC = 1
    MEMFD = 2
    EVENTFD = 3
    SOCKET = 4
    VFIO_CDEV = 5
    VFIO_GROUP = 6
    VFIO_CONTAINER = 7
    IOMMUFD = 8
    GUEST_MEMFD = 9  # level 2, required when used

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @property
    def level(self) -> int:
        return 2 if self is FdKind.GUEST_MEMFD else 1

    @classmethod
    def from_label(cls, label: str) -> "FdKind":
        return cls[label.upper().replace("-", "_")]


class EncodeError(ValueError):
    """The state cannot be written (for this target level)."""


class DecodeError(ValueError):
    """The bytes are not a well-framed stream."""


class StreamWarning(UserWarning):
    """An element was dropped to write for an older target level."""


@dataclass
class FdRecord:
    """One preserved fd: its *name* and *id* (unique together), its kind,
    and its *slot*: the index in the bundle's fds (``None``: its index in
    :attr:`State.fds`)."""

    name: str
    kind: FdKind = FdKind.GENERIC
    id: int = 0
    slot: int | None = None
    must_flags: int = 0
    hint_flags: int = 0


@dataclass
class RamBlock:
    """One RAM block: *fd_index* names its memfd's FD record (an index in
    :attr:`State.fds`); *gmem_fd_ref* is 0 or that index + 1 of a
    guest-memfd record."""

    idstr: str
    used_length: int
    max_length: int
    fd_index: int
    align: int = 4096
    host_addr: int = 0
    fd_offset: int = 0
    gmem_fd_ref: int = 0
    gmem_offset: int = 0
    must_flags: int = 0
    hint_flags: int = 0


@dataclass
class PrivateRecord:
    """A VMM-private record: type 0x8000 to 0xfffe, opaque bytes."""

    type: int
    data: bytes = b""
    instance: int = 0


@dataclass
class Header:
    """The header of a decoded stream (what :func:`decode` read)."""

    header_len: int
    total_len: int
    crc32c: int
    emit_level: int
    incompat_features: int
    compat_features: int
    producer_level: int
    min_reader_level: int


def host_page_shift() -> int:
    """log2 of this host's base page size."""
    return (os.sysconf("SC_PAGE_SIZE")).bit_length() - 1


@dataclass
class State:
    """What a stream says: fds, RAM blocks, private records and the header
    values a writer chooses.  A fresh state gets a random *stream_id*."""

    fds: list[FdRecord] = field(default_factory=list)
    ramblocks: list[RamBlock] = field(default_factory=list)
    private: list[PrivateRecord] = field(default_factory=list)
    producer: str = "cprd_client"
    vmm_version: int = 0
    libcpr_version: int = WRITER_VERSION
    stream_id: bytes = field(default_factory=lambda: os.urandom(16))
    generation: int = 0
    page_shift: int = field(default_factory=host_page_shift)
    header: Header | None = field(default=None, compare=False)  # set by decode()

    def add_fd(self, name: str, kind: FdKind = FdKind.GENERIC, id: int = 0) -> FdRecord:
        """Append an FD record whose slot is its index."""
        rec = FdRecord(name=name, kind=FdKind(kind), id=id, slot=len(self.fds))
        self.fds.append(rec)
        return rec

    def encode(self, level: int | None = None) -> bytes:
        """The stream of this state: :func:`cprd_client.writer.encode`."""
        from .writer import encode
        return encode(self, level)


