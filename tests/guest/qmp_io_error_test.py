#!/usr/bin/env python3
"""qmp_io_error_test.py VIREO GUEST: BLOCK_IO_ERROR for guest requests the host failed.

  1. A healthy disk and the test guest's `blk` case, whose read at the capacity fails with
     IOERR (the guest's mistake, refused by the device): no BLOCK_IO_ERROR.
  2. A virtio-blk disk and two scsi-hd LUNs over sparse raw files on two small tmpfs (mount -t
     tmpfs: needs root; skips, 77, when the mount fails). Once QMP is connected, the disk's
     file system is filled and the blocks blk-crashwriter wrote are punched out: its next
     write fails with ENOSPC on the host; the LUNs' file system is full from the start, so
     scsi-rw's writes, which start after blk-crashwriter failed, fail too (LUN 0's; it stops
     there, LUN 1 gets none); scsi-rw runs twice, so hd0's second failure comes within the
     second after its first. disk0 and hd0 each send QEMU's BLOCK_IO_ERROR: qom-path its id, device
     "", node-name its node, operation write, action report, nospace true, reason "No space
     left on device"; at most one a second per device (QEMU's throttle: the first at once, the
     latest of the rest when the second ends; checked on the events' timestamps; hd0 must
     send its held one). The VM runs
     on (query-status), and quits with status 0.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import Vm, setup  # noqa: E402 (after the path it lives on)

vireo, guest, tmp = setup()
MiB = 1 << 20


def serial(path):
    return open(path, errors="replace").read() if os.path.exists(path) else ""


def wait_line(vm, path, text, timeout=60, times=1):
    """Waits until the guest has printed @text @times times."""
    deadline = time.monotonic() + timeout
    while serial(path).count(text) < times:
        if vm.proc.poll() is not None or time.monotonic() > deadline:
            vm.fail(f"the guest did not print '{text}' {times} time(s)")
        time.sleep(0.05)


def io_errors(vm, seconds):
    """The BLOCK_IO_ERROR events that came within the next @seconds, each with when it came
    (within 20 ms: a command every 20 ms takes in the events that came before its answer; a
    read that times out would leave the client unusable)."""
    got, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        vm.ok("query-status")
        now = time.monotonic()
        got += [(now, e) for e in vm.qmp.events if e["event"] == "BLOCK_IO_ERROR"]
        vm.qmp.events = [e for e in vm.qmp.events if e["event"] != "BLOCK_IO_ERROR"]
        time.sleep(0.02)
    return got


# 1. the guest's mistakes are not the host's errors
good = os.path.join(tmp, "good.raw")
with open(good, "wb") as f:
    f.truncate(16 * MiB)
log1 = os.path.join(tmp, "serial1.log")
vm = Vm(vireo, ["--kernel", guest, "--memory", "64M", "--serial", f"file:{log1}",
              "--blockdev", f"driver=raw,node-name=ng,file.driver=file,file.filename={good}",
              "--device", "virtio-blk-pci,drive=ng,id=disk0",
              "--cmdline", "blk blk-require=1 idle"],
        os.path.join(tmp, "qmp1.sock"), logs=[log1])
wait_line(vm, log1, "ok blk")
got = io_errors(vm, 1.5)
if got:
    vm.fail(f"BLOCK_IO_ERROR for requests the guest got wrong: {got}")
vm.quit()
print("a read at the capacity (IOERR, the guest's mistake): no BLOCK_IO_ERROR")

# 2. the host runs out of space under the guest's writes
def fill(path):
    """Fills the file system of @path with a file of that name."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, b"\xff" * 4096) > 0:
            pass
    except OSError:
        pass  # full
    os.close(fd)


small, small2 = os.path.join(tmp, "small"), os.path.join(tmp, "small2")
mounted = []
for d in (small, small2):
    os.mkdir(d)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", d],
                       capture_output=True, text=True)
    if r.returncode:
        for m in mounted:
            subprocess.run(["umount", "-l", m])
        print(f"SKIP: cannot mount a small tmpfs to fill (needs root): {r.stderr.strip()}")
        sys.exit(77)
    mounted.append(d)
try:
    for name in ("small/blk.raw", "small2/scsi0.raw", "small2/scsi1.raw"):
        with open(os.path.join(tmp, name), "wb") as f:
            f.truncate(64 * MiB)
    fill(os.path.join(small2, "filler"))  # the LUNs' file system: full from the start
    log2 = os.path.join(tmp, "serial2.log")
    vm = Vm(vireo, ["--kernel", guest, "--memory", "64M", "--serial", f"file:{log2}",
                  "--blockdev", "driver=raw,node-name=nb,file.driver=file,"
                  f"file.filename={small}/blk.raw",
                  "--device", "virtio-blk-pci,drive=nb,id=disk0",
                  "--blockdev", "driver=raw,node-name=ns0,file.driver=file,"
                  f"file.filename={small2}/scsi0.raw",
                  "--blockdev", "driver=raw,node-name=ns1,file.driver=file,"
                  f"file.filename={small2}/scsi1.raw",
                  "--device", "virtio-scsi-pci,id=scsi0",
                  "--device", "scsi-hd,bus=scsi0.0,drive=ns0,id=hd0,lun=0",
                  "--device", "scsi-hd,bus=scsi0.0,drive=ns1,id=hd1,lun=1",
                  "--cmdline", "blk-crashwriter crash-ops=100000000 crash-span=1048576 "
                  "blk-require=1 scsi-rw scsi-rw scsi-require=1 idle"],
            os.path.join(tmp, "qmp2.sock"), logs=[log2])
    # the guest writes over its first MiB while the QMP client connects; then the file system
    # fills and that MiB's blocks go (punched), so that its next writes need space
    wait_line(vm, log2, "@W 100 ")
    for _ in range(2):
        fill(os.path.join(small, "filler"))
        subprocess.run(["fallocate", "-p", "-o", "0", "-l", str(64 * MiB),
                        os.path.join(small, "blk.raw")], check=True)
    wait_line(vm, log2, "FAIL blk-crashwriter")
    wait_line(vm, log2, "FAIL scsi-rw", times=2)  # both runs failed: hd0's 2nd is held
    got = io_errors(vm, 2.5)
    # scsi-rw stops at LUN 0's first failed write: hd1 gets none
    want = {"disk0": "nb", "hd0": "ns0"}
    counts = []
    for qdev, node in want.items():
        mine = [(t, e) for t, e in got if e["data"].get("qom-path") == qdev]
        if not mine:
            vm.fail(f"no BLOCK_IO_ERROR for {qdev}; got {got}")
        for t, e in mine:
            d = e["data"]
            expect = {"qom-path": qdev, "device": "", "node-name": node, "operation": "write",
                      "action": "report", "nospace": True, "reason": "No space left on device"}
            if d != expect:
                vm.fail(f"BLOCK_IO_ERROR {d}, wanted {expect}")
        sent = [e["timestamp"]["seconds"] + e["timestamp"]["microseconds"] / 1e6
                for _, e in mine]
        gaps = [b - a for a, b in zip(sent, sent[1:])]
        counts.append(len(mine))
        if any(g < 0.9 for g in gaps):
            vm.fail(f"{qdev}: BLOCK_IO_ERROR more than once a second: gaps {gaps}")
        print(f"{qdev}: {len(mine)} BLOCK_IO_ERROR (gaps {[round(g, 2) for g in gaps]} s): "
              f"{mine[0][1]['data']}")
    if counts[1] < 2:
        vm.fail(f"hd0 did not send the BLOCK_IO_ERROR its throttle held: {got}")
    st = vm.ok("query-status")
    if st.get("status") != "running":
        vm.fail(f"query-status after the errors: {st}")
    vm.quit()
finally:
    for m in mounted:
        subprocess.run(["umount", "-l", m])
print("PASS: host I/O errors give BLOCK_IO_ERROR (report), at most one a second per device; "
      "the guest's own mistakes none; the VM runs on")
