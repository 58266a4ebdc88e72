#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A QEMU upgrade through cprd against QEMU's direct cpr-transfer, same run.

usage: bench/qemu-upgrade.py [--rounds N] [--qemu PATH] [--json] BUILDDIR

Starts cprd (BUILDDIR/cprd/cprd, under policy/cprd.policy) on a scratch
socket, then N rounds, each: a TCG guest (firmware only, 32 MiB of RAM in a
shared memfd) upgraded by "cprctl qemu upgrade" once through cprd and once
with --direct (the cpr channel straight to the new QEMU).  Reports the
median and min of the whole upgrade (cprctl's total_ms: QMP to the old
QEMU until the new one runs), QEMU's downtime (the old QEMU's
query-migrate), and cprd's own share (receive, check, deliver), and the
ratio cprd / direct.  It reports; it never fails on a ratio.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TIMEOUT = 120


def wait_path(path: str) -> None:
    end = time.monotonic() + TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise RuntimeError(f"no {path}")
        time.sleep(0.02)


def qmp_quit(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.settimeout(TIMEOUT)
        f = s.makefile("rwb")
        f.readline()
        for cmd in ("qmp_capabilities", "quit"):
            f.write(json.dumps({"execute": cmd}).encode() + b"\n")
            f.flush()
            f.readline()


def one(qemu: str, cprctl: str, wd: str, direct: bool) -> dict:
    os.mkdir(wd)
    qmp = os.path.join(wd, "old.qmp")
    argv = [qemu, "-nodefaults", "-display", "none", "-accel", "tcg", "-m", "32M",
            "-object", "memory-backend-memfd,id=ram0,size=32M,share=on",
            "-machine", "q35,memory-backend=ram0,aux-ram-share=on",
            "-qmp", f"unix:{qmp},server=on,wait=off"]
    old = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_path(qmp)
        time.sleep(0.5)  # the firmware is up
        p = subprocess.run([cprctl, "--json", "qemu", "upgrade", "--qmp", qmp, "--binary",
                            qemu, "--workdir", os.path.join(wd, "up")] +
                           (["--direct"] if direct else []),
                           capture_output=True, text=True, timeout=3 * TIMEOUT)
        r = json.loads(p.stdout)
        if p.returncode != 0:
            raise RuntimeError(f"cprctl qemu upgrade{' --direct' if direct else ''}: {r}")
        qmp_quit(r["new_qmp"])
        return r
    finally:
        if old.poll() is None:
            old.kill()
        old.wait()


def summary(xs: list) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("builddir")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not a.qemu:
        print("SKIP: no qemu-system-x86_64")
        return 77
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cprctl = os.path.join(a.builddir, "cprd", "cprctl")
    tmp = tempfile.mkdtemp(prefix="bench-qemu-")
    sock = os.path.join(tmp, "cprd.sock")
    conf = os.path.join(tmp, "cprd.conf")
    open(conf, "w").close()
    cprd = subprocess.Popen([os.path.join(a.builddir, "cprd", "cprd"), "--socket", sock,
                             "--policy", os.path.join(src, "policy", "cprd.policy"),
                             "--config", conf], stderr=subprocess.DEVNULL)
    os.environ["CPRD_SOCKET"] = sock
    res = {"cprd": [], "direct": []}
    try:
        wait_path(sock)
        for i in range(a.rounds):
            for mode in ("cprd", "direct"):
                res[mode].append(one(a.qemu, cprctl, os.path.join(tmp, f"{mode}{i}"),
                                     mode == "direct"))
    finally:
        cprd.terminate()
        cprd.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    out = {"qemu": subprocess.run([a.qemu, "--version"], capture_output=True,
                                  text=True).stdout.splitlines()[0],
           "rounds": a.rounds, "ram_mib": 32, "accel": "tcg"}
    for mode, rs in res.items():
        out[mode] = {"total_ms": summary([r["total_ms"] for r in rs]),
                     "downtime_ms": summary([r.get("downtime_ms", 0) for r in rs])}
    share = [sum(r["cprd"][k] for k in ("receive_us", "check_us", "deliver_us"))
             for r in res["cprd"]]
    out["cprd"]["cprd_share_us"] = summary(share)
    out["cprd"]["ready_wait_us"] = summary([r["cprd"]["ready_wait_us"] for r in res["cprd"]])
    out["ratio_total"] = round(out["cprd"]["total_ms"]["median"] /
                               max(out["direct"]["total_ms"]["median"], 1), 3)
    out["within_1.1x"] = out["ratio_total"] <= 1.1
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['qemu']}, TCG, 32 MiB memfd RAM, {a.rounds} rounds (median / min)")
    for mode in ("direct", "cprd"):
        t, d = out[mode]["total_ms"], out[mode]["downtime_ms"]
        print(f"  {mode:7} upgrade {t['median']:7.1f} / {t['min']:7.1f} ms   "
              f"downtime {d['median']:5.1f} / {d['min']:5.1f} ms")
    s = out["cprd"]["cprd_share_us"]
    print(f"  cprd's own share (receive + check + deliver): {s['median']} us median")
    print(f"  cprd / direct: {out['ratio_total']}x ({'within' if out['within_1.1x'] else 'over'}"
          " 1.1x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
