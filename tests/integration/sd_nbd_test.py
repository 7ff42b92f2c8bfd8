#!/usr/bin/env python3
"""sd_nbd_test.py DAEMON: vireo-storage-daemon's NBD exports, from its command line and QMP.

--nbd-server on a unix socket with a --export of a qcow2 node (writable) and one of a raw node
(read-only, on an --object iothread): nbdinfo --list shows both with their names and modes;
query-block-exports answers QEMU's BlockExportInfo; qemu-io writes through the writable one and
is refused by the read-only one. Over QMP: block-export-add of a node with two dirty bitmaps
(--map=qemu:dirty-bitmap:NAME of each shows a write at its granularity), block-export-del refused in mode safe while a client
is connected and done in mode hard, each with BLOCK_EXPORT_DELETED; nbd-server-stop (events for
the exports left), nbd-server-start on TCP and an export there (qemu-img compare over nbd://);
blockdev-mirror of an exported node pivots the export onto the target (query-block-exports names
it, writes reach the target's file). An encrypted qcow2 (--object secret, file=) is exported in
the clear: qemu-io reads what qemu-io wrote into it with the passphrase, and what it writes
through the export qemu-io reads back with the passphrase afterwards. Refusals by name: a second server, an export without a
server, an unknown node, iothread or type. SIGTERM right after a client's write: status 0, the
write in the image, qemu-img check clean.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys

from vmtest import Daemon, need_qemu_tools, run, tmpdir

daemon = sys.argv[1]
need_qemu_tools()
if not shutil.which("nbdinfo"):
    print("SKIP: nbdinfo is not installed (Debian: libnbd-bin)")
    sys.exit(77)
tmp = tmpdir()


def path(name):
    return os.path.join(tmp, name)


nbd_sock = path("nbd.sock")


def uri(name):
    return f"nbd+unix:///{name}?socket={nbd_sock}"


run("qemu-img", "create", "-q", "-f", "qcow2", path("d.qcow2"), "16M")
run("qemu-io", "-c", "write -P 0x11 1M 1M", path("d.qcow2"))
with open(path("r.raw"), "wb") as f:
    f.write(b"\x22" * (4 << 20))
with open(path("t.raw"), "wb") as f:
    f.truncate(16 << 20)
with open(path("pw"), "w") as f:
    f.write("sesame")
secret = ["--object", f"secret,id=s0,file={path('pw')}"]
enc_opts = f"driver=qcow2,encrypt.key-secret=s0,file.filename={path('e.qcow2')}"
run("qemu-img", "create", "-q", "-f", "qcow2", *secret, "-o",
    "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10", path("e.qcow2"), "8M")
run("qemu-io", *secret, "--image-opts", "-c", "write -P 0x5a 1M 64k", enc_opts)

d = Daemon(daemon, [
    "--object", "iothread,id=io1,poll-max-ns=0", *secret,
    "--blockdev", f"driver=qcow2,node-name=c0,encrypt.key-secret=s0,file.driver=file,"
                  f"file.filename={path('e.qcow2')}",
    "--blockdev", f"driver=qcow2,node-name=d0,file.driver=file,file.filename={path('d.qcow2')}",
    "--blockdev", f"driver=raw,node-name=r0,read-only=on,file.driver=file,"
                  f"file.filename={path('r.raw')}",
    "--nbd-server", f"addr.type=unix,addr.path={nbd_sock},max-connections=8",
    "--export", "type=nbd,id=e0,node-name=d0,name=disk,writable=on",
    "--export", "nbd,id=e1,node-name=r0,iothread=io1,description=the raw one",
], path("qmp.sock"))
qmp = d.qmp

lst = run("nbdinfo", "--list", f"nbd+unix:///?socket={nbd_sock}")
if 'export="disk"' not in lst or 'export="r0"' not in lst or "the raw one" not in lst:
    d.fail(f"nbdinfo --list:\n{lst}")
if d.ok("query-block-exports") != [
        {"id": "e0", "type": "nbd", "node-name": "d0", "shutting-down": False},
        {"id": "e1", "type": "nbd", "node-name": "r0", "shutting-down": False}]:
    d.fail(f"query-block-exports: {d.ok('query-block-exports')}")
run("qemu-io", "-f", "raw", "-c", "write -P 0x33 4M 64k", "-c", "read -P 0x11 1M 1M", uri("disk"))
r = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x44 0 4k", uri("r0")],
                   capture_output=True, text=True)
if "wrote" in r.stdout:
    d.fail(f"a write through the read-only export succeeded: {r.stdout}")
run("qemu-io", "-r", "-f", "raw", "-c", "read -P 0x22 0 4M", uri("r0"))

# an encrypted image, exported in the clear
d.ok("block-export-add", type="nbd", id="ec", **{"node-name": "c0"}, name="enc", writable=True)
run("qemu-io", "-f", "raw", "-c", "read -P 0x5a 1M 64k", "-c", "read -P 0 0 1M",
    "-c", "write -P 0xa5 3M 4k", uri("enc"))
d.ok("block-export-del", id="ec")
qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=10)

# an export with a dirty bitmap, added over QMP
d.ok("block-dirty-bitmap-add", node="d0", name="b0")
d.ok("block-dirty-bitmap-add", node="d0", name="b1", granularity=1 << 20)
d.ok("block-export-add", type="nbd", id="e2", **{"node-name": "d0"}, name="tracked",
     writable=True, bitmaps=["b0", "b1"])
run("qemu-io", "-f", "raw", "-c", "write -P 0x55 8M 4k", uri("tracked"))
for name, gran in (("b0", 65536), ("b1", 1 << 20)):  # each bitmap its own context
    m = run("nbdinfo", f"--map=qemu:dirty-bitmap:{name}", uri("tracked"))
    dirty = [line.split() for line in m.splitlines() if line.split()[2] == "1"]
    if [(int(s), int(n)) for s, n, *_ in dirty] != [(8 << 20, gran)]:
        d.fail(f"qemu:dirty-bitmap:{name} after a 4 KiB write at 8 MiB:\n{m}")
ctx = run("nbdinfo", "--list", "--content", uri("tracked"))
if "qemu:dirty-bitmap:b0" not in ctx or "qemu:dirty-bitmap:b1" not in ctx:
    d.fail(f"the export's metadata contexts:\n{ctx}")

# block-export-del: safe refused while a client is connected, hard disconnects it
client = subprocess.Popen(["qemu-io", "-f", "raw", uri("tracked")], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
client.stdin.write("read -P 0x55 8M 4k\n")
client.stdin.flush()
if "read 4096/4096" not in client.stdout.readline():
    d.fail("the interactive qemu-io client did not read")
r = qmp.execute("block-export-del", id="e2")
if "error" not in r:
    d.fail(f"block-export-del (safe) with a client connected: {r}")
d.ok("block-export-del", id="e2", mode="hard")
e = qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=10)
if e["data"] != {"id": "e2"}:
    d.fail(f"BLOCK_EXPORT_DELETED: {e}")
client.stdin.close()
client.wait(timeout=20)
d.refused("block-export-del", "'e2'", id="e2")

# refusals by name
d.refused("nbd-server-start", "already running",
          addr={"type": "unix", "data": {"path": path("other.sock")}})
r = qmp.execute("block-export-add", type="nbd", id="x", **{"node-name": "nope"})
if "node-name='nope'" not in r.get("error", {}).get("desc", ""):
    d.fail(f"block-export-add of no node: {r}")
d.refused("block-export-add", "iothread 'io9' not found", type="nbd", id="x",
          **{"node-name": "d0"}, iothread="io9")
d.refused("block-export-add", "type 'fuse' is not supported", type="fuse", id="x",
          **{"node-name": "d0"})
d.refused("block-export-add", "unknown key 'bogus'", type="nbd", id="x", **{"node-name": "d0"},
          bogus=1)

# nbd-server-stop: the exports go (an event each); then a server on TCP
d.ok("nbd-server-stop")
gone = sorted(qmp.wait_event("BLOCK_EXPORT_DELETED")["data"]["id"] for _ in range(2))
if gone != ["e0", "e1"] or d.ok("query-block-exports") != []:
    d.fail(f"after nbd-server-stop: deleted {gone}, exports {d.ok('query-block-exports')}")
d.refused("block-export-add", "NBD server not running", type="nbd", id="x",
          **{"node-name": "d0"})
d.refused("nbd-server-stop", "NBD server not running")
with socket.socket() as s:  # a free port
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
d.ok("nbd-server-start", addr={"type": "inet", "data": {"host": "127.0.0.1", "port": str(port)}})
d.ok("block-export-add", type="nbd", id="e3", **{"node-name": "d0"}, writable=True)
run("qemu-img", "convert", "-O", "raw", f"nbd://127.0.0.1:{port}/d0", path("copy.raw"))
run("qemu-img", "compare", "-U", "-F", "raw", path("d.qcow2"), path("copy.raw"))

# a mirror's pivot moves the export onto the target
d.ok("blockdev-add", driver="raw", **{"node-name": "t0"},
     file={"driver": "file", "filename": path("t.raw")})
d.ok("blockdev-mirror", device="d0", target="t0", sync="full", **{"job-id": "m0"})
qmp.wait_event("BLOCK_JOB_READY", timeout=30)
d.ok("job-complete", id="m0")
e = qmp.wait_event("BLOCK_JOB_COMPLETED", timeout=30)
if "error" in e["data"]:
    d.fail(f"the mirror failed: {e}")
if [x["node-name"] for x in d.ok("query-block-exports")] != ["t0"]:
    d.fail(f"the export after the pivot: {d.ok('query-block-exports')}")
run("qemu-io", "-f", "raw", "-c", "write -P 0x66 2M 64k", f"nbd://127.0.0.1:{port}/d0")

# SIGTERM right after the write: status 0, the write in the target's file
d.proc.send_signal(signal.SIGTERM)
if d.proc.wait(timeout=30) != 0:
    d.fail(f"status {d.proc.returncode} after SIGTERM")
run("qemu-io", "-r", "-f", "raw", "-c", "read -P 0x66 2M 64k", "-c", "read -P 0x11 1M 1M",
    "-c", "read -P 0x33 4M 64k", path("t.raw"))
run("qemu-img", "check", path("d.qcow2"))
run("qemu-io", "-r", *secret, "--image-opts", "-c", "read -P 0xa5 3M 4k", "-c",
    "read -P 0x5a 1M 64k", enc_opts)
print("PASS")
