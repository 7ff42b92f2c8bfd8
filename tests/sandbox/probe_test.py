#!/usr/bin/env python3
"""probe_test.py VIREO_PROBE SD_PROBE VIREO_IMG EXIT42_GUEST: every thread role dies by SIGSYS
on a system call outside its allowlist, and the log names the thread's role and the call;
with --sandbox log the call goes through, the line says so, and the VM goes on.

VIREO_PROBE and SD_PROBE are vireo and vireo-storage-daemon built with the test-only probe
(probe_main.c): VIREO_SANDBOX_PROBE=ROLE:SYSCALL makes the threads of ROLE call SYSCALL right
after their filter goes on. Each role is brought up by the smallest set-up that starts it: a
tiny guest that exits at once (exit status 85) with a raw or qcow2 disk for vireo's roles, and
a daemon with an export, an NBD client node and a mirror (started over QMP) for the others.
The calls are ones the role's list lacks (README, "Sandbox"): socket for threads that never
connect anywhere, execve for those that do.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import Daemon, Qmp, tmpdir  # noqa: E402

vireo, daemon, vireo_img, guest = sys.argv[1:5]
tmp = tmpdir()
failed = []
MiB = 1 << 20


def check(what, proc_out, status, role, syscall, mode="on"):
    """The process ended by SIGSYS (on) or normally (log), and its log names role and call."""
    want = f"({role}) made system call {syscall} ("
    if mode == "on":
        ok = status == -signal.SIGSYS and want in proc_out and "killed by SIGSYS" in proc_out
    else:
        ok = status == 85 and want in proc_out and "let through" in proc_out
    print(f"{'ok' if ok else 'FAIL'}: {what}: status {status}")
    if not ok:
        print(f"  wanted a line holding '{want}'; the output:\n{proc_out[-1500:]}")
        failed.append(what)


def no_core():
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS dumps core by default


def run_vireo(role, syscall, disk, mode="on"):
    env = dict(os.environ, VIREO_SANDBOX_PROBE=f"{role}:{syscall}")
    args = [vireo, "run", "--kernel", guest, "--memory", "64M", "--serial", "none",
            "--drive", disk, "--sandbox", mode]
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60,
                       preexec_fn=no_core)
    check(f"vireo {role} {syscall} ({mode})", p.stdout + p.stderr, p.returncode, role, syscall,
          mode)


if not os.access("/dev/kvm", os.R_OK | os.W_OK):
    print("SKIP: /dev/kvm is not available (vireo's roles need a VM)")
    sys.exit(77)

raw = os.path.join(tmp, "d.raw")
qcow2 = os.path.join(tmp, "d.qcow2")
data = os.path.join(tmp, "s.raw")
with open(raw, "wb") as f:
    f.truncate(8 * MiB)
with open(data, "wb") as f:
    f.write(os.urandom(8 * MiB))
subprocess.run([vireo_img, "create", "-q", "-f", "qcow2", qcow2, "8M"], check=True)
raw_disk = f"file={raw},format=raw,if=virtio-blk"

for role, syscall in (("main", "execve"), ("vcpu", "socket"), ("iothread", "socket"),
                      ("memslot", "socket"), ("engine", "socket")):
    run_vireo(role, syscall, raw_disk)
run_vireo("qcow2-pool", "socket", f"file={qcow2},format=qcow2,if=virtio-blk")
# log: the same calls go through and the guest runs to its end
run_vireo("vcpu", "socket", raw_disk, mode="log")
run_vireo("iothread", "socket", raw_disk, mode="log")
run_vireo("main", "mount", raw_disk, mode="log")  # execve cannot be let through


def run_daemon(role, syscall, qmp_steps=()):
    """A daemon with an iothread, a qcow2 node and its NBD export; qmp_steps then start more
    (a job, an NBD client node) until the probe kills it."""
    sock, nbd = os.path.join(tmp, f"{role}.qmp"), os.path.join(tmp, f"{role}.nbd")
    env_before = os.environ.get("VIREO_SANDBOX_PROBE")
    os.environ["VIREO_SANDBOX_PROBE"] = f"{role}:{syscall}"
    args = ["--sandbox", "on", "--object", "iothread,id=io0",
            "--blockdev", f"driver=qcow2,node-name=d0,file.driver=file,file.filename={qcow2}",
            "--blockdev", f"driver=raw,node-name=t0,file.driver=file,file.filename={raw}",
            "--blockdev", f"driver=raw,node-name=s0,file.driver=file,file.filename={data}",
            "--nbd-server", f"addr.type=unix,addr.path={nbd}",
            "--export", "type=nbd,id=e0,node-name=d0,name=d0,iothread=io0"]
    try:
        d = Daemon.__new__(Daemon)
        d.logs = ()
        d.proc = subprocess.Popen(
            [daemon, *args, "--chardev", f"socket,id=qmp0,path={sock},server=on,wait=off",
             "--monitor", "chardev=qmp0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, preexec_fn=no_core)
    finally:
        if env_before is None:
            del os.environ["VIREO_SANDBOX_PROBE"]
        else:
            os.environ["VIREO_SANDBOX_PROBE"] = env_before
    try:
        q = Qmp(sock)
        for cmd, a in qmp_steps:
            q.execute(cmd, **a)
        deadline = time.monotonic() + 20  # a job's threads start on its first steps
        while qmp_steps and d.proc.poll() is None and time.monotonic() < deadline:
            q.execute("query-jobs")
            time.sleep(0.05)
        q.execute("quit")
    except (OSError, ValueError, EOFError):
        pass  # killed under the client's feet: what the probe is for
    try:
        out = d.proc.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        d.proc.kill()
        out = d.proc.communicate()[0] + "\n(timed out: killed)"
    check(f"daemon {role} {syscall}", out, d.proc.returncode, role, syscall)


# from a source holding data: the copy workers start only for ranges to copy
mirror = [("blockdev-mirror", {"job-id": "m0", "device": "s0", "target": "t0", "sync": "full"}),
          ("query-jobs", {})]
nbd_client = [("blockdev-add", {"driver": "nbd", "node-name": "n0", "export": "d0",
                                "read-only": True,
                                "server": {"type": "unix",
                                           "path": os.path.join(tmp, "nbd-rx.nbd")}})]
for role, syscall, steps in (("sd-main", "execve", ()), ("iothread", "socket", ()),
                             ("engine", "socket", ()), ("qcow2-pool", "socket", ()),
                             ("nbd-export", "socket", ()), ("job", "execve", mirror),
                             ("copy", "socket", mirror), ("nbd-rx", "execve", nbd_client)):
    run_daemon(role, syscall, steps)

if failed:
    print(f"FAIL: {len(failed)} of the probes: {', '.join(failed)}")
    sys.exit(1)
print("PASS")
