# SPDX-License-Identifier: LGPL-2.1-or-later
"""One message each way over cprd's SOCK_SEQPACKET socket.

A message is one JSON object in one sendmsg(2)/recvmsg(2), fds riding as
SCM_RIGHTS.  Sending borrows the caller's fds; receiving owns every fd the
kernel delivered (received close-on-exec, with MSG_CMSG_CLOEXEC) and closes
them all when the message is refused.  Every call is bounded by a
:class:`Deadline`.
"""

import array
import errno
import json
import os
import socket
import time

from . import errors

MAX_FDS_PER_MESSAGE = 253
"""The kernel's SCM_MAX_FD: fds in one message, either way."""

REPLY_MAX = 256 * 1024
"""The largest reply accepted (the C client's CPRD_CLIENT_REPLY_MAX)."""

_FD_SIZE = array.array("i").itemsize


class Deadline:
    """The end of one call: ``None`` waits for ever, else seconds from now."""

    def __init__(self, timeout: float | None):
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0 or None")
        self.timeout = timeout
        self.end = None if timeout is None else time.monotonic() + timeout

    def left(self, op: str | None) -> float | None:
        """Seconds left, or raise :class:`errors.TimedOut` if none are."""
        if self.end is None:
            return None
        rest = self.end - time.monotonic()
        if rest <= 0:
            raise self.expired(op)
        return rest

    def expired(self, op: str | None) -> errors.TimedOut:
        return errors.TimedOut(errno.ETIMEDOUT,
                               f"no reply within {self.timeout:g} s", op=op)


def close_fds(fds) -> None:
    """Close every fd of *fds*, ignoring those already closed."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _os_error(e: OSError, op: str | None) -> errors.CprdError:
    if isinstance(e, (BrokenPipeError, ConnectionResetError)) or e.errno == errno.ENOTCONN:
        return errors.ConnectionClosed(e.errno, "the daemon closed the connection", op=op)
    name = errno.errorcode.get(e.errno or errno.EIO, "EIO")
    cls = errors.ERRORS.get(name, errors.CprdError)
    return cls(e.errno or errno.EIO, e.strerror or str(e), op=op, name=name)


def connect(path: str, deadline: Deadline) -> socket.socket:
    """A connected SOCK_SEQPACKET socket to *path* (close-on-exec)."""
    timeout = deadline.left("connect")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except TimeoutError:
        sock.close()
        raise deadline.expired("connect") from None
    except OSError as e:
        sock.close()
        raise errors.Unavailable(e.errno or errno.EIO,
                                 f"cannot connect to {path}: {e.strerror}",
                                 op="connect") from None
    return sock


def encode(request: dict) -> bytes:
    """A request as the daemon reads it: compact UTF-8 JSON."""
    try:
        return json.dumps(request, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"request is not valid UTF-8: {e}") from None


def send(sock: socket.socket, data: bytes, fds, deadline: Deadline, op: str | None) -> None:
    """Send one message with *fds* (borrowed: they stay the caller's)."""
    fds = list(fds)
    if len(fds) > MAX_FDS_PER_MESSAGE:
        raise ValueError(f"{len(fds)} fds in one message, at most {MAX_FDS_PER_MESSAGE}")
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    timeout = deadline.left(op)
    try:
        sock.settimeout(timeout)
        n = sock.sendmsg([data], anc)
    except TimeoutError:
        raise deadline.expired(op) from None
    except OSError as e:
        raise _os_error(e, op) from None
    if n != len(data):
        raise errors.protocol_error(f"short send: {n} of {len(data)} bytes", op)


def _take_fds(anc) -> tuple[list[int], str | None]:
    """Every fd of the control data, and what was wrong with it if anything."""
    fds: list[int] = []
    bad = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(payload[:len(payload) - len(payload) % _FD_SIZE])
            fds.extend(a)
        else:
            bad = f"control data of level {level} type {kind}, not SCM_RIGHTS"
    return fds, bad


def _parse(data: bytes) -> tuple[dict | None, str | None]:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:
        return None, f"reply is not JSON: {e}"
    if not isinstance(obj, dict):
        return None, "reply is not a JSON object"
    return obj, None


def reply_buffer() -> bytearray:
    """A receive buffer for :func:`recv`: kept by the caller and reused, a
    reply costs no allocation of :data:`REPLY_MAX` bytes."""
    return bytearray(REPLY_MAX)


def recv(sock: socket.socket, deadline: Deadline, op: str | None, buf: bytearray | None = None,
         max_fds: int = MAX_FDS_PER_MESSAGE) -> tuple[dict, list[int]]:
    """One message: its JSON object and the fds that came with it (owned)."""
    buf = reply_buffer() if buf is None else buf
    timeout = deadline.left(op)
    try:
        sock.settimeout(timeout)
        n, anc, flags, _ = sock.recvmsg_into([buf], socket.CMSG_SPACE(max_fds * _FD_SIZE),
                                             socket.MSG_CMSG_CLOEXEC)
    except TimeoutError:
        raise deadline.expired(op) from None
    except OSError as e:
        raise _os_error(e, op) from None
    fds, bad = _take_fds(anc)
    obj = None
    if flags & socket.MSG_CTRUNC:
        bad = "control data truncated: more fds than expected"
    elif flags & socket.MSG_TRUNC:
        bad = f"reply longer than {len(buf)} bytes"
    elif n == 0 and not bad:
        close_fds(fds)
        raise errors.ConnectionClosed(errno.ECONNRESET, "the daemon closed the connection",
                                      op=op)
    if not bad:
        obj, bad = _parse(bytes(memoryview(buf)[:n]))
    if bad:
        close_fds(fds)
        raise errors.protocol_error(bad, op)
    return obj, fds


def recv_pending(sock: socket.socket, op: str | None) -> dict | None:
    """A message already queued on *sock*, without waiting; ``None`` if there
    is none or it cannot be read.  Its fds are closed."""
    try:
        sock.settimeout(0)
        data, anc, _, _ = sock.recvmsg(REPLY_MAX, socket.CMSG_SPACE(MAX_FDS_PER_MESSAGE *
                                                                    _FD_SIZE),
                                       socket.MSG_CMSG_CLOEXEC)
    except OSError:
        return None
    close_fds(_take_fds(anc)[0])
    return _parse(data)[0] if data else None
