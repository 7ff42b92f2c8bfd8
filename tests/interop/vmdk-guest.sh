#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `vireo run --drive format=vmdk` serves the test guest (issue 20): its virtio-blk verify (cases
# blk and blk-smp: every queue from every vCPU, writes, flushes, discard, write-zeroes) on a
# VMDK image, 2 queues on 2 iothreads; afterwards `qemu-img check` must find the image clean,
# qemu-img and vireo-img must read the same content, and what the guest never touched must
# read as before. A streamOptimized image is served read-only (blk-ro=1: reads on every queue,
# writes refused), and refused read-write with the reason.
#
# usage: vmdk-guest.sh VIREO VIREO_IMG GUEST_ELF KIND
#   KIND: sparse   vireo-img create -f vmdk (monolithicSparse: the guest's writes allocate grains)
#         zeroed   qemu-img create -o zeroed_grain=on, filled by qemu-io (the guest's I/O is in
#                  place; whole-grain write-zeroes become zeroed grains), cache=none
#         flat     qemu-img create -o subformat=twoGbMaxExtentFlat, filled by qemu-io (extents)
#         stream   qemu-img convert -o subformat=streamOptimized of a filled raw file: read-only
# Exit 77 without /dev/kvm, qemu-img or qemu-io.
set -u
. "$(dirname "$(realpath "$0")")/guest-lib.sh"

# the guest's cases write below 4 MiB: [32M, 64M) is never touched
cache=writeback
cases=(blk blk-smp)
case "$KIND" in
sparse)
	run "$VI" create -f vmdk img.vmdk 64M
	tail=(-c "read -P 0 32M 32M") ;;
zeroed)
	run qemu-img create -q -f vmdk -o zeroed_grain=on img.vmdk 64M
	run qemu-io -f vmdk -c "write -P 0x5e 0 64M" img.vmdk >/dev/null
	tail=(-c "read -P 0x5e 32M 32M")
	cache=none ;;
flat)
	run qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat img.vmdk 64M
	run qemu-io -f vmdk -c "write -P 0x5e 0 64M" img.vmdk >/dev/null
	tail=(-c "read -P 0x5e 32M 32M") ;;
stream)
	run qemu-img create -q -f raw src.raw 64M
	run qemu-io -f raw -c "write -P 0x5e 0 8M" -c "write -P 0x6f 32M 32M" src.raw >/dev/null
	run qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw img.vmdk
	tail=(-c "read -P 0x5e 0 8M" -c "read -P 0 8M 24M" -c "read -P 0x6f 32M 32M")
	cases=(blk blk-ro=1) ;;
*)
	echo "vmdk-guest.sh: unknown kind '$KIND'" >&2; exit 2 ;;
esac
sum=$(md5sum img.vmdk)
drive="file=img.vmdk,format=vmdk,if=virtio-blk,num-queues=2,iothreads=2,cache=$cache"
drive="$drive,serial=vireo-test"

if [ "$KIND" = stream ]; then
	echo "+ vireo run --drive $drive (read-write): refused"
	"$GUEST/run-vireo.sh" "$VIREO" --cpus 1 --timeout 60 --drive "$drive" "$ELF" blk \
		blk-serial=vireo-test >rw.out 2>&1 && fail "a streamOptimized image was served read-write"
	grep -q "cannot be written in place" rw.out || { cat rw.out; fail "no reason given"; }
	sed -n '/cannot be written/p' rw.out | head -1
	drive="$drive,readonly=on"
fi
"$GUEST/run-vireo.sh" "$VIREO" --cpus 2 --timeout 150 --drive "$drive" \
	"$ELF" "${cases[@]}" cpus=2 blk-require=1 blk-serial=vireo-test ||
	fail "the guest's verify failed"

echo "+ qemu-img check img.vmdk"
qemu-img check img.vmdk || fail "qemu-img check found problems in the image the guest wrote"
run "$VI" check img.vmdk
read_same vmdk img.vmdk
if [ "$KIND" = stream ] && [ "$(md5sum img.vmdk)" != "$sum" ]; then
	fail "the read-only stream image changed"
fi
echo "PASS: $KIND"
