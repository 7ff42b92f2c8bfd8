#!/usr/bin/env python3
"""qmp_bitmap_test.py VIREO GUEST: QMP's block-dirty-bitmap-* commands, as QEMU answers them.

Starts GUEST (a guest that halts) with a raw disk made by --blockdev and a virtio-blk device on it.
block-dirty-bitmap-add makes bitmaps (by node name and by the device's id) that
query-named-block-nodes and query-block list with QEMU's fields; bad names, granularities, a
taken name, persistent=true and unknown nodes or bitmaps are refused with QEMU's words;
disable/enable switch "recording"; block_resize keeps them; merge takes names and {node, name}
sources and refuses a missing one before changing anything; clear and remove do what they say.
(That writes set bits: tests/unit's test_blockdev_bitmap and test_virtio_blk_dev.)
"""
import os

from vmtest import Vm, setup

vireo, guest, tmp = setup()
raw = os.path.join(tmp, "disk.raw")
with open(raw, "wb") as f:
    f.truncate(8 << 20)
vm = Vm(vireo, ["--kernel", guest, "--memory", "64M", "--serial", "none",
              "--blockdev", f"driver=raw,node-name=d0,file.driver=file,file.filename={raw}",
              "--device", "virtio-blk-pci,drive=d0,id=disk0"],
        os.path.join(tmp, "qmp.sock"))
qmp, fail = vm.qmp, vm.fail


def ok(cmd, **args):
    r = qmp.execute(cmd, **args)
    if r.get("return") != {}:
        fail(f"{cmd} {args}: {r}")


def refused(cmd, want, **args):
    r = qmp.execute(cmd, **args)
    e = r.get("error", {})
    if e.get("class") != "GenericError" or want not in e.get("desc", ""):
        fail(f"{cmd} {args}: wanted an error saying '{want}', got {r}")


def bitmaps(node="d0"):
    for n in qmp.execute("query-named-block-nodes")["return"]:
        if n["node-name"] == node:
            return {b["name"]: b for b in n.get("dirty-bitmaps", [])}
    fail(f"no node {node}")


ok("block-dirty-bitmap-add", node="d0", name="b0")
ok("block-dirty-bitmap-add", node="disk0", name="b1", granularity=4096, disabled=True)
b = bitmaps()
if set(b) != {"b0", "b1"}:
    fail(f"bitmaps: {b}")
if (b["b0"]["granularity"], b["b0"]["count"], b["b0"]["recording"], b["b0"]["busy"],
        b["b0"]["persistent"]) != (65536, 0, True, False, False):
    fail(f"b0: {b['b0']}")
if b["b1"]["recording"] or b["b1"]["granularity"] != 4096:
    fail(f"b1: {b['b1']}")
inserted = qmp.execute("query-block")["return"][0]["inserted"]
if {x["name"] for x in inserted.get("dirty-bitmaps", [])} != {"b0", "b1"}:
    fail(f"query-block: {inserted}")

refused("block-dirty-bitmap-add", "Bitmap already exists: b0", node="d0", name="b0")
refused("block-dirty-bitmap-add", "Granularity must be power of 2", node="d0", name="x",
        granularity=1000)
refused("block-dirty-bitmap-add", "Bitmap name '' is empty", node="d0", name="")
refused("block-dirty-bitmap-add", "persistent", node="d0", name="p", persistent=True)
refused("block-dirty-bitmap-add", "Cannot find device='nosuch'", node="nosuch", name="x")
refused("block-dirty-bitmap-add", "Parameter 'name' is missing", node="d0")
refused("block-dirty-bitmap-remove", "Dirty bitmap 'nope' not found", node="d0", name="nope")
refused("block-dirty-bitmap-clear", "unknown key 'frob'", node="d0", name="b0", frob=1)

ok("block-dirty-bitmap-disable", node="d0", name="b0")
ok("block-dirty-bitmap-enable", node="d0", name="b1")
b = bitmaps()
if b["b0"]["recording"] or not b["b1"]["recording"]:
    fail(f"disable/enable: {b}")
r = qmp.execute("block_resize", device="disk0", size=16 << 20)
if "return" not in r:
    fail(f"block_resize: {r}")
if set(bitmaps()) != {"b0", "b1"}:
    fail("the bitmaps did not survive block_resize")

ok("block-dirty-bitmap-add", node="d0", name="m")
ok("block-dirty-bitmap-merge", node="d0", target="m",
   bitmaps=["b0", {"node": "d0", "name": "b1"}])
refused("block-dirty-bitmap-merge", "Dirty bitmap 'gone' not found", node="d0", target="m",
        bitmaps=["b0", "gone"])
refused("block-dirty-bitmap-merge", "entry 0 is not a bitmap name", node="d0", target="m",
        bitmaps=[7])
ok("block-dirty-bitmap-clear", node="d0", name="m")
ok("block-dirty-bitmap-remove", node="d0", name="m")
ok("block-dirty-bitmap-remove", node="disk0", name="b1")
if set(bitmaps()) != {"b0"}:
    fail(f"after remove: {bitmaps()}")
vm.quit()
print("PASS")
