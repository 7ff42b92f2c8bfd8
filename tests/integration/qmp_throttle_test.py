#!/usr/bin/env python3
"""qmp_throttle_test.py VIREO GUEST: throttling on the command line and over QMP, as QEMU's.

Bad throttling keys are refused by name before the VM starts: an unknown limits.* key of a
throttle-group, a throttle node naming no group, total and read limits together, a -max below
its average, an unknown throttling.* key of --drive, group= without limits. Then a VM with a
throttle-group object (limits.* and x- keys) shared by two throttle nodes with a virtio-blk disk
on each, and a --drive with QEMU -drive's iops=/bps_wr= keys: query-block reports each disk's
limits and group; block_set_io_throttle changes them live (both disks of the shared group see
it), gives a disk without throttling a throttle node of its own (as QEMU throttles any disk;
all limits 0 there change nothing), refuses bad limits, a missing parameter, an unknown device
and a move to another group, and leaves the limits as they were when it refuses. (That the limits
hold: tests/unit's test_throttle and test_blockdev_throttle, and bench/throttle.)
"""
import os
import subprocess

from vmtest import Vm, setup

vireo, guest, tmp = setup()
disks = []
for i in range(4):
    p = os.path.join(tmp, f"d{i}.raw")
    with open(p, "wb") as f:
        f.truncate(8 << 20)
    disks.append(p)
base = ["--kernel", guest, "--memory", "64M", "--serial", "none"]


def refused_cli(args, want):
    r = subprocess.run([vireo] + base + args, capture_output=True, text=True, timeout=30)
    if r.returncode == 0 or want not in r.stderr:
        raise SystemExit(f"FAIL: {args}: wanted an error saying '{want}', got "
                         f"{r.returncode}: {r.stderr}")


node0 = f"driver=raw,node-name=r0,file.driver=file,file.filename={disks[0]}"
refused_cli(["--object", "throttle-group,id=tg0,limits.iops-totl=10"], "iops-totl")
refused_cli(["--object", "throttle-group,id=tg0,limits.iops-total=10,limits.iops-read=5"],
            "cannot be used at the same time")
refused_cli(["--object", "throttle-group,id=tg0,limits.bps-total=100,limits.bps-total-max=50"],
            "cannot be lower than")
refused_cli(["--object", "throttle-group,id=tg0,x-iops-total=abc"], "x-iops-total")
refused_cli(["--blockdev", node0, "--blockdev", "driver=throttle,node-name=t0,file=r0"],
            "needs a throttle-group")
refused_cli(["--blockdev", node0, "--blockdev",
             "driver=throttle,node-name=t0,throttle-group=nope,file=r0"],
            "no throttle group named 'nope'")
refused_cli(["--drive", f"file={disks[2]},throttling.iops-totl=5"], "throttling.iops-totl")
refused_cli(["--drive", f"file={disks[2]},iops=5,iops_rd=5"], "at the same time")
refused_cli(["--drive", f"file={disks[2]},iops=abc"], "iops")
refused_cli(["--drive", f"file={disks[2]},group=g"], "without any throttling limit")

vm = Vm(vireo, base + [
    "--object", "throttle-group,id=tg0,limits.iops-total=1000,limits.iops-total-max=2000,"
                "limits.iops-total-max-length=3,x-bps-read=10485760",
    "--blockdev", node0,
    "--blockdev", "driver=throttle,node-name=t0,throttle-group=tg0,file=r0",
    "--blockdev", f"driver=raw,node-name=r1,file.driver=file,file.filename={disks[1]}",
    "--blockdev", "driver=throttle,node-name=t1,throttle-group=tg0,file=r1",
    "--device", "virtio-blk-pci,drive=t0,id=disk0",
    "--device", "virtio-blk-pci,drive=t1,id=disk1",
    "--drive", f"file={disks[2]},format=raw,iops=300,bps_wr=1048576,iops_size=8192",
    "--blockdev", f"driver=raw,node-name=r3,file.driver=file,file.filename={disks[3]}",
    "--device", "virtio-blk-pci,drive=r3,id=disk3"],
    os.path.join(tmp, "qmp.sock"))
qmp, fail = vm.qmp, vm.fail


def inserted():
    return {b["qdev"]: b["inserted"] for b in qmp.execute("query-block")["return"]}


def want(disk, **fields):
    got = inserted()[disk]
    for k, v in fields.items():
        if got.get(k) != v:
            fail(f"query-block {disk}: {k} is {got.get(k)}, wanted {v}: {got}")


def refused(want_msg, cls="GenericError", **args):
    r = qmp.execute("block_set_io_throttle", **args)
    e = r.get("error", {})
    if e.get("class") != cls or want_msg not in e.get("desc", ""):
        fail(f"block_set_io_throttle {args}: wanted an error saying '{want_msg}', got {r}")


zero = dict(bps=0, bps_rd=0, bps_wr=0, iops=0, iops_rd=0, iops_wr=0)
for d in ("disk0", "disk1"):
    want(d, drv="throttle", group="tg0", iops=1000, iops_max=2000, iops_max_length=3,
         bps_rd=10485760, bps=0, iops_rd=0, iops_size=0)
want("virtio-blk0", drv="throttle", group="virtio-blk0", iops=300, bps_wr=1048576,
     iops_size=8192, iops_max=0, iops_max_length=1)
names = [n["node-name"] for n in qmp.execute("query-named-block-nodes")["return"]]
if not {"t0", "t1", "r0", "r1"} <= set(names):
    fail(f"named nodes: {names}")

# live: the shared group changes for both of its disks
r = qmp.execute("block_set_io_throttle", device="disk1", **dict(zero, iops=50, iops_max=80,
                iops_max_length=2, iops_size=4096), group="tg0")
if r.get("return") != {}:
    fail(f"block_set_io_throttle: {r}")
for d in ("disk0", "disk1"):
    want(d, iops=50, iops_max=80, iops_max_length=2, iops_size=4096, bps_rd=0)
r = qmp.execute("block_set_io_throttle", id="virtio-blk0", **dict(zero, bps=4096000))
if r.get("return") != {}:
    fail(f"block_set_io_throttle: {r}")
want("virtio-blk0", bps=4096000, iops=0, bps_wr=0, iops_size=0)

# a disk without throttling: all zero changes nothing; limits put a throttle node over it
r = qmp.execute("block_set_io_throttle", device="disk3", **zero)
if r.get("return") != {}:
    fail(f"block_set_io_throttle, all 0, on a disk without throttling: {r}")
want("disk3", drv="raw", **{"node-name": "r3"})
r = qmp.execute("block_set_io_throttle", device="disk3", **dict(zero, iops=100, bps_rd=8192))
if r.get("return") != {}:
    fail(f"block_set_io_throttle on a disk without throttling: {r}")
want("disk3", drv="throttle", group="disk3", iops=100, bps_rd=8192)
names = [n["node-name"] for n in qmp.execute("query-named-block-nodes")["return"]]
if "r3" not in names:
    fail(f"r3 is gone from the named nodes after the throttle node went over it: {names}")
refused("Device 'disk3' is in throttle group 'disk3': moving it to 'tg0' is not supported",
        device="disk3", group="tg0", **zero)

refused("cannot be used at the same time", device="disk0", **dict(zero, iops=5, iops_rd=5))
refused("cannot be lower than", device="disk0", **dict(zero, iops=50, iops_max=10))
refused("Parameter 'iops_wr' is missing", device="disk0", bps=0, bps_rd=0, bps_wr=0, iops=0,
        iops_rd=0)
refused("Parameter 'iops_frob' is unexpected", device="disk0", iops_frob=1, **zero)
refused("Device 'nope' not found", "DeviceNotFound", device="nope", **zero)
refused("moving it to 'other' is not supported", device="disk0", group="other", **zero)
want("disk0", iops=50, iops_max=80)  # unchanged by the refusals
vm.quit()
print("PASS")
