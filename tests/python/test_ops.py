# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every operation of cprd-protocol(7) through the Python client, against a
real daemon: replies typed, fds delivered as the same open files."""

import os
import re
import socket

from cprdtest import Daemon, TestCase, is_root, memfd, same_file

import cprd_client
from cprd_client import FdKind, NamedFd, State
from cprd_client.client import STORE_FDS_MAX
from cprd_client.kinds import _chardev_kind, chardev_driver, detect_kind, named_state


def stream_for(n: int) -> bytes:
    """A stream of *n* generic FD records, slots 0 to n-1."""
    st = State(producer="test_ops")
    for i in range(n):
        st.add_fd(f"dev{i}", FdKind.GENERIC, i)
    return st.encode()


class TestInfo(TestCase):
    def test_hello(self):
        h = self.client().hello(client="test_ops")
        # the version is read from the reply, never required to be a number
        self.assertIsInstance(h.protocol, int)
        self.assertGreaterEqual(h.protocol, 1)
        self.assertEqual(h.version, min(h.protocol, cprd_client.PROTOCOL_VERSION))
        self.assertTrue(h.server.startswith("cprd"))
        self.assertTrue(set(h.levels) & {cprd_client.LEVEL_MIN, cprd_client.LEVEL_MAX})
        self.assertEqual(h.peer.uid, os.geteuid())
        self.assertEqual(h.peer.pid, os.getpid())
        self.assertEqual(h.limits["max_fds_per_message"], 253)
        # every op the daemon lists is a method of the client
        for op in h.ops:
            self.assertTrue(callable(getattr(cprd_client.Client, op, None)), op)

    def test_hello_without_version(self):
        h = self.client().hello(version=None)
        self.assertEqual(h.version, h.protocol)

    def test_version_1_connection(self):
        """A connection that speaks protocol 1 has no store op: the client
        stores with create, put and seal instead."""
        c = self.client()
        h = c.hello(version=1)
        self.assertEqual(h.version, 1)
        if "store" in h.ops:
            self.skipTest(f"{h.server} has store at protocol 1")
        name = self.name()
        self.assertEqual(c.store(name, stream_for(2), self.fds(2)).fds, 2)
        with self.assertRaises(cprd_client.InvalidRequest) as cm:
            c.request({"op": "store", "name": self.name()}, self.fds(1))
        self.assertEqual(cm.exception.error, "EOPNOTSUPP")
        self.assertIn("store", cm.exception.message)
        c.connect()
        c.drop(name)

    def test_status(self):
        c = self.client()
        s = c.status()
        self.assertEqual(set(s.bundles), {"open", "sealed", "claimed"})
        self.assertEqual(s.you["uid"], os.geteuid())
        self.assertGreaterEqual(s.connections, 1)
        self.assertIsInstance(s.fdstore, bool)

    def test_list_and_show(self):
        c = self.client()
        name = self.name()
        c.store(name, stream_for(2), self.fds(2), consumer_uids=[1234], consumer_gids=[99],
                ttl_ms=600000)
        found = c.list(prefix=name)
        self.assertEqual([b.name for b in found], [name])
        self.assertFalse(found.truncated)
        self.assertEqual((found[0].state, found[0].fds, found[0].owner_uid),
                         ("sealed", 2, os.geteuid()))
        info = c.show(name)
        self.assertEqual(info.consumers, {"uids": [1234], "gids": [99]})
        self.assertEqual(info.ttl_ms, 600000)
        self.assertEqual(info.stream["producer"], "test_ops")
        self.assertEqual([r["name"] for r in info.stream["fd_records"]], ["dev0", "dev1"])
        self.assertEqual(info.owner_pid, os.getpid())
        self.assertEqual(c.list(prefix=name + "-nothing"), [])
        c.drop(name)

    def test_debug(self):
        d = self.client().debug()
        self.assertGreaterEqual(d.fds_open, 1)
        self.assertGreaterEqual(d.connections, 1)


class TestProducer(TestCase):
    def test_create_put_seal(self):
        c = self.client()
        name, fds = self.name(), self.fds(3)
        c.create(name, consumer_uids=[107], tie=True)
        self.assertEqual(c.show(name).state, "open")
        self.assertEqual(c.put(name, fds[:2]), 2)
        self.assertEqual(c.put(name, fds[2:]), 3)
        st = c.seal(name, stream_for(3))
        self.assertEqual((st.name, st.fds), (name, 3))
        self.assertGreater(st.stream_bytes, 0)
        self.assertTrue(c.show(name).tied)
        c.drop(name)

    def test_seal_stream_kinds(self):
        """A stream as bytes, a State, a path and a borrowed fd."""
        c = self.client()
        data = stream_for(1)
        path = os.path.join(os.environ.get("CPR_TEST_TMP", "/tmp"), f"s{os.getpid()}.cpr")
        with open(path, "wb") as f:
            f.write(data)
        self.addCleanup(os.unlink, path)
        sfd = memfd(data)
        self.addCleanup(os.close, sfd)
        state = State(producer="test_ops")
        state.add_fd("dev0", FdKind.GENERIC, 0)
        for stream in (data, state, path, sfd):
            with self.subTest(stream=type(stream).__name__):
                name = self.name()
                c.create(name)
                c.put(name, self.fds(1))
                self.assertEqual(c.seal(name, stream).stream_bytes, len(data))
                c.drop(name)
        os.fstat(sfd)  # the caller's fd is still open

    def test_store_and_claim_same_files(self):
        c = self.client()
        name, fds, stream = self.name(), self.fds(4), stream_for(4)
        c.store(name, stream, fds)
        with c.claim(name, ack_on_exit=True) as b:
            self.assertEqual(len(b), 4)
            self.assertRegex(b.token, r"^[0-9a-f]{32}$")
            for mine, got in zip(fds, b.fds):
                self.assertTrue(same_file(mine, got))
            self.assertEqual(b.read_stream(), stream)
            self.assertEqual(b.state().fds[3].name, "dev3")
        with self.assertRaises(cprd_client.NotFound):
            c.show(name)

    def test_store_chunked(self):
        """More fds than one message carries: create, put, seal; claimed in chunks."""
        c = self.client()
        n = 2 * 253 + 10
        name, fds = self.name(), self.fds(n)
        st = c.store(name, stream_for(n), fds)
        self.assertEqual(st.fds, n)
        with c.claim(name, lease_ms=60000) as b:
            self.assertEqual(b.reply["chunks"], 3)
            self.assertEqual(len(b.fds), n)
            self.assertTrue(all(same_file(a, g) for a, g in zip(fds, b.fds)))
            b.ack()
        self.assertEqual(c.list(prefix=name), [])

    def test_store_chunked_refused_leaves_nothing(self):
        c = self.client()
        n = STORE_FDS_MAX + 1
        name = self.name()
        with self.assertRaises(cprd_client.InvalidStream):
            c.store(name, stream_for(n - 1), self.fds(n))  # one record short
        self.assertEqual(c.list(prefix=name), [])

    def test_store_named(self):
        c = self.client()
        name = self.name()
        ram = memfd(b"guest ram")
        ev = os.eventfd(0, os.EFD_CLOEXEC)
        r, w = os.pipe2(os.O_CLOEXEC)
        for fd in (ram, ev, r, w):
            self.addCleanup(os.close, fd)
        c.store_named(name, {"ram": ram, "irq0": ev, "log": w})
        kinds = {x["name"]: x["kind"] for x in c.show(name).stream["fd_records"]}
        self.assertEqual(kinds, {"ram": "memfd", "irq0": "eventfd", "log": "generic"})
        with c.claim(name, ack=True) as b:
            got = b.named_fds()
            self.assertTrue(same_file(got["ram"], ram))
            self.assertEqual(os.pread(got["ram"], 9, 0), b"guest ram")
            os.write(got["log"], b"x")
            self.assertEqual(os.read(r, 1), b"x")

    def test_store_named_explicit(self):
        c = self.client()
        name, (a, b) = self.name(), self.fds(2)
        c.store_named(name, [NamedFd("dev", a, FdKind.GENERIC, 1), NamedFd("dev", b, id=2)],
                      level=1, producer="explicit")
        info = c.show(name)
        self.assertEqual(info.stream["level"], 1)
        self.assertEqual([(x["name"], x["id"], x["kind"]) for x in info.stream["fd_records"]],
                         [("dev", 1, "generic"), ("dev", 2, "memfd")])
        with c.claim(name, ack=True) as bundle:
            with self.assertRaises(ValueError):
                bundle.named_fds()  # "dev" twice
        st, order = named_state({"x": a})
        self.assertEqual((st.fds[0].kind, order), (FdKind.MEMFD, [a]))

    def test_detect_kind(self):
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        ev = os.eventfd(0, os.EFD_CLOEXEC)
        self.addCleanup(os.close, ev)
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        self.addCleanup(os.close, null)
        self.assertEqual(detect_kind(a.fileno()), FdKind.SOCKET)
        self.assertEqual(detect_kind(ev), FdKind.EVENTFD)
        self.assertEqual(detect_kind(null), FdKind.GENERIC)
        self.assertEqual(detect_kind(self.fds(1)[0]), FdKind.MEMFD)
        # a node named like a device of another driver (/dev/null's 1:3) is
        # not that device, as libcpr's consumer check would find
        rdev = os.fstat(null).st_rdev
        self.assertEqual(chardev_driver(rdev), "mem")
        for path in ("/dev/iommu", "/dev/vfio/vfio", "/dev/vfio/devices/vfio0", "/dev/vfio/7"):
            self.assertEqual(_chardev_kind(path, rdev), FdKind.GENERIC, path)
        if os.path.exists("/dev/net/tun"):  # a misc device: named by its minor
            self.assertEqual(chardev_driver(os.stat("/dev/net/tun").st_rdev), "tun")


class TestConsumer(TestCase):
    def stored(self, c, n=2):
        name = self.name()
        c.store(name, stream_for(n), self.fds(n))
        return name

    def test_claim_release_claim_again(self):
        c = self.client()
        name = self.stored(c)
        b = c.claim(name, lease_ms=5000)
        self.assertEqual(b.lease_ms, 5000)
        self.assertEqual(c.show(name).state, "claimed")
        self.assertEqual(c.show(name).lease["uid"], os.geteuid())
        with self.assertRaises(cprd_client.Busy):
            c.claim(name)
        b.release()
        b.close()
        self.assertEqual(c.show(name).state, "sealed")
        with c.claim(name, ack=True) as again:
            self.assertTrue(again.acked and again.finished)
            self.assertEqual(again.reply["inline"], 2)
        self.assertEqual(c.list(prefix=name), [])

    def test_token_ops_from_another_connection(self):
        c1, c2 = self.client(), self.client()
        name = self.stored(c1)
        with c1.claim(name) as b:
            token = b.token
        self.assertEqual(c2.renew(name, token, 20000), 20000)
        self.assertLessEqual(c2.show(name).lease["expires_in_ms"], 20000)
        self.assertEqual(c2.renew(name, token), 30000)  # the default lease
        c2.release(name, token)
        with c2.claim(name) as b:
            c1.ack(name, b.token)
        self.assertEqual(c1.list(prefix=name), [])

    def test_bundle_renew(self):
        c = self.client()
        with c.claim(self.stored(c), ack_on_exit=True) as b:
            self.assertEqual(b.renew(12345), 12345)
            self.assertEqual(b.lease_ms, 12345)

    def test_drop(self):
        c = self.client()
        name = self.stored(c)
        c.drop(name)
        with self.assertRaises(cprd_client.NotFound):
            c.drop(name)

    def test_request_raw_op(self):
        c = self.client()
        reply = c.request({"op": "status"})
        self.assertIs(reply["ok"], True)
        self.assertEqual(c.request_raw(b'{"op":"hello"}')["op"], "hello")

    def test_claim_empty_bundle(self):
        c = self.client()
        name = self.name()
        c.store(name, stream_for(0))
        with c.claim(name, ack_on_exit=True) as b:
            self.assertEqual(b.fds, ())
            self.assertEqual(b.state().fds, [])


def admin_daemon() -> Daemon:
    """A daemon of its own where this uid is an administrator; a sanitizer
    runtime's start-up in the new image is more than cprd.policy allows (as
    tests/cprd-upgrade.sh says), so there it runs without the filter."""
    conf = "" if is_root() else f"admin = {os.geteuid()}\n"
    return Daemon(conf=conf, sandbox=not os.environ.get("SANITIZED"))


class TestUpgrade(TestCase):
    def test_upgrade_keeps_bundles(self):
        with admin_daemon() as d:
            c = self.client(d.path)
            sealed, claimed = self.name("s"), self.name("c")
            c.store(sealed, stream_for(2), self.fds(2))
            c.store(claimed, stream_for(1), self.fds(1))
            b = c.claim(claimed, lease_ms=600000)
            b.close()
            up = c.upgrade(timeout_ms=20000)
            self.assertEqual((up.bundles, up.fds), (2, 5))
            if up.previous_pid is not None:  # handed to a new process
                self.assertEqual(up.previous_pid, d.proc.pid)
                self.assertNotEqual(up.pid, up.previous_pid)
            self.assertFalse(c.connected)
            c.connect()
            self.assertEqual(c.status().pid, up.pid)
            self.assertEqual(c.show(claimed).state, "claimed")
            c.ack(claimed, b.token)  # a claim made before the upgrade
            with c.claim(sealed, ack=True) as got:
                self.assertEqual(len(got), 2)
            self.assertTrue(re.match(r"^cprd", c.hello().server))

    def test_upgrade_canceled(self):
        """A new image that does not take over: the old one goes on."""
        with admin_daemon() as d:
            c = self.client(d.path)
            name = self.name()
            c.store(name, stream_for(1), self.fds(1))
            pid = c.status().pid
            with self.assertRaises(cprd_client.UpgradeCanceled) as cm:
                c.upgrade(exe="/bin/false")
            self.assertEqual(cm.exception.error, "ECANCELED")
            self.assertTrue(cm.exception.message)
            c.connect()
            self.assertEqual(c.status().pid, pid)
            self.assertEqual(c.show(name).state, "sealed")
