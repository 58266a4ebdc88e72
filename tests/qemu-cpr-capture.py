#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Capture the cpr channel of a real QEMU's cpr-transfer.

Boots a TCG guest that sits in its firmware (no disk, no kernel) with its RAM
in a memfd backend, drives it over QMP on stdio, and plays the new QEMU's part
on the cpr channel: listen on a UNIX socket, accept, read the stream a byte
at a time with recvmsg() so that each fd is seen with the byte that carried
it, then close (the HUP that tells the old QEMU the target is ready).  The
old QEMU then finds no main channel, fails the migration and resumes; it is
told to quit.

Writes CAPTURE (the bytes, marker bytes included) and SIDECAR (JSON: the
offsets of the bytes that carried an fd, what each fd was, the QEMU version).
Exits 77 with a reason when QEMU cannot do cpr-transfer, 1 on failure.
"""
import array
import json
import os
import select
import socket
import subprocess
import sys

TIMEOUT = 120  # seconds for any one step: generous, never a synchronisation


def fds_open() -> set:
    return set(os.listdir("/proc/self/fd"))


class Qmp:
    def __init__(self, argv: list):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, close_fds=True)
        self.buf = b""
        self.greeting = self.read()

    def read(self) -> dict:
        while b"\n" not in self.buf:
            r, _, _ = select.select([self.p.stdout], [], [], TIMEOUT)
            chunk = os.read(self.p.stdout.fileno(), 65536) if r else b""
            if not chunk:
                raise RuntimeError("QEMU's QMP went quiet: " + self.stderr())
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name: str, **args) -> dict:
        self.p.stdin.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.p.stdin.flush()
        while True:
            r = self.read()
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error'].get('desc')}")
            if "return" in r:
                return r["return"]

    def wait_event(self, name: str, want) -> dict:
        while True:
            r = self.read()
            if r.get("event") == name and want(r.get("data", {})):
                return r

    def stderr(self) -> str:
        if self.p.poll() is None:
            return "(still running)"
        return self.p.stderr.read().decode(errors="replace").strip()

    def close(self) -> int:
        if self.p.poll() is None:
            try:
                self.cmd("quit")
            except RuntimeError:
                pass
        rc = self.p.wait(TIMEOUT)
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            f.close()
        return rc


def receive(conn: socket.socket) -> tuple:
    """The stream a byte at a time; which bytes carried fds; what the fds were."""
    data, fd_offsets, targets = bytearray(), [], []
    space = socket.CMSG_SPACE(16 * array.array("i").itemsize)
    while True:
        r, _, _ = select.select([conn], [], [], TIMEOUT)
        if not r:
            raise RuntimeError(f"no byte from QEMU in {TIMEOUT} s after {len(data)}")
        msg, anc, flags, _ = conn.recvmsg(1, space, socket.MSG_CMSG_CLOEXEC)
        fds = array.array("i")
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
        for fd in fds:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
            os.close(fd)
        if flags & socket.MSG_CTRUNC:
            raise RuntimeError("control data truncated")
        if fds:
            fd_offsets.append({"offset": len(data), "fds": len(fds)})
        if not msg:
            return bytes(data), fd_offsets, targets
        data += msg


def main() -> int:
    qemu, workdir, capture, sidecar = sys.argv[1:5]
    before = fds_open()
    path = os.path.join(workdir, "cpr.sock")
    argv = [qemu, "-nodefaults", "-display", "none", "-accel", "tcg", "-m", "32M",
            "-object", "memory-backend-memfd,id=ram0,size=32M,share=on",
            "-machine", "q35,memory-backend=ram0,aux-ram-share=on", "-S", "-qmp", "stdio"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as lsock:
        lsock.bind(path)
        lsock.listen(1)
        q = Qmp(argv)
        try:
            version = q.greeting["QMP"]["version"]["qemu"]
            q.cmd("qmp_capabilities")
            q.cmd("migrate-set-capabilities",
                  capabilities=[{"capability": "events", "state": True}])
            try:
                q.cmd("migrate-set-parameters", mode="cpr-transfer")
            except RuntimeError as e:
                print(f"SKIP: this QEMU has no cpr-transfer: {e}")
                return 77
            q.cmd("migrate", channels=[
                {"channel-type": "main", "addr": {"transport": "socket", "type": "unix",
                                                  "path": os.path.join(workdir, "main.sock")}},
                {"channel-type": "cpr", "addr": {"transport": "socket", "type": "unix",
                                                 "path": path}}])
            r, _, _ = select.select([lsock], [], [], TIMEOUT)
            if not r:
                raise RuntimeError(f"QEMU did not connect the cpr channel in {TIMEOUT} s")
            conn, _ = lsock.accept()
            with conn:
                data, fd_offsets, targets = receive(conn)
            # The HUP: the old QEMU now connects the main channel, finds no
            # listener and fails the migration.
            q.wait_event("MIGRATION", lambda d: d.get("status") in ("failed", "completed"))
        finally:
            rc = q.close()
    os.unlink(path)
    with open(capture, "wb") as f:
        f.write(data)
    with open(sidecar, "w") as f:
        json.dump({"qemu": f"{version['major']}.{version['minor']}.{version['micro']}",
                   "command": [os.path.basename(argv[0])] + argv[1:],
                   "length": len(data), "fd_bytes": fd_offsets, "fd_targets": targets},
                  f, indent=2)
        f.write("\n")
    leaked = fds_open() - before
    if leaked:
        print(f"leaked fds: {sorted(leaked)}", file=sys.stderr)
        return 1
    if rc != 0:
        print(f"QEMU exited {rc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
