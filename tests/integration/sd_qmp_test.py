#!/usr/bin/env python3
"""sd_qmp_test.py DAEMON: vireo-storage-daemon runs block jobs over QMP, with no VM.

Starts the daemon with --object iothread and throttle-group, --blockdev nodes (raw over file, a
qcow2 over its backing file from the header, a throttle node) and a --chardev + --monitor, then
over QMP: query-commands lists the block layer's, the jobs' and the bitmaps' commands;
query-named-block-nodes and query-iothreads show what the command line made; block-stream pulls
the backing file's data into the qcow2 (qemu-img: its content unchanged, no backing file left);
an internal snapshot of it, an external one over it and an active block-commit back into it;
blockdev-create makes a raw file, blockdev-add opens it and blockdev-backup sync=full copies a
node into it (qemu-img compare: equal); a dirty bitmap is added and shown; block_set_io_throttle
changes a throttle node's group (a "device" names a node here) and refuses a node without one;
block_resize grows a node; blockdev-del refuses a node in use and deletes one that is not; quit
ends it with status 0 and its socket gone.
"""
import os
import subprocess
import sys

from vmtest import Daemon, need_qemu_tools, run, tmpdir

daemon = sys.argv[1]
need_qemu_tools()
tmp = tmpdir()


def path(name):
    return os.path.join(tmp, name)


# a raw source with a pattern, a qcow2 over a qcow2 backing file, a small raw for the throttle
with open(path("src.raw"), "wb") as f:
    for i in range(64):
        f.write(bytes([i]) * 65536)
run("qemu-img", "create", "-q", "-f", "qcow2", path("base.qcow2"), "8M")
run("qemu-io", "-c", "write -P 0xaa 0 1M", "-c", "write -P 0xbb 4M 512k", path("base.qcow2"))
run("qemu-img", "create", "-q", "-f", "qcow2", "-b", path("base.qcow2"), "-F", "qcow2",
    path("top.qcow2"))
run("qemu-io", "-c", "write -P 0xcc 512k 1M", path("top.qcow2"))
run("qemu-img", "convert", "-O", "raw", path("top.qcow2"), path("expected.raw"))
run("qemu-img", "create", "-q", "-f", "qcow2", "-b", path("top.qcow2"), "-F", "qcow2",
    path("over.qcow2"))
with open(path("small.raw"), "wb") as f:
    f.truncate(1 << 20)

sock = path("qmp.sock")
d = Daemon(daemon, [
    "--object", "iothread,id=io0,poll-max-ns=0",
    "--object", "throttle-group,id=tg0,limits.iops-total=1000",
    "--blockdev", f"driver=file,node-name=srcf,filename={path('src.raw')}",
    "--blockdev", "driver=raw,node-name=src,file=srcf",
    "--blockdev", '{"driver": "qcow2", "node-name": "top", "file": {"driver": "file", '
                  f'"filename": "{path("top.qcow2")}"}}}}',
    "--blockdev", f"driver=raw,node-name=small,file.driver=file,file.filename={path('small.raw')}",
    "--blockdev", "driver=throttle,node-name=thr,throttle-group=tg0,file=small",
], sock)
qmp = d.qmp

have = {c["name"] for c in d.ok("query-commands")}
want = {"blockdev-add", "blockdev-del", "query-named-block-nodes", "query-block-jobs",
        "query-jobs", "block-commit", "blockdev-backup", "blockdev-mirror", "block-stream",
        "blockdev-create", "job-cancel", "job-complete", "job-dismiss", "job-finalize",
        "job-pause", "job-resume", "block-dirty-bitmap-add", "block-dirty-bitmap-remove",
        "block-dirty-bitmap-clear", "block-dirty-bitmap-merge", "block_set_io_throttle",
        "block_resize", "query-version", "query-commands", "query-iothreads", "quit",
        "x-debug-query-block-graph", "blockdev-snapshot-sync", "blockdev-snapshot",
        "blockdev-snapshot-internal-sync", "blockdev-snapshot-delete-internal-sync",
        "nbd-server-start", "nbd-server-stop", "block-export-add", "block-export-del",
        "query-block-exports"}
if want - have:
    d.fail(f"query-commands lacks {sorted(want - have)}")
r = qmp.execute("query-status")
if r.get("error", {}).get("class") != "CommandNotFound":
    d.fail(f"query-status (a VM's command) should not be found: {r}")
if [t["id"] for t in d.ok("query-iothreads")] != ["io0"]:
    d.fail("query-iothreads does not list io0")


def nodes():
    return {n["node-name"]: n for n in d.ok("query-named-block-nodes")}


n = nodes()
if not {"srcf", "src", "top", "small", "thr"} <= set(n):
    d.fail(f"nodes at start: {sorted(n)}")
if n["top"]["drv"] != "qcow2" or n["top"]["backing_file_depth"] != 1 or \
        n["top"]["backing_file"] != path("base.qcow2"):
    d.fail(f"top: {n['top']}")
if n["thr"]["drv"] != "throttle" or n["thr"]["iops"] != 1000 or n["thr"]["group"] != "tg0":
    d.fail(f"thr: {n['thr']}")


def job_done(job):
    """Waits for the block job's BLOCK_JOB_COMPLETED; fails on an error in it."""
    try:
        e = qmp.wait_event("BLOCK_JOB_COMPLETED", timeout=60,
                           match=lambda e: e["data"]["device"] == job)
    except TimeoutError as e:
        d.fail(f"{job}: {e}; query-jobs: {d.ok('query-jobs')}")
    if "error" in e["data"] or e["data"]["offset"] != e["data"]["len"]:
        d.fail(f"{job} failed: {e}")


# block-stream: the backing file's data copied into top, which then stands alone
d.ok("block-stream", device="top", **{"job-id": "s0"})
job_done("s0")
if d.ok("query-block-jobs"):
    d.fail(f"a job is left: {d.ok('query-block-jobs')}")
if nodes()["top"]["backing_file_depth"] != 0:
    d.fail(f"top after the stream: {nodes()['top']}")

# an internal snapshot of top, an external one over it (an overlay blockdev-add opened), then
# an active commit back into top
d.ok("blockdev-snapshot-internal-sync", device="top", name="s1")
d.ok("blockdev-add", driver="qcow2", **{"node-name": "over"}, backing=None,
     file={"driver": "file", "filename": path("over.qcow2")})
d.ok("blockdev-snapshot", node="top", overlay="over")
if nodes()["over"]["backing_file"] != path("top.qcow2"):
    d.fail(f"over after blockdev-snapshot: {nodes()['over']}")
d.ok("block-commit", device="over", **{"job-id": "k0"})
qmp.wait_event("BLOCK_JOB_READY", timeout=30, match=lambda e: e["data"]["device"] == "k0")
d.ok("job-complete", id="k0")
job_done("k0")

# blockdev-create + blockdev-add + blockdev-backup sync=full
d.ok("blockdev-create", **{"job-id": "c0"},
     options={"driver": "file", "filename": path("backup.raw"), "size": 4 << 20})
qmp.wait_event("JOB_STATUS_CHANGE", match=lambda e: e["data"] == {"id": "c0",
                                                                  "status": "concluded"})
job = [j for j in d.ok("query-jobs") if j["id"] == "c0"]
if not job or "error" in job[0]:
    d.fail(f"blockdev-create: {job}")
d.ok("job-dismiss", id="c0")
d.ok("blockdev-add", driver="raw", **{"node-name": "bk"},
     file={"driver": "file", "filename": path("backup.raw")})
d.ok("blockdev-backup", device="src", target="bk", sync="full", **{"job-id": "b0"})
job_done("b0")
run("qemu-img", "compare", "-f", "raw", "-F", "raw", path("src.raw"), path("backup.raw"))

# a dirty bitmap on a node, shown with it
d.ok("block-dirty-bitmap-add", node="src", name="bm0", granularity=65536)
bm = nodes()["src"].get("dirty-bitmaps", [])
if [b["name"] for b in bm] != ["bm0"] or bm[0]["granularity"] != 65536:
    d.fail(f"src's bitmaps: {bm}")

# block_set_io_throttle: "device" names a throttle node; a node without a group is refused
limits = dict(bps=0, bps_rd=0, bps_wr=0, iops=500, iops_rd=0, iops_wr=0)
d.ok("block_set_io_throttle", device="thr", **limits)
if nodes()["thr"]["iops"] != 500:
    d.fail(f"thr after block_set_io_throttle: {nodes()['thr']}")
d.refused("block_set_io_throttle", "Node 'src' has no throttling to change", device="src",
          **limits)
r = qmp.execute("block_set_io_throttle", device="nope", **limits)
if r.get("error", {}).get("class") != "DeviceNotFound":
    d.fail(f"block_set_io_throttle of no node: {r}")

# block_resize of a node; blockdev-del of a node in use and of a free one
d.ok("block_resize", **{"node-name": "small"}, size=2 << 20)
if os.path.getsize(path("small.raw")) != 2 << 20 or \
        nodes()["small"]["image"]["virtual-size"] != 2 << 20:
    d.fail(f"small after block_resize: {nodes()['small']}")
d.refused("blockdev-del", "in use by node 'src' (as its file)", **{"node-name": "srcf"})
d.ok("blockdev-del", **{"node-name": "bk"})
if "bk" in nodes():
    d.fail("bk is still there after blockdev-del")

d.quit()
if os.path.exists(sock):
    d.fail("the monitor's socket is left after quit")
info = run("qemu-img", "info", "-U", path("top.qcow2"))
if "s1" not in run("qemu-img", "snapshot", "-l", path("top.qcow2")):
    d.fail("top.qcow2 has no internal snapshot s1")
if "backing file" in info:
    d.fail(f"top.qcow2 still names a backing file after the stream:\n{info}")
run("qemu-img", "check", path("top.qcow2"))
run("qemu-img", "compare", "-F", "raw", path("top.qcow2"), path("expected.raw"))
print("PASS")
