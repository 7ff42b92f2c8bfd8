#!/usr/bin/env python3
"""qmp_virtio_test.py VIREO GUEST: QMP shows each virtqueue's state while the guest uses it.

Runs the test guest's benchmark (2 queues on 2 iothreads, 3 s of random reads) with --qmp and asks
x-query-virtio / x-query-virtio-queue-status (QEMU's debugging commands) meanwhile: the indexes
must be consistent with each other and move, each queue must name its iothread, and bad paths or
queue numbers must be refused by name.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import Qmp, setup  # noqa: E402 (after the path it lives on)

vireo, guest, tmp = setup()
sock_path = os.path.join(tmp, "qmp.sock")
disk = os.path.join(tmp, "disk.raw")
with open(disk, "wb") as f:
    f.truncate(64 << 20)
vm = subprocess.Popen(
    [vireo, "run", "--kernel", guest, "--cpus", "2", "--memory", "128M", "--serial", "stdio",
     "--drive", f"file={disk},format=raw,if=virtio-blk,num-queues=2,iothreads=2,cache=writeback",
     "--cmdline", "bench bench-rw=randread bench-qd=4 bench-queues=2 bench-secs=3",
     "--qmp", f"unix:{sock_path},server,nowait"],
    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def fail(msg):
    vm.kill()
    print("FAIL:", msg)
    print(vm.communicate()[0][-2000:])
    sys.exit(1)


try:
    qmp = Qmp(sock_path)
except (OSError, ValueError) as e:
    fail(str(e))
execute = qmp.execute
devices = execute("x-query-virtio").get("return")
if devices != [{"path": "virtio-blk0", "name": "virtio-blk", "queues": 2}]:
    fail(f"x-query-virtio: {devices}")


def queue_status(q):
    r = execute("x-query-virtio-queue-status", path="virtio-blk0", queue=q)
    if "return" not in r:
        fail(f"queue {q}: {r}")
    return r["return"]


# wait for the guest to set the device up (DRIVER_OK) and its benchmark to complete requests on
# both queues: on a slow host (the emulated one of e2e-guest) the guest takes longer than the 0.3 s
# below to go from DRIVER_OK to its first request
deadline = time.monotonic() + 10
while not all(s["running"] and s["used-idx"] for s in map(queue_status, (0, 1))):
    if time.monotonic() > deadline:
        fail(f"the queues never carried I/O: {queue_status(0)}, {queue_status(1)}")
    time.sleep(0.05)

for q in (0, 1):
    first = queue_status(q)
    time.sleep(0.3)
    s = queue_status(q)
    if s["queue-index"] != q or s["iothread"] != f"io{q}" or not s["event-idx"] or s["broken"]:
        fail(f"queue {q}: {s}")
    n = s["vring-num"]
    if n == 0 or n & (n - 1):
        fail(f"queue {q}: vring-num {n} is not a power of two")
    pending = (s["shadow-avail-idx"] - s["last-avail-idx"]) % 65536
    unsignalled = (s["used-idx"] - s["signalled-used"]) % 65536
    if pending > n or s["inuse"] > n or unsignalled > n:
        fail(f"queue {q}: inconsistent indexes {s}")
    if s["used-idx"] == first["used-idx"]:
        fail(f"queue {q}: used-idx did not move in 0.3 s of I/O: {first} then {s}")

for args, words in (({"path": "virtio-blk7", "queue": 0}, "virtio-blk7"),
                    ({"path": "virtio-blk0", "queue": 2}, "no queue 2"),
                    ({"path": "virtio-blk0"}, "'queue'"),
                    ({"queue": 0}, "'path'")):
    r = execute("x-query-virtio-queue-status", **args)
    if r.get("error", {}).get("class") != "GenericError" or words not in r["error"]["desc"]:
        fail(f"x-query-virtio-queue-status {args}: {r}")

out = vm.communicate(timeout=30)[0]
if vm.returncode != 33 or "ok bench" not in out:
    print(out[-2000:])
    print(f"FAIL: the guest's benchmark did not pass under the queries (exit {vm.returncode})")
    sys.exit(1)
print("PASS")
