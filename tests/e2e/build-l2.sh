#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds (or finds in the cache) the L2 microVM's initramfs: busybox, fio and sg3-utils' tools with
# their libraries, the virtio modules of the Debian cloud kernel, and l2-init.sh as /init. Uncompressed, so that a
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
# sg3-utils: what --disk-form scsi asks of the LUNs (l2-init.sh's sg_checks), when installed
sg_tools="sg_inq sg_vpd sg_readcap sg_unmap sg_sync"

# virtio_pci pulls virtio, virtio_ring and both transport libraries; the rest are the disks.
mods=$(e2e_module_closure "$kver" virtio_pci virtio_blk virtio_scsi sd_mod)
fio_bin=$(command -v fio)
progs=$fio_bin
for t in $sg_tools; do # only --disk-form scsi needs them (run.sh skips it without them)
	p=$(command -v "$t") && progs="$progs $p"
done
prog_libs=$(for p in $progs; do e2e_lib_closure "$p"; done | sort -u)

# shellcheck disable=SC2086
key=$(e2e_archive_key "l2 v1 $kver" "$0" "$E2E_DIR/l2-init.sh" -- \
	/bin/busybox $progs $prog_libs $mods)
out=$cache/l2-$kver-$key.cpio
e2e_archive_begin "$out" "the L2 initramfs"
mkdir -p "$stage/bin" "$stage/etc"
cp /bin/busybox "$stage/bin/busybox"
install -m 0755 "$E2E_DIR/l2-init.sh" "$stage/init"
# shellcheck disable=SC2086
e2e_stage_programs "$stage" $progs
# shellcheck disable=SC2086
e2e_stage_modules "$stage" $mods
e2e_archive_end "$out" "$cache/l2-*.cpio"
e2e_log "L2 initramfs: $(du -h "$out" | cut -f1)," \
	"modules: $(paste -sd' ' "$stage/lib/e2e-modules/order")"
printf '%s\n' "$out"
