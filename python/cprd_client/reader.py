# SPDX-License-Identifier: LGPL-2.1-or-later
"""A reader of cpr-state(5) framing: bytes back into a :class:`State`.

:func:`decode` checks the header (magic, lengths, format version, CRC32C),
every record header, the zero padding and END, and decodes PRODUCER, FD,
RAMBLOCK and VMM-private records; it raises :class:`DecodeError` otherwise.
It is not a validator: the rules about what records say (kinds, flags,
unique keys, RAM block geometry) are libcpr's reader's, which the daemon
applies when it seals and ``cprdump --check`` applies on the command line.
"""

from . import state as S
from .crc import crc32c
from .state import DecodeError, FdKind, FdRecord, Header, PrivateRecord, RamBlock, State


def _header(buf: bytes) -> tuple[Header, tuple]:
    if len(buf) < S.HEADER_SIZE or buf[:8] != S.MAGIC:
        raise DecodeError("not a cpr-state stream (bad magic or too short)")
    f = S.HEADER_LAYOUT.unpack_from(buf)
    hlen, version, total, crc = f[1], f[2], f[4], f[5]
    if hlen % 8 or not S.HEADER_SIZE <= hlen <= 4096 or hlen > len(buf):
        raise DecodeError(f"header_len {hlen} is invalid")
    if version != S.FORMAT_VERSION:
        raise DecodeError(f"format_version {version} is not {S.FORMAT_VERSION}")
    if total != len(buf):
        raise DecodeError(f"total_len {total} but {len(buf)} bytes")
    if crc32c(buf[:24] + bytes(4) + buf[28:]) != crc:
        raise DecodeError("CRC32C mismatch")
    h = Header(header_len=hlen, total_len=total, crc32c=crc, emit_level=f[6],
               incompat_features=f[7], compat_features=f[8], producer_level=f[9],
               min_reader_level=f[10])
    return h, f


def _records(buf: bytes, off: int):
    """(type, rflags, instance, fixed, var) of every record, END last."""
    while True:
        if S.RECORD_HEADER_SIZE > len(buf) - off:
            raise DecodeError(f"record header at {off} runs past the end")
        rtype, rflags, fixed_len, instance, body = S.RECORD_LAYOUT.unpack_from(buf, off)
        start = off + S.RECORD_HEADER_SIZE
        pad = -body % 8
        if fixed_len > body or body + pad > len(buf) - start:
            raise DecodeError(f"record type {rtype:#x} at {off}: bad lengths")
        if any(buf[start + body:start + body + pad]):
            raise DecodeError(f"record type {rtype:#x} at {off}: non-zero padding")
        yield rtype, rflags, instance, buf[start:start + fixed_len], \
            buf[start + fixed_len:start + body]
        off = start + body + pad
        if rtype == S.REC_END:
            if off != len(buf):
                raise DecodeError("END is not the last record")
            return


def _fixed(b: bytes, n: int) -> bytes:
    return b[:n] + bytes(max(0, n - len(b)))


def _fd(st: State, fixed: bytes, var: bytes) -> None:
    slot, kind, n, fid, must, hint = S.FD_LAYOUT.unpack(_fixed(fixed, S.FD_LAYOUT.size))
    try:
        kind = FdKind(kind)
    except ValueError:
        pass  # kept as the number: the reader refuses it
    st.fds.append(FdRecord(name=var[:n].decode("ascii", "replace"), kind=kind, id=fid,
                           slot=slot, must_flags=must, hint_flags=hint))


def _ramblock(st: State, fixed: bytes, var: bytes) -> None:
    v = S.RAMBLOCK_LAYOUT.unpack(_fixed(fixed, S.RAMBLOCK_LAYOUT.size))
    st.ramblocks.append(RamBlock(
        align=v[0], used_length=v[1], max_length=v[2], host_addr=v[3], fd_offset=v[4],
        fd_index=v[5], gmem_fd_ref=v[6], must_flags=v[7], hint_flags=v[8],
        idstr=var[:v[9]].decode("ascii", "replace"), gmem_offset=v[10]))


def _producer(st: State, fixed: bytes, var: bytes) -> None:
    st.libcpr_version, st.vmm_version, n = S.PRODUCER_LAYOUT.unpack(
        _fixed(fixed, S.PRODUCER_LAYOUT.size))
    st.producer = var[:n].decode("ascii", "replace")


def decode(data: bytes | bytearray | memoryview) -> State:
    """The :class:`State` a well-framed stream says; :class:`DecodeError` else.

    Records of unknown types are skipped, as a reader skips them (a CRITICAL
    one is left for the reader to refuse).  The header values read are in
    :attr:`State.header`.
    """
    buf = bytes(data)
    header, f = _header(buf)
    st = State(producer="", libcpr_version=0, stream_id=f[11], generation=f[12],
               page_shift=f[13], header=header)
    count = 0
    for rtype, _, instance, fixed, var in _records(buf, header.header_len):
        if rtype == S.REC_END:
            if S.END_LAYOUT.unpack(_fixed(fixed, 8))[0] != count:
                raise DecodeError(f"END counts {S.END_LAYOUT.unpack(_fixed(fixed, 8))[0]} "
                                  f"records, the stream has {count}")
            return st
        count += 1
        if rtype == S.REC_PRODUCER:
            _producer(st, fixed, var)
        elif rtype == S.REC_FD:
            _fd(st, fixed, var)
        elif rtype == S.REC_RAMBLOCK:
            _ramblock(st, fixed, var)
        elif S.REC_PRIVATE_FIRST <= rtype <= S.REC_PRIVATE_LAST:
            st.private.append(PrivateRecord(type=rtype, data=fixed + var, instance=instance))
    raise DecodeError("no END record")
