#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
# /init of the L2 microVM (the stock Debian kernel under the VMM being tested).
#
# Reads vireo.test=boot|fio (and vireo.queues=N, vireo.disk=blk|scsi, vireo.mirror=1) from the kernel command
# line, prints E2E-L2-* lines that tests/e2e/run.sh parses, then powers off (ACPI S5 through the
# kernel).
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
[ -r /etc/e2e-libpath ] && LD_LIBRARY_PATH=$(cat /etc/e2e-libpath) && export LD_LIBRARY_PATH
cd /tmp || exit 1

echo "E2E-L2-INIT-REACHED uptime=$(cut -d' ' -f1 /proc/uptime)s"
echo "E2E-L2-KERNEL=$(uname -r)"
echo "E2E-L2-NPROC=$(nproc)"
echo "E2E-L2-CPUINFO=$(grep -c '^processor' /proc/cpuinfo)"
echo "E2E-L2-MEMTOTAL-KB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"

test=boot
queues=
fiocpus=
fiosize=8
stall=60
disk=blk
mirror=0
for arg in $(cat /proc/cmdline); do
	case $arg in
	vireo.test=*) test=${arg#vireo.test=} ;;
	vireo.queues=*) queues=${arg#vireo.queues=} ;;
	vireo.fiocpus=*) fiocpus=${arg#vireo.fiocpus=} ;;
	vireo.fiosize=*) fiosize=${arg#vireo.fiosize=} ;;
	vireo.stall=*) stall=${arg#vireo.stall=} ;;
	vireo.disk=*) disk=${arg#vireo.disk=} ;;
	vireo.mirror=*) mirror=${arg#vireo.mirror=} ;;
	esac
done
echo "E2E-L2-TEST=$test"

fail() {
	echo "E2E-L2-FAIL=$*"
	echo "E2E-L2-DONE"
	poweroff -f
	sleep 60
}

load_modules() {
	for m in $(cat /lib/e2e-modules/order); do
		insmod "/lib/e2e-modules/$m" || fail "insmod $m"
	done
}

# While fio runs (a few seconds normally): past vireo.stall=SECONDS (default 60), print what the
# disks' queues hold every 10 s, so that a hung run's log says where the requests are stuck.
stall_watch() { # DISK...
	sleep "$stall"
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	while :; do
		for d in "$@"; do
			echo "E2E-L2-STALL: uptime=$(cut -d' ' -f1 /proc/uptime)s $d" \
				"inflight=$(cat "/sys/block/$d/inflight")"
		done
		grep -i virtio /proc/interrupts | sed 's/^/E2E-L2-STALL: /'
		for d in "$@"; do
			for h in /sys/kernel/debug/block/"$d"/hctx*; do
				for f in state busy dispatch; do
					[ -r "$h/$f" ] || continue
					sed "s|^|E2E-L2-STALL: $d/${h##*/}/$f: |" "$h/$f" | head -n 20
				done
			done
		done
		echo w >/proc/sysrq-trigger
		sleep 10
	done
}

# Waits up to 10 s for /dev/$1 (after loading $2, for the message); fails saying what PCI holds.
wait_disk() {
	i=0
	while [ ! -b "/dev/$1" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -b "/dev/$1" ] && return 0
	for d in /sys/bus/pci/devices/*; do
		drv=$(readlink "$d/driver" 2>/dev/null)
		echo "E2E-L2-PCI: $(basename "$d") $(cat "$d/vendor"):$(cat "$d/device")" \
			"class $(cat "$d/class") driver ${drv##*/}"
	done
	dmesg | grep -i -E 'virtio|scsi|sd[a-z]|vda|pci 0000' | tail -n 20 | sed 's/^/E2E-L2-DMESG: /'
	fail "no /dev/$1 10 s after loading $2 ($(ls /sys/bus/pci/devices | wc -l) PCI devices)"
}

# /dev/$1's size and hardware queues (E2E-L2-<DISK>-MQ=N); fails unless it has vireo.queues.
disk_queues() {
	up=$(echo "$1" | tr a-z A-Z)
	echo "E2E-L2-$up-SIZE-SECTORS=$(cat "/sys/block/$1/size")"
	nq=$(ls -d "/sys/block/$1/mq/"* | wc -l)
	echo "E2E-L2-$up-MQ=$nq"
	if [ -n "$queues" ] && [ "$nq" != "$queues" ]; then
		fail "/dev/$1 has $nq hardware queues, expected $queues"
	fi
}

# Random 4 KiB writes with a CRC32C in each block, then a read pass that checks them all: for each
# CPU (or each CPU of vireo.fiocpus=LIST), one job pinned to it on each of the DISKs, each on
# vireo.fiosize=MIB (default 8) of its disk of its own, so that every hardware queue (blk-mq maps
# them by CPU) of every disk carries I/O. One CPU's jobs run at once, on all the disks; the
# CPUs' groups one after the other (stonewall). Prints E2E-L2-FIO-EXIT.
fio_jobs() { # DISK...: sets $jobs
	[ -n "$fiocpus" ] || fiocpus=$(seq -s, 0 $(($(nproc) - 1)))
	jobs=
	i=0
	for c in $(echo "$fiocpus" | tr ',' ' '); do
		first=--stonewall
		[ $i -gt 0 ] || first=
		for d in "$@"; do
			jobs="$jobs --name=$d-cpu$c --filename=/dev/$d --cpus_allowed=$c"
			jobs="$jobs --offset=$((i * fiosize))M $first"
			first=
		done
		i=$((i + 1))
	done
}
run_fio() { # DISK...
	fio_jobs "$@"
	stall_watch "$@" &
	watcher=$!
	# shellcheck disable=SC2086
	fio --rw=randwrite --bs=4k --size="${fiosize}M" --ioengine=libaio \
		--direct=1 --iodepth=16 --verify=crc32c --verify_fatal=1 --do_verify=1 \
		--randrepeat=0 --group_reporting --eta=never $jobs
	echo "E2E-L2-FIO-EXIT=$? uptime=$(cut -d' ' -f1 /proc/uptime)s"
	kill "$watcher" 2>/dev/null
	queue_cpus "$@"
}
queue_cpus() { # DISK...
	for d in "$@"; do
		for q in "/sys/block/$d/mq/"*; do
			echo "E2E-L2-$(echo "$d" | tr a-z A-Z)-QUEUE$(basename "$q")-CPUS=$(cat "$q/cpu_list")"
		done
	done
}

# Asks L1 for QMP step $1 (E2E-L2-QMP-WANTED=STEP, as the hot-plug does) and waits up to 300 s
# for L1's answer E2E-L1-QMP-STEP=STATUS on the serial console's input; fails unless it is 0.
qmp_step() {
	stty -echo 2>/dev/null # L1's answer is not echoed into the log
	echo "E2E-L2-QMP-WANTED=$1 uptime=$(cut -d' ' -f1 /proc/uptime)s"
	got=
	while read -r -t 300 line; do
		case $line in *"E2E-L1-QMP-$1="*)
			got=${line#*E2E-L1-QMP-$1=}
			got=$(echo "$got" | tr -d '\r ')
			break
			;;
		esac
	done
	echo "E2E-L2-QMP-DONE-$1=${got:-none} uptime=$(cut -d' ' -f1 /proc/uptime)s"
	[ "$got" = 0 ] || fail "L1's QMP step $1 answered '${got:-nothing in 300 s}'"
}

# vireo.mirror=1: fio as run_fio, in two passes: the writes (each block with its crc32c) while L1
# mirrors the disk to a new qcow2, then L1 pivots the disk onto it (job-complete), then fio's
# verify-only pass reads every block back from there. The same jobs and seeds (randrepeat) in
# both passes, so that the second finds the first's blocks. Prints E2E-L2-FIO-WRITE-EXIT and
# E2E-L2-FIO-EXIT (the verify).
run_fio_mirror() { # DISK...
	fio_jobs "$@"
	qmp_step mirror
	stall_watch "$@" &
	watcher=$!
	set -- --rw=randwrite --bs=4k --size="${fiosize}M" --ioengine=libaio --direct=1 \
		--iodepth=16 --verify=crc32c --verify_fatal=1 --group_reporting --eta=never
	# shellcheck disable=SC2086
	fio "$@" --do_verify=0 $jobs
	echo "E2E-L2-FIO-WRITE-EXIT=$? uptime=$(cut -d' ' -f1 /proc/uptime)s"
	kill "$watcher" 2>/dev/null
	qmp_step pivot
	# shellcheck disable=SC2086
	fio "$@" --verify_only $jobs
	echo "E2E-L2-FIO-EXIT=$? uptime=$(cut -d' ' -f1 /proc/uptime)s"
	queue_cpus vda
}

run_blk() {
	load_modules
	wait_disk vda virtio_blk
	disk_queues vda
	if [ "$mirror" = 1 ]; then
		run_fio_mirror vda
	else
		run_fio vda
	fi
}

# sg3-utils on the LUNs, through SG_IO on the block devices: each answer goes out as a line
# (E2E-L2-<DISK>-<WHAT>=...) for run.sh to judge, the tool's own output as E2E-L2-SG: lines.
sg() { # NAME COMMAND...: runs it, prints its output; its status in $sgrc
	name=$1
	shift
	"$@" >/tmp/sg.out 2>&1
	sgrc=$?
	sed "s/^/E2E-L2-SG: $name: /" /tmp/sg.out
	echo "E2E-L2-SG: $name: exit status $sgrc"
}
sg_checks() {
	sg inq sg_inq /dev/sda
	echo "E2E-L2-SDA-VENDOR=$(awk -F': *' '/Vendor identification/ { print $2 }' /tmp/sg.out)"
	sg vpd-bl sg_vpd -p bl /dev/sda
	[ $sgrc -eq 0 ] && grep -q 'Block limits' /tmp/sg.out &&
		echo "E2E-L2-SDA-VPD-BL-MAX-UNMAP=$(awk -F': *' '/Maximum unmap LBA count/ {
			split($2, w, " "); print w[1] }' /tmp/sg.out)"
	for d in sda sdb; do
		sg "readcap-$d" sg_readcap -l "/dev/$d"
		echo "E2E-L2-$(echo "$d" | tr a-z A-Z)-READCAP-BYTES=$(awk '/Device size:/ {
			for (i = 1; i <= NF; i++) if ($i == "size:") print $(i + 1) }' /tmp/sg.out)"
	done
	# fio wrote all of sdb's first MiBs: 1 MiB at 1 MiB holds data before the unmap, zeroes after
	# (LBPRZ); read with O_DIRECT past the page cache that SG_IO does not see.
	zero=$(head -c 1048576 /dev/zero | md5sum | cut -d' ' -f1)
	sum=$(dd if=/dev/sdb bs=64k skip=16 count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
	[ "$sum" != "$zero" ] && echo "E2E-L2-SDB-UNMAP-BEFORE=data" || echo "E2E-L2-SDB-UNMAP-BEFORE=zeroes"
	bs=$(cat /sys/block/sdb/queue/logical_block_size)
	sg unmap-sdb sg_unmap --force --lba=$((1048576 / bs)) --num=$((1048576 / bs)) /dev/sdb
	echo "E2E-L2-SDB-UNMAP-EXIT=$sgrc"
	sum=$(dd if=/dev/sdb bs=64k skip=16 count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
	[ "$sum" = "$zero" ] && echo "E2E-L2-SDB-UNMAP-ZEROES=yes" || echo "E2E-L2-SDB-UNMAP-ZEROES=no"
	sg sync-sda sg_sync /dev/sda
	echo "E2E-L2-SDA-SYNC-EXIT=$sgrc uptime=$(cut -d' ' -f1 /proc/uptime)s"
}

# A LUN hot-added and removed over QMP: L1 watches the console for E2E-L2-QMP-WANTED=STEP and
# sends that step's commands (l1-init.sh). /dev/sdc must come, take a fio verify, and go.
hotplug() {
	echo "E2E-L2-QMP-WANTED=hotadd uptime=$(cut -d' ' -f1 /proc/uptime)s"
	i=0
	while [ ! -b /dev/sdc ] && [ $i -lt 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -b /dev/sdc ]; then
		dmesg | grep -i -E 'scsi|sd[a-z]|virtio' | tail -n 20 | sed 's/^/E2E-L2-DMESG: /'
		fail "no /dev/sdc 20 s after asking for a hot-added LUN"
	fi
	echo "E2E-L2-SDC-SIZE-BYTES=$(($(cat /sys/block/sdc/size) * 512))" \
		"uptime=$(cut -d' ' -f1 /proc/uptime)s"
	fio --name=sdc --filename=/dev/sdc --rw=randwrite --bs=4k --size=256k --ioengine=libaio \
		--direct=1 --iodepth=8 --verify=crc32c --verify_fatal=1 --do_verify=1 --eta=never \
		>/tmp/fio-sdc.out 2>&1
	rc=$?
	[ $rc -eq 0 ] || sed 's/^/E2E-L2-SDC-FIO: /' /tmp/fio-sdc.out
	echo "E2E-L2-SDC-FIO-EXIT=$rc"
	echo "E2E-L2-QMP-WANTED=hotdel"
	i=0
	while [ -e /sys/block/sdc ] && [ $i -lt 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	gone=yes
	[ -e /sys/block/sdc ] && gone=no
	echo "E2E-L2-SDC-GONE=$gone uptime=$(cut -d' ' -f1 /proc/uptime)s"
}

# Two LUNs on one virtio-scsi controller: both with vireo.queues hardware queues, fio on both at
# once, sg3-utils, then the hot-plugged third.
run_scsi() {
	echo "E2E-L2-MODULES uptime=$(cut -d' ' -f1 /proc/uptime)s"
	load_modules
	wait_disk sda virtio_scsi
	wait_disk sdb virtio_scsi
	lsscsi 2>/dev/null | sed 's/^/E2E-L2-LSSCSI: /'
	echo "E2E-L2-LUNS-FOUND uptime=$(cut -d' ' -f1 /proc/uptime)s"
	disk_queues sda
	disk_queues sdb
	run_fio sda sdb
	sg_checks
	hotplug
}

case $test in
boot) ;;
fio)
	case $disk in
	blk) run_blk ;;
	scsi) run_scsi ;;
	*) fail "unknown vireo.disk=$disk" ;;
	esac
	;;
*) fail "unknown vireo.test=$test" ;;
esac

echo "E2E-L2-DONE"
poweroff -f
sleep 60
