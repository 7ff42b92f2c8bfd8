#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# VDI against qemu-img (issue 20), for each subformat: dynamic and static.
#
#  - qemu-img's images (qemu-io writes at known offsets, sparse between, across a block
#    boundary, in the last sector): vireo-img info (human and JSON), map (human and JSON),
#    check and measure (-O raw, -O qcow2) give what qemu-img gives; convert -O raw is
#    qemu-img compare-equal to the image, vireo-img compare agrees.
#  - vireo-img's images: create prints qemu-img's "Formatting" line and makes qemu-img's disk
#    size; written by vireo (img_io) they read in qemu-io, pass qemu-img check and compare equal
#    to qemu's image with the same writes; written by qemu-io they read in vireo; qemu-img info
#    and vireo-img info agree on them; convert -O vdi -o static=... allocates what qemu-img's
#    convert does.
#  - Disk sizes (odd ones, 1 TiB, too large) as qemu-img makes them; round trip qcow2 -> vdi ->
#    qcow2 equal.
#  - Hostile headers (a short file, version, type, parent, sector and block sizes, a disk larger
#    than its blocks, block map and data area misplaced or past the end, a block past the end):
#    refused with a message naming the file and what is wrong, never a signal. Block maps
#    qemu-img check calls corrupt (an index past the data area, two entries on one block, a
#    wrong count): the same check verdict, read-only reads, writes refused.
# usage: img-vdi.sh VIREO_IMG IMG_IO    (~10 s; exit 77 without qemu-img, qemu-io, jq, python3)
set -u
if [ $# -ne 2 ]; then
	echo "usage: $0 VIREO_IMG IMG_IO" >&2
	exit 2
fi
VI=$(realpath "$1")
IO=$(realpath "$2")
. "$(dirname "$(realpath "$0")")/tap.sh"
tap_start img-vdi qemu-img qemu-io jq python3

# JSON equal (check: vireo-img may print the image end offset and cluster count as 0 where
# qemu-img's vdi check leaves them out)
same_json() {
	local f='if type == "object" then with_entries(select(.value != 0 or
		 (.key | test("^(image-end-offset|total-clusters)$") | not))) else . end'
	if cmp -s <(jq -S "$f" v.out) <(jq -S "$f" q.out); then ok "$1: same JSON"; return; fi
	bad "$1: same JSON"; diff <(jq -S . q.out) <(jq -S . v.out) | sed 's/^/#   /' | head -20
}
# (static images: every block is data; where the file has holes depends on its layout)
alloc() { qemu-img map --output=json "$1" | jq -c 'map(del(.offset)) |
	if all(.data) then map(del(.zero)) else . end | reduce .[] as $e
	([]; if length > 0 and (.[-1] | del(.start, .length)) == ($e | del(.start, .length))
	     then .[-1].length += $e.length else . + [$e] end)'; }
vsize() { qemu-img info --output=json "$1" | jq '."virtual-size"'; }
set_io() {
	W=(-c "write -P 0xa1 0 64k" -c "write -P 0xa2 1020k 8k" -c "write -P 0xa3 5M 1M"
	   -c "write -P 0xa4 $1 512")
	R=(-c "read -P 0xa1 0 64k" -c "read -P 0xa2 1020k 8k" -c "read -P 0xa3 5M 1M"
	   -c "read -P 0xa4 $1 512" -c "read -P 0 64k 956k" -c "read -P 0 6M 1M")
}
KINDS="dynamic static"
opts_of() { [ $1 = static ] && echo static=on || echo static=off; }

echo "# qemu-img's images"
for k in $KINDS; do
	qemu-img create -q -f vdi -o "$(opts_of $k)" q-$k.vdi 20000000 || { bad "qemu-img create $k"; continue; }
	set_io $(($(vsize q-$k.vdi) - 512))
	qemu-io -f vdi "${W[@]}" q-$k.vdi >/dev/null || bad "qemu-io writes $k"
	both info --output=json q-$k.vdi && same_rc "info json $k" && same_json "info json $k"
	both info q-$k.vdi && same_rc "info $k" && same_text "info $k"
	both map --output=json q-$k.vdi && same_rc "map json $k" && same_json "map json $k"
	both map q-$k.vdi && same_rc "map $k" && same_text "map $k"
	both check q-$k.vdi && same_rc "check $k" && same_text "check $k"
	both check --output=json q-$k.vdi && same_rc "check json $k" && same_json "check json $k"
	# no repair for VDI in either tool: qemu-img's "not supported", exit 63
	both check -r all q-$k.vdi && same_rc "check -r all $k"
	for o in raw qcow2; do
		both measure --output=json -O $o q-$k.vdi && same_rc "measure -O $o $k" &&
			same_json "measure -O $o $k"
	done
	run "convert -O raw $k" "$VI" convert -O raw q-$k.vdi q-$k.raw
	run "qemu-img compare $k with vireo's raw" qemu-img compare -F raw q-$k.vdi q-$k.raw
	run "vireo-img compare $k with the raw" "$VI" compare -F raw q-$k.vdi q-$k.raw
done

echo "# vireo-img's images"
for k in $KINDS; do
	both create -f vdi -o "$(opts_of $k)" c-$k.vdi 20000000
	same_rc "create $k" && same_text "create $k: the Formatting line"
	"$VI" create -q -f vdi -o "$(opts_of $k)" v-$k.vdi 20000000 || { bad "vireo-img create $k"; continue; }
	[ "$(vsize v-$k.vdi)" = "$(vsize q-$k.vdi)" ] && ok "$k: qemu-img's disk size" ||
		bad "$k: disk size $(vsize v-$k.vdi), qemu-img's $(vsize q-$k.vdi)"
	set_io $(($(vsize v-$k.vdi) - 512))
	run "vireo writes $k" "$IO" -f vdi v-$k.vdi "${W[@]}"
	run "qemu-io reads vireo's writes $k" qemu-io -f vdi "${R[@]}" v-$k.vdi
	run "qemu-img check of vireo's $k" qemu-img check v-$k.vdi
	run "qemu-img compare vireo's $k with qemu's" qemu-img compare v-$k.vdi q-$k.vdi
	"$VI" info --output=json v-$k.vdi >v.out 2>v.err
	qemu-img info --output=json v-$k.vdi >q.out 2>q.err
	same_json "vireo-img info of vireo's $k"
	"$VI" map --output=json v-$k.vdi >v.out 2>v.err
	qemu-img map --output=json v-$k.vdi >q.out 2>q.err
	same_json "vireo-img map of vireo's $k"
	run "qemu-io writes into vireo's $k" qemu-io -f vdi -c "write -P 0xb1 3M 4k" \
		-c "write -P 0xb2 9M 2M" v-$k.vdi
	run "vireo reads qemu-io's writes $k" "$IO" -f vdi v-$k.vdi -c "read -P 0xb1 3M 4k" \
		-c "read -P 0xb2 9M 2M" -c "read -P 0xa3 5M 1M"
	run "vireo writes into qemu's $k" "$IO" -f vdi q-$k.vdi -c "write -P 0xb1 3M 4k" \
		-c "write -P 0xb2 9M 2M"
	run "qemu-img check of qemu's $k after vireo's writes" qemu-img check q-$k.vdi
	run "both images equal after the same writes $k" qemu-img compare v-$k.vdi q-$k.vdi
	run "vireo-img convert -O vdi -o $(opts_of $k)" "$VI" convert -f raw -O vdi \
		-o "$(opts_of $k)" q-$k.raw vc-$k.vdi
	qemu-img convert -f raw -O vdi -o "$(opts_of $k)" q-$k.raw qc-$k.vdi
	run "convert $k: compare-equal to the source" qemu-img compare -F raw vc-$k.vdi q-$k.raw
	run "convert $k: qemu-img check" qemu-img check vc-$k.vdi
	[ "$(alloc vc-$k.vdi)" = "$(alloc qc-$k.vdi)" ] && ok "convert $k: qemu-img's allocation" ||
		{ bad "convert $k: qemu-img's allocation"; alloc vc-$k.vdi | sed 's/^/#   vireo: /';
		  alloc qc-$k.vdi | sed 's/^/#   qemu: /'; }
done

echo "# sizes and round trip"
for s in 0 512 1M 10000001 100M 1T; do
	"$VI" create -q -f vdi s.vdi $s >/dev/null 2>&1
	qemu-img create -q -f vdi sq.vdi $s >/dev/null 2>&1
	[ "$(vsize s.vdi)" = "$(vsize sq.vdi)" ] && ok "$s: disk size $(vsize s.vdi)" ||
		bad "$s: disk size $(vsize s.vdi), qemu-img's $(vsize sq.vdi)"
	rm -f s.vdi sq.vdi
done
both create -q -f vdi huge.vdi 5000T && same_rc "5000 TiB refused"
qemu-img create -q -f qcow2 rt.qcow2 40M
qemu-io -f qcow2 -c "write -P 0x31 1M 3M" -c "write -P 0x32 17M 64k" -c "write -z 20M 1M" \
	-c "write -P 0x33 39M 1M" rt.qcow2 >/dev/null
run "qcow2 -> vdi" "$VI" convert -O vdi rt.qcow2 rt.vdi
run "vdi -> qcow2" "$VI" convert -O qcow2 rt.vdi rt2.qcow2
run "qcow2 -> vdi -> qcow2 equal" qemu-img compare rt.qcow2 rt2.qcow2
run "qemu-img check of the vdi" qemu-img check rt.vdi
run "preallocation=full (static)" "$VI" create -q -f vdi -o static=on,preallocation=full \
	full.vdi 8M
[ "$(du -k full.vdi | cut -f1)" -ge 8192 ] && ok "preallocation=full allocates" ||
	bad "preallocation=full: $(du -k full.vdi | cut -f1) KiB allocated"
"$VI" create -q -f vdi -o preallocation=falloc dyn.vdi 8M 2>v.err
[ $? = 1 ] && grep -q preallocation v.err && ok "preallocation (dynamic) refused by name" ||
	bad "preallocation (dynamic) refused by name"
both resize q-dynamic.vdi 64M && same_rc "resize (not supported by either)"
both measure -O vdi -f raw q-dynamic.raw && same_rc "measure -O vdi (not supported by either)"

echo "# hostile images"
cat >patch.py <<'EOF'
import sys
f, off, data = sys.argv[1], int(sys.argv[2], 0), bytes.fromhex(sys.argv[3])
b = bytearray(open(f, 'rb').read())
b[off:off + len(data)] = data
open(f, 'wb').write(b)
EOF
hostile() { # name file keyword
	"$VI" info "$2" >v.out 2>v.err; local rc=$?
	if [ $rc = 1 ] && grep -q "$2" v.err && grep -qi -- "$3" v.err; then
		ok "hostile: $1 refused: $(head -c 150 v.err)"
	else
		bad "hostile: $1 (exit $rc)"; sed 's/^/#   /' v.err
	fi
}
# a 4 MiB static image: header, map at 0x200 (4 entries), data at 0x400 (as qemu-img makes it)
qemu-img create -q -f vdi -o static=on h.vdi 4M
qemu-io -f vdi -c "write -P 1 0 4k" -c "write -P 2 3M 4k" h.vdi >/dev/null
p() { cp h.vdi "$1"; python3 patch.py "$1" "$2" "$3"; }
head -c 300 h.vdi >tiny.vdi
hostile "a file shorter than a header" tiny.vdi "too short"
p ver.vdi 0x44 00000100;       hostile "version 1.0" ver.vdi version
p diff.vdi 0x4c 04000000;      hostile "a differencing image" diff.vdi differencing
p par.vdi 0x1b8 01;            hostile "a parent UUID" par.vdi parent
p sec.vdi 0x168 00100000;      hostile "4 KiB sectors" sec.vdi "sector size"
p bsz.vdi 0x178 b80b0000;      hostile "a block size of 3000" bsz.vdi "block size"
p ext.vdi 0x17c 00020000;      hostile "extra block bytes" ext.vdi extra
p dsz.vdi 0x170 0000500000000000; hostile "a disk larger than its blocks" dsz.vdi larger
p una.vdi 0x154 01020000;      hostile "a block map off a sector" una.vdi "multiple of 512"
p ovl.vdi 0x154 00000000;      hostile "a block map over the header" ovl.vdi overlaps
p run.vdi 0x158 00020000;      hostile "a map running into the data" run.vdi "runs into"
p eof.vdi 0x158 00fe0f00;      hostile "a data area past the end" eof.vdi "past the end"
p blk.vdi 0x200 00010000;      hostile "a block past the end" blk.vdi "past the end"
# what qemu-img check calls corrupt: the same verdict, reads allowed, writes refused
p dup.vdi 0x204 00000000
truncate -s +1M h.vdi; p big.vdi 0x20c 04000000
p cnt.vdi 0x184 03000000
for f in dup.vdi big.vdi cnt.vdi; do
	both check $f && same_rc "check $f" && same_text "check $f"
	both check --output=json $f && same_rc "check json $f" && same_json "check json $f"
	run "$f: convert (read-only) works" "$VI" convert -O raw $f $f.raw
	run "$f: reads as qemu-img reads it" qemu-img compare $f $f.raw
done
for f in dup.vdi big.vdi; do
	"$IO" -f vdi $f -c "write -P 3 0 4k" >v.out 2>&1
	[ $? = 1 ] && grep -q "read-only" v.out && ok "$f: writes refused, naming read-only" ||
		{ bad "$f: writes refused"; sed 's/^/#   /' v.out; }
done
tap_end
