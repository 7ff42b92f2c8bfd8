#!/usr/bin/env python3
"""qmp_enospc_test.py VIREO GUEST: block jobs whose target runs out of space.

The targets live on a small tmpfs (mount -t tmpfs -o size=32M: needs root; skips, 77, when the
mount fails) that a filler file fills but for 12 MiB; the jobs copy 24 MiB of data. The test
guest idles (no guest I/O), so the disks' content must stay exactly what it was:
  1. drive-mirror of disk0 to a new qcow2 there, on-target-error=report: BLOCK_JOB_ERROR
     (operation write, action report), then BLOCK_JOB_COMPLETED with an error saying so; the
     VM keeps running, the disk stays on its image;
  2. blockdev-backup to a node made there by blockdev-add, on-target-error=stop:
     BLOCK_JOB_ERROR (action stop), JOB_STATUS_CHANGE paused, query-jobs says paused; the
     filler deleted, job-resume lets it finish, and the backup equals the disk;
  3. block-commit of disk1's active image into its base, which lives there, on-error=enospc:
     BLOCK_JOB_ERROR (action stop, for ENOSPC), paused; the filler deleted, job-resume,
     BLOCK_JOB_READY, job-complete moves disk1 onto its base;
  4. the same commit's report policy first (the job fails, disk1 stays on its top image).
After vireo quit (exit 0), every image passes qemu-img check and each disk's content equals a
copy taken before (qemu-img compare). Needs qemu-img and qemu-io (Debian: qemu-utils).
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import Vm, need_qemu_tools, run, setup  # noqa: E402

vireo, guest, tmp = setup()
need_qemu_tools()

MiB = 1 << 20
size = 64 * MiB


small = os.path.join(tmp, "small")
os.mkdir(small)
r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32M", "tmpfs", small],
                   capture_output=True, text=True)
if r.returncode:
    print(f"SKIP: cannot mount a small tmpfs for the out-of-space targets (needs root): "
          f"{r.stderr.strip()}")
    sys.exit(77)


def fill():
    """Leaves about 12 MiB free on the small file system."""
    free = shutil.disk_usage(small).free
    with open(os.path.join(small, "filler"), "wb") as f:
        f.write(b"\xff" * max(0, free - 12 * MiB))


def unfill():
    os.unlink(os.path.join(small, "filler"))


def main():
    disk = os.path.join(tmp, "disk.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", disk, str(size))
    run("qemu-io", "-c", f"write -P 0x5a 0 {16 * MiB}", "-c",
        f"write -P 0xa5 {40 * MiB} {8 * MiB}", disk)
    base = os.path.join(small, "base.qcow2")  # disk1: base (on the small fs) <- top
    top = os.path.join(tmp, "top.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", base, str(size))
    run("qemu-io", "-c", f"write -P 0x11 0 {MiB}", base)
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top)
    run("qemu-io", "-c", f"write -P 0x33 {2 * MiB} {24 * MiB}", top)
    before0, before1 = os.path.join(tmp, "before0.raw"), os.path.join(tmp, "before1.raw")
    run("qemu-img", "convert", "-O", "raw", disk, before0)
    run("qemu-img", "convert", "-O", "raw", top, before1)

    log_path = os.path.join(tmp, "serial.log")
    vm = Vm(vireo, ["--kernel", guest, "--memory", "128M", "--serial", f"file:{log_path}",
                  "--blockdev", f"driver=qcow2,node-name=disk,file.driver=file,"
                  f"file.filename={disk}",
                  "--device", "virtio-blk-pci,drive=disk,id=disk0",
                  "--blockdev", f"driver=qcow2,node-name=top,file.driver=file,"
                  f"file.filename={top}",
                  "--device", "virtio-blk-pci,drive=top,id=disk1",
                  "--cmdline", "idle"],
            os.path.join(tmp, "qmp.sock"), logs=[log_path])
    qmp, fail, ok = vm.qmp, vm.fail, vm.ok

    def event(name, job, timeout=120):
        def match(e):
            d = e["data"]
            return d.get("device", d.get("id")) == job
        try:
            return qmp.wait_event(name, timeout=timeout, match=match)["data"]
        except TimeoutError as e:
            fail(f"{job}: {e}; events kept: {qmp.events}")

    def running():
        st = ok("query-status")
        if st.get("status") != "running" or vm.proc.poll() is not None:
            fail(f"the VM is not running after a target ran out of space: {st}")

    def job_error(job, action):
        e = event("BLOCK_JOB_ERROR", job)
        if e.get("operation") != "write" or e.get("action") != action:
            fail(f"{job}: BLOCK_JOB_ERROR {e}, wanted operation write, action {action}")

    def paused(job):
        while event("JOB_STATUS_CHANGE", job)["status"] != "paused":
            pass
        jobs = [j for j in ok("query-jobs") if j["id"] == job]
        if not jobs or jobs[0]["status"] != "paused":
            fail(f"{job}: query-jobs {jobs}, wanted it paused")

    def disk_file(dev):
        for b in ok("query-block"):
            if b.get("qdev") == dev:
                return b["inserted"]["file"]
        fail(f"no {dev} in query-block")

    # 1. mirror, on-target-error=report: the job fails, the disk stays where it was
    fill()
    mirror = os.path.join(small, "mirror.qcow2")
    ok("drive-mirror", device="disk0", target=mirror, format="qcow2", sync="full",
       **{"job-id": "m1", "on-target-error": "report"})
    job_error("m1", "report")
    done = event("BLOCK_JOB_COMPLETED", "m1")
    if "space" not in done.get("error", ""):
        fail(f"m1: BLOCK_JOB_COMPLETED {done}, wanted an error about space")
    running()
    if disk_file("disk0") != disk or any(j["id"] == "m1" for j in ok("query-jobs")):
        fail("m1: the failed mirror moved the disk or stayed in query-jobs")
    print(f"mirror, report: {done['error']}")
    os.unlink(mirror)

    # 2. backup, on-target-error=stop: paused until space is freed, then finishes
    backup = os.path.join(small, "backup.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", backup, str(size))
    ok("blockdev-add", driver="qcow2", **{"node-name": "b"},
       file={"driver": "file", "filename": backup})
    ok("blockdev-backup", device="disk0", target="b", sync="full",
       **{"job-id": "b1", "on-target-error": "stop"})
    job_error("b1", "stop")
    paused("b1")
    running()
    unfill()
    ok("job-resume", id="b1")
    done = event("BLOCK_JOB_COMPLETED", "b1")
    if "error" in done:
        fail(f"b1 after job-resume: {done}")
    ok("blockdev-del", **{"node-name": "b"})
    print("backup, stop: paused, resumed, finished")
    run("qemu-img", "check", "-q", backup)
    run("qemu-img", "compare", "-q", before0, backup)
    os.unlink(backup)

    # 4 first: commit with on-error=report fails and leaves disk1 on its top image
    fill()
    ok("block-commit", device="disk1", **{"job-id": "c1", "on-error": "report"})
    job_error("c1", "report")
    done = event("BLOCK_JOB_COMPLETED", "c1")
    if "error" not in done:
        fail(f"c1: BLOCK_JOB_COMPLETED {done}, wanted an error")
    running()
    if disk_file("disk1") != top:
        fail("c1: the failed commit moved disk1")
    print(f"commit, report: {done['error']}")

    # 3. commit with on-error=enospc: paused (ENOSPC is stop), resumed, completed
    ok("block-commit", device="disk1", **{"job-id": "c2", "on-error": "enospc"})
    job_error("c2", "stop")
    paused("c2")
    running()
    unfill()
    ok("job-resume", id="c2")
    event("BLOCK_JOB_READY", "c2")
    ok("job-complete", id="c2")
    done = event("BLOCK_JOB_COMPLETED", "c2")
    if "error" in done or disk_file("disk1") != base:
        fail(f"c2: {done}, disk1 on {disk_file('disk1')}, wanted no error and {base}")
    print("commit, enospc: paused, resumed, completed onto the base")

    running()
    vm.quit()
    if vm.proc.wait(timeout=30) != 0:
        fail(f"vireo exited {vm.proc.returncode}")
    for image in (disk, top, base):
        run("qemu-img", "check", "-q", image)
    run("qemu-img", "compare", "-q", before0, disk)
    run("qemu-img", "compare", "-q", before1, top)
    run("qemu-img", "compare", "-q", before1, base)
    print("PASS: out of space: report fails the job, stop and enospc pause it until "
          "job-resume; the VM ran on and the disks are unchanged")


try:
    main()
finally:
    subprocess.run(["umount", "-l", small])
