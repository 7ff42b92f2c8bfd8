#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds (or finds in the cache) the base of the emulated host's (L1's) initramfs: busybox, the
# kvm modules, l1-init.sh as /init, the L2 kernel and initramfs under /l2, and with --vmm qemu
# also qemu-system-x86_64 with its libraries and firmware (the stand-in VMM).
#
# The VMM under test and the run's settings are not in it: run.sh appends a small second cpio
# archive holding them (the kernel unpacks concatenated archives), so rebuilding vireo does not
# rebuild this one.
#
# usage: build-l1.sh --l2-initrd PATH [--vmm vireo|qemu] [--cache-dir DIR] [--kver VERSION]
# Prints the archive's path on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cache=
kver=
vmm=vireo
l2_initrd=
while (($#)); do
	case $1 in
	--cache-dir) cache=$2; shift 2 ;;
	--kver) kver=$2; shift 2 ;;
	--vmm) vmm=$2; shift 2 ;;
	--l2-initrd) l2_initrd=$2; shift 2 ;;
	-h | --help) sed -n '3,13p' "$0"; exit 0 ;;
	*) e2e_die "build-l1.sh: unknown argument '$1'" ;;
	esac
done
e2e_default_cache_and_kernel
[[ -r $l2_initrd ]] || e2e_die "build-l1.sh: --l2-initrd: cannot read '$l2_initrd'"
case $vmm in
vireo | qemu) ;;
*) e2e_die "build-l1.sh: --vmm must be vireo or qemu, not '$vmm'" ;;
esac
e2e_need_cmd cpio ldd readelf sha256sum

mods=$(e2e_module_closure "$kver" kvm_amd)
qemu_files=
qemu_fw=
if [[ $vmm == qemu ]]; then
	qemu_bin=$(command -v qemu-system-x86_64) || e2e_die "qemu-system-x86_64 is not installed"
	qemu_files="$qemu_bin $(e2e_lib_closure "$qemu_bin")"
	# -M pc with -kernel needs SeaBIOS and the Linux loader option ROMs.
	for f in bios-256k.bin linuxboot_dma.bin kvmvapic.bin; do
		p=
		for d in /usr/share/qemu /usr/share/seabios; do
			[[ -e $d/$f ]] && { p=$d/$f; break; }
		done
		[[ -n $p ]] || e2e_die "QEMU firmware $f not found in /usr/share/qemu or /usr/share/seabios"
		qemu_fw="$qemu_fw $p"
	done
fi

# shellcheck disable=SC2086
key=$(e2e_archive_key "l1 v1 $kver $vmm" "$0" "$E2E_DIR/l1-init.sh" -- \
	/bin/busybox "/boot/vmlinuz-$kver" "$l2_initrd" $mods $qemu_files $qemu_fw)
out=$cache/l1base-$vmm-$kver-$key.cpio
e2e_archive_begin "$out" "the L1 initramfs base"
mkdir -p "$stage/bin" "$stage/l2" "$stage/etc" "$stage/e2e"
cp /bin/busybox "$stage/bin/busybox"
install -m 0755 "$E2E_DIR/l1-init.sh" "$stage/init"
# shellcheck disable=SC2086
e2e_stage_modules "$stage" $mods
cp "/boot/vmlinuz-$kver" "$stage/l2/vmlinuz"
cp "$l2_initrd" "$stage/l2/initrd.cpio"
if [[ $vmm == qemu ]]; then
	e2e_stage_programs "$stage" "$qemu_bin"
	mkdir -p "$stage/usr/share/e2e-qemu"
	# shellcheck disable=SC2086
	cp $qemu_fw "$stage/usr/share/e2e-qemu/"
	# The run archive's own library path replaces this file: keep QEMU's in a second one.
	mv "$stage/etc/e2e-libpath" "$stage/etc/e2e-libpath-qemu"
fi
e2e_archive_end "$out" "$cache/l1base-$vmm-*.cpio"
e2e_log "L1 initramfs base: $(du -h "$out" | cut -f1)," \
	"modules: $(paste -sd' ' "$stage/lib/e2e-modules/order")"
printf '%s\n' "$out"
