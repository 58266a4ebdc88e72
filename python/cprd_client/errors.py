# SPDX-License-Identifier: LGPL-2.1-or-later
"""Exceptions raised by the cprd client, one class per kind of failure.

Every error is a :class:`CprdError`, itself an :class:`OSError`, carrying
``errno`` (the number), ``error`` (the symbolic name the daemon sent, such as
``"ENOENT"``), ``op`` (the operation), ``message`` (the daemon's text, for
people), ``closing`` (the daemon closed the connection after this reply) and
``reply`` (the whole reply object, or ``None`` for errors found by the
client).  Where Python has a matching built-in exception the class derives
from it too, so ``except FileNotFoundError`` also catches :class:`NotFound`.

=================== ================================================
class               daemon errors (cprd-protocol(7))
=================== ================================================
NotFound            ENOENT
Exists              EEXIST
PermissionDenied    EACCES, EPERM
Busy                EBUSY
StaleClaim          ESTALE
LimitReached        ENOSPC; its subclass QuotaExceeded: EDQUOT
OutOfRange          ERANGE
InvalidStream       EBADMSG, EPROTONOSUPPORT, EBADFD
TooLarge            EFBIG
ProcessGone         ESRCH
UpgradeCanceled     ECANCELED
ProtocolError       EPROTO; its subclass InvalidRequest: EINVAL,
                    EBADF, EOPNOTSUPP, EMSGSIZE
TemporaryFailure    EAGAIN, ENOMEM, EIO, EMFILE, ENFILE
TimedOut            ETIMEDOUT (also: no reply within the timeout)
ConnectionClosed    (client) the daemon closed the connection
Unavailable         (client) no daemon could be reached
CprdError           any other name
=================== ================================================

A reply the client cannot make sense of (not one JSON object, fds it did not
expect in a claim, truncated control data) raises :class:`ProtocolError`
with errno ``EPROTO`` and ``reply`` ``None``.
"""

import errno as _errno


class CprdError(OSError):
    """A request failed; see the module documentation for the attributes."""

    def __init__(self, err: int, message: str, *, op: str | None = None,
                 name: str | None = None, closing: bool = False,
                 reply: dict | None = None):
        super().__init__(err, message)
        self.op = op
        self.error = name or _errno.errorcode.get(err, str(err))
        self.message = message
        self.closing = closing
        self.reply = reply

    def __str__(self) -> str:
        where = f"{self.op}: " if self.op else ""
        return f"{where}{self.error}: {self.message}"

    def __reduce__(self):
        return (_rebuild, (type(self), self.errno, self.message, self.op,
                           self.error, self.closing, self.reply))


def _rebuild(cls, err, message, op, name, closing, reply):
    return cls(err, message, op=op, name=name, closing=closing, reply=reply)


class NotFound(CprdError, FileNotFoundError):
    """ENOENT: no such bundle visible to the caller."""


class Exists(CprdError, FileExistsError):
    """EEXIST: a bundle of that name exists."""


class PermissionDenied(CprdError, PermissionError):
    """EACCES (may see the bundle, not do this) or EPERM (administrators only)."""


class Busy(CprdError):
    """EBUSY: the bundle is in the wrong state, or filled by another connection."""


class StaleClaim(CprdError):
    """ESTALE: no claim of the bundle with that token by the caller."""


class LimitReached(CprdError):
    """ENOSPC: a daemon-wide limit (max-fds, max-bundles) is reached."""


class QuotaExceeded(LimitReached):
    """EDQUOT: the owner's quota of fds or bundles is reached."""


class OutOfRange(CprdError):
    """ERANGE: a lease or ttl beyond the configured maximum."""


class InvalidStream(CprdError):
    """EBADMSG, EPROTONOSUPPORT, EBADFD: the state stream was refused."""


class TooLarge(CprdError):
    """EFBIG: the stream, or the bundle table of an upgrade, is too large."""


class ProcessGone(CprdError, ProcessLookupError):
    """ESRCH: the process to tie the bundle to is gone."""


class UpgradeCanceled(CprdError):
    """ECANCELED: an upgrade's new image did not take over; the daemon keeps
    serving with everything it held."""


class ProtocolError(CprdError):
    """EPROTO: a malformed message, from either side."""


class InvalidRequest(ProtocolError):
    """EINVAL, EBADF, EOPNOTSUPP, EMSGSIZE: the daemon refused a malformed request."""


class TemporaryFailure(CprdError):
    """EAGAIN, ENOMEM, EIO, EMFILE, ENFILE: try again later."""


class TimedOut(CprdError, TimeoutError):
    """ETIMEDOUT: no complete reply within the call's timeout."""


class ConnectionClosed(CprdError, ConnectionError):
    """The connection is closed: by the daemon, or by the client after an error."""


class Unavailable(CprdError, ConnectionError):
    """connect(2) to the daemon's socket failed; errno says why."""


ERRORS: dict[str, type[CprdError]] = {
    "ENOENT": NotFound,
    "EEXIST": Exists,
    "EACCES": PermissionDenied,
    "EPERM": PermissionDenied,
    "EBUSY": Busy,
    "ESTALE": StaleClaim,
    "ENOSPC": LimitReached,
    "EDQUOT": QuotaExceeded,
    "ERANGE": OutOfRange,
    "EBADMSG": InvalidStream,
    "EPROTONOSUPPORT": InvalidStream,
    "EBADFD": InvalidStream,
    "EFBIG": TooLarge,
    "ESRCH": ProcessGone,
    "ECANCELED": UpgradeCanceled,
    "EPROTO": ProtocolError,
    "EINVAL": InvalidRequest,
    "EBADF": InvalidRequest,
    "EOPNOTSUPP": InvalidRequest,
    "EMSGSIZE": InvalidRequest,
    "EAGAIN": TemporaryFailure,
    "ENOMEM": TemporaryFailure,
    "EIO": TemporaryFailure,
    "EMFILE": TemporaryFailure,
    "ENFILE": TemporaryFailure,
    "ETIMEDOUT": TimedOut,
}
"""The class raised for each symbolic errno name a daemon reply can carry."""


def from_reply(reply: dict, op: str | None) -> CprdError:
    """The exception for an error reply ``{"ok": false, "error": ...}``."""
    name = reply.get("error")
    message = reply.get("message")
    if not isinstance(name, str):
        return ProtocolError(_errno.EPROTO, "error reply without an \"error\" name",
                             op=op, reply=reply)
    err = getattr(_errno, name, None)
    if not isinstance(err, int):
        err = _errno.EIO
    cls = ERRORS.get(name, CprdError)
    if isinstance(reply.get("op"), str):
        op = reply["op"]
    return cls(err, message if isinstance(message, str) else "", op=op,
               name=name, closing=reply.get("closing") is True, reply=reply)


def protocol_error(message: str, op: str | None = None) -> ProtocolError:
    """A reply the client could not accept (errno EPROTO, no reply)."""
    return ProtocolError(_errno.EPROTO, message, op=op)
