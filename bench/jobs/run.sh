#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/jobs/run.sh [BUILD_DIR]: block jobs (issue 16's benchmark), vireo and QEMU 10 back to back.
#
#   1. iops: the test guest's bench case (tests/guest/cases/bench.c, started as bench/blk/run.sh
#      starts it: 4 KiB random reads from CPL3, polling, one queue and one iothread) on the disk
#      under vireo with a QMP socket, first with no job, then with an unthrottled blockdev-mirror
#      (sync=full, to a raw file next to the disk) started when the measured window opens. The
#      disk must be large enough that the bulk copy lasts the whole window: the IOPS line says
#      the job's state at the window's end (running, not READY) and what it copied meanwhile.
#      Goal (issue 16): IOPS with the job >= 90 % of IOPS without.
#   2. throughput: the time from blockdev-mirror (sync=full, the whole disk to a fresh raw
#      target on the same file system) to BLOCK_JOB_READY, the test guest halted (its idle
#      case), under vireo (--blockdev + virtio-blk-pci, one iothread) and under QEMU 10
#      (-blockdev with aio=io_uring + virtio-blk-pci on an iothread, as bench/blk runs it): MB/s
#      for each and vireo/QEMU.
#   3. speed: a blockdev-mirror with speed=S MiB/s for JOBS_SPEED_SECS (10) s, guest idle: bytes
#      copied (query-jobs current-progress) divided by the time since the command, and the rate
#      between 1 s and 1 + JOBS_SPEED_SECS s; the deviation from S. Goal: within +-5 %.
# Each VM's console and stderr are kept in JOBS_DIR/logs.
#
# Environment: JOBS_PARTS ("iops throughput speed"), JOBS_SIZE (the disk, 8G: fully written
# once, kept between runs), JOBS_DIR (BUILD_DIR/bench-jobs: disk, targets, logs; needs O_DIRECT),
# JOBS_CACHES ("none writeback": cache=none (cache.direct) on source and target, then both
# page-cached, the source read into the page cache before each run; part 3 uses the first), JOBS_QDS (the guest's queue depths in part 1, "1 32"),
# JOBS_SECS (part 1's window, 10), JOBS_WARMUP_MS (1000), JOBS_REPEAT (runs per figure,
# interleaved; the summaries use medians; 3), JOBS_SPEEDS ("20 50 100", MiB/s), JOBS_SPEED_SECS,
# JOBS_VMMS ("vireo qemu": parts 2 and 3). The load average is printed before each part and on
# each line (load=):
# absolute figures drift 2-5x on a busy machine; compare the ratios.
# Needs /dev/kvm, python3, fio (to write the disk), qemu-system-x86_64 10.x for QEMU's figures.
set -uo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "bench/jobs: $*" >&2; exit 1; }

export JOBS_VIREO=$build/vireo JOBS_ELF=$build/tests/guest/guest.elf
export JOBS_DIR=${JOBS_DIR:-$build/bench-jobs}
export JOBS_QEMU=$(command -v qemu-system-x86_64 || true)
[ -x "$JOBS_VIREO" ] && [ -f "$JOBS_ELF" ] || die "no $JOBS_VIREO or $JOBS_ELF: ninja -C $build first"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "needs /dev/kvm"
command -v python3 >/dev/null || die "needs python3"
command -v fio >/dev/null || die "needs fio"
if [ -z "$JOBS_QEMU" ]; then
	echo "bench/jobs: no qemu-system-x86_64: vireo's figures only" >&2
	export JOBS_VMMS=vireo
fi
parts=${JOBS_PARTS-iops throughput speed}
size=${JOBS_SIZE:-8G}
bytes=$(numfmt --from=iec "$size") || die "JOBS_SIZE=$size"

# the disk: fully written (a mirror skips holes and zeroes), kept between runs
mkdir -p "$JOBS_DIR"
export JOBS_DISK=$JOBS_DIR/disk.raw
if [ ! -f "$JOBS_DIR/.filled-$bytes" ] || [ "$(stat -c %s "$JOBS_DISK" 2>/dev/null)" != "$bytes" ]; then
	echo "bench/jobs: writing $size of data to $JOBS_DISK"
	rm -f "$JOBS_DIR"/.filled-*
	fio --name=fill --filename="$JOBS_DISK" --rw=write --bs=1M --size="$bytes" --direct=1 \
		--ioengine=io_uring --refill_buffers --output=/dev/null || die "could not fill $JOBS_DISK"
	touch "$JOBS_DIR/.filled-$bytes"
fi
dd if="$JOBS_DISK" of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null ||
	die "$JOBS_DISK: O_DIRECT reads fail on $(stat -f -c %T "$JOBS_DISK") (set JOBS_DIR)"
echo "bench/jobs: $JOBS_DISK ($size, $(stat -f -c %T "$JOBS_DISK")), vireo $("$JOBS_VIREO" --version 2>/dev/null | head -1)," \
	"${JOBS_QEMU:+$("$JOBS_QEMU" --version | head -1)}"
trap 'rm -f "$JOBS_DIR/target.raw" "$JOBS_DIR/qmp.sock"' EXIT
status=0
for p in $parts; do
	echo "bench/jobs: load average $(cut -d' ' -f1-3 /proc/loadavg) before $p"
	python3 "$here/jobs.py" "$p" || status=1
done
echo "bench/jobs: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit $status
