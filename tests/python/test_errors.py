# SPDX-License-Identifier: LGPL-2.1-or-later
"""Each exception class raised from a real daemon error (or, for the
client's own, from a real socket), with errno, op and message."""

import errno
import json
import os
import re
import resource
import socket
import time
import unittest

from cprdtest import (NOBODY, TOP_SRCDIR, Daemon, FakeDaemon, TestCase, as_user, is_root,
                      memfd, with_crc)
from test_ops import stream_for

import cprd_client
from cprd_client import FdKind, NamedFd, errors


class ErrorCase(TestCase):
    def assertError(self, cls, name: str, fn, *args, **kw) -> cprd_client.CprdError:
        with self.assertRaises(cls) as cm:
            fn(*args, **kw)
        e = cm.exception
        self.assertIs(type(e), cls)
        self.assertEqual((e.error, e.errno), (name, getattr(errno, name)))
        self.assertIsInstance(e, OSError)
        self.assertTrue(e.message, "no message")
        self.assertIn(name, str(e))
        return e


class TestMapping(TestCase):
    def test_every_documented_error_has_a_class(self):
        with open(os.path.join(TOP_SRCDIR, "man", "cprd-protocol.7")) as f:
            page = f.read()
        section = page[page.index(".Sh ERROR NAMES"):page.index(".Sh EXAMPLES")]
        names = set(re.findall(r"Er (E[A-Z]+)", section))
        self.assertGreaterEqual(len(names), 20)
        for name in names:
            cls = errors.ERRORS.get(name)
            self.assertIsNotNone(cls, name)
            self.assertTrue(issubclass(cls, cprd_client.CprdError), name)
            self.assertIsNot(cls, cprd_client.CprdError, name)
            self.assertIsInstance(getattr(errno, name), int)

    def test_builtin_bases(self):
        self.assertTrue(issubclass(cprd_client.NotFound, FileNotFoundError))
        self.assertTrue(issubclass(cprd_client.Exists, FileExistsError))
        self.assertTrue(issubclass(cprd_client.PermissionDenied, PermissionError))
        self.assertTrue(issubclass(cprd_client.TimedOut, TimeoutError))
        self.assertTrue(issubclass(cprd_client.QuotaExceeded, cprd_client.LimitReached))
        self.assertTrue(issubclass(cprd_client.InvalidRequest, cprd_client.ProtocolError))

    def test_unknown_name(self):
        e = errors.from_reply({"ok": False, "error": "EWHATEVER", "message": "m"}, "x")
        self.assertIs(type(e), cprd_client.CprdError)
        self.assertEqual((e.errno, e.error, e.op), (errno.EIO, "EWHATEVER", "x"))


class TestDaemonErrors(ErrorCase):
    """On the shared daemon."""

    def stored(self, c, n=1):
        name = self.name()
        c.store(name, stream_for(n), self.fds(n))
        return name

    def test_not_found(self):
        e = self.assertError(cprd_client.NotFound, "ENOENT", self.client().show, self.name())
        self.assertEqual(e.op, "show")
        self.assertFalse(e.closing)
        self.assertEqual(e.reply["ok"], False)

    def test_exists(self):
        c = self.client()
        name = self.stored(c)
        self.assertError(cprd_client.Exists, "EEXIST", c.create, name)
        self.assertTrue(c.connected)  # not fatal

    def test_busy(self):
        c = self.client()
        name = self.stored(c)
        self.assertError(cprd_client.Busy, "EBUSY", c.put, name, self.fds(1))
        with c.claim(name, ack_on_exit=True):
            self.assertError(cprd_client.Busy, "EBUSY", c.claim, name)
            self.assertError(cprd_client.Busy, "EBUSY", c.drop, name)

    def test_stale_claim(self):
        c = self.client()
        name = self.stored(c)
        self.assertError(cprd_client.StaleClaim, "ESTALE", c.ack, name, "0" * 32)
        with c.claim(name, ack_on_exit=True):
            self.assertError(cprd_client.StaleClaim, "ESTALE", c.release, name, "f" * 32)

    def test_out_of_range(self):
        c = self.client()
        name = self.stored(c)
        limit = c.hello().limits["lease_max_ms"]
        self.assertError(cprd_client.OutOfRange, "ERANGE", c.claim, name, lease_ms=limit + 1)
        with c.claim(name, ack_on_exit=True) as b:
            self.assertError(cprd_client.OutOfRange, "ERANGE", b.renew, limit + 1)

    def test_invalid_stream_bad_crc(self):
        c = self.client()
        bad = bytearray(stream_for(1))
        bad[-16] ^= 0xFF
        self.assertError(cprd_client.InvalidStream, "EBADMSG", c.store, self.name(),
                         bytes(bad), self.fds(1))

    def test_invalid_stream_fds_do_not_match(self):
        c = self.client()
        e = self.assertError(cprd_client.InvalidStream, "EBADMSG", c.store, self.name(),
                             stream_for(2), self.fds(1))
        self.assertEqual(e.op, "store")

    def test_invalid_stream_kind_checked(self):
        c = self.client()
        r, w = os.pipe2(os.O_CLOEXEC)
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        e = self.assertError(cprd_client.InvalidStream, "EBADMSG", c.store_named, self.name(),
                             [NamedFd("ram", r, FdKind.MEMFD)])
        self.assertIn("memfd", e.message)

    def test_invalid_stream_newer_reader(self):
        c = self.client()
        data = bytearray(stream_for(0))
        data[32] = 0x80  # an incompat_features bit no reader knows
        self.assertError(cprd_client.InvalidStream, "EPROTONOSUPPORT", c.store, self.name(),
                         with_crc(data))

    def test_invalid_stream_not_a_file(self):
        c = self.client()
        r, w = os.pipe2(os.O_CLOEXEC)
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        os.write(w, stream_for(0))
        self.assertError(cprd_client.InvalidStream, "EBADFD", c.store, self.name(), r)

    def test_protocol_error_closes(self):
        c = self.client()
        e = self.assertError(cprd_client.ProtocolError, "EPROTO", c.request_raw, b'{"op":')
        self.assertTrue(e.closing)
        self.assertFalse(c.connected)
        with self.assertRaises(cprd_client.ConnectionClosed):
            c.hello()
        c.connect()
        c.hello()

    def test_invalid_requests(self):
        c = self.client()
        big = json.dumps({"op": "list", "prefix": "x" * 70000}).encode()
        for name, call in (("EINVAL", lambda: c.request({"op": "list", "bogus": 1})),
                           ("EINVAL", lambda: c.claim("..bad name")),
                           ("EOPNOTSUPP", lambda: c.request({"op": "no-such-op"})),
                           ("EBADF", lambda: c.request({"op": "status"}, self.fds(1))),
                           ("EMSGSIZE", lambda: c.request_raw(big))):
            with self.subTest(error=name):
                e = self.assertError(cprd_client.InvalidRequest, name, call)
                self.assertTrue(e.closing)
                self.assertFalse(c.connected)
                c.connect()


class TestLimits(ErrorCase):
    """On daemons of their own, with small limits."""

    def test_limit_reached(self):
        with Daemon(limits={"max-bundles": 1}) as d:
            c = self.client(d.path)
            c.store(self.name(), stream_for(0))
            self.assertError(cprd_client.LimitReached, "ENOSPC", c.create, self.name())

    def test_quota_exceeded(self):
        with Daemon(limits={"max-fds-per-uid": 3}) as d:
            c = self.client(d.path)
            e = self.assertError(cprd_client.QuotaExceeded, "EDQUOT", c.store, self.name(),
                                 stream_for(3), self.fds(3))  # 3 + the stream
            self.assertIsInstance(e, cprd_client.LimitReached)

    def test_too_large(self):
        with Daemon(limits={"max-stream": 4096}) as d:
            c = self.client(d.path)
            self.assertError(cprd_client.TooLarge, "EFBIG", c.store, self.name(), bytes(8192))

    def test_temporary_failure_max_connections(self):
        with Daemon(limits={"max-connections": 1}) as d:
            first = None
            for _ in range(100):  # until the daemon has seen the probe's end
                first = self.client(d.path)
                try:
                    first.hello()
                    break
                except cprd_client.TemporaryFailure:
                    first.close()
                    time.sleep(0.02)
            e = self.assertError(cprd_client.TemporaryFailure, "EAGAIN",
                                 self.client(d.path).hello)
            first.hello()

    def test_temporary_failure_fd_limit(self):
        with Daemon() as d:
            c = self.client(d.path)
            c.hello()
            n = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
            old = resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE)
            resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (n, old[1]))
            try:
                self.assertError(cprd_client.TemporaryFailure, "EMFILE", c.debug)
            finally:
                resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, old)
            c.debug()

    def test_process_gone(self):
        """ESRCH: only on kernels without SO_PEERPIDFD, where the daemon
        opens a pidfd from the peer's pid when a bundle is tied."""
        c = self.client()
        if c.hello().peer.pidfd:
            self.skipTest("the kernel has SO_PEERPIDFD: the daemon never answers ESRCH")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # connect, so that the peer is this child, and exit
            try:
                sock.connect(c.path)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        gone = cprd_client.Client.adopt(sock)
        self.addCleanup(gone.close)
        self.assertError(cprd_client.ProcessGone, "ESRCH", gone.create, self.name(), tie=True)


@unittest.skipUnless(is_root(), "needs root to act as another uid")
class TestAccess(ErrorCase):
    def test_permission_denied_claim(self):
        """Root sees another uid's bundle (an administrator) but may not claim it."""
        name = "uid-%d/%s" % (NOBODY, self.name())  # a name nobody may create

        def store():
            with cprd_client.Client() as c:
                fd = memfd(b"nobody's")
                try:
                    c.store(name, stream_for(1), [fd])
                finally:
                    os.close(fd)
        as_user(store)
        c = self.client()
        self.assertEqual(c.show(name).owner_uid, NOBODY)
        e = self.assertError(cprd_client.PermissionDenied, "EACCES", c.claim, name)
        self.assertIsInstance(e, PermissionError)
        c.drop(name)  # an administrator may clean up

    def test_permission_denied_admin_ops(self):
        def debug_then_upgrade():
            with cprd_client.Client() as c:
                out = []
                for op in (c.debug, c.upgrade):
                    try:
                        op()
                    except cprd_client.PermissionDenied as e:
                        out.append((e.error, e.op, c.connected))
                return out
        self.assertEqual(as_user(debug_then_upgrade),
                         [("EPERM", "debug", True), ("EPERM", "upgrade", True)])

    def test_consumers(self):
        c = self.client()
        mine, theirs = self.name(), self.name()
        c.store(mine, stream_for(1), self.fds(1))
        c.store(theirs, stream_for(1), self.fds(1), consumer_uids=[NOBODY])

        def claim(name):
            with cprd_client.Client() as nc:
                try:
                    with nc.claim(name, ack=True) as b:
                        return len(b)
                except cprd_client.NotFound as e:
                    return e.error
        self.assertEqual(as_user(lambda: claim(mine)), "ENOENT")
        self.assertEqual(as_user(lambda: claim(theirs)), 1)
        c.drop(mine)


class TestClientErrors(ErrorCase):
    def test_unavailable(self):
        e = self.assertError(cprd_client.Unavailable, "ENOENT", cprd_client.Client,
                             "/nonexistent/cprd.sock")
        self.assertIsInstance(e, ConnectionError)
        self.assertEqual(e.op, "connect")

    def test_closed_fd_refused_by_the_kernel(self):
        """sendmsg refuses a closed fd whole: nothing was sent, the
        connection stays in step and the open bundle stays open."""
        c = self.client()
        name = self.name()
        c.create(name)
        fd = memfd()
        os.close(fd)
        e = self.assertError(cprd_client.InvalidRequest, "EBADF", c.put, name, [fd])
        self.assertIsNone(e.reply)
        self.assertTrue(c.connected)
        self.assertEqual(c.put(name, self.fds(1)), 1)
        with self.assertRaises(ValueError):
            c.put(name, [-1])
        with self.assertRaises(TypeError):
            c.put(name, ["3"])
        self.assertEqual(c.show(name).state, "open")

    def test_connection_closed_by_daemon(self):
        d = Daemon()
        c = self.client(d.path)
        c.hello()
        d.stop()
        with self.assertRaises(cprd_client.ConnectionClosed) as cm:
            c.hello()
        self.assertIn(cm.exception.errno, (errno.EPIPE, errno.ECONNRESET))
        self.assertFalse(c.connected)
        with self.assertRaises(cprd_client.ConnectionClosed):
            c.status()

    def test_refusal_before_close_is_the_error(self):
        """A daemon at max-connections sends EAGAIN and closes: whether the
        client's send then fails (EPIPE) or its receive does (ECONNRESET,
        which the kernel reports before the queued reply), the error raised
        is the daemon's EAGAIN."""
        refusal = b'{"ok":false,"error":"EAGAIN","message":"too many connections",' \
                  b'"closing":true}'
        for unread in (False, True):
            with self.subTest(request_unread=unread):
                a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                c = cprd_client.Client.adopt(a, timeout=2)
                self.addCleanup(c.close)
                if unread:
                    a.send(b'{"op":"hello"}')  # as if sent before the close
                b.send(refusal)
                b.close()
                call = (lambda: c._recv(c._deadline(cprd_client.DEFAULT), "hello")) \
                    if unread else c.hello
                e = self.assertError(cprd_client.TemporaryFailure, "EAGAIN", call)
                self.assertTrue(e.closing)
                self.assertFalse(c.connected)

    def test_reply_not_json(self):
        def serve(conn):
            conn.recv(4096)
            conn.send(b"not json")
        with FakeDaemon(serve) as fake:
            c = self.client(fake.path)
            e = self.assertError(cprd_client.ProtocolError, "EPROTO", c.hello)
            self.assertIsNone(e.reply)
            self.assertFalse(c.connected)

    def test_unexpected_fds_closed(self):
        """Receiving owns: fds on a reply that takes none are closed."""
        extra = self.fds(3)

        def serve(conn):
            conn.recv(4096)
            socket.send_fds(conn, [b'{"ok":true,"op":"status"}'], extra)
        with FakeDaemon(serve) as fake:
            self.assertEqual(self.client(fake.path).request({"op": "status"})["op"], "status")

    def test_claim_chunk_mismatch_closes_everything(self):
        fds = self.fds(3)
        released = []

        def serve(conn):
            req = json.loads(conn.recv(4096))
            if req["op"] == "release":
                released.append(req["token"])
                conn.send(b'{"ok":true,"op":"release","state":"sealed"}')
                return
            reply = {"ok": True, "op": "claim", "name": req["name"], "token": "a" * 32,
                     "lease_ms": 1000, "fds": 3, "inline": 0, "chunks": 1,
                     "stream_bytes": 8}
            socket.send_fds(conn, [json.dumps(reply).encode()], fds[:1])
            socket.send_fds(conn, [b'{"chunk":0,"first":0,"count":3}'], fds[1:])
            conn.recv(4096)  # until the client hangs up
        with FakeDaemon(serve) as fake:
            c = self.client(fake.path, timeout=5)
            e = self.assertError(cprd_client.ProtocolError, "EPROTO", c.claim, "x")
            self.assertIn("chunk", e.message)
        self.assertEqual(released, ["a" * 32])  # the claim was given back
