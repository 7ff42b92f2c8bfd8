# SPDX-License-Identifier: Apache-2.0
# Sourced by run-qemu.sh and run-vireo.sh: turns a VMM's exit status into the test's verdict.
# The guest writes v to port 0xf4 and the VMM exits with (v << 1) | 1 (lib/sys.h, README.md).

# guest_verdict STATUS: prints the verdict, returns 0 (pass) or 1 (fail).
guest_verdict() {
	case "$1" in
	33) echo "guest: PASS (status 33)"; return 0 ;;
	35) echo "guest: FAIL: a test case failed (status 35)" ;;
	37) echo "guest: FAIL: the guest panicked (status 37)" ;;
	124|137) echo "guest: FAIL: timed out" ;;
	*) echo "guest: FAIL: the VM ended without the guest's verdict (status $1)" ;;
	esac
	return 1
}
