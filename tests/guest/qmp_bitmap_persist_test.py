#!/usr/bin/env python3
"""qmp_bitmap_persist_test.py VIREO GUEST: a persistent dirty bitmap of a qcow2 disk records
the guest's writes and is stored at a clean shutdown, and is left marked in use by a kill -9
(issue 18).

The disk's image gets an enabled persistent bitmap from qemu-img (b0, 64 KiB granules). vireo
runs the test guest's blk-crashwriter on it (under a throttle node: the image's bitmaps record
what goes through the filter) for a few hundred writes, write-zeroes and discards, each
logged, then the guest idles: query-block shows b0 persistent and recording; QMP adds a second
persistent bitmap (q1, 1 MiB granules) and a memory-only one. After QMP quit, qemu-img check is
clean, qemu-img info lists b0 and q1 (not in use), and the dirty granules of b0 as qemu-nbd
reads them (nbdinfo --map=qemu:dirty-bitmap:b0) are exactly those the logged operations touched;
q1 is clean. Then vireo runs the guest again and is killed with SIGKILL while it writes: qemu-img
info shows both bitmaps in use, and vireo-img check reports them inconsistent.
Needs qemu-img, qemu-nbd and nbdinfo (Debian: qemu-utils, libnbd-bin); skips without them.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import Vm, need_qemu_tools, run, setup  # noqa: E402

vireo, guest, tmp = setup()
need_qemu_tools()
for tool in ("qemu-nbd", "nbdinfo"):
    if not shutil.which(tool):
        print(f"SKIP: {tool} is not installed")
        sys.exit(77)
vireo_img = os.path.join(os.path.dirname(os.path.abspath(vireo)), "tools", "vireo-img")

MiB = 1 << 20
GRAN = 65536
disk = os.path.join(tmp, "disk.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", disk, str(32 * MiB))
run("qemu-img", "bitmap", "--add", disk, "b0")
log_path = os.path.join(tmp, "serial.log")


def start(ops, throttled=False):
    """vireo with the test guest on disk (under a throttle node when throttled)."""
    if os.path.exists(log_path):
        os.unlink(log_path)
    throttle = ["--object", "throttle-group,id=tg0,limits.iops-total=1000000",
                "--blockdev", "driver=throttle,node-name=thr,throttle-group=tg0,file=disk"]
    return Vm(vireo, ["--kernel", guest, "--memory", "128M", "--serial", f"file:{log_path}",
                      "--blockdev",
                      f"driver=qcow2,node-name=disk,file.driver=file,file.filename={disk}",
                      *(throttle if throttled else []), "--device",
                      f"virtio-blk-pci,drive={'thr' if throttled else 'disk'},id=disk0,"
                      "num-queues=2",
                      "--cmdline", f"blk-crashwriter crash-seed=5 crash-ops={ops} crash-qd=8 "
                      "crash-maxlen=65536 blk-require=1 idle"],
              os.path.join(tmp, "qmp.sock"), logs=[log_path])


def log():
    return open(log_path, errors="replace").read() if os.path.exists(log_path) else ""


def bitmaps(vm):
    return {b["name"]: b for n in vm.ok("query-named-block-nodes") if n["node-name"] == "disk"
            for b in n.get("dirty-bitmaps", [])}


def dirty(name):
    """qemu's view of bitmap name: the set of dirty granule numbers."""
    sock = os.path.join(tmp, "nbd.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    nbd = subprocess.Popen(["qemu-nbd", "-t", "-r", "-f", "qcow2", "-B", name, "-k", sock, disk],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        out = run("nbdinfo", f"--map=qemu:dirty-bitmap:{name}", f"nbd+unix:///?socket={sock}")
    finally:
        nbd.kill()
        nbd.wait()
    granules = set()
    for line in out.splitlines():
        start, length, flag = (int(x) for x in line.split()[:3])
        if flag & 1:
            granules.update(range(start // GRAN, (start + length + GRAN - 1) // GRAN))
    return granules


# 1. a clean run: the guest writes through a throttle node over the image, idles, vireo quits
vm = start(300, throttled=True)
deadline = time.monotonic() + 60
while "idle: halting" not in log():
    if vm.proc.poll() is not None or time.monotonic() > deadline:
        vm.fail("the guest never reached idle after blk-crashwriter")
    time.sleep(0.1)
b = bitmaps(vm).get("b0")
if not b or not b["persistent"] or not b["recording"] or not b["count"]:
    vm.fail(f"b0 in query-block: {b}")
vm.ok("block-dirty-bitmap-add", node="disk", name="q1", persistent=True, granularity=MiB)
vm.ok("block-dirty-bitmap-add", node="disk", name="mem")
vm.refused("block-dirty-bitmap-add", "Bitmap already exists: b0", node="disk", name="b0",
           persistent=True)
vm.quit()

want = set()
for line in log().splitlines():
    f = line.split()
    if f and f[0] in ("@W", "@Z", "@D"):
        off, length = int(f[2]), int(f[3])
        want.update(range(off // GRAN, (off + length + GRAN - 1) // GRAN))
if not want:
    print("FAIL: the guest logged no operation")
    sys.exit(1)
run("qemu-img", "check", "-q", disk)
info = run("qemu-img", "info", disk)
if "name: b0" not in info or "name: q1" not in info or "name: mem" in info or "in-use" in info:
    print(f"FAIL: qemu-img info after a clean shutdown:\n{info}")
    sys.exit(1)
got = dirty("b0")
if got != want:
    print(f"FAIL: b0 has {len(got)} dirty granules, the guest wrote {len(want)}: "
          f"extra {sorted(got - want)[:10]}, missing {sorted(want - got)[:10]}")
    sys.exit(1)
if dirty("q1"):
    print("FAIL: q1, added after the writes, is dirty")
    sys.exit(1)
print(f"ok: after a clean shutdown b0 holds exactly the {len(want)} granules the guest wrote")

# 2. killed while writing: the bitmaps stay marked in use
vm = start(100000000)
deadline = time.monotonic() + 60
while log().count("@W ") < 200:
    if vm.proc.poll() is not None or time.monotonic() > deadline:
        vm.fail("the guest did not write")
    time.sleep(0.05)
vm.proc.send_signal(signal.SIGKILL)
vm.proc.wait()
info = run("qemu-img", "info", disk)
if info.count("in-use") != 2:
    print(f"FAIL: after kill -9 both bitmaps should be in use:\n{info}")
    sys.exit(1)
r = subprocess.run([vireo_img, "check", disk], capture_output=True, text=True)
if "bitmap 'b0'" not in r.stderr or "inconsistent" not in r.stderr:
    print(f"FAIL: vireo-img check after kill -9: {r.stdout}{r.stderr}")
    sys.exit(1)
print("PASS: a persistent bitmap records the guest's writes, is stored at a clean shutdown and "
      "left in use by a kill -9")
