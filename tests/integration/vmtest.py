"""The set-up shared by the Python tests that run vireo on the machine's KVM.

setup() reads VIREO GUEST from the command line, skips (exit 77, the reason printed) without a
usable /dev/kvm, and returns them with a fresh temporary directory for sockets and disks.
"""
import os
import sys
import tempfile


def setup():
    vireo, guest = sys.argv[1], sys.argv[2]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not available")
        sys.exit(77)
    return vireo, guest, tempfile.mkdtemp()
