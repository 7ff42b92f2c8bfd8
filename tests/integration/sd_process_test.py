#!/usr/bin/env python3
"""sd_process_test.py DAEMON: vireo-storage-daemon as a process: --daemonize, --pidfile, signals.

--daemonize --pidfile: the command returns 0 once the daemon is set up, the pid file names the
running daemon (not the command), whose monitor answers; a second daemon given the same pid file
is refused by name; SIGTERM ends the daemon, its pid file and its socket go. --daemonize with a
bad --blockdev: the command exits 1 with the message, no daemon and no pid file are left.
SIGTERM with a job running: the job is cancelled and every image the monitor owns is flushed
(fdatasync, seen by strace after the daemon read the signal) before it exits 0; SIGINT likewise.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from vmtest import Daemon, Qmp, tmpdir

daemon = sys.argv[1]
tmp = tmpdir()


def path(name):
    return os.path.join(tmp, name)


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def wait_gone(pid, what, timeout=20):
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            fail(f"{what}: the daemon (pid {pid}) still runs after {timeout} s")
        time.sleep(0.05)


for name in ("a.raw", "b.raw"):
    with open(path(name), "wb") as f:
        f.write(b"\x5a" * (4 << 20))
node = f"driver=raw,node-name=d0,file.driver=file,file.filename={path('a.raw')}"
qmp_args = ["--chardev", f"socket,id=m,path={path('qmp.sock')},server=on,wait=off",
            "--monitor", "chardev=m"]

# --daemonize --pidfile: back at once, the pid file names the daemon, its monitor answers
pidfile = path("sd.pid")
r = subprocess.run([daemon, "--blockdev", node, *qmp_args, "--pidfile", pidfile,
                    "--daemonize"], capture_output=True, text=True, timeout=30)
if r.returncode != 0 or r.stderr:
    fail(f"--daemonize: status {r.returncode}, {r.stderr}")
try:
    pid = int(open(pidfile).read())
except (OSError, ValueError) as e:
    fail(f"no pid in {pidfile}: {e}")
if not alive(pid):
    fail(f"the pid file names {pid}, which does not run")
if os.getsid(pid) != pid:
    fail(f"the daemon {pid} is not a session leader (session {os.getsid(pid)})")
q = Qmp(path("qmp.sock"))
if q.execute("query-version").get("return", {}).get("package") != "vireo":
    fail("the daemon's monitor does not answer query-version")
r = subprocess.run([daemon, "--pidfile", pidfile], capture_output=True, text=True, timeout=30)
if r.returncode != 1 or "--pidfile: cannot lock" not in r.stderr:
    fail(f"a second daemon on the same pid file: status {r.returncode}, {r.stderr}")
if int(open(pidfile).read()) != pid:
    fail("the second daemon changed the pid file")
os.kill(pid, signal.SIGTERM)
wait_gone(pid, "SIGTERM")
if os.path.exists(pidfile) or os.path.exists(path("qmp.sock")):
    fail(f"left after SIGTERM: {os.listdir(tmp)}")

# --daemonize with a bad option: the message, status 1, nothing left behind
r = subprocess.run([daemon, "--blockdev", "driver=raw,node-name=x,file.driver=file,"
                    f"file.filename={path('nope.raw')}", "--pidfile", pidfile, "--daemonize"],
                   capture_output=True, text=True, timeout=30)
if r.returncode != 1 or "--blockdev" not in r.stderr or "nope.raw" not in r.stderr:
    fail(f"--daemonize with a missing image: status {r.returncode}, {r.stderr}")
if os.path.exists(pidfile):
    fail("a pid file is left by a daemon that failed to start")
if subprocess.run(["pgrep", "-f", f"{path('nope.raw')}"], capture_output=True).returncode == 0:
    fail("a daemon that failed to start still runs")

# SIGTERM / SIGINT with a mirror in READY: cancelled, every image flushed, status 0. Under
# strace the signal goes to the daemon (the pid file's), not to strace.
strace = shutil.which("strace")
for sig in (signal.SIGTERM, signal.SIGINT):
    log = path("strace.log")
    # LeakSanitizer cannot run under ptrace: a sanitized daemon leaves its leak check out there
    asan = os.environ.get("ASAN_OPTIONS", "")
    prefix = ["env", f"ASAN_OPTIONS={asan}{':' if asan else ''}detect_leaks=0", strace, "-f",
              "-y", "-qq", "-e", "trace=fdatasync,read", "-o", log] if strace else []
    d = Daemon(daemon, ["--pidfile", pidfile, "--blockdev", node, "--blockdev",
                        f"driver=raw,node-name=t0,file.driver=file,"
                        f"file.filename={path('b.raw')}"], path("qmp.sock"), prefix=prefix)
    pid = int(open(pidfile).read())

    def dfail(msg):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
        d.fail(msg)

    r = d.qmp.execute("blockdev-mirror", device="d0", target="t0", sync="full",
                      **{"job-id": "m0"})
    if "return" not in r:
        dfail(f"blockdev-mirror: {r}")
    d.qmp.wait_event("BLOCK_JOB_READY", timeout=30)
    os.kill(pid, sig)
    try:
        status = d.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        dfail(f"{sig.name}: the daemon did not exit in 30 s")
    if status != 0:
        dfail(f"{sig.name}: status {status}")
    if os.path.exists(pidfile):
        dfail(f"{sig.name}: the pid file is left")
    if not strace:
        print("NOTE: no strace: the flush at exit is not checked")
        continue
    text = open(log).read()
    # the flushes after the signalfd's read of the signal
    m = list(re.finditer(r"read\(\d+<anon_inode:\[signalfd\]>", text))
    if not m:
        print(f"NOTE: strace saw no read of the signalfd (may it trace here?): the flush at "
              f"exit is not checked:\n{text[-500:]}")
        continue
    after = text[m[-1].end():]
    for image in ("a.raw", "b.raw"):
        if not re.search(r"fdatasync\(\d+<" + re.escape(path(image)) + r">\) += 0", after):
            d.fail(f"{sig.name}: no fdatasync of {image} after the signal:\n{after[-2000:]}")
print("PASS")
