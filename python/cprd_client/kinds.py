# SPDX-License-Identifier: LGPL-2.1-or-later
"""Plain named fds: what they are, and the stream that describes them.

:func:`detect_kind` tells the kinds of cpr-state(5) apart the way libcpr's
``cpr_fd_check_kind()`` checks them (memfd, eventfd, guest_memfd, socket;
iommufd and VFIO devices by their node's name and the driver behind its
device number), falling back to generic, so that the daemon's check at seal
time (check-fd-kinds) and the consumer's accept what they are given.
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


MISC_MAJOR = 10

# (kind, node name test, driver): the name, then the driver behind the
# device number, as cpr_fd_check_kind() checks them.
_CHARDEVS = (
    (FdKind.IOMMUFD, lambda p: p == "/dev/iommu", "iommu"),
    (FdKind.VFIO_CONTAINER, lambda p: p == "/dev/vfio/vfio", "vfio"),
    (FdKind.VFIO_CDEV, lambda p: p.startswith("/dev/vfio/devices/vfio"), "vfio-dev"),
    (FdKind.VFIO_GROUP, lambda p: p.startswith("/dev/vfio/"), "vfio"),
)


def _proc_table(path: str, section: str | None = None) -> dict[int, str]:
    """number -> name from /proc/misc, or one section of /proc/devices."""
    out: dict[int, str] = {}
    try:
        with open(path) as f:
            inside = section is None
            for line in f:
                if section is not None and line.endswith(":\n"):
                    inside = line.startswith(section)
                    continue
                fields = line.split()
                if inside and len(fields) == 2 and fields[0].isdigit():
                    out[int(fields[0])] = fields[1]
    except OSError:
        pass
    return out


def chardev_driver(rdev: int) -> str | None:
    """The driver of a character device number: its misc name for major 10,
    else its major's name (None when /proc does not say)."""
    if os.major(rdev) == MISC_MAJOR:
        return _proc_table("/proc/misc").get(os.minor(rdev))
    return _proc_table("/proc/devices", "Character devices").get(os.major(rdev))


def _chardev_kind(link: str, rdev: int) -> FdKind:
    for kind, named, driver in _CHARDEVS:
        if named(link):
            return kind if chardev_driver(rdev) == driver else FdKind.GENERIC
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
        return _chardev_kind(link, st.st_rdev)
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
