#!/usr/bin/env bash
# bench/boot/run.sh [BUILD_DIR] [RUNS]
# Time from a VMM's start to the guest kernel's first instruction, and the VMM's RSS overhead,
# for vireo and then qemu-system-x86_64 on the same guests (goal for vireo: <= 5 ms, <= 5 MiB).
#
# Start-up: the guest is tests/integration/guests/exit42.S, whose first instruction leads to the
# debug-exit port, so the wall time of a whole run (exec to exit, teardown included) bounds the
# time to the first guest instruction from above. Median of RUNS runs. vireo also reports its own
# measurement (--boot-timer: from main() to vCPU 0's first exit).
# RSS: the guest halts at once (halt.S); after 0.5 s we read /proc/PID/status. Guest RAM is a
# memfd (shared memory) in both VMMs, so the VMM's own overhead is VmRSS - RssShmem.
set -euo pipefail
build=${1:-build}
runs=${2:-30}
g=$build/tests/integration
[ -f "$g/exit42.elf" ] && [ -f "$g/halt.elf" ] || { echo "build first: ninja -C $build" >&2; exit 1; }
[ -c /dev/kvm ] || { echo "bench/boot needs /dev/kvm" >&2; exit 1; }

median_ms() { # command...: runs it $runs times, prints the median wall time in ms
	local t=()
	for _ in $(seq "$runs"); do
		local s e
		s=$(date +%s%N)
		"$@" >/dev/null 2>&1 || true
		e=$(date +%s%N)
		t+=($(( (e - s) / 1000 )))
	done
	printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}

rss_kib() { # command...: starts it, waits 0.5 s, prints "VmRSS RssShmem" in KiB, kills it
	"$@" >/dev/null 2>&1 &
	local pid=$!
	sleep 0.5
	local rss shm
	rss=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status)
	shm=$(awk '/^RssShmem:/ {print $2}' /proc/$pid/status)
	kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null || true
	echo "$rss $shm"
}

report() { # vmm startup_ms rss shm
	local over=$(( $3 - $4 ))
	printf 'RESULT bench=boot vmm=%s start_to_first_insn_ms=%s rss_kib=%s guest_shmem_kib=%s overhead_kib=%s\n' \
		"$1" "$2" "$3" "$4" "$over"
}

vireo=("$build/vireo" run --memory 128M --serial none)
v_ms=$(median_ms "${vireo[@]}" --kernel "$g/exit42.elf")
# vireo's own clock too: main() to the guest's first exit, without exec and teardown
t=()
for _ in $(seq "$runs"); do
	t+=($( { "${vireo[@]}" --boot-timer --kernel "$g/exit42.elf" 2>&1 || true; } | awk '/boot timer/ {print $7}'))
done
v_inner=$(printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "RESULT bench=boot vmm=vireo main_to_first_exit_ms=$v_inner (vireo --boot-timer, median)"
read -r v_rss v_shm < <(rss_kib "${vireo[@]}" --kernel "$g/halt.elf")
report vireo "$v_ms" "$v_rss" "$v_shm"

if command -v qemu-system-x86_64 >/dev/null; then
	for machine in microvm q35; do
		qemu=(qemu-system-x86_64 -M "$machine" -enable-kvm -cpu host,-arch-capabilities -m 128M
		      -object memory-backend-memfd,id=ram,size=128M -machine memory-backend=ram
		      -nodefaults -no-user-config -display none -serial none
		      -device isa-debug-exit,iobase=0xf4,iosize=4)
		q_ms=$(median_ms "${qemu[@]}" -kernel "$g/exit42.elf")
		read -r q_rss q_shm < <(rss_kib "${qemu[@]}" -kernel "$g/halt.elf")
		report "qemu-$machine" "$q_ms" "$q_rss" "$q_shm"
		awk -v v="$v_ms" -v q="$q_ms" -v vo=$((v_rss - v_shm)) -v qo=$((q_rss - q_shm)) -v m="$machine" \
			'BEGIN {printf "ratio vireo/qemu-%s: start-up %.3f, RSS overhead %.3f\n", m, v/q, vo/qo}'
	done
else
	echo "qemu-system-x86_64 not installed: no peer figures"
fi
