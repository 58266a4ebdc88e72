# SPDX-License-Identifier: LGPL-2.1-or-later
"""Typed views of the daemon's replies.

Each holds the members cprd-protocol(7) documents for the operation and, in
``raw``, the whole reply object: clients must ignore members they do not
know, and ``raw`` keeps them for those who want them.  A documented member
that is missing or of the wrong type raises :class:`~cprd_client.errors.ProtocolError`.
"""

from dataclasses import dataclass, field
from typing import Any

from . import errors

_NO = object()


def get(reply: dict, key: str, kind: type, op: str, default: Any = _NO) -> Any:
    """``reply[key]`` checked to be a *kind* (bool is not an int here)."""
    v = reply.get(key, _NO)
    if v is _NO and default is not _NO:
        return default
    ok = isinstance(v, kind) and (kind is bool or not isinstance(v, bool))
    if not ok:
        raise errors.protocol_error(f"reply member \"{key}\" is missing or not {kind.__name__}",
                                    op)
    return v


@dataclass(frozen=True)
class Peer:
    """How the daemon sees the caller."""

    pid: int
    uid: int
    gid: int
    pidfd: bool
    admin: bool


@dataclass(frozen=True)
class Hello:
    """The reply of ``hello``: the daemon's protocol version, the version
    this connection speaks (the daemon's, from a daemon that negotiates
    none), levels, ops and limits."""

    protocol: int
    version: int
    server: str
    levels: tuple[int, ...]
    ops: tuple[str, ...]
    limits: dict[str, int]
    peer: Peer
    raw: dict = field(repr=False)

    @classmethod
    def from_reply(cls, r: dict) -> "Hello":
        p = get(r, "peer", dict, "hello")
        peer = Peer(*(get(p, k, int, "hello") for k in ("pid", "uid", "gid")),
                    get(p, "pidfd", bool, "hello"), get(p, "admin", bool, "hello"))
        protocol = get(r, "protocol", int, "hello")
        return cls(protocol, get(r, "version", int, "hello", protocol),
                   get(r, "server", str, "hello"),
                   tuple(get(r, "levels", list, "hello")), tuple(get(r, "ops", list, "hello")),
                   get(r, "limits", dict, "hello"), peer, r)


@dataclass(frozen=True)
class Status:
    """The reply of ``status``."""

    bundles: dict[str, int]
    fds: int
    connections: int
    requests: int
    pid: int
    uptime_ms: int
    fdstore: bool
    limits: dict[str, int]
    you: dict[str, int]
    raw: dict = field(repr=False)

    @classmethod
    def from_reply(cls, r: dict) -> "Status":
        g = lambda k, t: get(r, k, t, "status")  # noqa: E731
        return cls(g("bundles", dict), g("fds", int), g("connections", int),
                   g("requests", int), g("pid", int), g("uptime_ms", int), g("fdstore", bool),
                   g("limits", dict), g("you", dict), r)


@dataclass(frozen=True)
class BundleInfo:
    """A bundle as ``list`` reports it; ``show`` fills the other members
    (``None`` when the daemon did not send them)."""

    name: str
    state: str
    owner_uid: int
    fds: int
    owner_gid: int | None = None
    owner_pid: int | None = None
    consumers: dict | None = None
    age_ms: int | None = None
    ttl_ms: int | None = None
    expires_in_ms: int | None = None
    claims: int | None = None
    tied: bool | None = None
    persisted: bool | None = None
    lease: dict | None = None
    stream: dict | None = None
    raw: dict = field(default_factory=dict, repr=False)

    _OPTIONAL = (("owner_gid", int), ("owner_pid", int), ("consumers", dict), ("age_ms", int),
                 ("ttl_ms", int), ("expires_in_ms", int), ("claims", int), ("tied", bool),
                 ("persisted", bool), ("lease", dict), ("stream", dict))

    @classmethod
    def from_json(cls, b: Any, op: str) -> "BundleInfo":
        if not isinstance(b, dict):
            raise errors.protocol_error("a bundle entry is not an object", op)
        more = {k: get(b, k, t, op, None) for k, t in cls._OPTIONAL}
        return cls(get(b, "name", str, op), get(b, "state", str, op),
                   get(b, "owner_uid", int, op), get(b, "fds", int, op), **more, raw=b)


class BundleList(list):
    """The entries of ``list``; :attr:`truncated` when the daemon had more."""

    truncated: bool = False


@dataclass(frozen=True)
class Stored:
    """The reply of ``seal`` and ``store``: the bundle is sealed."""

    name: str
    fds: int
    stream_bytes: int
    persisted: bool
    raw: dict = field(repr=False)

    @classmethod
    def from_reply(cls, r: dict, name: str, op: str) -> "Stored":
        return cls(get(r, "name", str, op, name), get(r, "fds", int, op),
                   get(r, "stream_bytes", int, op), get(r, "persisted", bool, op), r)


@dataclass(frozen=True)
class Debug:
    """The reply of ``debug``: the daemon's own fd accounting."""

    fds_open: int
    fds_held: int
    fds_queued: int
    bundles: int
    connections: int
    raw: dict = field(repr=False)

    @classmethod
    def from_reply(cls, r: dict) -> "Debug":
        return cls(*(get(r, k, int, "debug") for k in
                     ("fds_open", "fds_held", "fds_queued", "bundles", "connections")), r)


@dataclass(frozen=True)
class Upgraded:
    """The reply of ``upgrade``, from the daemon's new image: its *pid*,
    the *previous_pid* (``None`` from a daemon that re-executed in place)."""

    pid: int
    previous_pid: int | None
    bundles: int
    fds: int
    raw: dict = field(repr=False)

    @classmethod
    def from_reply(cls, r: dict) -> "Upgraded":
        g = lambda k: get(r, k, int, "upgrade")  # noqa: E731
        return cls(g("pid"), get(r, "previous_pid", int, "upgrade", None), g("bundles"),
                   g("fds"), r)
