#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the test guest under qemu-system-x86_64 and maps its debug-exit status to pass (0) / fail (1);
# 77 (skipped) when QEMU, or /dev/kvm with --kvm-only, is missing.
#
# usage: run-qemu.sh [-M q35|pc] [--smp N] [--mem SIZE] [--kvm-only | --tcg] [--timeout S]
#                    [--disk FILE | --scratch SIZE] [--queues N] [--readonly] [--transitional]
#                    [--serial STR] [--scsi-queues N] [--scsi-lun SIZE[:ro][:direct] ...]
#                    guest.elf [case|key=value ...]
# Under KVM: -cpu host,-arch-capabilities (TESTBEDS.md); without /dev/kvm: TCG (one TCG VM at a
# time machine-wide: serialized on /tmp/vireo-tcg.lock).
# --scsi-lun (repeatable) adds a virtio-scsi-pci controller (1af4:1048, --scsi-queues request
# queues, default 2) with a temporary raw file of SIZE as a scsi-hd on target 0, LUN 0, 1, ...:
# read-only with :ro, cache.direct=on with :direct, as run-vireo.sh does.
set -u
here=$(dirname "$0")
. "$here/verdict.sh"

machine=q35 smp=2 mem=256M kvm_only=0 tcg=0 tmo=120 disk='' scratch='' queues=1 disable_legacy=on serial=vireo-test ro=off
scsi_queues=2 scsi_luns=''
while [ $# -gt 0 ]; do
	case "$1" in
	-M) machine=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--kvm-only) kvm_only=1; shift ;;
	--tcg) tcg=1; shift ;;
	--timeout) tmo=$2; shift 2 ;;
	--disk) disk=$2; shift 2 ;;
	--scratch) scratch=$2; shift 2 ;;
	--queues) queues=$2; shift 2 ;;
	--transitional) disable_legacy=off; shift ;;
	--readonly) ro=on; shift ;;
	--serial) serial=$2; shift 2 ;;
	--scsi-queues) scsi_queues=$2; shift 2 ;;
	--scsi-lun) scsi_luns="$scsi_luns $2"; shift 2 ;;
	-*) echo "run-qemu.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { echo "usage: run-qemu.sh [options] guest.elf [cmdline...]" >&2; exit 2; }
elf=$1; shift
cmdline="$*"

qemu=$(command -v qemu-system-x86_64) || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }
if [ $tcg = 0 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	accel="-enable-kvm -cpu host,-arch-capabilities" lock=
elif [ $kvm_only = 1 ]; then
	echo "SKIP: /dev/kvm is not available"; exit 77
else
	accel="-accel tcg -cpu max" lock="flock /tmp/vireo-tcg.lock"
fi

cleanup=""
if [ -n "$scratch" ]; then
	disk=$(mktemp "${TMPDIR:-/tmp}/vireo-guest-disk.XXXXXX") || exit 1
	cleanup=$disk
	truncate -s "$scratch" "$disk" || exit 1
fi
trap '[ -n "$cleanup" ] && rm -f $cleanup' EXIT
drive=
if [ -n "$disk" ]; then
	drive="-drive file=$disk,if=none,id=d0,format=raw,discard=unmap,readonly=$ro
-device virtio-blk-pci,drive=d0,disable-legacy=$disable_legacy,num-queues=$queues,serial=$serial"
fi

if [ -n "$scsi_luns" ]; then
	drive="$drive
-device virtio-scsi-pci,id=scsi0,disable-legacy=on,num_queues=$scsi_queues"
	lun=0
	for spec in $scsi_luns; do
		f=$(mktemp "${TMPDIR:-/tmp}/vireo-guest-lun.XXXXXX") || exit 1
		cleanup="$cleanup $f"
		truncate -s "${spec%%:*}" "$f" || exit 1
		lro=off direct=off
		case ":$spec:" in *:ro:*) lro=on ;; esac
		case ":$spec:" in *:direct:*) direct=on ;; esac
		drive="$drive
-drive file=$f,if=none,id=lun$lun,format=raw,discard=unmap,readonly=$lro,cache.direct=$direct
-device scsi-hd,drive=lun$lun,bus=scsi0.0,scsi-id=0,lun=$lun,serial=vireo-lun$lun"
		lun=$((lun + 1))
	done
fi

# word splitting of $accel and $drive is intended; the command line is one argument
# shellcheck disable=SC2086
$lock timeout -k 5 "$tmo" "$qemu" -M "$machine" $accel -smp "$smp" -m "$mem" \
	-nodefaults -display none -no-reboot -monitor none -serial stdio \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 $drive \
	-kernel "$elf" -append "$cmdline" </dev/null
guest_verdict $?
