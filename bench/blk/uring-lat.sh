#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/blk/uring-lat.sh COMMAND [ARGS...]: where a request's time goes below the VMM (issue 21).
# Runs COMMAND (vireo-blk-loop, vireo run, fio: anything that does I/O through io_uring) under
# `perf record` of io_uring's tracepoints and of the block layer's, then prints for each io_uring
# opcode the distribution of
#   ring   io_uring_submit_req -> io_uring_complete of the same request: the kernel's whole
#          share, from the SQE taken to the CQE posted (which waits, with COOP_TASKRUN, until the
#          submitting task enters the kernel again)
# and for the block layer
#   device block_rq_issue -> block_rq_complete of the same sector: the device's (and its
#          queue's) share; every process's requests (the block layer does not say whose)
# as p50 / p99 / p99.9 / max in µs, and how many requests io_uring punted to its workers
# (io_uring_queue_async_work: an inline issue that would have blocked) or failed. READ of an
# eventfd (an iothread's wake-up) waits for its kick: only the data opcodes say anything. A ring tail far
# above the device's is time spent between the device and the CQE (task_work waiting for its
# task, workers); a device tail is the disk's. The ring lines count the command's own process
# only (fio: give it --thread, else its jobs are processes of their own). Needs perf and root
# (tracefs); the command's own output is passed through. URING_LAT_KEEP=1 keeps the perf data file (its path is printed).
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
command -v perf >/dev/null || { echo "uring-lat: needs perf (Debian: linux-perf)" >&2; exit 77; }
data=$(mktemp /tmp/uring-lat.XXXXXX)
[ "${URING_LAT_KEEP:-0}" = 1 ] || trap 'rm -f "$data" "$data.old"' EXIT
events=io_uring:io_uring_submit_req,io_uring:io_uring_complete,io_uring:io_uring_queue_async_work
events+=,io_uring:io_uring_req_failed,block:block_rq_issue,block:block_rq_complete
# system-wide (a device completes in whichever task its interrupt lands on), the command's own
# io_uring events picked out by its process id below
perf record -q -a -o "$data" -e "$events" &
perf_pid=$!
sleep 0.5
"$@" &
cmd_pid=$!
wait "$cmd_pid"
rc=$?
kill -INT "$perf_pid"
wait "$perf_pid"
perf script -i "$data" -F pid,time,event,trace 2>/dev/null | python3 -c '
import re, sys
pid = sys.argv[1]
sub, lat, rq, dev, punts, fails = {}, {}, {}, [], 0, 0
for line in sys.stdin:
    m = re.search(r"^\s*(\d+)\s+(\d+\.\d+):\s+(\S+):\s(.*)", line)
    if not m:
        continue
    t, ev, rest = float(m.group(2)), m.group(3).rstrip(":"), m.group(4)
    if ev.startswith("io_uring") and m.group(1) != pid:
        continue
    if ev.endswith("io_uring_submit_req"):
        r = re.search(r"req (0x[0-9a-f]+).*opcode (\w+)", rest)
        if r:
            sub[r.group(1)] = (t, r.group(2))
    elif ev.endswith("io_uring_complete"):
        r = re.search(r"req (0x[0-9a-f]+)", rest)
        if r and r.group(1) in sub:
            t0, op = sub.pop(r.group(1))
            lat.setdefault(op, []).append((t - t0) * 1e6)
    elif ev.endswith("io_uring_queue_async_work"):
        punts += 1
    elif ev.endswith("io_uring_req_failed"):
        fails += 1
    elif ev.endswith("block_rq_issue") or ev.endswith("block_rq_complete"):
        r = re.search(r"(\d+),(\d+) (\S+) .*?(\d+) \+ (\d+)", rest)
        if not r:
            continue
        key = (r.group(1), r.group(2), r.group(4))
        if ev.endswith("issue"):
            rq[key] = t
        elif key in rq:
            dev.append((t - rq.pop(key)) * 1e6)

def show(name, v):
    if not v:
        return
    v.sort()
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    print(f"URING-LAT {name} n={len(v)} p50_us={q(0.5):.1f} p99_us={q(0.99):.1f} "
          f"p999_us={q(0.999):.1f} max_us={v[-1]:.1f}")

for op, v in sorted(lat.items()):
    show(f"ring op={op}", v)
show("device", dev)
print(f"URING-LAT punted_to_workers={punts} failed={fails}")
' "$cmd_pid"
[ "${URING_LAT_KEEP:-0}" = 1 ] && echo "uring-lat: perf data kept in $data"
exit $rc
