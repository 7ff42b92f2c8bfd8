#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# VMDK against qemu-img and qemu-io, both ways (issue 20), for each subformat: monolithicSparse
# (and with zeroed_grain), monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat (3 GiB: two
# extents) and streamOptimized:
#  - made by qemu-img, filled by qemu-io at known offsets (sparse regions between; compressed
#    grains for streamOptimized): vireo-img info (human, JSON), map (human, JSON) and check as
#    qemu-img's; convert -O raw equal to the image (qemu-img compare); img_io reads the patterns;
#  - made by vireo-img convert from a raw file of mixed data: qemu-img check clean, qemu-img
#    compare equal, qemu-img info as vireo-img info, qemu-io reads the patterns;
#  - written by vireo (img_io: partial grains, across the 2 GiB extent boundary, zeroes) into
#    images qemu-img made, then read by qemu-io; and the other way round;
#  - qcow2 -> each subformat -> qcow2 by vireo-img, equal to the start (qemu-img compare);
#  - create: qemu-img's "Formatting" line and descriptor (but the CID) for the options;
#  - a streamOptimized image opened for writing in place is refused with the reason; hostile
#    descriptors (absolute and climbing extent paths, a loop, a missing extent) and headers
#    refused with a message, exit 1, never a signal; extents-outside=on allows absolute paths.
# usage: img-vmdk.sh VIREO_IMG IMG_IO   (exit 77 when qemu-img / qemu-io / python3 are missing)
set -u
VI=$(realpath "$1")
IO=$(realpath "$2")
. "$(dirname "$(realpath "$0")")/tap.sh"
tap_start vmdk qemu-img qemu-io python3

SUBS="monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized"
G2=2147483648
jsame() { # name file1 file2: the same JSON
	if python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' "$2" "$3"
	then ok "$1"; else bad "$1"; diff "$2" "$3" | head -8 | sed 's/^/#   /'; fi
}
tsame() { # name file1 file2: the same text
	if cmp -s "$2" "$3"; then ok "$1"; else bad "$1"; diff "$2" "$3" | head -8 | sed 's/^/#   /'; fi
}
refused() { # name pattern command...: exit 1 with a message matching pattern
	"${@:3}" >ref.out 2>&1
	local rc=$?
	if [ $rc = 1 ] && grep -q -- "$2" ref.out; then ok "$1: $(head -c 160 ref.out)"
	else bad "$1 (exit $rc)"; sed 's/^/#   /' ref.out | head -5; fi
}
qreads() { # name image "PATTERN OFF LEN"...: qemu-io verifies each
	local args=() c
	for c in "${@:3}"; do args+=(-c "read -P $c"); done
	if qemu-io -f vmdk "${args[@]}" "$2" >reads.out 2>&1 && ! grep -q "verification failed" reads.out
	then ok "$1: qemu-io reads"; else bad "$1: qemu-io reads"; sed 's/^/#   /' reads.out | head -4; fi
}
vreads() { # name image "PATTERN OFF LEN"...: img_io verifies each
	local args=() c
	for c in "${@:3}"; do args+=(-c "read -P $c"); done
	run "$1: img_io reads" "$IO" -f vmdk -o readonly=on "$2" "${args[@]}"
}
qclean() { # name image
	if qemu-img check "$2" >chk.out 2>&1; then ok "$1: qemu-img check"
	else bad "$1: qemu-img check"; sed 's/^/#   /' chk.out | head -4; fi
}
# the read-only verbs on one image with both tools
same_verbs() { # name image
	"$VI" info "$2" >v.txt 2>&1; qemu-img info "$2" >q.txt 2>&1
	tsame "$1: info" v.txt q.txt
	"$VI" info --output=json "$2" >v.json; qemu-img info --output=json "$2" >q.json
	jsame "$1: info --output=json" v.json q.json
	"$VI" map --output=json "$2" >v.json; qemu-img map --output=json "$2" >q.json
	jsame "$1: map --output=json" v.json q.json
	"$VI" map "$2" >v.txt 2>&1; vrc=$?; qemu-img map "$2" >q.txt 2>&1; qrc=$?
	if [ $vrc != 0 ] && [ $vrc = $qrc ]; then # both refuse compressed data, each its own words
		ok "$1: map refused as qemu-img does"
	else
		tsame "$1: map" v.txt q.txt
	fi
	"$VI" check "$2" >v.txt 2>&1; qemu-img check "$2" >q.txt 2>&1
	tsame "$1: check" v.txt q.txt
	rm -f v.raw
	if "$VI" convert -O raw "$2" v.raw && qemu-img compare -q -f raw -F vmdk v.raw "$2"
	then ok "$1: convert -O raw, qemu-img compare"; else bad "$1: convert -O raw, qemu-img compare"; fi
}

# a source of mixed data: random, repeated bytes, zero runs inside data, holes (6 MiB in 3 GiB)
python3 - <<'EOF'
import os, random
random.seed(20)
with open('src.raw', 'wb') as f:
    f.truncate(3 << 30)
    for off in list(range(0, 3 << 30, 256 << 20)) + [(2 << 30) - 70000, 5000]:
        n = random.choice([4096, 65536, 300000, 1 << 20])
        f.seek(off)
        blob = bytearray(os.urandom(n // 2) + bytes([random.randrange(1, 256)]) * (n - n // 2))
        blob[n // 3:n // 3 + 8192] = bytes(8192)
        f.write(blob)
EOF

for s in $SUBS zeroed; do
	o="subformat=$s"
	[ $s = zeroed ] && o="subformat=monolithicSparse,zeroed_grain=on"
	# --- made by qemu, read by vireo
	rm -f q-$s*
	qemu-img create -q -f vmdk -o "$o" q-$s.vmdk 3G
	if [ $s = streamOptimized ]; then # qemu writes whole grains of a stream
		qemu-io -f vmdk -c 'write -P 0x11 0 128k' -c 'write -P 0x12 1M 64k' \
			-c "write -P 0x13 $((G2 - 65536)) 128k" q-$s.vmdk >/dev/null
		pats=("0x11 0 128k" "0 128k 896k" "0x12 1M 64k" "0x13 $((G2 - 65536)) 128k")
	else
		qemu-io -f vmdk -c 'write -P 0x11 0 100k' -c 'write -P 0x12 1M 5000' \
			-c "write -P 0x13 $((G2 - 70000)) 140000" -c 'write -z 2M 64k' q-$s.vmdk >/dev/null
		pats=("0x11 0 100k" "0 100k 924k" "0x12 1M 5000" "0x13 $((G2 - 70000)) 140000"
		      "0 2M 64k")
	fi
	same_verbs "$s made by qemu" q-$s.vmdk
	vreads "$s made by qemu" q-$s.vmdk "${pats[@]}"
	# --- vireo writes into it (not a stream: refused, see below), qemu reads
	if [ $s != streamOptimized ]; then
		run "$s made by qemu: img_io writes" "$IO" -f vmdk q-$s.vmdk \
			-c 'write -P 0x21 3000 2000' -c "write -P 0x22 $((G2 - 1000)) 3000" \
			-c 'write -P 0x23 4M 300k' -c 'write -z 8k 4k' -c 'write -z 4M 64k' -c flush
		qreads "$s made by qemu, written by vireo" q-$s.vmdk "0x11 0 3000" "0x21 3000 2000" \
			"0x11 5000 3192" "0 8k 4k" "0x11 12k 88k" "0x13 $((G2 - 70000)) 69000" \
			"0x22 $((G2 - 1000)) 3000" "0x13 $((G2 + 2000)) 68000" "0 4M 64k" \
			"0x23 $((4 * 1048576 + 65536)) $((300 * 1024 - 65536))"
		qclean "$s made by qemu, written by vireo" q-$s.vmdk
	fi
	# --- made by vireo (convert), read by qemu
	rm -f v-$s*
	run "$s: vireo-img convert -O vmdk -o $o" "$VI" convert -O vmdk -o "$o" src.raw v-$s.vmdk
	qclean "$s made by vireo" v-$s.vmdk
	if qemu-img compare -q -f raw -F vmdk src.raw v-$s.vmdk
	then ok "$s made by vireo: qemu-img compare with the source"
	else bad "$s made by vireo: qemu-img compare with the source"; fi
	"$VI" info v-$s.vmdk >v.txt; qemu-img info v-$s.vmdk >q.txt
	tsame "$s made by vireo: info as qemu-img's" v.txt q.txt
	"$VI" map --output=json v-$s.vmdk >v.json; qemu-img map --output=json v-$s.vmdk >q.json
	jsame "$s made by vireo: map as qemu-img's" v.json q.json
	# --- qemu writes into an image vireo made, vireo reads
	if [ $s != streamOptimized ]; then
		qemu-io -f vmdk -c 'write -P 0x31 7000 9000' -c "write -P 0x32 $((G2 - 4096)) 8192" \
			v-$s.vmdk >/dev/null
		vreads "$s made by vireo, written by qemu" v-$s.vmdk "0x31 7000 9000" \
			"0x32 $((G2 - 4096)) 8192"
	fi
	# --- qcow2 -> vmdk -> qcow2
	[ -f src.qcow2 ] || qemu-img convert -f raw -O qcow2 src.raw src.qcow2
	rm -f rt-$s* rt.qcow2
	if "$VI" convert -f qcow2 -O vmdk -o "$o" src.qcow2 rt-$s.vmdk &&
		"$VI" convert -O qcow2 rt-$s.vmdk rt.qcow2 && qemu-img compare -q src.qcow2 rt.qcow2
	then ok "$s: qcow2 -> vmdk -> qcow2 round trip"; else bad "$s: qcow2 -> vmdk -> qcow2 round trip"; fi
done

# qemu-img's own streamOptimized conversion (its layout: tables in front), read by vireo
rm -f qc.vmdk
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw qc.vmdk
same_verbs "streamOptimized converted by qemu-img" qc.vmdk

# convert -c, as qemu-img takes it: a stream's grains are compressed anyway, a sparse image
# stores them as they are
for o in subformat=streamOptimized subformat=monolithicSparse; do
	rm -f c.vmdk
	if "$VI" convert -c -O vmdk -o $o src.qcow2 c.vmdk && qemu-img compare -q src.qcow2 c.vmdk
	then ok "convert -c -O vmdk -o $o"; else bad "convert -c -O vmdk -o $o"; fi
done

# create: qemu-img's Formatting line and descriptor, but the CID
for o in "" "subformat=monolithicFlat,adapter_type=lsilogic,hwversion=7,toolsversion=12" \
	 "subformat=twoGbMaxExtentFlat,compat6=on" "subformat=twoGbMaxExtentSparse,zeroed_grain=on" \
	 "subformat=streamOptimized,adapter_type=buslogic" "adapter_type=legacyESX,preallocation=off"; do
	rm -rf cv cq; mkdir cv cq
	(cd cv && "$VI" create -f vmdk ${o:+-o "$o"} d.vmdk 5G) >v.txt 2>&1
	(cd cq && qemu-img create -f vmdk ${o:+-o "$o"} d.vmdk 5G) >q.txt 2>&1
	tsame "create -o '$o': Formatting line" v.txt q.txt
	for f in cq/*; do
		g=cv/${f#cq/}
		if [ "$(stat -c %s "$f")" -gt 1048576 ]; then # a flat extent: its size only
			if [ "$(stat -c %s "$g" 2>/dev/null)" = "$(stat -c %s "$f")" ]
			then ok "create -o '$o': $f's size"; else bad "create -o '$o': $f's size"; fi
			continue
		fi
		if [ "$(head -c 4 "$f" | tr -d '\0')" = KDMV ]; then # the header and embedded descriptor
			# (a stream's differs: vireo writes VMware's layout, the directory at the end)
			head -c 512 "$g" >v.hdr; head -c 512 "$f" >q.hdr
			[ "${o#*stream}" = "$o" ] && tsame "create -o '$o': $f's header" v.hdr q.hdr
			dd if="$g" bs=512 skip=1 count=20 status=none | tr -d '\0' | grep -v '^CID=' >v.desc
			dd if="$f" bs=512 skip=1 count=20 status=none | tr -d '\0' | grep -v '^CID=' >q.desc
		else
			grep -av '^CID=' "$g" >v.desc; grep -av '^CID=' "$f" >q.desc
		fi
		tsame "create -o '$o': $f's descriptor" v.desc q.desc
		if [ "$(stat -c %s "$g" 2>/dev/null)" = "$(stat -c %s "$f")" ] || [ "${f%.vmdk}" = cq/d ]
		then ok "create -o '$o': $f's size"; else bad "create -o '$o': $f's size"; fi
	done
	qclean "create -o '$o'" cv/d.vmdk
done
refused "create: compat6 with hwversion" "compat6 cannot be enabled with hwversion set" \
	"$VI" create -q -f vmdk -o compat6=on,hwversion=7 x.vmdk 1M
refused "create: zeroed_grain on a flat image" "Flat image can't enable zeroed grain" \
	"$VI" create -q -f vmdk -o subformat=monolithicFlat,zeroed_grain=on x.vmdk 1M
refused "create: unknown adapter" "adapter_type" \
	"$VI" create -q -f vmdk -o adapter_type=ahci x.vmdk 1M
refused "create: a backing file" "no backing file" \
	"$VI" create -q -f vmdk -b q-monolithicSparse.vmdk -F vmdk x.vmdk

# a crash (SIGKILL) after a flush and an unflushed allocating write: the image is consistent
# (the tables reach the file at flush, after the data), the flushed data is there
for z in off on; do
	rm -f crash.vmdk log.txt
	qemu-img create -q -f vmdk -o zeroed_grain=$z crash.vmdk 64M
	"$IO" -l -f vmdk crash.vmdk -c 'write -P 0x41 0 1M' -c 'write -z 1M 64k' -c flush \
		-c 'write -P 0x42 8M 3M' -c 'write -P 0x43 100k 8k' -c 'sleep 20000' >log.txt &
	pid=$!
	for i in $(seq 100); do grep -q '^@F' log.txt 2>/dev/null && break; sleep 0.1; done
	sleep 0.5
	kill -9 $pid; wait $pid 2>/dev/null
	qclean "zeroed_grain=$z: killed after a flush" crash.vmdk
	qreads "zeroed_grain=$z: killed after a flush: the flushed data" crash.vmdk "0x41 0 100k" \
		"0x41 108k 916k" "0 1M 64k"
done

# a stream is written only as a new file: in place it is refused with the reason
refused "streamOptimized written in place" "cannot be written in place" \
	"$IO" -f vmdk q-streamOptimized.vmdk -c 'write -P 1 0 64k'

# hostile descriptors and headers
mkdir -p sub
echo -n 'data' >sub/flat.raw
desc() { printf '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n%s\n' "$2" >"$1"; }
desc abs.vmdk "RW 8 FLAT \"$T/sub/flat.raw\" 0"
refused "an absolute extent path" "extents-outside=on" "$VI" info abs.vmdk
run "extents-outside=on allows it" "$VI" info --image-opts driver=vmdk,file.filename=abs.vmdk,extents-outside=on
desc sub/climb.vmdk 'RW 8 FLAT "../src.raw" 0'
refused "an extent path climbing out" "climbs out" "$VI" convert -O raw sub/climb.vmdk x.raw
ln -sf /etc/hostname sub/link.raw
desc sub/link.vmdk 'RW 8 FLAT "link.raw" 0'
refused "an extent through a symlink out of the directory" "outside the descriptor's directory" \
	"$VI" info sub/link.vmdk
desc loop.vmdk 'RW 8 FLAT "loop.vmdk" 0'
refused "a descriptor naming itself" "the descriptor file itself" "$VI" check loop.vmdk
desc missing.vmdk 'RW 8 FLAT "nowhere.raw" 0'
refused "a missing extent" "nowhere.raw" "$VI" info missing.vmdk
desc cowd.vmdk 'RW 8 VMFSSPARSE "sub/flat.raw"'
refused "an ESX delta extent" "VMFSSPARSE" "$VI" info cowd.vmdk
cp q-monolithicSparse.vmdk trunc.vmdk && truncate -s 300 trunc.vmdk
refused "a truncated header" "truncated" "$VI" info trunc.vmdk
cp q-monolithicSparse.vmdk gd.vmdk
printf '\xff\xff\xff\x00' | dd of=gd.vmdk bs=1 seek=56 conv=notrunc status=none
refused "a grain directory past the end" "grain directory" "$VI" map gd.vmdk
cp q-monolithicSparse.vmdk gt.vmdk # the first grain table on the redundant directory
python3 -c 'import struct; f=open("gt.vmdk","r+b"); h=f.read(64); gd=struct.unpack_from("<Q",h,56)[0]; rgd=struct.unpack_from("<Q",h,48)[0]; f.seek(gd*512); f.write(struct.pack("<I", rgd))'
refused "a grain table on the redundant directory" "overlaps" "$VI" info gt.vmdk

tap_end
