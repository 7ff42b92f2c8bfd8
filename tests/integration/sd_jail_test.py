#!/usr/bin/env python3
"""sd_jail_test.py DAEMON: vireo-storage-daemon --jail serves an image as an unprivileged user.

In a jail directory holding a 16 MiB image (owned by uid/gid 64202): --jail --uid --gid
--new-pid-ns --new-net-ns --daemonize --pidfile: the command returns 0, the pid file (in the
jail) holds the daemon's host pid, which is PID 1 of its namespace, runs as 64202 with
no_new_privs, in mount and network namespaces of its own, /proc/PID/root is the jail; its NBD
export on a unix socket in the jail serves the image (a write, read back; QMP answers on the
monitor socket in the jail); RLIMIT_NOFILE is lowered (soft = hard) and RLIMIT_NPROC is 512; an
fd its parent left open is gone; SIGTERM ends it, its pid file and sockets go. A host path
outside the jail is refused, naming it and the jail. Needs root with CAP_SYS_ADMIN (skips
otherwise).
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import time

from vmtest import Qmp, tmpdir

daemon = sys.argv[1]
if os.geteuid() != 0:
    print("SKIP: --jail needs root")
    sys.exit(77)
if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
    print("SKIP: cannot make a mount namespace here (no CAP_SYS_ADMIN)")
    sys.exit(77)

UID = GID = 64202
tmp = tmpdir()
os.chmod(tmp, 0o755)
jail = os.path.join(tmp, "jail")
os.mkdir(jail, 0o755)
img = os.path.join(jail, "img.raw")
with open(img, "wb") as f:
    f.write(b"\x11" * (16 << 20))
for p in (jail, img):
    os.chown(p, UID, GID)
env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def field(pid, name):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].split()
    return None


def nbd_rw(sock_path):
    """A fixed-newstyle handshake for export 'f', a 4 KiB write at 1 MiB and its read-back."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock_path)

    def recv(n):
        b = b""
        while len(b) < n:
            chunk = s.recv(n - len(b))
            if not chunk:
                raise EOFError("the server hung up")
            b += chunk
        return b

    magic, opt, flags = struct.unpack(">QQH", recv(18))
    if magic != 0x4e42444d41474943 or opt != 0x49484156454F5054:
        fail(f"NBD greeting {magic:#x} {opt:#x}")
    s.sendall(struct.pack(">I", 1))  # NBD_FLAG_C_FIXED_NEWSTYLE
    name = b"f"
    s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, len(name)) + name)  # EXPORT_NAME
    size, _ = struct.unpack(">QH", recv(10))
    recv(124)
    data = bytes(range(256)) * 16
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 1, 1 << 20, len(data)) + data)
    if struct.unpack(">IIQ", recv(16))[1] != 0:
        fail("NBD write failed")
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 2, 1 << 20, len(data)))
    magic, err, handle = struct.unpack(">IIQ", recv(16))
    if err or recv(len(data)) != data:
        fail("NBD read-back differs")
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 3, 0, 0))  # DISC
    s.close()
    return size


stray = os.open(os.path.join(tmp, "stray"), os.O_RDWR | os.O_CREAT, 0o600)
args = [daemon, "--jail", jail, "--uid", str(UID), "--gid", str(GID), "--new-pid-ns",
        "--new-net-ns", "--blockdev", "driver=file,node-name=f,filename=/img.raw",
        "--nbd-server", "addr.type=unix,addr.path=/nbd.sock",
        "--export", "nbd,id=e,node-name=f,writable=on",
        "--chardev", "socket,id=m,path=/qmp.sock,server=on,wait=off", "--monitor", "chardev=m",
        "--pidfile", "/sd.pid", "--daemonize"]
r = subprocess.run(args, capture_output=True, text=True, timeout=60, pass_fds=(stray,), env=env)
os.close(stray)
if r.returncode != 0:
    fail(f"--daemonize in the jail: status {r.returncode}: {r.stdout}{r.stderr}")
pid = int(open(os.path.join(jail, "sd.pid")).read())
try:
    if field(pid, "NSpid") != [str(pid), "1"]:
        fail(f"the pid file's {pid} is not PID 1 of a namespace: NSpid {field(pid, 'NSpid')}")
    if field(pid, "Uid") != [str(UID)] * 4 or field(pid, "NoNewPrivs") != ["1"]:
        fail(f"uid {field(pid, 'Uid')}, NoNewPrivs {field(pid, 'NoNewPrivs')}")
    for ns in ("mnt", "net"):
        if os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}"):
            fail(f"the daemon shares our {ns} namespace")
    root, ours = os.stat(f"/proc/{pid}/root"), os.stat(jail)
    if (root.st_dev, root.st_ino) != (ours.st_dev, ours.st_ino):
        fail("/proc/PID/root is not the jail directory")
    if nbd_rw(os.path.join(jail, "nbd.sock")) != 16 << 20:
        fail("the export's size")
    with open(img, "rb") as f:
        f.seek(1 << 20)
        if f.read(4096) != bytes(range(256)) * 16:
            fail("the write did not reach the image")
    qmp = Qmp(os.path.join(jail, "qmp.sock"))
    if "return" not in qmp.execute("query-block-exports"):
        fail("QMP in the jail")
    targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    if any(t.endswith("/stray") for t in targets):
        fail(f"the fd its parent left open is still there: {targets}")
    limits = {line[:26].strip(): line[26:].split()[:2] for line in open(f"/proc/{pid}/limits")}
    nofile, nproc = limits["Max open files"], limits["Max processes"]
    if nofile[0] != nofile[1] or int(nofile[0]) > len(targets) + 64 + 1024:
        fail(f"Max open files {nofile} with {len(targets)} fds")
    if nproc != ["512", "512"]:
        fail(f"Max processes {nproc}")
    print(f"ok: jailed daemon pid {pid} (PID 1 inside) as 64202 serves NBD and QMP from the "
          f"jail, NOFILE {nofile[0]}, NPROC {nproc[0]}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    left = sorted(os.listdir(jail))
    if left != ["dev", "img.raw"]:
        fail(f"after SIGTERM the jail holds {left}")
finally:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

outside = os.path.join(tmp, "outside.raw")
with open(outside, "wb") as f:
    f.truncate(1 << 20)
r = subprocess.run([daemon, "--jail", jail, "--uid", str(UID), "--gid", str(GID), "--blockdev",
                    f"driver=file,node-name=f,filename={outside}"],
                   capture_output=True, text=True, timeout=60, env=env)
want = f"--jail {jail} (its paths are inside it): --blockdev: could not open '{outside}'"
if r.returncode != 1 or want not in r.stderr:
    fail(f"a host path outside the jail: status {r.returncode}: {r.stderr}")
print(f"ok: refused: {r.stderr.strip()}")
print("PASS: vireo-storage-daemon --jail")
