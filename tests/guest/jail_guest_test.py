#!/usr/bin/env python3
"""jail_guest_test.py VIREO GUEST: vireo --jail runs the test guest as an unprivileged user.

In a jail directory holding the guest and an 8 MiB disk (owned by the jail's uid):
 1. the guest's blk case passes on the disk, vireo running as uid/gid 64201 in the jail;
 2. a running jailed vireo (the guest idling, QMP on a socket in the jail) is inspected from
    the host: /proc/PID/root is the jail directory (same device and inode) and holds only its
    files and a /dev of null and kvm; every thread runs as 64201 with no capability and
    no_new_privs; its mount and (with --new-net-ns) network namespaces are not ours; an fd its parent left open is
    not among its fds; RLIMIT_NOFILE is lowered (soft = hard, just above its fds) and
    RLIMIT_NPROC is the vCPUs plus 512; QMP quit ends it with status 0;
 3. a host path outside the jail is not visible: the drive is refused, naming the path and the
    jail, and so is a kernel outside it;
 4. with --new-pid-ns vireo is PID 1 of its namespace, the guest passes, and its status comes
    back through the parent.
Needs root with CAP_SYS_ADMIN (skips otherwise, and without /dev/kvm).
"""
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import Qmp, setup  # noqa: E402

vireo, guest, tmp = setup()
if os.geteuid() != 0:
    print("SKIP: --jail needs root")
    sys.exit(77)
if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
    print("SKIP: cannot make a mount namespace here (no CAP_SYS_ADMIN)")
    sys.exit(77)

UID = GID = 64201
CPUS = 2
os.chmod(tmp, 0o755)
jail = os.path.join(tmp, "jail")
os.mkdir(jail, 0o755)
shutil.copy(guest, os.path.join(jail, "guest.elf"))
for name in ("disk.raw", "../outside.raw"):
    path = os.path.join(jail, name)
    with open(path, "wb") as f:
        f.truncate(8 << 20)
    os.chown(path, UID, GID)
os.chown(jail, UID, GID)  # the jailed user makes the QMP socket and the serial log here
outside = os.path.abspath(os.path.join(tmp, "outside.raw"))
# LeakSanitizer (the sanitized build) needs /proc, which the jail does not have
env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")


def fail(msg, out=""):
    print(f"FAIL: {msg}\n{out[-3000:]}")
    log = os.path.join(jail, "serial.log")
    if os.path.exists(log):
        print(open(log, errors="replace").read()[-2000:])
    sys.exit(1)


def vireo_args(*extra, drive="/disk.raw", kernel="/guest.elf", cmdline="blk"):
    return [vireo, "run", "--jail", jail, "--uid", str(UID), "--gid", str(GID), *extra,
            "--kernel", kernel, "--cpus", str(CPUS), "--memory", "128M",
            "--drive", f"file={drive},format=raw,if=virtio-blk,num-queues=2,iothreads=2,"
            "serial=vireo-test",
            "--cmdline", f"{cmdline} cpus={CPUS} blk-require=1 blk-serial=vireo-test"]


# 1. the guest's disk I/O, jailed
r = subprocess.run(vireo_args("--serial", "stdio"), capture_output=True, text=True,
                   timeout=120, env=env)
if r.returncode != 33 or "ok blk" not in r.stdout:
    fail(f"the guest's blk case in the jail: status {r.returncode}", r.stdout + r.stderr)
print("ok: the guest's blk case passes in the jail, as uid 64201")


def field(status, name):
    for line in status.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].split()
    return None


def limit(pid, name):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith(name):
            soft, hard = line[len(name):].split()[:2]
            return int(soft), int(hard)
    return None


def wait_qmp(proc, out_path):
    try:
        return Qmp(os.path.join(jail, "qmp.sock"))
    except (OSError, ValueError) as e:
        proc.kill()
        proc.wait()
        fail(f"no QMP monitor in the jail: {e}", open(out_path).read())


# 2. a running jailed vireo, seen from the host
stray_path = os.path.join(tmp, "stray")
stray = os.open(stray_path, os.O_RDWR | os.O_CREAT, 0o600)
out_path = os.path.join(tmp, "out.log")
with open(out_path, "w") as out:
    proc = subprocess.Popen(vireo_args("--new-net-ns", "--serial", "file:/serial.log",
                                       "--qmp", "unix:/qmp.sock", cmdline="idle"),
                            stdout=out, stderr=subprocess.STDOUT, pass_fds=(stray,), env=env)
os.close(stray)
qmp = wait_qmp(proc, out_path)
pid = proc.pid
try:
    root, ours = os.stat(f"/proc/{pid}/root"), os.stat(jail)
    if (root.st_dev, root.st_ino) != (ours.st_dev, ours.st_ino):
        fail("/proc/PID/root is not the jail directory")
    seen = sorted(os.listdir(f"/proc/{pid}/root"))
    if seen != ["dev", "disk.raw", "guest.elf", "qmp.sock", "serial.log"]:
        fail(f"the jail's root holds {seen}")
    devs = sorted(os.listdir(f"/proc/{pid}/root/dev"))
    if devs != ["kvm", "null"]:
        fail(f"the jail's /dev holds {devs}")
    for ns in ("mnt", "net"):
        if os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}"):
            fail(f"vireo shares our {ns} namespace")
    tasks = os.listdir(f"/proc/{pid}/task")
    for tid in tasks:
        st = open(f"/proc/{pid}/task/{tid}/status").read()
        if (field(st, "Uid") != [str(UID)] * 4 or field(st, "Gid") != [str(GID)] * 4 or
                field(st, "Groups") != [] or field(st, "CapEff") != ["0000000000000000"] or
                field(st, "CapPrm") != ["0000000000000000"] or field(st, "NoNewPrivs") != ["1"]):
            fail(f"thread {tid} ({field(st, 'Name')}): {st}")
    fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    if any(stray_path in target or target.endswith("/stray") for target in fds.values()):
        fail(f"the fd its parent left open is still there: {fds}")
    nofile, hard = limit(pid, "Max open files")
    if nofile != hard or not max(fds) < nofile <= max(fds) + 1 + 256:
        fail(f"Max open files {nofile}/{hard} with fds up to {max(fds)}")
    nproc, hard = limit(pid, "Max processes")
    if nproc != CPUS + 512 or hard != nproc:
        fail(f"Max processes {nproc}/{hard}")
    print(f"ok: the running jailed vireo: root is the jail, {len(tasks)} threads as 64201 "
          f"without capabilities, {len(fds)} fds (none inherited), NOFILE {nofile}, "
          f"NPROC {nproc}")
    qmp.execute("quit")
    status = proc.wait(timeout=20)
    if status != 0:
        fail(f"status {status} after quit", open(out_path).read())
finally:
    proc.kill()

# 3. outside the jail: not there
for extra, want in (({"drive": outside}, f"--drive: file={outside}: No such file"),
                    ({"kernel": outside}, f"--kernel: cannot read '{outside}'")):
    r = subprocess.run(vireo_args("--serial", "none", **extra), capture_output=True, text=True,
                       timeout=60, env=env)
    msg = r.stdout + r.stderr
    if r.returncode == 0 or want not in msg or f"jail {jail}" not in msg:
        fail(f"{extra}: a path outside the jail: status {r.returncode}", msg)
    print(f"ok: refused: {msg.strip().splitlines()[-1]}")

# 4. --new-pid-ns: PID 1 inside, the status through the parent
r = subprocess.run(vireo_args("--new-pid-ns", "--serial", "stdio"), capture_output=True,
                   text=True, timeout=120, env=env)
if r.returncode != 33 or "ok blk" not in r.stdout:
    fail(f"the guest in a new PID namespace: status {r.returncode}", r.stdout + r.stderr)
with open(out_path, "w") as out:
    proc = subprocess.Popen(vireo_args("--new-pid-ns", "--serial", "none", "--qmp",
                                       "unix:/qmp.sock", cmdline="idle"),
                            stdout=out, stderr=subprocess.STDOUT, env=env)
qmp = wait_qmp(proc, out_path)
try:
    children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
    nspid = field(open(f"/proc/{children[0]}/status").read(), "NSpid") if children else None
    if not nspid or nspid[-1] != "1":
        fail(f"vireo is not PID 1 of its namespace (children {children}, NSpid {nspid})")
    qmp.execute("quit")
    status = proc.wait(timeout=20)
    if status != 0:
        fail(f"status {status} after quit, through the parent", open(out_path).read())
finally:
    proc.kill()
print("ok: with --new-pid-ns vireo is PID 1 of its namespace; the guest passes")
print("PASS: vireo --jail")
