#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the test guest under vireo and maps its debug-exit status to pass (0) / fail (1); 77
# (skipped) when /dev/kvm is missing.
#
# usage: run-vireo.sh VIREO [--cpus N] [--memory SIZE] [--timeout S] [--drive SPEC]
#                     [--scratch SIZE] [--queues N] [--iothreads N] [--readonly]
#                     [--drive-opts KEY=VAL,...] [--blockdev-form]
#                     guest.elf [case|key=value ...]
# --scratch makes a temporary raw file of SIZE and gives it to the guest as a virtio-blk disk
# with N queues on N iothreads (--iothreads: another count), read-only with --readonly.
# --blockdev-form gives the same disk as --object iothread (one a queue) + --blockdev (a raw
# node over a file node, JSON) + --device virtio-blk-pci (iothread-vq-mapping) instead of --drive.
set -u
here=$(dirname "$0")
. "$here/verdict.sh"

[ $# -ge 1 ] || { echo "usage: run-vireo.sh VIREO [options] guest.elf [cmdline...]" >&2; exit 2; }
vireo=$1; shift
cpus=2 mem=256M tmo=120 drive='' scratch='' queues=1 iothreads='' ro=off dopts= bform=''
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
trap '[ -n "$cleanup" ] && rm -f "$cleanup"' EXIT

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
		--serial stdio --cmdline "$cmdline" "$@" \
		--blockdev "{\"driver\": \"raw\", \"node-name\": \"disk0\", \"read-only\": $rojs, \"file\": {\"driver\": \"file\", \"filename\": \"$disk\"}}" \
		--device "virtio-blk-pci,drive=disk0,num-queues=$queues,iothread-vq-mapping=$map,serial=vireo-test" </dev/null
elif [ -n "$drive" ]; then
	timeout -k 5 "$tmo" "$vireo" run --kernel "$elf" --cpus "$cpus" --memory "$mem" \
		--serial stdio --cmdline "$cmdline" --drive "$drive" </dev/null
else
	timeout -k 5 "$tmo" "$vireo" run --kernel "$elf" --cpus "$cpus" --memory "$mem" \
		--serial stdio --cmdline "$cmdline" </dev/null
fi
guest_verdict $?
