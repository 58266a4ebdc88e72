# SPDX-License-Identifier: LGPL-2.1-or-later
"""The claim context manager (release on exception, ack only when asked),
fd ownership (nothing leaks, take_fds hands over), and timeouts (a socket
that never answers, per client and per call)."""

import gc
import os
import time

from cprdtest import FakeDaemon, TestCase, open_fds, same_file
from test_ops import stream_for

import cprd_client


class Boom(Exception):
    pass


class TestClaimContext(TestCase):
    def stored(self, c, n=3):
        name, fds = self.name(), self.fds(n)
        c.store(name, stream_for(n), fds)
        return name, fds

    def test_raise_releases(self):
        c = self.client()
        name, _ = self.stored(c)
        before = open_fds()
        with self.assertRaises(Boom):
            with c.claim(name, ack_on_exit=True) as b:
                self.assertEqual(c.show(name).state, "claimed")
                got = set(b.fds) | {b.stream_fd}
                self.assertTrue(got <= open_fds())
                raise Boom()
        self.assertEqual(open_fds(), before)  # every received fd closed
        self.assertTrue(b.finished and b.closed)
        self.assertEqual(c.show(name).state, "sealed")  # released, not acked
        with c.claim(name, ack=True):  # and can be claimed again
            pass

    def test_success_acks_when_asked(self):
        c = self.client()
        name, _ = self.stored(c)
        held = c.debug().fds_held
        with c.claim(name, ack_on_exit=True):
            pass
        with self.assertRaises(cprd_client.NotFound):
            c.show(name)
        self.assertEqual(c.debug().fds_held, held - 4)  # the daemon closed its copies

    def test_success_without_ack_keeps_claim(self):
        c = self.client()
        name, _ = self.stored(c)
        with c.claim(name) as b:
            pass
        self.assertTrue(b.closed)
        self.assertFalse(b.finished)
        self.assertEqual(c.show(name).state, "claimed")
        c.release(name, b.token)

    def test_explicit_ack_in_block(self):
        c = self.client()
        name, _ = self.stored(c)
        with c.claim(name, ack_on_exit=True) as b:
            b.ack()
            self.assertTrue(b.finished)
        with self.assertRaises(ValueError):
            b.release()
        self.assertEqual(c.list(prefix=name), [])

    def test_take_fds_survive_block(self):
        c = self.client()
        name, mine = self.stored(c)
        with c.claim(name, ack_on_exit=True) as b:
            taken = b.take_fds()
            stream = b.take_stream()
            with self.assertRaises(ValueError):
                b.fds
        try:
            for a, t in zip(mine, taken):
                self.assertTrue(same_file(a, t))  # still open: the caller's now
            self.assertEqual(os.pread(stream, 8, 0)[:4], b"\x89CPR")
        finally:
            for fd in taken + [stream]:
                os.close(fd)

    def test_bound_claim_connection_end_reseals(self):
        """A bound claim ends with its connection: sealed again at once."""
        c, other = self.client(), self.client()
        name, _ = self.stored(c)
        b = c.claim(name, bound=True)
        self.assertFalse(b.finished)
        self.assertEqual(other.show(name).state, "claimed")
        b.close()
        c.close()
        other.debug()  # once the daemon has seen the end of that connection
        self.assertEqual(other.show(name).state, "sealed")
        with self.assertRaises(ValueError):
            other.claim(name, bound=True, lease_ms=1000)

    def test_bound_claim_context(self):
        c = self.client()
        name, _ = self.stored(c)
        with self.assertRaises(Boom):
            with c.claim(name, bound=True, ack_on_exit=True):
                raise Boom()
        self.assertEqual(c.show(name).state, "sealed")
        with c.claim(name, bound=True, ack_on_exit=True) as b:
            taken = b.take_fds()
        for fd in taken:
            os.close(fd)
        self.assertEqual(len(taken), 3)
        self.assertEqual(c.list(prefix=name), [])

    def test_raise_with_self_acked_claim(self):
        """With ack=True nothing can be released: the fds not taken are lost."""
        c = self.client()
        name, _ = self.stored(c)
        with self.assertRaises(Boom):
            with c.claim(name, ack=True) as b:
                raise Boom()
        self.assertTrue(b.closed)
        with self.assertRaises(cprd_client.NotFound):
            c.show(name)

    def test_release_when_client_closed(self):
        """The block's failure closed the connection: release uses a new one."""
        c = self.client()
        name, _ = self.stored(c)
        with self.assertRaises(cprd_client.ProtocolError):
            with c.claim(name, ack_on_exit=True):
                c.request_raw(b"[]")  # malformed: the daemon closes the connection
        self.assertFalse(c.connected)
        c.connect()
        self.assertEqual(c.show(name).state, "sealed")
        c.drop(name)

    def test_release_failure_noted(self):
        c = self.client()
        name, _ = self.stored(c)
        with self.assertRaises(Boom) as cm:
            with c.claim(name) as b:
                c.release(name, b.token)  # behind the bundle's back
                raise Boom()
        self.assertIn("releasing the claim", " ".join(cm.exception.__notes__))
        c.drop(name)

    def test_ack_failure_raises(self):
        c = self.client()
        name, _ = self.stored(c)
        with self.assertRaises(cprd_client.StaleClaim):
            with c.claim(name, ack_on_exit=True) as b:
                c.release(name, b.token)
        self.assertTrue(b.closed)
        c.drop(name)

    def test_unclosed_bundle_warns_and_closes(self):
        c = self.client()
        name, _ = self.stored(c)
        before = open_fds()
        b = c.claim(name, ack=True)
        self.assertEqual(len(open_fds() - before), 4)
        with self.assertWarns(ResourceWarning):
            del b
            gc.collect()
        self.assertEqual(open_fds(), before)

    def test_client_context_closes_socket(self):
        before = open_fds()
        with cprd_client.Client() as c:
            c.hello()
            self.assertIn(c.fileno(), open_fds())
        self.assertEqual(open_fds(), before)
        self.assertEqual(c.fileno(), -1)


def silent(conn):
    """Read requests and never answer, until the client hangs up."""
    while conn.recv(65536):
        pass


class TestTimeouts(TestCase):
    def assertTimesOut(self, fn, seconds: float):
        t0 = time.monotonic()
        with self.assertRaises(cprd_client.TimedOut) as cm:
            fn()
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, seconds * 0.9)
        self.assertLess(took, seconds + 2)
        self.assertIsInstance(cm.exception, TimeoutError)
        self.assertEqual(cm.exception.error, "ETIMEDOUT")
        return cm.exception

    def test_client_default_timeout(self):
        with FakeDaemon(silent) as fake:
            c = self.client(fake.path, timeout=0.3)
            e = self.assertTimesOut(c.hello, 0.3)
            self.assertEqual(e.op, "hello")
            self.assertFalse(c.connected)  # replies would no longer match
            c.close()

    def test_per_call_timeout(self):
        with FakeDaemon(silent) as fake:
            c = self.client(fake.path, timeout=60)
            self.assertTimesOut(lambda: c.claim("x", timeout=0.2), 0.2)
            c.connect()
            self.assertTimesOut(lambda: c.status(timeout=0.25), 0.25)
            c.close()

    def test_never_accepted(self):
        """A listener whose backlog holds the connection but never accepts it."""
        with FakeDaemon() as fake:
            c = self.client(fake.path, timeout=0.2)
            self.assertTimesOut(c.list, 0.2)

    def test_no_timeout_is_none(self):
        with FakeDaemon(silent) as fake:
            c = self.client(fake.path, timeout=None)
            self.assertIsNone(c._deadline(cprd_client.DEFAULT).left("x"))
            self.assertTimesOut(lambda: c.debug(timeout=0.1), 0.1)

    def test_timeout_then_reconnect_to_daemon(self):
        c = self.client(timeout=5)
        with self.assertRaises(cprd_client.TimedOut):
            c.hello(timeout=0)
        c.connect()
        self.assertGreaterEqual(c.hello().protocol, 1)
