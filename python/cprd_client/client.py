# SPDX-License-Identifier: LGPL-2.1-or-later
"""The client: one connection to cprd, one method per operation.

Every method takes a keyword ``timeout``: seconds for the whole call
(sending, the reply and, for a claim, every chunk that follows it), ``None``
to wait for ever, or left out for the client's own (30 s unless the client
was made with another).  A call that runs out raises
:class:`~cprd_client.errors.TimedOut`.

After a timeout, a reply the client cannot read, or an error reply that
closes the connection (a malformed request), the client closes its socket:
replies would no longer match requests.  Calls then raise
:class:`~cprd_client.errors.ConnectionClosed` until :meth:`Client.connect`
opens a new connection.  Claims survive that (ack, release and renew work
from any connection of the uid that claimed); open bundles do not.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket

from . import errors, wire
from .bundle import Bundle
from .replies import BundleInfo, BundleList, Debug, Hello, Stored, Status, Upgraded, get
from .state import State

DEFAULT_SOCKET = "/run/cprd.sock"
SOCKET_ENV = "CPRD_SOCKET"
DEFAULT_TIMEOUT = 30.0
PROTOCOL_VERSION = 2
"""The highest protocol version this client speaks, sent in ``hello``: the
connection then speaks the lower of it and the daemon's, which the reply
says (:attr:`Hello.version`; the daemon's own is :attr:`Hello.protocol`)."""

STORE_FDS_MAX = wire.MAX_FDS_PER_MESSAGE - 1
"""Fds a single ``store`` request carries besides the stream; more are
stored with create, put and seal."""


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()
"""``timeout=DEFAULT``: the client's timeout."""

_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def socket_path(path: str | os.PathLike | None = None) -> str:
    """*path*, else ``$CPRD_SOCKET``, else ``/run/cprd.sock``."""
    if path:
        return os.fspath(path)
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def sealed_memfd(data: bytes | bytearray | memoryview, name: str = "cpr-state") -> int:
    """A close-on-exec memfd holding *data*, sealed against write, shrink and
    grow (the daemon then keeps it as it is).  The caller owns it."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check(value, kind, what: str):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{what} must be {getattr(kind, '__name__', kind)}, "
                        f"not {type(value).__name__}")
    return value


def _fd_list(fds) -> list[int]:
    out = list(fds)
    for fd in out:
        if _check(fd, int, "an fd") < 0:
            raise ValueError(f"{fd} is not an fd")
    return out


def _bundle_options(consumer_uids, consumer_gids, ttl_ms, tie) -> dict:
    opts: dict = {}
    uids, gids = [_check(u, int, "a uid") for u in consumer_uids], \
        [_check(g, int, "a gid") for g in consumer_gids]
    if uids or gids:
        opts["consumers"] = {k: v for k, v in (("uids", uids), ("gids", gids)) if v}
    if ttl_ms is not None:
        opts["ttl_ms"] = _check(ttl_ms, int, "ttl_ms")
    if tie:
        opts["tie"] = True
    return opts


class Client:
    """A connection to cprd at *path* (see :func:`socket_path`).

    *timeout* is the default of every call, in seconds (``None``: none).
    With ``connect=False`` nothing happens until :meth:`connect`.
    Usable as a context manager, which closes the connection.
    """

    def __init__(self, path: str | os.PathLike | None = None, *,
                 timeout: float | None = DEFAULT_TIMEOUT, connect: bool = True):
        self.path = socket_path(path)
        self.timeout = timeout
        self._sock = None
        self._buf: bytearray | None = None  # replies are read into it
        self.hello_reply: Hello | None = None
        """The last :meth:`hello` of this connection (``None`` before one)."""
        self._why_closed = "not connected"
        if connect:
            self.connect()

    def __repr__(self) -> str:
        return f"<cprd_client.Client {self.path!r} {'open' if self._sock else 'closed'}>"

    # ------------------------------------------------------------ connection
    def _deadline(self, timeout) -> wire.Deadline:
        return wire.Deadline(self.timeout if timeout is DEFAULT else timeout)

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def fileno(self) -> int:
        """The socket's fd (-1 when closed)."""
        return self._sock.fileno() if self._sock else -1

    @classmethod
    def adopt(cls, sock: socket.socket, *, timeout: float | None = DEFAULT_TIMEOUT) -> "Client":
        """A client over *sock*, an already connected SOCK_SEQPACKET socket
        (one passed by another process, say), which it then owns.  The
        daemon sees the credentials of the process that connected it."""
        if sock.type != socket.SOCK_SEQPACKET or sock.family != socket.AF_UNIX:
            raise ValueError("not an AF_UNIX SOCK_SEQPACKET socket")
        c = cls(sock.getpeername() or None, timeout=timeout, connect=False)
        c._sock = sock
        return c

    def connect(self, *, timeout=DEFAULT) -> "Client":
        """Open the connection (again, after it was closed)."""
        if self._sock is None:
            self._sock = wire.connect(self.path, self._deadline(timeout))
        return self

    def close(self, why: str = "closed by the client") -> None:
        """Close the connection.  Claimed bundles stay claimed, except those
        bound to it (``bound``), which the daemon seals again."""
        sock, self._sock = self._sock, None
        self.hello_reply = None
        if sock is not None:
            self._why_closed = why
            sock.close()

    def __enter__(self) -> "Client":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_sock", None) is not None:
            self._sock.close()

    @contextlib.contextmanager
    def session(self):
        """This client if it is connected, else a new connection for the
        duration of the ``with`` block."""
        if self._sock is not None:
            yield self
            return
        with Client(self.path, timeout=self.timeout) as c:
            yield c

    # ------------------------------------------------------------ messages
    def _socket(self, op: str | None):
        if self._sock is None:
            raise errors.ConnectionClosed(errno.ENOTCONN, f"connection {self._why_closed}",
                                          op=op)
        return self._sock

    def _send(self, data: bytes, fds, deadline: wire.Deadline, op: str | None) -> None:
        """Send one request.  A SOCK_SEQPACKET message goes whole or not at
        all: after a refused send (a bad fd, say) the connection is still in
        step and stays open; after a timeout or an interruption it is closed."""
        sock = self._socket(op)
        try:
            wire.send(sock, data, fds, deadline, op)
        except errors.ConnectionClosed as e:
            # The daemon may have said why before it closed (EAGAIN when it
            # is at max-connections): that reply is the better error.
            pending = wire.recv_pending(sock, op)
            self.close(f"closed after: {e}")
            if pending is not None and pending.get("ok") is False:
                raise errors.from_reply(pending, op) from None
            raise
        except (ValueError, TypeError):
            raise
        except errors.CprdError as e:
            if isinstance(e, errors.TimedOut) or type(e) is errors.ProtocolError:
                self.close(f"closed after: {e}")
            raise
        except BaseException as e:
            self.close(f"closed after: {e!r}")
            raise

    def _recv(self, deadline: wire.Deadline, op: str | None) -> tuple[dict, list[int]]:
        if self._buf is None:
            self._buf = wire.reply_buffer()
        sock = self._socket(op)
        try:
            return wire.recv(sock, deadline, op, self._buf)
        except errors.ConnectionClosed as e:
            # A daemon that closed with our request unread (EAGAIN at
            # max-connections) makes the kernel report ECONNRESET before the
            # reply it queued: that reply is the better error.
            pending = wire.recv_pending(sock, op) if e.errno == errno.ECONNRESET else None
            self.close(f"closed after: {e}")
            if pending is not None and pending.get("ok") is False:
                raise errors.from_reply(pending, op) from None
            raise
        except BaseException as e:
            self.close(f"closed after: {e!r}")
            raise

    def _status(self, reply: dict, op: str | None) -> dict:
        """The reply if it says ok; else raise the error it names."""
        ok = reply.get("ok")
        if ok is True:
            return reply
        e = errors.from_reply(reply, op) if ok is False else \
            errors.protocol_error("reply without a boolean \"ok\"", op)
        if e.closing or ok is not False:
            self.close(f"closed by the daemon after: {e}")
        raise e

    def _exchange(self, data: bytes, fds, deadline: wire.Deadline, op: str | None) -> dict:
        """Send one request, read its reply (which must carry no fds)."""
        self._send(data, fds, deadline, op)
        reply, got = self._recv(deadline, op)
        wire.close_fds(got)
        return self._status(reply, op)

    def _call(self, req: dict, fds=(), *, timeout=DEFAULT) -> dict:
        return self._exchange(wire.encode(req), _fd_list(fds), self._deadline(timeout),
                              req.get("op"))

    def request(self, req: dict, fds=(), *, timeout=DEFAULT) -> dict:
        """Send any request object (with *fds*, borrowed); return the reply
        object, or raise the error it names.  For ops this class does not
        wrap; a reply that carries fds (a claim) is not for this method."""
        if _check(req, dict, "req").get("op") == "claim":
            raise ValueError("a claim's reply carries fds and chunks: use claim()")
        return self._call(dict(req), fds, timeout=timeout)

    def request_raw(self, data: bytes, fds=(), *, timeout=DEFAULT) -> dict:
        """Send *data* as it is, as one message; return the reply object."""
        return self._exchange(bytes(data), _fd_list(fds), self._deadline(timeout), None)

    # ------------------------------------------------------------ information
    def hello(self, *, version: int | None = PROTOCOL_VERSION, client: str | None = None,
              timeout=DEFAULT) -> Hello:
        """The daemon's protocol version, state levels, ops, limits, and
        how it sees this peer."""
        req: dict = {"op": "hello"}
        if version is not None:
            req["version"] = _check(version, int, "version")
        if client is not None:
            req["client"] = _check(client, str, "client")
        hello = Hello.from_reply(self._call(req, timeout=timeout))
        self.hello_reply = hello
        return hello

    def status(self, *, timeout=DEFAULT) -> Status:
        """Counts of bundles and fds, limits, and this uid's usage."""
        return Status.from_reply(self._call({"op": "status"}, timeout=timeout))

    def list(self, prefix: str | None = None, *, timeout=DEFAULT) -> BundleList:
        """The bundles visible to this peer whose names start with *prefix*."""
        req: dict = {"op": "list"}
        if prefix is not None:
            req["prefix"] = _check(prefix, str, "prefix")
        reply = self._call(req, timeout=timeout)
        out = BundleList(BundleInfo.from_json(b, "list") for b in get(reply, "bundles", list,
                                                                       "list"))
        out.truncated = reply.get("truncated") is True
        return out

    def show(self, name: str, *, timeout=DEFAULT) -> BundleInfo:
        """Everything the daemon says about one bundle."""
        reply = self._call({"op": "show", "name": _check(name, str, "name")}, timeout=timeout)
        return BundleInfo.from_json(get(reply, "bundle", dict, "show"), "show")

    def debug(self, *, timeout=DEFAULT) -> Debug:
        """The daemon's fd accounting, once everything sent before is done."""
        return Debug.from_reply(self._call({"op": "debug"}, timeout=timeout))

    def upgrade(self, *, exe: str | None = None, timeout_ms: int | None = None,
                timeout=DEFAULT) -> Upgraded:
        """Make the daemon hand everything to a new process of itself (or of
        *exe*, an absolute path), which has *timeout_ms* to take over.  The
        reply comes from the new process, which then closes the connection:
        so does the client.  :class:`~cprd_client.errors.UpgradeCanceled`
        when the new process did not take over (the old one goes on)."""
        req: dict = {"op": "upgrade"}
        if exe is not None:
            req["exe"] = os.fspath(exe)
        if timeout_ms is not None:
            req["timeout_ms"] = _check(timeout_ms, int, "timeout_ms")
        reply = self._call(req, timeout=timeout)
        self.close("closed by the daemon's upgrade")
        return Upgraded.from_reply(reply)

    # ------------------------------------------------------------ producer side
    def create(self, name: str, *, consumer_uids=(), consumer_gids=(),
               ttl_ms: int | None = None, tie: bool = False, timeout=DEFAULT) -> None:
        """Create an open bundle, to be filled by :meth:`put` and :meth:`seal`
        on this same connection."""
        req = {"op": "create", "name": _check(name, str, "name"),
               **_bundle_options(consumer_uids, consumer_gids, ttl_ms, tie)}
        self._call(req, timeout=timeout)

    def put(self, name: str, fds, *, timeout=DEFAULT) -> int:
        """Append 1 to 253 fds (borrowed) to an open bundle; returns its count."""
        reply = self._call({"op": "put", "name": _check(name, str, "name")}, fds,
                           timeout=timeout)
        return get(reply, "fds", int, "put")

    def seal(self, name: str, stream, *, timeout=DEFAULT) -> Stored:
        """Seal an open bundle with its state stream: an fd (borrowed), a
        path, bytes, or a :class:`~cprd_client.state.State`."""
        _check(name, str, "name")
        with _stream_fd(stream) as fd:
            reply = self._call({"op": "seal", "name": name}, [fd], timeout=timeout)
        return Stored.from_reply(reply, name, "seal")

    def store(self, name: str, stream, fds=(), *, consumer_uids=(), consumer_gids=(),
              ttl_ms: int | None = None, tie: bool = False, timeout=DEFAULT) -> Stored:
        """Create, fill and seal a bundle: *stream* as for :meth:`seal`, *fds*
        (borrowed) in slot order.  Up to :data:`STORE_FDS_MAX` fds go in one
        ``store`` request (all or nothing); more, or on a connection whose
        version has no ``store``, in create, put and seal, pipelined,
        dropping the bundle again if one of them fails."""
        _check(name, str, "name")
        fds = _fd_list(fds)
        opts = _bundle_options(consumer_uids, consumer_gids, ttl_ms, tie)
        deadline = self._deadline(timeout)
        ops = self.hello_reply.ops if self.hello_reply else None
        with _stream_fd(stream) as sfd:
            if len(fds) <= STORE_FDS_MAX and (ops is None or "store" in ops):
                req = {"op": "store", "name": name, **opts}
                reply = self._exchange(wire.encode(req), [sfd] + fds, deadline, "store")
                return Stored.from_reply(reply, name, "store")
            return self._store_chunked(name, opts, sfd, fds, deadline)

    def _store_chunked(self, name: str, opts: dict, sfd: int, fds: list[int],
                       deadline: wire.Deadline) -> Stored:
        step = wire.MAX_FDS_PER_MESSAGE
        msgs = [("create", {"op": "create", "name": name, **opts}, [])]
        msgs += [("put", {"op": "put", "name": name}, fds[i:i + step])
                 for i in range(0, len(fds), step)]
        msgs += [("seal", {"op": "seal", "name": name}, [sfd])]
        for op, req, part in msgs:  # every request first: replies come in order
            self._send(wire.encode(req), part, deadline, op)
        first, reply = None, None
        for op, _, _ in msgs:
            try:
                reply, got = self._recv(deadline, op)
                wire.close_fds(got)
                self._status(reply, op)
            except errors.CprdError as e:
                first = first or e
                if not self.connected:
                    break
        if first is not None:
            if not isinstance(first, errors.Exists) and self.connected:
                with contextlib.suppress(errors.CprdError):
                    self.drop(name, timeout=deadline.left("drop"))
            raise first
        return Stored.from_reply(reply, name, "seal")

    def store_named(self, name: str, fds, *, producer: str = "cprd_client",
                    level: int | None = None, consumer_uids=(), consumer_gids=(),
                    ttl_ms: int | None = None, tie: bool = False, timeout=DEFAULT) -> Stored:
        """Store plain named fds without writing a stream by hand.

        *fds* maps names to fds (borrowed), or is a sequence of
        :class:`~cprd_client.kinds.NamedFd` for explicit kinds and ids.  The
        stream (FD records only, slot i for the i-th fd, kinds detected by
        :func:`~cprd_client.kinds.detect_kind` unless given) is written by
        :func:`cprd_client.writer.encode` for *level*.
        """
        from .kinds import named_state
        st, order = named_state(fds, producer)
        return self.store(name, st.encode(level), order, consumer_uids=consumer_uids,
                          consumer_gids=consumer_gids, ttl_ms=ttl_ms, tie=tie,
                          timeout=timeout)

    def drop(self, name: str, *, timeout=DEFAULT) -> None:
        """Drop a bundle that is not claimed."""
        self._call({"op": "drop", "name": _check(name, str, "name")}, timeout=timeout)

    # ------------------------------------------------------------ consumer side
    def claim(self, name: str, *, lease_ms: int | None = None, ack: bool = False,
              bound: bool = False, ack_on_exit: bool = False, timeout=DEFAULT) -> Bundle:
        """Claim a bundle: a :class:`~cprd_client.bundle.Bundle` owning the
        stream memfd and the fds.

        *lease_ms*: how long the claim holds (the daemon's default when
        ``None``).  ``bound=True``: the claim is bound to this connection
        (``"ack": true`` in the request; no *lease_ms*): if the connection
        ends before the claim is acknowledged on it, the bundle is sealed
        again at once.  ``ack=True``: take the bundle for good, a bound
        claim the client acknowledges as soon as every fd has arrived.
        *ack_on_exit*: a ``with`` block that ends normally acknowledges.
        """
        req: dict = {"op": "claim", "name": _check(name, str, "name")}
        if lease_ms is not None:
            if ack or bound:
                raise ValueError("a claim bound to its connection takes no lease_ms")
            req["lease_ms"] = _check(lease_ms, int, "lease_ms")
        if ack or bound:
            req["ack"] = True
        deadline, owned, reply = self._deadline(timeout), [], None
        try:
            self._send(wire.encode(req), [], deadline, "claim")
            reply, got = self._recv(deadline, "claim")
            owned += got
            self._status(reply, "claim")
            owned += self._chunks(reply, len(got), deadline)
            bundle = Bundle(self, name, reply, owned[0], owned[1:], ack_on_exit=ack_on_exit)
            owned = []
        except errors.CprdError:
            if reply is not None and reply.get("ok") is True and isinstance(
                    reply.get("token"), str):
                self._release_quietly(name, reply["token"])
            raise
        finally:
            wire.close_fds(owned)
        if ack and not bundle.finished:
            self._take(bundle, deadline)
        return bundle

    def _take(self, bundle: Bundle, deadline: wire.Deadline) -> None:
        """Every fd has arrived: acknowledge on this connection.  A daemon of
        protocol 1 forgot the bundle as it sent it ("acked" in its reply)."""
        try:
            self._call({"op": "ack", "name": bundle.name, "token": bundle.token},
                       timeout=deadline.left("ack"))
        except BaseException:
            bundle.close()  # not ours: the daemon may hand them out again
            raise
        bundle.finished = bundle.acked = True

    def _chunks(self, reply: dict, n_first: int, deadline: wire.Deadline) -> list[int]:
        """The fds of the messages after a claim reply (owned; closed on error)."""
        n = get(reply, "fds", int, "claim")
        off = get(reply, "inline", int, "claim", 0)
        get(reply, "stream_bytes", int, "claim")
        if not 0 <= off <= n or n_first != 1 + off:
            self.close("closed after a claim reply with the wrong fds")
            raise errors.protocol_error(f"claim reply: {n} fds, {off} inline, {n_first} "
                                        "attached", "claim")
        out: list[int] = []
        try:
            while off < n:
                msg, got = self._recv(deadline, "claim")
                out += got
                if msg.get("first") != off or msg.get("count") != len(got) or \
                        not 0 < len(got) <= n - off:
                    self.close("closed after a claim chunk with the wrong fds")
                    raise errors.protocol_error(f"claim chunk {msg!r} with {len(got)} fds "
                                                f"where fds from {off} of {n} were due",
                                                "claim")
                off += len(got)
            return out
        except BaseException:
            wire.close_fds(out)
            raise

    def _release_quietly(self, name: str, token: str) -> None:
        """A claim the client could not complete is given back, if it can be."""
        with contextlib.suppress(errors.CprdError):
            with self.session() as c:
                c.release(name, token, timeout=min(self.timeout or 5.0, 5.0))

    def ack(self, name: str, token: str, *, timeout=DEFAULT) -> None:
        """Acknowledge a claim: the daemon closes its copies, forgets the bundle."""
        self._call({"op": "ack", "name": _check(name, str, "name"),
                    "token": _check(token, str, "token")}, timeout=timeout)

    def release(self, name: str, token: str, *, timeout=DEFAULT) -> None:
        """Give a claim back: the bundle is sealed again."""
        self._call({"op": "release", "name": _check(name, str, "name"),
                    "token": _check(token, str, "token")}, timeout=timeout)

    def renew(self, name: str, token: str, lease_ms: int | None = None, *,
              timeout=DEFAULT) -> int:
        """Extend a claim's lease; returns the lease granted from now, in ms."""
        req = {"op": "renew", "name": _check(name, str, "name"),
               "token": _check(token, str, "token")}
        if lease_ms is not None:
            req["lease_ms"] = _check(lease_ms, int, "lease_ms")
        return get(self._call(req, timeout=timeout), "lease_ms", int, "renew")



@contextlib.contextmanager
def _stream_fd(stream):
    """An fd for a state stream argument; one the caller passed stays theirs."""
    if isinstance(stream, int) and not isinstance(stream, bool):
        yield stream
        return
    if isinstance(stream, State):
        fd = sealed_memfd(stream.encode())
    elif isinstance(stream, (bytes, bytearray, memoryview)):
        fd = sealed_memfd(stream)
    elif isinstance(stream, (str, os.PathLike)):
        fd = os.open(stream, os.O_RDONLY | os.O_CLOEXEC)
    else:
        raise TypeError("stream must be an fd, a path, bytes or a State, "
                        f"not {type(stream).__name__}")
    try:
        yield fd
    finally:
        os.close(fd)
