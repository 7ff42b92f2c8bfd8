#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# qcow2 interop both ways:
#  - images made by qemu-img / qemu-io (every cluster size class, compat, refcount width, extended
#    L2, zstd, compression, zero clusters, preallocation, backing chains) read by vireo with the
#    content qemu-img's own raw conversion gives; `vireo-img info/map --output=json` agree with
#    qemu-img on the fields qemu-img prints; `vireo-img check` finds them clean;
#  - images made and written by vireo (vireo-img create/convert/resize, img_io writes incl. COW
#    over backing files, write-zeroes, discard, refcount table and L1 growth) pass `qemu-img
#    check` and `qemu-img compare` against a raw reference written by qemu-io.
# usage: qcow2.sh VIREO_IMG IMG_IO        (exit 77 when qemu-img / qemu-io / python3 are missing)
set -u
VI=$(realpath "$1")
IO=$(realpath "$2")
. "$(dirname "$(realpath "$0")")/tap.sh"
tap_start qcow2-interop qemu-img qemu-io python3

# same guest content as qemu-img sees it
same_content() { # name image
	rm -f ours.raw theirs.raw
	if ! "$VI" convert -O raw "$2" ours.raw; then bad "$1: vireo-img convert failed"; return; fi
	qemu-img convert -O raw "$2" theirs.raw
	if cmp -s ours.raw theirs.raw; then ok "$1: content"; else bad "$1: content differs"; fi
}

# vireo-img info/map --output=json agree with qemu-img on every field both print
same_json() { # name command image
	"$VI" $2 --output=json "$3" > ours.json 2>ours.err || { bad "$1: vireo-img $2"; cat ours.err; return; }
	qemu-img $2 --output=json "$3" > theirs.json
	if python3 - ours.json theirs.json <<'EOF'
import json, sys
ours, theirs = (json.load(open(f)) for f in sys.argv[1:3])
skip = {"children", "actual-size", "format-specific/data/bitmaps"}
def cmp(a, b, path):
    if isinstance(b, dict):
        ok = isinstance(a, dict)
        for k in b:
            p = (path + "/" + k).lstrip("/")
            if p in skip or k == "children":
                continue
            if not ok or k not in a:
                print("missing", p); return False
            if not cmp(a[k], b[k], p):
                return False
        return ok
    if isinstance(b, list):
        if not isinstance(a, list) or len(a) != len(b):
            print("list differs at", path, a, b); return False
        return all(cmp(x, y, path) for x, y in zip(a, b))
    if a != b:
        print("differs at", path, a, b)
    return a == b
sys.exit(0 if cmp(ours, theirs, "") else 1)
EOF
	then ok "$1: $2 json"; else bad "$1: $2 json"; fi
}

vireo_clean() { # name image
	if "$VI" check "$2" >check.out 2>&1; then ok "$1: vireo-img check clean"
	else bad "$1: vireo-img check"; cat check.out; fi
}

qemu_clean() { # name image
	if qemu-img check "$2" >check.out 2>&1; then ok "$1: qemu-img check clean"
	else bad "$1: qemu-img check"; cat check.out; fi
}

qemu_same() { # name image reference (vireo-img compare must agree)
	if qemu-img compare -q "$2" "$3"; then ok "$1: qemu-img compare"
	else bad "$1: qemu-img compare"; fi
	if "$VI" compare -q "$2" "$3"; then ok "$1: vireo-img compare"
	else bad "$1: vireo-img compare"; fi
}

WRITES=(-c "write -P 0xab 0 1M" -c "write -P 0x12 1536k 700k" -c "write -P 0x34 3000k 5000"
	-c "write -z 3M 128k" -c "discard 512k 64k" -c "write -P 0x56 4063232 65536")
# the same for a raw reference of vireo's writes: a discard of less than a cluster may leave the
# data (it is a hint), so the reference zeroes the range instead, as vireo does for whole clusters
# (the test images are either zero-initialised or cluster-aligned here)
WRITES_REF=(-c "write -P 0xab 0 1M" -c "write -P 0x12 1536k 700k" -c "write -P 0x34 3000k 5000"
	-c "write -z 3M 128k" -c "write -P 0x56 4063232 65536")

# ---- qemu writes, vireo reads ----
for o in cluster_size=512 cluster_size=4k cluster_size=64k cluster_size=2M compat=0.10 \
	 refcount_bits=1 refcount_bits=2 refcount_bits=8 refcount_bits=32 refcount_bits=64 \
	 extended_l2=on extended_l2=on,cluster_size=16k extended_l2=on,cluster_size=2M \
	 compression_type=zstd lazy_refcounts=on preallocation=metadata \
	 preallocation=metadata,extended_l2=on; do
	rm -f q.qcow2
	qemu-img create -q -f qcow2 -o "$o" q.qcow2 4M
	qemu-io -f qcow2 "${WRITES[@]}" q.qcow2 >/dev/null
	same_content "qemu $o" q.qcow2
	same_json "qemu $o" info q.qcow2
	same_json "qemu $o" map q.qcow2
	vireo_clean "qemu $o" q.qcow2
done

# compressed clusters, zlib and zstd, including extended L2
qemu-img create -q -f raw src.raw 4M
qemu-io -f raw "${WRITES[@]}" src.raw >/dev/null
for o in compression_type=zlib compression_type=zstd extended_l2=on cluster_size=2M cluster_size=4k; do
	rm -f c.qcow2
	qemu-img convert -c -O qcow2 -o "$o" src.raw c.qcow2
	same_content "compressed $o" c.qcow2
	same_json "compressed $o" map c.qcow2
	vireo_clean "compressed $o" c.qcow2
done

# backing chains: raw <- qcow2 <- qcow2 (ext L2) with partial-cluster writes at each level
qemu-img create -q -f raw base.raw 6M
qemu-io -f raw -c "write -P 0x11 0 6M" base.raw >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 8M
qemu-io -f qcow2 -c "write -P 0x22 4096 8192" -c "write -z 1M 64k" -c "write -P 0x23 7M 100k" mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k -b mid.qcow2 -F qcow2 top.qcow2
qemu-io -f qcow2 -c "write -P 0x33 6144 2048" -c "write -z 2M 2048" -c "write -P 0x34 5M 70000" top.qcow2 >/dev/null
same_content "chain" top.qcow2
same_json "chain" info top.qcow2
same_json "chain" map top.qcow2
same_content "chain mid" mid.qcow2

# external data files
rm -f df.qcow2 df.data
qemu-img create -q -f qcow2 -o data_file=df.data df.qcow2 4M
qemu-io -f qcow2 "${WRITES[@]}" df.qcow2 >/dev/null
same_content "qemu data_file" df.qcow2
same_json "qemu data_file" info df.qcow2
vireo_clean "qemu data_file" df.qcow2

# a dirty image (lazy refcounts, qemu killed): vireo repairs the refcounts when it opens it
rm -f d.qcow2
qemu-img create -q -f qcow2 -o lazy_refcounts=on d.qcow2 4M
bash -c 'qemu-io -f qcow2 -c "write -P 0x11 0 1M" -c "sigraise 9" d.qcow2; exit 0' >/dev/null 2>&1
if "$VI" info --output=json d.qcow2 | grep -q '"dirty-flag":true'; then ok "dirty: reported"; else bad "dirty: reported"; fi
if "$IO" -f qcow2 -c "write -P 0x12 2M 4k" -c "read -P 0x11 0 1M" d.qcow2; then ok "dirty: repaired on open, writable"
else bad "dirty: repaired on open"; fi
qemu_clean "dirty" d.qcow2
if qemu-img info d.qcow2 | grep -q "cleanly shut down: no"; then bad "dirty: bit cleared"; else ok "dirty: bit cleared"; fi

# check: a lost refcount block is a corruption (exit 2); -r all rebuilds the refcounts
for o in cluster_size=64k cluster_size=512; do
	rm -f rb.qcow2
	qemu-img create -q -f qcow2 -o "$o" rb.qcow2 4M
	qemu-io -f qcow2 -c "write -P 9 0 3M" rb.qcow2 >/dev/null
	qemu-img convert -O raw rb.qcow2 rb.raw
	rt=$(python3 -c "import struct; print(struct.unpack('>Q', open('rb.qcow2', 'rb').read(56)[48:56])[0])")
	printf '\0\0\0\0\0\0\0\0' | dd of=rb.qcow2 bs=1 seek="$rt" conv=notrunc 2>/dev/null
	"$VI" check rb.qcow2 >/dev/null 2>&1; rc=$?
	if [ $rc -eq 2 ]; then ok "lost refblock $o: check exit 2"; else bad "lost refblock $o: check exit $rc"; fi
	if "$VI" check -r all rb.qcow2 >/dev/null 2>&1; then ok "lost refblock $o: repaired"
	else bad "lost refblock $o: repair"; fi
	qemu_clean "lost refblock $o" rb.qcow2
	qemu_same "lost refblock $o" rb.qcow2 rb.raw
done

# ---- vireo writes, qemu checks ----
for o in cluster_size=512 cluster_size=64k cluster_size=2M compat=0.10 refcount_bits=1 \
	 refcount_bits=64 extended_l2=on lazy_refcounts=on compression_type=zstd \
	 preallocation=metadata preallocation=metadata,extended_l2=on preallocation=falloc \
	 preallocation=full,cluster_size=4k data_file=v.data \
	 data_file=v.data,data_file_raw=on data_file=v.data,preallocation=metadata; do
	rm -f v.qcow2 ref.raw v.data
	"$VI" create -q -f qcow2 -o "$o" v.qcow2 4M || { bad "vireo create $o"; continue; }
	qemu-img create -q -f raw ref.raw 4M
	qemu-io -f raw "${WRITES_REF[@]}" ref.raw >/dev/null
	qemu-io -f raw -c "write -z 512k 64k" ref.raw >/dev/null
	# a discard reads back as zeroes (the part of a cluster too: it is zeroed), except when
	# the data file must stay a raw image: then vireo keeps the data
	case $o in *data_file_raw=on*)
		qemu-io -f raw -c "write -P 0xab 512k 64k" ref.raw >/dev/null ;;
	esac
	if "$IO" -f qcow2 "${WRITES[@]}" v.qcow2; then ok "vireo $o: writes"; else bad "vireo $o: writes"; fi
	qemu_clean "vireo $o" v.qcow2
	qemu_same "vireo $o" v.qcow2 ref.raw
	same_json "vireo $o" info v.qcow2
	vireo_clean "vireo $o" v.qcow2
done

# vireo writes over qemu's images: compressed clusters, zero clusters, subclusters, prealloc
for o in compression_type=zlib extended_l2=on cluster_size=4k; do
	rm -f c.qcow2
	qemu-img convert -c -O qcow2 -o "$o" src.raw c.qcow2
	cp src.raw ref.raw
	W2=(-c "write -P 0x77 100000 3000" -c "write -z 2M 70000" -c "discard 0 256k" -c "write -P 0x78 3M 1M")
	qemu-io -f raw "${W2[@]}" ref.raw >/dev/null
	if "$IO" -f qcow2 "${W2[@]}" c.qcow2; then ok "vireo over compressed $o: writes"
	else bad "vireo over compressed $o: writes"; fi
	qemu_clean "vireo over compressed $o" c.qcow2
	qemu_same "vireo over compressed $o" c.qcow2 ref.raw
done

# COW from a backing file: unaligned writes into clusters the top does not have yet
for o in cluster_size=64k extended_l2=on cluster_size=512 compat=0.10; do
	rm -f t.qcow2
	"$VI" create -q -f qcow2 -o "$o" -b base.raw -F raw t.qcow2 || { bad "vireo cow $o: create"; continue; }
	cp base.raw ref.raw
	W3=(-c "write -P 0x99 1000 3000" -c "write -P 0x98 65000 1000" -c "write -z 131072 65536"
	    -c "write -P 0x97 4000000 300000")
	qemu-io -f raw "${W3[@]}" ref.raw >/dev/null
	if "$IO" -f qcow2 "${W3[@]}" t.qcow2; then ok "vireo cow $o: writes"; else bad "vireo cow $o: writes"; fi
	qemu_clean "vireo cow $o" t.qcow2
	qemu_same "vireo cow $o" t.qcow2 ref.raw
	same_json "vireo cow $o" info t.qcow2
done

# internal snapshots (made by qemu-img): vireo copies the shared L2 tables and data clusters on
# write; the snapshot still holds the old content
rm -f s.qcow2
qemu-img create -q -f qcow2 s.qcow2 4M
qemu-io -f qcow2 -c "write -P 0x10 0 2M" -c "write -P 0x11 3M 100k" s.qcow2 >/dev/null
qemu-img convert -O raw s.qcow2 before.raw
qemu-img snapshot -c snap1 s.qcow2
same_json "snapshot" info s.qcow2
cp before.raw after.raw
qemu-io -f raw -c "write -P 0x20 1000 100000" -c "write -z 1M 128k" -c "write -z 1536k 64k" after.raw >/dev/null
if "$IO" -f qcow2 -c "write -P 0x20 1000 100000" -c "discard 1M 128k" -c "write -z 1536k 64k" s.qcow2
then ok "snapshot: writes"; else bad "snapshot: writes"; fi
qemu_clean "snapshot" s.qcow2
qemu_same "snapshot" s.qcow2 after.raw
vireo_clean "snapshot" s.qcow2
qemu-img snapshot -a snap1 s.qcow2
qemu_same "snapshot: reverted" s.qcow2 before.raw

# mixed chains: a vireo top over qemu's chain, then qemu writes into vireo's image
rm -f vtop.qcow2
"$VI" create -q -f qcow2 -b mid.qcow2 -F qcow2 vtop.qcow2 || bad "mixed: create"
qemu-img convert -O raw mid.qcow2 mref.raw
W4=(-c "write -P 0x44 5000 9000" -c "write -z 1M 4k" -c "write -P 0x45 7300000 20000")
qemu-io -f raw "${W4[@]}" mref.raw >/dev/null
if "$IO" -f qcow2 "${W4[@]}" vtop.qcow2; then ok "mixed: vireo writes"; else bad "mixed: vireo writes"; fi
qemu_clean "mixed" vtop.qcow2
qemu_same "mixed" vtop.qcow2 mref.raw
same_json "mixed" info vtop.qcow2
same_json "mixed" map vtop.qcow2
qemu-io -f qcow2 -c "write -P 0x46 100000 300000" -c "write -z 2M 64k" vtop.qcow2 >/dev/null
same_content "mixed: qemu writes into vireo's image" vtop.qcow2
vireo_clean "mixed: qemu writes into vireo's image" vtop.qcow2

# compare tells differences (exit 1) apart from identical images (exit 0), as qemu-img does
"$VI" compare -q vtop.qcow2 mid.qcow2; rc=$?
qemu-img compare -q vtop.qcow2 mid.qcow2; qrc=$?
if [ $rc -eq 1 ] && [ $qrc -eq 1 ]; then ok "compare: difference found"; else bad "compare: exit $rc, qemu $qrc"; fi

# rebase (safe: same content afterwards; unsafe: header only) and commit
rm -f cb.raw cm.qcow2 ct.qcow2
qemu-img create -q -f raw cb.raw 4M
qemu-io -f raw -c "write -P 0x1 0 4M" cb.raw >/dev/null
"$VI" create -q -f qcow2 -b cb.raw -F raw cm.qcow2
qemu-io -f qcow2 -c "write -P 0x2 1M 100k" -c "write -z 2M 64k" cm.qcow2 >/dev/null
"$VI" create -q -f qcow2 -o cluster_size=4k -b cm.qcow2 -F qcow2 ct.qcow2
qemu-io -f qcow2 -c "write -P 0x3 1050000 5000" -c "write -P 0x4 3M 64k" ct.qcow2 >/dev/null
qemu-img convert -O raw ct.qcow2 ct-before.raw
if "$VI" rebase -b cb.raw -F raw ct.qcow2; then ok "rebase"; else bad "rebase"; fi
qemu_clean "rebase" ct.qcow2
qemu_same "rebase" ct.qcow2 ct-before.raw
same_json "rebase" info ct.qcow2
if "$VI" commit -q ct.qcow2; then ok "commit"; else bad "commit"; fi
qemu_clean "commit" ct.qcow2
qemu_same "commit: base" cb.raw ct-before.raw
qemu_same "commit: emptied top" ct.qcow2 ct-before.raw
if qemu-img map --output=json ct.qcow2 | grep -q '"depth": 0'; then bad "commit: top is empty"
else ok "commit: top is empty"; fi
if "$VI" rebase -u -b "" ct.qcow2 && ! qemu-img info ct.qcow2 | grep -q "backing file"; then
	ok "rebase -u: backing file removed"; else bad "rebase -u"; fi
qemu_clean "rebase -u" ct.qcow2

# refcount table growth: 512-byte clusters, 24 MiB of data (qemu's table covers 8 MiB)
rm -f g.qcow2
qemu-img create -q -f qcow2 -o cluster_size=512 g.qcow2 32M
if "$IO" -f qcow2 -c "write -P 0x5a 0 24M" g.qcow2; then ok "reftable growth: writes"; else bad "reftable growth: writes"; fi
qemu_clean "reftable growth" g.qcow2
qemu-img create -q -f raw gref.raw 32M
qemu-io -f raw -c "write -P 0x5a 0 24M" gref.raw >/dev/null
qemu_same "reftable growth" g.qcow2 gref.raw

# L1 growth on resize, then writes past the old end
rm -f r.qcow2
"$VI" create -q -f qcow2 -o cluster_size=512 r.qcow2 1M
if "$VI" resize r.qcow2 +63M >/dev/null && "$IO" -f qcow2 -c "write -P 0x42 60M 64k" r.qcow2; then
	ok "resize: grow + write"; else bad "resize: grow + write"; fi
qemu_clean "resize" r.qcow2
qemu-img create -q -f raw rref.raw 64M
qemu-io -f raw -c "write -P 0x42 60M 64k" rref.raw >/dev/null
qemu_same "resize" r.qcow2 rref.raw

# an empty image (size 0) has no L1 table, as qemu-img makes it; it grows and takes writes
rm -f e0.qcow2
"$VI" create -q -f qcow2 e0.qcow2 0
qemu_clean "size 0" e0.qcow2
if "$VI" resize e0.qcow2 64M >/dev/null && "$IO" -f qcow2 -c "write -P 0x42 60M 64k" e0.qcow2; then
	ok "size 0: grow + write"; else bad "size 0: grow + write"; fi
qemu_same "size 0 grown" e0.qcow2 rref.raw

# shrink (--shrink), then grow again: the dropped part comes back as zeroes
if "$VI" resize r.qcow2 1M >/dev/null 2>&1; then bad "resize: shrink needs --shrink"
else ok "resize: shrink needs --shrink"; fi
if "$VI" resize --shrink r.qcow2 60000000 >/dev/null && "$VI" resize r.qcow2 64M >/dev/null; then
	ok "resize: shrink + grow"; else bad "resize: shrink + grow"; fi
qemu-io -f raw -c "write -z 60000000 4194304" rref.raw >/dev/null
qemu_clean "resize: shrink" r.qcow2
qemu_same "resize: shrink" r.qcow2 rref.raw

# convert raw -> qcow2 (vireo) -> raw (qemu)
for o in cluster_size=64k extended_l2=on refcount_bits=8; do
	rm -f cv.qcow2
	if "$VI" convert -O qcow2 -o "$o" src.raw cv.qcow2; then ok "convert $o"; else bad "convert $o"; fi
	qemu_clean "convert $o" cv.qcow2
	qemu_same "convert $o" cv.qcow2 src.raw
done

# random write / write-zeroes / discard sequences against a raw reference
RANDOM=7
for round in $(seq 1 12); do
	case $((round % 4)) in
	0) o=cluster_size=4k ;; 1) o=extended_l2=on ;; 2) o=cluster_size=512,refcount_bits=4 ;; 3) o=compat=0.10 ;;
	esac
	rm -f x.qcow2
	"$VI" create -q -f qcow2 -o "$o" x.qcow2 2M
	qemu-img create -q -f raw xref.raw 2M
	ours=()
	theirs=()
	for i in $(seq 1 40); do
		off=$((RANDOM * 64 % (2 * 1024 * 1024 - 70000)))
		len=$((RANDOM % 65536 + 1))
		case $((RANDOM % 5)) in
		0) ours+=(-c "write -z $off $len"); theirs+=(-c "write -z $off $len") ;;
		1) # discard leaves the range undefined; vireo reads zeroes there (no backing file)
		   d=$((off / 65536 * 65536))
		   ours+=(-c "discard $d 131072"); theirs+=(-c "write -z $d 131072") ;;
		*) p=$((RANDOM % 255 + 1))
		   ours+=(-c "write -P $p $off $len"); theirs+=(-c "write -P $p $off $len") ;;
		esac
	done
	"$IO" -f qcow2 "${ours[@]}" x.qcow2 || { bad "random $round ($o): io"; continue; }
	qemu-io -f raw "${theirs[@]}" xref.raw >/dev/null
	qemu_clean "random $round ($o)" x.qcow2
	qemu_same "random $round ($o)" x.qcow2 xref.raw
done

# convert -c: compressed clusters (zlib, zstd, extended L2, small and large clusters), also from
# a backing chain; qemu-img must read them as the source and find the image clean
for o in compression_type=zlib compression_type=zstd extended_l2=on cluster_size=4k \
	 cluster_size=2M compat=0.10; do
	rm -f cc.qcow2
	if "$VI" convert -c -O qcow2 -o "$o" src.raw cc.qcow2; then ok "convert -c $o"
	else bad "convert -c $o"; fi
	qemu_clean "convert -c $o" cc.qcow2
	qemu_same "convert -c $o" cc.qcow2 src.raw
	if qemu-img check cc.qcow2 | grep -q ' [1-9][0-9.]*% compressed clusters'; then
		ok "convert -c $o: clusters are compressed"
	else bad "convert -c $o: no compressed clusters"; fi
done
rm -f cc.qcow2
"$VI" convert -c -O qcow2 -o compression_type=zstd top.qcow2 cc.qcow2
qemu_clean "convert -c chain" cc.qcow2
qemu_same "convert -c chain" cc.qcow2 top.qcow2
# incompressible data is stored plainly
head -c 1M /dev/urandom > rnd.raw
rm -f cc.qcow2
"$VI" convert -c -O qcow2 rnd.raw cc.qcow2
qemu_clean "convert -c random data" cc.qcow2
qemu_same "convert -c random data" cc.qcow2 rnd.raw
if "$VI" convert -c -O raw src.raw cc.raw 2>&1 | grep -q "compression is not supported for format .raw."; then
	ok "convert -c -O raw refused"; else bad "convert -c -O raw refused"; fi

# convert -B: only what the source's top layer holds is written over the new backing file
rm -f cb.qcow2 cbc.qcow2
if "$VI" convert -O qcow2 -B mid.qcow2 -F qcow2 top.qcow2 cb.qcow2; then ok "convert -B"
else bad "convert -B"; fi
qemu_clean "convert -B" cb.qcow2
qemu_same "convert -B" cb.qcow2 top.qcow2
if qemu-img info --output=json cb.qcow2 | python3 -c '
import json, sys
i = json.load(sys.stdin)
sys.exit(0 if i.get("backing-filename") == "mid.qcow2" and i.get("backing-filename-format") == "qcow2" else 1)'
then ok "convert -B: backing file recorded"; else bad "convert -B: backing file recorded"; fi
# the 64 KiB clusters the top layer holds (depth 0) are the same in source and target
top_clusters() {
	qemu-img map --output=json "$1" | python3 -c '
import json, sys
print(sorted({c for e in json.load(sys.stdin) if e["depth"] == 0
	      for c in range(e["start"] >> 16, (e["start"] + e["length"] + 65535) >> 16)}))'
}
if [ "$(top_clusters cb.qcow2)" = "$(top_clusters top.qcow2)" ]; then
	ok "convert -B: only the top layer written"
else bad "convert -B: only the top layer written: $(top_clusters cb.qcow2) vs $(top_clusters top.qcow2)"; fi
"$VI" convert -c -O qcow2 -B mid.qcow2 -F qcow2 top.qcow2 cbc.qcow2
qemu_clean "convert -c -B" cbc.qcow2
qemu_same "convert -c -B" cbc.qcow2 top.qcow2

# convert -t / -T cache modes, -W, -m
for t in none writeback writethrough directsync unsafe; do
	rm -f ct.qcow2
	if "$VI" convert -W -t $t -T none -O qcow2 src.raw ct.qcow2; then ok "convert -t $t"
	else bad "convert -t $t"; fi
	qemu_same "convert -t $t" ct.qcow2 src.raw
done

# convert -m N (parallel requests): a 21 MiB source (11 chunks of 2 MiB) with data, zeroes
# written as data, holes and random bytes; every -m gives the same content, and without -W the
# same qcow2 file byte for byte as -m 1 (in-order commits); -m outside 1..16 is refused by name
qemu-img create -q -f raw pm.raw 21M
qemu-io -f raw -c "write -P 0x11 0 3M" -c "write -P 0x22 5M 100k" -c "write -z 6M 2M" \
	-c "write -P 0x44 12M 5M" -c "write -z 13M 64k" -c "write -P 0x55 20M 1M" pm.raw >/dev/null
head -c 1500000 /dev/urandom | dd of=pm.raw bs=4k seek=2000 conv=notrunc status=none
rm -f pm.qcow2 pmb.qcow2
qemu-img convert -O qcow2 pm.raw pm.qcow2
qemu-img create -q -f qcow2 -b pm.raw -F raw pmb.qcow2
qemu-io -f qcow2 -c "write -P 0x66 1M 3M" -c "write -z 12M 1M" -c "discard 18M 64k" pmb.qcow2 >/dev/null
for m in 1 4 16; do
	for src in pm.raw pm.qcow2 pmb.qcow2; do
		for fmt in raw qcow2; do
			rm -f cm.$fmt
			if "$VI" convert -m $m -O $fmt $src cm.$fmt; then ok "convert -m $m $src -> $fmt"
			else bad "convert -m $m $src -> $fmt"; fi
			[ $fmt = qcow2 ] && qemu_clean "convert -m $m $src" cm.qcow2
			if qemu-img compare -q $src cm.$fmt; then ok "convert -m $m $src -> $fmt: compare"
			else bad "convert -m $m $src -> $fmt: compare"; fi
		done
	done
	rm -f cmw.qcow2 cmc.qcow2 cmb.qcow2
	"$VI" convert -m $m -W -O qcow2 pmb.qcow2 cmw.qcow2
	qemu_clean "convert -m $m -W" cmw.qcow2
	qemu_same "convert -m $m -W" cmw.qcow2 pmb.qcow2
	"$VI" convert -m $m -c -O qcow2 pm.raw cmc.qcow2
	qemu_clean "convert -m $m -c" cmc.qcow2
	qemu_same "convert -m $m -c" cmc.qcow2 pm.raw
	"$VI" convert -m $m -O qcow2 -B pm.raw -F raw pmb.qcow2 cmb.qcow2
	qemu_clean "convert -m $m -B" cmb.qcow2
	qemu_same "convert -m $m -B" cmb.qcow2 pmb.qcow2
	qemu-img create -q -f qcow2 cmn.qcow2 21M
	qemu-io -f qcow2 -c "write -P 0x99 0 21M" cmn.qcow2 >/dev/null
	"$VI" convert -m $m -n -O qcow2 pmb.qcow2 cmn.qcow2
	qemu_clean "convert -m $m -n" cmn.qcow2
	qemu_same "convert -m $m -n" cmn.qcow2 pmb.qcow2
	rm -f cmn.qcow2
	for c in "" -c; do
		rm -f cm1.qcow2
		"$VI" convert -m 1 $c -O qcow2 pmb.qcow2 cm1.qcow2
		"$VI" convert -m $m $c -O qcow2 pmb.qcow2 cmm.qcow2
		if cmp -s cm1.qcow2 cmm.qcow2; then ok "convert -m $m $c: the file -m 1 writes"
		else bad "convert -m $m $c: the file -m 1 writes"; fi
		rm -f cmm.qcow2
	done
done
# -S 0: a fully allocated target, as qemu-img makes it
rm -f cm.raw
"$VI" convert -S 0 -O raw pm.raw cm.raw
if cmp -s cm.raw pm.raw && qemu-img map --output=json cm.raw | grep -q '"data": true' &&
   ! qemu-img map --output=json cm.raw | grep -q '"data": false'; then ok "convert -S 0: fully allocated"
else bad "convert -S 0: fully allocated"; fi
for m in 0 17; do
	rm -f cm.raw
	if "$VI" convert -m $m -O raw pm.raw cm.raw 2>&1 | grep -q -- "-m: $m is out of range \[1, 16\]" &&
	   [ ! -e cm.raw ]; then ok "convert -m $m refused"; else bad "convert -m $m refused"; fi
done
# -p progress lines, as qemu-img prints them
if "$VI" compare -p pm.raw pm.qcow2 | tr '\r' '\n' | grep -qx '    (100.00/100%)'; then
	ok "compare -p"; else bad "compare -p"; fi
rm -f cm.raw cm.qcow2 cmw.qcow2 cmc.qcow2 cmb.qcow2 cm1.qcow2 pm.qcow2 pmb.qcow2

# measure: the same figures as qemu-img measure, human and JSON
truncate -s 50M sparse.raw
qemu-io -f raw -c "write -P 1 10M 4k" -c "write -P 2 30M 1M" sparse.raw >/dev/null
measure_same() { # args...
	local a b
	a=$(qemu-img measure "$@" 2>&1) b=$("$VI" measure "$@" 2>&1)
	if [ "$a" = "$b" ]; then ok "measure $*"; else bad "measure $*: '$a' vs '$b'"; fi
	a=$(qemu-img measure --output=json "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin))')
	b=$("$VI" measure --output=json "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin))')
	if [ "$a" = "$b" ]; then ok "measure --output=json $*"; else bad "measure json $*: $a vs $b"; fi
}
measure_same -O qcow2 src.raw
measure_same -O raw src.raw
measure_same -O qcow2 sparse.raw
measure_same -O qcow2 -o cluster_size=4k,refcount_bits=1 sparse.raw
measure_same -O qcow2 top.qcow2
measure_same -O raw top.qcow2
measure_same -O qcow2 -o compat=0.10 top.qcow2
measure_same -O qcow2 cc.qcow2
measure_same -O qcow2 --size 1G
measure_same -O qcow2 --size 1000
measure_same -O qcow2 -o preallocation=metadata --size 64G
measure_same -O qcow2 -o preallocation=full,extended_l2=on,cluster_size=128k --size 10G
measure_same -O qcow2 -o refcount_bits=64,cluster_size=512 --size 3G
measure_same -O raw --size 1000

# amend: compat 1.1 -> 0.10 (zero clusters expanded) -> 1.1, lazy_refcounts on/off
rm -f am.qcow2 amb.qcow2
qemu-img create -q -f qcow2 am.qcow2 8M
qemu-io -f qcow2 -c "write -P 5 0 2M" -c "write -z 512k 128k" -c "write -z -u 1M 64k" \
	-c "write -z 4M 1M" am.qcow2 >/dev/null
qemu-img convert -O raw am.qcow2 amref.raw
amend_check() { # name compat lazy
	qemu_clean "amend $1" am.qcow2
	qemu_same "amend $1" am.qcow2 amref.raw
	if qemu-img info --output=json am.qcow2 | python3 -c '
import json, sys
d = json.load(sys.stdin)["format-specific"]["data"]
sys.exit(0 if d["compat"] == sys.argv[1] and str(d.get("lazy-refcounts", False)).lower() == sys.argv[2] else 1)' "$2" "$3"
	then ok "amend $1: qemu-img info"; else bad "amend $1: qemu-img info"; fi
}
"$VI" amend -o compat=0.10 am.qcow2 && amend_check "compat=0.10" 0.10 false
"$VI" amend -o compat=1.1,lazy_refcounts=on am.qcow2 && amend_check "compat=1.1,lazy_refcounts=on" 1.1 true
"$VI" amend -o lazy_refcounts=off am.qcow2 && amend_check "lazy_refcounts=off" 1.1 false
# a zero cluster over a backing file stays zero after the downgrade
qemu-img create -q -f qcow2 -b amref.raw -F raw amb.qcow2
qemu-io -f qcow2 -c "write -z 0 192k" amb.qcow2 >/dev/null
qemu-img convert -O raw amb.qcow2 ambref.raw
"$VI" amend -o compat=0.10 amb.qcow2
qemu_clean "amend over backing" amb.qcow2
qemu_same "amend over backing" amb.qcow2 ambref.raw
for o in cluster_size=4k refcount_bits=8 extended_l2=on encrypt.format=luks; do
	if "$VI" amend -o $o am.qcow2 2>&1 | grep -q "'${o%%=*}'"; then ok "amend $o refused by name"
	else bad "amend $o refused by name"; fi
done
rm -f amz.qcow2
qemu-img create -q -f qcow2 -o compression_type=zstd amz.qcow2 1M
if "$VI" amend -o compat=0.10 amz.qcow2 2>&1 | grep -q zstd; then ok "amend: zstd image stays 1.1"
else bad "amend: zstd image stays 1.1"; fi
# amend -o compression_type (qemu-img takes it at create only): the compressed clusters are
# stored again in the new type, qemu-img reads the same bytes and finds them still compressed
for from in zlib zstd; do
	to=zstd; [ $from = zstd ] && to=zlib
	rm -f amc.qcow2
	qemu-img convert -c -O qcow2 -o compression_type=$from src.raw amc.qcow2
	qemu-io -c "write -P 0x77 64k 4k" amc.qcow2 >/dev/null
	qemu-img convert -O raw amc.qcow2 amcref.raw
	if "$VI" amend -o compression_type=$to amc.qcow2 &&
	   qemu-img info amc.qcow2 | grep -q "compression type: $to"; then
		ok "amend compression_type $from -> $to"
	else bad "amend compression_type $from -> $to"; fi
	qemu_clean "amend compression_type $from -> $to" amc.qcow2
	qemu_same "amend compression_type $from -> $to" amc.qcow2 amcref.raw
	if qemu-img check amc.qcow2 | grep -q ' [1-9][0-9.]*% compressed clusters'; then
		ok "amend compression_type $from -> $to: still compressed"
	else bad "amend compression_type $from -> $to: still compressed"; fi
done
"$VI" convert -c -O qcow2 -o compression_type=zstd amc.qcow2 amz2.qcow2
if "$VI" amend -o compat=0.10,compression_type=zlib amz2.qcow2 &&
   qemu-img info amz2.qcow2 | grep -q "compat: 0.10"; then ok "amend zstd -> zlib, compat=0.10"
else bad "amend zstd -> zlib, compat=0.10"; fi
qemu_same "amend zstd -> zlib, compat=0.10" amz2.qcow2 amcref.raw
qemu-img create -q -f qcow2 -o compat=0.10 amv2.qcow2 1M
if "$VI" amend -o compression_type=zstd amv2.qcow2 2>&1 | grep -q "needs compat=1.1"; then
	ok "amend compression_type=zstd of a v2 image refused"
else bad "amend compression_type=zstd of a v2 image refused"; fi
if "$VI" amend -o compat=1.1,compression_type=zstd amv2.qcow2 &&
   qemu-img info amv2.qcow2 | grep -q "compression type: zstd"; then
	ok "amend compat=1.1,compression_type=zstd"
else bad "amend compat=1.1,compression_type=zstd"; fi
qemu_clean "amend compat=1.1,compression_type=zstd" amv2.qcow2
qemu-img snapshot -c s amc.qcow2
if "$VI" amend -o compression_type=zstd amc.qcow2 2>&1 | grep -q "snapshot 's' holds compressed"
then ok "amend compression_type refused under a snapshot with compressed clusters"
else bad "amend compression_type refused under a snapshot with compressed clusters"; fi

# dd: the same bytes as qemu-img dd (where their semantics agree) and as dd(1) for skip + count
head -c 1M /dev/urandom >ddsrc.raw && truncate -s 3M ddsrc.raw
qemu-img convert -O qcow2 ddsrc.raw ddsrc.qcow2
rm -f dd1.raw dd1q.raw dd2.qcow2 dd2q.qcow2
"$VI" dd if=ddsrc.qcow2 of=dd1.raw bs=4k skip=3 && qemu-img dd -f qcow2 if=ddsrc.qcow2 of=dd1q.raw bs=4k skip=3
if qemu-img compare -q dd1.raw dd1q.raw; then ok "dd qcow2 -> raw, skip: same as qemu-img dd"
else bad "dd qcow2 -> raw, skip"; fi
"$VI" dd -O qcow2 if=ddsrc.raw of=dd2.qcow2 bs=64k count=20 &&
	qemu-img dd -O qcow2 if=ddsrc.raw of=dd2q.qcow2 bs=64k count=20
qemu_clean "dd raw -> qcow2" dd2.qcow2
if qemu-img compare -q -s dd2.qcow2 dd2q.qcow2; then ok "dd raw -> qcow2, count: same as qemu-img dd"
else bad "dd raw -> qcow2, count"; fi
"$VI" dd if=ddsrc.qcow2 of=dd3.raw bs=1k skip=5 count=7
if cmp -s dd3.raw <(dd if=ddsrc.raw bs=1k skip=5 count=7 2>/dev/null); then
	ok "dd skip + count: dd(1)'s bytes"; else bad "dd skip + count"; fi
# skip past the end: as dd(1) and qemu-img dd, a warning and an empty output, exit 0
if "$VI" dd if=ddsrc.raw of=ddpast.raw skip=7000 2>&1 | grep -q "past its end" &&
   "$VI" dd if=ddsrc.raw of=ddpast.raw skip=7000 2>/dev/null && [ ! -s ddpast.raw ]; then
	ok "dd skip past the end: warned, empty output"; else bad "dd skip past the end"; fi
for a in "bs=0|bs=0" "foo=1|'foo'" "count=1k|count" "|if=INPUT and of=OUTPUT"; do
	args=${a%%|*} want=${a#*|}
	if "$VI" dd if=ddsrc.raw ${args:+of=ddbad.raw} $args 2>&1 | grep -q -- "$want" &&
	   ! "$VI" dd if=ddsrc.raw ${args:+of=ddbad.raw} $args 2>/dev/null; then ok "dd ${args:-without of=} refused"
	else bad "dd ${args:-without of=} refused naming '$want'"; fi
done

tap_end
