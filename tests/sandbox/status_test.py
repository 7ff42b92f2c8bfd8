#!/usr/bin/env python3
"""status_test.py VIREO DAEMON HALT_GUEST: every thread of a running vireo (a guest that idles,
with QMP, a qcow2 disk on two iothreads and a mirror job under way) and of a running
vireo-storage-daemon (an NBD export, an NBD client node on it, a mirror under way) shows, in
/proc/PID/task/TID/status, no capability (CapEff, CapPrm, CapInh, CapAmb 0), NoNewPrivs 1 and
Seccomp 2 (a filter): the main threads too, once set up, and the kernel's helpers the threads
started (io_uring's workers, KVM's), which inherit from them.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import Daemon, Vm, tmpdir  # noqa: E402

vireo, daemon, guest = sys.argv[1:4]
tmp = tmpdir()
MiB = 1 << 20
failed = []
WANT = {"CapEff": "0000000000000000", "CapPrm": "0000000000000000",
        "CapInh": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1",
        "Seccomp": "2"}


def threads_of(pid):
    """{tid: (name, {field: value})} of every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except FileNotFoundError:
            continue  # ended meanwhile
        out[int(tid)] = (fields.get("Name", "?"), fields)
    return out


def check(what, pid, need):
    """Every thread locked down; and the names in need among them (the roles were running)."""
    threads = threads_of(pid)
    names = sorted(n for n, _ in threads.values())
    print(f"{what}: {len(threads)} threads: {', '.join(names)}")
    for tid, (name, f) in sorted(threads.items()):
        bad = {k: f.get(k) for k, v in WANT.items() if f.get(k) != v}
        if bad:
            print(f"FAIL: {what}: thread {tid} '{name}': {bad}")
            failed.append(f"{what} {name}")
    for n in need:
        if not any(name.startswith(n) for name in names):
            print(f"FAIL: {what}: no thread named {n}*: the set-up did not start it")
            failed.append(f"{what} {n}")


def wait_job(mon, job):
    for _ in range(100):
        r = mon.qmp.execute("query-jobs")["return"]
        if any(j["id"] == job and j["status"] in ("running", "ready") for j in r):
            return
        mon.qmp.execute("query-status")
    mon.fail(f"job {job} did not start: {r}")


if not os.access("/dev/kvm", os.R_OK | os.W_OK):
    print("SKIP: /dev/kvm is not available (the vireo half needs a VM)")
    sys.exit(77)

qcow2, raw = os.path.join(tmp, "d.qcow2"), os.path.join(tmp, "t.raw")
subprocess.run([os.path.join(os.path.dirname(os.path.abspath(daemon)), "vireo-img"), "create",
                "-q", "-f", "qcow2", qcow2, "64M"], check=True)
with open(raw, "wb") as f:
    f.truncate(64 * MiB)
mirror = {"job-id": "m0", "target": "t0", "sync": "full", "speed": 65536}
target = {"driver": "raw", "node-name": "t0",
          "file": {"driver": "file", "filename": raw}}

vm = Vm(vireo, ["--kernel", guest, "--memory", "64M", "--serial", "none",
                "--object", "iothread,id=io0", "--object", "iothread,id=io1",
                "--blockdev", f"driver=qcow2,node-name=d0,file.driver=file,file.filename={qcow2}",
                "--device", "virtio-blk-pci,drive=d0,num-queues=2,iothread-vq-mapping=io0:io1"],
        os.path.join(tmp, "vm.qmp"))
vm.ok("blockdev-add", **target)
vm.ok("blockdev-mirror", device="d0", **mirror)
wait_job(vm, "m0")
check("vireo", vm.proc.pid, ["vireo", "vcpu0", "io0", "io1", "blk-slow", "qcow2-pool", "job"])
vm.ok("block-job-cancel", device="m0", force=True)
vm.quit()

nbd = os.path.join(tmp, "sd.nbd")
sd = Daemon(daemon, ["--object", "iothread,id=io0",
                     "--blockdev", f"driver=qcow2,node-name=d0,file.driver=file,"
                                   f"file.filename={qcow2}",
                     "--nbd-server", f"addr.type=unix,addr.path={nbd}",
                     "--export", "type=nbd,id=e0,node-name=d0,name=d0,iothread=io0"],
            os.path.join(tmp, "sd.qmp"))
sd.ok("blockdev-add", driver="nbd", **{"node-name": "n0"}, export="d0",
      server={"type": "unix", "path": nbd}, **{"read-only": True})
sd.ok("blockdev-add", **target)
sd.ok("blockdev-mirror", device="d0", **mirror)
wait_job(sd, "m0")
check("vireo-storage-daemon", sd.proc.pid,
      ["vireo-storage", "io0", "nbd-server", "blk-slow", "qcow2-pool", "nbd-status", "nbd-rx",
       "job"])
sd.ok("block-job-cancel", device="m0", force=True)
sd.ok("blockdev-del", **{"node-name": "n0"})
sd.quit()

if failed:
    print(f"FAIL: {len(failed)} threads or roles: {', '.join(failed)}")
    sys.exit(1)
print("PASS")
