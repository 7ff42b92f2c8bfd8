#!/usr/bin/env python3
"""nbd_tls_guest_test.py VIREO GUEST DAEMON: the test guest on a disk that is an NBD export over TLS.

vireo (--sandbox on) runs the test guest's blk and blk-smp cases (writes in flight on 2 queues
served by 2 iothreads, from 2 vCPUs, flushes, discards, write-zeroes, reads back) on a
--blockdev raw over driver=nbd with tls-creds, twice:
  1. x509: qemu-nbd --tls-creds exports a raw image on TCP; vireo's client checks the server's
     certificate (made by certtool, the CA's) against the CA and the host name it dialled
     (localhost); afterwards qemu-img compare, a TLS client of QEMU's, reads through the export
     the bytes the guest left in the file;
  2. pre-shared keys (psktool's keys.psk): vireo-storage-daemon exports the image on a unix
     socket with tls-creds-psk.
The guest must pass both (exit status 33). Needs qemu-nbd and qemu-img (qemu-utils), certtool
and psktool (gnutls-bin); skips without them. Arguments: VIREO GUEST VIREO_STORAGE_DAEMON.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import need_qemu_tools, run, setup  # noqa: E402

vireo, guest, tmp = setup()
daemon = sys.argv[3]
need_qemu_tools()
for tool in ("qemu-nbd", "certtool", "psktool"):
    if not shutil.which(tool):
        print(f"SKIP: {tool} is not installed (qemu-utils, gnutls-bin)")
        sys.exit(77)
procs = []


def path(*names):
    return os.path.join(tmp, *names)


def cert(name, template, ca=None):
    """certtool: NAME-key.pem and NAME-cert.pem, signed by CA (or self-signed)."""
    run("certtool", "--generate-privkey", "--outfile", path(f"{name}-key.pem"))
    with open(path(f"{name}.info"), "w") as f:
        f.write(template + "expiration_days = 2\n")
    sign = (["--generate-self-signed"] if ca is None else
            ["--generate-certificate", "--load-ca-certificate", path(f"{ca}-cert.pem"),
             "--load-ca-privkey", path(f"{ca}-key.pem")])
    run("certtool", *sign, "--load-privkey", path(f"{name}-key.pem"), "--template",
        path(f"{name}.info"), "--outfile", path(f"{name}-cert.pem"))


def wait_for(what, probe):
    for _ in range(200):
        if probe():
            return
        time.sleep(0.05)
    print(f"FAIL: {what} does not listen")
    sys.exit(1)


def tcp_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def guest_run(name, blockdev, obj):
    """The guest's blk and blk-smp cases on BLOCKDEV (TLS credentials OBJ): must pass."""
    log = path(f"serial-{name}.log")
    cmd = [vireo, "run", "--sandbox", "on", "--kernel", guest, "--memory", "128M", "--cpus", "2",
           "--serial", f"file:{log}", "--object", obj, "--blockdev", blockdev,
           "--object", "iothread,id=io0", "--object", "iothread,id=io1", "--device",
           "virtio-blk-pci,drive=disk,id=disk0,num-queues=2,iothread-vq-mapping=io0:io1",
           "--cmdline", "blk blk-smp cpus=2 blk-require=1 blk-smp-iters=2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if r.returncode != 33:
        print(f"FAIL: {name}: the guest did not pass (status {r.returncode}): {r.stdout}"
              f"{r.stderr}\n{open(log, errors='replace').read()[-2000:]}")
        stop_all()
        sys.exit(1)
    print(f"ok: {name}: the guest's blk and blk-smp cases pass on a TLS NBD disk")


def stop_all():
    for p in procs:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


cert("ca", "cn = vireo test CA\nca\ncert_signing_key\n")
cert("server", "organization = Vireo Test\ncn = localhost\ndns_name = localhost\n"
     "tls_www_server\nencryption_key\nsigning_key\n", "ca")
for d in ("srv", "cli", "psk"):
    os.mkdir(path(d))
for src, dst in (("ca-cert.pem", "srv/ca-cert.pem"), ("server-cert.pem", "srv/server-cert.pem"),
                 ("server-key.pem", "srv/server-key.pem"), ("ca-cert.pem", "cli/ca-cert.pem")):
    shutil.copy(path(src), path(dst))
run("psktool", "-u", "guest", "-p", path("psk", "keys.psk"))

disk = path("disk.raw")
run("qemu-img", "create", "-q", "-f", "raw", disk, "64M")

# 1. x509: qemu-nbd on TCP, the certificate checked against the CA and "localhost"
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
pidfile = path("qemu-nbd.pid")
run("qemu-nbd", "--fork", f"--pid-file={pidfile}", "-t", "-f", "raw", "--discard=unmap",
    "-x", "disk", "-b", "127.0.0.1", "-p", str(port), "--object",
    f"tls-creds-x509,id=tls0,endpoint=server,dir={path('srv')},verify-peer=off",
    "--tls-creds", "tls0", disk)
procs.append(int(open(pidfile).read()))
wait_for("qemu-nbd", lambda: tcp_open(port))
x509 = f"tls-creds-x509,id=tls0,endpoint=client,dir={path('cli')}"
keys = ["server.type=inet", "server.host=localhost", f"server.port={port}", "export=disk",
        "tls-creds=tls0"]
nbd = ",".join(["driver=nbd", *keys])
guest_run("x509", ",".join(["driver=raw,node-name=disk,file.driver=nbd",
                            *("file." + k for k in keys)]), x509)
snapshot = path("after.raw")
shutil.copyfile(disk, snapshot)
run("qemu-img", "compare", "--object", x509, "--image-opts", nbd,
    f"driver=raw,file.filename={snapshot}")
print("ok: qemu-img reads over TLS what the guest wrote through vireo")
os.kill(procs.pop(), signal.SIGTERM)

# 2. pre-shared keys: vireo-storage-daemon on a unix socket
sock = path("nbd.sock")
sd = subprocess.Popen([daemon, "--object",
                       f"tls-creds-psk,id=tls0,endpoint=server,dir={path('psk')}",
                       "--blockdev", f"driver=raw,node-name=d0,file.driver=file,"
                       f"file.filename={disk}",
                       "--nbd-server", f"addr.type=unix,addr.path={sock},tls-creds=tls0",
                       "--export", "nbd,id=e0,node-name=d0,name=disk,writable=on"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
procs.append(sd.pid)
wait_for("vireo-storage-daemon", lambda: os.path.exists(sock))
guest_run("psk", "driver=raw,node-name=disk,file.driver=nbd,file.server.type=unix,"
          f"file.server.path={sock},file.export=disk,file.tls-creds=tls0",
          f"tls-creds-psk,id=tls0,endpoint=client,dir={path('psk')},username=guest")
sd.terminate()
if sd.wait(timeout=30) != 0:
    print("FAIL: vireo-storage-daemon did not exit 0 on SIGTERM")
    sys.exit(1)
print("PASS: the test guest on TLS NBD disks (x509 from qemu-nbd, PSK from vireo-storage-daemon)")
