"""qmp.py [--console FILE] [--answer FILE] SOCKET [@STEP] COMMAND...: the emulated host's QMP client.

(busybox's nc has no unix sockets.) Connects to the VMM's QMP socket (vireo --qmp unix:PATH, or
QEMU's -qmp unix:PATH,server=on), negotiates capabilities, then takes its arguments in turn:
  COMMAND  a JSON object ({"execute": ..., "arguments": ...}): sent, its reply printed as
           `E2E-L1-QMP: COMMAND -> REPLY`; an error reply fails the step;
  %EVENT   waits (up to 300 s) for the event EVENT, printed as `E2E-L1-QMP: event EVENT -> DATA`;
           an event whose data holds "error" fails the step. Events that came earlier count (they
           are kept in order as they arrive, each taken once);
  ?TEXT    the last reply must contain TEXT (e.g. a file name in query-block), else the step fails.
An argument @STEP starts a step: its commands wait until FILE (the L2 console, which L1's /init
copies there) holds a line E2E-L2-QMP-WANTED=STEP, and when they have all returned,
E2E-L1-QMP-STEP=0 goes out (=1 at a failure, and the client stops). With --answer, that line is
also written to the file given (a FIFO that is the VMM's standard input: L2 reads it on its
serial console, so that it can wait for a step to be done). One process for every step: Python
takes a while to start on the emulated CPU (L1's /init starts it at nice 19; it goes back to 0
once connected). Exit status 0 when every step passed, 1 otherwise.
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


class Client:
    def __init__(self, path):
        self.sock = connect(path)
        self.lines = self.sock.makefile("r", encoding="utf-8")
        self.events = []
        self.last = ""
        self.sock.settimeout(60)
        if "QMP" not in json.loads(self.lines.readline()):
            raise ValueError("no QMP greeting")

    def read(self, timeout):
        self.sock.settimeout(timeout)
        line = self.lines.readline()
        if not line:
            raise EOFError("the VMM closed its QMP socket")
        return json.loads(line)

    def send(self, cmd):
        self.sock.sendall(cmd.encode() + b"\n")
        while True:
            msg = self.read(60)
            if "event" in msg:
                self.events.append(msg)
            elif "return" in msg or "error" in msg:
                break
        self.last = json.dumps(msg)
        print(f"E2E-L1-QMP: {cmd} -> {self.last}", flush=True)
        return "error" not in msg

    def wait_event(self, name, timeout=300):
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name:
                    del self.events[i]
                    self.last = json.dumps(e.get("data", {}))
                    print(f"E2E-L1-QMP: event {name} -> {self.last}", flush=True)
                    return "error" not in e.get("data", {})
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"E2E-L1-QMP: no event {name} in {timeout} s", flush=True)
                return False
            try:
                msg = self.read(left)
            except socket.timeout:
                continue
            if "event" in msg:
                self.events.append(msg)


def main(argv):
    console = answer = None
    while len(argv) >= 2 and argv[0] in ("--console", "--answer"):
        if argv[0] == "--console":
            console = argv[1]
        else:
            answer = argv[1]
        argv = argv[2:]
    if not argv:
        sys.exit(__doc__)
    qmp = Client(argv[0])
    if not qmp.send('{"execute": "qmp_capabilities"}'):
        return 1
    # started at nice 19 so that its start-up took only what the VMM left; from here on it
    # sleeps, and must not starve behind the VMM when L2 asks (L1 runs it as root)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:
        pass

    def done(step, status):
        line = f"E2E-L1-QMP-{step}={status}"
        print(line, flush=True)
        if answer:  # a FIFO: never wait for a reader (L1's /init holds one open)
            try:
                fd = os.open(answer, os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, (line + "\n").encode())
                os.close(fd)
            except OSError as e:
                print(f"E2E-L1-QMP: cannot answer into {answer}: {e}", flush=True)

    step = None
    for arg in argv[1:] + ["@"]:
        if arg.startswith("@"):
            if step:
                done(step, 0)
            step = arg[1:]
            if step and console:
                wait_for_line(console, f"E2E-L2-QMP-WANTED={step}".encode())
            continue
        if arg.startswith("%"):
            passed = qmp.wait_event(arg[1:])
        elif arg.startswith("?"):
            passed = arg[1:] in qmp.last
            if not passed:
                print(f"E2E-L1-QMP: '{arg[1:]}' is not in the last reply", flush=True)
        else:
            passed = qmp.send(arg)
        if not passed:
            if step:
                done(step, 1)
            return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, EOFError, ValueError) as e:
        print(f"E2E-L1-QMP: {e}", flush=True)
        sys.exit(1)
