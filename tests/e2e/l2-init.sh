#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
# /init of the L2 microVM (the stock Debian kernel under the VMM being tested).
#
# Reads vireo.test=boot|fio (and vireo.queues=N) from the kernel command line, prints E2E-L2-*
# lines that tests/e2e/run.sh parses, then powers off (ACPI S5 through the kernel).
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
[ -r /etc/e2e-libpath ] && LD_LIBRARY_PATH=$(cat /etc/e2e-libpath) && export LD_LIBRARY_PATH
cd /tmp || exit 1

echo "E2E-L2-INIT-REACHED"
echo "E2E-L2-KERNEL=$(uname -r)"
echo "E2E-L2-NPROC=$(nproc)"
echo "E2E-L2-CPUINFO=$(grep -c '^processor' /proc/cpuinfo)"
echo "E2E-L2-MEMTOTAL-KB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"

test=boot
queues=
fiocpus=
fiosize=8
stall=60
for arg in $(cat /proc/cmdline); do
	case $arg in
	vireo.test=*) test=${arg#vireo.test=} ;;
	vireo.queues=*) queues=${arg#vireo.queues=} ;;
	vireo.fiocpus=*) fiocpus=${arg#vireo.fiocpus=} ;;
	vireo.fiosize=*) fiosize=${arg#vireo.fiosize=} ;;
	vireo.stall=*) stall=${arg#vireo.stall=} ;;
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
# disk's queues hold every 10 s, so that a hung run's log says where the requests are stuck.
stall_watch() {
	sleep "$stall"
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	while :; do
		echo "E2E-L2-STALL: uptime=$(cut -d' ' -f1 /proc/uptime)s inflight=$(cat /sys/block/vda/inflight)"
		grep -i virtio /proc/interrupts | sed 's/^/E2E-L2-STALL: /'
		for h in /sys/kernel/debug/block/vda/hctx*; do
			for f in state busy dispatch; do
				[ -r "$h/$f" ] || continue
				sed "s|^|E2E-L2-STALL: ${h##*/}/$f: |" "$h/$f" | head -n 20
			done
		done
		echo w >/proc/sysrq-trigger
		sleep 10
	done
}

run_fio() {
	load_modules
	i=0
	while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -b /dev/vda ]; then
		for d in /sys/bus/pci/devices/*; do
			drv=$(readlink "$d/driver" 2>/dev/null)
			echo "E2E-L2-PCI: $(basename "$d") $(cat "$d/vendor"):$(cat "$d/device")" \
				"class $(cat "$d/class") driver ${drv##*/}"
		done
		dmesg | grep -i -E 'virtio|vda|pci 0000' | tail -n 20 | sed 's/^/E2E-L2-DMESG: /'
		fail "no /dev/vda 10 s after loading virtio_blk ($(ls /sys/bus/pci/devices | wc -l) PCI devices)"
	fi
	echo "E2E-L2-VDA-SIZE-SECTORS=$(cat /sys/block/vda/size)"
	nq=$(ls -d /sys/block/vda/mq/* | wc -l)
	echo "E2E-L2-VDA-MQ=$nq"
	if [ -n "$queues" ] && [ "$nq" != "$queues" ]; then
		fail "/dev/vda has $nq hardware queues, expected $queues"
	fi
	# Random 4 KiB writes with a CRC32C in each block, then a read pass that checks them all: one
	# job pinned to each CPU (or to each CPU of vireo.fiocpus=LIST), each on vireo.fiosize=MIB
	# (default 8) of the disk of its own, so that every hardware queue (blk-mq maps them by CPU)
	# carries I/O. The jobs run one after the other (stonewall).
	[ -n "$fiocpus" ] || fiocpus=$(seq -s, 0 $(($(nproc) - 1)))
	jobs=
	i=0
	for c in $(echo "$fiocpus" | tr ',' ' '); do
		jobs="$jobs --name=cpu$c --cpus_allowed=$c --offset=$((i * fiosize))M"
		[ $i -gt 0 ] && jobs="$jobs --stonewall"
		i=$((i + 1))
	done
	stall_watch &
	watcher=$!
	# shellcheck disable=SC2086
	fio --filename=/dev/vda --rw=randwrite --bs=4k --size="${fiosize}M" --ioengine=libaio \
		--direct=1 --iodepth=16 --verify=crc32c --verify_fatal=1 --do_verify=1 \
		--randrepeat=0 --group_reporting --eta=never $jobs
	echo "E2E-L2-FIO-EXIT=$?"
	kill "$watcher" 2>/dev/null
	for q in /sys/block/vda/mq/*; do
		echo "E2E-L2-VDA-QUEUE$(basename "$q")-CPUS=$(cat "$q/cpu_list")"
	done
}

case $test in
boot) ;;
fio) run_fio ;;
*) fail "unknown vireo.test=$test" ;;
esac

echo "E2E-L2-DONE"
poweroff -f
sleep 60
