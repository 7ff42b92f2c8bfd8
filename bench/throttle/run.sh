#!/bin/sh
# bench/throttle/run.sh [BUILD_DIR]: how closely vireo's throttling holds its limits.
#
# Drives vireo's whole virtio-blk data path with bench's vireo-blk-loop (no KVM needed: the guest
# driver is played by host threads, see bench/blk/loop.c) on a page-cached raw file, 4 KiB random
# reads at QD16, with QEMU -drive throttling keys on the --drive (vmm/drive.c puts a throttle
# node over the disk). Each case prints the measured rate, the expected one and the deviation:
#   avg-L        iops=L, 10 s after 1 s of warm-up (the first tenth-second burst left out):
#                the issue asks for L within +-5 %
#   avg-L-cold   the same from the first request: L * 10 + L / 10 expected
#   bps          bps=B with 64 KiB reads, 10 s after 1 s
#   burst-*      iops=A,iops_max=M,iops_max_length=S: a burst at M for
#                (M * S - M / 10) / (M - A) s (QEMU's buckets), then A: the I/Os of the first
#                2 s (M * 2 + M / 10 expected), of the first T=4 s (M * S + A * T) and the rate
#                once the burst is over (A)
#   size         iops=L,iops_size=4096 with 16 KiB reads: L / 4 requests a second
# Timing is the host's; run it on an idle machine. Exit status 1 when a case is off by more
# than 5 %.
set -eu
build=${1:-build}
loop=$build/bench/vireo-blk-loop
[ -x "$loop" ] || { echo "no $loop: ninja -C $build first" >&2; exit 2; }
f=$(mktemp /var/tmp/vireo-thr-XXXXXX)
trap 'rm -f "$f"' EXIT
truncate -s 256M "$f"
cat "$f" >/dev/null
bad=0

# run NAME EXPECTED-PER-SECOND-OR-TOTAL UNIT(iops|ios|bps) DRIVE-KEYS LOOP-ARGS...
run() {
	name=$1 want=$2 unit=$3 keys=$4
	shift 4
	out=$("$loop" --drive "file=$f,format=raw,$keys" --rw randread --qd 16 "$@" | grep '^BENCH')
	iops=$(echo "$out" | sed 's/.*iops=\([0-9]*\).*/\1/')
	ios=$(echo "$out" | sed 's/.* ios=\([0-9]*\).*/\1/')
	case $unit in
	iops) got=$iops ;;
	ios) got=$ios ;;
	bps) got=$((iops * 65536)) ;;
	esac
	dev=$(awk -v g="$got" -v w="$want" 'BEGIN { printf "%+.2f", (g - w) * 100 / w }')
	ok=$(awk -v d="$dev" 'BEGIN { print (d <= 5 && d >= -5) ? "ok" : "OFF" }')
	[ "$ok" = ok ] || bad=1
	printf 'THROTTLE case=%s %s=%s expected=%s dev_pct=%s %s\n' "$name" "$unit" "$got" "$want" \
		"$dev" "$ok"
}

for l in 200 1000 5000 20000; do
	run avg-$l "$l" iops "iops=$l" --secs 10 --warmup-ms 1000
done
run avg-1000-cold $((1000 * 10 + 100)) ios "iops=1000" --secs 10 --warmup-ms 0
run avg-rd-wr-500 500 iops "iops_rd=500,iops_wr=100" --secs 10 --warmup-ms 1000
run bps-8M 8388608 bps "bps=8388608" --bs 65536 --secs 10 --warmup-ms 1000
# burst: A=1000, M=5000, S=2: the burst lasts (10000 - 500) / 4000 = 2.375 s
run burst-first-2s $((5000 * 2 + 500)) ios "iops=1000,iops_max=5000,iops_max_length=2" \
	--secs 2 --warmup-ms 0
run burst-first-4s $((5000 * 2 + 1000 * 4)) ios "iops=1000,iops_max=5000,iops_max_length=2" \
	--secs 4 --warmup-ms 0
run burst-after 1000 iops "iops=1000,iops_max=5000,iops_max_length=2" --secs 5 --warmup-ms 3000
run size-16k 250 iops "iops=1000,iops_size=4096" --bs 16384 --secs 10 --warmup-ms 1000
exit $bad
