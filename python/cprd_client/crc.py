# SPDX-License-Identifier: LGPL-2.1-or-later
"""CRC32C (Castagnoli) in pure Python.

The checksum of cpr-state(5): reflected polynomial 0x82f63b78, initial value
and final xor 0xffffffff, the same function as libcpr's ``cpr_crc32c()``.
``crc32c(b"123456789") == 0xe3069283``.
"""

POLYNOMIAL = 0x82F63B78


def _table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ POLYNOMIAL if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Return the CRC32C of *data*.

    Pass the result of one call as *crc* to continue over more data:
    ``crc32c(b, crc32c(a)) == crc32c(a + b)``.
    """
    table = _TABLE
    c = ~crc & 0xFFFFFFFF
    for byte in memoryview(data).cast("B"):
        c = table[(c ^ byte) & 0xFF] ^ (c >> 8)
    return ~c & 0xFFFFFFFF
