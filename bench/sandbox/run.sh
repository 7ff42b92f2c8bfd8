#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/sandbox/run.sh [BUILD_DIR]: what the sandbox costs the data path.
#  1. vireo-sandbox-cost: ns per system call that an iothread's filter adds (its ring's wait,
#     an eventfd write, gettid), with the sandbox on against off, in alternating rounds.
#  2. How many system calls vireo makes per request: one pass of the configurations with the
#     sandbox on and BENCH_SYSCALLS=1 (perf stat over the measured window, every thread; skipped
#     without perf). With (1) it bounds the sandbox's cost without the load's noise: each call
#     charged its class's extra ns from (1) — io_uring_enter and ioctl, whose arguments the
#     filters check, the io_uring_enter figure; every other call, allowed whatever its arguments
#     and answered by the kernel's seccomp cache, the dearer of the eventfd write's and gettid's —
#     on the thread that serves every request (a request takes 1/IOPS of it): BOUND = ns per I/O
#     x IOPS. Calls made while the iothread polls idle (sched_yield) are charged too, so the
#     bound is high where it polls most (QD1).
#  3. bench/blk/run.sh with vireo only, `--sandbox on` and `--sandbox off` interleaved for
#     ROUNDS rounds (the order alternates), the same configurations each time; per
#     configuration the median IOPS of each mode and their ratio, and each round's ratio.
# Environment: ROUNDS (6), and bench/blk/run.sh's BENCH_CACHES (writeback none), BENCH_QDS
# (1 32), BENCH_QUEUES (2), BENCH_SECS (5), BENCH_SIZE (256M), ... On a busy machine the rounds
# scatter widely: read the medians, and the cost per call, which does not depend on the load.
set -euo pipefail
build=$(realpath "${1:-build}")
here=$(dirname "$(realpath "$0")")
rounds=${ROUNDS:-6}
out=$(mktemp)
trap 'rm -f "$out" "$out.cost" "$out.sys"' EXIT

"$build/bench/vireo-sandbox-cost" 20 200000 | tee "$out.cost"
echo
blk() { # mode [env...]: one pass of the configurations, RESULT lines tagged with the mode
	local m=$1
	shift
	env "$@" BENCH_VMMS=vireo BENCH_VIREO_ARGS="--sandbox $m" BENCH_SECS=${BENCH_SECS:-5} \
		BENCH_CACHES="${BENCH_CACHES:-writeback none}" BENCH_RWS=${BENCH_RWS:-randread} \
		BENCH_QDS="${BENCH_QDS:-1 32}" BENCH_QUEUES="${BENCH_QUEUES:-2}" \
		BENCH_SIZE=${BENCH_SIZE:-256M} bash "$here/../blk/run.sh" "$build" 2>&1 |
		sed -n "s/^RESULT /RESULT sandbox=$m /p"
}
if command -v perf >/dev/null; then
	blk on BENCH_SYSCALLS=1 | tee "$out.sys"
	python3 - "$out.cost" "$out.sys" <<'PY'
import re, sys
cost = {m.group(1): float(m.group(2)) for m in
        re.finditer(r"^(\S+)\s.*filter \+([0-9.]+) ns", open(sys.argv[1]).read(), re.M)}
checked = cost["io_uring_enter(GETEVENTS)"]  # the BPF runs: its arguments are checked
cached = max(cost["write(eventfd)"], cost["gettid"])  # the seccomp cache answers
for line in open(sys.argv[2]):
    f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    if "syscalls_per_io" not in f:
        continue
    calls, iops = float(f["syscalls_per_io"]), float(f["iops"])
    ur, io = float(f["uring_enter_per_io"]), float(f["ioctl_per_io"])
    ns = (ur + io) * checked + max(calls - ur - io, 0) * cached
    print(f"BOUND cache={f['cache']} rw={f['rw']} qd={f['qd']} queues={f['queues']} "
          f"cost<={100 * ns * iops / 1e9:.2f}% ({ns:.1f} ns per I/O x {iops:.0f} IOPS: "
          f"{calls:.3f} calls per I/O, {ur:.3f} io_uring_enter and {io:.4f} ioctl at "
          f"{checked:.1f} ns, the rest at {cached:.1f})")
PY
else
	echo "NOTE: no perf: the system calls per request are not counted (apt-get install linux-perf)"
fi
echo
for r in $(seq 1 "$rounds"); do
	if ((r % 2)); then order="on off"; else order="off on"; fi
	for m in $order; do
		blk "$m" | sed "s/^RESULT sandbox=$m /&round=$r /" | tee -a "$out"
	done
done
python3 - "$out" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    key = f"cache={f['cache']} rw={f['rw']} qd={f['qd']} queues={f['queues']}"
    runs[key][(f["sandbox"], f["round"])] = float(f["iops"])
for key, r in sorted(runs.items()):
    on = [v for (m, _), v in r.items() if m == "on"]
    off = [v for (m, _), v in r.items() if m == "off"]
    pairs = [r[("on", k)] / r[("off", k)] for (m, k) in r if m == "on" and ("off", k) in r]
    print(f"RATIO {key} on/off={statistics.median(on) / statistics.median(off):.3f} "
          f"(median IOPS on {statistics.median(on):.0f}, off {statistics.median(off):.0f}; "
          f"rounds {' '.join(f'{p:.2f}' for p in pairs)})")
PY
