# SPDX-License-Identifier: LGPL-2.1-or-later
"""cprd_client: a client of cprd, the fd-bundle broker, in pure Python.

Standard library only (Python 3.11 or later).  It speaks cprd-protocol(7):
one JSON object per message over a SOCK_SEQPACKET UNIX socket, fds as
SCM_RIGHTS; and it writes cpr-state(5) streams, so that plain named fds can
be stored without a stream written by hand.

A producer parks fds; a consumer, later and maybe in another process,
claims them, adopts them and acknowledges::

    import cprd_client

    with cprd_client.Client() as c:                 # $CPRD_SOCKET or /run/cprd.sock
        c.store_named("vm/42/fds", {"tap0": tap_fd, "ram": ram_memfd},
                      consumer_uids=[107])

    with cprd_client.Client() as c:
        with c.claim("vm/42/fds", ack_on_exit=True) as bundle:
            fds = bundle.named_fds()                # {"tap0": 5, "ram": 6}
            adopt(fds)                              # raises: claim released
            bundle.take_fds()                       # keep them past the block

Fds passed to the client are borrowed (they stay the caller's); fds received
belong to the :class:`Bundle` until taken, and are closed with it.

Modules: :mod:`~cprd_client.client` (the :class:`Client`),
:mod:`~cprd_client.bundle` (:class:`Bundle`), :mod:`~cprd_client.errors`
(one exception class per errno), :mod:`~cprd_client.replies` (typed
replies), :mod:`~cprd_client.state`, :mod:`~cprd_client.writer`,
:mod:`~cprd_client.reader`, :mod:`~cprd_client.crc` (the stream format),
:mod:`~cprd_client.kinds` (named fds and their kinds),
:mod:`~cprd_client.wire` (messages and fd ownership).  The manual page is
cprd-python(7).
"""

from .bundle import Bundle
from .client import (DEFAULT, DEFAULT_SOCKET, DEFAULT_TIMEOUT, PROTOCOL_VERSION, SOCKET_ENV,
                     STORE_FDS_MAX, Client, sealed_memfd, socket_path)
from .crc import crc32c
from .reader import decode
from .writer import encode
from .errors import (ERRORS, Busy, ConnectionClosed, CprdError, Exists, InvalidRequest,
                     InvalidStream, LimitReached, NotFound, OutOfRange, PermissionDenied,
                     ProcessGone, ProtocolError, QuotaExceeded, StaleClaim, TemporaryFailure,
                     TimedOut, TooLarge, Unavailable, UpgradeCanceled)
from .kinds import NamedFd, detect_kind
from .replies import BundleInfo, BundleList, Debug, Hello, Peer, Status, Stored, Upgraded
from .state import (LEVEL_MAX, LEVEL_MIN, DecodeError, EncodeError, FdKind, FdRecord,
                    PrivateRecord, RamBlock, State, StreamWarning)

__version__ = "0.1.0"

__all__ = [
    "Bundle", "BundleInfo", "BundleList", "Busy", "Client", "ConnectionClosed", "CprdError",
    "DEFAULT", "DEFAULT_SOCKET", "DEFAULT_TIMEOUT", "Debug", "DecodeError", "ERRORS",
    "EncodeError", "Exists", "FdKind", "FdRecord", "Hello", "InvalidRequest", "InvalidStream",
    "LEVEL_MAX", "LEVEL_MIN", "LimitReached", "NamedFd", "NotFound", "OutOfRange", "Peer",
    "PermissionDenied", "PrivateRecord", "ProcessGone", "PROTOCOL_VERSION", "ProtocolError",
    "QuotaExceeded", "RamBlock", "SOCKET_ENV", "STORE_FDS_MAX", "StaleClaim", "State",
    "Status", "Stored", "StreamWarning", "TemporaryFailure", "TimedOut", "TooLarge",
    "Unavailable", "UpgradeCanceled", "Upgraded", "crc32c", "decode", "detect_kind", "encode",
    "sealed_memfd", "socket_path",
]
