#!/usr/bin/env python3
"""sd_nbd_tls_test.py DAEMON: vireo-storage-daemon's NBD server with --object TLS credentials.

--object tls-creds-psk (a keys.psk written here) and --nbd-server ...,tls-creds=ID: nbdinfo
with the user's key reads the export over TLS, a client without TLS and one with another key
are refused, qemu-io writes through it with QEMU's own tls-creds-psk object; the same over QMP
(nbd-server-start with tls-creds) with --object tls-creds-x509 (a CA and a server certificate
made with openssl here, verify-peer=off) and nbdinfo trusting that CA on TCP.
"""
import os
import secrets
import shutil
import socket
import subprocess
import sys

from vmtest import Daemon, need_qemu_tools, run, tmpdir

daemon = sys.argv[1]
need_qemu_tools()
for tool in ("nbdinfo", "openssl"):
    if not shutil.which(tool):
        print(f"SKIP: {tool} is not installed")
        sys.exit(77)
tmp = tmpdir()


def path(name):
    return os.path.join(tmp, name)


os.mkdir(path("psk"))
with open(path("psk/keys.psk"), "w") as f:
    f.write(f"alice:{secrets.token_hex(32)}\n")
os.mkdir(path("other"))
with open(path("other/keys.psk"), "w") as f:
    f.write(f"alice:{secrets.token_hex(32)}\n")
with open(path("r.raw"), "wb") as f:
    f.write(b"\x42" * (1 << 20))
sock = path("nbd.sock")

d = Daemon(daemon, [
    "--object", f"tls-creds-psk,id=tls0,endpoint=server,dir={path('psk')}",
    "--blockdev", f"driver=raw,node-name=r0,file.driver=file,file.filename={path('r.raw')}",
    "--nbd-server", f"addr.type=unix,addr.path={sock},tls-creds=tls0",
    "--export", "nbd,id=e0,node-name=r0,writable=on",
], path("qmp.sock"))

out = run("nbdinfo", f"nbds+unix://alice@/r0?socket={sock}&tls-psk-file={path('psk/keys.psk')}")
if "with TLS" not in out or "export-size: 1048576" not in out:
    d.fail(f"nbdinfo over TLS (PSK):\n{out}")
for what, u in (("without TLS", f"nbd+unix:///r0?socket={sock}"),
                ("with another key",
                 f"nbds+unix://alice@/r0?socket={sock}&tls-psk-file={path('other/keys.psk')}")):
    r = subprocess.run(["nbdinfo", u], capture_output=True, text=True, timeout=30)
    if r.returncode == 0:
        d.fail(f"a client {what} was served: {r.stdout}")
run("qemu-io", "--object", f"tls-creds-psk,id=t,endpoint=client,dir={path('psk')},username=alice",
    "--image-opts", f"driver=nbd,server.type=unix,server.path={sock},export=r0,tls-creds=t",
    "-c", "write -P 0x43 64k 64k", "-c", "read -P 0x43 64k 64k")
d.ok("nbd-server-stop")

# x509: a CA and a server certificate for localhost, the server over QMP on TCP
x = path("x509")
os.mkdir(x)
key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
run("openssl", "req", "-x509", *key, "-keyout", f"{x}/ca-key.pem", "-out", f"{x}/ca-cert.pem",
    "-days", "2", "-subj", "/CN=vireo test CA")
run("openssl", "req", *key, "-keyout", f"{x}/server-key.pem", "-out", f"{x}/server.csr",
    "-subj", "/CN=localhost")
with open(f"{x}/ext.cnf", "w") as f:
    f.write("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
run("openssl", "x509", "-req", "-in", f"{x}/server.csr", "-CA", f"{x}/ca-cert.pem", "-CAkey",
    f"{x}/ca-key.pem", "-CAcreateserial", "-out", f"{x}/server-cert.pem", "-days", "2",
    "-extfile", f"{x}/ext.cnf")
os.mkdir(path("client"))
shutil.copy(f"{x}/ca-cert.pem", path("client/ca-cert.pem"))
d.qmp.execute("quit")
if d.proc.wait(timeout=20) != 0:
    d.fail("the PSK daemon did not exit 0 after quit")

d = Daemon(daemon, [
    "--object", f"tls-creds-x509,id=tls1,endpoint=server,dir={x},verify-peer=off",
    "--blockdev", f"driver=raw,node-name=r0,file.driver=file,file.filename={path('r.raw')}",
], path("qmp.sock"))
with socket.socket() as s:  # a free port
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
d.ok("nbd-server-start", addr={"type": "inet", "data": {"host": "127.0.0.1", "port": str(port)}},
     **{"tls-creds": "tls1"})
d.ok("block-export-add", type="nbd", id="e1", **{"node-name": "r0"})
out = run("nbdinfo", f"nbds://localhost:{port}/r0?tls-certificates={path('client')}")
if "with TLS" not in out:
    d.fail(f"nbdinfo over TLS (x509):\n{out}")
r = subprocess.run(["nbdinfo", f"nbd://127.0.0.1:{port}/r0"], capture_output=True, text=True,
                   timeout=30)
if r.returncode == 0:
    d.fail(f"a client without TLS was served over TCP: {r.stdout}")
d.ok("nbd-server-stop")
d.refused("nbd-server-start", "TLS credentials 'nope' not found",
          addr={"type": "unix", "data": {"path": sock}}, **{"tls-creds": "nope"})
d.quit()
print("PASS")
