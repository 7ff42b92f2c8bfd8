#!/usr/bin/env python3
"""sd_nbd_tls_authz_test.py DAEMON: tls-authz on the NBD server, the NBD client's TLS over QMP.

Two vireo-storage-daemons and certtool's certificates: a CA, a server (localhost), a client
whose distinguished name an authz-simple object names, and a client another CA signed.
  - the server: --object tls-creds-x509 (verify-peer) and authz-simple, QMP's nbd-server-start
    with tls-creds and tls-authz on TCP, a writable export;
  - the client daemon: blockdev-add driver=nbd with tls-creds (x509, endpoint=client) makes a
    node over the export, and blockdev-mirror copies a local image onto it (a storage
    migration over TLS): the server's image then holds the source's bytes;
  - refused, each with its message: blockdev-add with the certificate another CA signed (the
    server's alert: GnuTLS does not show a certificate the server's CA did not sign, and the
    server requires one), nbd-server-start with an unknown authz object, with
    tls-authz over tls-creds-psk or verify-peer=off, client credentials as the server's;
  - nbdinfo (libnbd), when installed: served with the named certificate, refused without one;
  - --nbd-server tls-authz= on the command line refuses the client another identity names.
Needs certtool (gnutls-bin); skips without it.
"""
import os
import shutil
import socket
import subprocess
import sys
import time

from vmtest import Daemon, run, tmpdir

daemon = sys.argv[1]
if not shutil.which("certtool"):
    print("SKIP: certtool is not installed (Debian: gnutls-bin)")
    sys.exit(77)
tmp = tmpdir()


def path(*names):
    return os.path.join(tmp, *names)


def cert(name, template, ca=None):
    """certtool: NAME-key.pem and NAME-cert.pem (ECDSA: quick to make), signed by CA."""
    run("certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile",
        path(f"{name}-key.pem"))
    with open(path(f"{name}.info"), "w") as f:
        f.write(template + "expiration_days = 2\n")
    sign = (["--generate-self-signed"] if ca is None else
            ["--generate-certificate", "--load-ca-certificate", path(f"{ca}-cert.pem"),
             "--load-ca-privkey", path(f"{ca}-key.pem")])
    run("certtool", *sign, "--load-privkey", path(f"{name}-key.pem"), "--template",
        path(f"{name}.info"), "--outfile", path(f"{name}-cert.pem"))


def files(d, **names):
    os.mkdir(path(d))
    for dst, src in names.items():
        shutil.copy(path(src), path(d, dst.replace("_", "-") + ".pem"))


cert("ca", "cn = vireo test CA\nca\ncert_signing_key\n")
cert("ca2", "cn = another CA\nca\ncert_signing_key\n")
cert("server", "cn = localhost\ndns_name = localhost\ntls_www_server\nsigning_key\n", "ca")
cert("client", "country = GB\norganization = Vireo Test\ncn = migration.example.com\n"
     "tls_www_client\nsigning_key\n", "ca")
cert("mallory", "cn = mallory.example.com\ntls_www_client\nsigning_key\n", "ca2")
files("srv", ca_cert="ca-cert.pem", server_cert="server-cert.pem", server_key="server-key.pem")
files("cli", ca_cert="ca-cert.pem", client_cert="client-cert.pem", client_key="client-key.pem")
files("other", ca_cert="ca-cert.pem", client_cert="mallory-cert.pem",
      client_key="mallory-key.pem")
files("nocert", ca_cert="ca-cert.pem")
os.mkdir(path("psk"))
with open(path("psk", "keys.psk"), "w") as f:
    f.write("alice:" + "ab" * 32 + "\n")
# as gnutls_x509_crt_get_dn prints it, which QEMU's tls-authz and ours compare
DN = "C=GB,O=Vireo Test,CN=migration.example.com"

MiB = 1 << 20
target, source = path("target.raw"), path("source.raw")
with open(target, "wb") as f:
    f.truncate(8 * MiB)
with open(source, "wb") as f:
    f.write(os.urandom(8 * MiB))
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

srv = Daemon(daemon, [
    "--object", f"tls-creds-x509,id=tls0,endpoint=server,dir={path('srv')}",
    "--object", f"tls-creds-x509,id=open0,endpoint=server,dir={path('srv')},verify-peer=off",
    "--object", f"tls-creds-psk,id=psk0,endpoint=server,dir={path('psk')}",
    "--object", f"tls-creds-x509,id=cli0,endpoint=client,dir={path('cli')}",
    "--object", "authz-simple,id=auth0,identity=" + DN.replace(",", ",,"),
    "--blockdev", f"driver=raw,node-name=t0,file.driver=file,file.filename={target}",
], path("srv.sock"))
addr = {"type": "inet", "data": {"host": "127.0.0.1", "port": str(port)}}
for creds, authz, want in (("tls0", "nope", "no authz object 'nope'"),
                           ("psk0", "auth0", "tls-creds-psk"),
                           ("open0", "auth0", "verify-peer=off"),
                           ("cli0", None, "endpoint=client")):
    args = {"tls-creds": creds}
    if authz:
        args["tls-authz"] = authz
    srv.refused("nbd-server-start", want, addr=addr, **args)
srv.ok("nbd-server-start", addr=addr, **{"tls-creds": "tls0", "tls-authz": "auth0"})
srv.ok("block-export-add", type="nbd", id="e0", **{"node-name": "t0", "name": "disk",
                                                 "writable": True})

cli = Daemon(daemon, [
    "--object", f"tls-creds-x509,id=tls0,endpoint=client,dir={path('cli')}",
    "--object", f"tls-creds-x509,id=bad0,endpoint=client,dir={path('other')}",
    "--blockdev", f"driver=raw,node-name=src,file.driver=file,file.filename={source}",
], path("cli.sock"))
server = {"type": "inet", "host": "localhost", "port": str(port)}
cli.refused("blockdev-add", "the server sent the alert", driver="nbd", **{"node-name": "bad"},
            server=server, export="disk", **{"tls-creds": "bad0"})
cli.ok("blockdev-add", driver="nbd", **{"node-name": "remote"}, server=server, export="disk",
       **{"tls-creds": "tls0"})
cli.ok("blockdev-mirror", **{"job-id": "m0"}, device="src", target="remote", sync="full")
cli.qmp.wait_event("BLOCK_JOB_READY", timeout=120)
cli.ok("job-complete", id="m0")
cli.qmp.wait_event("BLOCK_JOB_COMPLETED", timeout=60)
cli.quit()
srv.ok("nbd-server-stop")
if open(target, "rb").read() != open(source, "rb").read():
    srv.fail("the image behind the TLS export does not hold what the mirror copied")
print("ok: blockdev-add over TLS, a mirror onto it, tls-authz letting the client in")

if shutil.which("nbdinfo"):
    srv.ok("nbd-server-start", addr=addr, **{"tls-creds": "tls0", "tls-authz": "auth0"})
    srv.ok("block-export-add", type="nbd", id="e1", **{"node-name": "t0", "name": "disk"})
    url = f"nbds://localhost:{port}/disk?tls-certificates="
    out = run("nbdinfo", url + path("cli"))
    if "export-size: 8388608" not in out:
        srv.fail(f"nbdinfo with the named certificate: {out}")
    for d in ("nocert", "other"):
        r = subprocess.run(["nbdinfo", url + path(d)], capture_output=True, text=True,
                           timeout=30)
        if r.returncode == 0:
            srv.fail(f"nbdinfo with {d} was served: {r.stdout}")
    srv.ok("nbd-server-stop")
    print("ok: nbdinfo served with the named certificate, refused without one or another's")
srv.quit()

# the command line's tls-authz; a client another identity names is refused, and the log says why
sock = path("nbd.sock")
d = subprocess.Popen([daemon, "--object",
                      f"tls-creds-x509,id=tls0,endpoint=server,dir={path('srv')}",
                      "--object", "authz-simple,id=a0,identity=CN=someone.else",
                      "--blockdev", f"driver=raw,node-name=t0,file.driver=file,"
                      f"file.filename={target}",
                      "--nbd-server", f"addr.type=unix,addr.path={sock},tls-creds=tls0,"
                      "tls-authz=a0",
                      "--export", "nbd,id=e0,node-name=t0,name=disk"],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
for _ in range(200):
    if os.path.exists(sock):
        break
    time.sleep(0.05)
vireo_img = os.path.join(os.path.dirname(os.path.abspath(daemon)), "vireo-img")
r = subprocess.run([vireo_img, "info", "--object",
                    f"tls-creds-x509,id=c0,endpoint=client,dir={path('cli')}", "--image-opts",
                    f"driver=nbd,server.type=unix,server.path={sock},export=disk,tls-creds=c0"],
                   capture_output=True, text=True, timeout=30)
d.terminate()
log = d.communicate(timeout=30)[0]
if r.returncode == 0 or "Access was denied" not in r.stderr:
    print(f"FAIL: --nbd-server tls-authz=: vireo-img was not refused: {r.stdout}{r.stderr}")
    sys.exit(1)
if f"'{DN}' is not allowed by tls-authz 'a0'" not in log:
    print(f"FAIL: the daemon's log does not name the refused certificate: {log}")
    sys.exit(1)
print("PASS")
