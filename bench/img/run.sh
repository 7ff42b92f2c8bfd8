#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/img/run.sh [BUILD_DIR]
# vireo-img against qemu-img on the same files, best of BENCH_REPEAT (3) wall times each:
#   convert-qcow2-raw  convert -O raw   of a qcow2 image (64 KiB clusters) with realistic content
#   convert-raw-qcow2  convert -O qcow2 of the same content as a sparse raw file
#   check-sparse       check of a 1 TiB qcow2 with 2 GiB allocated in 2048 scattered extents
#   convert-raw-FMT    convert -O FMT of the raw file, for each FMT of BENCH_FORMATS
#   convert-FMT-raw    convert -O raw of the same content in FMT (made once by qemu-img)
# The content (mkimage.py): BENCH_IMG_MIB (1536) MiB, ~60 % extents of real files from /usr
# (libraries, binaries, docs), ~10 % zeroes written as data, the rest holes. Both tools use their
# defaults (page cache, a flush at the end); the target is deleted before each run.
# Prints per run
#   RESULT bench=img op=convert-qcow2-raw tool=vireo-img secs=X
# and at the end, per op, the throughput ratio qemu-img secs / vireo-img secs (goal >= 1.2).
# Environment: BENCH_DIR (BUILD_DIR/bench-img; ~6 GiB free needed), BENCH_REPEAT (3),
# BENCH_IMG_MIB (1536), BENCH_KEEP=1 keeps the generated images for the next run,
# BENCH_FORMATS: foreign formats to convert to and from ("vhdx vpc:subformat=fixed": a format,
# with -o options after a colon, named after their values in the ops: vpc-fixed, vdi-static
# for static=on; none by default).
set -uo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
vi=$(realpath "$build/tools/vireo-img")
dir=${BENCH_DIR:-$build/bench-img}
repeat=${BENCH_REPEAT:-3}
mib=${BENCH_IMG_MIB:-1536}
formats=${BENCH_FORMATS:-}
ops="convert-qcow2-raw convert-raw-qcow2 check-sparse"

die() { echo "bench/img: $*" >&2; exit 1; }
[ -x "$vi" ] || die "no $vi: build first (ninja -C $build)"
command -v qemu-img >/dev/null || die "needs qemu-img"
command -v qemu-io >/dev/null || die "needs qemu-io"
mkdir -p "$dir" && cd "$dir" || die "cannot use $dir"

if [ ! -f src.raw ] || [ "$(stat -c %s src.raw)" != $((mib << 20)) ]; then
	echo "bench/img: writing a ${mib} MiB image with realistic content"
	python3 "$here/mkimage.py" src.raw "$mib" || die "mkimage.py failed"
	rm -f src.qcow2
fi
[ -f src.qcow2 ] || qemu-img convert -O qcow2 src.raw src.qcow2 || die "qemu-img convert"
if [ ! -f big.qcow2 ]; then
	echo "bench/img: writing a 1 TiB qcow2 with 2 GiB in 2048 extents"
	qemu-img create -q -f qcow2 big.qcow2 1T
	args=()
	for i in $(seq 0 2047); do
		args+=(-c "write -P $((i % 250 + 1)) $((i * 512))M 1M")
	done
	qemu-io -f qcow2 "${args[@]}" big.qcow2 >/dev/null || die "qemu-io"
fi
# a variant's name: its format and option values, vpc:subformat=fixed -> vpc-fixed
variant() { local o=${1#"${1%%:*}"}; o=${o#:}; echo "${1%%:*}$(echo "$o" | sed 's/\([^,=]*\)=on/-\1/g; s/[^,]*=/-/g; s/,//g')"; }
for f in $formats; do
	fmt=${f%%:*} o=${f#"${f%%:*}"} o=${o#:} v=$(variant "$f")
	[ -f "src.$v" ] || qemu-img convert -O "$fmt" ${o:+-o "$o"} src.raw "src.$v" ||
		die "qemu-img convert -O $fmt"
	ops="$ops convert-raw-$v convert-$v-raw"
done
echo "bench/img: src.raw $(du -h src.raw | cut -f1) allocated of ${mib} MiB;" \
     "src.qcow2 $(du -h src.qcow2 | cut -f1); big.qcow2 $(du -h big.qcow2 | cut -f1)"

# wall seconds of one command (its output discarded; a failure aborts the run)
timed() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>err.txt || { cat err.txt >&2; die "'$*' failed"; }
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

declare -A best
run_op() { # op tool cmd...
	local op=$1 tool=$2 s
	shift 2
	rm -f out.*
	sync
	s=$(timed "$@")
	printf 'RESULT bench=img op=%s tool=%s secs=%.3f\n' "$op" "$tool" "$s"
	if [ -z "${best[$op/$tool]:-}" ] || [ "$(echo "$s < ${best[$op/$tool]}" | bc -l)" = 1 ]; then
		best[$op/$tool]=$s
	fi
}

for r in $(seq 1 "$repeat"); do
	# alternate which tool goes first: the page cache favours the second
	for tool in $( [ $((r % 2)) = 1 ] && echo "qemu-img vireo-img" || echo "vireo-img qemu-img"); do
		bin=$( [ $tool = vireo-img ] && echo "$vi" || echo qemu-img)
		run_op convert-qcow2-raw $tool "$bin" convert -O raw src.qcow2 out.raw
		run_op convert-raw-qcow2 $tool "$bin" convert -O qcow2 src.raw out.qcow2
		run_op check-sparse $tool "$bin" check big.qcow2
		for f in $formats; do
			fmt=${f%%:*} o=${f#"${f%%:*}"} o=${o#:} v=$(variant "$f")
			run_op "convert-raw-$v" $tool "$bin" convert -O "$fmt" ${o:+-o "$o"} src.raw \
				"out.$v"
			# -f: a fixed VHD probes as raw
			run_op "convert-$v-raw" $tool "$bin" convert -f "$fmt" -O raw "src.$v" out.raw
		done
	done
done
rm -f out.* err.txt
for op in $ops; do
	v=${best[$op/vireo-img]} q=${best[$op/qemu-img]}
	printf 'BEST bench=img op=%s vireo-img=%.3f qemu-img=%.3f ratio=%.2f (qemu-img secs / vireo-img secs; goal >= 1.2)\n' \
		"$op" "$v" "$q" "$(echo "$q / $v" | bc -l)"
done
[ "${BENCH_KEEP:-0}" = 1 ] || rm -f src.* big.qcow2
