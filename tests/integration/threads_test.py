#!/usr/bin/env python3
"""threads_test.py VIREO GUEST: QMP names vireo's host threads, which run at the nice values asked.

Starts GUEST (a guest that halts) with 2 vCPUs, --vcpu-nice 7 and a drive on 2 iothreads with
iothread-nice=3 (raising a nice value needs no privilege). As under QEMU, query-cpus-fast gives
each vCPU's host thread-id and query-iothreads each iothread's: each must be a thread of the
vireo process, named vcpuN / ioN (the names --affinity takes), at its nice value. Without
--vcpu-nice the vCPU threads keep vireo's own. A nice value the kernel refuses (a negative one
without CAP_SYS_NICE or RLIMIT_NICE) stops vireo before the guest runs, naming the vCPU.
"""
import ctypes
import os
import resource
import subprocess
import sys

from vmtest import Qmp, setup

vireo, guest, tmp = setup()
disk = os.path.join(tmp, "disk.raw")
with open(disk, "wb") as f:
    f.truncate(8 << 20)


def start(name, *extra):
    path = os.path.join(tmp, name + ".sock")
    vm = subprocess.Popen([vireo, "run", "--kernel", guest, "--cpus", "2", "--memory", "64M",
                           "--serial", "none", "--qmp", f"unix:{path}", *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        return vm, Qmp(path)
    except (OSError, ValueError) as e:
        vm.kill()
        print(f"FAIL: {name}: {e}\n{vm.communicate()[0]}")
        sys.exit(1)


def fail(vm, msg):
    vm.kill()
    print("FAIL:", msg)
    print(vm.communicate()[0])
    sys.exit(1)


def thread(vm, tid):
    """(name, nice) of thread tid of vm, from /proc."""
    task = f"/proc/{vm.pid}/task/{tid}"
    try:
        with open(task + "/comm") as f:
            comm = f.read().strip()
        with open(task + "/stat") as f:
            stat = f.read()
    except OSError as e:
        fail(vm, f"thread-id {tid} is not a thread of vireo (pid {vm.pid}): {e}")
    return comm, int(stat[stat.rindex(")") + 2:].split()[16])  # field 19: nice


def quit(vm, qmp):
    qmp.execute("quit")
    if vm.wait(timeout=20) != 0:
        fail(vm, f"vireo exited {vm.returncode} after quit")


vm, qmp = start("nice", "--vcpu-nice", "7", "--drive",
                f"file={disk},format=raw,num-queues=2,iothreads=2,iothread-nice=3")
cpus = qmp.execute("query-cpus-fast").get("return", [])
if [c.get("cpu-index") for c in cpus] != [0, 1]:
    fail(vm, f"query-cpus-fast: {cpus}")
for c in cpus:
    if "thread-id" not in c:
        fail(vm, f"query-cpus-fast: no thread-id in {c}")
    got = thread(vm, c["thread-id"])
    if got != (f"vcpu{c['cpu-index']}", 7):
        fail(vm, f"vCPU {c['cpu-index']}: thread {c['thread-id']} is {got}, not vcpu"
             f"{c['cpu-index']} at nice 7")
its = qmp.execute("query-iothreads").get("return", [])
if [t.get("id") for t in its] != ["io0", "io1"]:
    fail(vm, f"query-iothreads: {its}")
for t in its:
    if thread(vm, t["thread-id"]) != (t["id"], 3) or t.get("poll-max-ns", 0) <= 0:
        fail(vm, f"iothread {t}: thread {thread(vm, t['thread-id'])}, not {t['id']} at nice 3")
quit(vm, qmp)

vm, qmp = start("default")
own = os.getpriority(os.PRIO_PROCESS, 0)  # vireo inherits ours
for c in qmp.execute("query-cpus-fast")["return"]:
    if thread(vm, c["thread-id"])[1] != own:
        fail(vm, f"vCPU {c['cpu-index']} changed its nice value without --vcpu-nice")
if qmp.execute("query-iothreads").get("return") != []:
    fail(vm, "query-iothreads lists iothreads on a VM without drives")
quit(vm, qmp)


def no_sys_nice():
    """In the child: no CAP_SYS_NICE after exec (even as root) and RLIMIT_NICE 0."""
    PR_CAPBSET_DROP, CAP_SYS_NICE = 24, 23
    if os.geteuid() == 0 and \
            ctypes.CDLL(None, use_errno=True).prctl(PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_SYS_NICE)")
    resource.setrlimit(resource.RLIMIT_NICE, (0, 0))


try:
    r = subprocess.run([vireo, "run", "--kernel", guest, "--cpus", "2", "--memory", "64M",
                        "--serial", "none", "--vcpu-nice", "-5"], preexec_fn=no_sys_nice,
                       capture_output=True, text=True, timeout=20)
except subprocess.TimeoutExpired:
    print("FAIL: --vcpu-nice -5 without CAP_SYS_NICE: vireo ran the guest (killed after 20 s)")
    sys.exit(1)
if r.returncode != 1 or "vCPU 0: cannot set its nice value to -5" not in r.stderr \
        or "CAP_SYS_NICE" not in r.stderr:
    print(f"FAIL: --vcpu-nice -5 without CAP_SYS_NICE: exit {r.returncode}\n{r.stdout}{r.stderr}")
    sys.exit(1)
print("ok: query-cpus-fast and query-iothreads give the threads; --vcpu-nice, iothread-nice;"
      " a refused nice value stops vireo")
