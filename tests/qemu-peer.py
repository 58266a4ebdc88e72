#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""cprd as the cpr-transfer peer of real QEMUs (tests/qemu-peer.sh).

usage: qemu-peer.py QEMU WORKDIR CPRD_SOCKET SCENARIO

A TCG guest sits in its firmware (SeaBIOS, no boot device) with its RAM in
a memfd backend; the firmware's timer tick counter (BIOS data area, guest
physical 0x46c, read with HMP "xp") is what shows the guest runs.  The old
QEMU's cpr channel is a socket this script binds and hands to cprd
("qemu-listen"); the new QEMU listens on its own cpr socket, which this
script connects and hands to cprd with the new QEMU's pidfd.

Scenarios:
  upgrade   cprd holds the state ("show" lists QEMU's fds by name and kind),
            delivers it ("qemu-deliver"); the new QEMU runs the guest, its
            tick counter goes on from the old one's, its RAM is the same
            memfd; a client of another uid neither lists, shows nor
            delivers the bundle.
  new-dies  the new QEMU is killed after cprd delivered, before it is
            ready: the old QEMU resumes the guest, cprd releases everything.
  malformed a fake old QEMU writes a stream cprd refuses.

Exits 77 with a reason when QEMU cannot do cpr-transfer, 1 on failure.
"""
import array
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

TIMEOUT = 120  # seconds for any one step: generous, never a synchronisation
TICKS = 0x46C  # BIOS data area: timer ticks since midnight (18.2 Hz)


def log(msg: str) -> None:
    print(msg, flush=True)


def fds_open() -> set:
    return set(os.listdir("/proc/self/fd"))


def wait_for(what: str, cond, timeout: float = TIMEOUT):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Qmp:
    """A QMP client on a UNIX socket the QEMU serves."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.buf = b""
        wait_for(f"QMP at {path}", lambda: self._try(path))
        self.greeting = self.read()
        self.cmd("qmp_capabilities")

    def _try(self, path: str) -> bool:
        try:
            self.sock.connect(path)
            return True
        except (FileNotFoundError, ConnectionRefusedError):
            return False

    def read(self) -> dict:
        while b"\n" not in self.buf:
            r, _, _ = select.select([self.sock], [], [], TIMEOUT)
            chunk = self.sock.recv(65536) if r else b""
            if not chunk:
                raise RuntimeError("QMP went quiet")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name: str, **args) -> dict:
        self.sock.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        while True:
            r = self.read()
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error'].get('desc')}")
            if "return" in r:
                return r["return"]

    def hmp(self, line: str) -> str:
        return self.cmd("human-monitor-command", **{"command-line": line})

    def status(self) -> str:
        return self.cmd("query-status")["status"]

    def ticks(self) -> int:
        out = self.hmp(f"xp /1wx {TICKS:#x}")  # "000000000000046c: 0x0000abcd"
        return int(out.split(":")[1].split()[0], 16)

    def migration(self) -> str:
        return self.cmd("query-migrate").get("status", "none")

    def close(self) -> None:
        self.sock.close()


class Qemu:
    def __init__(self, binary: str, workdir: str, name: str, extra: list):
        self.qmp_path = os.path.join(workdir, f"{name}.qmp")
        self.log = open(os.path.join(workdir, f"{name}.log"), "wb")
        self.argv = [binary, "-nodefaults", "-display", "none", "-accel", "tcg", "-m", "32M",
                     "-object", "memory-backend-memfd,id=ram0,size=32M,share=on",
                     "-machine", "q35,memory-backend=ram0,aux-ram-share=on",
                     "-qmp", f"unix:{self.qmp_path},server=on,wait=off"] + extra
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, close_fds=True)
        self.qmp = None

    def monitor(self) -> Qmp:
        if not self.qmp:
            self.qmp = Qmp(self.qmp_path)
        return self.qmp

    def ram_inode(self) -> tuple:
        """(dev, ino) of the memfd backing ram0, from /proc/PID/fd."""
        d = f"/proc/{self.p.pid}/fd"
        for fd in os.listdir(d):
            try:
                if os.readlink(f"{d}/{fd}").startswith("/memfd:memory-backend-memfd"):
                    st = os.stat(f"{d}/{fd}")
                    return st.st_dev, st.st_ino
            except OSError:
                pass
        raise RuntimeError(f"pid {self.p.pid} has no ram0 memfd")

    def stop(self) -> int:
        wait = self.qmp is not None  # asked to quit; else killed
        if self.qmp:
            if self.p.poll() is None:
                try:
                    self.qmp.cmd("quit")
                except (RuntimeError, OSError):
                    pass
            self.qmp.close()
            self.qmp = None
        if self.p.poll() is None and not wait:
            self.p.kill()
        if self.p.poll() is None:
            try:
                self.p.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.p.kill()
        rc = self.p.wait()
        self.log.close()
        return rc


class Cprd:
    """Raw requests on cprd's SOCK_SEQPACKET socket, fds as SCM_RIGHTS."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.sock.connect(path)

    def send(self, req: dict, fds=()) -> None:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.sock.sendmsg([json.dumps(req).encode()], anc)

    def reply(self, timeout: float = TIMEOUT) -> dict:
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            raise RuntimeError(f"no reply from cprd in {timeout} s")
        data = self.sock.recv(256 * 1024)
        if not data:
            raise RuntimeError("cprd closed the connection")
        return json.loads(data)

    def call(self, req: dict, fds=()) -> dict:
        self.send(req, fds)
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def ok_reply(r: dict, what: str) -> dict:
    if not r.get("ok"):
        raise RuntimeError(f"{what}: {r}")
    return r


def check_running_on(q: Qmp, who: str, since: int) -> int:
    """The guest runs here: status running, and its ticks pass @since."""
    st = q.status()
    if st != "running":
        raise RuntimeError(f"{who}: guest is {st}, not running")
    t = wait_for(f"{who}: ticks past {since}", lambda: q.ticks() > since and q.ticks())
    log(f"{who}: running, ticks {since:#x} -> {t:#x}")
    return t


def listen_socket(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.bind(path)
    s.listen(1)
    return s


def connect_new_cpr(path: str) -> socket.socket:
    """The new QEMU's cpr socket, connected as soon as it listens."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)

    def attempt() -> bool:
        try:
            s.connect(path)
            return True
        except (FileNotFoundError, ConnectionRefusedError):
            return False
    wait_for(f"the new QEMU's cpr socket {path}", attempt)
    return s


def incoming(path: str, kind: str) -> str:
    return json.dumps({"channel-type": kind,
                       "addr": {"transport": "socket", "type": "unix", "path": path}})


def migrate(q: Qmp, main: str, cpr: str) -> None:
    q.cmd("migrate-set-parameters", mode="cpr-transfer")
    q.cmd("migrate", channels=[json.loads(incoming(main, "main")),
                               json.loads(incoming(cpr, "cpr"))])


class Setup:
    """An old QEMU running the guest, a new QEMU waiting on its cpr socket,
    and cprd listening for the old one's cpr channel."""

    def __init__(self, qemu: str, wd: str, cprd: str, name: str, with_new: bool = True,
                 listen: bool = True):
        self.wd, self.name = wd, name
        self.main = os.path.join(wd, "main.sock")
        self.new_cpr = os.path.join(wd, "new-cpr.sock")
        self.old_cpr = os.path.join(wd, "cprd-cpr.sock")
        self.old = Qemu(qemu, wd, "old", [])
        self.new = None
        q = self.old.monitor()
        try:
            q.cmd("migrate-set-parameters", mode="cpr-transfer")
        except RuntimeError as e:
            self.skip = f"this QEMU has no cpr-transfer: {e}"
            return
        self.skip = None
        self.t0 = check_running_on(q, "old QEMU", 0)
        if with_new:
            self.new = Qemu(qemu, wd, "new", ["-incoming", incoming(self.new_cpr, "cpr"),
                                               "-incoming", f"unix:{self.main}"])
        self.cprd = Cprd(cprd)
        if not listen:
            return
        self.lsock = listen_socket(self.old_cpr)
        self.cprd.send({"op": "qemu-listen", "name": name}, [self.lsock.fileno()])
        self.lsock.close()  # cprd has it
        # the reply comes when the state is held; a refusal comes at once,
        # before the reply to the next request
        r = self.cprd.call({"op": "status"})
        if r.get("op") != "status":
            raise RuntimeError(f"qemu-listen: {r}")

    def deliver(self) -> dict:
        conn = connect_new_cpr(self.new_cpr)
        pidfd = os.pidfd_open(self.new.p.pid)
        c = Cprd(self.cprd.sock.getpeername())
        try:
            c.send({"op": "qemu-deliver", "name": self.name}, [conn.fileno(), pidfd])
            return c.reply()
        finally:
            conn.close()
            os.close(pidfd)
            c.close()

    def stop(self) -> None:
        for q in (self.new, self.old):
            if q:
                q.stop()
        if getattr(self, "cprd", None):
            self.cprd.close()


def show(cprd_path: str, name: str) -> dict:
    c = Cprd(cprd_path)
    try:
        return c.call({"op": "show", "name": name})
    finally:
        c.close()


OTHER_UID = 65534


def other_uid_checks(cprd_path: str, name: str) -> str:
    """In a child of another uid: the bundle is neither listed, shown nor
    delivered; returns what was wrong, or ""."""
    c = Cprd(cprd_path)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        lst = c.call({"op": "list"})
        if any(x.get("name") == name for x in lst.get("bundles", [])):
            return f"list shows it: {lst}"
        r = c.call({"op": "show", "name": name})
        if r.get("ok"):
            return f"show: {r}"
        r = c.call({"op": "qemu-deliver", "name": name}, [a.fileno()])
        if r.get("ok") or r.get("error") not in ("ENOENT", "EACCES"):
            return f"qemu-deliver: {r}"
        return ""
    finally:
        a.close()
        b.close()
        c.close()


def as_other_uid(cprd_path: str, name: str) -> None:
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rd)
            os.setgroups([])
            os.setresgid(OTHER_UID, OTHER_UID, OTHER_UID)
            os.setresuid(OTHER_UID, OTHER_UID, OTHER_UID)
            why = other_uid_checks(cprd_path, name)
        except BaseException as e:  # noqa: B902 -- reported to the parent
            why = f"{type(e).__name__}: {e}"
        os.write(wr, why.encode())
        os._exit(0)
    os.close(wr)
    with os.fdopen(rd, "rb") as f:
        why = f.read().decode()
    os.waitpid(pid, 0)
    if why:
        raise RuntimeError(f"uid {OTHER_UID}: {why}")
    log(f"uid {OTHER_UID}: does not list, show or deliver the bundle")


def scenario_upgrade(s: Setup, cprd_path: str) -> None:
    q = s.old.monitor()
    ram = s.old.ram_inode()
    migrate(q, s.main, s.old_cpr)
    held = ok_reply(s.cprd.reply(), "qemu-listen")
    log(f"held: {held['fds']} fds, {held['stream_bytes']} bytes, timings {held['timings']}")
    human = subprocess.run([os.environ.get("CPRCTL", "cprctl"), "show", s.name], check=True,
                           capture_output=True, text=True).stdout
    log("cprctl show:\n" + human.rstrip())
    if not any(" memfd " in ln and "ram0 id 0" in ln for ln in human.splitlines()):
        raise RuntimeError("cprctl show does not list ram0 as a memfd")
    b = ok_reply(show(cprd_path, s.name), "show")["bundle"]
    recs = b["stream"]["fd_records"]
    log("show: " + ", ".join(f"{r['name']}/{r['id']} {r['kind']}" for r in recs))
    if b["owner_pid"] != s.old.p.pid or not any(r["name"] == "ram0" and r["kind"] == "memfd"
                                                for r in recs):
        raise RuntimeError(f"show: {b}")
    as_other_uid(cprd_path, s.name)
    # the old QEMU waits for the HUP with its guest still running
    t1 = check_running_on(q, "old QEMU, state held", s.t0)
    r = ok_reply(s.deliver(), "qemu-deliver")
    log(f"delivered: {r['state']}, timings {r['timings']}")
    n = s.new.monitor()
    wait_for("the new QEMU running", lambda: n.status() == "running")
    wait_for("the old QEMU done", lambda: q.migration() in ("completed", "failed"))
    if q.migration() != "completed":
        raise RuntimeError(f"old QEMU: migration {q.migration()}")
    check_running_on(n, "new QEMU", t1)
    if s.new.ram_inode() != ram:
        raise RuntimeError("the new QEMU's RAM is not the old QEMU's memfd")
    log(f"new QEMU maps the same memfd (inode {ram[1]}); old QEMU is {q.status()}")


def scenario_new_dies(s: Setup, cprd_path: str) -> None:
    q = s.old.monitor()
    migrate(q, s.main, s.old_cpr)
    ok_reply(s.cprd.reply(), "qemu-listen")
    # The new QEMU dies after cprd has the state, before its main channel
    # listens: cprd must not send the HUP that says "ready".
    conn = connect_new_cpr(s.new_cpr)
    pidfd = os.pidfd_open(s.new.p.pid)
    s.new.p.send_signal(signal.SIGKILL)
    s.new.p.wait()
    c = Cprd(cprd_path)
    try:
        c.send({"op": "qemu-deliver", "name": s.name}, [conn.fileno(), pidfd])
        r = c.reply()
    finally:
        conn.close()
        os.close(pidfd)
        c.close()
    if r.get("ok") or r.get("error") not in ("ESRCH", "ECONNRESET", "EPIPE"):
        raise RuntimeError(f"qemu-deliver to a dead QEMU: {r}")
    log(f"qemu-deliver refused: {r.get('error')}: {r.get('message')}")
    wait_for("the old QEMU's migration to fail", lambda: q.migration() == "failed")
    check_running_on(q, "old QEMU after the failure", q.ticks())
    if show(cprd_path, s.name).get("ok"):
        raise RuntimeError("cprd still shows the bundle")


def scenario_malformed(s: Setup, cprd_path: str) -> None:
    """A fake old QEMU: the golden's header, then a marker byte with no fd."""
    fake = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    fake.connect(s.old_cpr)
    name = b"ram0\0"
    memfd = os.memfd_create("ram0", os.MFD_CLOEXEC)
    try:
        fake.sendall(b"QCPR\x00\x00\x00\x01\x01" + len(name).to_bytes(4, "big") + name +
                     b"\x00\x00\x00\x00")
        # two markers, one fd
        fake.sendmsg([b"\x20"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [memfd]))])
        fake.sendall(b"\x01" + len(name).to_bytes(4, "big") + name + b"\x00\x00\x00\x01\x20\x00")
        fake.shutdown(socket.SHUT_WR)
        r = s.cprd.reply()
        if r.get("ok") or "refused" not in r.get("message", ""):
            raise RuntimeError(f"malformed stream: {r}")
        log(f"refused: {r.get('error')}: {r.get('message')}")
        # ... and the fake peer's connection is closed: EOF, no HUP of "ready" after data
        fake.settimeout(TIMEOUT)
        if fake.recv(1) != b"":
            raise RuntimeError("cprd wrote to the fake peer")
    finally:
        fake.close()
        os.close(memfd)
    if show(cprd_path, s.name).get("ok"):
        raise RuntimeError("cprd still shows the bundle")


def cprctl_upgrade(s: Setup, binary: str) -> tuple:
    """QEMU serves one QMP client at a time: the test's lets go meanwhile."""
    if s.old.qmp:
        s.old.qmp.close()
        s.old.qmp = None
    wd = os.path.join(s.wd, "upgrade")
    os.mkdir(wd)
    p = subprocess.run([os.environ.get("CPRCTL", "cprctl"), "--json", "qemu", "upgrade",
                        "--qmp", s.old.qmp_path, "--binary", binary, "--workdir", wd,
                        "--timeout", str(TIMEOUT * 1000)],
                       capture_output=True, text=True, timeout=3 * TIMEOUT)
    log(f"cprctl qemu upgrade: exit {p.returncode}: {p.stdout.strip()} {p.stderr.strip()}")
    return p.returncode, json.loads(p.stdout)


def quit_new(n: Qmp, pid: int) -> None:
    """The upgraded QEMU quits, and is waited for."""
    try:
        n.cmd("quit")
    except (RuntimeError, OSError):
        pass
    n.close()
    wait_for("the new QEMU to exit", lambda: not os.path.exists(f"/proc/{pid}"))


def scenario_cprctl_upgrade(s: Setup, cprd_path: str) -> None:
    """cprctl qemu upgrade: a new QEMU of the same binary runs the guest on."""
    ram = s.old.ram_inode()
    t = s.old.monitor().ticks()
    rc, r = cprctl_upgrade(s, os.path.realpath(shutil.which(s.old.argv[0])))
    if rc != 0 or not r["ok"]:
        raise RuntimeError(f"cprctl qemu upgrade failed: {r}")
    n = Qmp(r["new_qmp"])
    try:
        check_running_on(n, "new QEMU", t)
        if s.old.p.wait(TIMEOUT) != 0:
            raise RuntimeError("the old QEMU did not quit cleanly")
        st = os.stat(f"/proc/{r['new_pid']}/exe")
        log(f"old QEMU quit; new QEMU pid {r['new_pid']} (exe inode {st.st_ino}), "
            f"downtime {r.get('downtime_ms')} ms, total {r['total_ms']} ms, cprd {r['cprd']}")
        d = f"/proc/{r['new_pid']}/fd"
        if not any(os.stat(f"{d}/{fd}").st_ino == ram[1] for fd in os.listdir(d)):
            raise RuntimeError("the new QEMU's RAM is not the old QEMU's memfd")
    finally:
        quit_new(n, r["new_pid"])


def scenario_cprctl_rollback(s: Setup, cprd_path: str) -> None:
    """A new binary that exits at once: rolled back, the old QEMU runs on."""
    t = s.old.monitor().ticks()
    rc, r = cprctl_upgrade(s, "/bin/false")
    if rc != 1 or r["ok"] or not r["rolled_back"]:
        raise RuntimeError(f"cprctl qemu upgrade to /bin/false: exit {rc}: {r}")
    check_running_on(s.old.monitor(), "old QEMU after the rollback", t)


DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <devices><emulator>{emulator}</emulator></devices>
</domain>
"""


def scenario_hook_upgrade(s: Setup, cprd_path: str) -> None:
    """cprd-hook's qemu-upgrade: the domain's <emulator> runs the guest on."""
    if s.old.qmp:
        s.old.qmp.close()
        s.old.qmp = None
    ram = s.old.ram_inode()
    hook = os.path.join(os.path.dirname(os.environ["CPRCTL"]), "cprd-hook")
    domain = s.name
    xml = DOMAIN_XML.format(name=domain, emulator=os.path.realpath(shutil.which(s.old.argv[0])))
    p = subprocess.run([hook, domain, "qemu-upgrade", "begin", s.old.qmp_path], input=xml,
                       capture_output=True, text=True, timeout=3 * TIMEOUT,
                       env=dict(os.environ, TMPDIR=s.wd))
    log(f"cprd-hook qemu-upgrade: exit {p.returncode}: {p.stdout.strip()} {p.stderr.strip()}")
    # "upgraded: QEMU pid OLD -> pid NEW in T ms (downtime D ms); its QMP: PATH"
    words = p.stdout.split()
    if p.returncode != 0 or not p.stdout.startswith("upgraded:"):
        raise RuntimeError(f"cprd-hook qemu-upgrade: exit {p.returncode}")
    new_pid, new_qmp = int(words[words.index("->") + 2]), words[-1]
    n = Qmp(new_qmp)
    try:
        check_running_on(n, "new QEMU", s.t0)
        if s.old.p.wait(TIMEOUT) != 0:
            raise RuntimeError("the old QEMU did not quit cleanly")
        d = f"/proc/{new_pid}/fd"
        if not any(os.stat(f"{d}/{fd}").st_ino == ram[1] for fd in os.listdir(d)):
            raise RuntimeError("the new QEMU's RAM is not the old QEMU's memfd")
    finally:
        quit_new(n, new_pid)


SCENARIOS = {"hook-upgrade": scenario_hook_upgrade, "upgrade": scenario_upgrade, "new-dies": scenario_new_dies,
             "malformed": scenario_malformed, "cprctl-upgrade": scenario_cprctl_upgrade,
             "cprctl-rollback": scenario_cprctl_rollback}


def main() -> int:
    qemu, wd, cprd_path, scenario = sys.argv[1:5]
    before = fds_open()
    s = Setup(qemu, wd, cprd_path, f"vm-{scenario}", scenario in ("upgrade", "new-dies"),
              not scenario.startswith(("cprctl-", "hook-")))
    try:
        if s.skip:
            print(f"SKIP: {s.skip}")
            return 77
        SCENARIOS[scenario](s, cprd_path)
    finally:
        s.stop()
    leaked = fds_open() - before
    if leaked:
        print(f"leaked fds: {sorted(leaked)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
