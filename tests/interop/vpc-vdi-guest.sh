#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `vireo run --drive format=vpc|vdi` serves the test guest (issue 20): its virtio-blk verify
# (cases blk and blk-smp: every queue from every vCPU, writes, flushes, discard, write-zeroes)
# on a VHD or VDI image, 2 queues on 2 iothreads, cache=none (O_DIRECT, where the file system
# has it); afterwards qemu-img must read what vireo-img reads (and find a VDI clean), and what
# the guest never touched must read as before.
#
# usage: vpc-vdi-guest.sh VIREO VIREO_IMG GUEST_ELF KIND
#   KIND: vpc-dynamic  vireo-img create -f vpc (no block allocated: the guest's writes place them)
#         vpc-qemu     qemu-img create -f vpc, half of it written by qemu-io (512-byte aligned
#                      blocks: the guest's I/O on them bounces through the slow path)
#         vpc-fixed    vireo-img create -o subformat=fixed,force_size=on (Azure's), written by
#                      qemu-io: every byte in place
#         vdi-dynamic  vireo-img create -f vdi
#         vdi-static   qemu-img create -o static=on, written by qemu-io
# Exit 77 without /dev/kvm, qemu-img or qemu-io.
set -u
. "$(dirname "$(realpath "$0")")/guest-lib.sh"

# the guest's cases write below 4 MiB: [32M, 64M) is never touched
fmt=${KIND%%-*}
img=img.$fmt
tail=(-c "read -P 0 32M 32M")
case "$KIND" in
vpc-dynamic | vdi-dynamic)
	run "$VI" create -q -f $fmt $img 64M ;;
vpc-qemu)
	run qemu-img create -q -f vpc $img 64M
	run qemu-io -f vpc -c "write -P 0x5e 0 48M" $img >/dev/null
	tail=(-c "read -P 0x5e 32M 16M" -c "read -P 0 48M 16M") ;;
vpc-fixed)
	run "$VI" create -q -f vpc -o subformat=fixed,force_size=on $img 64M
	run qemu-io -f vpc -c "write -P 0x5e 0 64M" $img >/dev/null
	tail=(-c "read -P 0x5e 32M 32M") ;;
vdi-static)
	run qemu-img create -q -f vdi -o static=on $img 64M
	run qemu-io -f vdi -c "write -P 0x5e 0 64M" $img >/dev/null
	tail=(-c "read -P 0x5e 32M 32M") ;;
*)
	echo "vpc-vdi-guest.sh: unknown kind '$KIND'" >&2; exit 2 ;;
esac
size=$(stat -c %s $img)
cache=none
dd if=/dev/zero of=probe.dio bs=4096 count=1 oflag=direct status=none 2>/dev/null || cache=writeback

"$GUEST/run-vireo.sh" "$VIREO" --cpus 2 --timeout 150 \
	--drive "file=$img,format=$fmt,if=virtio-blk,num-queues=2,iothreads=2,cache=$cache,serial=vireo-test" \
	"$ELF" blk blk-smp cpus=2 blk-require=1 blk-serial=vireo-test || fail "the guest's verify failed"

if [ $fmt = vdi ]; then
	echo "+ qemu-img check $img"
	qemu-img check $img || fail "qemu-img check found problems in the image the guest wrote"
	run "$VI" check $img
fi
read_same $fmt $img
case "$KIND" in
vpc-fixed | vdi-static)
	[ "$(stat -c %s $img)" = "$size" ] ||
		fail "the preallocated image grew from $size to $(stat -c %s $img) bytes" ;;
esac
echo "PASS: $KIND"
