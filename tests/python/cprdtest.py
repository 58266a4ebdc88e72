# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared by the Python client's tests: real daemons, fd accounting, users.

tests/python-client.sh starts the shared daemon ($CPRD_SOCKET) and exports
the paths of the built programs; tests that need other limits start their
own :class:`Daemon`.
"""

import itertools
import os
import pickle
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import cprd_client
from cprd_client.crc import crc32c

TOP_SRCDIR = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("top_builddir", TOP_SRCDIR)
CPRD = os.environ.get("CPRD", os.path.join(TOP_BUILDDIR, "cprd", "cprd"))
CPRDUMP = os.environ.get("CPRDUMP", os.path.join(TOP_BUILDDIR, "tools", "cprdump"))
CPRGEN = os.environ.get("CPRGEN", os.path.join(TOP_BUILDDIR, "tools", "cprgen"))
POLICY = os.environ.get("POLICY", os.path.join(TOP_SRCDIR, "policy", "cprd.policy"))
GOLDEN = os.path.join(TOP_SRCDIR, "tests", "golden")
NOBODY = 65534

_names = itertools.count()

# room for the fds of the chunked tests (two copies of a few hundred)
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft != resource.RLIM_INFINITY and _soft < 4096:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, _hard), _hard))


def open_fds() -> set[int]:
    """This process's open fds (the one that lists them excluded)."""
    fd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return {int(n) for n in os.listdir(fd)} - {fd}
    finally:
        os.close(fd)


def memfd(data: bytes = b"", name: str = "test") -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    return fd


def same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def with_crc(stream: bytes | bytearray) -> bytes:
    """*stream* with its CRC32C recomputed (after a test patched it)."""
    b = bytearray(stream)
    b[24:28] = bytes(4)
    b[24:28] = struct.pack("<I", crc32c(b))
    return bytes(b)


def is_root() -> bool:
    return os.geteuid() == 0


class TestCase(unittest.TestCase):
    """Every test proves it leaked no fd, and gets unique bundle names."""

    def setUp(self) -> None:
        before = open_fds()
        self.addCleanup(self._check_fds, before)

    def _check_fds(self, before: set[int]) -> None:
        leaked = open_fds() - before
        links = {fd: _link(fd) for fd in leaked}
        self.assertFalse(leaked, f"fds leaked: {links}")

    def name(self, what: str = "b") -> str:
        """A bundle name of this test's own; what it leaves on the shared
        daemon is dropped after it (a claimed bundle is not: the shell
        script's final check finds it)."""
        prefix = f"py/{type(self).__name__[:30]}.{self._testMethodName[:40]}/"
        if not getattr(self, "_dropping", False):
            self._dropping = True
            self.addCleanup(_drop_all, prefix)
        return f"{prefix}{next(_names)}/{what}"

    def client(self, path: str | None = None, **kw) -> cprd_client.Client:
        c = cprd_client.Client(path, **kw)
        self.addCleanup(c.close)
        return c

    def fds(self, n: int, tag: str = "fd") -> list[int]:
        """*n* memfds with distinct contents, closed after the test."""
        out = [memfd(f"{tag} {i}".encode()) for i in range(n)]
        self.addCleanup(lambda: [os.close(fd) for fd in out])
        return out


def _drop_all(prefix: str) -> None:
    with cprd_client.Client() as c:
        for b in c.list(prefix=prefix):
            if b.state != "claimed":
                c.drop(b.name)


def _link(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


class Daemon:
    """A cprd of its own, with a configuration and limits, under its filter."""

    def __init__(self, conf: str = "", limits: dict | None = None, sandbox: bool = True):
        self.dir = tempfile.mkdtemp(prefix="cprd-py-")
        os.chmod(self.dir, 0o755)
        self.path = os.path.join(self.dir, "sock")
        with open(os.path.join(self.dir, "cprd.conf"), "w") as f:
            f.write(conf)
        argv = [CPRD, "--socket", self.path, "--config", os.path.join(self.dir, "cprd.conf"),
                "--mode", "0666"]
        argv += ["--policy", POLICY] if sandbox else ["--no-sandbox"]
        for k, v in (limits or {}).items():
            argv += ["--limit", f"{k}={v}"]
        self.log = open(os.path.join(self.dir, "cprd.log"), "w+")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log, close_fds=True)
        self.pid = self.proc.pid  # the serving process: an upgrade changes it
        self._wait()

    def _wait(self) -> None:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cprd exited {self.proc.returncode}: {self.messages()}")
            try:
                with cprd_client.Client(self.path, timeout=2) as c:
                    c.hello()
                return
            except cprd_client.CprdError:
                time.sleep(0.02)
        raise RuntimeError(f"cprd did not answer on {self.path}: {self.messages()}")

    def messages(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def serving_pid(self) -> int | None:
        try:
            with cprd_client.Client(self.path, timeout=2) as c:
                return c.status().pid
        except cprd_client.CprdError:
            return None

    def stop(self) -> int:
        """SIGTERM to the process serving now (after an upgrade, not our
        child), wait for it to end; the exit status of the one we started."""
        pid = self.serving_pid() or self.pid
        if pid != self.proc.pid:
            _terminate(pid)
        if self.proc.poll() is None:
            self.proc.terminate()
        rc = self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _terminate(pid: int) -> None:
    """SIGTERM to a process that is not our child, and wait for its end."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if not select.select([pidfd], [], [], 10)[0]:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            select.select([pidfd], [], [], 10)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def as_user(fn, uid: int = NOBODY, gid: int = NOBODY):
    """Run *fn* in a child process with *uid*/*gid* and no supplementary
    groups; return what it returned, or raise what it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            try:
                out = (True, fn())
            except BaseException as e:  # sent back to be raised in the parent
                out = (False, e)
            os.write(w, pickle.dumps(out))
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"child as uid {uid} failed, status {status:#x}")
    ok, value = pickle.loads(data)
    if not ok:
        raise value
    return value


class FakeDaemon:
    """A SOCK_SEQPACKET listener that answers as *serve(conn)* says (in a
    thread), or never accepts at all with ``serve=None``."""

    def __init__(self, serve=None):
        self.dir = tempfile.mkdtemp(prefix="cprd-fake-")
        self.path = os.path.join(self.dir, "sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.thread = None
        self.conns: list[socket.socket] = []
        if serve is not None:
            self.thread = threading.Thread(target=self._run, args=(serve,), daemon=True)
            self.thread.start()

    def _run(self, serve) -> None:
        while True:  # one connection after the other
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            try:
                serve(conn)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
        except OSError:
            pass
        self.sock.close()
        if self.thread is not None:
            self.thread.join(5)
        for c in self.conns:
            c.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "FakeDaemon":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
