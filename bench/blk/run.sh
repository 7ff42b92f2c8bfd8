#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/blk/run.sh [BUILD_DIR]
# 4 KiB random I/O through virtio-blk and/or virtio-scsi (BENCH_DEVS): vireo, then QEMU 10 at its
# best, then fio on the host, on the same file, for every configuration:
#   cache   none (O_DIRECT: disk-bound) | writeback (page-cached file: VMM-bound)
#   rw      randread | randwrite;  qd 1 | 32 (per queue);  queues 1 | 2 (one iothread and one
#           vCPU per queue; the host runs one fio job per queue)
# The VMMs run the test guest's benchmark mode (tests/guest/cases/bench.c): it polls the used rings
# from CPL3 and asks for no interrupts (BENCH_WAIT=poll), or sleeps in hlt until the queue's MSI-X
# interrupt whenever it finds no completion (BENCH_WAIT=irq, as a Linux guest running fio does),
# kicks only when EVENT_IDX / NO_NOTIFY say so, prints
# "BENCH START" when its measured window opens, "BENCH END" when it closes, then a "BENCH iops=..."
# line. We read the console as it comes and sample the VMM's /proc/PID/stat at START and END.
#
# Devices (BENCH_DEVS, "virtio-blk" by default; "virtio-blk virtio-scsi" runs both, interleaved):
#   virtio-blk   vireo --drive if=virtio-blk,num-queues=N,iothreads=N; QEMU -drive aio=io_uring +
#                virtio-blk-pci with iothread-vq-mapping (JSON -device)
#   virtio-scsi  vireo --object iothread x N, --blockdev raw over file (cache.direct as the cache
#                mode), --device virtio-scsi-pci,num-queues=N,iothread-vq-mapping=io0:io1..,
#                --device scsi-hd; QEMU the same with -object iothread, -blockdev file with
#                aio=io_uring and JSON -devices; the guest runs bench-dev=scsi: READ(10)/WRITE(10)
#                of LUN 0, bench-qd per request queue, the same loop and BENCH lines as virtio-blk.
#                The loop tool (vmm=loop) drives virtio-blk only and is skipped here; host fio
#                runs once per configuration whatever the devices (its lines say dev=-).
#
# Each measurement prints one line
#   RESULT vmm=vireo dev=virtio-blk cache=none rw=randread qd=32 queues=2 iops=N p50_us=X
#          p99_us=Y cpu_us_per_io=Z vmm_cpu_us_per_io=W kicks=K wait=poll|irq irqs=I
#          p999_us=T max_us=M fill=F
# and at the end, besides the ratios, a TAIL line per configuration and VMM: the medians of p99,
# p99.9 and the longest request (bench/blk/uring-lat.sh splits such a tail between the device and
# the ring).
# cpu_us_per_io: the VMM process's utime+stime over the window (all threads, vCPUs included, so
# the guest's own polling counts) per I/O; vmm_cpu_us_per_io: the same minus guest_time, roughly
# what the VMM itself spent (guest_time is sampled at ticks while utime+stime are scaled to the
# precise runtime, so it is approximate; clamped at 0). For vmm=host both are fio's usr+sys per I/O.
# kicks: notifications the guest wrote in the window (0 when the VMM polls); irqs: interrupts the
# guest took in it (0 with wait=poll; wait=- and irqs=- for the host). The run ends with the ratios
# vireo/QEMU and vireo/host (and QEMU/host) per device and configuration, and with both devices
# DEVRATIO lines: virtio-scsi / virtio-blk for each VMM (iops, and cpu per I/O). A VMM that fails
# prints a FAILED line with its last words and the run goes on.
#
# Environment: BENCH_SECS (measured seconds per run, 10), BENCH_WARMUP_MS (1000), BENCH_QUICK=1
# (2 s runs, a subset of the configurations), BENCH_VMMS ("vireo qemu host"), BENCH_DEVS
# ("virtio-blk"; "virtio-blk virtio-scsi" for both, see above), BENCH_CACHES,
# BENCH_RWS, BENCH_QDS, BENCH_QUEUES (space-separated lists), BENCH_SIZE (file size, 1G),
# BENCH_DIR (where the file lives, BUILD_DIR/bench-blk: it must support O_DIRECT), BENCH_FILL
# (how the file is made, which decides what the file system does under a write: urandom, the
# default: every extent written with random data, dd from /dev/urandom with conv=fsync; zero:
# every extent written with zeroes; fallocate: allocated, unwritten extents, so a first write
# converts them; sparse: a hole, so a write allocates; the file is made again when the fill
# changes), BENCH_REPEAT
# (runs of each VMM per configuration, interleaved; MEDIAN lines and the ratios use the medians;
# 1), BENCH_VIREO_DRIVE_OPTS (extra --drive keys for vireo, e.g. poll-max-ns=0; for virtio-scsi
# its iothread keys poll-max-ns, poll-grow, poll-shrink, poll-backoff and iothread-nice go onto
# the --object iothreads, and other keys onto the file node),
# BENCH_VIREO_ARGS (extra vireo arguments, e.g. "--affinity io0=1 --affinity vcpu0=0"), BENCH_WAIT
# (poll | irq: how the guest waits for completions, bench-wait=; poll), BENCH_VCPU_NICE (a nice
# value for the vCPU threads: vireo's --vcpu-nice, the loop's drivers, and QEMU's "CPU n/KVM"
# threads, reniced once its guest prints its first line; unset: none is changed), BENCH_SYSCALLS=1
# (perf stat counts the VMM's system calls, every thread, over the measured window: the RESULT
# lines of vireo and QEMU end with syscalls_per_io, uring_enter_per_io and ioctl_per_io; needs
# perf and root). This machine's figures drift 2-5x with the other load on its 2 cores: use 3 or more.
# Needs /dev/kvm, qemu-system-x86_64 (10.x: iothread-vq-mapping), fio, jq.
#
# BENCH_VMMS may also name "loop": vireo's device without KVM (build/bench/vireo-blk-loop, see
# bench/blk/loop.c): one host thread per queue plays the test guest's polling driver on the same
# drive, so vireo's own per-request code can be measured and profiled where /dev/kvm is missing
# (BENCH_VMMS="loop host"). Its RESULT lines say vmm=loop and the ratios add loop/host.
# BENCH_WAIT applies to it too (--wait: irq sleeps in poll() on the queue vector's eventfd).
set -uo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
elf=$build/tests/guest/guest.elf
vireo=$build/vireo
secs=${BENCH_SECS:-10}
warmup=${BENCH_WARMUP_MS:-1000}
size=${BENCH_SIZE:-1G}
dir=${BENCH_DIR:-$build/bench-blk}
vmms=${BENCH_VMMS:-vireo qemu host}
devs=${BENCH_DEVS:-virtio-blk}
caches=${BENCH_CACHES:-none writeback}
rws=${BENCH_RWS:-randread randwrite}
qds=${BENCH_QDS:-1 32}
queues_list=${BENCH_QUEUES:-1 2}
repeat=${BENCH_REPEAT:-1}
wait=${BENCH_WAIT:-poll}
vireo_opts=${BENCH_VIREO_DRIVE_OPTS:+,$BENCH_VIREO_DRIVE_OPTS}
read -r -a vireo_args <<<"${BENCH_VIREO_ARGS:-}"
vcpu_nice=${BENCH_VCPU_NICE:-}
nice_args=()
if [ -n "$vcpu_nice" ]; then
	[[ "$vcpu_nice" =~ ^-?[0-9]+$ ]] && [ "$vcpu_nice" -ge -20 ] && [ "$vcpu_nice" -le 19 ] ||
		{ echo "bench/blk: BENCH_VCPU_NICE=$vcpu_nice: expected -20..19" >&2; exit 1; }
	nice_args=(--vcpu-nice "$vcpu_nice")
fi
subset=""
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	secs=${BENCH_SECS:-2}
	warmup=${BENCH_WARMUP_MS:-500}
	subset="randread/1/1 randread/32/2 randwrite/32/2"
fi
tck=$(getconf CLK_TCK)

die() { echo "bench/blk: $*" >&2; exit 1; }
case "$wait" in poll|irq) ;; *) die "BENCH_WAIT=$wait: expected poll or irq" ;; esac
for dev in $devs; do
	case "$dev" in virtio-blk|virtio-scsi) ;;
	*) die "BENCH_DEVS: $dev: expected virtio-blk and/or virtio-scsi" ;; esac
done
[ -n "$devs" ] || die "BENCH_DEVS is empty"
# BENCH_VIREO_DRIVE_OPTS for virtio-scsi: iothread keys onto --object iothread, others onto the file
scsi_io_opts="" scsi_file_opts=""
for kv in ${BENCH_VIREO_DRIVE_OPTS:+${BENCH_VIREO_DRIVE_OPTS//,/ }}; do
	case "${kv%%=*}" in
	poll-max-ns|poll-grow|poll-shrink|poll-backoff) scsi_io_opts+=",$kv" ;;
	iothread-nice) scsi_io_opts+=",nice=${kv#*=}" ;;
	*) scsi_file_opts+=",file.$kv" ;;
	esac
done
if [[ " $vmms " == *" vireo "* || " $vmms " == *" qemu "* ]]; then
	[ -f "$elf" ] || die "no $elf: build first (ninja -C $build)"
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "needs /dev/kvm (BENCH_VMMS=\"loop host\" does not)"
fi
command -v jq >/dev/null || die "needs jq (apt-get install jq)"
qemu=$(command -v qemu-system-x86_64 || true)
command -v fio >/dev/null || die "needs fio"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vireo-bench-blk.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
logs=$dir/logs    # every run's console and stderr, kept for a look afterwards

# ---- the disk file: fully written (holes would read without touching the disk), on a
# filesystem that takes O_DIRECT.
mkdir -p "$dir" "$logs"
disk=$dir/disk.raw
bytes=$(numfmt --from=iec "$size")
fill=${BENCH_FILL:-urandom}
case $fill in
urandom | zero | fallocate | sparse) ;;
*) die "BENCH_FILL: '$fill' is not urandom, zero, fallocate or sparse" ;;
esac
if [ ! -f "$dir/.filled-$fill-$bytes" ] || [ "$(stat -c %s "$disk" 2>/dev/null)" != "$bytes" ]; then
	echo "bench/blk: making $disk ($size, $fill)"
	rm -f "$dir"/.filled-* "$disk"
	case $fill in
	urandom | zero)
		dd if=/dev/$fill of="$disk" bs=1M count=$((bytes >> 20)) conv=fsync status=none ||
			die "could not fill $disk"
		;;
	fallocate) fallocate -l "$bytes" "$disk" || die "could not fallocate $disk" ;;
	sparse) truncate -s "$bytes" "$disk" || die "could not make $disk" ;;
	esac
	[ "$(stat -c %s "$disk")" = "$bytes" ] || die "$disk: BENCH_SIZE must be whole MiB"
	touch "$dir/.filled-$fill-$bytes"
fi
dd if="$disk" of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null ||
	die "$disk: O_DIRECT reads fail on $(stat -f -c %T "$disk") (set BENCH_DIR)"
echo "bench/blk: $disk ($size, $(stat -f -c %T "$disk") on $(df --output=source "$disk" | tail -1))," \
	"${secs} s per run after ${warmup} ms of warm-up, guest wait=$wait${vcpu_nice:+, vCPU nice $vcpu_nice}"

rep=1              # the run in progress (log file names)
dev=virtio-blk     # the device in progress (run_vireo, run_qemu, emit)
declare -A res     # "vmm dev cache rw qd q" -> lines "iops p50 p99 cpu vmmcpu p999 max", one per run

emit() { # vmm cache rw qd q iops p50 p99 cpu vmmcpu kicks wait irqs p999 max (dev: $dev, - for host)
	local d=$dev
	[ "$1" = host ] && d=-
	printf 'RESULT vmm=%s dev=%s cache=%s rw=%s qd=%s queues=%s iops=%s p50_us=%s p99_us=%s cpu_us_per_io=%s vmm_cpu_us_per_io=%s kicks=%s wait=%s irqs=%s p999_us=%s max_us=%s fill=%s%s\n' "$1" "$d" "${@:2:14}" "$fill" "${sys_fields:-}"
	res["$1 $d $2 $3 $4 $5"]+="$6 $7 $8 $9 ${10} ${14:--} ${15:--}"$'\n'
	sys_fields=""
}

field() { # line key
	sed -n "s/.*[ ]$2=\([^ ]*\).*/\1/p" <<<" $1"
}

# BENCH_SYSCALLS=1: perf stat on every thread of a VMM from the window's start to its end
sys_start() { # pid
	rm -f "$tmp/syscalls.csv" # no run's counts left for the next to report
	[ "${BENCH_SYSCALLS:-0}" = 1 ] || return 0
	perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter \
		-e syscalls:sys_enter_ioctl -p "$1" -o "$tmp/syscalls.csv" 2>/dev/null &
	sys_pid=$!
}
sys_stop() {
	[ -n "${sys_pid:-}" ] || return 0
	kill -INT "$sys_pid" 2>/dev/null
	wait "$sys_pid" 2>/dev/null
	sys_pid=""
}
sys_per_io() { # ios: sys_fields, the counts per I/O of the window sys_stop ended
	sys_fields=""
	[ "${BENCH_SYSCALLS:-0}" = 1 ] || return 0
	sys_fields=$(awk -F, -v n="$1" '
		$3 == "raw_syscalls:sys_enter" { all = $1 }
		$3 == "syscalls:sys_enter_io_uring_enter" { ur = $1 }
		$3 == "syscalls:sys_enter_ioctl" { io = $1 }
		END { if (all == "" || n <= 0) exit 1
		      printf " syscalls_per_io=%.4f uring_enter_per_io=%.4f ioctl_per_io=%.4f",
			     all / n, ur / n, io / n }' "$tmp/syscalls.csv" 2>/dev/null) ||
		echo "bench/blk: perf stat counted no system calls (BENCH_SYSCALLS=1 needs perf, root)" >&2
}

cpu_ticks() { # pid: "utime+stime guest_time" in clock ticks (every thread of the process)
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13, $41}'
}

# Every run starts from the same page-cache state: pages that random I/O brought back one by one
# sit in 4 KiB folios and cost the kernel ~25 % more per read than 2 MiB ones, and a random write
# into a file cached in 2 MiB folios ran 5x slower than into an uncached one. So the file is
# written back and dropped before each run, and re-read in order for page-cached reads.
drop_cache() {
	sync "$disk" && dd if="$disk" iflag=nocache count=0 status=none ||
		die "could not drop $disk from the page cache"
}
prepare_cache() { # cache rw
	drop_cache
	if [ "$1" = writeback ] && [ "$2" = randread ]; then
		cat "$disk" >/dev/null || die "could not read $disk"
	fi
	return 0
}

# BENCH_VCPU_NICE for QEMU, which has no option for it: its vCPU threads (named "CPU n/KVM" with
# -name debug-threads=on) exist once the guest prints, long before the measured window opens.
renice_qemu_vcpus() { # pid
	local t n=0 comm
	for t in /proc/"$1"/task/*; do
		comm=$(cat "$t/comm" 2>/dev/null) || continue
		case "$comm" in
		"CPU "*/KVM) renice -n "$vcpu_nice" -p "${t##*/}" >/dev/null || return 1; n=$((n + 1)) ;;
		esac
	done
	[ "$n" -gt 0 ] || { echo "bench/blk: no QEMU vCPU thread to renice" >&2; return 1; }
}

# run_guest vmm cache rw qd q cmd...: runs a VMM on the bench guest, follows its console
run_guest() {
	local vmm=$1 cache=$2 rw=$3 qd=$4 q=$5
	shift 5
	local fifo=$tmp/console log=$logs/$vmm-${dev#virtio-}-$wait-$cache-$rw-qd$qd-q$q-$rep.log
	local err=$logs/$vmm-${dev#virtio-}-$wait-$cache-$rw-qd$qd-q$q-$rep.err
	local line c0 c1 g0 g1 bench="" pid fd status deadline reniced=""
	rm -f "$fifo" && mkfifo "$fifo"
	"$@" >"$fifo" 2>"$err" </dev/null &
	pid=$!
	exec {fd}<"$fifo"
	: >"$log"
	deadline=$(( $(date +%s) + secs + warmup / 1000 + 60 ))
	while :; do
		if IFS= read -r -t 2 -u "$fd" line; then
			printf '%s\n' "$line" >>"$log"
			if [ "$vmm" = qemu ] && [ -n "$vcpu_nice" ] && [ -z "$reniced" ]; then
				renice_qemu_vcpus "$pid" || { kill "$pid"; break; }
				reniced=1
			fi
			# a damaged console line must not lose the window ("ENCH END" was seen once)
			case "$line" in
			*"NCH START"*) read -r c0 g0 < <(cpu_ticks "$pid"); sys_start "$pid" ;;
			*"NCH END"*) read -r c1 g1 < <(cpu_ticks "$pid"); sys_stop ;;
			*"NCH iops="*) bench=$line ;;
			esac
			case "$line" in
			*NCH" "*) [[ "$line" == BENCH" "* ]] ||
				echo "NOTE vmm=$vmm: damaged console line \"$line\"" >&2 ;;
			esac
		elif [ $? -le 128 ]; then
			break                           # end of the console
		elif [ "$(date +%s)" -ge "$deadline" ]; then
			echo "timed out" >>"$err"
			kill "$pid" 2>/dev/null
			break
		fi
	done
	exec {fd}<&-
	sys_stop # a VMM that ended inside the window
	wait "$pid"
	status=$?
	if [ -z "$bench" ] || [ -z "${c0:-}" ] || [ -z "${c1:-}" ]; then
		printf 'FAILED vmm=%s dev=%s cache=%s rw=%s qd=%s queues=%s: exit status %s: %s\n' \
			"$vmm" "$dev" "$cache" "$rw" "$qd" "$q" "$status" \
			"$( { grep -E 'FAIL|skip|PANIC|error' "$log"; tail -n 3 "$err"; } | tail -n 3 | tr '\n' ' ')"
		return 1
	fi
	local ios iops
	ios=$(field "$bench" ios)
	sys_per_io "$ios"
	iops=$(field "$bench" iops)
	emit "$vmm" "$cache" "$rw" "$qd" "$q" "$iops" "$(field "$bench" p50_us)" \
		"$(field "$bench" p99_us)" \
		"$(awk -v c=$((c1 - c0)) -v t="$tck" -v n="$ios" 'BEGIN {printf "%.2f", c / t * 1e6 / n}')" \
		"$(awk -v c=$((c1 - c0 - g1 + g0)) -v t="$tck" -v n="$ios" \
			'BEGIN {c = c < 0 ? 0 : c; printf "%.2f", c / t * 1e6 / n}')" \
		"$(field "$bench" kicks)" "$wait" "$(field "$bench" irqs)" \
		"$(field "$bench" p999_us)" "$(field "$bench" max_us)"
}

guest_cmdline() { # rw qd q
	local d=""
	[ "$dev" = virtio-scsi ] && d=" bench-dev=scsi"
	echo "bench$d bench-rw=$1 bench-qd=$2 bench-queues=$3 bench-secs=$secs" \
		"bench-warmup-ms=$warmup bench-wait=$wait"
}

# vireo's arguments for the disk: $dev with q queues, one iothread each, cache mode c
vireo_disk_args() { # cache q
	local c=$1 q=$2 i map="" direct=off
	if [ "$dev" = virtio-blk ]; then
		echo "--drive"
		echo "file=$disk,format=raw,if=virtio-blk,num-queues=$q,iothreads=$q,cache=$c$vireo_opts"
		return
	fi
	[ "$c" = none ] && direct=on
	for ((i = 0; i < q; i++)); do
		printf '%s\n' --object "iothread,id=io$i$scsi_io_opts"
		map+="${map:+:}io$i"
	done
	printf '%s\n' --blockdev \
		"driver=raw,node-name=d0,file.driver=file,file.filename=$disk,file.aio=io_uring,file.cache.direct=$direct$scsi_file_opts" \
		--device "virtio-scsi-pci,id=scsi0,num-queues=$q,iothread-vq-mapping=$map" \
		--device "scsi-hd,drive=d0,bus=scsi0.0,scsi-id=0,lun=0"
}

run_vireo() { # cache rw qd q
	local c=$1 rw=$2 qd=$3 q=$4 disk_args
	[ -x "$vireo" ] || { echo "FAILED vmm=vireo: no $vireo"; return 1; }
	mapfile -t disk_args < <(vireo_disk_args "$c" "$q")
	run_guest vireo "$c" "$rw" "$qd" "$q" "$vireo" run --kernel "$elf" --cpus 2 --memory 256M \
		--serial stdio --cmdline "$(guest_cmdline "$rw" "$qd" "$q")" "${disk_args[@]}" \
		${nice_args[@]+"${nice_args[@]}"} ${vireo_args[@]+"${vireo_args[@]}"}
}

run_qemu() { # cache rw qd q
	local c=$1 rw=$2 qd=$3 q=$4 direct=off objs=() map="" i disk_args
	[ -n "$qemu" ] || { echo "FAILED vmm=qemu: qemu-system-x86_64 not installed"; return 1; }
	[ "$c" = none ] && direct=on
	for ((i = 0; i < q; i++)); do
		objs+=(-object "iothread,id=io$i")
		map+="${map:+,}{\"iothread\":\"io$i\"}"
	done
	if [ "$dev" = virtio-blk ]; then
		disk_args=(-drive "file=$disk,if=none,id=d0,format=raw,aio=io_uring,cache.direct=$direct"
			-device "{\"driver\":\"virtio-blk-pci\",\"drive\":\"d0\",\"num-queues\":$q,\"disable-legacy\":\"on\",\"iothread-vq-mapping\":[$map]}")
	else
		# JSON for the disk too: QEMU makes the JSON -devices after the others
		disk_args=(-blockdev "{\"driver\":\"raw\",\"node-name\":\"d0\",\"file\":{\"driver\":\"file\",\"filename\":\"$disk\",\"aio\":\"io_uring\",\"cache\":{\"direct\":$([ "$direct" = on ] && echo true || echo false)}}}"
			-device "{\"driver\":\"virtio-scsi-pci\",\"id\":\"scsi0\",\"num_queues\":$q,\"disable-legacy\":\"on\",\"iothread-vq-mapping\":[$map]}"
			-device "{\"driver\":\"scsi-hd\",\"drive\":\"d0\",\"bus\":\"scsi0.0\",\"scsi-id\":0,\"lun\":0}")
	fi
	run_guest qemu "$c" "$rw" "$qd" "$q" "$qemu" -M q35 -enable-kvm -cpu host,-arch-capabilities \
		-smp 2 -m 256M -nodefaults -display none -no-reboot -monitor none -serial stdio \
		-name bench,debug-threads=on \
		-device isa-debug-exit,iobase=0xf4,iosize=4 "${objs[@]}" "${disk_args[@]}" \
		-kernel "$elf" -append "$(guest_cmdline "$rw" "$qd" "$q")"
}

run_loop() { # cache rw qd q
	local c=$1 rw=$2 qd=$3 q=$4 out err line
	local loop=$build/bench/vireo-blk-loop
	[ -x "$loop" ] || { echo "FAILED vmm=loop: no $loop"; return 1; }
	out=$logs/loop-$c-$rw-qd$qd-q$q-$rep.log
	err=$logs/loop-$c-$rw-qd$qd-q$q-$rep.err
	"$loop" --drive "file=$disk,format=raw,if=virtio-blk,num-queues=$q,iothreads=$q,cache=$c$vireo_opts" \
		--rw "$rw" --qd "$qd" --secs "$secs" --warmup-ms "$warmup" --wait "$wait" \
		${nice_args[@]+"${nice_args[@]}"} >"$out" 2>"$err" </dev/null
	line=$(grep '^BENCH iops=' "$out")
	if [ -z "$line" ]; then
		printf 'FAILED vmm=loop cache=%s rw=%s qd=%s queues=%s: %s\n' "$c" "$rw" "$qd" "$q" \
			"$(tail -n 3 "$err" | tr '\n' ' ')"
		return 1
	fi
	emit loop "$c" "$rw" "$qd" "$q" "$(field "$line" iops)" "$(field "$line" p50_us)" \
		"$(field "$line" p99_us)" "$(field "$line" cpu_us_per_io)" \
		"$(field "$line" vmm_cpu_us_per_io)" "$(field "$line" kicks)" "$wait" \
		"$(field "$line" irqs)" "$(field "$line" p999_us)" "$(field "$line" max_us)"
}

run_host() { # cache rw qd q
	local c=$1 rw=$2 qd=$3 q=$4 direct=0 out=$tmp/fio.json dirn
	[ "$c" = none ] && direct=1
	dirn=read
	[ "$rw" = randwrite ] && dirn=write
	if ! fio --name=host --filename="$disk" --ioengine=io_uring --direct=$direct --rw="$rw" \
		--bs=4096 --iodepth="$qd" --numjobs="$q" --size="$bytes" --time_based \
		--runtime="$secs" --ramp_time="$((warmup / 1000 + 1))" --norandommap --randrepeat=0 \
		--invalidate=0 \
		--group_reporting --output-format=json --output="$out" >/dev/null 2>"$tmp/fio.err"; then
		echo "FAILED vmm=host cache=$c rw=$rw qd=$qd queues=$q: $(tail -n 2 "$tmp/fio.err" | tr '\n' ' ')"
		return 1
	fi
	local iops p50 p99 cpu ios p999 max
	read -r iops ios p50 p99 cpu p999 max < <(jq -r --arg d "$dirn" '.jobs[0] as $j | $j[$d] as $x |
		[($x.iops | floor), $x.total_ios,
		 ($x.clat_ns.percentile["50.000000"] / 1000), ($x.clat_ns.percentile["99.000000"] / 1000),
		 (($j.usr_cpu + $j.sys_cpu) / 100 * $j.job_runtime * 1000 / $x.total_ios),
		 ($x.clat_ns.percentile["99.900000"] / 1000), ($x.clat_ns.max / 1000)] | @tsv' "$out")
	emit host "$c" "$rw" "$qd" "$q" "$iops" "$(printf '%.1f' "$p50")" "$(printf '%.1f' "$p99")" \
		"$(printf '%.2f' "$cpu")" "$(printf '%.2f' "$cpu")" 0 - - "$(printf '%.1f' "$p999")" \
		"$(printf '%.1f' "$max")"
}

main() {
	local configs=() c rw qd q cfg vmm
	for c in $caches; do
		for rw in $rws; do
			for qd in $qds; do
				for q in $queues_list; do
					if [ -n "$subset" ] && [[ " $subset " != *" $rw/$qd/$q "* ]]; then
						continue
					fi
					configs+=("$c $rw $qd $q")
				done
			done
		done
	done

	local first_dev=${devs%% *} d
	if [[ " $vmms " == *" loop "* && " $devs " == *" virtio-scsi "* ]]; then
		echo "NOTE vmm=loop: bench/blk/loop.c drives virtio-blk only: no virtio-scsi loop runs"
	fi
	for cfg in "${configs[@]}"; do
		read -r c rw qd q <<<"$cfg"
		for ((rep = 1; rep <= repeat; rep++)); do
			for dev in $devs; do
				for vmm in $vmms; do
					# host fio has no device: once per configuration and run
					[ "$vmm" = host ] && [ "$dev" != "$first_dev" ] && continue
					[ "$vmm" = loop ] && [ "$dev" != virtio-blk ] && continue
					prepare_cache "$c" "$rw"
					"run_$vmm" "$c" "$rw" "$qd" "$q"
				done
			done
		done
	done

	echo
	if [ "$repeat" -gt 1 ]; then
		echo "Medians of $repeat runs"
		for cfg in "${configs[@]}"; do
			read -r c rw qd q <<<"$cfg"
			for vmm in $vmms; do
				for d in $devs -; do
					[ -n "${res["$vmm $d $cfg"]:-}" ] || continue
					printf 'MEDIAN vmm=%s dev=%s cache=%s rw=%s qd=%s queues=%s iops=%s p50_us=%s p99_us=%s cpu_us_per_io=%s vmm_cpu_us_per_io=%s p999_us=%s max_us=%s runs=%s\n' \
						"$vmm" "$d" "$c" "$rw" "$qd" "$q" $(median "$vmm $d $cfg")
				done
			done
		done
		echo
	fi
	echo "Ratios of the medians (iops: higher is better for vireo; p50 and cpu: lower is better)"
	for cfg in "${configs[@]}"; do
		local vi vp50 vc vv qi qp50 qc qv hi li
		read -r c rw qd q <<<"$cfg"
		read -r hi _ <<<"$(median "host - $cfg")"
		for d in $devs; do
			read -r vi vp50 _ vc vv _ <<<"$(median "vireo $d $cfg")"
			read -r qi qp50 _ qc qv _ <<<"$(median "qemu $d $cfg")"
			read -r li _ <<<"$(median "loop $d $cfg")"
			printf 'RATIO dev=%s wait=%s cache=%s rw=%s qd=%s queues=%s vireo/qemu iops=%s p50=%s cpu=%s vmm_cpu=%s vireo/host iops=%s qemu/host iops=%s loop/host iops=%s\n' \
				"$d" "$wait" "$c" "$rw" "$qd" "$q" "$(ratio "$vi" "$qi")" \
				"$(ratio "$vp50" "$qp50")" "$(ratio "$vc" "$qc")" "$(ratio "$vv" "$qv")" \
				"$(ratio "$vi" "$hi")" "$(ratio "$qi" "$hi")" "$(ratio "$li" "$hi")"
		done
	done
	echo
	echo "Tail latency, medians of the runs (fill=$fill)"
	for cfg in "${configs[@]}"; do
		read -r c rw qd q <<<"$cfg"
		for vmm in $vmms; do
			for d in $devs -; do
				local p99 p999 mx
				[ -n "${res["$vmm $d $cfg"]:-}" ] || continue
				read -r _ _ p99 _ _ p999 mx _ <<<"$(median "$vmm $d $cfg")"
				printf 'TAIL vmm=%s dev=%s cache=%s rw=%s qd=%s queues=%s fill=%s p99_us=%s p999_us=%s max_us=%s\n' \
					"$vmm" "$d" "$c" "$rw" "$qd" "$q" "$fill" "$p99" "$p999" "$mx"
			done
		done
	done
	[[ " $devs " == *" virtio-blk "* && " $devs " == *" virtio-scsi "* ]] || return 0
	echo
	echo "virtio-scsi / virtio-blk, same VMM (iops: higher is better for scsi; cpu: lower)"
	for cfg in "${configs[@]}"; do
		read -r c rw qd q <<<"$cfg"
		for vmm in $vmms; do
			local bi bc bv si sc sv
			[ "$vmm" = vireo ] || [ "$vmm" = qemu ] || continue
			read -r bi _ _ bc bv _ <<<"$(median "$vmm virtio-blk $cfg")"
			read -r si _ _ sc sv _ <<<"$(median "$vmm virtio-scsi $cfg")"
			printf 'DEVRATIO vmm=%s wait=%s cache=%s rw=%s qd=%s queues=%s scsi/blk iops=%s cpu=%s vmm_cpu=%s\n' \
				"$vmm" "$wait" "$c" "$rw" "$qd" "$q" "$(ratio "$si" "$bi")" \
				"$(ratio "$sc" "$bc")" "$(ratio "$sv" "$bv")"
		done
	done
}

# median "vmm cache rw qd q": per column, the median of the runs:
# "iops p50 p99 cpu vmmcpu p999 max runs"
median() {
	[ -n "${res["$1"]:-}" ] || { echo "- - - - - - - 0"; return; }
	printf '%s' "${res["$1"]}" | awk '{ for (i = 1; i <= 7; i++) v[i, NR] = $i }
		END { for (i = 1; i <= 7; i++) {
			n = 0; for (r = 1; r <= NR; r++) a[++n] = v[i, r]
			for (x = 1; x <= n; x++) for (y = x + 1; y <= n; y++) if (a[y] + 0 < a[x] + 0) { t = a[x]; a[x] = a[y]; a[y] = t }
			printf "%s ", (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
			print NR }'
}

ratio() { # a b -> a/b or n/a
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || a == "-" || b == "" || b == "-" || b == 0) print "n/a"; else printf "%.2f", a / b }'
}

# everything is read before anything runs: editing this file during a run cannot derail it
main "$@"
exit
