"""The set-up shared by the Python tests that run vireo on the machine's KVM.

setup() reads VIREO GUEST from the command line, skips (exit 77, the reason printed) without a
usable /dev/kvm, and returns them with a fresh temporary directory for sockets and disks
(removed at exit). Qmp is
a small QMP client for the tests that talk to a running vireo; Vm starts one with it, Daemon a
vireo-storage-daemon.
"""
import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def tmpdir():
    """A fresh temporary directory, removed at exit."""
    tmp = tempfile.mkdtemp()
    # a test's images can reach gigabytes: gone at exit (VIREO_KEEP_TMP=1 keeps them to look at)
    if not os.environ.get("VIREO_KEEP_TMP"):
        atexit.register(shutil.rmtree, tmp, True)
    return tmp


def setup():
    vireo, guest = sys.argv[1], sys.argv[2]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not available")
        sys.exit(77)
    return vireo, guest, tmpdir()


def need_qemu_tools():
    """Skips (exit 77) without qemu-img and qemu-io, which the host-only tests compare with."""
    for tool in ("qemu-img", "qemu-io"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} is not installed (Debian: qemu-utils)")
            sys.exit(77)


def crash_check_of(vireo):
    """tests/interop's crash_check, built beside vireo; fails without it."""
    path = os.path.join(os.path.dirname(os.path.abspath(vireo)), "tests", "interop",
                        "crash_check")
    if not os.access(path, os.X_OK):
        print(f"FAIL: no crash_check at {path} (built with the interop tests)")
        sys.exit(1)
    return path


def run(*cmd):
    """Runs a host command; its output, or FAIL with it and exit 1."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        print(f"FAIL: {' '.join(cmd)}: {r.stdout}{r.stderr}")
        sys.exit(1)
    return r.stdout


def qmp_connect(path, wait=10):
    """A socket connected to the QMP monitor at path, once vireo listens there (the file exists
    from bind(), before listen(), and a connect() in between is refused). Raises OSError."""
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError) as e:
            sock.close()
            if time.monotonic() > deadline:
                raise OSError(f"no QMP monitor listening at {path} after {wait} s: {e}")
            time.sleep(0.05)


class Qmp:
    """A QMP client for a vireo started with --qmp unix:PATH.

    Connects with qmp_connect(), reads the greeting and negotiates capabilities. execute()
    sends one command and returns its answer (a dict with "return" or "error"); the events that
    arrive meanwhile are kept in self.events, in order, for wait_event(). Raises OSError or
    ValueError on a broken connection.
    """

    def __init__(self, path, timeout=10):
        self.events = []
        self.sock = qmp_connect(path)
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.stream = self.sock.makefile("rw")
        self._read()  # the greeting
        answer = self.execute("qmp_capabilities")
        if answer.get("return") != {}:
            raise ValueError(f"qmp_capabilities: {answer}")

    def _read(self):
        line = self.stream.readline()
        if not line:
            raise EOFError("the QMP connection closed")
        return json.loads(line)

    def execute(self, command, /, **arguments):
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.stream.write(json.dumps(msg) + "\n")
        self.stream.flush()
        while True:
            answer = self._read()
            if "event" not in answer:
                return answer
            self.events.append(answer)

    def wait_event(self, name, timeout=60, match=None):
        """The first kept or coming event called name (for which match(event) holds), taken
        out of self.events; raises TimeoutError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name and (match is None or match(e)):
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name} event in {timeout} s")
            self.sock.settimeout(left)
            try:
                self.events.append(self._read())
            except TimeoutError:
                raise TimeoutError(f"no {name} event in {timeout} s") from None
            finally:
                self.sock.settimeout(self.timeout)


class _Monitored:
    """A process under test with a QMP client (self.qmp, self.proc): fail(msg) kills it,
    prints msg, its output and the files in self.logs and exits 1; ok() and refused() run a
    command that must succeed or fail."""

    name = "the process"

    def fail(self, msg):
        self.proc.kill()
        print("FAIL:", msg)
        print(self.proc.communicate()[0][-2000:])
        for path in self.logs:
            if os.path.exists(path):
                print(open(path).read()[-2000:])
        sys.exit(1)

    def ok(self, command, /, **arguments):
        """The command's "return"; fail()s on an error answer."""
        r = self.qmp.execute(command, **arguments)
        if "return" not in r:
            self.fail(f"{command} {arguments}: {r}")
        return r["return"]

    def refused(self, command, want, /, **arguments):
        """The command must fail with a GenericError whose text holds want."""
        r = self.qmp.execute(command, **arguments)
        e = r.get("error", {})
        if e.get("class") != "GenericError" or want not in e.get("desc", ""):
            self.fail(f"{command} {arguments}: wanted a GenericError saying '{want}', got {r}")

    def quit(self):
        """QMP quit; the process must exit 0."""
        self.qmp.execute("quit")
        if self.proc.wait(timeout=20) != 0:
            self.fail(f"{self.name} did not exit 0 after quit")


class Vm(_Monitored):
    """A vireo run with a QMP monitor, for tests that drive it.

    Starts VIREO run ARGS... --qmp unix:SOCK and connects a Qmp client (self.qmp). fail(msg)
    kills vireo, prints msg, its output and the files in logs (e.g. a serial log), and exits 1;
    ok() and refused() run a command that must succeed or fail.
    """

    name = "vireo"

    def __init__(self, vireo, args, sock, logs=()):
        self.logs = logs
        self.proc = subprocess.Popen([vireo, "run", *args, "--qmp", f"unix:{sock}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        atexit.register(self.proc.kill)  # never left running by a test that raised
        try:
            self.qmp = Qmp(sock)
        except (OSError, ValueError) as e:
            self.fail(str(e))


class Daemon(_Monitored):
    """A vireo-storage-daemon with a QMP monitor: DAEMON ARGS... --chardev socket,id=qmp0,
    path=SOCK,server=on,wait=off --monitor chardev=qmp0, and a Qmp client (self.qmp); the rest
    as Vm's. prefix (e.g. ["strace", ...]) runs it under another program."""

    name = "vireo-storage-daemon"

    def __init__(self, daemon, args, sock, logs=(), prefix=()):
        self.logs = logs
        self.proc = subprocess.Popen(
            [*prefix, daemon, *args, "--chardev",
             f"socket,id=qmp0,path={sock},server=on,wait=off", "--monitor", "chardev=qmp0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        atexit.register(self.proc.kill)  # never left running by a test that raised
        try:
            self.qmp = Qmp(sock)
        except (OSError, ValueError) as e:
            self.fail(str(e))
