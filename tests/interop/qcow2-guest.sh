#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The test guest's virtio-blk verify (cases blk and blk-smp: every queue from every vCPU) on a
# qcow2 image under vireo, 2 queues on 2 iothreads; afterwards `qemu-img check` must find the
# image clean, qemu-img and vireo-img must read the same content, the part of the disk the
# guest never touches must still read what the image held before, and a backing file must be
# unchanged.
#
# usage: qcow2-guest.sh VIREO VIREO_IMG GUEST_ELF KIND
#   KIND: empty          vireo-img create -f qcow2 (nothing allocated)
#         prealloc       vireo-img create -o preallocation=metadata
#         backing-raw    vireo-img overlay over a raw backing file qemu-io filled with a pattern
#         backing-qcow2  vireo-img overlay over a qcow2 backing file made and filled by qemu
#         mixed          qemu-img overlay (create -b) over a base made by vireo-img (filled by qemu-io)
# Exit 77 without /dev/kvm, qemu-img or qemu-io.
set -u
. "$(dirname "$(realpath "$0")")/guest-lib.sh"
SIZE=64M
# the guest's cases write below 4 MiB (blk: sectors < 320; blk-smp: a few rounds of 64 KiB
# regions from sector 64): [32M, 64M) is never touched
TAIL=32M
TAIL_LEN=32M

# fill_base IMG FMT: a pattern qemu-io writes, different in each 16 MiB, one hole left
fill_base() {
	run qemu-io -f "$2" -c "write -P 0x11 0 16M" -c "write -P 0x22 16M 8M" \
		-c "write -P 0x33 32M 16M" -c "write -P 0x44 60M 4M" "$1" >/dev/null
}
backing=''
case "$KIND" in
empty)
	run "$VI" create -f qcow2 img.qcow2 $SIZE ;;
prealloc)
	run "$VI" create -f qcow2 -o preallocation=metadata img.qcow2 $SIZE ;;
backing-raw)
	run qemu-img create -q -f raw base.raw $SIZE
	fill_base base.raw raw
	backing=base.raw
	run "$VI" create -f qcow2 -b base.raw -F raw img.qcow2 ;;
backing-qcow2)
	run qemu-img create -q -f qcow2 base.qcow2 $SIZE
	fill_base base.qcow2 qcow2
	backing=base.qcow2
	run "$VI" create -f qcow2 -b base.qcow2 -F qcow2 img.qcow2 ;;
mixed)
	run "$VI" create -f qcow2 base.qcow2 $SIZE
	fill_base base.qcow2 qcow2
	backing=base.qcow2
	run qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 img.qcow2 ;;
*)
	echo "qcow2-guest.sh: unknown kind '$KIND'" >&2; exit 2 ;;
esac
[ -n "$backing" ] && before=$(md5sum < "$backing")

"$GUEST/run-vireo.sh" "$VIREO" --cpus 2 --timeout 150 \
	--drive "file=img.qcow2,format=qcow2,if=virtio-blk,num-queues=2,iothreads=2,serial=vireo-test" \
	"$ELF" blk blk-smp cpus=2 blk-require=1 blk-serial=vireo-test || fail "the guest's verify failed"

echo "+ qemu-img check img.qcow2"
qemu-img check img.qcow2 || fail "qemu-img check found problems in the image the guest wrote"
run "$VI" check img.qcow2
# both tools read the same disk, and what the guest did not write is what was there
tail=(-c "read -P 0 $TAIL $TAIL_LEN")
if [ -n "$backing" ]; then
	[ "$(md5sum < "$backing")" = "$before" ] || fail "the backing file $backing changed"
	case "$backing" in *.qcow2) run qemu-img check "$backing" ;; esac
	# the tail of the base: 0x33 in [32M, 48M), a hole in [48M, 60M), 0x44 in [60M, 64M)
	tail=(-c "read -P 0x33 32M 16M" -c "read -P 0 48M 12M" -c "read -P 0x44 60M 4M")
fi
read_same qcow2 img.qcow2
echo "PASS: $KIND"
