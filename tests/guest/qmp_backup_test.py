#!/usr/bin/env python3
"""qmp_backup_test.py VIREO GUEST: point-in-time backups over QMP while the guest writes.

The test guest's disk is a qcow2 image holding data of its own; blk-crashwriter writes random
data, zeroes and discards on it, logging each operation before issuing it. While it writes:
  1. a rate-limited blockdev-backup is cancelled: BLOCK_JOB_CANCELLED, its bitmap usable again;
  2. blockdev-backup sync=full with bitmap "inc" (on-success) makes a full backup;
  3. later, blockdev-backup sync=incremental bitmap=inc writes only what changed since into an
     image over the full backup (opened with no backing: it is written, never read).
After vireo quit, crash_check (tests/interop) compares each backup with the disk's content at
the start replayed with the logged operations up to the job's start: every operation logged
before the command was issued must be in the backup (but the last few, which the guest may
have been issuing at that moment), none logged after it returned may be.
Needs qemu-img and qemu-io (Debian: qemu-utils); skips without them.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import Vm, crash_check_of, need_qemu_tools, run, setup  # noqa: E402

vireo, guest, tmp = setup()
need_qemu_tools()
crash_check = crash_check_of(vireo)

MiB = 1 << 20
size = 64 * MiB
IN_FLIGHT = 32  # operations the guest may have logged and not yet issued: optional


disk = os.path.join(tmp, "disk.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", disk, str(size))
run("qemu-io", "-c", f"write -P 0x5a 0 {48 * MiB}", disk)
before = os.path.join(tmp, "before.raw")
run("qemu-img", "convert", "-O", "raw", disk, before)
full, inc = os.path.join(tmp, "full.qcow2"), os.path.join(tmp, "inc.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", full, str(size))
run("qemu-img", "create", "-q", "-f", "qcow2", os.path.join(tmp, "slow.qcow2"), str(size))

log_path = os.path.join(tmp, "serial.log")
vm = Vm(vireo, ["--kernel", guest, "--memory", "128M", "--serial", f"file:{log_path}",
              "--blockdev", f"driver=qcow2,node-name=disk,file.driver=file,file.filename={disk}",
              "--device", "virtio-blk-pci,drive=disk,id=disk0,num-queues=2,iothread=io0",
              # the job thread runs at SCHED_IDLE, on CPU time the guest leaves: blk-crashwriter
              # spins, so its vCPU yields to it (nice 19) and the iothread does not poll
              "--vcpu-nice", "19", "--object", "iothread,id=io0,poll-max-ns=0",
              "--cmdline", "blk-crashwriter crash-seed=11 crash-ops=100000000 crash-qd=8 "
              "crash-maxlen=65536 blk-require=1 idle"],
        os.path.join(tmp, "qmp.sock"), logs=[log_path])
qmp, fail = vm.qmp, vm.fail


def lines():
    return open(log_path, errors="replace").read().split("\n")[:-1]


def ok(cmd, **args):
    r = qmp.execute(cmd, **args)
    if "return" not in r:
        fail(f"{cmd} {args}: {r}")
    return r["return"]


def wait_ops(n):
    deadline = time.monotonic() + 60
    while sum(1 for line in lines() if line.startswith("@W ")) < n:
        if vm.proc.poll() is not None or time.monotonic() > deadline:
            fail(f"the guest did not reach {n} writes")
        time.sleep(0.05)


def backup(job, **args):
    """Runs a backup job; returns the log lines (count) before the command and after it."""
    first = len(lines())
    ok("blockdev-backup", device="disk0", **{"job-id": job}, **args)
    last = len(lines())
    done = qmp.wait_event("BLOCK_JOB_COMPLETED", timeout=240,
                          match=lambda e: e["data"]["device"] == job)
    if "error" in done["data"]:
        fail(f"{job}: {done}")
    return first, last


def log_at(first, last, path):
    """The log as crash_check must see it for a point in time between lines first and last."""
    all_lines = lines()
    ops = [ln for ln in all_lines[:last] if ln[:2] in ("@W", "@Z", "@D")]
    before_ops = [ln for ln in all_lines[:first] if ln[:2] in ("@W", "@Z", "@D")]
    flushes = [ln for ln in all_lines[:first] if ln.startswith("@F ")]
    flushed = max([int(ln.split()[1]) for ln in flushes], default=-1)
    # every operation logged before the command, but the last few, was issued before it
    cut = int(before_ops[-IN_FLIGHT - 1].split()[1]) if len(before_ops) > IN_FLIGHT else -1
    if cut > flushed:
        flushes.append(f"@F {cut}")
    with open(path, "w") as f:
        f.write("\n".join(ops + flushes) + "\n")


def check(image, first, last, name):
    raw = os.path.join(tmp, name + ".raw")
    log = os.path.join(tmp, name + ".log")
    run("qemu-img", "check", "-q", image)
    run("qemu-img", "convert", "-O", "raw", image, raw)
    log_at(first, last, log)
    r = subprocess.run([crash_check, before, log, raw], capture_output=True, text=True)
    print(f"{name}: {r.stdout.strip()}")
    if r.returncode:
        print(f"FAIL: {name} is not the disk at its point in time: {r.stdout}{r.stderr}")
        sys.exit(1)


wait_ops(200)
ok("block-dirty-bitmap-add", node="disk", name="inc")

# 1. a cancelled backup leaves the bitmap usable
ok("blockdev-add", driver="qcow2", **{"node-name": "slow"},
   file={"driver": "file", "filename": os.path.join(tmp, "slow.qcow2")})
ok("blockdev-backup", device="disk0", target="slow", sync="full", bitmap="inc",
   **{"job-id": "slow"}, speed=64 * 1024)
busy = [b for n in ok("query-named-block-nodes") if n["node-name"] == "disk"
        for b in n["dirty-bitmaps"] if b["name"] == "inc"]
if not busy or not busy[0]["busy"] or busy[0]["recording"]:
    fail(f"a backup's bitmap is frozen and busy while it runs: {busy}")
ok("block-job-cancel", device="slow")
qmp.wait_event("BLOCK_JOB_CANCELLED", timeout=240,
               match=lambda e: e["data"]["device"] == "slow")
after = [b for n in ok("query-named-block-nodes") if n["node-name"] == "disk"
         for b in n["dirty-bitmaps"] if b["name"] == "inc"]
if not after or after[0]["busy"] or not after[0]["recording"]:
    fail(f"the bitmap after a cancelled backup: {after}")
ok("blockdev-del", **{"node-name": "slow"})

# 2. full backup, the bitmap synchronized with it
ok("blockdev-add", driver="qcow2", **{"node-name": "full"},
   file={"driver": "file", "filename": full})
f1, l1 = backup("b1", target="full", sync="full", bitmap="inc")
ok("blockdev-del", **{"node-name": "full"})
wait_ops(sum(1 for line in lines() if line.startswith("@W ")) + 2000)

# 3. incremental backup over the full one
run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "full.qcow2", "-F", "qcow2", inc)
ok("blockdev-add", driver="qcow2", **{"node-name": "inc"}, backing=None,
   file={"driver": "file", "filename": inc})
dirty = [b for n in ok("query-named-block-nodes") if n["node-name"] == "disk"
         for b in n["dirty-bitmaps"] if b["name"] == "inc"][0]["count"]
if not 0 < dirty < size:
    fail(f"the bitmap after the full backup marks {dirty} bytes")
f2, l2 = backup("b2", target="inc", sync="incremental", bitmap="inc")
ok("blockdev-del", **{"node-name": "inc"})
vm.quit()  # the guest still writing: the backups hold their points in time, not the end
print(f"ok: the incremental backup copied {dirty // MiB} MiB marked since the full one")
check(full, f1, l1, "full")
check(inc, f2, l2, "incremental")
print("PASS: full and incremental backups hold the disk at their points in time")
