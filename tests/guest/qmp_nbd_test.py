#!/usr/bin/env python3
"""qmp_nbd_test.py VIREO GUEST: a VM on an NBD disk, its server restarted, mirrors onto NBD.

The test guest's disk is an export of qemu-nbd on a unix socket (--blockdev raw over a
driver=nbd node, reconnect-delay=20); the guest runs blk-crashwriter (random writes,
write-zeroes, discards and flushes, each logged). While it writes:
  1. qemu-nbd is killed (SIGKILL) and started again a second later: the guest's requests wait
     and go on; no BLOCK_IO_ERROR, and the guest keeps writing after it;
  2. blockdev-mirror onto an NBD node made by blockdev-add (driver=nbd, a TCP export of
     qemu-nbd on 127.0.0.1) reaches READY; job-complete moves the disk onto it (query-block);
  3. drive-mirror from there onto a third export named by its nbd+unix:// filename
     (mode=existing) reaches READY; job-complete moves the disk there;
  4. live storage migration: blockdev-mirror onto a writable export of vireo-storage-daemon
     (a qcow2 image, the export on an iothread of the daemon's) reaches READY and pivots.
The guest goes on writing on the last target, then vireo quits under it and the daemon quits
(flushing); qemu-img check passes on the daemon's image, and crash_check (tests/interop) finds
it holding the disk's first content with every flushed operation replayed on it. Needs qemu-nbd, qemu-img and qemu-io (Debian: qemu-utils); skips without them.
Arguments: VIREO GUEST VIREO_STORAGE_DAEMON.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import Daemon, Vm, crash_check_of, need_qemu_tools, run, setup  # noqa: E402

vireo, guest, tmp = setup()
daemon_bin = sys.argv[3]
need_qemu_tools()
if not shutil.which("qemu-nbd"):
    print("SKIP: qemu-nbd is not installed (Debian: qemu-utils)")
    sys.exit(77)
crash_check = crash_check_of(vireo)

MiB = 1 << 20
size = 16 * MiB
servers = {}


def serve(name, image, *where):
    """qemu-nbd exporting image as name (raw, writable, discards punch holes), once it listens."""
    pid = os.path.join(tmp, f"{name}.pid")
    run("qemu-nbd", "--fork", f"--pid-file={pid}", "-t", "-f", "raw", "--discard=unmap",
        "-x", name, *where, image)
    servers[name] = int(open(pid).read())


def kill(name):
    try:
        os.kill(servers.pop(name), signal.SIGKILL)
    except (KeyError, ProcessLookupError):
        pass


def kill_all():
    for name in list(servers):
        kill(name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


disk, t1, t2 = (os.path.join(tmp, n) for n in ("disk.raw", "t1.raw", "t2.raw"))
run("qemu-img", "create", "-q", "-f", "raw", disk, str(size))
run("qemu-io", "-f", "raw", "-c", f"write -P 0x5a 0 {size // 2}", disk)
before = os.path.join(tmp, "before.raw")
shutil.copyfile(disk, before)
for t in (t1, t2):
    run("qemu-img", "create", "-q", "-f", "raw", t, str(size))
t3 = os.path.join(tmp, "t3.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", t3, str(size))
disk_sock, t2_sock = os.path.join(tmp, "disk.sock"), os.path.join(tmp, "t2.sock")
t3_sock = os.path.join(tmp, "t3.sock")
sd = None
port = free_port()
try:
    serve("disk", disk, "-k", disk_sock)
    serve("t1", t1, "-b", "127.0.0.1", "-p", str(port))
    serve("t2", t2, "-k", t2_sock)

    log_path = os.path.join(tmp, "serial.log")
    vm = Vm(vireo, ["--kernel", guest, "--memory", "128M", "--serial", f"file:{log_path}",
                  "--blockdev", "driver=raw,node-name=disk,file.driver=nbd,file.server.type=unix,"
                  f"file.server.path={disk_sock},file.export=disk,file.reconnect-delay=20",
                  "--device", "virtio-blk-pci,drive=disk,id=disk0,num-queues=2,iothread=io0",
                  # the job thread runs on the CPU time the guest leaves (see qmp_jobs_test.py)
                  "--vcpu-nice", "19", "--object", "iothread,id=io0,poll-max-ns=0",
                  "--cmdline", "blk-crashwriter crash-seed=11 crash-ops=100000000 crash-qd=8 "
                  "crash-maxlen=65536 blk-require=1 idle"],
            os.path.join(tmp, "qmp.sock"), logs=[log_path])
    qmp, ok = vm.qmp, vm.ok

    def fail(msg):
        kill_all()
        vm.fail(msg)

    def log():
        return open(log_path, errors="replace").read() if os.path.exists(log_path) else ""

    def writes():
        return log().count("\n@W ")

    def wait_writes(n, what):
        deadline = time.monotonic() + 120
        while writes() < n:
            if vm.proc.poll() is not None or time.monotonic() > deadline:
                fail(f"the guest stopped writing {what}: {log()[-500:]}")
            time.sleep(0.05)

    JOBS = 240

    def job_event(name, job):
        return qmp.wait_event(name, timeout=JOBS, match=lambda e: e["data"]["device"] == job)

    def mirror_done(job):
        job_event("BLOCK_JOB_READY", job)
        ok("job-complete", id=job)
        done = job_event("BLOCK_JOB_COMPLETED", job)
        if "error" in done["data"]:
            fail(f"mirror {job}: {done}")

    wait_writes(100, "on the NBD disk")
    print("ok: the guest writes on its NBD disk")

    # 1. the server dies and comes back while the guest writes
    kill("disk")
    time.sleep(1)
    n = writes()
    serve("disk", disk, "-k", disk_sock)
    wait_writes(n + 300, "after qemu-nbd was restarted")
    if any(e["event"] == "BLOCK_IO_ERROR" for e in qmp.events):
        fail(f"the restart failed guest I/O: {qmp.events}")
    print(f"ok: qemu-nbd killed and restarted; the guest wrote on (write {n} and on)")

    # 2. blockdev-mirror onto an NBD node (TCP)
    ok("blockdev-add", driver="nbd", **{"node-name": "t1"}, export="t1",
       server={"type": "inet", "host": "127.0.0.1", "port": str(port)})
    ok("blockdev-mirror", device="disk0", target="t1", sync="full", **{"job-id": "m1"})
    mirror_done("m1")
    inserted = ok("query-block")[0]["inserted"]
    if inserted["node-name"] != "t1" or inserted["file"] != f"nbd://127.0.0.1:{port}/t1":
        fail(f"the disk after the first pivot: {inserted}")
    n = writes()
    wait_writes(n + 300, "after the pivot onto the NBD node")
    print(f"ok: blockdev-mirror onto NBD reached READY and pivoted ({inserted['file']})")

    # 3. drive-mirror onto an export named by its filename
    t2_uri = f"nbd+unix:///t2?socket={t2_sock}"
    ok("drive-mirror", device="disk0", target=t2_uri, format="raw", sync="full",
       mode="existing", **{"job-id": "m2", "node-name": "t2"})
    mirror_done("m2")
    inserted = ok("query-block")[0]["inserted"]
    if inserted["node-name"] != "t2" or inserted["file"] != t2_uri:
        fail(f"the disk after the second pivot: {inserted}")
    n = writes()
    wait_writes(n + 300, "after the pivot onto the third export")
    print(f"ok: drive-mirror onto {t2_uri} reached READY and pivoted")

    # 4. live storage migration onto vireo-storage-daemon's export
    sd = Daemon(daemon_bin, ["--object", "iothread,id=sdio",
                             "--blockdev", "driver=qcow2,node-name=t3,file.driver=file,"
                             f"file.filename={t3}",
                             "--nbd-server", f"addr.type=unix,addr.path={t3_sock}",
                             "--export", "type=nbd,id=e3,node-name=t3,name=t3,writable=on,"
                             "iothread=sdio"],
                os.path.join(tmp, "sd.sock"))
    ok("blockdev-add", driver="nbd", **{"node-name": "t3"}, export="t3",
       server={"type": "unix", "path": t3_sock})
    ok("blockdev-mirror", device="disk0", target="t3", sync="full", **{"job-id": "m3"})
    mirror_done("m3")
    inserted = ok("query-block")[0]["inserted"]
    if inserted["node-name"] != "t3":
        fail(f"the disk after the pivot onto the storage daemon: {inserted}")
    n = writes()
    wait_writes(n + 300, "after the pivot onto vireo-storage-daemon")
    print("ok: blockdev-mirror onto vireo-storage-daemon's export reached READY and pivoted")
    if any(e["event"] == "BLOCK_IO_ERROR" for e in qmp.events):
        fail(f"guest I/O failed: {qmp.events}")
    vm.quit()
    if sd.qmp.execute("quit").get("return") != {} or sd.proc.wait(timeout=30) != 0:
        fail("vireo-storage-daemon did not quit cleanly")
finally:
    kill_all()
    if sd and sd.proc.poll() is None:
        sd.proc.kill()

# the daemon's image holds every flushed write (what the earlier targets held came to it
# through the mirrors, so they are checked through it)
run("qemu-img", "check", "-q", t3)
t3_raw = os.path.join(tmp, "t3.raw")
run("qemu-img", "convert", "-O", "raw", t3, t3_raw)
r = subprocess.run([crash_check, before, log_path, t3_raw], capture_output=True, text=True)
print(r.stdout.strip())
if r.returncode:
    print(f"FAIL: crash_check: {r.stdout}{r.stderr}")
    sys.exit(1)
print("PASS: a VM on NBD survived its server's restart and moved onto three NBD exports, the "
      "last one vireo-storage-daemon's")
