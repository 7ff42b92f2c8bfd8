#!/usr/bin/env python3
"""qmp_blockdev_test.py VIREO GUEST: nodes over QMP, as QEMU's block layer answers them.

Starts GUEST (a guest that halts) with a node made by --blockdev and a virtio-blk device on it,
then: query-named-block-nodes lists every node by name with its image info; blockdev-add makes a
raw node over a nested file node at run time (qcow2 through blockdev-add: tests/unit's
test_blockdev_add; this program also runs in the emulated host, which has no vireo-img); blockdev-del refuses a node a device uses (the node stays),
a node the monitor did not make, an unknown node, and deletes the run-time node; blockdev-add
refuses bad arguments naming the key; block_resize grows the device's disk (the guest side of it:
tests/unit's test_virtio_blk_dev) and refuses what cannot be resized; a file node opened with
cache.direct=on at run time (the sandbox lets its statx() through).
"""
import os
import sys

from vmtest import Vm, setup

vireo, guest, tmp = setup()
raw = os.path.join(tmp, "disk.raw")
with open(raw, "wb") as f:
    f.truncate(8 << 20)
raw2 = os.path.join(tmp, "second.raw")
with open(raw2, "wb") as f:
    f.truncate(16 << 20)
vm = Vm(vireo, ["--kernel", guest, "--memory", "64M", "--serial", "none",
              "--blockdev", f"driver=file,node-name=f0,filename={raw}",
              "--blockdev", "driver=raw,node-name=d0,file=f0",
              "--device", "virtio-blk-pci,drive=d0,id=disk0"],
        os.path.join(tmp, "qmp.sock"))
qmp, fail = vm.qmp, vm.fail


def nodes():
    r = qmp.execute("query-named-block-nodes")
    if "return" not in r:
        fail(f"query-named-block-nodes: {r}")
    return {n["node-name"]: n for n in r["return"]}


n = nodes()
if set(n) != {"f0", "d0"}:
    fail(f"nodes at start: {sorted(n)}")
if n["d0"]["drv"] != "raw" or n["d0"]["file"] != raw or n["d0"]["ro"]:
    fail(f"d0: {n['d0']}")
if n["d0"]["image"]["virtual-size"] != 8 << 20 or n["d0"]["image"]["format"] != "raw":
    fail(f"d0's image: {n['d0']['image']}")
if n["f0"]["drv"] != "file":
    fail(f"f0: {n['f0']}")

r = qmp.execute("query-block")
if [(b["qdev"], b["inserted"]["node-name"]) for b in r.get("return", [])] != [("disk0", "d0")]:
    fail(f"query-block: {r}")

r = qmp.execute("blockdev-add", driver="raw", **{"node-name": "q0", "read-only": True},
                file={"driver": "file", "filename": raw2})
if r.get("return") != {}:
    fail(f"blockdev-add: {r}")
n = nodes()
if "q0" not in n or n["q0"]["image"]["format"] != "raw" or not n["q0"]["ro"] or \
        n["q0"]["image"]["virtual-size"] != 16 << 20:
    fail(f"q0 after blockdev-add: {n.get('q0')}")
implicit = [k for k in n if k.startswith("#block")]
if len(implicit) != 1 or n[implicit[0]]["file"] != raw2 or not n[implicit[0]]["ro"]:
    fail(f"the file node under q0 should have a generated name: {sorted(n)}")

vm.refused("blockdev-del", "node 'd0' is in use by disk0", **{"node-name": "d0"})
vm.refused("blockdev-del", "in use by node 'd0' (as its file)", **{"node-name": "f0"})
vm.refused("blockdev-del", "is not owned by the monitor", **{"node-name": implicit[0]})
vm.refused("blockdev-del", "Failed to find node with node-name='nope'", **{"node-name": "nope"})
if "d0" not in nodes():
    fail("d0 went away after a refused blockdev-del")
vm.refused("blockdev-add", "unknown key 'bogus'", driver="file", **{"node-name": "x"},
         filename=raw, bogus=1)
vm.refused("blockdev-add", "node-name 'q0' is already in use", driver="file",
         **{"node-name": "q0"}, filename=raw)
vm.refused("blockdev-add", "driver 'qed' is not supported", driver="qed",
         **{"node-name": "x"})
r = qmp.execute("block_resize", device="disk0", size=32 << 20)
if r.get("return") != {}:
    fail(f"block_resize disk0: {r}")
if nodes()["d0"]["image"]["virtual-size"] != 32 << 20 or os.path.getsize(raw) != 32 << 20:
    fail(f"after block_resize: {nodes()['d0']['image']}, file {os.path.getsize(raw)}")
vm.refused("block_resize", "not a multiple of 512", device="disk0", size=1000)
vm.refused("block_resize", "read-only", **{"node-name": "q0"}, size=1 << 20)
vm.refused("block_resize", "Cannot find device='nope' nor node-name=''", device="nope",
         size=1 << 20)
vm.refused("block_resize", "Cannot find device='' nor node-name='nope'", **{"node-name": "nope"},
         size=1 << 20)
# cache.direct at run time, under the default --sandbox on: the file driver asks statx() for
# the direct-I/O alignment on the control thread (a mirror target is opened this way)
try:
    os.close(os.open(raw2, os.O_RDONLY | os.O_DIRECT))
    direct = True
except OSError:
    direct = False  # tmpfs: no O_DIRECT to try
if direct:
    r = qmp.execute("blockdev-add", driver="file", **{"node-name": "dio0"}, filename=raw2,
                    cache={"direct": True})
    if r.get("return") != {}:
        fail(f"blockdev-add cache.direct=on: {r}")
    r = qmp.execute("blockdev-del", **{"node-name": "dio0"})
    if r.get("return") != {}:
        fail(f"blockdev-del dio0: {r}")
r = qmp.execute("blockdev-del", **{"node-name": "q0"})
if r.get("return") != {}:
    fail(f"blockdev-del q0: {r}")
if set(nodes()) != {"f0", "d0"}:
    fail(f"nodes after blockdev-del q0: {sorted(nodes())}")
vm.quit()
print("ok: query-named-block-nodes, blockdev-add, blockdev-del and their refusals")
