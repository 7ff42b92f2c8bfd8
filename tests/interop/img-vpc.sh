#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# VHD (vpc) against qemu-img (issue 20), for each subformat: dynamic, fixed, and both with
# force_size=on (the fixed one is Azure's: an exact size, 1 MiB aligned).
#
#  - qemu-img's images (qemu-io writes at known offsets, sparse between, across a block
#    boundary, in the last sector): vireo-img info (human and JSON), map (human and JSON),
#    check and measure (-O raw, -O qcow2) give what qemu-img gives; convert -O raw is
#    qemu-img compare-equal to the image, vireo-img compare agrees.
#  - vireo-img's images: create prints qemu-img's "Formatting" line and makes the disk size
#    qemu-img makes; written by vireo (img_io) they read in qemu-io and compare equal to
#    qemu's image with the same writes; written by qemu-io they read in vireo; qemu-img info
#    and vireo-img info agree on them; convert -O vpc -o ... allocates what qemu-img's does.
#  - The CHS geometry rules: the disk size of each of a list of sizes (CHS boundaries, odd
#    sizes, 2040 GiB, too large) as qemu-img makes it, force_size=on or not.
#  - Round trip qcow2 -> vpc -> qcow2 equal; Azure's fixed image: the file is the size + 512.
#  - Hostile images: a file too short, damaged checksums, a BAT past the end, blocks past the
#    end or overlapping, a bad block size, a differencing disk, a fixed disk larger than its
#    file: refused with a message naming the file and what is wrong, never a signal.
#  - resize and measure -O vpc refused, as qemu-img refuses them.
# usage: img-vpc.sh VIREO_IMG IMG_IO    (~15 s; exit 77 without qemu-img, qemu-io, jq, python3)
set -u
if [ $# -ne 2 ]; then
	echo "usage: $0 VIREO_IMG IMG_IO" >&2
	exit 2
fi
VI=$(realpath "$1")
IO=$(realpath "$2")
. "$(dirname "$(realpath "$0")")/tap.sh"
tap_start img-vpc qemu-img qemu-io jq python3

same_json() { # name
	if cmp -s <(jq -S . v.out) <(jq -S . q.out); then ok "$1: same JSON"; return; fi
	bad "$1: same JSON"; diff <(jq -S . q.out) <(jq -S . v.out) | sed 's/^/#   /' | head -20
}
# qemu-img map JSON with the host offsets left out and runs of equal kind merged: what a file
# holds where, whatever its layout
alloc() { qemu-img map -f vpc --output=json "$1" | jq -c 'map(del(.offset)) | reduce .[] as $e
	([]; if length > 0 and (.[-1] | del(.start, .length)) == ($e | del(.start, .length))
	     then .[-1].length += $e.length else . + [$e] end)'; }
vsize() { qemu-img info -f vpc --output=json "$1" | jq '."virtual-size"'; }

KINDS="dynamic fixed fixed-force dynamic-force"
opts_of() {
	case $1 in
	dynamic) echo "subformat=dynamic" ;;
	fixed) echo "subformat=fixed" ;;
	fixed-force) echo "subformat=fixed,force_size=on" ;;
	dynamic-force) echo "force_size=on" ;;
	esac
}
# the writes of every image (W) and the reads that check them (R): at 0, across the first block
# boundary (2 MiB), at 5 MiB, in the last sector ($1: the disk size - 512); the rest is sparse
set_io() {
	W=(-c "write -P 0xa1 0 64k" -c "write -P 0xa2 2044k 8k" -c "write -P 0xa3 5M 1M"
	   -c "write -P 0xa4 $1 512")
	R=(-c "read -P 0xa1 0 64k" -c "read -P 0xa2 2044k 8k" -c "read -P 0xa3 5M 1M"
	   -c "read -P 0xa4 $1 512" -c "read -P 0 64k 1980k" -c "read -P 0 6M 1M")
}

echo "# qemu-img's images"
for k in $KINDS; do
	qemu-img create -q -f vpc -o "$(opts_of $k)" q-$k.vpc 24M || { bad "qemu-img create $k"; continue; }
	set_io $(($(vsize q-$k.vpc) - 512))
	qemu-io -f vpc "${W[@]}" q-$k.vpc >/dev/null || bad "qemu-io writes $k"
	both info -f vpc --output=json q-$k.vpc && same_rc "info json $k" && same_json "info json $k"
	both info -f vpc q-$k.vpc && same_rc "info $k" && same_text "info $k"
	both map -f vpc --output=json q-$k.vpc && same_rc "map json $k" && same_json "map json $k"
	both map -f vpc q-$k.vpc && same_rc "map $k" && same_text "map $k"
	both check -f vpc q-$k.vpc && same_rc "check $k (not supported by either)"
	for o in raw qcow2; do
		both measure -f vpc --output=json -O $o q-$k.vpc && same_rc "measure -O $o $k" &&
			same_json "measure -O $o $k"
	done
	run "convert -O raw $k" "$VI" convert -f vpc -O raw q-$k.vpc q-$k.raw
	run "qemu-img compare $k with vireo's raw" qemu-img compare -f vpc -F raw q-$k.vpc q-$k.raw
	run "vireo-img compare $k with the raw" "$VI" compare -f vpc -F raw q-$k.vpc q-$k.raw
	# probing: a dynamic image carries its footer at offset 0, a fixed one is raw to both
	both info --output=json q-$k.vpc && same_rc "probed info $k" && same_json "probed info $k"
done

echo "# vireo-img's images"
for k in $KINDS; do
	both create -f vpc -o "$(opts_of $k)" c-$k.vpc 24M
	same_rc "create $k" && same_text "create $k: the Formatting line"
	"$VI" create -q -f vpc -o "$(opts_of $k)" v-$k.vpc 24M || { bad "vireo-img create $k"; continue; }
	[ "$(vsize v-$k.vpc)" = "$(vsize q-$k.vpc)" ] && ok "$k: qemu-img's disk size" ||
		bad "$k: disk size $(vsize v-$k.vpc), qemu-img's $(vsize q-$k.vpc)"
	set_io $(($(vsize v-$k.vpc) - 512))
	run "vireo writes $k" "$IO" -f vpc v-$k.vpc "${W[@]}"
	run "qemu-io reads vireo's writes $k" qemu-io -f vpc "${R[@]}" v-$k.vpc
	run "qemu-img compare vireo's $k with qemu's" qemu-img compare -f vpc -F vpc v-$k.vpc q-$k.vpc
	"$VI" info -f vpc --output=json v-$k.vpc >v.out 2>v.err
	qemu-img info -f vpc --output=json v-$k.vpc >q.out 2>q.err
	same_json "vireo-img info of vireo's $k"
	"$VI" map -f vpc --output=json v-$k.vpc >v.out 2>v.err
	qemu-img map -f vpc --output=json v-$k.vpc >q.out 2>q.err
	same_json "vireo-img map of vireo's $k"
	run "qemu-io writes into vireo's $k" qemu-io -f vpc -c "write -P 0xb1 3M 4k" \
		-c "write -P 0xb2 9M 2M" v-$k.vpc
	run "vireo reads qemu-io's writes $k" "$IO" -f vpc v-$k.vpc -c "read -P 0xb1 3M 4k" \
		-c "read -P 0xb2 9M 2M" -c "read -P 0xa3 5M 1M"
	# vireo writes into qemu's image too, then qemu-img reads it
	run "vireo writes into qemu's $k" "$IO" -f vpc q-$k.vpc -c "write -P 0xb1 3M 4k" \
		-c "write -P 0xb2 9M 2M"
	run "both images equal after the same writes $k" qemu-img compare -f vpc -F vpc \
		v-$k.vpc q-$k.vpc
	# convert with qemu-img's options: the same disk size and allocation as qemu-img's convert
	run "vireo-img convert -O vpc -o $(opts_of $k)" "$VI" convert -f raw -O vpc \
		-o "$(opts_of $k)" q-$k.raw vc-$k.vpc
	qemu-img convert -f raw -O vpc -o "$(opts_of $k)" q-$k.raw qc-$k.vpc
	run "convert $k: compare-equal to the source" qemu-img compare -f raw -F vpc q-$k.raw vc-$k.vpc
	[ "$(vsize vc-$k.vpc)" = "$(vsize qc-$k.vpc)" ] && ok "convert $k: qemu-img's disk size" ||
		bad "convert $k: disk size $(vsize vc-$k.vpc), qemu-img's $(vsize qc-$k.vpc)"
	[ "$(alloc vc-$k.vpc)" = "$(alloc qc-$k.vpc)" ] && ok "convert $k: qemu-img's allocation" ||
		{ bad "convert $k: qemu-img's allocation"; alloc vc-$k.vpc | sed 's/^/#   vireo: /';
		  alloc qc-$k.vpc | sed 's/^/#   qemu: /'; }
done

echo "# CHS geometry"
for s in 0 512 1M 10M 10000001 127M 504M 4095M 4G 32255M 127G 130G 500G 2040G; do
	for o in force_size=off force_size=on; do
		"$VI" create -q -f vpc -o $o g.vpc $s >/dev/null 2>&1
		qemu-img create -q -f vpc -o $o gq.vpc $s >/dev/null 2>&1
		[ "$(vsize g.vpc)" = "$(vsize gq.vpc)" ] && ok "$s $o: disk size $(vsize g.vpc)" ||
			bad "$s $o: disk size $(vsize g.vpc), qemu-img's $(vsize gq.vpc)"
		rm -f g.vpc gq.vpc
	done
done
both create -q -f vpc big.vpc 2041G && same_rc "2041 GiB refused"
both create -q -f vpc -o force_size=on big.vpc 2041G && same_rc "2041 GiB force_size refused"

echo "# round trip and Azure"
qemu-img create -q -f qcow2 rt.qcow2 40M
qemu-io -f qcow2 -c "write -P 0x31 1M 3M" -c "write -P 0x32 17M 64k" -c "write -z 20M 1M" \
	-c "write -P 0x33 39M 1M" rt.qcow2 >/dev/null
run "qcow2 -> vpc" "$VI" convert -O vpc rt.qcow2 rt.vpc
run "vpc -> qcow2" "$VI" convert -O qcow2 rt.vpc rt2.qcow2
run "qcow2 -> vpc -> qcow2 equal" qemu-img compare rt.qcow2 rt2.qcow2
run "qemu-img check of the result" qemu-img check rt2.qcow2
head -c 16M /dev/urandom >az.raw
run "Azure: convert -O vpc fixed, force_size" "$VI" convert -O vpc \
	-o subformat=fixed,force_size=on az.raw az.vpc
[ "$(stat -c %s az.vpc)" = $((16 * 1024 * 1024 + 512)) ] && ok "Azure: the file is 16 MiB + 512" ||
	bad "Azure: the file is $(stat -c %s az.vpc) bytes"
[ "$(vsize az.vpc)" = $((16 * 1024 * 1024)) ] && ok "Azure: qemu-img sees 16 MiB" ||
	bad "Azure: qemu-img sees $(vsize az.vpc)"
run "Azure: equal to the raw" qemu-img compare -f raw -F vpc az.raw az.vpc
run "preallocation=full (fixed)" "$VI" create -q -f vpc -o subformat=fixed,preallocation=full \
	full.vpc 8M
[ "$(du -k full.vpc | cut -f1)" -ge 8192 ] && ok "preallocation=full allocates" ||
	bad "preallocation=full: $(du -k full.vpc | cut -f1) KiB allocated"
"$VI" create -q -f vpc -o preallocation=full dynfull.vpc 8M 2>v.err
[ $? = 1 ] && grep -q preallocation v.err && ok "preallocation=full (dynamic) refused by name" ||
	bad "preallocation=full (dynamic) refused by name"
"$VI" create -q -f vpc -o cluster_size=64k bad.vpc 8M 2>v.err
[ $? = 1 ] && grep -q "cluster_size" v.err && ok "unknown option refused by name" ||
	bad "unknown option refused by name"
both resize -f vpc q-dynamic.vpc 64M && same_rc "resize (not supported by either)"
both measure -O vpc -f raw q-dynamic.raw && same_rc "measure -O vpc (not supported by either)"

echo "# hostile images"
# patch FILE OFF HEXBYTES [footer|footers]: overwrite bytes, then fix the footer checksum(s)
cat >patch.py <<'EOF'
import sys
f, off, data = sys.argv[1], int(sys.argv[2], 0), bytes.fromhex(sys.argv[3])
fix = sys.argv[4] if len(sys.argv) > 4 else ''
b = bytearray(open(f, 'rb').read())
b[off:off + len(data)] = data
for at in ([0, len(b) - 512] if fix == 'footers' else [len(b) - 512] if fix == 'footer' else []):
	ft = b[at:at + 512]
	ft[64:68] = b'\0\0\0\0'
	b[at + 64:at + 68] = ((~sum(ft)) & 0xffffffff).to_bytes(4, 'big')
open(f, 'wb').write(b)
EOF
hostile() { # name file keyword
	"$VI" info -f vpc "$2" >v.out 2>v.err; local rc=$?
	if [ $rc = 1 ] && grep -q "$2" v.err && grep -qi -- "$3" v.err; then
		ok "hostile: $1 refused: $(head -c 150 v.err)"
	else
		bad "hostile: $1 (exit $rc)"; sed 's/^/#   /' v.err
	fi
}
qemu-img create -q -f vpc h.vpc 8M
qemu-io -f vpc -c "write -P 1 0 4k" -c "write -P 2 4M 4k" h.vpc >/dev/null
# the BAT is at 1536 (4 entries), block 0 at 0x800, block 2 after it
tail -c 512 h.vpc >short.vpc
hostile "a footer alone" short.vpc "dynamic header"
head -c 300 h.vpc >tiny.vpc
hostile "a file shorter than a footer" tiny.vpc "too short"
cp h.vpc sum.vpc; python3 patch.py sum.vpc 70 ff; python3 patch.py sum.vpc $(( $(stat -c %s sum.vpc) - 512 + 70 )) ff
hostile "footer checksums wrong" sum.vpc checksum
cp h.vpc bat.vpc; python3 patch.py bat.vpc 1544 00ffff00
hostile "a block past the end" bat.vpc "past the end"
cp h.vpc dup.vpc; python3 patch.py dup.vpc 1544 "$(xxd -s 1536 -l 4 -p h.vpc)"
hostile "two blocks overlapping" dup.vpc overlap
cp h.vpc meta.vpc; python3 patch.py meta.vpc 1544 00000001
hostile "a block inside the metadata" meta.vpc metadata
cp h.vpc bs.vpc; python3 patch.py bs.vpc $((512 + 32)) 00000c00
hostile "a block size of 3 KiB" bs.vpc "block size"
cp h.vpc nbat.vpc; python3 patch.py nbat.vpc $((512 + 28)) ffffffff
hostile "a BAT of 2^32 - 1 entries" nbat.vpc BAT
cp h.vpc few.vpc; python3 patch.py few.vpc $((512 + 28)) 00000001
hostile "a BAT too small for the disk" few.vpc "do not cover"
cp h.vpc dh.vpc; python3 patch.py dh.vpc 16 00000000ffff0000 footers
hostile "a dynamic header past the end" dh.vpc "dynamic header"
cp h.vpc diff.vpc; python3 patch.py diff.vpc 60 00000004 footers
hostile "a differencing disk" diff.vpc differencing
qemu-img create -q -f vpc -o subformat=fixed fx.vpc 8M
cp fx.vpc big.vpc; python3 patch.py big.vpc $(( $(stat -c %s fx.vpc) - 512 + 28 )) 71656d32 footer
python3 patch.py big.vpc $(( $(stat -c %s fx.vpc) - 512 + 48 )) 0000000100000000 footer
hostile "a fixed disk larger than its file" big.vpc "do not fit"
tap_end
