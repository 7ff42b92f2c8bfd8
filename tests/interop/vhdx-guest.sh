#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `vireo run --drive format=vhdx` serves the test guest (issue 20): its virtio-blk verify (cases
# blk and blk-smp: every queue from every vCPU, writes, flushes, discard, write-zeroes) on a
# VHDX image, 2 queues on 2 iothreads; afterwards `qemu-img check` must find the image clean,
# qemu-img and vireo-img must read the same content, and what the guest never touched must
# read as before (zeroes, or qemu-io's pattern).
#
# usage: vhdx-guest.sh VIREO VIREO_IMG GUEST_ELF KIND
#   KIND: dynamic   vireo-img create -f vhdx (every block absent: the guest's writes allocate)
#         fixed     qemu-img create -o subformat=fixed,block_state_zero=off,block_size=1M,
#                   filled by qemu-io (every block present: the guest's I/O is in place)
# Exit 77 without /dev/kvm, qemu-img or qemu-io.
set -u
. "$(dirname "$(realpath "$0")")/guest-lib.sh"

# the guest's cases write below 4 MiB: [32M, 64M) is never touched
case "$KIND" in
dynamic)
	run "$VI" create -f vhdx img.vhdx 64M
	tail=(-c "read -P 0 32M 32M") ;;
fixed)
	run qemu-img create -q -f vhdx -o subformat=fixed,block_state_zero=off,block_size=1M \
		img.vhdx 64M
	run qemu-io -f vhdx -c "write -P 0x5e 0 64M" img.vhdx >/dev/null
	tail=(-c "read -P 0x5e 32M 32M") ;;
*)
	echo "vhdx-guest.sh: unknown kind '$KIND'" >&2; exit 2 ;;
esac
size=$(stat -c %s img.vhdx)

"$GUEST/run-vireo.sh" "$VIREO" --cpus 2 --timeout 150 \
	--drive "file=img.vhdx,format=vhdx,if=virtio-blk,num-queues=2,iothreads=2,serial=vireo-test" \
	"$ELF" blk blk-smp cpus=2 blk-require=1 blk-serial=vireo-test || fail "the guest's verify failed"

echo "+ qemu-img check img.vhdx"
qemu-img check img.vhdx || fail "qemu-img check found problems in the image the guest wrote"
run "$VI" check img.vhdx
read_same vhdx img.vhdx
if [ "$KIND" = fixed ] && [ "$(stat -c %s img.vhdx)" != "$size" ]; then
	fail "the fixed image grew from $size to $(stat -c %s img.vhdx) bytes"
fi
echo "PASS: $KIND"
