#!/usr/bin/env python3
"""qmp_blockstats_test.py VIREO GUEST: query-blockstats counts the I/O the test guest did.

Runs the test guest's blk-count case (a known mix: 3 reads of 4 KiB, 2 writes of 8 KiB, a
flush, a discard of 4 KiB, a read at the capacity that the device refuses) then idle, on a disk
built from --blockdev and --device with 2 queues, and checks query-blockstats against what
the guest says it sent: operations, bytes, the refused read as invalid, times and idle time.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import Vm, setup  # noqa: E402 (after the path it lives on)

vireo, guest, tmp = setup()
sock_path = os.path.join(tmp, "qmp.sock")
log_path = os.path.join(tmp, "serial.log")
disk = os.path.join(tmp, "disk.raw")
with open(disk, "wb") as f:
    f.truncate(8 << 20)
vm = Vm(vireo, ["--kernel", guest, "--memory", "128M", "--serial", f"file:{log_path}",
              "--blockdev", f"driver=raw,node-name=d0,file.driver=file,file.filename={disk}",
              "--device", "virtio-blk-pci,drive=d0,id=disk0,num-queues=2",
              "--cmdline", "blk-count idle blk-require=1"],
        sock_path, logs=[log_path])
qmp, fail = vm.qmp, vm.fail
deadline = time.monotonic() + 60
while "idle: halting" not in (open(log_path).read() if os.path.exists(log_path) else ""):
    if vm.proc.poll() is not None or time.monotonic() > deadline:
        fail("the guest never reached idle after blk-count")
    time.sleep(0.1)
log = open(log_path).read()
if "blk-count: done" not in log:
    fail(f"blk-count did not finish: {log[-1000:]}")
discards = 1 if "discards 1 of 4096" in log else 0

r = qmp.execute("query-blockstats")
if "return" not in r or len(r["return"]) != 1:
    fail(f"query-blockstats: {r}")
b = r["return"][0]
if b["qdev"] != "disk0" or b["node-name"] != "d0":
    fail(f"which disk: {b}")
s = b["stats"]
want = {"rd_operations": 3, "rd_bytes": 3 * 4096, "wr_operations": 2, "wr_bytes": 2 * 8192,
        "flush_operations": 1, "unmap_operations": discards, "unmap_bytes": 4096 * discards,
        "invalid_rd_operations": 1, "failed_rd_operations": 0, "failed_wr_operations": 0}
for k, v in want.items():
    if s.get(k) != v:
        fail(f"{k}: {s.get(k)}, expected {v} (all: {s})")
if not (s["rd_total_time_ns"] > 0 and s["wr_total_time_ns"] > 0 and s["idle_time_ns"] > 0):
    fail(f"times: {s}")
time.sleep(0.2)
s2 = qmp.execute("query-blockstats")["return"][0]["stats"]
if s2["idle_time_ns"] <= s["idle_time_ns"] or s2["rd_operations"] != 3:
    fail(f"idle time should grow while the guest idles: {s['idle_time_ns']} -> {s2}")
r = qmp.execute("query-blockstats", **{"query-nodes": True})
if "per device" not in r.get("error", {}).get("desc", ""):
    fail(f"query-nodes: {r}")
vm.quit()
print("ok: query-blockstats counts the guest's reads, writes, flush, discard and refused read")
