#!/usr/bin/env python3
"""sd_snapshot_sync_test.py DAEMON: blockdev-snapshot-sync on a node that no device uses, as
QEMU's (issue 18), side by side with qemu-storage-daemon when it is installed.

Each daemon opens a qcow2 image as node "base" (nothing uses it) and over QMP:
 - node-name without snapshot-node-name is refused ("New overlay node-name missing"), and a
   snapshot-node-name already taken by a node ("New overlay node-name already in use"), before
   any file is made;
 - with snapshot-node-name "ov" the overlay file is created (qemu-img info: the image's file as
   its backing file, qcow2), and the overlay node is not kept: nothing uses the node, so nothing
   holds the overlay, and query-named-block-nodes lists "base" alone, its image unchanged;
 - the same name can be used again; blockdev-snapshot onto an overlay blockdev-add made keeps
   that overlay (its creator holds it), the node as its backing.
Both daemons must give the same answers and node lists (QEMU also reopens "base" read-only,
which vireo does not: its "ro" is left out of the comparison). Needs qemu-img (Debian:
qemu-utils); skips without it; the comparison is skipped without qemu-storage-daemon.
"""
import json
import os
import shutil
import sys

from vmtest import Daemon, need_qemu_tools, run, tmpdir

daemon = sys.argv[1]
need_qemu_tools()
tmp = tmpdir()


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def session(program, tag):
    """The answers and node lists of one daemon's run, as comparable data."""
    d_ = os.path.join(tmp, tag)
    os.mkdir(d_)
    base, ov, ov2 = (os.path.join(d_, n) for n in ("base.qcow2", "ov.qcow2", "ov2.qcow2"))
    run("qemu-img", "create", "-q", "-f", "qcow2", base, "16M")
    run("qemu-io", "-c", "write -P 0x11 0 64k", base)
    d = Daemon(program, ["--blockdev",
                         f"driver=qcow2,node-name=base,file.driver=file,file.filename={base}"],
               os.path.join(d_, "qmp.sock"))
    seen = []

    def named():
        return sorted((n["node-name"], n["drv"], n.get("backing_file"))
                      for n in d.ok("query-named-block-nodes", flat=True)
                      if not n["node-name"].startswith("#"))

    def answer(cmd, **args):
        r = d.qmp.execute(cmd, **args)
        seen.append((cmd, r.get("error", {}).get("desc", "ok")))
        return r

    answer("blockdev-snapshot-sync", **{"node-name": "base", "snapshot-file": ov})
    if os.path.exists(ov):
        d.fail("a refused snapshot made its file")
    answer("blockdev-snapshot-sync", **{"node-name": "base", "snapshot-file": ov,
                                        "snapshot-node-name": "base"})
    answer("blockdev-snapshot-sync", **{"node-name": "base", "snapshot-file": ov,
                                        "snapshot-node-name": "ov"})
    seen.append(("nodes", named()))
    info = json.loads(run("qemu-img", "info", "-U", "--output=json", ov))
    seen.append(("overlay", info["format"], info.get("backing-filename") == base,
                 info.get("backing-filename-format")))
    os.unlink(ov)
    answer("blockdev-snapshot-sync", **{"node-name": "base", "snapshot-file": ov,
                                        "snapshot-node-name": "ov"})
    seen.append(("nodes again", named()))
    # an overlay blockdev-add made is held by its creator: it stays
    run("qemu-img", "create", "-q", "-f", "qcow2", ov2, "16M")
    answer("blockdev-add", driver="qcow2", **{"node-name": "ov2"}, backing=None,
           file={"driver": "file", "filename": ov2})
    answer("blockdev-snapshot", node="base", overlay="ov2")
    seen.append(("nodes after blockdev-snapshot",
                 [(n, drv, b == base if b else None) for n, drv, b in named()]))
    d.quit()
    run("qemu-img", "check", "-q", base)
    if "verification failed" in run("qemu-io", "-c", "read -P 0x11 0 64k", base):
        fail(f"{tag}: base.qcow2 lost its data")
    return seen


ours = session(daemon, "vireo")
want = [
    ("blockdev-snapshot-sync", "New overlay node-name missing"),
    ("blockdev-snapshot-sync", "New overlay node-name already in use"),
    ("blockdev-snapshot-sync", "ok"),
    ("nodes", [("base", "qcow2", None)]),
    ("overlay", "qcow2", True, "qcow2"),
    ("blockdev-snapshot-sync", "ok"),
    ("nodes again", [("base", "qcow2", None)]),
    ("blockdev-add", "ok"),
    ("blockdev-snapshot", "ok"),
    ("nodes after blockdev-snapshot", [("base", "qcow2", None), ("ov2", "qcow2", True)]),
]
if ours != want:
    fail(f"vireo-storage-daemon:\n{ours}\nexpected:\n{want}")
print("ok: vireo-storage-daemon: the overlay of an unused node is made, then not kept")
qsd = shutil.which("qemu-storage-daemon")
if not qsd:
    print("PASS (qemu-storage-daemon is not installed: no side-by-side comparison)")
    sys.exit(0)
theirs = session(qsd, "qemu")
if theirs != ours:
    fail(f"qemu-storage-daemon answers otherwise:\n{theirs}\nvireo:\n{ours}")
print("PASS: blockdev-snapshot-sync on an unused node as qemu-storage-daemon does it")
