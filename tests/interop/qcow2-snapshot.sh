#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# qcow2 internal snapshots against qemu-img, both ways (issue 18):
#  - snapshots made by vireo-img are listed by qemu-img (snapshot -l, info human and JSON the
#    same text), applied and deleted by it; those made by qemu-img are listed, applied and
#    deleted by vireo-img; after every step `qemu-img check` and `vireo-img check` are clean and
#    qemu-io reads the content each snapshot held;
#  - apply across a size change both ways, shrinking an image that has snapshots, compressed
#    clusters and extended L2 entries under snapshots, a compat=0.10 image, deleting the last
#    snapshot (the table goes), duplicate names (delete takes the first, apply an ID first),
#    amend to compat=0.10 with every snapshot's content kept (qemu-img 10 zeroes a preallocated
#    zero cluster a snapshot still reads as data: we give the active table a fresh one);
#  - convert -l in every form qemu-img takes gives qemu-img's bytes;
#  - refusals: 1-bit refcounts (no room for a second reference), an external data file, raw,
#    and hostile snapshot tables (an entry past the end of the file, extra data over 1 KiB, a
#    misaligned or out-of-file L1 table, a snapshot L2 entry with reserved bits): a message
#    naming what is wrong, exit status 1, never a signal, the image unchanged.
# usage: qcow2-snapshot.sh VIREO_IMG        (exit 77 when qemu-img / qemu-io / python3 are missing)
set -u
VI=$(realpath "$1")
. "$(dirname "$(realpath "$0")")/tap.sh"
tap_start qcow2-snapshot qemu-img qemu-io python3

clean() { # name image: both checks clean
	if qemu-img check "$2" >check.out 2>&1 && "$VI" check "$2" >>check.out 2>&1; then
		ok "$1: checks clean"
	else
		bad "$1: checks"; sed 's/^/#   /' check.out
	fi
}

reads() { # name image qemu-io-read-commands...: qemu-io verifies each pattern
	local args=()
	for c in "${@:3}"; do args+=(-c "read -P $c"); done
	if qemu-io -r "${args[@]}" "$2" >reads.out 2>&1 && ! grep -q "Pattern verification failed" reads.out
	then ok "$1: content"; else bad "$1: content"; sed 's/^/#   /' reads.out | head -5; fi
}

same_text() { # name command-args...: vireo-img and qemu-img print the same
	"$VI" "${@:2}" >v.out 2>&1; local vrc=$?
	qemu-img "${@:2}" >q.out 2>&1; local qrc=$?
	if [ $vrc = $qrc ] && cmp -s v.out q.out; then ok "$1"
	else bad "$1 (exit $vrc / $qrc)"; diff v.out q.out | head -10 | sed 's/^/#   /'; fi
}

refused() { # name pattern command...: exit 1 with a message matching pattern
	"${@:3}" >ref.out 2>&1
	local rc=$?
	if [ $rc = 1 ] && grep -q -- "$2" ref.out; then ok "$1: $(head -c 300 ref.out)"
	else bad "$1 (exit $rc)"; sed 's/^/#   /' ref.out | head -5; fi
}

# --- vireo makes them, qemu-img reads, applies and deletes them
"$VI" create -q -f qcow2 a.qcow2 4M
qemu-io -c 'write -P 1 0 1M' -c 'write -P 5 3M 64k' a.qcow2 >/dev/null
run "vireo-img snapshot -c one" "$VI" snapshot -c one a.qcow2
clean "after create" a.qcow2
qemu-io -c 'write -P 2 0 64k' -c 'write -P 3 2M 64k' -c 'write -z 3M 64k' a.qcow2 >/dev/null
run "vireo-img snapshot -c two" "$VI" snapshot -c two a.qcow2
qemu-io -c 'write -P 4 64k 64k' a.qcow2 >/dev/null
clean "two snapshots, written over" a.qcow2
same_text "snapshot -l" snapshot -l a.qcow2
same_text "info" info a.qcow2
"$VI" info --output=json a.qcow2 >v.json
qemu-img info --output=json a.qcow2 >q.json
if python3 -c 'import json, sys; sys.exit(json.load(open("v.json")) != json.load(open("q.json")))'
then ok "info --output=json"; else bad "info --output=json"; diff v.json q.json | head | sed 's/^/#   /'; fi
run "qemu-img snapshot -a one" qemu-img snapshot -a one a.qcow2
reads "one applied by qemu-img" a.qcow2 "1 0 1M" "0 2M 64k" "5 3M 64k"
clean "one applied by qemu-img" a.qcow2
run "qemu-img snapshot -a two" qemu-img snapshot -a two a.qcow2
reads "two applied by qemu-img" a.qcow2 "2 0 64k" "1 64k 960k" "3 2M 64k" "0 3M 64k"
run "qemu-img snapshot -d one" qemu-img snapshot -d one a.qcow2
clean "one deleted by qemu-img" a.qcow2
reads "one deleted: the disk as it was" a.qcow2 "2 0 64k" "1 64k 960k" "3 2M 64k" "0 3M 64k"

# --- qemu-img makes them, vireo lists, applies and deletes them
qemu-img create -q -f qcow2 b.qcow2 4M
qemu-io -c 'write -P 0x11 0 256k' b.qcow2 >/dev/null
qemu-img snapshot -c s1 b.qcow2
qemu-io -c 'write -P 0x22 128k 256k' -c 'write -P 0x23 3M 4k' b.qcow2 >/dev/null
qemu-img snapshot -c s2 b.qcow2
qemu-io -c 'write -P 0x33 0 64k' b.qcow2 >/dev/null
same_text "qemu-img's snapshots: snapshot -l" snapshot -l b.qcow2
run "vireo-img snapshot -a s1" "$VI" snapshot -a s1 b.qcow2
clean "s1 applied by vireo" b.qcow2
reads "s1 applied by vireo" b.qcow2 "0x11 0 256k" "0 256k 3840k"
qemu-io -c 'write -P 0x44 0 4k' b.qcow2 >/dev/null
clean "s1 applied, written" b.qcow2
run "vireo-img snapshot -a 2 (an ID)" "$VI" snapshot -a 2 b.qcow2
reads "s2 applied by its ID" b.qcow2 "0x11 0 128k" "0x22 128k 256k" "0x23 3M 4k"
run "vireo-img snapshot -d s1" "$VI" snapshot -d s1 b.qcow2
clean "s1 deleted by vireo" b.qcow2
run "vireo-img snapshot -d s2" "$VI" snapshot -d s2 b.qcow2
clean "every snapshot deleted" b.qcow2
if [ -z "$(qemu-img snapshot -l b.qcow2)" ] &&
   [ "$(od -An -tx1 -j60 -N12 b.qcow2 | tr -d ' \n')" = 000000000000000000000000 ]
then ok "no snapshot left: no table in the header"
else bad "no snapshot left"; fi
reads "s2's content stays the disk's" b.qcow2 "0x11 0 128k" "0x22 128k 256k" "0x23 3M 4k"
run "vireo-img snapshot -c again after deleting all" "$VI" snapshot -c again b.qcow2
clean "a new one after deleting all" b.qcow2

# --- apply across sizes, shrink with snapshots
"$VI" create -q -f qcow2 g.qcow2 4M
qemu-io -c 'write -P 1 0 4M' g.qcow2 >/dev/null
"$VI" snapshot -c small g.qcow2
"$VI" resize g.qcow2 8M >/dev/null
qemu-io -c 'write -P 2 0 8M' g.qcow2 >/dev/null
"$VI" snapshot -c big g.qcow2
run "apply a smaller snapshot" "$VI" snapshot -a small g.qcow2
if [ "$(qemu-img info --output=json g.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" = 4194304 ]
then ok "the disk takes the snapshot's size"; else bad "the disk takes the snapshot's size"; fi
reads "smaller snapshot" g.qcow2 "1 0 4M"
clean "smaller snapshot applied" g.qcow2
run "apply a larger snapshot" "$VI" snapshot -a big g.qcow2
reads "larger snapshot" g.qcow2 "2 0 8M"
run "shrink with snapshots" "$VI" resize --shrink g.qcow2 3M
clean "shrunk with snapshots" g.qcow2
run "qemu-img applies a snapshot after the shrink" qemu-img snapshot -a small g.qcow2
reads "the snapshot kept its clusters" g.qcow2 "1 0 4M"
clean "applied after the shrink" g.qcow2

# --- compressed clusters, extended L2, version 2, 64-bit refcounts
for o in "" extended_l2=on compat=0.10 refcount_bits=64 cluster_size=4k; do
	name=${o:-default}
	qemu-img create -q -f qcow2 ${o:+-o $o} src.qcow2 2M
	qemu-io -c 'write -P 7 0 1M' -c 'write -P 8 1536k 32k' src.qcow2 >/dev/null
	"$VI" convert -c -O qcow2 ${o:+-o $o} src.qcow2 c.qcow2
	run "$name compressed: create" "$VI" snapshot -c z c.qcow2
	qemu-io -c 'write -P 9 16k 8k' -c 'write -z 512k 64k' c.qcow2 >/dev/null
	clean "$name compressed: written over" c.qcow2
	run "$name compressed: apply" "$VI" snapshot -a z c.qcow2
	reads "$name compressed: applied" c.qcow2 "7 0 1M" "8 1536k 32k"
	run "$name compressed: delete" "$VI" snapshot -d z c.qcow2
	clean "$name compressed: deleted" c.qcow2
done

# --- compat=0.10 downgrade keeps every snapshot's content: zero clusters (plain, over a backing
# file, and preallocated ones a snapshot shares as data) expanded in every L1 table
qemu-img create -q -f qcow2 zb.qcow2 4M
qemu-io -c 'write -P 7 0 4M' zb.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b zb.qcow2 -F qcow2 z.qcow2 4M
qemu-io -c 'write -P 1 0 1M' -c 'write -z 1M 128k' -c 'write -z 0 64k' z.qcow2 >/dev/null
"$VI" snapshot -c s1 z.qcow2
qemu-io -c 'write -z 2M 64k' -c 'write -P 3 64k 64k' z.qcow2 >/dev/null
"$VI" snapshot -c s2 z.qcow2
qemu-io -c 'write -z 64k 64k' z.qcow2 >/dev/null
for s in s1 s2; do qemu-img convert -l $s -O raw z.qcow2 before-$s.raw; done
qemu-img convert -O raw z.qcow2 before.raw
run "amend -o compat=0.10 with snapshots" "$VI" amend -o compat=0.10 z.qcow2
clean "downgraded with snapshots" z.qcow2
for s in s1 s2; do
	qemu-img convert -l $s -O raw z.qcow2 after.raw
	if cmp -s before-$s.raw after.raw; then ok "downgrade: $s unchanged"
	else bad "downgrade: $s unchanged"; fi
done
qemu-img convert -O raw z.qcow2 after.raw
if cmp -s before.raw after.raw; then ok "downgrade: the disk unchanged"
else bad "downgrade: the disk unchanged"; fi
"$VI" create -q -f qcow2 zs.qcow2 1M
"$VI" snapshot -c small zs.qcow2
"$VI" resize zs.qcow2 2M >/dev/null
refused "downgrade with a snapshot of another size" "Internal snapshots prevent downgrade" \
	"$VI" amend -o compat=0.10 zs.qcow2

# --- duplicate names
"$VI" create -q -f qcow2 d.qcow2 1M
qemu-io -c 'write -P 1 0 64k' d.qcow2 >/dev/null
"$VI" snapshot -c dup d.qcow2
qemu-io -c 'write -P 2 0 64k' d.qcow2 >/dev/null
"$VI" snapshot -c dup d.qcow2
"$VI" snapshot -c 1 d.qcow2
run "delete takes the first of two names" "$VI" snapshot -d dup d.qcow2
if qemu-img snapshot -l d.qcow2 | grep -q '^2 *dup'; then ok "the second stays"
else bad "the second stays"; fi
run "apply '1' (no such ID any more: the name)" "$VI" snapshot -a 1 d.qcow2
reads "'1' applied by name" d.qcow2 "2 0 64k"
clean "duplicate names" d.qcow2

# --- convert -l
qemu-img create -q -f qcow2 cv.qcow2 1M
qemu-io -c 'write -P 1 0 1M' cv.qcow2 >/dev/null
qemu-img snapshot -c first cv.qcow2
qemu-io -c 'write -P 2 0 512k' cv.qcow2 >/dev/null
qemu-img snapshot -c second cv.qcow2
qemu-io -c 'write -P 3 0 1M' cv.qcow2 >/dev/null
for l in snapshot.name=first first 1 snapshot.id=1 snapshot.id=2,snapshot.name=second second; do
	rm -f v.raw q.raw
	"$VI" convert -l "$l" -O raw cv.qcow2 v.raw
	qemu-img convert -l "$l" -O raw cv.qcow2 q.raw
	if cmp -s v.raw q.raw; then ok "convert -l $l"; else bad "convert -l $l"; fi
done
"$VI" convert -l second -O qcow2 cv.qcow2 v.qcow2
clean "convert -l into qcow2" v.qcow2
refused "convert -l of no snapshot" "Can't find snapshot" \
	"$VI" convert -l snapshot.id=1,snapshot.name=second -O raw cv.qcow2 v.raw
refused "convert -l with an unknown key" "snapshot.foo" \
	"$VI" convert -l snapshot.foo=1 -O raw cv.qcow2 v.raw

# --- refusals
qemu-img create -q -f qcow2 -o refcount_bits=1 r1.qcow2 1M
qemu-io -c 'write -P 1 0 64k' r1.qcow2 >/dev/null
cp r1.qcow2 r1.orig
refused "1-bit refcounts" "overflow" "$VI" snapshot -c x r1.qcow2
if cmp -s r1.qcow2 r1.orig; then ok "1-bit refcounts: image unchanged"
else bad "1-bit refcounts: image unchanged"; fi
qemu-img create -q -f qcow2 -o data_file=df.data df.qcow2 1M
refused "external data file" "external data file" "$VI" snapshot -c x df.qcow2
qemu-img create -q -f raw r.raw 1M
refused "raw" "does not support internal snapshots" "$VI" snapshot -c x -f raw r.raw
refused "apply of no snapshot" "no snapshot with the ID or name 'nope'" \
	"$VI" snapshot -a nope a.qcow2
refused "delete of no snapshot" "no snapshot with the name 'nope'" "$VI" snapshot -d nope a.qcow2
refused "-l with -c" "Cannot mix" "$VI" snapshot -l -c x a.qcow2

# hostile tables: each a copy of h.qcow2 (one snapshot) with one field broken
"$VI" create -q -f qcow2 h.qcow2 1M
qemu-io -c 'write -P 1 0 128k' h.qcow2 >/dev/null
"$VI" snapshot -c s h.qcow2
hostile() { # name pattern python-statement (f: the file, t: the table's offset, l1: its L1 offset)
	cp h.qcow2 x.qcow2
	python3 - x.qcow2 <<EOF
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(64); t = struct.unpack(">Q", f.read(8))[0]
f.seek(t); l1 = struct.unpack(">Q", f.read(8))[0]
def put(off, fmt, v): f.seek(off); f.write(struct.pack(fmt, v))
$3
EOF
	local rc
	for v in "snapshot -l" "snapshot -a s" "snapshot -d s" "snapshot -c t" "info"; do
		"$VI" $v x.qcow2 >ref.out 2>&1
		rc=$?
		if [ $rc -ge 128 ]; then bad "$1: vireo-img $v: signal $((rc - 128))"; return; fi
	done
	refused "$1" "$2" "$VI" snapshot -a s x.qcow2
}
hostile "table past the end of the file" "past the end of the file" "put(64, '>Q', 1 << 40)"
hostile "extra data over 1 KiB" "extra data, more than 1024" "put(t + 36, '>I', 4096)"
hostile "misaligned snapshot L1" "not a cluster boundary" "put(t, '>Q', l1 + 512)"
hostile "snapshot L1 past the end" "not inside the file" "put(t, '>Q', 1 << 40)"
hostile "snapshot L1 entry with reserved bits" "reserved bits" \
	"f.seek(l1); e = struct.unpack('>Q', f.read(8))[0]; put(l1, '>Q', e | 1)"
hostile "snapshot L2 entry with reserved bits" "reserved bits" \
	"f.seek(l1); l2 = struct.unpack('>Q', f.read(8))[0] & ((1 << 56) - 512); f.seek(l2); e = struct.unpack('>Q', f.read(8))[0]; put(l2, '>Q', e | 2)"
hostile "2^32 snapshots" "nb_snapshots" "put(60, '>I', 0xffffffff)"
cp h.qcow2 x.qcow2
python3 - x.qcow2 <<'EOF'
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(64); t = struct.unpack(">Q", f.read(8))[0]
f.seek(t); l1 = struct.unpack(">Q", f.read(8))[0]
f.seek(l1); l2 = struct.unpack(">Q", f.read(8))[0] & ((1 << 56) - 512)
f.seek(l2, 0); e = struct.unpack(">Q", f.read(8))[0]
f.seek(l2); f.write(struct.pack(">Q", e | 2))
EOF
cp x.qcow2 x.orig
"$VI" snapshot -d s x.qcow2 >/dev/null 2>&1
if cmp -s x.qcow2 x.orig; then ok "a refused delete changes nothing"
else bad "a refused delete changes nothing"; fi

tap_end
