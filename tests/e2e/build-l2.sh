#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds (or finds in the cache) the L2 microVM's initramfs: busybox, fio with its libraries, the
# virtio modules of the Debian cloud kernel, and l2-init.sh as /init. Uncompressed, so that a
# slow emulated CPU does not spend its time decompressing.
#
# usage: build-l2.sh [--cache-dir DIR] [--kver VERSION]
# Prints the archive's path on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cache=
kver=
while (($#)); do
	case $1 in
	--cache-dir) cache=$2; shift 2 ;;
	--kver) kver=$2; shift 2 ;;
	-h | --help) sed -n '3,8p' "$0"; exit 0 ;;
	*) e2e_die "build-l2.sh: unknown argument '$1'" ;;
	esac
done
e2e_default_cache_and_kernel
e2e_need_cmd cpio fio ldd readelf sha256sum

# virtio_pci pulls virtio, virtio_ring and both transport libraries; the rest are the disks.
mods=$(e2e_module_closure "$kver" virtio_pci virtio_blk virtio_scsi sd_mod)
fio_bin=$(command -v fio)
fio_libs=$(e2e_lib_closure "$fio_bin")

key=$({
	echo "l2 v1 $kver"
	cat "$E2E_DIR/lib.sh" "$0" "$E2E_DIR/l2-init.sh"
	# shellcheck disable=SC2086
	e2e_stat_key /bin/busybox "$fio_bin" $fio_libs $mods
} | sha256sum | cut -c1-16)
out=$cache/l2-$kver-$key.cpio
if [[ -s $out ]]; then
	printf '%s\n' "$out"
	exit 0
fi

e2e_log "building the L2 initramfs ($out)"
stage=$(mktemp -d "$cache/l2-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib/e2e-modules" "$stage/etc"
cp /bin/busybox "$stage/bin/busybox"
install -m 0755 "$E2E_DIR/l2-init.sh" "$stage/init"
e2e_stage_programs "$stage" "$fio_bin"
for m in $mods; do
	e2e_copy_module "$m" "$stage/lib/e2e-modules"
	b=$(basename "$m")
	echo "${b%%.ko*}.ko" >>"$stage/lib/e2e-modules/order"
done
e2e_make_cpio "$stage" "$out"
e2e_prune "$cache/l2-*.cpio" 2
e2e_log "L2 initramfs: $(du -h "$out" | cut -f1)," \
	"modules: $(paste -sd' ' "$stage/lib/e2e-modules/order")"
printf '%s\n' "$out"
