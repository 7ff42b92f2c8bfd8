#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Test bed 2: boots an emulated host (L1: QEMU TCG with nested SVM, the Debian cloud kernel),
# runs the VMM under test inside it on the same stock kernel (L2), and checks what L2 printed.
#
# usage: run.sh [--test boot|fio|guest] [--vmm vireo|qemu] [--vireo PATH] [--cpus N]
#               [--memory SIZE] [--queues N] [--iothreads N] [--disk-size SIZE]
#               [--disk-form drive|blockdev|scsi] [--mirror [--mirror-to qcow2|nbd]
#               [--vireo-img PATH] [--storage-daemon PATH]] [--timeout SECS]
#               [--fio-cpus LIST] [--fio-size MIB] [--l2-append ARGS] [--guest-elf PATH]
#               [--guest-runs FILE] [--vm-tests FILE --tiny-guests DIR]
#               [--vm-program NAME PROGRAM GUEST]... [--work-dir DIR] [--cache-dir DIR]
#               [--build-dir DIR]
#
#   --test boot   L2 reaches its /init, counts its CPUs (must equal --cpus), powers off; the VMM
#                 exits 0.
#   --test fio    as boot, plus a virtio-blk disk with --queues queues served by --iothreads
#                 iothreads: L2 must see /dev/vda with that many hardware queues, and fio's
#                 randwrite + crc32c verify must pass (one job pinned to each CPU of
#                 --fio-cpus, e.g. 0,1, default all; each on --fio-size MiB of its own, default
#                 8; one after the other). --disk-form says how vireo is given the disk:
#                 `--drive` (default), or `--object iothread` + `--blockdev` + `--device
#                 virtio-blk-pci,iothread-vq-mapping=...`. `--disk-form scsi` makes it two
#                 LUNs (two disk files) of one virtio-scsi-pci controller with --queues queues
#                 on --iothreads iothreads: L2 must see /dev/sda and /dev/sdb with that many
#                 hardware queues each, pass fio on both at once and sg3-utils' checks
#                 (sg_inq, sg_vpd -p bl, sg_readcap -l, sg_unmap, sg_sync), then see a third
#                 LUN come and go as L1 hot-adds and removes it over QMP. --fio-size
#                 defaults to 2 there.
#   --mirror      with --test fio (drive or blockdev): fio writes while L1 mirrors the disk to a
#                 new qcow2 (drive-mirror over QMP), L1 pivots onto it after the writes
#                 (BLOCK_JOB_READY, job-complete, BLOCK_JOB_COMPLETED, query-block names it),
#                 and fio's verify pass then reads the target. With --vireo-img (default: the
#                 build's tools/vireo-img beside --vireo), L1 then checks the qcow2 and compares
#                 it with the source. --mirror-to nbd makes it live storage migration: the
#                 qcow2 is served by a vireo-storage-daemon in L1 (--storage-daemon, default
#                 the build's tools/vireo-storage-daemon) as a writable NBD export on a unix
#                 socket; L1 adds it to the VMM as an nbd node (blockdev-add) and mirrors onto
#                 it with blockdev-mirror, the pivot leaves the disk on the NBD node, and the
#                 daemon, stopped by SIGTERM after the VMM, must have flushed the qcow2.
#   --test guest  no Linux in L2: our test guest (--guest-elf) under vireo on L1's nested KVM,
#                 once for each run of --guest-runs (default tests/guest/vireo-runs.txt, the
#                 guest suite's vireo runs); every run must pass. For machines whose own
#                 /dev/kvm cannot run the guest suite. With --vm-tests (the format of
#                 tests/integration/vm-tests.txt) and --tiny-guests (the directory of their
#                 built ELFs), those integration tests run there too. Each --vm-program
#                 runs PROGRAM VIREO GUEST there (the meson tests of that form: cli_test.sh,
#                 the QMP tests; a .py one with Debian's python3, the rest with sh).
#   --vmm qemu    use qemu-system-x86_64 inside L1 instead of vireo (to check the bed itself);
#                 the default is $E2E_L2_VMM, else vireo.
#   --l2-append   extra L2 kernel parameters, e.g. "earlyprintk=ttyS0 loglevel=8".
#
# Exit status: 0 passed, 1 failed, 77 skipped (the reason is printed). The whole serial log of L1
# (which carries L2's console) is kept in the work directory as console.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

test=boot
vmm=${E2E_L2_VMM:-vireo}
vireo=
cpus=2
memory=512M
queues=2
iothreads=2
disk_size=256M
disk_form=drive
mirror=0
mirror_to=qcow2
vireo_img=
storage_daemon=
fio_cpus=
fio_size=
timeout_s=
l2_append=
guest_elf=
guest_runs=$E2E_DIR/../guest/vireo-runs.txt
vm_tests=
tiny_guests=
vm_programs=() # NAME PROGRAM GUEST, three words each
work=
cache=
build_dir=
while (($#)); do
	case $1 in
	--test) test=$2; shift 2 ;;
	--vmm) vmm=$2; shift 2 ;;
	--vireo) vireo=$2; shift 2 ;;
	--cpus) cpus=$2; shift 2 ;;
	--memory) memory=$2; shift 2 ;;
	--queues) queues=$2; shift 2 ;;
	--iothreads) iothreads=$2; shift 2 ;;
	--disk-size) disk_size=$2; shift 2 ;;
	--disk-form) disk_form=$2; shift 2 ;;
	--mirror) mirror=1; shift ;;
	--mirror-to) mirror_to=$2; shift 2 ;;
	--vireo-img) vireo_img=$2; shift 2 ;;
	--storage-daemon) storage_daemon=$2; shift 2 ;;
	--fio-cpus) fio_cpus=$2; shift 2 ;;
	--fio-size) fio_size=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--l2-append) l2_append=$2; shift 2 ;;
	--guest-elf) guest_elf=$2; shift 2 ;;
	--guest-runs) guest_runs=$2; shift 2 ;;
	--vm-tests) vm_tests=$2; shift 2 ;;
	--tiny-guests) tiny_guests=$2; shift 2 ;;
	--vm-program) (($# >= 4)) || e2e_die "run.sh: --vm-program takes NAME PROGRAM GUEST"
		vm_programs+=("$2" "$3" "$4"); shift 4 ;;
	--work-dir) work=$2; shift 2 ;;
	--cache-dir) cache=$2; shift 2 ;;
	--build-dir) build_dir=$2; shift 2 ;;
	-h | --help) sed -n '3,48p' "$0"; exit 0 ;;
	*) e2e_die "run.sh: unknown argument '$1' (see --help)" ;;
	esac
done
case $test in
boot | fio | guest) ;;
*) e2e_die "run.sh: --test must be boot, fio or guest, not '$test'" ;;
esac
case $vmm in vireo | qemu) ;; *) e2e_die "run.sh: --vmm must be vireo or qemu, not '$vmm'" ;; esac
case $disk_form in
drive | blockdev) ;;
scsi) [[ $test == fio ]] || e2e_die "run.sh: --disk-form scsi needs --test fio" ;;
*) e2e_die "run.sh: --disk-form must be drive, blockdev or scsi, not '$disk_form'" ;;
esac
if ((mirror)); then
	[[ $test == fio && $disk_form != scsi ]] ||
		e2e_die "run.sh: --mirror needs --test fio with --disk-form drive or blockdev"
fi
case $mirror_to in
qcow2) ;;
nbd) ((mirror)) || e2e_die "run.sh: --mirror-to needs --mirror" ;;
*) e2e_die "run.sh: --mirror-to must be qcow2 or nbd, not '$mirror_to'" ;;
esac
hot_disk_size=64M # --disk-form scsi: the LUN hot-added over QMP
# SCSI in L2 costs ~4x virtio-blk's time per I/O in the bed, under either VMM, and there are two
# LUNs: 2 MiB a job keeps the run near e2e-fio's length
[[ $disk_form == scsi && -z $fio_size ]] && fio_size=2
if [[ $test == guest ]]; then
	[[ $vmm == vireo ]] || e2e_die "run.sh: --test guest runs vireo only (QEMU's guest runs need the host's KVM)"
	[[ -r $guest_elf ]] || e2e_die "run.sh: --test guest needs --guest-elf, the test guest (not '$guest_elf')"
	[[ -r $guest_runs ]] || e2e_die "run.sh: --guest-runs: cannot read '$guest_runs'"
	guest_names=
	while IFS= read -r line; do # the lines L1's init runs: every one must parse
		[[ -z $line || $line == '#'* ]] && continue
		[[ $line =~ ^([^ :]+):\ (.*\ )?--\ .+$ ]] ||
			e2e_die "run.sh: --guest-runs: '$line' is not 'NAME: OPTIONS -- CMDLINE'"
		guest_names+=" ${BASH_REMATCH[1]}"
	done <"$guest_runs"
	[[ -n $guest_names ]] || e2e_die "run.sh: --guest-runs: no 'NAME: OPTIONS -- CMDLINE' line in '$guest_runs'"
	if [[ -n $vm_tests ]]; then
		[[ -r $vm_tests ]] || e2e_die "run.sh: --vm-tests: cannot read '$vm_tests'"
		[[ -d $tiny_guests ]] || e2e_die "run.sh: --vm-tests needs --tiny-guests DIR (not '$tiny_guests')"
		while IFS= read -r line; do
			[[ -z $line || $line == '#'* ]] && continue
			[[ $line =~ ^([^ |]+)\ \|\ ([^ |]+)\ \|\ ([^ |]+)\ \|\ (.+)$ ]] ||
				e2e_die "run.sh: --vm-tests: '$line' is not 'NAME | GUEST | STATUS | TEXT'"
			[[ -r $tiny_guests/${BASH_REMATCH[2]}.elf ]] ||
				e2e_die "run.sh: --vm-tests: no $tiny_guests/${BASH_REMATCH[2]}.elf (build it first)"
			guest_names+=" ${BASH_REMATCH[1]}"
		done <"$vm_tests"
	fi
	for ((i = 0; i < ${#vm_programs[@]}; i += 3)); do
		[[ ${vm_programs[i]} =~ ^[^\ ]+$ ]] ||
			e2e_die "run.sh: --vm-program: '${vm_programs[i]}' is not a NAME (no spaces)"
		for f in "${vm_programs[@]:i+1:2}"; do
			[[ -r $f ]] || e2e_die "run.sh: --vm-program ${vm_programs[i]}: cannot read '$f'"
		done
		guest_names+=" ${vm_programs[i]}"
	done
elif ((${#vm_programs[@]})); then
	e2e_die "run.sh: --vm-program needs --test guest"
fi
for v in cpus queues iothreads timeout_s fio_size; do
	[[ -z ${!v} || ${!v} =~ ^[1-9][0-9]*$ ]] || e2e_die "run.sh: --${v%_s} must be a positive integer"
done
[[ -n $timeout_s ]] || { [[ $test == boot ]] && timeout_s=480 || timeout_s=900; }

why=$(e2e_missing_prereq)
[[ -z $why ]] || e2e_skip "$why"
if [[ $test == fio ]] && ! command -v fio >/dev/null 2>&1; then
	e2e_skip "fio is not installed (package fio)"
fi
if [[ $disk_form == scsi ]]; then
	for c in sg_inq sg_vpd sg_readcap sg_unmap sg_sync; do
		command -v $c >/dev/null 2>&1 || e2e_skip "$c is not installed (package sg3-utils)"
	done
	disk_bytes=$(numfmt --from=iec "$disk_size") || e2e_die "run.sh: --disk-size: '$disk_size'?"
fi
if [[ $disk_form == scsi ]] || ((mirror)); then
	[[ -x /usr/bin/python3 ]] || e2e_skip "no /usr/bin/python3 for the QMP client (package python3-minimal)"
fi
if [[ $vmm == vireo ]]; then
	[[ -n $vireo ]] || e2e_die "run.sh: --vireo PATH is required with --vmm vireo"
	[[ -x $vireo ]] || e2e_die "run.sh: --vireo: '$vireo' is not an executable"
	vireo=$(realpath "$vireo")
	help=$("$vireo" --help 2>&1 || true)
	grep -q -E '(^|[^-[:alnum:]])run([^-[:alnum:]]|$)' <<<"$help" ||
		e2e_skip "this vireo has no 'run' command yet ('vireo --help' does not mention it)"
	[[ $test != boot ]] && ! grep -q -- '--drive' <<<"$help" &&
		e2e_skip "this vireo has no disks yet ('vireo --help' does not mention --drive)"
	if ((mirror)); then
		[[ -n $vireo_img ]] || vireo_img=$(dirname "$vireo")/tools/vireo-img
		[[ -x $vireo_img ]] || e2e_die "run.sh: --vireo-img: '$vireo_img' is not an executable"
	fi
	if ((mirror)) && [[ $mirror_to == nbd ]]; then
		[[ -n $storage_daemon ]] ||
			storage_daemon=$(dirname "$vireo")/tools/vireo-storage-daemon
		[[ -x $storage_daemon ]] ||
			e2e_die "run.sh: --storage-daemon: '$storage_daemon' is not an executable"
	else
		storage_daemon=
	fi
fi

kver=$(e2e_kernel_version)
[[ -n $cache ]] || cache=$(e2e_cache_dir "$build_dir")
mkdir -p "$cache"
[[ -n $work ]] || work=${TMPDIR:-/tmp}/vireo-e2e-$(id -un)/$test-$vmm
mkdir -p "$work"
work=$(realpath "$work")
log=$work/console.log
rm -f "$log" "$work/l1.cpio"

t0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

l2=$("$E2E_DIR/build-l2.sh" --cache-dir "$cache" --kver "$kver")
l1base=$("$E2E_DIR/build-l1.sh" --cache-dir "$cache" --kver "$kver" --vmm "$vmm" --l2-initrd "$l2")
# Python for the .py programs (the QMP tests), in an archive of its own: boot and fio go without.
# vmtest.py is the set-up they all import (tests/guest's through its path to tests/integration).
py_programs=()
for ((i = 1; i < ${#vm_programs[@]}; i += 3)); do
	[[ ${vm_programs[i]} == *.py ]] && py_programs+=("${vm_programs[i]}")
done
l1python=
if ((${#py_programs[@]})); then
	l1python=$("$E2E_DIR/build-python.sh" --cache-dir "$cache" "${py_programs[@]}" \
		"$E2E_DIR/../integration/vmtest.py")
elif [[ $disk_form == scsi ]] || ((mirror)); then # L1's QMP client (hot-plug, mirror)
	l1python=$("$E2E_DIR/build-python.sh" --cache-dir "$cache" "$E2E_DIR/qmp.py")
fi

# The run's own archive: its settings, and vireo with its libraries.
l2_cmdline="console=ttyS0 panic=-1 loglevel=4 vireo.test=$test"
[[ $test == fio ]] && l2_cmdline+=" vireo.queues=$queues"
[[ $disk_form == scsi ]] && l2_cmdline+=" vireo.disk=scsi"
((mirror)) && l2_cmdline+=" vireo.mirror=1"
[[ -z $fio_cpus || $fio_cpus =~ ^[0-9]+(,[0-9]+)*$ ]] ||
	e2e_die "run.sh: --fio-cpus must be a comma-separated list of CPU numbers"
[[ $test == fio && -n $fio_cpus ]] && l2_cmdline+=" vireo.fiocpus=$fio_cpus"
[[ $test == fio && -n $fio_size ]] && l2_cmdline+=" vireo.fiosize=$fio_size"
[[ -n $l2_append ]] && l2_cmdline+=" $l2_append"
stage=$(mktemp -d "$work/run-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/e2e" "$stage/usr/bin" "$stage/etc"
{
	echo "E2E_TEST=$test"
	echo "E2E_VMM=$vmm"
	echo "E2E_CPUS=$cpus"
	echo "E2E_MEMORY=$memory"
	echo "E2E_QUEUES=$queues"
	echo "E2E_IOTHREADS=$iothreads"
	echo "E2E_DISK_FORM=$disk_form"
	echo "E2E_MIRROR=$mirror"
	echo "E2E_MIRROR_TO=$mirror_to"
	echo "E2E_HOT_DISK_SIZE=$hot_disk_size"
	[[ $test == fio ]] && echo "E2E_DISK_SIZE=$disk_size" || echo "E2E_DISK_SIZE="
	echo "E2E_VMM_TIMEOUT=$((timeout_s > 120 ? timeout_s - 60 : timeout_s / 2))"
	printf 'E2E_L2_CMDLINE=%q\n' "$l2_cmdline"
	echo "E2E_GUEST_TIMEOUT=${E2E_GUEST_TIMEOUT:-300}"
	# a sanitized vireo reports to L1's console as it would here
	for v in ASAN_OPTIONS UBSAN_OPTIONS; do
		[[ -z ${!v:-} ]] || printf 'export %s=%q\n' "$v" "${!v}"
	done
} >"$stage/e2e/config"
if [[ $test == guest ]]; then
	mkdir -p "$stage/e2e/guest"
	cp "$guest_elf" "$stage/e2e/guest/guest.elf"
	cp "$guest_runs" "$stage/e2e/guest/runs"
	cp "$E2E_DIR/../guest/run-vireo.sh" "$E2E_DIR/../guest/verdict.sh" "$stage/e2e/guest/"
	if [[ -n $vm_tests ]]; then
		grep -v -e '^#' -e '^$' "$vm_tests" >"$stage/e2e/guest/vm-tests"
		cp "$E2E_DIR/../integration/vm_test.sh" "$tiny_guests"/*.elf "$stage/e2e/guest/"
	fi
	# each program at /e2e/tests/<its directory>/, as in the tree: the guest's QMP test finds
	# vmtest.py at ../integration
	mkdir -p "$stage/e2e/tests/integration"
	((${#py_programs[@]})) && cp "$E2E_DIR/../integration/vmtest.py" "$stage/e2e/tests/integration/"
	for ((i = 0; i < ${#vm_programs[@]}; i += 3)); do
		prog=tests/$(basename "$(dirname "$(realpath "${vm_programs[i + 1]}")")")
		prog+=/$(basename "${vm_programs[i + 1]}")
		guest=$(basename "${vm_programs[i + 2]}")
		mkdir -p "$stage/e2e/$(dirname "$prog")"
		cp "${vm_programs[i + 1]}" "$stage/e2e/$prog"
		cp "${vm_programs[i + 2]}" "$stage/e2e/guest/$guest"
		echo "${vm_programs[i]} /e2e/$prog /e2e/guest/$guest"
	done >"$stage/e2e/guest/vm-programs"
fi
[[ $disk_form == scsi ]] || ((mirror)) && cp "$E2E_DIR/qmp.py" "$stage/e2e/qmp.py"
if [[ $vmm == vireo ]]; then
	cp "$vireo" "$stage/usr/bin/vireo"
	[[ -n $vireo_img ]] && cp "$vireo_img" "$stage/usr/bin/vireo-img"
	[[ -n $storage_daemon ]] && cp "$storage_daemon" "$stage/usr/bin/vireo-storage-daemon"
	libs=$(e2e_lib_closure "$vireo"; [[ -z $vireo_img ]] || e2e_lib_closure "$vireo_img"
	       [[ -z $storage_daemon ]] || e2e_lib_closure "$storage_daemon")
	for l in $libs; do
		mkdir -p "$stage/$(dirname "$l")"
		cp -L "$l" "$stage/$l"
		dirname "$l"
	done | sort -u | paste -sd: - >"$stage/etc/e2e-libpath"
fi
e2e_make_cpio "$stage" "$work/run.cpio"
cat "$l1base" ${l1python:+"$l1python"} "$work/run.cpio" >"$work/l1.cpio"
rm -f "$work/run.cpio"
e2e_log "initramfs ready in $(elapsed "$t0") s" \
	"(L2 $(du -h "$l2" | cut -f1), L1 $(du -h "$work/l1.cpio" | cut -f1))"

# Only one TCG VM at a time on this machine (2 cores shared by everyone).
if [[ -e $E2E_TCG_LOCK && ! -w $E2E_TCG_LOCK ]]; then
	exec 9<"$E2E_TCG_LOCK" # another user's lock file: flock needs only an open descriptor
else
	exec 9>>"$E2E_TCG_LOCK"
fi
if ! flock -n 9; then
	e2e_log "waiting for $E2E_TCG_LOCK (another emulated VM is running)"
	flock 9
fi
# L1 gets one CPU: with two, nested SVM under TCG lost an L1 CPU now and then (README.md, "Known
# flake"). L2 still has its own CPUs; vireo's threads share L1's one.
# L1's /init writes a heartbeat to its second serial port every 5 s. An L1 silent for l1_silence
# seconds has frozen: the emulated host itself, which nothing inside it can do to it. That boot is
# killed and, once, done again; a VMM that hangs L2 leaves L1 talking and fails as it should.
l1_silence=${E2E_L1_SILENCE:-60}
boot_l1() { # prints nothing; returns QEMU's status, 137 when out of time, 124 when L1 went silent
	local qpid start=$SECONDS quiet=$SECONDS size=0 now
	rm -f "$log" "$heartbeat"
	# shellcheck disable=SC2086 # E2E_L1_ARGS: extra QEMU options, word-split (e.g. -d int -D FILE)
	qemu-system-x86_64 \
		-accel tcg,thread=multi,tb-size=512 -cpu "${E2E_L1_CPU:-qemu64,+svm,+npt}" \
		-smp "${E2E_L1_SMP:-1}" -m 3072 \
		-nodefaults -display none -serial "file:$log" -serial "file:$heartbeat" -monitor none \
		-no-reboot -kernel "/boot/vmlinuz-$kver" -initrd "$work/l1.cpio" \
		-append "console=ttyS0 panic=-1 loglevel=4" ${E2E_L1_ARGS:-} </dev/null &
	qpid=$!
	while kill -0 "$qpid" 2>/dev/null; do
		sleep 1
		now=$(stat -c %s "$heartbeat" 2>/dev/null || echo 0)
		((now == size)) || { size=$now; quiet=$SECONDS; }
		if ((SECONDS - start >= timeout_s || SECONDS - quiet >= l1_silence)); then
			kill -KILL "$qpid" 2>/dev/null
			wait "$qpid"
			((SECONDS - start >= timeout_s)) && return 137
			return 124
		fi
	done
	wait "$qpid"
}
heartbeat=$work/l1-heartbeat.log
e2e_log "booting the emulated host: $test with $vmm, log in $log"
t1=$(date +%s.%N)
set +e
for attempt in 1 2; do
	boot_l1
	qrc=$?
	((qrc == 124 && attempt == 1)) || break
	mv "$log" "$log.frozen"
	e2e_log "the emulated host went silent for $l1_silence s: L1 froze (README.md, \"Known" \
		"flake\"; its log: $log.frozen); booting it once more"
done
set -e
flock -u 9
exec 9>&-
rm -f "$work/l1.cpio"
wall=$(elapsed "$t1")
e2e_log "emulated host ran for $wall s (exit status $qrc)"

# The parse: the serial console ends lines with \r\n.
tr -d '\r' <"$log" >"$log.txt"
mv "$log.txt" "$log"
val() { grep -a -m1 "^$1=" "$log" | cut -d= -f2- | cut -d' ' -f1 || true; }

echo "---- L2 console (from $log) ----"
sed -n '/^E2E-L2-CONSOLE-BEGIN$/,/^E2E-L2-CONSOLE-END$/p' "$log" | sed '1d;$d'
echo "---- end of L2 console ----"
grep -a -E '^E2E-(L1|VIREO)-' "$log" || true

fails=()
check() { # check WHAT EXPECTED ACTUAL
	if [[ $2 != "$3" ]]; then
		fails+=("$1: expected '$2', got '${3:-nothing}'")
	fi
}
# --disk-form scsi: what L2 and L1 printed of the LUNs, sg3-utils and the hot-plug
scsi_checks() {
	local d vendor=VIREO
	[[ $vmm == qemu ]] && vendor=QEMU
	for d in SDA SDB; do
		check "hardware queues of L2's /dev/${d,,}" "$queues" "$(val "E2E-L2-$d-MQ")"
		check "sg_readcap -l's device size of /dev/${d,,}" "$disk_bytes" \
			"$(val "E2E-L2-$d-READCAP-BYTES")"
	done
	check "fio's exit status in L2 (both LUNs at once)" 0 "$(val E2E-L2-FIO-EXIT)"
	check "sg_inq's vendor of /dev/sda" "$vendor" "$(val E2E-L2-SDA-VENDOR)"
	local unmap
	unmap=$(val E2E-L2-SDA-VPD-BL-MAX-UNMAP)
	[[ $unmap =~ ^[1-9][0-9]*$ ]] ||
		fails+=("sg_vpd -p bl of /dev/sda: expected the block limits page with a maximum unmap LBA count, got '${unmap:-nothing}'")
	check "/dev/sdb's range before sg_unmap" data "$(val E2E-L2-SDB-UNMAP-BEFORE)"
	check "sg_unmap's exit status on /dev/sdb" 0 "$(val E2E-L2-SDB-UNMAP-EXIT)"
	check "/dev/sdb's unmapped range reads zeroes" yes "$(val E2E-L2-SDB-UNMAP-ZEROES)"
	check "sg_sync's exit status on /dev/sda" 0 "$(val E2E-L2-SDA-SYNC-EXIT)"
	check "the QMP hot-add (blockdev-add, device_add) from L1" 0 "$(val E2E-L1-QMP-hotadd)"
	check "the hot-added /dev/sdc's size" "$(numfmt --from=iec "$hot_disk_size")" \
		"$(val E2E-L2-SDC-SIZE-BYTES)"
	check "fio's exit status on the hot-added /dev/sdc" 0 "$(val E2E-L2-SDC-FIO-EXIT)"
	check "the QMP device_del from L1" 0 "$(val E2E-L1-QMP-hotdel)"
	check "/dev/sdc gone after device_del" yes "$(val E2E-L2-SDC-GONE)"
}
# --mirror: the QMP steps, both fio passes, and the target as L1 found it afterwards
mirror_checks() {
	check "fio's write pass in L2 (while mirroring)" 0 "$(val E2E-L2-FIO-WRITE-EXIT)"
	if [[ $mirror_to == nbd ]]; then
		check "vireo-storage-daemon's NBD export in L1" ok "$(val E2E-L1-SD-START)"
		check "blockdev-add of the export and blockdev-mirror from L1" 0 \
			"$(val E2E-L1-QMP-mirror)"
		check "the pivot from L1 (READY, job-complete, COMPLETED, query-block shows the NBD node)" \
			0 "$(val E2E-L1-QMP-pivot)"
		check "vireo-storage-daemon's exit status after SIGTERM" 0 "$(val E2E-L1-SD-EXIT)"
	else
		check "drive-mirror from L1" 0 "$(val E2E-L1-QMP-mirror)"
		check "the pivot from L1 (READY, job-complete, COMPLETED, query-block shows the qcow2)" \
			0 "$(val E2E-L1-QMP-pivot)"
	fi
	check "L1's answer to the pivot, as L2 read it" 0 "$(val E2E-L2-QMP-DONE-pivot)"
	check "fio's verify pass in L2 (after the pivot, on the target)" 0 "$(val E2E-L2-FIO-EXIT)"
	if [[ -n $vireo_img ]]; then
		check "vireo-img check of the target" 0 "$(val E2E-L1-MIRROR-CHECK)"
		check "vireo-img compare of the source and the target" 0 "$(val E2E-L1-MIRROR-COMPARE)"
	fi
}
if ((qrc == 137)); then
	fails+=("the emulated host did not power off within ${timeout_s} s: killed")
elif ((qrc == 124)); then
	fails+=("the emulated host froze twice (L1 silent for $l1_silence s; README.md, \"Known flake\")")
elif ((qrc != 0)); then
	fails+=("the emulated host's QEMU failed with exit status $qrc")
fi
grep -a -q '^E2E-L1-INIT-REACHED' "$log" || fails+=("L1 never reached its init")
l1err=$(val E2E-L1-ERROR)
[[ -z $l1err ]] || fails+=("L1: $(grep -a -m1 '^E2E-L1-ERROR=' "$log" | cut -d= -f2-)")
if [[ $test == guest ]] && grep -a -q '^E2E-L1-KVM=ok' "$log"; then
	for name in $guest_names; do
		check "the test guest's run $name (E2E-GUEST-RESULT)" 0 \
			"$(grep -a -m1 "^E2E-GUEST-RESULT=$name " "$log" | cut -d' ' -f2 || true)"
	done
elif grep -a -q '^E2E-L1-KVM=ok' "$log"; then
	check "L2 reached its init" yes "$(grep -a -q '^E2E-L2-INIT-REACHED' "$log" && echo yes)"
	check "CPUs L2 counts (nproc)" "$cpus" "$(val E2E-L2-NPROC)"
	check "CPUs in L2's /proc/cpuinfo" "$cpus" "$(val E2E-L2-CPUINFO)"
	l2fail=$(grep -a -m1 '^E2E-L2-FAIL=' "$log" | cut -d= -f2- || true)
	[[ -z $l2fail ]] || fails+=("L2's /init: $l2fail")
	if [[ $test == fio && $disk_form == scsi ]]; then
		scsi_checks
	elif [[ $test == fio ]]; then
		check "hardware queues of L2's /dev/vda" "$queues" "$(val E2E-L2-VDA-MQ)"
		check "fio's exit status in L2" 0 "$(val E2E-L2-FIO-EXIT)"
		((mirror)) && mirror_checks
	fi
	check "L2 finished its test" yes "$(grep -a -q '^E2E-L2-DONE' "$log" && echo yes)"
	check "$vmm's exit status" 0 "$(val E2E-VIREO-EXIT)"
	panic=$(grep -a -m1 'Kernel panic' "$log" || true)
	[[ -z $panic ]] || fails+=("a kernel panicked: $panic")
fi
if ((${#fails[@]})); then
	echo "---- last 40 lines of $log ----"
	tail -n 40 "$log"
	echo "----"
	for f in "${fails[@]}"; do
		echo "e2e: FAIL: $f"
	done
	exit 1
fi
what="$cpus CPUs"
[[ $test == fio ]] && what+=", $queues queues, $iothreads iothreads"
[[ $disk_form == scsi ]] && what+=", virtio-scsi: 2 LUNs + 1 hot-plugged"
((mirror)) && what+=", mirrored to a qcow2${storage_daemon:+ over NBD} and pivoted between fio's writes and its verify"
[[ $test == guest ]] && what="$(wc -w <<<"$guest_names") runs of the test guests"
echo "e2e: PASS: $test with $vmm ($what): L1 + L2 in $wall s, total $(elapsed "$t0") s"
