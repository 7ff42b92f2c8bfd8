#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Crash consistency: a vireo writer is killed with SIGKILL at a random moment, round after round,
# on qcow2 images that live on from round to round (each accumulating what the earlier kills
# left). After every kill:
#  - `qemu-img check` must find no corruption (exit 0, or 3: leaked clusters, which an
#    interrupted allocation may leave); every 10th round of an image `vireo-img check -r leaks`
#    repairs it, and qemu-img check must then find it clean;
#  - every write a completed flush covered must read back: the writer logs each operation before
#    issuing it and each completed flush (tests/interop/crash_pattern.h), and crash_check
#    replays the log over the disk's content from before the round and compares with what
#    `qemu-img convert` reads now: each byte must be the flushed state's, or come from an
#    operation issued after the last completed flush (crash_check.c says how exactly, discards
#    included).
# Two writers ("paths"):
#  img  img_io -l: writes (group commit, img_io -g 32, in every other round of an image),
#       write-zeroes, discards and flushes through vireo's block layer, at byte offsets and
#       lengths;
#  vm   vireo running the test guest's blk-crashwriter case on the image as a virtio-blk disk
#       (2 queues on 2 iothreads, 8 requests in flight): sector-granular writes, write-zeroes
#       (with and without unmap), discards, flushes.
# What SIGKILL tests and what it does not: the page cache survives the writer, so this finds what
# vireo keeps in its own memory past a completed flush (entries not published, refcounts held
# back, a group not sent), never a missing fsync or fsyncs in the wrong order (a power cut).
# The check can fail: with img_io's flush command not sending the pending group first, or with
# qcow2's publish() putting L2 entries only into the cache, qemu-img check still finds nothing
# but leaks, and crash_check reports the lost flushed writes (in 1 and 20 of 22 rounds); with
# discard leaving unallocated clusters over a backing file unchanged (vireo before 97bddf3), it
# reports the discarded bytes that still read the backing file (4 of 22 img rounds).
# Configurations (each path has its own image of each): cluster sizes 512 (refcount_bits=2),
# 4 KiB, 64 KiB and 2 MiB, with and without a raw backing file, and with subclusters
# (extended_l2=on) at 64 KiB and 2 MiB. Rounds go round-robin over (path, configuration); half
# of an image's rounds open it with cache=none (O_DIRECT), half with cache=writeback.
#
# usage: qcow2-crash.sh [--rounds N] [--path img|vm|both] [--vm-ops N]
#                       VIREO_IMG IMG_IO CRASH_CHECK [VIREO GUEST_ELF]
#   --rounds N  kill rounds in all (default 44: two per path and configuration)
#   --vm-ops N  operations the guest would make if never killed (default 2000)
# Prints one line per configuration: rounds, kills mid-run vs writers that finished first,
# rounds that left leaked clusters, corruptions, lost flushed writes (both must be 0).
# A failing image and its log are kept in /tmp/vireo-crash-failure-*. Exit 77 without qemu-img,
# or (vm path alone) without /dev/kvm; with --path both and no /dev/kvm only the img path runs.
set -u
ROUNDS=44 PATHS=both VM_OPS=2000
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--path) PATHS=$2; shift 2 ;;
	--vm-ops) VM_OPS=$2; shift 2 ;;
	-*) echo "qcow2-crash.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 3 ] || { echo "usage: qcow2-crash.sh [options] VIREO_IMG IMG_IO CRASH_CHECK [VIREO GUEST_ELF]" >&2; exit 2; }
VI=$(realpath "$1")
IO=$(realpath "$2")
CHECK=$(realpath "$3")
VIREO=${4:+$(realpath "$4")}
ELF=${5:+$(realpath "$5")}
for t in qemu-img qemu-io; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
case "$PATHS" in
img) paths=(img) ;;
vm) paths=(vm) ;;
both) paths=(img vm) ;;
*) echo "qcow2-crash.sh: --path img|vm|both" >&2; exit 2 ;;
esac
if [ "$PATHS" != img ]; then
	if [ -z "$ELF" ]; then
		echo "qcow2-crash.sh: the vm path needs VIREO and GUEST_ELF" >&2; exit 2
	fi
	if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
		[ "$PATHS" = vm ] && { echo "SKIP: /dev/kvm is not available"; exit 77; }
		echo "# /dev/kvm is not available: the vm path is skipped"
		paths=(img)
	fi
fi

T=$(mktemp -d /tmp/vireo-qcow2-crash.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$(realpath "$0")")/crash-lib.sh"
cd "$T" || exit 1
RANDOM=42
SIZE=$((32 * 1024 * 1024))
# name:cluster size:create options:backing (b) or not (-)
configs=(
	c512-rb2:512:cluster_size=512,refcount_bits=2:-
	c4k:4096:cluster_size=4k:-
	c4k-b:4096:cluster_size=4k:b
	c64k:65536:cluster_size=64k:-
	c64k-b:65536:cluster_size=64k:b
	c64k-x:65536:cluster_size=64k,extended_l2=on:-
	c64k-x-b:65536:cluster_size=64k,extended_l2=on:b
	c2m:2097152:cluster_size=2M:-
	c2m-b:2097152:cluster_size=2M:b
	c2m-x:2097152:cluster_size=2M,extended_l2=on:-
	c2m-x-b:2097152:cluster_size=2M,extended_l2=on:b
)
declare -A rounds killed finished leaky corrupt lost stray flushed unflushed

# the backing file: crash_fill data of its own seed, so that it differs from zeroes and from
# every write
qemu-img create -q -f raw base.raw $SIZE
"$IO" -f raw -c "write -S 3054 0 $SIZE" base.raw || { echo "FAIL: filling base.raw"; exit 1; }

# new_image NAME PATH: (re)creates the image and the record of its content
new_image() {
	local IFS=: c
	read -r _ _ opts back <<<"$(printf '%s\n' "${configs[@]}" | grep "^$1:")"
	rm -f "$1-$2.qcow2"
	if [ "$back" = b ]; then
		"$VI" create -q -f qcow2 -o "$opts" -b base.raw -F raw "$1-$2.qcow2" $SIZE
	else
		"$VI" create -q -f qcow2 -o "$opts" "$1-$2.qcow2" $SIZE
	fi || { echo "FAIL: vireo-img create $opts"; exit 1; }
	qemu-img convert -O raw "$1-$2.qcow2" "$1-$2.raw"
}

# img_writer IMG LOG: img_io with 400 operations, killed after 2-120 ms (crash-lib.sh)
img_writer() {
	local cmds=() grp=() off len pick i
	for i in $(seq 1 400); do
		pick=$((RANDOM % 100))
		off=$(( (RANDOM * 32768 + RANDOM) % (SIZE - 140000) ))
		len=$((RANDOM % 131072 + 1))
		if [ $pick -lt 10 ]; then
			cmds+=(-c flush)
		elif [ $pick -lt 14 ]; then
			len=$(( (RANDOM * 32768 + RANDOM) % (4 * 1024 * 1024) + 1 ))
			[ $((off + len)) -gt $SIZE ] && len=$((SIZE - off))
			cmds+=(-c "discard $off $len")
		elif [ $pick -lt 20 ]; then
			cmds+=(-c "discard $off $len")
		elif [ $pick -lt 28 ]; then
			cmds+=(-c "write -z $off $len")
		else
			cmds+=(-c "write -S $((round << 16 | i)) $off $len")
		fi
	done
	[ $((rounds[$key] % 2)) -eq 0 ] && grp=(-g 32)
	"$IO" -l -f qcow2 -o cache="$cache" "${grp[@]}" "${cmds[@]}" "$1" >"$2" 2>writer.err &
	pid=$!
	crash_kill_after "$key/$cache" 120
}

# vm_writer IMG LOG: the test guest's blk-crashwriter under vireo, killed while it runs
vm_writer() { crash_vm_writer qcow2 "$@"; }

failures=0
for round in $(seq 1 "$ROUNDS"); do
	path=${paths[$(( (round - 1) % ${#paths[@]} ))]}
	cfg=${configs[$(( (round - 1) / ${#paths[@]} % ${#configs[@]} ))]}
	IFS=: read -r name _ _ _ <<<"$cfg"
	key=$name/$path
	img=$name-$path.qcow2
	raw=$name-$path.raw
	[ -e "$img" ] || new_image "$name" "$path"
	rounds[$key]=$(( ${rounds[$key]:-0} + 1 ))
	: >log
	cache=writeback
	[ $((rounds[$key] / 2 % 2)) -eq 1 ] && cache=none
	"${path}_writer" "$img" log
	crash_reap
	qemu-img check "$img" >check.out 2>&1
	rc=$?
	[ $rc -eq 3 ] && leaky[$key]=$(( ${leaky[$key]:-0} + 1 ))
	if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
		echo "not ok - round $round ($key): qemu-img check exit $rc"
		cat check.out
		corrupt[$key]=$(( ${corrupt[$key]:-0} + 1 ))
		failures=$((failures + 1))
		crash_keep vireo-crash-failure "qemu-img check exit $rc"
		new_image "$name" "$path"
		continue
	fi
	qemu-img convert -O raw "$img" after.raw
	crash_compare ""
	rc=$?
	for f in flushed unflushed; do
		v=$(sed -n "s/.* $f=\([0-9]*\).*/\1/p" <<<"$crash_line")
		eval "$f[\$key]=\$(( \${$f[\$key]:-0} + ${v:-0} ))"
	done
	if [ $rc -ne 0 ]; then
		crash_keep vireo-crash-failure "crash_check exit $rc"
		new_image "$name" "$path"
		continue
	fi
	mv after.raw "$raw"
	if [ $(( ${rounds[$key]} % 10 )) -eq 0 ]; then
		"$VI" check -q -r leaks "$img" >/dev/null 2>&1
		if ! qemu-img check "$img" >check.out 2>&1; then
			echo "not ok - round $round ($key): not clean after vireo-img check -r leaks"
			cat check.out
			corrupt[$key]=$(( ${corrupt[$key]:-0} + 1 ))
			failures=$((failures + 1))
			crash_keep vireo-crash-failure "not clean after vireo-img check -r leaks"
			new_image "$name" "$path"
		fi
	fi
	[ $((round % 100)) -eq 0 ] && echo "# round $round of $ROUNDS: $failures failures, ${SECONDS} s"
done

fmt='%-14s %6s %6s %8s %6s %7s %7s %7s %11s %13s\n'
# shellcheck disable=SC2059
printf "$fmt" config rounds killed finished leaky corrupt lost_wr stray_b flushed_ops unflushed_ops
tot=(0 0 0 0 0 0 0 0 0)
for path in "${paths[@]}"; do
	for cfg in "${configs[@]}"; do
		key=${cfg%%:*}/$path
		[ -n "${rounds[$key]:-}" ] || continue
		vals=("${rounds[$key]}" "${killed[$key]:-0}" "${finished[$key]:-0}" "${leaky[$key]:-0}"
		      "${corrupt[$key]:-0}" "${lost[$key]:-0}" "${stray[$key]:-0}"
		      "${flushed[$key]:-0}" "${unflushed[$key]:-0}")
		# shellcheck disable=SC2059
		printf "$fmt" "$key" "${vals[@]}"
		for i in "${!vals[@]}"; do tot[i]=$(( tot[i] + vals[i] )); done
	done
done
# shellcheck disable=SC2059
printf "$fmt" total "${tot[@]}"
echo "$ROUNDS rounds: ${tot[1]} kills mid-run, ${tot[2]} writers finished first, ${tot[3]} left" \
	"leaks, ${tot[4]} corruptions, ${tot[5]} lost flushed writes, ${tot[6]} stray bytes," \
	"$failures failures"
# a run whose writers all finished before the kill tested nothing
if [ "$ROUNDS" -ge 10 ] && [ "${tot[1]}" -lt $((ROUNDS / 3)) ]; then
	echo "not ok - only ${tot[1]} of $ROUNDS writers were killed mid-run"
	failures=$((failures + 1))
fi
[ $failures -eq 0 ]
