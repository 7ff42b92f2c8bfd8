#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Seeds of the VHD and VDI fuzz targets (issue 20), run by make-seeds.sh: small images made by
# qemu-img (and by vireo-img when given) for corpus/vpc_header and corpus/vdi_header (each the
# image's real size as a u64, then its first 8 KiB, or all of a fixed VHD, which ends with its
# footer: the rest reads as zeroes), and for corpus/probe (the first 8 KiB, named img-vpc-* and
# img-vdi-*: make-seeds.sh writes vpc-* and vdi there itself).
# Usage: make-vpc-seeds.sh CORPUS [VIREO_IMG]
set -euo pipefail
corpus=$(realpath "$1")
vi=${2:+$(realpath "$2")}
if ! command -v qemu-img >/dev/null || ! command -v qemu-io >/dev/null; then
	echo "make-vpc-seeds: qemu-img/qemu-io not found: vpc and vdi seeds not regenerated" >&2
	exit 0
fi
[ -n "$vi" ] && [ ! -x "$vi" ] && vi=
mkdir -p "$corpus/vpc_header" "$corpus/vdi_header" "$corpus/probe"
for t in vpc_header vdi_header; do
	find "$corpus/$t" -maxdepth 1 -type f ! -name 'crash-*' ! -name 'found-*' -delete
done
rm -f "$corpus"/probe/img-vpc-* "$corpus"/probe/img-vdi-*
tmp=$(mktemp -d /tmp/vireo-vpc-seeds.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# seed TARGET NAME FILE [BYTES]: the u64 size, then the first BYTES (8 KiB) of the image
seed() {
	python3 - "$3" "$corpus/$1/$2" "${4:-8192}" <<'PY'
import os, struct, sys
data = open(sys.argv[1], 'rb').read()
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(data)) + data[:int(sys.argv[3])])
PY
}
write() { qemu-io -f "$1" "${@:3}" "$2" >/dev/null; }

qemu-img create -q -f vpc dyn-empty.vpc 10M
qemu-img create -q -f vpc dyn.vpc 10M
write vpc dyn.vpc -c "write -P 1 0 4k" -c "write -P 2 6M 4k"
qemu-img create -q -f vpc -o force_size=on dyn-force.vpc 10000001
qemu-img create -q -f vpc dyn-zero.vpc 0
qemu-img create -q -f vpc dyn-big.vpc 300G # the largest geometry: sized by its footer
qemu-img create -q -f vpc -o subformat=fixed fixed.vpc 32K
qemu-img create -q -f vpc -o subformat=fixed,force_size=on fixed-force.vpc 16K
qemu-img create -q -f vdi dyn-empty.vdi 10M
qemu-img create -q -f vdi dyn.vdi 10M
write vdi dyn.vdi -c "write -P 1 0 4k" -c "write -P 2 6M 4k"
qemu-img create -q -f vdi -o static=on static.vdi 4M
qemu-img create -q -f vdi odd.vdi 3000001
if [ -n "$vi" ]; then
	"$vi" create -q -f vpc v-dyn.vpc 10M
	"$vi" convert -f vpc -O vpc dyn.vpc v-dyn-written.vpc
	"$vi" create -q -f vpc -o subformat=fixed,force_size=on v-fixed.vpc 16K
	"$vi" create -q -f vdi v-dyn.vdi 10M
	"$vi" convert -f vdi -O vdi dyn.vdi v-dyn-written.vdi
	"$vi" create -q -f vdi -o static=on v-static.vdi 2M
fi
for f in *.vpc; do
	case $f in
	*fixed*) seed vpc_header "${f%.vpc}" "$f" 65536 ;; # a fixed VHD: all of it (< 40 KiB)
	*) seed vpc_header "${f%.vpc}" "$f"
	   head -c 8192 "$f" >"$corpus/probe/img-vpc-${f%.vpc}" ;;
	esac
done
for f in *.vdi; do
	seed vdi_header "${f%.vdi}" "$f"
	head -c 8192 "$f" >"$corpus/probe/img-vdi-${f%.vdi}"
done
echo "make-vpc-seeds: $(ls "$corpus/vpc_header" | wc -l) vpc, $(ls "$corpus/vdi_header" | wc -l) vdi seeds"
