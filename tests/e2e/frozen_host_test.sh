#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# frozen_host_test.sh RUN.SH ARGS...: run.sh takes an emulated host that never beats (QEMU started
# paused, -S) for a frozen one, boots it once more, then fails naming the freeze. Exit 77 (skip)
# passes through when the bed is missing.
set -uo pipefail
out=$(E2E_L1_SILENCE=3 E2E_L1_ARGS=-S "$@" 2>&1)
rc=$?
if ((rc == 77)); then
	echo "$out" | tail -n 3
	exit 77
fi
fail() {
	echo "$out"
	echo "FAIL: $*"
	exit 1
}
((rc == 1)) || fail "run.sh exited $rc, expected 1"
grep -q 'went silent for 3 s: L1 froze.*booting it once more' <<<"$out" ||
	fail "no retry after the first silence"
[[ $(grep -c 'went silent for' <<<"$out") == 1 ]] || fail "retried more than once"
grep -q 'FAIL: the emulated host froze twice' <<<"$out" || fail "the failure does not name the freeze"
echo "PASS: a silent L1 is booted once more, then the run fails naming the freeze"
