#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# VHDX crash consistency (issue 20): a vireo writer is killed with SIGKILL at a random moment,
# round after round, on VHDX images that live on from round to round. After every kill:
#  - the log the kill may have left (a commit's entry with its BAT sectors not yet, or only
#    partly, in place; or an emptied log) is replayed by qemu-img check -r all in odd rounds
#    and by vireo-img check -r all in even ones: each tool replays the other's entries too;
#  - then `qemu-img check` must find the image clean;
#  - every write a completed flush covered must read back (crash_check, as in qcow2-crash.sh:
#    the writer logs each operation before issuing it and each completed flush; a byte must be
#    the flushed state's or come from an operation issued after the last completed flush).
# Writers ("paths"): img, img_io -l (writes at byte offsets, write-zeroes, discards, flushes);
# vm, vireo running the test guest's blk-crashwriter on the image as a virtio-blk disk (2 queues,
# 2 iothreads). SIGKILL keeps the page cache: this finds what vireo keeps in memory past a
# completed flush and what either tool's replay gets wrong, not missing fsyncs (a power cut).
# Prints per configuration: rounds, kills mid-run, writers that finished first, kills that left
# a log to replay, images not clean, lost flushed writes, stray bytes (the last three must be 0).
# Configurations: dynamic 1 MiB and 8 MiB blocks, fixed (block_state_zero=off: blocks in
# place) and fixed as qemu-img makes it by default (ZERO blocks: writes append); half the rounds
# of an image open it with cache=none.
# usage: vhdx-crash.sh [--rounds N] [--path img|vm|both] VIREO_IMG IMG_IO CRASH_CHECK [VIREO GUEST_ELF]
# Exit 77 without qemu-img; the vm path is skipped without /dev/kvm.
set -u
ROUNDS=24 PATHS=both VM_OPS=1500
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--path) PATHS=$2; shift 2 ;;
	-*) echo "vhdx-crash.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 3 ] || { echo "usage: vhdx-crash.sh [options] VIREO_IMG IMG_IO CRASH_CHECK [VIREO GUEST_ELF]" >&2; exit 2; }
VI=$(realpath "$1")
IO=$(realpath "$2")
CHECK=$(realpath "$3")
VIREO=${4:+$(realpath "$4")}
ELF=${5:+$(realpath "$5")}
command -v qemu-img >/dev/null || { echo "SKIP: qemu-img not installed"; exit 77; }
case "$PATHS" in
img) paths=(img) ;;
vm) paths=(vm) ;;
both) paths=(img vm) ;;
*) echo "vhdx-crash.sh: --path img|vm|both" >&2; exit 2 ;;
esac
if [ "$PATHS" != img ] && { [ -z "$ELF" ] || ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; }; then
	[ "$PATHS" = vm ] && { echo "SKIP: no /dev/kvm or no guest"; exit 77; }
	echo "# no /dev/kvm or no guest: the vm path is skipped"
	paths=(img)
fi
T=$(mktemp -d /tmp/vireo-vhdx-crash.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$(realpath "$0")")/crash-lib.sh"
cd "$T" || exit 1
RANDOM=20
SIZE=$((32 * 1024 * 1024))
configs=(
	d1m:block_size=1M
	d8m:block_size=8M
	fixed:subformat=fixed,block_state_zero=off,block_size=1M
	fixed-zero:subformat=fixed,block_size=2M
)
declare -A rounds killed finished replayed corrupt lost stray

new_image() { # NAME PATH
	local opts
	opts=$(printf '%s\n' "${configs[@]}" | sed -n "s/^$1://p")
	rm -f "$1-$2.vhdx"
	"$VI" create -q -f vhdx -o "$opts" "$1-$2.vhdx" $SIZE || { echo "FAIL: create $opts"; exit 1; }
	qemu-img convert -O raw "$1-$2.vhdx" "$1-$2.raw"
}

img_writer() { # IMG LOG: 300 operations, killed after 2-150 ms (crash-lib.sh)
	local cmds=() off len pick i
	for i in $(seq 1 300); do
		pick=$((RANDOM % 100))
		off=$(( (RANDOM * 32768 + RANDOM) % (SIZE - 140000) ))
		len=$((RANDOM % 131072 + 1))
		if [ $pick -lt 12 ]; then
			cmds+=(-c flush)
		elif [ $pick -lt 18 ]; then
			cmds+=(-c "discard $off $len")
		elif [ $pick -lt 26 ]; then
			cmds+=(-c "write -z $off $len")
		else
			cmds+=(-c "write -S $((round << 16 | i)) $off $len")
		fi
	done
	"$IO" -l -f vhdx -o cache="$cache" "${cmds[@]}" "$1" >"$2" 2>writer.err &
	pid=$!
	crash_kill_after "$key/$cache" 150
}

vm_writer() { crash_vm_writer vhdx "$@"; } # IMG LOG: the guest's writer, killed while it runs

failures=0
for round in $(seq 1 "$ROUNDS"); do
	path=${paths[$(( (round - 1) % ${#paths[@]} ))]}
	name=${configs[$(( (round - 1) / ${#paths[@]} % ${#configs[@]} ))]%%:*}
	key=$name/$path img=$name-$path.vhdx raw=$name-$path.raw
	[ -e "$img" ] || new_image "$name" "$path"
	rounds[$key]=$(( ${rounds[$key]:-0} + 1 ))
	: >log
	cache=writeback
	[ $((rounds[$key] / 2 % 2)) -eq 1 ] && cache=none
	"${path}_writer" "$img" log
	crash_reap
	# a log left to replay? then the replay: qemu's in odd rounds, vireo's in even ones
	qemu-img info "$img" 2>&1 | grep -q "needs to be replayed" &&
		replayed[$key]=$(( ${replayed[$key]:-0} + 1 ))
	if [ $((round % 2)) -eq 1 ]; then
		who=qemu-img
		qemu-img check -q -r all "$img" >check.out 2>&1
	else
		who=vireo-img
		"$VI" check -q -r all "$img" >check.out 2>&1
	fi
	rc=$?
	if [ $rc -eq 0 ]; then
		qemu-img check "$img" >>check.out 2>&1
		rc=$?
	fi
	if [ $rc -ne 0 ]; then
		echo "not ok - round $round ($key): not clean after $who check -r all"
		cat check.out
		corrupt[$key]=$(( ${corrupt[$key]:-0} + 1 ))
		failures=$((failures + 1))
		crash_keep vireo-vhdx-crash-failure "not clean"
		new_image "$name" "$path"
		continue
	fi
	qemu-img convert -O raw "$img" after.raw
	crash_compare " after $who's replay"
	rc=$?
	if [ $rc -ne 0 ]; then
		crash_keep vireo-vhdx-crash-failure "crash_check exit $rc"
		new_image "$name" "$path"
		continue
	fi
	mv after.raw "$raw"
done

fmt='%-14s %6s %6s %8s %8s %7s %7s %7s\n'
# shellcheck disable=SC2059
printf "$fmt" config rounds killed finished replayed corrupt lost_wr stray_b
tk=0 tr=0
for path in "${paths[@]}"; do
	for cfg in "${configs[@]}"; do
		key=${cfg%%:*}/$path
		[ -n "${rounds[$key]:-}" ] || continue
		# shellcheck disable=SC2059
		printf "$fmt" "$key" "${rounds[$key]}" "${killed[$key]:-0}" "${finished[$key]:-0}" \
			"${replayed[$key]:-0}" "${corrupt[$key]:-0}" "${lost[$key]:-0}" "${stray[$key]:-0}"
		tk=$((tk + ${killed[$key]:-0})) tr=$((tr + ${replayed[$key]:-0}))
	done
done
echo "$ROUNDS rounds: $tk kills mid-run, $tr logs replayed, $failures failures"
if [ "$ROUNDS" -ge 10 ] && [ $tk -lt $((ROUNDS / 3)) ]; then
	echo "not ok - only $tk of $ROUNDS writers were killed mid-run"
	failures=$((failures + 1))
fi
[ $failures -eq 0 ]
