#!/usr/bin/env python3
"""sd_bitmap_persist_test.py DAEMON: persistent dirty bitmaps of a qcow2 image under
vireo-storage-daemon, seen by qemu-img while the daemon runs and after it stops (issue 18).

qemu-img makes an image with three persistent bitmaps (b0 and b1 recording, b2 not) and qemu-io
dirties b0 and b1. The daemon opens it read-write:
 - QMP block-dirty-bitmap-remove of b1 takes it out of the image at once, as QEMU's: qemu-img
   info -U (force-share, while the daemon holds the image) lists b0 and b2 (in use) and no
   b1; a persistent bitmap added over QMP and removed before any close leaves no trace; after a
   clean quit qemu-img check is clean (b1's clusters were freed) and info lists b0 and b2.
 - a clean open and close that changes no bitmap rewrites none: every bitmap's table stays
   where it was (read from the image's bitmap directory), only the in-use flags go;
 - block-dirty-bitmap-clear of b0 then quit rewrites b0 alone (its table moves, b2's stays);
 - a remove of b2 followed by kill -9: the image no longer lists b2, b0 is left in use, and
   qemu-img check finds no leak;
 - a node opened read-only refuses the remove with QEMU's message and keeps the bitmap.
Needs qemu-img and qemu-io (Debian: qemu-utils); skips without them.
"""
import json
import os
import signal
import struct
import subprocess
import sys

from vmtest import Daemon, need_qemu_tools, run, tmpdir

daemon = sys.argv[1]
need_qemu_tools()
tmp = tmpdir()
disk = os.path.join(tmp, "disk.qcow2")
sock = os.path.join(tmp, "qmp.sock")


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def info_bitmaps(force_share=False):
    """{name: flags} of the image's bitmaps as qemu-img info reads them."""
    out = run("qemu-img", "info", *(["-U"] if force_share else []), "--output=json", disk)
    data = json.loads(out)["format-specific"]["data"]
    return {b["name"]: sorted(b["flags"]) for b in data.get("bitmaps", [])}


def tables():
    """{name: bitmap table offset} from the image's bitmap directory (the qcow2 spec's
    bitmaps header extension, 0x23852875, and its directory entries)."""
    with open(disk, "rb") as f:
        hdr = f.read(4096)
        version, = struct.unpack(">I", hdr[4:8])
        hlen, = struct.unpack(">I", hdr[100:104]) if version >= 3 else (72,)
        pos, ext = hlen, None
        while pos + 8 <= len(hdr):
            kind, size = struct.unpack(">II", hdr[pos:pos + 8])
            if kind == 0:
                break
            if kind == 0x23852875:
                ext = hdr[pos + 8:pos + 8 + size]
            pos += 8 + (size + 7) // 8 * 8
        if ext is None:
            return {}
        n, _, dsize, doff = struct.unpack(">IIQQ", ext[:24])
        f.seek(doff)
        d = f.read(dsize)
    found, pos = {}, 0
    for _ in range(n):
        toff, _, _, _, _, nlen, extra = struct.unpack(">QIIBBHI", d[pos:pos + 24])
        name = d[pos + 24 + extra:pos + 24 + extra + nlen].decode()
        found[name] = toff
        pos += (24 + extra + nlen + 7) // 8 * 8
    return found


def start(read_only=False):
    opts = f"driver=qcow2,node-name=disk,file.driver=file,file.filename={disk}"
    return Daemon(daemon, ["--blockdev", opts + (",read-only=on" if read_only else "")], sock)


def live_bitmaps(d):
    nodes = {n["node-name"]: n for n in d.ok("query-named-block-nodes")}
    return {b["name"]: b for b in nodes["disk"].get("dirty-bitmaps", [])}


run("qemu-img", "create", "-q", "-f", "qcow2", disk, "16M")
run("qemu-img", "bitmap", "--add", disk, "b0")
run("qemu-img", "bitmap", "--add", disk, "b1")
run("qemu-img", "bitmap", "--add", "--disable", disk, "b2")
run("qemu-io", "-c", "write -P 0x5a 0 64k", disk)
if set(info_bitmaps()) != {"b0", "b1", "b2"}:
    fail(f"qemu-img made {info_bitmaps()}")

# 1. remove at once, seen by qemu-img while the daemon holds the image
d = start()
have = live_bitmaps(d)
if set(have) != {"b0", "b1", "b2"} or not all(b["persistent"] for b in have.values()):
    d.fail(f"the daemon loaded {have}")
d.ok("block-dirty-bitmap-remove", node="disk", name="b1")
now = info_bitmaps(force_share=True)
if set(now) != {"b0", "b2"} or now["b0"] != ["auto", "in-use"]:
    d.fail(f"after removing b1, qemu-img info -U lists {now}")
d.ok("block-dirty-bitmap-add", node="disk", name="b3", persistent=True)
d.ok("block-dirty-bitmap-remove", node="disk", name="b3")
if set(info_bitmaps(force_share=True)) != {"b0", "b2"}:
    d.fail(f"a bitmap added and removed left {info_bitmaps(force_share=True)}")
d.quit()
run("qemu-img", "check", "-q", disk)
if info_bitmaps() != {"b0": ["auto"], "b2": []}:
    fail(f"after a clean quit qemu-img info lists {info_bitmaps()}")
print("ok: block-dirty-bitmap-remove takes a stored bitmap out of the image at once")

# 2. nothing changed: nothing rewritten
before = tables()
d = start()
d.quit()
after = tables()
if after != before or info_bitmaps() != {"b0": ["auto"], "b2": []}:
    fail(f"an open and close with no change moved tables {before} -> {after} or left "
         f"{info_bitmaps()}")
print("ok: a close that changed no bitmap rewrites none")

# 3. b0 cleared: b0 alone rewritten
d = start()
d.ok("block-dirty-bitmap-clear", node="disk", name="b0")
d.quit()
after = tables()
if after["b0"] == before["b0"] or after["b2"] != before["b2"]:
    fail(f"clearing b0: tables {before} -> {after}")
run("qemu-img", "check", "-q", disk)
print("ok: a changed bitmap alone is rewritten")

# 4. a remove, then kill -9
d = start()
d.ok("block-dirty-bitmap-remove", node="disk", name="b2")
d.proc.send_signal(signal.SIGKILL)
d.proc.wait()
now = info_bitmaps()
if now != {"b0": ["auto", "in-use"]}:
    fail(f"after remove and kill -9 qemu-img info lists {now}")
r = subprocess.run(["qemu-img", "check", disk], capture_output=True, text=True)
if r.returncode or "leaked" in r.stdout:
    fail(f"qemu-img check after the kill: {r.returncode}: {r.stdout}{r.stderr}")
print("ok: a removed bitmap stays removed after kill -9, no cluster leaked")

# 5. read-only: refused, kept
run("qemu-img", "bitmap", "--add", disk, "b4")
d = start(read_only=True)
d.refused("block-dirty-bitmap-remove", "Bitmap 'b4' is readonly and cannot be modified",
          node="disk", name="b4")
if "b4" not in live_bitmaps(d):
    d.fail("a refused remove dropped b4")
d.quit()
if "b4" not in info_bitmaps():
    fail(f"a refused remove took b4 out of the image: {info_bitmaps()}")
print("PASS: persistent bitmaps: removed at once, rewritten only when changed")
