# SPDX-License-Identifier: LGPL-2.1-or-later
"""Plain named fds: what they are, and the stream that describes them.

:func:`detect_kind` tells the kinds of cpr-state(5) apart the way libcpr's
``cpr_fd_check_kind()`` checks them (memfd, eventfd, guest_memfd, socket,
iommufd, VFIO devices), falling back to generic, so that the daemon's
check at seal time (check-fd-kinds) accepts what it is given.
"""

import os
import stat
from dataclasses import dataclass

from .state import FdKind, FdRecord, State


@dataclass(frozen=True)
class NamedFd:
    """An fd to store under *name* and *id* (``kind=None``: detected)."""

    name: str
    fd: int
    kind: FdKind | None = None
    id: int = 0


_ANON = {"anon_inode:[eventfd]": FdKind.EVENTFD, "anon_inode:[kvm-gmem]": FdKind.GUEST_MEMFD}


def _chardev_kind(link: str) -> FdKind:
    if link == "/dev/iommu":
        return FdKind.IOMMUFD
    if link == "/dev/vfio/vfio":
        return FdKind.VFIO_CONTAINER
    if link.startswith("/dev/vfio/devices/vfio"):
        return FdKind.VFIO_CDEV
    if link.startswith("/dev/vfio/"):
        return FdKind.VFIO_GROUP
    return FdKind.GENERIC


def detect_kind(fd: int) -> FdKind:
    """The most specific kind *fd* passes the checks of, else GENERIC."""
    st = os.fstat(fd)
    if stat.S_ISSOCK(st.st_mode):
        return FdKind.SOCKET
    try:
        link = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return FdKind.GENERIC
    if stat.S_ISREG(st.st_mode) and link.startswith("/memfd:"):
        return FdKind.MEMFD
    if stat.S_ISCHR(st.st_mode):
        return _chardev_kind(link)
    return _ANON.get(link, FdKind.GENERIC)


def _entries(fds) -> list[NamedFd]:
    if hasattr(fds, "items"):
        return [NamedFd(name, fd) for name, fd in fds.items()]
    out = list(fds)
    for e in out:
        if not isinstance(e, NamedFd):
            raise TypeError(f"expected a mapping of names to fds or NamedFd entries, "
                            f"not {type(e).__name__}")
    return out


def named_state(fds, producer: str = "cprd_client") -> tuple[State, list[int]]:
    """A state with one FD record per named fd (slot i for the i-th), and
    the fds in slot order."""
    entries = _entries(fds)
    st = State(producer=producer)
    for i, e in enumerate(entries):
        kind = detect_kind(e.fd) if e.kind is None else FdKind(e.kind)
        st.fds.append(FdRecord(name=e.name, kind=kind, id=e.id, slot=i))
    return st, [e.fd for e in entries]
