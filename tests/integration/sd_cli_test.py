#!/usr/bin/env python3
"""sd_cli_test.py DAEMON: vireo-storage-daemon refuses bad options, naming them, with status 1.

Each bad command line must end at once with status 1 and a message on stderr that starts with
"vireo-storage-daemon: " and names the option (and what is wrong with it); --help and --version
exit 0; nothing is left running or listening.
"""
import os
import subprocess
import sys

from vmtest import tmpdir

daemon = sys.argv[1]
tmp = tmpdir()
img = os.path.join(tmp, "a.raw")
with open(img, "wb") as f:
    f.truncate(1 << 20)
sock = os.path.join(tmp, "m.sock")
chardev = f"socket,id=m,path={sock},server=on,wait=off"
node = f"driver=file,node-name=f0,filename={img}"
nbd = os.path.join(tmp, "nbd.sock")
server = ["--nbd-server", f"addr.type=unix,addr.path={nbd}"]

# (arguments, what stderr must say)
bad = [
    (["--bogus"], "unknown option '--bogus'"),
    (["--blockdev"], "option '--blockdev' needs a value"),
    (["stray"], "unexpected argument 'stray'"),
    (["--blockdev", "driver=file,node-name=f0"], "--blockdev"),
    (["--blockdev", f"{node},bogus=1"], "unknown key 'bogus'"),
    (["--blockdev", "driver=qed,node-name=v0"], "driver 'qed' is not supported"),
    (["--blockdev", f"driver=file,node-name=f0,filename={tmp}/nope"], "nope"),
    (["--blockdev", node, "--blockdev", node], "node-name 'f0' is already in use"),
    (["--blockdev", "{not json"], "--blockdev"),
    (["--object", "memory-backend-ram,id=r"], "--object: type 'memory-backend-ram' is not"),
    (["--object", f"tls-creds-psk,id=t,endpoint=both,dir={tmp}"],
     "--object: endpoint 'both' is not server or client"),
    (["--object", f"tls-creds-psk,id=t,dir={tmp},username=u"], f"{tmp}/keys.psk"),  # a client's
    (["--object", "authz-simple,id=a"], "--object: Parameter 'identity' is missing"),
    (["--object", "tls-creds-psk,id=t,endpoint=server"], "--object: dir= "),
    (["--object", f"tls-creds-psk,endpoint=server,dir={tmp}"], "--object: id ''"),
    (["--object", f"tls-creds-psk,id=t,endpoint=server,dir={tmp}"], f"{tmp}/keys.psk"),
    (["--object", f"tls-creds-x509,id=t,endpoint=server,dir={tmp}"], f"{tmp}/ca-cert.pem"),
    (["--object", f"tls-creds-x509,id=t,endpoint=server,dir={tmp},priority=NORMAL"],
     "--object: unknown key 'priority'"),
    (["--object", f"tls-creds-psk,id=t,endpoint=server,dir={tmp},verify-peer=on"],
     "--object: unknown key 'verify-peer'"),
    (["--object", "iothread"], "--object: id ''"),
    (["--object", "iothread,id=io0", "--object", "iothread,id=io0"],
     "--object: id 'io0' is already in use"),
    (["--object", "iothread,id=io0,poll-max-ns=x"], "poll-max-ns"),
    (["--object", "throttle-group,id=g,limits.iops-totl=1"], "iops-totl"),
    (["--chardev", "file,id=m,path=/dev/null"], "--chardev: backend 'file' is not supported"),
    (["--chardev", "socket,path=/x,server=on"], "--chardev: id ''"),
    (["--chardev", "socket,id=m,server=on"], "--chardev: path= is missing"),
    (["--chardev", "socket,id=m,path=/x"], "--chardev: server=on is needed"),
    (["--chardev", "socket,id=m,path=/x,server=on,wait=on"], "--chardev: wait=on"),
    (["--chardev", "socket,id=m,path=/x,server=on,telnet=on"], "--chardev: unknown key 'telnet'"),
    (["--chardev", chardev, "--chardev", chardev], "--chardev: id 'm' is already in use"),
    (["--monitor", "chardev=m"], "--monitor: chardev 'm' not found"),
    (["--chardev", chardev, "--monitor", "m", "--monitor", "m"],
     "--monitor: chardev 'm' is already used"),
    (["--chardev", chardev, "--monitor", "m,mode=readline"], "--monitor: mode 'readline'"),
    (["--chardev", chardev, "--monitor", "m,pretty=on"], "--monitor: pretty=on"),
    (["--monitor", "mode=control"], "--monitor: Parameter 'chardev' is missing"),
    (["--chardev", f"socket,id=m,path={tmp}/no/such/dir/s,server=on", "--monitor", "m"],
     "--monitor"),
    (["--pidfile", f"{tmp}/no/such/dir/pid"], "--pidfile: cannot open"),
    (["--nbd-server", "max-connections=2"], "--nbd-server: addr.type is missing"),
    (["--nbd-server", "addr.type=fd,addr.str=3"], "--nbd-server: addr: type 'fd' is not"),
    (["--nbd-server", "addr.type=unix"], "--nbd-server: addr: Parameter 'path' is missing"),
    (["--nbd-server", "addr.type=unix,addr.path=/x,addr.tight=on"],
     "--nbd-server: addr: unknown key 'tight'"),
    (["--nbd-server", f"addr.type=unix,addr.path={nbd},max-connections=x"],
     "--nbd-server: key 'max-connections'"),
    (["--nbd-server", f"addr.type=unix,addr.path={nbd},handshake-max-seconds=0"],
     "--nbd-server: handshake-max-seconds"),
    (["--nbd-server", f"addr.type=unix,addr.path={nbd},tls-creds=tls0"],
     "--nbd-server: NBD server: TLS credentials 'tls0' not found"),
    (["--nbd-server", f"addr.type=unix,addr.path={nbd},tls-authz=a0"], "--nbd-server"),
    (["--nbd-server", f"addr.type=unix,addr.path={nbd},bogus=1"],
     "--nbd-server: unknown key 'bogus'"),
    (["--nbd-server", f"addr.type=unix,addr.path={tmp}/no/such/dir/s"], "--nbd-server"),
    (["--nbd-server", f"addr.type=unix,addr.path={nbd}", "--nbd-server",
      f"addr.type=unix,addr.path={nbd}2"], "--nbd-server: NBD server already running"),
    (["--blockdev", node, "--export", "nbd,id=e,node-name=f0"],
     "--export: NBD server not running"),
    (["--blockdev", node, *server, "--export", "fuse,id=e,node-name=f0"],
     "--export: type 'fuse' is not supported"),
    (["--blockdev", node, *server, "--export", "nbd,node-name=f0"],
     "--export: Parameter 'id' is missing"),
    (["--blockdev", node, *server, "--export", "nbd,id=e,node-name=nope"], "--export"),
    (["--blockdev", node, *server, "--export", "nbd,id=e,node-name=f0,iothread=io9"],
     "--export: iothread 'io9' not found"),
    (["--blockdev", node, *server, "--export", "nbd,id=e,node-name=f0,writethrough=on"],
     "--export: writethrough=on is not supported"),
    (["--blockdev", node, *server, "--export", "nbd,id=e,node-name=f0,allocation-depth=on"],
     "--export: allocation-depth=on is not supported"),
    (["--blockdev", node, *server, "--export", "nbd,id=e,node-name=f0,bitmap=b0"], "--export"),
    (["--blockdev", node, *server, "--export",
      "nbd,id=e,node-name=f0," + ",".join(f"bitmaps.{i}=b{i}" for i in range(9))],
     "--export: bitmaps: 9 bitmaps, an export shows at most 8"),
    (["--blockdev", node, *server, "--export", "nbd,id=e,node-name=f0,bitmaps.0=a,bitmaps.1=b"],
     "--export: Dirty bitmap 'a' not found"),
    (["--blockdev", node, *server, "--export", "nbd,id=e,node-name=f0",
      "--export", "nbd,id=e,node-name=f0,name=other"], "--export"),
    (["--pidfile", ""], "--pidfile: empty path"),
]
failed = 0
for args, want in bad:
    try:
        r = subprocess.run([daemon, *args], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        print(f"FAIL: {args}: still running after 20 s")
        failed += 1
        continue
    if r.returncode != 1 or want not in r.stderr or \
            not r.stderr.startswith("vireo-storage-daemon: "):
        print(f"FAIL: {args}: status {r.returncode}, stderr {r.stderr!r}; wanted 1 and "
              f"'{want}'")
        failed += 1
for args in (["--help"], ["-h"], ["--version"], ["-V"]):
    r = subprocess.run([daemon, *args], capture_output=True, text=True, timeout=20)
    if r.returncode != 0 or r.stderr or "vireo-storage-daemon" not in r.stdout:
        print(f"FAIL: {args}: status {r.returncode}, {r.stdout!r} {r.stderr!r}")
        failed += 1
for left in (sock, nbd):
    if os.path.exists(left):
        print(f"FAIL: a refused command line left {left}")
        failed += 1
if failed:
    sys.exit(1)
print(f"PASS: {len(bad)} bad command lines refused by name")
