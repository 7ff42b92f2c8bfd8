#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
# /init of the emulated host (L1): the Debian cloud kernel under QEMU TCG with nested SVM.
#
# Loads kvm + kvm_amd, checks /dev/kvm, then runs the VMM under test (vireo, or QEMU as a
# stand-in) on the L2 kernel and initramfs as /e2e/config says, or (E2E_TEST=guest) our test
# guest's runs under vireo. Prints E2E-L1-* lines and
# E2E-VIREO-EXIT=<status> for tests/e2e/run.sh, then powers L1 off.
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
export PATH=/usr/bin:/sbin:/bin:/usr/sbin
# The VMM's library directories (and QEMU's, for the stand-in): an initramfs has no ld.so.cache.
LD_LIBRARY_PATH=$(cat /etc/e2e-libpath* 2>/dev/null | tr ':' '\n' | sort -u | paste -sd: -)
export LD_LIBRARY_PATH
cd /tmp || exit 1

finish() {
	echo "E2E-L1-DONE"
	sync
	poweroff -f
	sleep 30
}

# What L1's KVM said while the VMM ran (failed entries, unhandled MSRs, emulation failures).
kvm_dmesg() {
	dmesg | grep -i -E 'kvm|svm' | grep -v -E 'Nested Paging|Nested Virtualization|kvm: Nested' |
		tail -n 20 | sed 's/^/E2E-L1-DMESG: /'
}

# A run that has not ended after $vmm_stall s (default 60): print each of the VMM's threads, its
# state and where it waits, every 10 s, beside the L2 console's own report (l2-init.sh's
# stall_watch).
vmm_watch() {
	set +f # runs in the background, after the VMM's command line turned globbing off
	sleep "${vmm_stall:-60}"
	while :; do
		for t in /proc/"$(pidof "$1")"/task/*; do
			echo "E2E-L1-STALL: $(cat "$t/comm") $(cut -d' ' -f3 "$t/stat") $(cat "$t/wchan")" \
				"utime+stime=$(cut -d' ' -f14,15 "$t/stat")"
			sed 's/^/E2E-L1-STALL:     /' "$t/stack"
		done
		sleep 10
	done
}

# A heartbeat on the second serial port, apart from the console: run.sh takes an L1 that stops
# beating for a frozen emulated host (README.md, "Known flake").
while :; do
	echo "alive $(cut -d' ' -f1 /proc/uptime)"
	sleep 5
done >/dev/ttyS1 2>/dev/null &

echo "E2E-L1-INIT-REACHED uptime=$(cut -d' ' -f1 /proc/uptime)s"
[ -r /e2e/config ] || { echo "E2E-L1-ERROR=no /e2e/config in the initramfs"; finish; }
. /e2e/config

for m in $(cat /lib/e2e-modules/order); do
	if ! insmod "/lib/e2e-modules/$m"; then
		echo "E2E-L1-ERROR=insmod $m failed"
		dmesg | tail -n 20
		finish
	fi
done
if [ ! -c /dev/kvm ]; then
	echo "E2E-L1-ERROR=no /dev/kvm after loading the kvm modules"
	dmesg | grep -i -E 'kvm|svm' | tail -n 20
	finish
fi
echo "E2E-L1-KVM=ok ($(dmesg | grep -o 'Nested Paging enabled' | head -n 1))"

# --test guest: the test guest's vireo runs (tests/guest/vireo-runs.txt, "NAME: OPTIONS -- CMDLINE")
# and the tiny guests' tests, on L1's nested KVM, one after the other, each ending in
# E2E-GUEST-RESULT=NAME STATUS.
if [ "$E2E_TEST" = guest ]; then
	echo "E2E-L1-VIREO-VERSION=$(vireo --version 2>&1 | head -n 1)"
	echo "E2E-L2-CONSOLE-BEGIN"
	set -f # the runs' words are not globs
	while read -r name rest; do
		case $name in '' | '#'*) continue ;; esac
		name=${name%:}
		echo "E2E-GUEST-RUN: $name: $rest"
		# shellcheck disable=SC2086 # options and command line are word lists
		sh /e2e/guest/run-vireo.sh /usr/bin/vireo --timeout "$E2E_GUEST_TIMEOUT" ${rest%% -- *} \
			/e2e/guest/guest.elf ${rest#* -- } </dev/null
		echo "E2E-GUEST-RESULT=$name $?"
	done </e2e/guest/runs
	# the integration suite's tiny guests (tests/integration/vm-tests.txt: NAME | GUEST | STATUS | TEXT)
	[ -r /e2e/guest/vm-tests ] && while read -r line; do
		name=${line%% | *} rest=${line#* | }
		guest=${rest%% | *} rest=${rest#* | }
		want=${rest%% | *} text=${rest#* | }
		echo "E2E-GUEST-RUN: $name: $guest, status $want, text '$text'"
		sh /e2e/guest/vm_test.sh /usr/bin/vireo "/e2e/guest/$guest.elf" "$want" "$text" </dev/null
		echo "E2E-GUEST-RESULT=$name $?"
	done </e2e/guest/vm-tests
	# the test programs run as PROGRAM VIREO GUEST (the meson tests of vm_programs): here their
	# checks that need /dev/kvm run; a skip (77) fails, for this host has one
	while read -r name prog guest; do
		case $prog in *.py) interp=python3 ;; *) interp=sh ;; esac
		echo "E2E-GUEST-RUN: $name: $interp $prog /usr/bin/vireo $guest"
		timeout -s KILL "$E2E_GUEST_TIMEOUT" "$interp" "$prog" /usr/bin/vireo "$guest" </dev/null 2>&1
		echo "E2E-GUEST-RESULT=$name $?"
	done </e2e/guest/vm-programs
	echo "E2E-L2-CONSOLE-END"
	kvm_dmesg
	finish
fi

drive_vireo=
drive_qemu=
qmp_steps=
if [ -n "$E2E_DISK_SIZE" ]; then
	# The root file system is RAM-backed: no O_DIRECT there, hence cache=writeback.
	truncate -s "$E2E_DISK_SIZE" /disk.img
	iothreads=
	mapping=
	vq_map=
	i=0
	while [ $i -lt "$E2E_IOTHREADS" ]; do
		iothreads="$iothreads -object iothread,id=io$i"
		mapping="$mapping${mapping:+,}{\"iothread\":\"io$i\"}"
		vq_map="$vq_map${vq_map:+:}io$i"
		i=$((i + 1))
	done
	if [ "${E2E_DISK_FORM:-drive}" = scsi ]; then
		# two LUNs of a virtio-scsi controller, each over a disk file of its own; a third file
		# for the LUN that L2 has hot-added over QMP (qmp_steps)
		truncate -s "$E2E_DISK_SIZE" /disk1.img
		truncate -s "$E2E_HOT_DISK_SIZE" /disk2.img
		hd="--device scsi-hd,bus=scsi0.0,scsi-id=0"
		drive_vireo="$(echo "$iothreads" | sed 's/-object/--object/g')"
		drive_vireo="$drive_vireo --blockdev driver=raw,node-name=d0,file.driver=file"
		drive_vireo="$drive_vireo,file.filename=/disk.img"
		drive_vireo="$drive_vireo --blockdev driver=raw,node-name=d1,file.driver=file"
		drive_vireo="$drive_vireo,file.filename=/disk1.img"
		drive_vireo="$drive_vireo --device virtio-scsi-pci,id=scsi0,num-queues=$E2E_QUEUES"
		drive_vireo="$drive_vireo,iothread-vq-mapping=$vq_map"
		drive_vireo="$drive_vireo $hd,id=hd0,drive=d0,lun=0 $hd,id=hd1,drive=d1,lun=1"
		drive_vireo="$drive_vireo --qmp unix:/tmp/qmp.sock"
		ctl="{\"driver\":\"virtio-scsi-pci\",\"id\":\"scsi0\",\"num_queues\":$E2E_QUEUES"
		ctl="$ctl,\"iothread-vq-mapping\":[$mapping]}"
		drive_qemu="$iothreads"
		for n in 0 1; do
			f=/disk.img
			[ $n -eq 0 ] || f=/disk$n.img
			drive_qemu="$drive_qemu -blockdev driver=raw,node-name=d$n,discard=unmap"
			drive_qemu="$drive_qemu,file.driver=file,file.filename=$f,file.discard=unmap"
		done
		# JSON for the disks too: QEMU makes the JSON -devices after the others
		drive_qemu="$drive_qemu -device $ctl"
		for n in 0 1; do
			drive_qemu="$drive_qemu -device {\"driver\":\"scsi-hd\",\"bus\":\"scsi0.0\""
			drive_qemu="$drive_qemu,\"scsi-id\":0,\"id\":\"hd$n\",\"drive\":\"d$n\",\"lun\":$n}"
		done
		drive_qemu="$drive_qemu -qmp unix:/tmp/qmp.sock,server=on,wait=off"
		qmp_steps="hotadd hotdel"
		vmm_stall=150 # the whole run takes ~60 s under a busy host
	elif [ "${E2E_DISK_FORM:-drive}" = blockdev ]; then
		# the same disk as the --drive below, by its parts (QEMU's spelling of each)
		drive_vireo="$(echo "$iothreads" | sed 's/-object/--object/g')"
		drive_vireo="$drive_vireo --blockdev driver=raw,node-name=d0,file.driver=file"
		drive_vireo="$drive_vireo,file.filename=/disk.img"
		drive_vireo="$drive_vireo --device virtio-blk-pci,drive=d0,num-queues=$E2E_QUEUES"
		drive_vireo="$drive_vireo,iothread-vq-mapping=$vq_map"
	else
		drive_vireo="--drive file=/disk.img,format=raw,if=virtio-blk,num-queues=$E2E_QUEUES"
		drive_vireo="$drive_vireo,iothreads=$E2E_IOTHREADS,cache=writeback"
	fi
	if [ "${E2E_DISK_FORM:-drive}" != scsi ]; then
		dev="{\"driver\":\"virtio-blk-pci\",\"drive\":\"d0\",\"num-queues\":$E2E_QUEUES"
		dev="$dev,\"iothread-vq-mapping\":[$mapping]}"
		drive_qemu="$iothreads -blockdev driver=file,filename=/disk.img,node-name=d0 -device $dev"
	fi
fi

# --mirror: while L2's fio writes, the disk is mirrored to a new qcow2 in L1's RAM (drive-mirror
# over QMP at L2's step "mirror"); at its step "pivot", after the writes, L1 waits for
# BLOCK_JOB_READY, sends job-complete, waits for BLOCK_JOB_COMPLETED and sees the disk on
# /mirror.qcow2 in query-block; fio's verify then reads the target. L2 waits for each step's
# E2E-L1-QMP-STEP line on its serial input (the VMM's standard input, the FIFO qmp_answer).
qmp_answer=
if [ "${E2E_MIRROR:-0}" = 1 ] && [ -n "$drive_vireo$drive_qemu" ]; then
	mirror_dev=d0 # the node of --disk-form blockdev and of QEMU's command line
	[ "$E2E_VMM" = vireo ] && [ "${E2E_DISK_FORM:-drive}" = drive ] && mirror_dev=virtio-blk0
	drive_vireo="$drive_vireo --qmp unix:/tmp/qmp.sock"
	drive_qemu="$drive_qemu -qmp unix:/tmp/qmp.sock,server=on,wait=off"
	qmp_steps="mirror pivot"
	qmp_answer=/tmp/l2-input
	vmm_stall=150 # two fio passes and Python's start: ~60 s under a busy host
	mkfifo "$qmp_answer"
	exec 3<>"$qmp_answer" # read-write: never blocks, and the VMM never sees its end
fi

# --mirror-to nbd (live storage migration): the new qcow2 is a vireo-storage-daemon's writable
# NBD export on a unix socket; the mirror step adds it to the VMM as an nbd node and mirrors
# onto that, and after the VMM the daemon is stopped by SIGTERM, which must flush the qcow2.
sd_pid=
if [ -n "$qmp_answer" ] && [ "${E2E_MIRROR_TO:-qcow2}" = nbd ]; then
	vireo-img create -q -f qcow2 /mirror.qcow2 "$E2E_DISK_SIZE"
	vireo-storage-daemon \
		--blockdev driver=qcow2,node-name=t0,file.driver=file,file.filename=/mirror.qcow2 \
		--nbd-server addr.type=unix,addr.path=/tmp/nbd.sock \
		--export type=nbd,id=e0,node-name=t0,name=mirror,writable=on >/tmp/sd.log 2>&1 &
	sd_pid=$!
	i=0
	while [ ! -S /tmp/nbd.sock ] && [ $i -lt 300 ] && kill -0 "$sd_pid" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ -S /tmp/nbd.sock ]; then
		echo "E2E-L1-SD-START=ok"
	else
		echo "E2E-L1-SD-START=failed"
		sed 's/^/E2E-L1-SD: /' /tmp/sd.log
	fi
fi

# QMP on L2's demand: L2 prints E2E-L2-QMP-WANTED=STEP on its console (which run_vmm copies to
# /tmp/l2-console.log) for each step of $qmp_steps in turn, and waits for what that step does;
# qmp.py, one process for all steps, sends each step's commands and prints E2E-L1-QMP-STEP=STATUS.
qmp_watch() {
	set --
	for step in $qmp_steps; do
		set -- "$@" "@$step"
		case $step in
		hotadd)
			node='"driver":"raw","node-name":"d2","file":{"driver":"file","filename":"/disk2.img"}'
			hd='"driver":"scsi-hd","id":"hd2","drive":"d2","bus":"scsi0.0","scsi-id":0,"lun":2'
			set -- "$@" "{\"execute\":\"blockdev-add\",\"arguments\":{$node}}" \
				"{\"execute\":\"device_add\",\"arguments\":{$hd}}"
			;;
		hotdel) set -- "$@" '{"execute":"device_del","arguments":{"id":"hd2"}}' ;;
		mirror)
			if [ -n "$sd_pid" ]; then
				a='"driver":"nbd","node-name":"remote","export":"mirror"'
				a="$a,\"server\":{\"type\":\"unix\",\"path\":\"/tmp/nbd.sock\"}"
				m="\"device\":\"$mirror_dev\",\"job-id\":\"m0\",\"target\":\"remote\""
				m="$m,\"sync\":\"full\""
				set -- "$@" "{\"execute\":\"blockdev-add\",\"arguments\":{$a}}" \
					"{\"execute\":\"blockdev-mirror\",\"arguments\":{$m}}"
			else
				m="\"device\":\"$mirror_dev\",\"job-id\":\"m0\",\"target\":\"/mirror.qcow2\""
				m="$m,\"format\":\"qcow2\",\"sync\":\"full\",\"mode\":\"absolute-paths\""
				set -- "$@" "{\"execute\":\"drive-mirror\",\"arguments\":{$m}}"
			fi
			;;
		pivot)
			on='?"file": "/mirror.qcow2"'
			[ -n "$sd_pid" ] && on='?"node-name": "remote"'
			set -- "$@" %BLOCK_JOB_READY \
				'{"execute":"job-complete","arguments":{"id":"m0"}}' %BLOCK_JOB_COMPLETED \
				'{"execute":"query-block"}' "$on"
			;;
		esac
	done
	# at the lowest priority (busybox has renice, no nice): its start-up, seconds on this CPU,
	# takes what the VMM leaves
	sh -c 'renice -n 19 -p $$ >/dev/null && exec python3 /e2e/qmp.py "$@"' qmp \
		--console /tmp/l2-console.log ${qmp_answer:+--answer "$qmp_answer"} /tmp/qmp.sock "$@" \
		</dev/null
}

# Runs the VMM's command ("$@"), its console on L1's; with QMP steps also into
# /tmp/l2-console.log for qmp_watch. Sets $rc to the VMM's exit status.
run_vmm() {
	if [ -z "$qmp_steps" ]; then
		"$@"
		rc=$?
		return
	fi
	qmp_watch &
	qwatcher=$!
	{
		if [ -n "$qmp_answer" ]; then
			"$@" <&3 # L1's answers to L2, on its serial input
		else
			"$@"
		fi
		echo $? >/tmp/vmm.rc
	} | tee /tmp/l2-console.log
	rc=$(cat /tmp/vmm.rc)
	kill "$qwatcher" 2>/dev/null
}

echo "E2E-L1-VMM=$E2E_VMM test=$E2E_TEST cpus=$E2E_CPUS memory=$E2E_MEMORY" \
	"uptime=$(cut -d' ' -f1 /proc/uptime)s"
echo "E2E-L1-L2-CMDLINE=$E2E_L2_CMDLINE"
set -f # the JSON in $drive_qemu is not a glob
case $E2E_VMM in
vireo)
	echo "E2E-L1-VIREO-VERSION=$(vireo --version 2>&1 | head -n 1)"
	echo "E2E-L1-RUN: vireo run --kernel /l2/vmlinuz --initrd /l2/initrd.cpio" \
		"--cmdline '$E2E_L2_CMDLINE' --cpus $E2E_CPUS --memory $E2E_MEMORY $drive_vireo"
	echo "E2E-L2-CONSOLE-BEGIN"
	vmm_watch vireo &
	watcher=$!
	# shellcheck disable=SC2086
	run_vmm timeout -s KILL "$E2E_VMM_TIMEOUT" vireo run --kernel /l2/vmlinuz \
		--initrd /l2/initrd.cpio --cmdline "$E2E_L2_CMDLINE" --cpus "$E2E_CPUS" \
		--memory "$E2E_MEMORY" $drive_vireo
	kill "$watcher" 2>/dev/null
	;;
qemu)
	echo "E2E-L1-RUN: qemu-system-x86_64 -M pc -accel kvm -cpu host -smp $E2E_CPUS" \
		"-m $E2E_MEMORY $drive_qemu"
	echo "E2E-L2-CONSOLE-BEGIN"
	# shellcheck disable=SC2086
	run_vmm timeout -s KILL "$E2E_VMM_TIMEOUT" qemu-system-x86_64 -L /usr/share/e2e-qemu -M pc \
		-accel kvm -cpu host -smp "$E2E_CPUS" -m "$E2E_MEMORY" -nodefaults -display none \
		-serial stdio -monitor none -no-reboot -kernel /l2/vmlinuz -initrd /l2/initrd.cpio \
		-append "$E2E_L2_CMDLINE" $drive_qemu </dev/null
	;;
*)
	echo "E2E-L1-ERROR=unknown VMM '$E2E_VMM'"
	finish
	;;
esac
echo
echo "E2E-L2-CONSOLE-END"
[ "$rc" -eq 137 ] && echo "E2E-VIREO-TIMEOUT=${E2E_VMM_TIMEOUT}s"
echo "E2E-VIREO-EXIT=$rc uptime=$(cut -d' ' -f1 /proc/uptime)s"
# --mirror-to nbd: the daemon flushes its export's qcow2 when SIGTERM stops it
if [ -n "$sd_pid" ]; then
	kill -TERM "$sd_pid" 2>/dev/null
	wait "$sd_pid"
	echo "E2E-L1-SD-EXIT=$?"
	sed 's/^/E2E-L1-SD: /' /tmp/sd.log
fi
# --mirror: L2 wrote nothing after the pivot (fio only verified), so the source the VMM left and
# the qcow2 it moved onto must hold the same data; the qcow2 must pass a check
if [ -n "$qmp_answer" ] && [ -x /usr/bin/vireo-img ]; then
	vireo-img check /mirror.qcow2 2>&1 | sed 's/^/E2E-L1-MIRROR: check: /'
	echo "E2E-L1-MIRROR-CHECK=$(vireo-img check -q /mirror.qcow2 >/dev/null 2>&1; echo $?)"
	vireo-img compare -f raw -F qcow2 /disk.img /mirror.qcow2 2>&1 |
		sed 's/^/E2E-L1-MIRROR: compare: /'
	echo "E2E-L1-MIRROR-COMPARE=$(vireo-img compare -q -f raw -F qcow2 /disk.img /mirror.qcow2 \
		>/dev/null 2>&1; echo $?)"
fi
kvm_dmesg
finish
