#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/jobs/jobs.py: the measurements of bench/jobs/run.sh (see there); not run by hand.

jobs.py iops|throughput|speed  with its settings in the environment run.sh exports:
JOBS_VIREO, JOBS_ELF, JOBS_QEMU, JOBS_DISK, JOBS_DIR (targets, sockets, logs), JOBS_SECS,
JOBS_WARMUP_MS, JOBS_REPEAT, JOBS_CACHES, JOBS_QDS, JOBS_SPEEDS (MiB/s), JOBS_SPEED_SECS,
JOBS_VMMS. Every figure is printed as one line (IOPS / MIRROR / SPEED) and a summary
(IOPS_RATIO / MIRROR_RATIO / SPEED) closes each part.
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tests", "integration"))
from vmtest import Qmp  # noqa: E402 (after the path it lives on)

env = os.environ
vireo, elf, qemu = env["JOBS_VIREO"], env["JOBS_ELF"], env.get("JOBS_QEMU", "")
disk, work = env["JOBS_DISK"], env["JOBS_DIR"]
size = os.path.getsize(disk)
secs, warmup = int(env.get("JOBS_SECS", "10")), int(env.get("JOBS_WARMUP_MS", "1000"))
repeat = int(env.get("JOBS_REPEAT", "3"))
caches = env.get("JOBS_CACHES", "none writeback").split()
qds = env.get("JOBS_QDS", "1 32").split()
speeds = [int(s) for s in env.get("JOBS_SPEEDS", "20 50 100").split()]
speed_secs = float(env.get("JOBS_SPEED_SECS", "10"))
vmms = env.get("JOBS_VMMS", "vireo qemu").split()
logs = os.path.join(work, "logs")
os.makedirs(logs, exist_ok=True)
target = os.path.join(work, "target.raw")
sock = os.path.join(work, "qmp.sock")
MiB = 1 << 20


def say(line):
    print(line, flush=True)


def load():
    return open("/proc/loadavg").read().split()[0]


def drop_cache(path):
    """Write path back and drop it from the page cache (as bench/blk does)."""
    subprocess.run(["sync", path], check=True)
    subprocess.run(["dd", f"if={path}", "iflag=nocache", "count=0", "status=none"], check=True)


def prepare(cache):
    """Every run starts from the same state: the source written back and dropped (re-read in
    order for page-cached runs), a fresh sparse target of the source's size."""
    if os.path.exists(target):
        drop_cache(target)
        os.unlink(target)
    drop_cache(disk)
    if cache == "writeback":
        subprocess.run(["dd", f"if={disk}", "of=/dev/null", "bs=1M", "status=none"], check=True)
    with open(target, "wb") as f:
        f.truncate(size)


def node(cache, name, path):
    return {"driver": "raw", "node-name": name, "cache": {"direct": cache == "none"},
            "file": {"driver": "file", "filename": path, "aio": "io_uring"}}


def vireo_cmd(cache, cmdline, drive_style):
    cmd = [vireo, "run", "--kernel", elf, "--cpus", "2", "--memory", "256M",
           "--serial", "stdio", "--cmdline", cmdline, "--qmp", f"unix:{sock}"]
    if drive_style:     # as bench/blk/run.sh: one queue, one iothread
        cmd += ["--drive", f"file={disk},format=raw,if=virtio-blk,num-queues=1,iothreads=1,"
                f"cache={cache}"]
    else:
        cmd += ["--blockdev", json.dumps(node(cache, "d0", disk)),
                "--device", "virtio-blk-pci,drive=d0,num-queues=1"]
    return cmd


def qemu_cmd(cache, cmdline):
    """QEMU 10 at its best, as bench/blk/run.sh starts it, with -blockdev and a QMP socket."""
    dev = {"driver": "virtio-blk-pci", "drive": "d0", "num-queues": 1,
           "disable-legacy": "on", "iothread-vq-mapping": [{"iothread": "io0"}]}
    return [qemu, "-M", "q35", "-enable-kvm", "-cpu", "host,-arch-capabilities", "-smp", "2",
            "-m", "256M", "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none",
            "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-object", "iothread,id=io0", "-blockdev", json.dumps(node(cache, "d0", disk)),
            "-device", json.dumps(dev), "-kernel", elf, "-append", cmdline,
            "-qmp", f"unix:{sock},server=on,wait=off"]


class Vm:
    def __init__(self, vmm, cmd, tag):
        if os.path.exists(sock):
            os.unlink(sock)
        self.vmm, self.tag = vmm, tag
        self.err = open(os.path.join(logs, f"{tag}.err"), "w")
        self.console = open(os.path.join(logs, f"{tag}.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err,
                                     stdin=subprocess.DEVNULL, text=True, errors="replace")
        try:
            self.qmp = Qmp(sock, timeout=120)
        except (OSError, ValueError):
            self.kill()
            raise

    def kill(self):
        self.proc.kill()
        self.proc.communicate()
        self.console.close()
        self.err.close()

    def line(self):
        """The guest's next console line ("" at its end)."""
        s = self.proc.stdout.readline()
        self.console.write(s)
        return s

    def ok(self, cmd, **args):
        r = self.qmp.execute(cmd, **args)
        if "return" not in r:
            raise RuntimeError(f"{self.vmm}: {cmd} {args}: {r}")
        return r["return"]

    def job(self, job_id):
        for j in self.ok("query-jobs"):
            if j["id"] == job_id:
                return j
        return None

    def finish(self, quit=True):
        if quit:
            try:
                self.qmp.execute("quit")
            except (OSError, ValueError, EOFError):
                pass
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        self.console.close()
        self.err.close()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---- 1. guest random-read IOPS without a job and while a mirror copies the disk

def iops_run(cache, qd, with_job, rep):
    try:
        return iops_run1(cache, qd, with_job, rep)
    except (RuntimeError, OSError, ValueError, TimeoutError) as e:
        say(f"FAILED iops cache={cache} qd={qd} job={'mirror' if with_job else 'none'}: {e!r}")
        return None


def iops_run1(cache, qd, with_job, rep):
    prepare(cache)
    cmdline = (f"bench bench-rw=randread bench-qd={qd} bench-queues=1 bench-secs={secs} "
               f"bench-warmup-ms={warmup} bench-wait=poll")
    tag = f"iops-{cache}-qd{qd}-{'mirror' if with_job else 'nojob'}-{rep}"
    vm = Vm("vireo", vireo_cmd(cache, cmdline, True), tag)
    try:
        return iops_guest(vm, cache, qd, with_job, tag)
    except BaseException:
        vm.kill()
        raise


def iops_guest(vm, cache, qd, with_job, tag):
    src = vm.ok("query-block")[0]["inserted"]["node-name"]
    if with_job:
        vm.ok("blockdev-add", **node(cache, "tgt", target))
    bench, t_start, t_end, end_job, ready_at = "", None, None, None, False
    probe, sample = {}, None
    while True:
        s = vm.line()
        if not s:
            break
        if "NCH START" in s and with_job:
            t_start = time.monotonic()
            vm.ok("blockdev-mirror", **{"job-id": "m", "device": src, "target": "tgt",
                                        "sync": "full"})
            # the guest ends right after END and vireo, quitting, cancels the job: its state
            # is sampled 0.3 s before the window closes (nothing else uses QMP meanwhile)
            sample = threading.Timer(max(0.0, secs - 0.3), lambda: probe.update(
                t=time.monotonic(), job=vm.job("m")))
            sample.start()
        elif "NCH END" in s and with_job:
            sample.join()
            t_end = probe.get("t", time.monotonic())
            end_job = probe.get("job") or {"status": "gone", "current-progress": 0}
            ready_at = any(e["event"] == "BLOCK_JOB_READY" for e in vm.qmp.events)
        elif "NCH iops=" in s:
            bench = s.strip()
    vm.finish(quit=False)
    if not bench:
        say(f"FAILED iops cache={cache} qd={qd} job={'mirror' if with_job else 'none'}: "
            f"see {logs}/{tag}.*")
        return None
    iops = int(bench.split("iops=")[1].split()[0])
    extra = ""
    if with_job:
        copied, state = end_job["current-progress"], end_job["status"]
        if ready_at:
            state += ",READY-in-window"
        extra = (f" job_state_at_end={state} copied_in_window_mib={copied / MiB:.0f}"
                 f" job_mbps={copied / (t_end - t_start) / 1e6:.0f}")
    say(f"IOPS cache={cache} rw=randread qd={qd} queues=1 job={'mirror' if with_job else 'none'}"
        f" iops={iops}{extra} load={load()}")
    return iops


def part_iops():
    say(f"== 1. guest 4 KiB randread IOPS, no job vs. an unthrottled blockdev-mirror "
        f"(sync=full) started when the {secs} s window opens; {size / 2**30:.0f} GiB disk")
    results = {}
    for cache in caches:
        for qd in qds:
            for rep in range(1, repeat + 1):
                for with_job in (False, True):
                    v = iops_run(cache, qd, with_job, rep)
                    if v is not None:
                        results.setdefault((cache, qd, with_job), []).append(v)
    for cache in caches:
        for qd in qds:
            a = median(results.get((cache, qd, False), []))
            b = median(results.get((cache, qd, True), []))
            r = b / a if a == a and b == b and a else float("nan")
            say(f"IOPS_RATIO cache={cache} qd={qd} no_job={a:.0f} with_mirror={b:.0f} "
                f"ratio={r:.3f} goal>=0.90 {'ok' if r >= 0.9 else 'MISS'} (medians of {repeat})")


# ---- 2. time of a whole mirror (to READY) of the disk, vireo against QEMU 10

def mirror_run(vmm, cache, rep, speed=None):
    prepare(cache)
    tag = f"mirror-{vmm}-{cache}-{rep}" if speed is None else f"speed-{vmm}-{speed}"
    cmd = vireo_cmd(cache, "idle", False) if vmm == "vireo" else qemu_cmd(cache, "idle")
    vm = Vm(vmm, cmd, tag)
    try:
        return mirror_vm(vm, vmm, cache, tag, speed)
    except BaseException:
        vm.kill()
        raise


def mirror_vm(vm, vmm, cache, tag, speed):
    while "idle:" not in (s := vm.line()):   # the guest is halted: it does no I/O
        if not s:
            raise RuntimeError(f"{vmm}: the guest ended before idling (see {logs}/{tag}.*)")
    vm.ok("blockdev-add", **node(cache, "tgt", target))
    args = {"job-id": "m", "device": "d0", "target": "tgt", "sync": "full"}
    if speed is not None:
        args["speed"] = speed * MiB
    t0 = time.monotonic()
    vm.ok("blockdev-mirror", **args)
    if speed is None:
        vm.qmp.wait_event("BLOCK_JOB_READY", timeout=3600)
        took = time.monotonic() - t0
        vm.ok("block-job-cancel", device="m")
        vm.qmp.wait_event("BLOCK_JOB_COMPLETED", timeout=600)
        vm.finish()
        say(f"MIRROR vmm={vmm} cache={cache} bytes={size} secs={took:.2f} "
            f"mbps={size / took / 1e6:.0f} load={load()}")
        return size / took / 1e6
    # speed: the progress 1 s in and speed_secs s in (steady), and at speed_secs from the start
    samples = []
    for at in (1.0, speed_secs, 1.0 + speed_secs):
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        t = time.monotonic()
        j = vm.job("m")
        samples.append((t - t0, j["current-progress"] if j else None, j and j["status"]))
    vm.ok("block-job-cancel", device="m", force=True)
    vm.finish()
    return samples


def part_throughput():
    say(f"== 2. blockdev-mirror sync=full of the {size / 2**30:.0f} GiB raw disk to a raw "
        f"target on the same file system, guest idle, time to BLOCK_JOB_READY")
    res = {}
    for cache in caches:
        for rep in range(1, repeat + 1):
            for vmm in vmms:
                try:
                    res.setdefault((vmm, cache), []).append(mirror_run(vmm, cache, rep))
                except (RuntimeError, OSError, ValueError, TimeoutError) as e:
                    say(f"FAILED mirror vmm={vmm} cache={cache}: {e!r}")
    for cache in caches:
        v, q = median(res.get(("vireo", cache), [])), median(res.get(("qemu", cache), []))
        say(f"MIRROR_RATIO cache={cache} vireo_mbps={v:.0f} qemu_mbps={q:.0f} "
            f"vireo/qemu={v / q if q == q and q else float('nan'):.2f} (medians of {repeat})")


# ---- 3. how well speed=S holds

def part_speed():
    cache = caches[0]
    say(f"== 3. blockdev-mirror speed=S (cache={cache}, guest idle): bytes copied "
        f"(query-jobs current-progress) over {speed_secs:.0f} s from the start, and over "
        f"[1 s, {1 + speed_secs:.0f} s]")
    for vmm in vmms:
        for s in speeds:
            try:
                (t1, p1, _), (tn, pn, stn), (tm, pm, stm) = mirror_run(vmm, cache, 1, speed=s)
            except (RuntimeError, OSError, ValueError, TimeoutError) as e:
                say(f"FAILED speed vmm={vmm} speed={s}: {e!r}")
                continue
            want = s * MiB
            if pn is None or pm is None or stm != "running":
                say(f"FAILED speed vmm={vmm} speed={s}: the job was {stm} at {tm:.1f} s")
                continue
            whole = pn / tn
            steady = (pm - p1) / (tm - t1)
            dw, ds = (whole - want) * 100 / want, (steady - want) * 100 / want
            ok = "ok" if abs(dw) <= 5 and abs(ds) <= 5 else "OFF"
            say(f"SPEED vmm={vmm} speed_mib={s} from_start_mib_s={whole / MiB:.2f} "
                f"dev_pct={dw:+.2f} steady_mib_s={steady / MiB:.2f} steady_dev_pct={ds:+.2f} {ok} "
                f"load={load()}")


parts = {"iops": part_iops, "throughput": part_throughput, "speed": part_speed}
for p in sys.argv[1:]:
    parts[p]()
