#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Crash safety: a vireo writer (img_io: allocating writes, COW over a backing file, write-zeroes,
# discard, refcount-block creation) is killed with SIGKILL at random moments, 200+ times, on
# the same images. After every kill `qemu-img check` must find no corruption (leaked clusters
# are allowed: they are what an interrupted allocation leaves); leaks are repaired with
# `vireo-img check -r leaks` now and then, which qemu-img check must then find clean.
# Every other round sends the writes in groups of 32 (img_io -g: the group commit the slow-path
# worker uses, one barrier per group).
# usage: qcow2-crash.sh VIREO_IMG IMG_IO [ROUNDS]     (exit 77 without qemu-img)
set -u
VI=$(realpath "$1")
IO=$(realpath "$2")
ROUNDS=${3:-240}
command -v qemu-img >/dev/null || { echo "SKIP: qemu-img not installed"; exit 77; }
T=$(mktemp -d /tmp/vireo-qcow2-crash.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
RANDOM=42
qemu-img create -q -f raw base.raw 8M
qemu-io -f raw -c "write -P 0x61 0 8M" base.raw >/dev/null
"$VI" create -q -f qcow2 -o cluster_size=4k img0.qcow2 16M
"$VI" create -q -f qcow2 -o cluster_size=64k,extended_l2=on -b base.raw -F raw img1.qcow2 16M
"$VI" create -q -f qcow2 -o cluster_size=512,refcount_bits=2 img2.qcow2 16M
failures=0
leaky=0
for round in $(seq 1 "$ROUNDS"); do
	img=img$((round % 3)).qcow2
	cmds=()
	for i in $(seq 1 250); do
		off=$(( (RANDOM * 32768 + RANDOM) % (16 * 1024 * 1024 - 140000) ))
		len=$((RANDOM % 131072 + 1))
		case $((RANDOM % 8)) in
		0) cmds+=(-c "write -z $off $len") ;;
		1) cmds+=(-c "discard $off $len") ;;
		*) cmds+=(-c "write -P $((RANDOM % 255 + 1)) $off $len") ;;
		esac
	done
	grp=()
	[ $((round % 2)) -eq 0 ] && grp=(-g 32)
	"$IO" -f qcow2 "${grp[@]}" "${cmds[@]}" "$img" 2>/dev/null &
	pid=$!
	sleep "0.0$((RANDOM % 60 + 5))"
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	rc=$?
	# 137: killed mid-run, as meant; 0: it finished first; anything else is img_io failing
	if [ $rc -ne 0 ] && [ $rc -ne 137 ]; then
		echo "not ok - round $round ($img): img_io exit $rc"
		failures=$((failures + 1))
	fi
	qemu-img check "$img" >check.out 2>&1
	rc=$?
	[ $rc -eq 3 ] && leaky=$((leaky + 1))
	if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
		echo "not ok - round $round ($img): qemu-img check exit $rc"
		cat check.out
		failures=$((failures + 1))
		cp "$img" "/tmp/vireo-crash-failure-$round.qcow2"
		"$VI" create -q -f qcow2 -o cluster_size=4k "$img" 16M
		continue
	fi
	if [ $((round % 10)) -eq 0 ]; then
		"$VI" check -q -r leaks "$img" >/dev/null 2>&1
		if ! qemu-img check "$img" >check.out 2>&1; then
			echo "not ok - round $round ($img): not clean after vireo-img check -r leaks"
			cat check.out
			failures=$((failures + 1))
		fi
	fi
done
echo "$ROUNDS rounds, $failures failures, $leaky interrupted allocations left leaks"
[ $failures -eq 0 ]
