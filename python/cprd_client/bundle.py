# SPDX-License-Identifier: LGPL-2.1-or-later
"""A claimed bundle: the fds a claim delivered, owned until taken.

:meth:`cprd_client.Client.claim` returns a :class:`Bundle`.  It owns the
sealed stream memfd and the fds of slots 0 to N-1 and closes every one it
still owns when it is closed, when its ``with`` block ends, or (with a
:class:`ResourceWarning`) when it is garbage-collected.  :meth:`Bundle.take_fds`
and :meth:`Bundle.take_stream` hand them over to the caller instead.

As a context manager::

    with client.claim("vm/42/ram", ack_on_exit=True) as bundle:
        fds = bundle.take_fds()   # adopt them
        ...                       # validate, map, start the guest

* if the block raises, the claim is released (the bundle is sealed again,
  e.g. for the old VMM to take back) and the exception goes on;
* if it ends normally and ``ack_on_exit`` was asked, the claim is
  acknowledged (the daemon closes its copies); otherwise the claim is left
  as it is, until :meth:`ack`, :meth:`release` or the lease lapses;
* either way every fd not taken is closed.

A claim made with ``bound=True`` is bound to its connection: if the
connection ends before the claim is acknowledged on it (the process died,
or the client closed the connection after a timeout), the daemon seals the
bundle again at once instead of waiting for the lease to lapse.

A claim made with ``ack=True`` was acknowledged as soon as every fd had
arrived: nothing can be released, and a block that raises loses the fds it
did not take.
"""

import os
import warnings

from .reader import decode
from .state import State
from .wire import close_fds


class Bundle:
    """The result of a claim.  Attributes: ``name``, ``token`` (``None``
    from a daemon of protocol 1 for a claim with ``ack``), ``lease_ms``,
    ``acked``, ``stream_bytes``, ``finished`` (acknowledged or released)
    and ``reply``."""

    def __init__(self, client, name: str, reply: dict, stream_fd: int, fds: list[int],
                 *, ack_on_exit: bool = False):
        self.name = name
        self.reply = reply
        self.token: str | None = reply.get("token")
        self.lease_ms: int | None = reply.get("lease_ms")
        self.acked = reply.get("acked") is True
        self.stream_bytes: int = reply["stream_bytes"]
        self.finished = self.acked
        self.ack_on_exit = ack_on_exit
        self._client = client
        self._stream: int | None = stream_fd
        self._fds: list[int] | None = list(fds)
        self._n = len(fds)

    def __repr__(self) -> str:
        state = "acked" if self.acked else "finished" if self.finished else "claimed"
        return f"<Bundle {self.name!r} {self._n} fds, {state}>"

    def __len__(self) -> int:
        return self._n

    @property
    def stream_fd(self) -> int:
        """The sealed stream memfd (still owned by the bundle)."""
        if self._stream is None:
            raise ValueError("the stream fd was taken or closed")
        return self._stream

    @property
    def fds(self) -> tuple[int, ...]:
        """The fds of slots 0 to N-1 (still owned by the bundle)."""
        if self._fds is None:
            raise ValueError("the fds were taken or closed")
        return tuple(self._fds)

    def take_fds(self) -> list[int]:
        """Hand the fds of slots 0 to N-1 to the caller, who closes them."""
        fds = list(self.fds)
        self._fds = None
        return fds

    def take_stream(self) -> int:
        """Hand the stream memfd to the caller, who closes it."""
        fd = self.stream_fd
        self._stream = None
        return fd

    def read_stream(self) -> bytes:
        """The state stream's bytes, read from offset 0."""
        out = bytearray()
        while len(out) < self.stream_bytes:
            chunk = os.pread(self.stream_fd, self.stream_bytes - len(out), len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def state(self) -> State:
        """The stream decoded (:func:`cprd_client.reader.decode`)."""
        return decode(self.read_stream())

    def named_fds(self) -> dict[str, int]:
        """FD record name -> fd (still owned by the bundle).  ValueError if
        a name occurs twice (with different ids): use :meth:`state` then."""
        fds, out = self.fds, {}
        for rec in self.state().fds:
            if rec.name in out:
                raise ValueError(f"FD name {rec.name!r} occurs more than once")
            if rec.slot is None or rec.slot >= len(fds):
                raise ValueError(f"FD {rec.name!r}: slot {rec.slot} has no fd")
            out[rec.name] = fds[rec.slot]
        return out

    def _token(self) -> str:
        if self.finished or self.token is None:
            raise ValueError(f"bundle {self.name!r} is no longer claimed by this object")
        return self.token

    def ack(self, **kw) -> None:
        """Acknowledge the claim: the daemon closes its copies and forgets the bundle."""
        token = self._token()
        with self._client.session() as c:
            c.ack(self.name, token, **kw)
        self.finished = True

    def release(self, **kw) -> None:
        """Give the claim back: the bundle is sealed again."""
        token = self._token()
        with self._client.session() as c:
            c.release(self.name, token, **kw)
        self.finished = True

    def renew(self, lease_ms: int | None = None, **kw) -> int:
        """Extend the lease; returns the lease the daemon granted, in ms."""
        token = self._token()
        with self._client.session() as c:
            self.lease_ms = c.renew(self.name, token, lease_ms, **kw)
        return self.lease_ms

    def close(self) -> None:
        """Close every fd the bundle still owns.  The claim is not touched."""
        fds = ([self._stream] if self._stream is not None else []) + (self._fds or [])
        self._stream, self._fds = None, None
        close_fds(fds)

    @property
    def closed(self) -> bool:
        return self._stream is None and self._fds is None

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.finished or self.token is None:
                return
            if exc_type is None:
                if self.ack_on_exit:
                    self.ack()
                return
            try:
                self.release()
            except Exception as e:  # the block's exception is the one that matters
                if exc is not None:
                    exc.add_note(f"cprd_client: releasing the claim of {self.name!r} "
                                 f"failed too: {e}")
        finally:
            self.close()

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
            self.close()
