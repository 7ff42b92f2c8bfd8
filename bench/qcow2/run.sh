#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/qcow2/run.sh [BUILD_DIR]
# 4 KiB random read / write IOPS inside the VM on three images of the same content, under vireo
# and under QEMU 10 (one iothread per queue, aio=io_uring), with the test guest's bench mode
# (tests/guest/README.md, "bench"):
#   raw          a raw file, fully written
#   qcow2        a qcow2 image (64 KiB clusters) with every cluster allocated (converted from raw)
#   qcow2-sparse an empty qcow2 overlay (64 KiB clusters) over the raw file: reads go to the
#                backing file, writes allocate clusters (copy-on-write of the other 60 KiB);
#                recreated before every run
# Prints per run
#   RESULT bench=qcow2 vmm=vireo img=qcow2 cache=writeback rw=randread qd=32 queues=2 iops=N p50_us=X p99_us=Y
# and then, per VMM and rw, the ratios qcow2/raw and qcow2-sparse/raw of the median IOPS (goal for
# vireo: qcow2 >= 0.95 x raw).
# Environment: BENCH_SECS (5), BENCH_WARMUP_MS (1000), BENCH_REPEAT (3; runs interleaved),
# BENCH_SIZE (1G), BENCH_CACHE (writeback: page-cached files, VMM-bound; none: O_DIRECT),
# BENCH_QD (32), BENCH_QUEUES (2), BENCH_RWS ("randread randwrite"), BENCH_VMMS ("vireo qemu"),
# BENCH_DIR (BUILD_DIR/bench-qcow2; must take O_DIRECT for BENCH_CACHE=none),
# BENCH_IMGS ("raw qcow2 qcow2-sparse"), BENCH_SPARSE_SIZE (virtual size of the sparse overlay;
# default BENCH_SIZE). With BENCH_SIZE=1G the sparse image's 16384 clusters are mostly allocated
# within the warm-up at tens of thousands of writes per second, so its randwrite figure is then
# mostly in-place writes; a sparse overlay much bigger than the backing file (e.g.
# BENCH_SPARSE_SIZE=16G, writes past the backing file's end copy zeroes) keeps it allocating.
# Needs /dev/kvm, qemu-img, fio; QEMU runs need qemu-system-x86_64 10.x.
set -uo pipefail
build=${1:-build}
elf=$build/tests/guest/guest.elf
vireo=$build/vireo
secs=${BENCH_SECS:-5}
warmup=${BENCH_WARMUP_MS:-1000}
repeat=${BENCH_REPEAT:-3}
size=${BENCH_SIZE:-1G}
cache=${BENCH_CACHE:-writeback}
qd=${BENCH_QD:-32}
q=${BENCH_QUEUES:-2}
rws=${BENCH_RWS:-randread randwrite}
vmms=${BENCH_VMMS:-vireo qemu}
dir=${BENCH_DIR:-$build/bench-qcow2}
imgs=${BENCH_IMGS:-raw qcow2 qcow2-sparse}
sparse_size=${BENCH_SPARSE_SIZE:-}

die() { echo "bench/qcow2: $*" >&2; exit 1; }
[ -f "$elf" ] || die "no $elf: build first (ninja -C $build)"
[ -x "$vireo" ] || die "no $vireo"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "needs /dev/kvm"
command -v qemu-img >/dev/null || die "needs qemu-img"
command -v fio >/dev/null || die "needs fio"
qemu=$(command -v qemu-system-x86_64 || true)
mkdir -p "$dir/logs" || die "cannot use $dir"
bytes=$(numfmt --from=iec "$size")

# ---- images
raw=$dir/disk.raw
if [ ! -f "$dir/.filled-$bytes" ] || [ "$(stat -c %s "$raw" 2>/dev/null)" != "$bytes" ]; then
	echo "bench/qcow2: writing $size of data to $raw"
	rm -f "$dir"/.filled-* "$dir/disk.qcow2"
	fio --name=fill --filename="$raw" --rw=write --bs=1M --size="$bytes" --ioengine=io_uring \
		--refill_buffers --output=/dev/null || die "could not fill $raw"
	touch "$dir/.filled-$bytes"
fi
if [ ! -f "$dir/disk.qcow2" ]; then
	qemu-img convert -O qcow2 -o cluster_size=64k "$raw" "$dir/disk.qcow2" || die "convert"
fi
fresh_sparse() {
	rm -f "$dir/sparse.qcow2"
	qemu-img create -q -f qcow2 -o cluster_size=64k -b "$(realpath "$raw")" -F raw \
		"$dir/sparse.qcow2" $sparse_size || die "qemu-img create"
}
img_file() { # kind
	case $1 in raw) echo "$raw" ;; qcow2) echo "$dir/disk.qcow2" ;; *) echo "$dir/sparse.qcow2" ;; esac
}
img_fmt() { [ "$1" = raw ] && echo raw || echo qcow2; }
# The same page-cache state before every page-cached run. What the kernel charges per 4 KiB
# request depends on the folios caching the file, which depend on the file's history (this
# machine's DAMON reclaim also pages out files idle for about a minute; random reads then refill
# them 4 KiB at a time). Measured (vireo, 2026-11-25): randread qcow2/raw 0.77 with the qcow2
# in 4 KiB folios and raw in 2 MiB ones, 0.96-1.04 with both alike; randwrite into a file cached
# in 2 MiB folios 32-39k IOPS, into the same file not cached 197-272k (a 4 KiB write dirties a
# whole folio). So: a file the run only reads is written back, dropped and read back in order
# (2 MiB folios); the image a randwrite run writes is written back and dropped (its writes
# cache it in 4 KiB folios).
drop_cache() { # file
	sync "$1" && dd if="$1" iflag=nocache count=0 status=none ||
		die "could not drop $1 from the page cache"
}
recache() { # file
	drop_cache "$1"
	cat "$1" >/dev/null || die "could not read $1"
}
page_cache() { # img rw
	local f; f=$(img_file "$1")
	if [ "$2" = randread ]; then
		recache "$f"
	else
		drop_cache "$f"
	fi
	# the backing file of the sparse overlay is only read
	[ "$1" = qcow2-sparse ] && recache "$raw"
	return 0
}

cmdline() { # rw
	echo "bench bench-rw=$1 bench-qd=$qd bench-queues=$q bench-secs=$secs bench-warmup-ms=$warmup"
}

run_vireo() { # img rw
	local f; f=$(img_file "$1")
	timeout -k 5 $((secs + 90)) "$vireo" run --kernel "$elf" --cpus 2 --memory 256M \
		--serial stdio --cmdline "$(cmdline "$2")" \
		--drive "file=$f,format=$(img_fmt "$1"),if=virtio-blk,num-queues=$q,iothreads=$q,cache=$cache"
}

run_qemu() { # img rw
	local f objs=() map="" i direct=off
	f=$(img_file "$1")
	[ "$cache" = none ] && direct=on
	for ((i = 0; i < q; i++)); do
		objs+=(-object "iothread,id=io$i")
		map+="${map:+,}{\"iothread\":\"io$i\"}"
	done
	timeout -k 5 $((secs + 90)) "$qemu" -M q35 -enable-kvm -cpu host,-arch-capabilities \
		-smp 2 -m 256M -nodefaults -display none -no-reboot -monitor none -serial stdio \
		-device isa-debug-exit,iobase=0xf4,iosize=4 "${objs[@]}" \
		-drive "file=$f,format=$(img_fmt "$1"),if=none,id=d0,aio=io_uring,cache.direct=$direct" \
		-device "{\"driver\":\"virtio-blk-pci\",\"drive\":\"d0\",\"num-queues\":$q,\"disable-legacy\":\"on\",\"iothread-vq-mapping\":[$map]}" \
		-kernel "$elf" -append "$(cmdline "$2")"
}

field() { sed -n "s/.*[ ]$2=\([^ ]*\).*/\1/p" <<<" $1"; }

declare -A res # "vmm img rw" -> iops values, one per line
for ((rep = 1; rep <= repeat; rep++)); do
	for rw in $rws; do
		for img in $imgs; do
			for vmm in $vmms; do
				[ "$vmm" = qemu ] && [ -z "$qemu" ] && { echo "FAILED vmm=qemu: not installed"; continue; }
				[ "$img" = qcow2-sparse ] && fresh_sparse
				[ "$cache" = writeback ] && page_cache "$img" "$rw"
				log=$dir/logs/$vmm-$img-$rw-$rep.log
				"run_$vmm" "$img" "$rw" >"$log" 2>&1 </dev/null
				line=$(grep -a '^BENCH iops=' "$log" | tail -1)
				if [ -z "$line" ]; then
					echo "FAILED bench=qcow2 vmm=$vmm img=$img rw=$rw: $(grep -aE 'FAIL|error|skip' "$log" | tail -2 | tr '\n' ' ') (log: $log)"
					continue
				fi
				iops=$(field "$line" iops)
				printf 'RESULT bench=qcow2 vmm=%s img=%s cache=%s rw=%s qd=%s queues=%s iops=%s p50_us=%s p99_us=%s\n' \
					"$vmm" "$img" "$cache" "$rw" "$qd" "$q" "$iops" "$(field "$line" p50_us)" \
					"$(field "$line" p99_us)"
				res["$vmm $img $rw"]+="$iops"$'\n'
			done
		done
	done
done

median() { # key
	printf '%s' "${res["$1"]:-}" | sort -n | awk '{a[NR] = $1} END {
		if (!NR) print "-"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }

echo
for vmm in $vmms; do
	for rw in $rws; do
		r=$(median "$vmm raw $rw") a=$(median "$vmm qcow2 $rw") s=$(median "$vmm qcow2-sparse $rw")
		echo "MEDIAN bench=qcow2 vmm=$vmm rw=$rw raw=$r qcow2=$a qcow2-sparse=$s" \
		     "qcow2/raw=$(ratio "$a" "$r") qcow2-sparse/raw=$(ratio "$s" "$r")"
	done
done
for rw in $rws; do
	for img in $imgs; do
		echo "RATIO bench=qcow2 img=$img rw=$rw vireo/qemu=$(ratio "$(median "vireo $img $rw")" "$(median "qemu $img $rw")")"
	done
done
