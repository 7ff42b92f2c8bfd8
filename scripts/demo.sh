#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The main job, as one command: build vireo and the test guest, make the images, launch a microVM
# running the stock Debian cloud kernel (with a virtio-blk disk and fio inside once vireo has
# disks), then run the test guest on this host's own KVM (in the emulated host where there is
# no usable /dev/kvm) and, on a /dev/kvm, benchmark its disk. Without a /dev/kvm the benchmark
# is vireo's data path driven by host threads (bench/blk/loop.c) next to fio on the host.
#
# Where this host's KVM cannot run a stock Linux kernel (a paravirtualized nested KVM such as
# kvm_pvm, or no hardware virtualization at all), the Linux microVM runs inside an emulated host
# instead (QEMU TCG with nested SVM: tests/e2e/README.md), and this script says so.
#
# usage: scripts/demo.sh [--build-dir DIR] [--emulated-host | --direct]
#   --emulated-host  always run the Linux microVM inside the emulated host
#   --direct         always run it on this host's /dev/kvm
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/tests/e2e/lib.sh"

build=${VIREO_BUILD_DIR:-$root/build}
mode=auto
while (($#)); do
	case $1 in
	--build-dir) build=$2; shift 2 ;;
	--emulated-host) mode=emulated; shift ;;
	--direct) mode=direct; shift ;;
	-h | --help) sed -n '3,14p' "$0"; exit 0 ;;
	*) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done

step() { printf '\n==> %s\n' "$*"; }
t_start=$(date +%s)
since() { echo "$(($(date +%s) - $1)) s"; }
# record WHAT STATUS START: a PASS / SKIP (77) / FAIL line for the summary
record() {
	if (($2 == 0)); then
		results+=("PASS  $1 in $(since "$3")")
	elif (($2 == 77)); then
		results+=("SKIP  $1: see above")
	else
		results+=("FAIL  $1, status $2, after $(since "$3")")
	fi
}
results=()

step "Building vireo ($build)"
t=$(date +%s)
if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" "$root"
fi
ninja -C "$build"
vireo=$build/vireo
[[ -x $vireo ]] || { echo "demo.sh: the build produced no $vireo" >&2; exit 1; }
echo "built in $(since "$t")"

step "Building the test guest"
guest=
if ninja -C "$build" -t targets all 2>/dev/null | grep -q '^tests/guest/guest.elf:'; then
	ninja -C "$build" tests/guest/guest.elf
	guest=$build/tests/guest/guest.elf
	echo "test guest: $guest"
else
	echo "this tree has no test guest target (tests/guest/guest.elf) yet: skipping it"
fi

help=$("$vireo" --help 2>&1 || true)
has_drive=no
grep -q -- '--drive' <<<"$help" && has_drive=yes

step "Making the images"
t=$(date +%s)
why=$(e2e_missing_prereq)
if [[ -n $why ]]; then
	echo "cannot build the Linux microVM's images: $why" >&2
	exit 1
fi
kver=$(e2e_kernel_version)
cache=$(e2e_cache_dir "$build")
l2=$("$root/tests/e2e/build-l2.sh" --cache-dir "$cache" --kver "$kver")
echo "Linux microVM: kernel /boot/vmlinuz-$kver, initramfs $l2 ($(du -h "$l2" | cut -f1))"
mkdir -p "$build/demo"
make_raw() { # path size
	rm -f "$1"
	if [[ -x $build/tools/vireo-img ]]; then
		"$build/tools/vireo-img" create -q -f raw "$1" "$2"
	else
		truncate -s "$2" "$1"
	fi
	echo "disk image: $1 ($2, raw)"
}
if [[ -n $guest && $has_drive == yes ]]; then
	make_raw "$build/demo/guest-disk.raw" 64M
fi
echo "images ready in $(since "$t")"

step "Checking what this host's KVM can run"
if [[ $mode == auto ]]; then
	if [[ ! -e /dev/kvm ]]; then
		mode=emulated
		echo "This host has no /dev/kvm: the Linux microVM will run inside an emulated host."
	elif [[ -d /sys/module/kvm_pvm ]]; then
		mode=emulated
		echo "This host's KVM is PVM (kvm_pvm loaded), a paravirtualized nested KVM without"
		echo "hardware virtualization: a stock Linux kernel cannot boot on it. So the Linux microVM"
		echo "runs inside an emulated host instead: QEMU (software emulation, nested AMD SVM) boots"
		echo "the Debian cloud kernel, which loads kvm_amd and runs vireo there. This is slow"
		echo "(about a minute) and proves correctness, not speed."
	elif ! grep -q -w -E 'svm|vmx' /proc/cpuinfo; then
		mode=emulated
		echo "This host's CPU shows no hardware virtualization (no svm/vmx flag): the Linux"
		echo "microVM will run inside an emulated host (QEMU software emulation, nested SVM)."
	else
		mode=direct
		echo "This host's KVM has hardware virtualization: the Linux microVM runs on it directly."
	fi
fi

test=boot
[[ $has_drive == yes ]] && test=fio
if [[ $test == boot ]]; then
	step "Linux microVM: boot to init, 2 CPUs, power off (vireo has no disks yet, so no fio)"
else
	step "Linux microVM: a virtio-blk disk with 2 queues and 2 iothreads, fio randwrite + verify"
fi
t=$(date +%s)
set +e
if [[ $mode == emulated ]]; then
	"$root/tests/e2e/run.sh" --vireo "$vireo" --test "$test" --cpus 2 --queues 2 --iothreads 2 \
		--build-dir "$build" --work-dir "$build/demo/e2e-$test"
	rc=$?
else
	[[ -r /dev/kvm && -w /dev/kvm ]] ||
		echo "warning: /dev/kvm is not readable and writable by $(id -un)"
	cmdline="console=ttyS0 panic=-1 loglevel=4 vireo.test=$test"
	drive=()
	if [[ $test == fio ]]; then
		make_raw "$build/demo/linux-disk.raw" 256M
		cmdline+=" vireo.queues=2"
		drive=(--drive "file=$build/demo/linux-disk.raw,format=raw,if=virtio-blk,num-queues=2")
		drive[1]+=",iothreads=2,cache=none"
	fi
	echo "vireo run --kernel /boot/vmlinuz-$kver --initrd $l2 --cmdline '$cmdline'" \
		"--cpus 2 --memory 512M ${drive[*]}"
	timeout --foreground -k 5 300 "$vireo" run --kernel "/boot/vmlinuz-$kver" --initrd "$l2" \
		--cmdline "$cmdline" --cpus 2 --memory 512M "${drive[@]}" </dev/null |
		tee "$build/demo/linux-console.log"
	rc=${PIPESTATUS[0]}
	if ((rc == 0)); then
		grep -q '^E2E-L2-DONE' "$build/demo/linux-console.log" || rc=1
		grep -q '^E2E-L2-FAIL' "$build/demo/linux-console.log" && rc=1
		[[ $test == boot ]] || grep -q '^E2E-L2-FIO-EXIT=0' "$build/demo/linux-console.log" || rc=1
	fi
fi
set -e
record "Linux microVM ($test, $mode)" "$rc" "$t"
# fio's figures from inside the microVM (in the emulated host they show the disk at work, not its
# speed: the CPU there is emulated)
log=$build/demo/e2e-$test/console.log
[[ $mode == emulated ]] || log=$build/demo/linux-console.log
while read -r job; do
	results+=("FIO   $job (fio in the microVM, $mode)")
done < <(grep -a -E '^ +(read|write): IOPS=' "$log" 2>/dev/null | sed -E 's/^ +//; s/ \(.*//')

step "Test guest on this host's own KVM"
t=$(date +%s)
if [[ -z $guest || ! -x $root/tests/guest/run-vireo.sh ]]; then
	results+=("SKIP  test guest: not in this tree yet")
elif [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	echo "no usable /dev/kvm here: the test guest's vireo runs (tests/guest/vireo-runs.txt) go to"
	echo "the emulated host's nested KVM instead"
	set +e
	"$root/tests/e2e/run.sh" --vireo "$vireo" --test guest --guest-elf "$guest" \
		--build-dir "$build" --work-dir "$build/demo/e2e-guest"
	rc=$?
	set -e
	record "test guest (every vireo run, in the emulated host)" "$rc" "$t"
else
	drive=()
	extra=()
	if [[ $has_drive == yes ]]; then
		drive=(--drive "file=$build/demo/guest-disk.raw,format=raw,if=virtio-blk,num-queues=2")
		drive[1]+=",serial=vireo-test"
		extra=(blk-serial=vireo-test)
	fi
	# run-vireo.sh maps the guest's debug-exit verdict ((v << 1) | 1; 33 = pass) to 0 or 1.
	echo "vireo run --kernel $guest --cpus 2 --memory 256M ${drive[*]} --cmdline 'cpus=2 ${extra[*]}'"
	set +e
	"$root/tests/guest/run-vireo.sh" "$vireo" --cpus 2 --memory 256M "${drive[@]}" "$guest" \
		cpus=2 "${extra[@]}"
	rc=$?
	set -e
	record "test guest on /dev/kvm" "$rc" "$t"
fi

# a page-cached file (cache=writeback): what the VMM itself costs shows; bench/blk/run.sh
# compares with QEMU and the host, and covers O_DIRECT too
bench_disk=$build/demo/bench-disk.raw
bench_file() {
	[[ -f $bench_disk ]] || head -c 256M /dev/urandom >"$bench_disk"
	cat "$bench_disk" >/dev/null
}
if [[ -n $guest && $has_drive == yes && -r /dev/kvm && -w /dev/kvm ]]; then
	step "Benchmark on this host's own KVM: the test guest's 4 KiB random reads through vireo"
	bench_file
	bench_cmd=(--cpus 2 --memory 256M --serial stdio
		--drive "file=$bench_disk,format=raw,if=virtio-blk,num-queues=2,iothreads=2,cache=writeback")
	for qd in 1 32; do
		echo "vireo run --kernel $guest ${bench_cmd[*]} --cmdline 'bench bench-rw=randread bench-qd=$qd bench-queues=2 bench-secs=3'"
		line=$(timeout 60 "$vireo" run --kernel "$guest" "${bench_cmd[@]}" \
			--cmdline "bench bench-rw=randread bench-qd=$qd bench-queues=2 bench-secs=3" </dev/null |
			grep -a '^BENCH iops=' || true)
		if [[ -n $line ]]; then
			echo "$line"
			results+=("BENCH vireo virtio-blk randread 4k QD$qd x 2 queues: ${line#BENCH }")
		else
			results+=("FAIL  benchmark at QD$qd: no BENCH line")
		fi
	done
elif [[ -x $build/bench/vireo-blk-loop ]]; then
	step "Benchmark without KVM: vireo's virtio-blk data path driven by host threads"
	echo "No usable /dev/kvm here, so no guest can be timed. vireo-blk-loop builds the same drive"
	echo "as 'vireo run --drive' (iothreads, io_uring, virtio-blk behind virtio-pci) and one host"
	echo "thread per queue plays the test guest's polling driver (bench/blk/loop.c); then fio runs"
	echo "the same job on the host itself. The guest's own exits are left out."
	bench_file
	for qd in 1 32; do
		spec="file=$bench_disk,format=raw,if=virtio-blk,num-queues=2,iothreads=2,cache=writeback"
		echo "vireo-blk-loop --drive $spec --rw randread --qd $qd --secs 3"
		line=$(timeout 60 "$build/bench/vireo-blk-loop" --drive "$spec" --rw randread \
			--qd "$qd" --secs 3 --warmup-ms 500 </dev/null | grep '^BENCH iops=' || true)
		if [[ -z $line ]]; then
			results+=("FAIL  vireo-blk-loop at QD$qd: no BENCH line")
			continue
		fi
		echo "$line"
		host=$(fio --name=host --filename="$bench_disk" --ioengine=io_uring --direct=0 \
			--rw=randread --bs=4096 --iodepth="$qd" --numjobs=2 --time_based --runtime=3 \
			--ramp_time=1 --norandommap --randrepeat=0 --invalidate=0 --group_reporting \
			--output-format=terse --terse-version=3 2>/dev/null | cut -d';' -f8 || true)
		loop_iops=$(sed -E 's/^BENCH iops=([0-9]+).*/\1/' <<<"$line")
		ratio=n/a
		[[ $host =~ ^[0-9]+$ ]] && ((host > 0)) &&
			ratio=$(awk -v a="$loop_iops" -v b="$host" 'BEGIN { printf "%.2f", a / b }')
		echo "host fio, same job: ${host:-?} IOPS"
		results+=("BENCH vireo data path (no KVM) randread 4k QD$qd x 2 queues: ${line#BENCH }; host fio ${host:-?} IOPS; vireo/host $ratio")
	done
else
	results+=("SKIP  benchmark: needs the test guest, --drive and /dev/kvm")
fi

step "Summary ($(since "$t_start") in all)"
printf '  %s\n' "${results[@]}"
printf '%s\n' "${results[@]}" | grep -q '^FAIL' && exit 1
exit 0
