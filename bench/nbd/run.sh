#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/nbd/run.sh [BUILD_DIR]: NBD exports (issue 17's benchmark), vireo-storage-daemon against
# qemu-storage-daemon and qemu-nbd exporting the same image, one server at a time, back to back:
#   read   nbdcopy of the whole export to null: (the image page-cached: the server's own cost)
#   write  nbdcopy of a page-cached raw file of random data into the export (a fresh image)
#   randread, randwrite  fio --ioengine=nbd, 4 KiB, NBD_QD requests in flight, NBD_FIO_SECS s
# for each format of NBD_FORMATS (raw and qcow2). Each server gets its best configuration: an
# iothread of its own for the export, io_uring, page-cached images (cache=writeback), a
# writable export. nbdcopy opens 4 connections when the server advertises multi-conn: vireo's
# does for a writable export (its flushes cover every connection); QEMU 10's do not (its
# --export has no multi-conn key yet; qemu-nbd gets --shared=8 all the same).
# Prints a line per run (NBD ...; for read and write also the CPU seconds nbdcopy and the server
# spent), then per format and operation the medians and
# vireo / the faster peer. Goal (issue 17): >= 1.2.
#
# Environment: NBD_SIZE (1G), NBD_REPEAT (3: runs per figure, interleaved), NBD_FORMATS
# ("raw qcow2"), NBD_SERVERS ("vireo qsd qemu-nbd"), NBD_OPS ("read write randread randwrite"),
# NBD_QD (32), NBD_FIO_SECS (10), NBD_DIR (BUILD_DIR/bench-nbd: images, sockets, logs),
# NBD_WARM (1: before each write, the same copy into a scratch file first; see warm()).
# The load average is printed on each line (load=): on a busy machine compare the ratios only.
# Needs nbdcopy (libnbd-bin), fio with its nbd engine, qemu-img; qemu-storage-daemon and
# qemu-nbd (qemu-utils, QEMU 10) for the peers.
set -uo pipefail
build=${1:-build}
daemon=$build/tools/vireo-storage-daemon
size=${NBD_SIZE:-1G}
repeat=${NBD_REPEAT:-3}
formats=${NBD_FORMATS:-raw qcow2}
servers=${NBD_SERVERS:-vireo qsd qemu-nbd}
ops=${NBD_OPS:-read write randread randwrite}
qd=${NBD_QD:-32}
fio_secs=${NBD_FIO_SECS:-10}
dir=${NBD_DIR:-$build/bench-nbd}

die() { echo "bench/nbd: $*" >&2; exit 1; }
[ -x "$daemon" ] || die "no $daemon: ninja -C $build first"
for t in nbdcopy fio qemu-img; do command -v $t >/dev/null || die "needs $t"; done
fio --enghelp 2>/dev/null | grep -qw nbd || die "this fio has no nbd engine"
for s in $servers; do
	case $s in
	vireo) ;;
	qsd) command -v qemu-storage-daemon >/dev/null || die "needs qemu-storage-daemon" ;;
	qemu-nbd) command -v qemu-nbd >/dev/null || die "needs qemu-nbd" ;;
	*) die "NBD_SERVERS: unknown server '$s' (vireo, qsd, qemu-nbd)" ;;
	esac
done
mkdir -p "$dir/logs" || die "cannot use $dir"
dir=$(realpath "$dir")
bytes=$(numfmt --from=iec "$size") || die "NBD_SIZE=$size"
sock=$dir/nbd.sock
uri="nbd+unix:///disk?socket=$sock"
pid=

load() { cut -d' ' -f1 /proc/loadavg; }

# the source of the reads, in each format, and the data the writes send: random, every byte
src=$dir/data.raw
if [ "$(stat -c %s "$src" 2>/dev/null)" != "$bytes" ]; then
	echo "bench/nbd: writing $size of random data to $src"
	head -c "$bytes" /dev/urandom >"$src" || die "cannot write $src"
fi
for f in $formats; do
	case $f in
	raw | qcow2) ;;
	*) die "NBD_FORMATS: unknown format '$f' (raw, qcow2)" ;;
	esac
	[ -f "$dir/read.$f" ] && [ "$dir/read.$f" -nt "$src" ] && continue
	qemu-img convert -O "$f" "$src" "$dir/read.$f" || die "cannot make $dir/read.$f"
done

stop_server() {
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=
	rm -f "$sock"
}
trap 'stop_server' EXIT

# start_server SERVER FORMAT IMAGE: in the background, until its socket answers
start_server() {
	local s=$1 f=$2 img=$3 log=$dir/logs/$1-$2.log
	rm -f "$sock"
	case $s in
	vireo)
		"$daemon" --object iothread,id=io0 \
			--blockdev "driver=$f,node-name=n0,file.driver=file,file.filename=$img" \
			--nbd-server "addr.type=unix,addr.path=$sock,max-connections=16" \
			--export "type=nbd,id=e0,node-name=n0,name=disk,writable=on,iothread=io0" \
			>"$log" 2>&1 &
		;;
	qsd)
		qemu-storage-daemon --object iothread,id=io0 \
			--blockdev "driver=file,node-name=f0,filename=$img,aio=io_uring" \
			--blockdev "driver=$f,node-name=n0,file=f0" \
			--nbd-server "addr.type=unix,addr.path=$sock,max-connections=16" \
			--export "type=nbd,id=e0,node-name=n0,name=disk,writable=on,iothread=io0" \
			>"$log" 2>&1 &
		;;
	qemu-nbd)
		qemu-nbd -f "$f" --socket="$sock" --export-name=disk --shared=8 --persistent \
			--aio=io_uring --cache=writeback "$img" >"$log" 2>&1 &
		;;
	esac
	pid=$!
	for _ in $(seq 200); do
		nbdinfo --size "$uri" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	cat "$log" >&2
	die "$s did not serve $img"
}

# a fresh target for the writes, in format F; then the first-write cost paid (see warm())
fresh() {
	rm -f "$dir/write.$1"
	qemu-img create -q -f "$1" "$dir/write.$1" "$bytes" || die "cannot create $dir/write.$1"
	warm
}

# The first write after the random writes ran at a third of its speed, whichever server made
# it (qemu-storage-daemon first: 1.9-2.3 s, then vireo 0.5 s; vireo first: 2.2-2.7 s), its
# time in copies into fresh page-cache folios (this machine's kernel hands freed memory back to
# its host at once: free page reporting). The server order is fixed, so vireo paid it in every
# round. Before each write, the same copy with dd into a scratch file of the same file system,
# deleted again, takes that first-write cost for every server alike (measured: qsd then vireo
# 1.05-1.07 / 0.54-0.60 s, vireo then qsd 0.58-0.65 / 1.29-1.35 s). NBD_WARM=0: not.
warm() {
	[ "${NBD_WARM:-1}" = 1 ] || return 0
	dd if="$src" of="$dir/warm.raw" bs=256k status=none 2>/dev/null
	rm -f "$dir/warm.raw"
}

secs_of() { # COMMAND...: "WALL CPU", its wall time and CPU time (user + system) in seconds,
	# or FAIL
	local t TIMEFORMAT='%R %U %S'
	t=$( { time "$@" >/dev/null 2>>"$dir/logs/errors.log"; } 2>&1) || { echo FAIL; return; }
	awk '{printf "%s %.2f\n", $1, $2 + $3}' <<<"$t"
}

server_cpu() { # PID: the server's CPU time so far (user + system), in seconds
	awk -v t="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / t}' \
		"/proc/$1/stat" 2>/dev/null || echo -
}

fio_iops() { # RW: IOPS of fio's nbd engine against $uri
	fio --name=nbd --ioengine=nbd --uri="$uri" --rw="$1" --bs=4k --iodepth="$qd" \
		--time_based --runtime="$fio_secs" --ramp_time=1 --size="$bytes" \
		--output-format=json 2>>"$dir/logs/errors.log" |
		sed -n '/^{/,$p' | # the nbd engine says "fio: connected to NBD server" first
		python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(int(j["read"]["iops"] + j["write"]["iops"]))' \
		2>/dev/null || echo FAIL
}

declare -A vals
echo "bench/nbd: $size, formats: $formats, servers: $servers, $repeat runs each, load $(load)"
for ((r = 1; r <= repeat; r++)); do
	for f in $formats; do
		cat "$src" "$dir/read.$f" >/dev/null # page-cached
		for op in $ops; do
			for s in $servers; do
				case $op in
				read)
					start_server "$s" "$f" "$dir/read.$f"
					v=$(secs_of nbdcopy "$uri" null:)
					unit=s
					;;
				write)
					fresh "$f"
					start_server "$s" "$f" "$dir/write.$f"
					v=$(secs_of nbdcopy "$src" "$uri")
					unit=s
					;;
				randread)
					start_server "$s" "$f" "$dir/read.$f"
					v=$(fio_iops randread)
					unit=iops
					;;
				randwrite)
					fresh "$f"
					start_server "$s" "$f" "$dir/write.$f"
					v=$(fio_iops randwrite)
					unit=iops
					;;
				*) die "NBD_OPS: unknown operation '$op'" ;;
				esac
				cpu=""
				if [ "$unit" = s ] && [ "$v" != FAIL ]; then
					# where the copy's CPU went: the client's against the server's
					cpu=" client_cpu_s=${v#* } server_cpu_s=$(server_cpu "$pid")"
					v=${v%% *}
				fi
				stop_server
				echo "NBD format=$f op=$op server=$s $unit=$v$cpu load=$(load)"
				vals[$f,$op,$s]+="$v "
			done
		done
	done
done

median() { tr ' ' '\n' | grep -v '^$' | grep -v FAIL | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "FAIL"}'; }
echo "== medians (read/write: seconds, lower is better; randread/randwrite: IOPS)"
for f in $formats; do
	for op in $ops; do
		line="SUMMARY format=$f op=$op"
		vireo=FAIL best=
		for s in $servers; do
			m=$(echo "${vals[$f,$op,$s]}" | median)
			line+=" $s=$m"
			if [ "$s" = vireo ]; then
				vireo=$m
			elif [ "$m" != FAIL ]; then
				case $op in
				read | write) [ -z "$best" ] || (($(echo "$m < $best" | bc -l))) && best=$m ;;
				*) [ -z "$best" ] || (($(echo "$m > $best" | bc -l))) && best=$m ;;
				esac
			fi
		done
		if [ "$vireo" != FAIL ] && [ -n "$best" ]; then
			case $op in
			read | write) ratio=$(echo "$best / $vireo" | bc -l) ;;
			*) ratio=$(echo "$vireo / $best" | bc -l) ;;
			esac
			line+=" vireo/faster_peer=$(printf %.2f "$ratio") goal>=1.2"
		fi
		echo "$line"
	done
done
