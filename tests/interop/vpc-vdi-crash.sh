#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Crash consistency of VHD and VDI (issue 20): img_io -l (vireo's block layer) writes, zeroes,
# discards and flushes at byte offsets and is killed with SIGKILL at a random moment, round
# after round, on images that live on from round to round. After every kill:
#  - every write a completed flush covered reads back, nothing else changed (crash_check.c,
#    on what `qemu-img convert` reads);
#  - qemu-img check of a VDI finds nothing but a count of allocated blocks ahead of the block
#    map (the count is written first at a flush, on purpose: QEMU places new blocks at the
#    count, so a count behind the map would make it reuse a block);
#  - qemu-img and vireo-img read the same.
# Images: dynamic VHDs made by vireo-img and by qemu-img (512-byte aligned blocks), a fixed VHD,
# dynamic VDIs made by either tool, a static VDI; cache=writeback and cache=none in turn.
# SIGKILL keeps the page cache: this finds what vireo holds in its own memory past a completed
# flush (a BAT or map entry not written), never a missing fsync (tests/interop/qcow2-crash.sh).
#
# usage: vpc-vdi-crash.sh [--rounds N] VIREO_IMG IMG_IO CRASH_CHECK   (~20 s for 24 rounds)
set -u
ROUNDS=24
[ "${1:-}" = --rounds ] && { ROUNDS=$2; shift 2; }
[ $# -eq 3 ] || { echo "usage: $0 [--rounds N] VIREO_IMG IMG_IO CRASH_CHECK" >&2; exit 2; }
VI=$(realpath "$1")
IO=$(realpath "$2")
CHECK=$(realpath "$3")
. "$(dirname "$(realpath "$0")")/tap.sh"
. "$(dirname "$(realpath "$0")")/crash-lib.sh"
tap_start vpc-vdi-crash qemu-img

SIZE=$((24 * 1024 * 1024))
# name:format:maker:options
configs=(vpc-vireo:vpc:vireo-img: vpc-qemu:vpc:qemu-img: vpc-fixed:vpc:vireo-img:subformat=fixed
	 vdi-vireo:vdi:vireo-img: vdi-qemu:vdi:qemu-img: vdi-static:vdi:vireo-img:static=on)
cache_ok=none
dd if=/dev/zero of=probe.dio bs=4096 count=1 oflag=direct status=none 2>/dev/null ||
	cache_ok=writeback

new_image() { # name fmt maker opts
	local tool=$3
	[ $tool = vireo-img ] && tool=$VI
	rm -f "$1.img"
	"$tool" create -q -f "$2" ${4:+-o "$4"} "$1.img" $SIZE >/dev/null
	qemu-img convert -f "$2" -O raw "$1.img" "$1.raw"
}

# the operations of one round: 300 of them, 1 in 10 a flush
ops() {
	local i pick off len
	cmds=()
	for i in $(seq 1 300); do
		pick=$((RANDOM % 100))
		off=$(( (RANDOM * 32768 + RANDOM) % (SIZE - 140000) ))
		len=$((RANDOM % 131072 + 1))
		if [ $pick -lt 10 ]; then cmds+=(-c flush)
		elif [ $pick -lt 16 ]; then cmds+=(-c "discard $off $len")
		elif [ $pick -lt 24 ]; then cmds+=(-c "write -z $off $len")
		else cmds+=(-c "write -S $((round << 16 | i)) $off $len"); fi
	done
}

killed=0
for round in $(seq 1 "$ROUNDS"); do
	cfg=${configs[$(( (round - 1) % ${#configs[@]} ))]}
	IFS=: read -r name fmt maker opts <<<"$cfg"
	[ -e "$name.img" ] || new_image "$name" "$fmt" "$maker" "$opts"
	cache=writeback
	[ $(( (round - 1) / ${#configs[@]} % 2 )) = 1 ] && cache=$cache_ok
	ops
	"$IO" -l -f "$fmt" -o cache=$cache "${cmds[@]}" "$name.img" >log 2>writer.err &
	pid=$!
	crash_kill_after "$name/$cache" 95
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	rc=$?
	case $rc in
	137) killed=$((killed + 1)) ;;
	0) ;;
	*) bad "round $round ($name, $cache): img_io exited with $rc"; sed 's/^/#   /' writer.err
	   new_image "$name" "$fmt" "$maker" "$opts"; continue ;;
	esac
	if [ $fmt = vdi ]; then
		qemu-img check "$name.img" >check.out 2>&1
		rc=$?
		if [ $rc = 0 ] || { [ $rc = 2 ] && ! grep ERROR check.out | grep -vq "allocated blocks mismatch" &&
				    grep -q "ERROR: allocated blocks mismatch, is \([0-9]*\), should be" check.out &&
				    awk '/allocated blocks mismatch/ { gsub(",", ""); exit !($6 < $9) }' check.out; }; then
			ok "round $round ($name, $cache): qemu-img check"
		else
			bad "round $round ($name, $cache): qemu-img check exit $rc"; sed 's/^/#   /' check.out
		fi
	fi
	qemu-img convert -f $fmt -O raw "$name.img" after.raw
	"$VI" convert -f $fmt -O raw "$name.img" after-vireo.raw
	if "$CHECK" "$name.raw" log after.raw >check.out 2>&1; then
		ok "round $round ($name, $cache): flushed writes kept ($(sed -n 's/.* flushed=\([0-9]*\).*/\1/p' check.out) flushed ops)"
	else
		bad "round $round ($name, $cache): crash_check"; head -8 check.out | sed 's/^/#   /'
	fi
	cmp -s after.raw after-vireo.raw && ok "round $round ($name): both tools read the same" ||
		bad "round $round ($name): vireo-img and qemu-img read different content"
	mv after.raw "$name.raw"
done
[ $killed -ge $((ROUNDS / 3)) ] && ok "$killed of $ROUNDS writers killed mid-run" ||
	bad "only $killed of $ROUNDS writers killed mid-run"
tap_end
