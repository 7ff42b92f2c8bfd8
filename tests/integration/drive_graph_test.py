#!/usr/bin/env python3
"""drive_graph_test.py VIREO GUEST: --drive is shorthand for --object + --blockdev + --device.

Starts GUEST (a guest that halts) once per form of the same disk and compares what the monitor
shows: the graph (x-debug-query-block-graph: nodes, the frontend, every link with its role and
permissions), each node's properties (query-named-block-nodes: driver, file, read-only, cache,
backing depth, image), the virtio device (each queue's size and iothread) and the iothreads with
their polling settings. Node names differ (--drive generates them), so nodes are compared by their
path from the device ("virtio-blk0/root/file"). Forms: a qcow2 overlay over a raw backing file
with cache=none (writeback where the file system has no O_DIRECT), 2 queues on 2 iothreads;
and a read-only raw disk. Each --blockdev is given in
its dotted and its JSON form.
"""
import json
import os
import struct

from vmtest import Vm, setup

vireo, guest, tmp = setup()


def make_qcow2(path, size, backing):
    """An empty qcow2 v3 image (64 KiB clusters) over a raw backing file: header, refcount
    table, one refcount block, an L1 table (the emulated host has no vireo-img)."""
    cs = 1 << 16
    name = backing.encode()
    ext = struct.pack(">II", 0xE2792ACA, 3) + b"raw" + b"\0" * 5 + struct.pack(">II", 0, 0)
    hdr = struct.pack(">4sIQIIQIIQQIIQQQQII", b"QFI\xfb", 3, 104 + len(ext), len(name), 16,
                      size, 0, 1, 3 * cs, cs, 1, 0, 0, 0, 0, 0, 4, 104)
    img = bytearray(4 * cs)
    img[:len(hdr)] = hdr
    img[104:104 + len(ext)] = ext
    img[104 + len(ext):104 + len(ext) + len(name)] = name
    img[cs:cs + 8] = struct.pack(">Q", 2 * cs)          # refcount table -> block at 2
    for i in range(4):                                   # clusters 0..3 in use once
        img[2 * cs + 2 * i:2 * cs + 2 * i + 2] = struct.pack(">H", 1)
    with open(path, "wb") as f:
        f.write(img)


def describe(args):
    """What the monitor shows of a VM started with args, with node names replaced by paths."""
    vm = Vm(vireo, ["--kernel", guest, "--memory", "64M", "--serial", "none", *args],
            os.path.join(tmp, "qmp.sock"))
    q = vm.qmp

    def ask(cmd, **a):
        r = q.execute(cmd, **a)
        if "return" not in r:
            vm.fail(f"{cmd}: {r}")
        return r["return"]

    graph = ask("x-debug-query-block-graph")
    named = {n["node-name"]: n for n in ask("query-named-block-nodes")}
    devices = ask("x-query-virtio")
    queues = {}
    for d in devices:
        for i in range(d["queues"]):
            s = ask("x-query-virtio-queue-status", path=d["path"], queue=i)
            queues[f"{d['path']} queue {i}"] = (s["iothread"], s["vring-num-default"])
    iothreads = sorted((t["id"], t["poll-max-ns"], t["poll-grow"], t["poll-shrink"])
                       for t in ask("query-iothreads"))
    vm.quit()

    by_id = {n["id"]: n for n in graph["nodes"]}
    path = {n["id"]: n["name"] for n in graph["nodes"] if n["type"] == "block-backend"}
    for _ in range(len(graph["nodes"])):  # down the links from the devices
        for e in graph["edges"]:
            if e["parent"] in path and e["child"] not in path:
                path[e["child"]] = path[e["parent"]] + "/" + e["name"]
    nodes = {}
    for id_, n in by_id.items():
        if n["type"] != "block-driver":
            continue
        if id_ not in path:
            vm.fail(f"node {n['name']} is not under any device: {graph}")
        info = named[n["name"]]
        image = info.get("image", {})
        nodes[path[id_]] = (info["drv"], info["file"], info["ro"], info["cache"]["direct"],
                            info["backing_file_depth"], image.get("format"),
                            image.get("virtual-size"))
    edges = sorted((path[e["parent"]], path[e["child"]], e["name"], tuple(e["perm"]),
                    tuple(e["shared-perm"])) for e in graph["edges"])
    return {"nodes": nodes, "edges": edges, "queues": queues, "iothreads": iothreads}


def same(what, want, got):
    if want != got:
        print(f"FAIL: {what} differs from --drive")
        for k in want:
            if want[k] != got.get(k):
                print(f"  {k}:\n    --drive: {json.dumps(want[k])}\n    {what}: "
                      f"{json.dumps(got.get(k))}")
        raise SystemExit(1)
    print(f"ok: {what} builds what --drive does")


base = os.path.join(tmp, "base.raw")
with open(base, "wb") as f:
    f.truncate(8 << 20)
top = os.path.join(tmp, "top.qcow2")
make_qcow2(top, 8 << 20, base)
# cache=none where the file system has O_DIRECT (the emulated host's tmpfs has not)
try:
    os.close(os.open(base, os.O_RDONLY | os.O_DIRECT))
    direct = True
except OSError:
    direct = False
cache, on = ("none", "on") if direct else ("writeback", "off")

drive = describe(["--drive", f"file={top},format=qcow2,cache={cache},num-queues=2,iothreads=2,"
                  "poll-max-ns=1000,queue-size=64,serial=s0"])
if len(drive["nodes"]) != 4 or "virtio-blk0/root/backing/file" not in drive["nodes"]:
    print(f"FAIL: --drive of a qcow2 over raw built {drive['nodes']}")
    raise SystemExit(1)
objects = ["--object", "iothread,id=io0,poll-max-ns=1000",
           "--object", "iothread,id=io1,poll-max-ns=1000"]
device = ["--device", "virtio-blk-pci,drive=disk0,num-queues=2,iothread-vq-mapping=io0:io1,"
          "queue-size=64,serial=s0"]
same("--blockdev (dotted keys) + --device", drive, describe(
    objects + ["--blockdev", f"driver=qcow2,node-name=disk0,cache.direct={on},file.driver=file,"
               f"file.filename={top},file.cache.direct={on}"] + device))
same("--blockdev (JSON) + --device", drive, describe(
    objects + ["--blockdev", json.dumps({
        "driver": "qcow2", "node-name": "disk0", "cache": {"direct": direct},
        "file": {"driver": "file", "filename": top, "cache": {"direct": direct}}})] + device))
same("two --blockdev (file node named, then used by name) + --device", drive, describe(
    objects + ["--blockdev", f"driver=file,node-name=f0,filename={top},cache.direct={on}",
               "--blockdev", f"driver=qcow2,node-name=disk0,file=f0,cache.direct={on}"] + device))

ro = describe(["--drive", f"file={base},readonly=on"])
same("--blockdev read-only raw + --device", ro, describe(
    ["--blockdev", f"driver=raw,node-name=r0,read-only=on,file.driver=file,"
     f"file.filename={base}", "--device", "virtio-blk-pci,drive=r0"]))
print("PASS")
