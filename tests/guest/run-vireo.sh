#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the test guest under vireo and maps its debug-exit status to pass (0) / fail (1); 77
# (skipped) when /dev/kvm is missing.
#
# usage: run-vireo.sh VIREO [--cpus N] [--memory SIZE] [--timeout S] [--drive SPEC]
#                     [--scratch SIZE] [--queues N] [--iothreads N] [--readonly]
#                     [--drive-opts KEY=VAL,...] [--blockdev-form]
#                     [--scsi-queues N] [--scsi-lun SIZE[:ro][:direct] ...]
#                     guest.elf [case|key=value ...]
# --scratch makes a temporary raw file of SIZE and gives it to the guest as a virtio-blk disk
# with N queues on N iothreads (--iothreads: another count), read-only with --readonly.
# --blockdev-form gives the same disk as --object iothread (one a queue) + --blockdev (a raw
# node over a file node, JSON) + --device virtio-blk-pci (iothread-vq-mapping) instead of --drive.
# --scsi-lun (repeatable) adds a virtio-scsi-pci controller scsi0 (--scsi-queues request queues,
# default 2, each on an iothread of its own) and, for each, a temporary raw file of SIZE as a
# scsi-hd on target 0, LUN 0, 1, ... in order: read-only with :ro, cache.direct=on with :direct
# (writeback when the file system refuses O_DIRECT, as tmpfs before Linux 6.6 does).
set -u
here=$(dirname "$0")
. "$here/verdict.sh"

[ $# -ge 1 ] || { echo "usage: run-vireo.sh VIREO [options] guest.elf [cmdline...]" >&2; exit 2; }
vireo=$1; shift
cpus=2 mem=256M tmo=120 drive='' scratch='' queues=1 iothreads='' ro=off dopts= bform=''
scsi_queues=2 scsi_luns=''
while [ $# -gt 0 ]; do
	case "$1" in
	--cpus) cpus=$2; shift 2 ;;
	--memory) mem=$2; shift 2 ;;
	--timeout) tmo=$2; shift 2 ;;
	--drive) drive=$2; shift 2 ;;
	--scratch) scratch=$2; shift 2 ;;
	--queues) queues=$2; shift 2 ;;
	--iothreads) iothreads=$2; shift 2 ;;
	--readonly) ro=on; shift ;;
	--drive-opts) dopts=,$2; shift 2 ;;
	--blockdev-form) bform=1; shift ;;
	--scsi-queues) scsi_queues=$2; shift 2 ;;
	--scsi-lun) scsi_luns="$scsi_luns $2"; shift 2 ;;
	-*) echo "run-vireo.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { echo "usage: run-vireo.sh VIREO [options] guest.elf [cmdline...]" >&2; exit 2; }
elf=$1; shift
cmdline="$*"

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "SKIP: /dev/kvm is not available"; exit 77
fi

cleanup=""
if [ -n "$scratch" ]; then
	disk=$(mktemp "${TMPDIR:-/tmp}/vireo-guest-disk.XXXXXX") || exit 1
	cleanup=$disk
	truncate -s "$scratch" "$disk" || exit 1
	drive="file=$disk,format=raw,if=virtio-blk,num-queues=$queues,iothreads=${iothreads:-$queues}"
	drive="$drive,readonly=$ro,serial=vireo-test$dopts"
fi
trap '[ -n "$cleanup" ] && rm -f $cleanup' EXIT

# The virtio-scsi controller and its LUNs, as arguments kept in $scsi_args (no spaces inside).
scsi_args=''
if [ -n "$scsi_luns" ]; then
	map='' i=0
	while [ $i -lt "$scsi_queues" ]; do
		scsi_args="$scsi_args --object iothread,id=siot$i"
		map="$map${map:+:}siot$i"
		i=$((i + 1))
	done
	scsi_args="$scsi_args --device virtio-scsi-pci,id=scsi0,num-queues=$scsi_queues"
	scsi_args="$scsi_args,iothread-vq-mapping=$map"
	lun=0
	for spec in $scsi_luns; do
		f=$(mktemp "${TMPDIR:-/tmp}/vireo-guest-lun.XXXXXX") || exit 1
		cleanup="$cleanup $f"
		truncate -s "${spec%%:*}" "$f" || exit 1
		lro=false direct=off
		case ":$spec:" in *:ro:*) lro=true ;; esac
		case ":$spec:" in *:direct:*)
			if dd if=/dev/zero of="$f" bs=4096 count=1 oflag=direct conv=notrunc 2>/dev/null
			then direct=on
			else echo "run-vireo.sh: LUN $lun: no O_DIRECT in ${TMPDIR:-/tmp}, cache writeback"
			fi ;;
		esac
		scsi_args="$scsi_args --blockdev driver=raw,node-name=lun$lun,read-only=$lro"
		scsi_args="$scsi_args,file.driver=file,file.filename=$f,file.cache.direct=$direct"
		scsi_args="$scsi_args --device scsi-hd,drive=lun$lun,id=hd$lun,bus=scsi0.0,scsi-id=0"
		scsi_args="$scsi_args,lun=$lun,serial=vireo-lun$lun"
		lun=$((lun + 1))
	done
fi

# word splitting of $scsi_args is intended: it is a list of arguments without spaces
# shellcheck disable=SC2086
if [ -n "$bform" ] && [ -n "$scratch" ]; then
	set -- ; map=''
	i=0
	while [ $i -lt "$queues" ]; do
		set -- "$@" --object "iothread,id=iot$i"
		map="$map${map:+:}iot$i"
		i=$((i + 1))
	done
	[ "$ro" = on ] && rojs=true || rojs=false
	timeout -k 5 "$tmo" "$vireo" run --kernel "$elf" --cpus "$cpus" --memory "$mem" \
		--serial stdio --cmdline "$cmdline" "$@" $scsi_args \
		--blockdev "{\"driver\": \"raw\", \"node-name\": \"disk0\", \"read-only\": $rojs, \"file\": {\"driver\": \"file\", \"filename\": \"$disk\"}}" \
		--device "virtio-blk-pci,drive=disk0,num-queues=$queues,iothread-vq-mapping=$map,serial=vireo-test" </dev/null
elif [ -n "$drive" ]; then
	timeout -k 5 "$tmo" "$vireo" run --kernel "$elf" --cpus "$cpus" --memory "$mem" \
		--serial stdio --cmdline "$cmdline" --drive "$drive" $scsi_args </dev/null
else
	timeout -k 5 "$tmo" "$vireo" run --kernel "$elf" --cpus "$cpus" --memory "$mem" \
		--serial stdio --cmdline "$cmdline" $scsi_args </dev/null
fi
guest_verdict $?
