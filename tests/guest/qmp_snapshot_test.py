#!/usr/bin/env python3
"""qmp_snapshot_test.py VIREO GUEST: internal and external snapshots over QMP while the guest
writes (issue 18).

The test guest's disk is a qcow2 image holding data of its own; blk-crashwriter writes random
data, zeroes and discards to it, with flushes, each logged. While it writes:
  1. blockdev-snapshot-internal-sync takes s1, then s2; a repeated name, an empty one and an
     unknown device are refused with QEMU's messages;
  2. blockdev-snapshot-delete-internal-sync deletes s1 and answers its SnapshotInfo (its VM
     clock, as QEMU's, the guest's running time: above 0, below the time vireo ran); a second
     delete is refused;
  3. blockdev-snapshot-sync puts a new overlay (ov1.qcow2, created by vireo with the disk's image
     as backing file) over the disk: the device moves onto it (query-block);
  4. blockdev-snapshot puts ov2.qcow2 (made by qemu-img, blockdev-add with backing null) over
     ov1, and refusals: an overlay in use, one with a backing image.
Then vireo quits while the guest still writes. qemu-img check passes on every image; qemu-img
lists s2 only, with a VM clock past s1's and below the time vireo ran until then; and crash_check (tests/interop) finds s2 (read with qemu-img convert -l), the
disk image's own content, and ov1 over it each holding the disk at their points in time, and
the whole chain the guest's every flushed write.
Needs qemu-img and qemu-io (Debian: qemu-utils); skips without them.
"""
import json
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
ov1, ov2 = os.path.join(tmp, "ov1.qcow2"), os.path.join(tmp, "ov2.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", disk, str(size))
run("qemu-io", "-c", f"write -P 0x5a 0 {48 * MiB}", disk)
before = os.path.join(tmp, "before.raw")
run("qemu-img", "convert", "-O", "raw", disk, before)

log_path = os.path.join(tmp, "serial.log")
launched = time.monotonic()
vm = Vm(vireo, ["--kernel", guest, "--memory", "128M", "--serial", f"file:{log_path}",
              "--blockdev", f"driver=qcow2,node-name=disk,file.driver=file,file.filename={disk}",
              "--device", "virtio-blk-pci,drive=disk,id=disk0,num-queues=2,iothread=io0",
              "--vcpu-nice", "19", "--object", "iothread,id=io0,poll-max-ns=0",
              "--cmdline", "blk-crashwriter crash-seed=23 crash-ops=100000000 crash-qd=8 "
              "crash-maxlen=65536 blk-require=1 idle"],
        os.path.join(tmp, "qmp.sock"), logs=[log_path])
qmp, fail, ok, refused = vm.qmp, vm.fail, vm.ok, vm.refused


def lines():
    return open(log_path, errors="replace").read().split("\n")[:-1]


def writes():
    return sum(1 for line in lines() if line.startswith("@W "))


def wait_ops(n):
    deadline = time.monotonic() + 60
    while writes() < n:
        if vm.proc.poll() is not None or time.monotonic() > deadline:
            fail(f"the guest did not reach {n} writes")
        time.sleep(0.05)


def at(cmd, **args):
    """Runs a command that takes a point in time; the log lines before and after it."""
    first = len(lines())
    ok(cmd, **args)
    return first, len(lines())


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


def holds(name, image, when, snapshot=None):
    """image (or its internal snapshot) is the disk at point in time when (None: the end)."""
    raw, log = os.path.join(tmp, name + ".raw"), os.path.join(tmp, name + ".log")
    run("qemu-img", "convert", *(["-l", snapshot] if snapshot else []), "-O", "raw", image, raw)
    if when:
        log_at(*when, log)
    else:
        with open(log, "w") as f:
            f.write("\n".join(ln for ln in lines() if ln[:2] in ("@W", "@Z", "@D", "@F")) + "\n")
    r = subprocess.run([crash_check, before, log, raw], capture_output=True, text=True)
    print(f"{name}: {r.stdout.strip()}")
    if r.returncode:
        print(f"FAIL: {name} is not the disk at its point in time: {r.stdout}{r.stderr}")
        sys.exit(1)


def disk_node():
    return [b["inserted"]["node-name"] for b in ok("query-block") if b["qdev"] == "disk0"][0]


# 1. internal snapshots
wait_ops(200)
at("blockdev-snapshot-internal-sync", device="disk0", name="s1")
ran_s1 = time.monotonic() - launched
refused("blockdev-snapshot-internal-sync", "Snapshot with name 's1' already exists on device",
        device="disk0", name="s1")
refused("blockdev-snapshot-internal-sync", "Name is empty", device="disk0", name="")
refused("blockdev-snapshot-internal-sync", "Cannot find device='nope'", device="nope",
        name="x")
wait_ops(writes() + 500)
t_s2 = at("blockdev-snapshot-internal-sync", device="disk", name="s2")
ran_s2 = time.monotonic() - launched

# 2. delete s1
info = ok("blockdev-snapshot-delete-internal-sync", device="disk0", name="s1")
if info.get("id") != "1" or info.get("name") != "s1" or info.get("vm-state-size") != 0:
    fail(f"SnapshotInfo of the deleted snapshot: {info}")
clock_s1 = info.get("vm-clock-sec", 0) + info.get("vm-clock-nsec", 0) / 1e9
if not 0 < clock_s1 < ran_s1:
    fail(f"s1's VM clock is {clock_s1} s, vireo had run {ran_s1:.3f} s: {info}")
refused("blockdev-snapshot-delete-internal-sync",
        "Snapshot with id '(null)' and name 's1' does not exist on device 'disk0'",
        device="disk0", name="s1")
refused("blockdev-snapshot-delete-internal-sync", "Name or id must be provided", device="disk0")

# 3. an external snapshot: vireo creates the overlay
wait_ops(writes() + 500)
t_ov1 = at("blockdev-snapshot-sync", device="disk0", **{"snapshot-file": ov1,
           "snapshot-node-name": "ov1"})
if disk_node() != "ov1":
    fail(f"the disk is on node {disk_node()}, not the overlay ov1")
nodes = {n["node-name"]: n for n in ok("query-named-block-nodes")}
if nodes["ov1"].get("backing_file") != disk:
    fail(f"ov1's backing file: {nodes['ov1']}")

# 4. an external snapshot onto a node blockdev-add made
wait_ops(writes() + 500)
run("qemu-img", "create", "-q", "-f", "qcow2", "-b", ov1, "-F", "qcow2", ov2)
ok("blockdev-add", driver="qcow2", **{"node-name": "ov2"}, backing=None,
   file={"driver": "file", "filename": ov2})
refused("blockdev-snapshot", "The overlay is already in use", node="ov2", overlay="ov1")
t_ov2 = at("blockdev-snapshot", node="ov1", overlay="ov2")
if disk_node() != "ov2":
    fail(f"the disk is on node {disk_node()}, not the overlay ov2")
other, ov3 = os.path.join(tmp, "other.raw"), os.path.join(tmp, "ov3.qcow2")
run("qemu-img", "create", "-q", "-f", "raw", other, str(size))
run("qemu-img", "create", "-q", "-f", "qcow2", "-b", other, "-F", "raw", ov3)
ok("blockdev-add", driver="qcow2", **{"node-name": "ov3"}, file={"driver": "file", "filename": ov3})
refused("blockdev-snapshot", "The overlay already has a backing image", node="ov2",
        overlay="ov3")
refused("blockdev-snapshot", "cannot be its own overlay", node="ov2", overlay="ov2")
wait_ops(writes() + 500)
vm.quit()  # the guest still writing

for image in (disk, ov1, ov2):
    run("qemu-img", "check", "-q", image)
listing = run("qemu-img", "snapshot", "-l", disk)
if " s2 " not in listing or " s1 " in listing:
    fail(f"qemu-img snapshot -l: {listing}")
s2 = [sn for sn in json.loads(run("qemu-img", "info", "--output=json", disk))["snapshots"]
      if sn["name"] == "s2"][0]
clock_s2 = s2["vm-clock-sec"] + s2["vm-clock-nsec"] / 1e9
if not clock_s1 < clock_s2 < ran_s2:
    fail(f"s2's VM clock is {clock_s2} s (s1's {clock_s1} s), vireo had run {ran_s2:.3f} s")
holds("s2", disk, t_s2, snapshot="s2")
holds("disk", disk, t_ov1)
holds("ov1", ov1, t_ov2)
holds("ov2", ov2, None)
print("PASS: internal and external snapshots hold the disk at their points in time")
