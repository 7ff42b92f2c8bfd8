"""qmp.py [--console FILE] SOCKET [@STEP] COMMAND...: the emulated host's QMP client.

(busybox's nc has no unix sockets.) Connects to the VMM's QMP socket (vireo --qmp unix:PATH, or
QEMU's -qmp unix:PATH,server=on), negotiates capabilities, then sends each COMMAND (a JSON
object: {"execute": ..., "arguments": ...}) in turn, printing each reply as
`E2E-L1-QMP: COMMAND -> REPLY`; events between replies are skipped. An argument @STEP starts a
step: its commands wait until FILE (the L2 console, which L1's /init copies there) holds a line
E2E-L2-QMP-WANTED=STEP, and when they have all returned, E2E-L1-QMP-STEP=0 goes out (=1 at an
error reply, and the client stops). One process for every step: Python takes a while to start on
the emulated CPU (L1's /init starts it at nice 19; it goes back to 0 once connected). Exit
status 0 when every command returned, 1 otherwise.
"""
import json
import os
import socket
import sys
import time


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(300):  # the VMM makes its socket as it starts
        try:
            sock.connect(path)
            return sock
        except OSError:
            time.sleep(0.1)
    raise OSError(f"cannot connect to {path}")


def wait_for_line(console, prefix):
    seen = b""
    while True:
        try:
            with open(console, "rb") as f:
                seen = f.read()
        except FileNotFoundError:
            pass
        if any(line.startswith(prefix) for line in seen.splitlines()):
            return
        time.sleep(0.2)


def main(argv):
    console = None
    if len(argv) >= 2 and argv[0] == "--console":
        console, argv = argv[1], argv[2:]
    if not argv:
        sys.exit(__doc__)
    sock = connect(argv[0])
    lines = sock.makefile("r", encoding="utf-8")

    def reply():
        sock.settimeout(60)
        while True:
            line = lines.readline()
            if not line:
                raise EOFError("the VMM closed its QMP socket")
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                return msg

    def send(cmd):
        sock.sendall(cmd.encode() + b"\n")
        msg = reply()
        print(f"E2E-L1-QMP: {cmd} -> {json.dumps(msg)}", flush=True)
        return "error" not in msg

    sock.settimeout(60)
    if "QMP" not in json.loads(lines.readline()):
        raise ValueError("no QMP greeting")
    if not send('{"execute": "qmp_capabilities"}'):
        return 1
    # started at nice 19 so that its start-up took only what the VMM left; from here on it
    # sleeps, and must not starve behind the VMM when L2 asks (L1 runs it as root)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:
        pass
    step = None
    for arg in argv[1:] + ["@"]:
        if arg.startswith("@"):
            if step:
                print(f"E2E-L1-QMP-{step}=0", flush=True)
            step = arg[1:]
            if step and console:
                wait_for_line(console, f"E2E-L2-QMP-WANTED={step}".encode())
        elif not send(arg):
            if step:
                print(f"E2E-L1-QMP-{step}=1", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, EOFError, ValueError) as e:
        print(f"E2E-L1-QMP: {e}", flush=True)
        sys.exit(1)
