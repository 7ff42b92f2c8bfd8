#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/luks/run.sh [BUILD_DIR]
# Encrypted qcow2 (encrypt.format=luks, aes-256-xts) against plain qcow2 (issue 18):
#  1. 4 KiB random-read and random-write IOPS inside the VM (the test guest's bench mode, 2
#     queues on 2 iothreads) on a plain qcow2 image and an encrypted one of the same content,
#     under vireo, and under QEMU 10 (one iothread per queue, aio=io_uring) on the same images;
#     with BENCH_BASELINE=PATH also another vireo binary (an older build) on the encrypted
#     image, in the same rounds ("base");
#  2. the time of converting a raw file into an encrypted qcow2 image, vireo-img against
#     qemu-img (the same options, PBKDF2 at 10 ms in both).
# Prints RESULT lines per run, then the medians and the ratios encrypted/plain (vireo) and
# vireo/qemu (encrypted).
# Environment: BENCH_SECS (5), BENCH_WARMUP_MS (1000), BENCH_REPEAT (3), BENCH_SIZE (1G),
# BENCH_QD ("1 32"), BENCH_RW ("randread randwrite"), BENCH_QUEUES (2), BENCH_DIR
# (BUILD_DIR/bench-luks), BENCH_VMMS ("vireo qemu", plus "base" with BENCH_BASELINE).
# Images are page-cached (cache=writeback): the VMM's own cost is measured. The runs of one
# round take turns (the machine's load drifts): compare within a round, or the medians.
# Needs /dev/kvm, qemu-img, fio; QEMU runs need qemu-system-x86_64 10.x.
set -uo pipefail
build=${1:-build}
elf=$build/tests/guest/guest.elf
vireo=$build/vireo
vimg=$build/tools/vireo-img
secs=${BENCH_SECS:-5}
warmup=${BENCH_WARMUP_MS:-1000}
repeat=${BENCH_REPEAT:-3}
size=${BENCH_SIZE:-1G}
qds=${BENCH_QD:-1 32}
rws=${BENCH_RW:-randread randwrite}
baseline=${BENCH_BASELINE:-}
q=${BENCH_QUEUES:-2}
vmms=${BENCH_VMMS:-vireo qemu${baseline:+ base}}
dir=${BENCH_DIR:-$build/bench-luks}
secret=secret,id=sec0,data=bench-passphrase

die() { echo "bench/luks: $*" >&2; exit 1; }
[ -f "$elf" ] && [ -x "$vireo" ] && [ -x "$vimg" ] || die "build first (ninja -C $build)"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "needs /dev/kvm"
[ -z "$baseline" ] || [ -x "$baseline" ] || die "BENCH_BASELINE=$baseline is no program"
command -v qemu-img >/dev/null && command -v fio >/dev/null || die "needs qemu-img and fio"
qemu=$(command -v qemu-system-x86_64 || true)
mkdir -p "$dir/logs" || die "cannot use $dir"
bytes=$(numfmt --from=iec "$size")

raw=$dir/disk.raw plain=$dir/plain.qcow2 enc=$dir/enc.qcow2
if [ "$(stat -c %s "$raw" 2>/dev/null)" != "$bytes" ]; then
	rm -f "$plain" "$enc"
	fio --name=fill --filename="$raw" --rw=write --bs=1M --size="$bytes" --ioengine=io_uring \
		--refill_buffers --output=/dev/null || die "could not fill $raw"
fi
[ -f "$plain" ] || qemu-img convert -O qcow2 "$raw" "$plain" || die "convert"

# 2. convert into an encrypted image, each tool three times: the best time
conv() { # tool
	local best=999999 t0 t1 ms
	for _ in 1 2 3; do
		rm -f "$enc"
		t0=$(date +%s%N)
		"$1" convert --object "$secret" -O qcow2 \
			-o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 "$raw" "$enc" ||
			die "$1 convert failed"
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000000))
		[ $ms -lt $best ] && best=$ms
	done
	echo $best
}
qconv=$(conv qemu-img)
vconv=$(conv "$vimg") # the image the runs use is vireo's
echo "RESULT bench=luks-convert size=$size vireo_ms=$vconv qemu_ms=$qconv"

cmdline() { # qd rw
	echo "bench bench-rw=$2 bench-qd=$1 bench-queues=$q bench-secs=$secs bench-warmup-ms=$warmup"
}
run_vireo() { # img qd rw [binary]
	local f=$plain key=
	[ "$1" = enc ] && f=$enc key=,encrypt.key-secret=sec0
	timeout -k 5 $((secs + 90)) "${4:-$vireo}" run --kernel "$elf" --cpus 2 --memory 256M \
		--serial stdio --cmdline "$(cmdline "$2" "$3")" --object "$secret" \
		--object iothread,id=io0 --object iothread,id=io1 \
		--blockdev "driver=qcow2,node-name=d0,file.driver=file,file.filename=$f$key" \
		--device virtio-blk-pci,drive=d0,num-queues=$q,iothread-vq-mapping=io0:io1
}
run_base() { # img qd rw
	run_vireo "$1" "$2" "$3" "$baseline"
}
run_qemu() { # img qd rw
	local f=$plain key= objs=() map="" i
	[ "$1" = enc ] && f=$enc key=",\"encrypt\":{\"format\":\"luks\",\"key-secret\":\"sec0\"}"
	for ((i = 0; i < q; i++)); do
		objs+=(-object "iothread,id=io$i")
		map+="${map:+,}{\"iothread\":\"io$i\"}"
	done
	timeout -k 5 $((secs + 90)) "$qemu" -M q35 -enable-kvm -cpu host,-arch-capabilities \
		-smp 2 -m 256M -nodefaults -display none -no-reboot -monitor none -serial stdio \
		-device isa-debug-exit,iobase=0xf4,iosize=4 -object "$secret" "${objs[@]}" \
		-blockdev "{\"driver\":\"qcow2\",\"node-name\":\"d0\",\"file\":{\"driver\":\"file\",\"filename\":\"$f\",\"aio\":\"io_uring\"}$key}" \
		-device "{\"driver\":\"virtio-blk-pci\",\"drive\":\"d0\",\"num-queues\":$q,\"disable-legacy\":\"on\",\"iothread-vq-mapping\":[$map]}" \
		-kernel "$elf" -append "$(cmdline "$2" "$3")"
}
field() { sed -n "s/.*[ ]$2=\([^ ]*\).*/\1/p" <<<" $1"; }

declare -A res
for ((rep = 1; rep <= repeat; rep++)); do
	for rw in $rws; do
	for qd in $qds; do
		for run in "vireo plain" "vireo enc" "base enc" "qemu enc" "qemu plain"; do
			set -- $run
			[[ " $vmms " == *" $1 "* ]] || continue
			[ "$1" = qemu ] && [ -z "$qemu" ] && continue
			[ "$1" = base ] && [ -z "$baseline" ] && continue
			cat "$enc" "$plain" >/dev/null # page-cached, as the qcow2 bench
			log=$dir/logs/$1-$2-$rw-qd$qd-$rep.log
			"run_$1" "$2" "$qd" "$rw" >"$log" 2>&1 </dev/null
			line=$(grep -a '^BENCH iops=' "$log" | tail -1)
			if [ -z "$line" ]; then
				echo "FAILED vmm=$1 img=$2 rw=$rw qd=$qd (log: $log)"
				continue
			fi
			echo "RESULT bench=luks vmm=$1 img=$2 rw=$rw qd=$qd iops=$(field "$line" iops) p50_us=$(field "$line" p50_us)"
			res["$1 $2 $rw $qd"]+="$(field "$line" iops)"$'\n'
		done
	done
	done
done
median() {
	printf '%s' "${res["$1"]:-}" | sort -n | awk '{a[NR] = $1} END {
		if (!NR) print "-"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
echo
for rw in $rws; do
for qd in $qds; do
	vp=$(median "vireo plain $rw $qd") ve=$(median "vireo enc $rw $qd")
	qe=$(median "qemu enc $rw $qd") qp=$(median "qemu plain $rw $qd")
	be=$(median "base enc $rw $qd")
	echo "MEDIAN rw=$rw qd=$qd vireo-plain=$vp vireo-enc=$ve qemu-enc=$qe qemu-plain=$qp" \
	     "vireo enc/plain=$(ratio "$ve" "$vp") enc vireo/qemu=$(ratio "$ve" "$qe")" \
	     "qemu enc/plain=$(ratio "$qe" "$qp")" \
	     "${baseline:+base-enc=$be enc vireo/base=$(ratio "$ve" "$be")}"
done
done
echo "convert into an encrypted qcow2: vireo-img $vconv ms, qemu-img $qconv ms" \
     "(vireo/qemu time $(ratio "$vconv" "$qconv"))"
