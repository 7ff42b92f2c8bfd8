#!/usr/bin/env python3
"""qmp_create_test.py VIREO GUEST: blockdev-create over QMP, as QEMU's iotests 206 drives it.

Starts GUEST (a guest that halts) without disks, then: blockdev-create makes a file (driver
file), blockdev-add opens it, and blockdev-create writes a qcow2 image onto that node; the job
goes through QEMU's states (created, running, waiting, pending, concluded) with no BLOCK_JOB_*
event, stays concluded until job-dismiss, and blockdev-add of the image shows in
query-named-block-nodes with the cluster size and virtual size asked for. A second image (version
v2, 4 KiB clusters) takes its file as a nested BlockdevRef; a creation that fails fails its job,
which waits for job-dismiss too; bad options are refused by name before any job exists. Where
qemu-img is on the machine (not in the emulated host), it checks both images afterwards.
"""
import json
import os
import shutil
import subprocess

from vmtest import Vm, setup

vireo, guest, tmp = setup()
vm = Vm(vireo, ["--kernel", guest, "--memory", "64M", "--serial", "none"],
        os.path.join(tmp, "qmp.sock"))
qmp, fail = vm.qmp, vm.fail


ok = vm.ok


def error_of(want, **args):
    vm.refused("blockdev-create", want, **args)


def states(job, want):
    """The job's JOB_STATUS_CHANGE events, in order, are want."""
    for status in want:
        try:
            qmp.wait_event("JOB_STATUS_CHANGE", timeout=30,
                           match=lambda e: e["data"] == {"id": job, "status": status})
        except TimeoutError:
            fail(f"job {job}: no '{status}' (events: {qmp.events})")


def create(job, options, fails=None):
    """blockdev-create, run to concluded (QEMU's create job is never dismissed by itself),
    checked in query-jobs, then job-dismiss."""
    ok("blockdev-create", **{"job-id": job}, options=options)
    if fails:
        states(job, ["created", "running", "aborting", "concluded"])
    else:
        states(job, ["created", "running", "waiting", "pending", "concluded"])
    jobs = qmp.execute("query-jobs")["return"]
    if len(jobs) != 1 or jobs[0]["id"] != job or jobs[0]["type"] != "create" or \
            jobs[0]["status"] != "concluded" or jobs[0].get("error") != fails or \
            (jobs[0]["current-progress"], jobs[0]["total-progress"]) != (1, 1):
        fail(f"query-jobs after {job}: {jobs}")
    if qmp.execute("query-block-jobs")["return"] != []:
        fail("a create job is not a block job")
    ok("job-dismiss", id=job)
    states(job, ["null"])
    if [e for e in qmp.events if e["event"].startswith("BLOCK_JOB")]:
        fail(f"BLOCK_JOB_* events for a create job: {qmp.events}")
    if qmp.execute("query-jobs")["return"] != []:
        fail(f"{job} left after job-dismiss")


def node(name):
    for n in qmp.execute("query-named-block-nodes")["return"]:
        if n["node-name"] == name:
            return n
    fail(f"no node {name}")


img = os.path.join(tmp, "t.qcow2")
create("job0", {"driver": "file", "filename": img, "size": 0})
ok("blockdev-add", driver="file", filename=img, **{"node-name": "imgfile"})
create("job1", {"driver": "qcow2", "file": "imgfile", "size": 64 << 20,
                "cluster-size": 128 << 10, "lazy-refcounts": True, "refcount-bits": 32})
ok("blockdev-add", driver="qcow2", file="imgfile", **{"node-name": "img"})
i = node("img")["image"]
spec = i.get("format-specific", {}).get("data", {})
if i["format"] != "qcow2" or i["virtual-size"] != 64 << 20 or i["cluster-size"] != 128 << 10 \
        or spec.get("compat") != "1.1" or spec.get("lazy-refcounts") is not True or \
        spec.get("refcount-bits") != 32:
    fail(f"img: {i}")
ok("blockdev-del", **{"node-name": "img"})
ok("blockdev-del", **{"node-name": "imgfile"})

# v2 with 4 KiB clusters onto a file given as a nested BlockdevRef (it must exist: QEMU opens it)
img2 = os.path.join(tmp, "v2.qcow2")
create("job2", {"driver": "file", "filename": img2, "size": 0, "preallocation": "off"})
create("job3", {"driver": "qcow2", "file": {"driver": "file", "filename": img2},
                "size": 8 << 20, "version": "v2", "cluster-size": 4096,
                "preallocation": "metadata"})
ok("blockdev-add", driver="qcow2", **{"node-name": "img2"},
   file={"driver": "file", "filename": img2})
i = node("img2")["image"]
if i["virtual-size"] != 8 << 20 or i["cluster-size"] != 4096 or \
        i.get("format-specific", {}).get("data", {}).get("compat") != "0.10":
    fail(f"img2: {i}")
ok("blockdev-del", **{"node-name": "img2"})

# a creation that fails: the job fails, and waits for job-dismiss all the same
bad = os.path.join(tmp, "nodir", "x.img")
create("job4", {"driver": "file", "filename": bad, "size": 0},
       fails=f"Could not create '{bad}': No such file or directory")

error_of("Driver does not support blockdev-create", **{"job-id": "r"},
         options={"driver": "raw"})
error_of("cluster-size: must be a power of two", **{"job-id": "r"},
         options={"driver": "qcow2", "file": "nosuch", "size": 0, "cluster-size": 3000})
error_of("lazy-refcounts=on needs version=v3", **{"job-id": "r"},
         options={"driver": "qcow2", "file": "nosuch", "size": 0, "version": "v2",
                  "lazy-refcounts": True})
error_of("file: no node named 'nosuch'", **{"job-id": "r"},
         options={"driver": "qcow2", "file": "nosuch", "size": 0})
error_of("Parameter 'options' is missing", **{"job-id": "r"})
error_of("options: unknown key 'bogus'", **{"job-id": "r"},
         options={"driver": "file", "filename": img, "size": 0, "bogus": 1})
if qmp.execute("query-jobs")["return"] != []:
    fail("a refused blockdev-create left a job")
vm.quit()

# the images as QEMU sees them, where qemu-img is (the emulated host has none)
if shutil.which("qemu-img"):
    for path, cluster in ((img, 128 << 10), (img2, 4096)):
        c = subprocess.run(["qemu-img", "check", path], capture_output=True, text=True)
        if c.returncode != 0:
            print(f"FAIL: qemu-img check {path}: {c.stdout}{c.stderr}")
            raise SystemExit(1)
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", path],
                                         capture_output=True, text=True, check=True).stdout)
        if info["format"] != "qcow2" or info["cluster-size"] != cluster:
            print(f"FAIL: qemu-img info {path}: {info}")
            raise SystemExit(1)
print("ok: blockdev-create of files and qcow2 images, job states, dismiss, refusals")
