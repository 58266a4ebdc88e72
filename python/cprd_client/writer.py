# SPDX-License-Identifier: LGPL-2.1-or-later
"""A writer of cpr-state(5) streams, independent of libcpr.

:func:`encode` writes what libcpr's ``cpr_state_encode()`` writes: the same
records in the same order (PRODUCER, FDs, RAMBLOCKs, VMM-private records,
END), every reserved byte zero, each fixed part at the length of the target
level, elements newer than the target judged as libcpr judges them (unused:
omitted; droppable: dropped with a :class:`StreamWarning`; required:
:class:`EncodeError`), ``min_reader_level`` computed, and the CRC32C over
the whole stream.  For the same state and target it gives the same bytes as
libcpr: the test suite holds it to the golden streams of every level.

It checks what one record at a time shows (names, kinds, string lengths,
record types, integer ranges, limits); the rules across records (unique
keys, slots and idstrs, RAM block sizes and overlaps) are the reader's.
"""

import struct
import warnings

from . import state as S
from .crc import crc32c
from .state import EncodeError, FdKind, FdRecord, PrivateRecord, RamBlock, State, StreamWarning


def _ascii(s: str) -> bytes | None:
    try:
        return s.encode("ascii") if isinstance(s, str) else None
    except UnicodeEncodeError:
        return None


def _name(s: str, what: str) -> bytes:
    b = _ascii(s)
    if b is None or not 1 <= len(b) <= S.NAME_MAX or any(
            c <= 0x20 or c >= 0x7F or c in b"\"'\\" for c in b):
        raise EncodeError(f"{what} {s!r}: 1 to {S.NAME_MAX} bytes of 0x21-0x7e "
                          "except quotes and backslash")
    return b


def _producer(s: str) -> bytes:
    b = _ascii(s)
    if b is None or len(b) > S.PRODUCER_MAX or any(c < 0x20 or c > 0x7E for c in b):
        raise EncodeError(f"producer {s!r}: at most {S.PRODUCER_MAX} printable ASCII bytes")
    return b


def _uint(v: int, bits: int, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << bits:
        raise EncodeError(f"{what} {v!r} is not an unsigned {bits}-bit integer")
    return v


class _Writer:
    def __init__(self, target: int):
        self.target = target
        self.min_reader = S.LEVEL_MIN
        self.out = bytearray(S.HEADER_SIZE)
        self.records = 0
        self.dropped: list[str] = []  # warned about once the stream is written

    def judge(self, what: str, level: int, required: bool) -> bool:
        """Keep (True) or drop (False) an element in use; raise if it must stay."""
        if level <= self.target:
            if required and level > self.min_reader:
                self.min_reader = level
            return True
        if not required:
            self.dropped.append(f"{what}: dropping it (level {level}) for target level "
                                f"{self.target}")
            return False
        raise EncodeError(f"{what} was introduced at level {level} and is required when "
                          f"used; target level {self.target} cannot carry it")

    def record(self, rtype: int, critical: bool, instance: int, fixed: bytes,
               var: bytes = b"") -> None:
        body = len(fixed) + len(var)
        if body > S.RECORD_MAX:
            raise EncodeError(f"record type {rtype:#x}#{instance}: body of {body} bytes "
                              f"exceeds {S.RECORD_MAX}")
        self.out += S.RECORD_LAYOUT.pack(rtype, S.RFLAG_CRITICAL if critical else 0,
                                         len(fixed), instance, body)
        self.out += fixed + var + bytes(-body % 8)
        self.records += 1


def _put_producer(w: _Writer, st: State) -> None:
    name = _producer(st.producer)
    fixed = S.PRODUCER_LAYOUT.pack(_uint(st.libcpr_version, 32, "libcpr_version"),
                                   _uint(st.vmm_version, 32, "vmm_version"), len(name))
    w.record(S.REC_PRODUCER, False, 0, fixed, name)


def _put_fd(w: _Writer, rec: FdRecord, i: int) -> None:
    name = _name(rec.name, f"FD#{i} name")
    try:
        kind = FdKind(rec.kind)
    except ValueError:
        raise EncodeError(f"FD '{rec.name}'/{rec.id} has unknown kind {rec.kind!r}") from None
    w.judge(f"FD '{rec.name}'/{rec.id} kind {kind.label}", kind.level, True)
    if not isinstance(rec.id, int) or not -(1 << 31) <= rec.id < 1 << 31:
        raise EncodeError(f"FD '{rec.name}': id {rec.id!r} is not a 32-bit integer")
    slot = _uint(i if rec.slot is None else rec.slot, 31, f"FD '{rec.name}' slot")
    fixed = S.FD_LAYOUT.pack(slot, kind, len(name), rec.id,
                             _uint(rec.must_flags, 32, "must_flags"),
                             _uint(rec.hint_flags, 32, "hint_flags"))
    w.record(S.REC_FD, True, i, fixed, name)


def _put_ramblock(w: _Writer, rb: RamBlock, i: int) -> None:
    idstr = _name(rb.idstr, f"RAMBLOCK#{i} idstr")
    what = f"RAMBLOCK '{rb.idstr}'"
    gmem_ref, gmem_off, hints = rb.gmem_fd_ref, rb.gmem_offset, rb.hint_flags
    if gmem_ref:
        w.judge(f"{what} field gmem_fd_ref", 2, True)
    if gmem_off:
        w.judge(f"{what} field gmem_offset", 2, True)
    if isinstance(hints, int) and hints & S.RB_HINT_THP and not w.judge(
            f"{what} flag 'thp'", 2, False):
        hints &= ~S.RB_HINT_THP
    fixed = S.RAMBLOCK_LAYOUT.pack(
        _uint(rb.align, 64, "align"), _uint(rb.used_length, 64, "used_length"),
        _uint(rb.max_length, 64, "max_length"), _uint(rb.host_addr, 64, "host_addr"),
        _uint(rb.fd_offset, 64, "fd_offset"), _uint(rb.fd_index, 32, "fd_index"),
        _uint(gmem_ref, 32, "gmem_fd_ref"), _uint(rb.must_flags, 32, "must_flags"),
        _uint(hints, 32, "hint_flags"), len(idstr), _uint(gmem_off, 64, "gmem_offset"))
    w.record(S.REC_RAMBLOCK, True, i, fixed[:S.RAMBLOCK_FIXED[w.target]], idstr)


def _put_private(w: _Writer, p: PrivateRecord) -> None:
    if not isinstance(p.type, int) or not S.REC_PRIVATE_FIRST <= p.type <= S.REC_PRIVATE_LAST:
        raise EncodeError(f"private record type {p.type!r} is outside "
                          f"{S.REC_PRIVATE_FIRST:#x}..{S.REC_PRIVATE_LAST:#x}")
    w.record(p.type, False, _uint(p.instance, 32, "private instance"), b"", bytes(p.data))


def _check_counts(st: State) -> None:
    for what, n, limit in (("FD records", len(st.fds), S.FDS_MAX),
                           ("RAMBLOCK records", len(st.ramblocks), S.RAMBLOCKS_MAX),
                           ("private records", len(st.private), S.PRIVATE_MAX)):
        if n > limit:
            raise EncodeError(f"{n} {what}, at most {limit}")


def _header(st: State, w: _Writer) -> bytes:
    if not isinstance(st.stream_id, (bytes, bytearray)) or len(st.stream_id) != 16:
        raise EncodeError("stream_id must be 16 bytes")
    if not isinstance(st.page_shift, int) or not 12 <= st.page_shift <= 30:
        raise EncodeError(f"page_shift {st.page_shift!r} is outside 12..30")
    return S.HEADER_LAYOUT.pack(S.MAGIC, S.HEADER_SIZE, S.FORMAT_VERSION, 0, len(w.out), 0,
                                w.target, 0, 0, S.LEVEL_MAX, w.min_reader, bytes(st.stream_id),
                                _uint(st.generation, 32, "generation"), st.page_shift)


def encode(st: State, level: int | None = None) -> bytes:
    """The stream of *st* for target *level* (``None``: :data:`~cprd_client.state.LEVEL_MAX`).

    Raises :class:`EncodeError` when the state cannot be written, and warns
    with :class:`StreamWarning` for each droppable element it drops.
    """
    target = S.LEVEL_MAX if level is None else level
    if not isinstance(target, int) or not S.LEVEL_MIN <= target <= S.LEVEL_MAX:
        raise EncodeError(f"target level {level!r} is outside the levels this writer "
                          f"writes ({S.LEVEL_MIN}..{S.LEVEL_MAX})")
    _check_counts(st)
    w = _Writer(target)
    _put_producer(w, st)
    for i, rec in enumerate(st.fds):
        _put_fd(w, rec, i)
    for i, rb in enumerate(st.ramblocks):
        _put_ramblock(w, rb, i)
    for p in st.private:
        _put_private(w, p)
    w.record(S.REC_END, True, 0, S.END_LAYOUT.pack(w.records))
    if len(w.out) > S.STREAM_MAX:
        raise EncodeError(f"stream of {len(w.out)} bytes exceeds the limit of {S.STREAM_MAX}")
    w.out[:S.HEADER_SIZE] = _header(st, w)
    w.out[24:28] = struct.pack("<I", crc32c(w.out))
    for message in w.dropped:
        warnings.warn(message, StreamWarning, stacklevel=2)
    return bytes(w.out)
