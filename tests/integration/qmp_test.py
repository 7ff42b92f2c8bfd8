#!/usr/bin/env python3
"""qmp_test.py VIREO GUEST: the QMP monitor speaks QEMU's protocol and survives bad input.

Starts GUEST (a guest that halts) with --qmp and --cpus 2, then drives the socket like a QMP client.
"""
import json
import os
import socket
import subprocess
import sys
import time

from vmtest import qmp_connect, setup

vireo, guest, tmp = setup()
path = os.path.join(tmp, "qmp.sock")
vm = subprocess.Popen([vireo, "run", "--kernel", guest, "--cpus", "2", "--memory", "64M",
                       "--serial", "none", "--qmp", "unix:" + path + ",server,nowait"],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def fail(msg):
    vm.kill()
    print("FAIL:", msg)
    print(vm.communicate()[0])
    sys.exit(1)


try:
    sock = qmp_connect(path)
except OSError as e:
    fail(str(e))
sock.settimeout(10)
buf = b""


def recv():
    global buf
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("QMP connection closed")
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    return json.loads(line)


def cmd(name, **args):
    msg = {"execute": name, "id": name}
    if args:
        msg["arguments"] = args
    sock.sendall(json.dumps(msg).encode())
    return recv()


greeting = recv()
if "QMP" not in greeting or "version" not in greeting["QMP"]:
    fail(f"bad greeting {greeting}")

r = cmd("query-status")
if r.get("error", {}).get("class") != "CommandNotFound":
    fail(f"command before negotiation was not refused: {r}")
if cmd("qmp_capabilities") != {"return": {}, "id": "qmp_capabilities"}:
    fail("qmp_capabilities did not return {}")

r = cmd("query-status")
if r.get("return", {}).get("running") is not True or r.get("id") != "query-status":
    fail(f"query-status: {r}")
r = cmd("query-cpus-fast")
if len(r.get("return", [])) != 2:
    fail(f"query-cpus-fast should list 2 vCPUs: {r}")
r = cmd("no-such-command")
if r.get("error", {}).get("class") != "CommandNotFound":
    fail(f"unknown command: {r}")

# malformed JSON gets an error answer and the connection keeps working
sock.sendall(b'{"execute": ]\n')
r = recv()
if "error" not in r or "JSON" not in r["error"]["desc"]:
    fail(f"malformed JSON: {r}")
sock.sendall(b'["not", "an", "object"]')
r = recv()
if "error" not in r:
    fail(f"non-object input: {r}")
sock.sendall(b'{"execute": "query-status", "arguments": 5}')
r = recv()
if "error" not in r or "arguments" not in r["error"]["desc"]:
    fail(f"bad arguments: {r}")
if "return" not in cmd("query-kvm"):
    fail("query-kvm after bad input")

r = cmd("system_powerdown")
events = []
while "return" not in r:
    events.append(r)
    r = recv()
if "event" in r:
    events.append(r)

r = cmd("quit")
while "event" in r:
    events.append(r)
    r = recv()
if r != {"return": {}, "id": "quit"}:
    fail(f"quit: {r}")
try:
    while True:
        events.append(recv())
except (EOFError, socket.timeout, ConnectionResetError):
    pass
names = [e.get("event") for e in events]
shutdown = [e for e in events if e.get("event") == "SHUTDOWN"]
if "POWERDOWN" not in names or not shutdown:
    fail(f"expected POWERDOWN and SHUTDOWN events, got {events}")
if shutdown[0]["data"] != {"guest": False, "reason": "host-qmp-quit"}:
    fail(f"SHUTDOWN data: {shutdown[0]}")
status = vm.wait(timeout=20)
if status != 0:
    fail(f"vireo exited {status} after quit")

# an oversized message is refused and the client dropped; the VM keeps running
vm = subprocess.Popen([vireo, "run", "--kernel", guest, "--memory", "64M", "--serial", "none",
                       "--qmp", "unix:" + path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                      text=True)
for _ in range(100):
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(path)
        break
    except OSError:
        time.sleep(0.05)
sock.settimeout(10)
buf = b""
recv()
cmd("qmp_capabilities")
sock.sendall(b'{"execute": "' + b"x" * 70000)
r = recv()
if "error" not in r or "longer" not in r["error"]["desc"]:
    fail(f"oversized message: {r}")
sock.close()
if vm.poll() is not None:
    fail("vireo died after an oversized QMP message")

# a client that sends many commands before it reads gets every reply, though they add up to
# far more than the socket buffer holds (they wait in the server's output buffer)
sock = socket.socket(socket.AF_UNIX)
sock.connect(path)
sock.settimeout(10)
buf = b""
recv()
cmd("qmp_capabilities")
N = 1000  # 1.5 MB of replies: past a socket buffer, inside the server's 4 MiB
sock.sendall(b"".join(b'{"execute": "query-commands", "id": %d}' % i for i in range(N)))
time.sleep(1)
got = 0
for i in range(N):
    r = recv()
    if r.get("id") != i or not isinstance(r.get("return"), list):
        fail(f"reply {i} to a late reader is {str(r)[:200]}")
    got += len(json.dumps(r))
if got < 1 << 20:
    fail(f"the replies were only {got} bytes: the test does not exceed a socket buffer")
sock.close()

# a client that never reads its replies is dropped; it must not stall the VMM's main thread
sock = socket.socket(socket.AF_UNIX)
sock.connect(path)
sock.recv(65536)
sock.sendall(b'{"execute": "qmp_capabilities"}')
sock.setblocking(False)
flood = b'{"execute": "query-commands"}' * 200
dropped = False
deadline = time.time() + 60  # 4 MiB of replies: slow under ASan on the emulated host
while time.time() < deadline and not dropped:
    try:
        sock.send(flood)
    except BlockingIOError:
        time.sleep(0.01)
    except (BrokenPipeError, ConnectionResetError):
        dropped = True
sock.close()
if not dropped:
    fail("a client that never reads was not dropped (the main thread may be blocked in send)")
if vm.poll() is not None:
    fail("vireo died after a client that does not read")
sock = socket.socket(socket.AF_UNIX)
sock.connect(path)
sock.settimeout(10)
buf = b""
recv()
cmd("qmp_capabilities")
cmd("quit")
if vm.wait(timeout=20) != 0:
    fail("vireo did not exit 0 after quit")
print("ok: QMP greeting, negotiation, commands, errors, events, quit")
