#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# qcow2 persistent dirty bitmaps against qemu-img, both ways (issue 18):
#  - bitmaps added by vireo-img (default and -g granularity, enabled and --disable) show in
#    qemu-img info as in vireo-img info (human text and JSON the same); writes through vireo's
#    block layer (img_io) set exactly the granules written in the enabled ones, as qemu-nbd +
#    nbdinfo read them (qemu:dirty-bitmap:NAME), and writes by qemu-io add to them;
#  - bitmaps made and filled by qemu-img/qemu-io come through vireo's load and store unchanged,
#    and vireo-img --merge / --clear / --enable / --disable / --remove and -b source give the bits
#    qemu-img's own bitmap command gives on a copy; qemu-img check clean after each step;
#  - bitmaps left in use (img_io killed with SIGKILL while writing) are shown in use by both
#    tools, refused by --enable, reported by check and dropped by check -r all (check clean, a
#    bitmap added since kept); resize keeps the bitmaps covering the new size; removing the last one
#    drops the extension; a stale extension (autoclear bit clear) is ignored and dropped;
#  - hostile bitmap directories and tables: a message naming the field, exit 1, never a signal.
# usage: qcow2-bitmap.sh VIREO_IMG IMG_IO  (exit 77 when qemu-img/qemu-io/qemu-nbd/nbdinfo/python3
# are missing)
set -u
VI=$(realpath "$1")
IO=$(realpath "$2")
. "$(dirname "$(realpath "$0")")/tap.sh"
tap_start qcow2-bitmap qemu-img qemu-io qemu-nbd nbdinfo python3

clean() { # name image: both checks clean
	if qemu-img check "$2" >check.out 2>&1 && "$VI" check "$2" >>check.out 2>&1; then
		ok "$1: checks clean"
	else
		bad "$1: checks"; sed 's/^/#   /' check.out
	fi
}
refused() { # name pattern command...: exit 1 with a message matching pattern
	"${@:3}" >ref.out 2>&1
	local rc=$?
	if [ $rc = 1 ] && grep -q -- "$2" ref.out; then ok "$1: $(head -c 200 ref.out)"
	else bad "$1 (exit $rc)"; sed 's/^/#   /' ref.out | head -5; fi
}

# dirty IMAGE BITMAP: the bitmap's dirty ranges as qemu reads them, "START LENGTH" lines
dirty() {
	local sock=$T/nbd.sock pid
	rm -f "$sock"
	qemu-nbd -t -r -f qcow2 -B "$2" -k "$sock" "$1" 2>nbd.err &
	pid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
	nbdinfo --map="qemu:dirty-bitmap:$2" "nbd+unix:///?socket=$sock" 2>>nbd.err |
		awk '$3 == 1 { print $1, $2 }'
	kill $pid 2>/dev/null
	wait $pid 2>/dev/null
}
bits() { # name image bitmap "START LENGTH;..." (expected dirty ranges, merged)
	local got want
	got=$(dirty "$2" "$3" | tr '\n' ';')
	want=$4
	if [ "$got" = "$want" ]; then ok "$1: bits"
	else bad "$1: bits: got '$got', want '$want'"; sed 's/^/#   /' nbd.err | head -3; fi
}
same_info() { # name image: vireo-img info (human, JSON) as qemu-img's
	"$VI" info "$2" >v.txt 2>&1; qemu-img info "$2" >q.txt 2>&1
	if cmp -s v.txt q.txt; then ok "$1: info"; else bad "$1: info"; diff v.txt q.txt | head | sed 's/^/#   /'; fi
	"$VI" info --output=json "$2" >v.json; qemu-img info --output=json "$2" >q.json
	if python3 -c 'import json, sys; sys.exit(json.load(open("v.json")) != json.load(open("q.json")))'
	then ok "$1: info --output=json"; else bad "$1: info --output=json"; fi
}

# --- vireo adds, vireo and qemu write, qemu reads
"$VI" create -q -f qcow2 a.qcow2 4M
run "--add" "$VI" bitmap --add a.qcow2 b0
run "--add -g 512k --disable" "$VI" bitmap --add -g 512k --disable a.qcow2 b1
same_info "two bitmaps" a.qcow2
clean "two bitmaps" a.qcow2
"$IO" a.qcow2 -c 'write -P 1 0 4k' -c 'write -P 2 1M 70k' -c 'write -z 3M 64k' >/dev/null
bits "vireo's writes" a.qcow2 b0 "0 65536;1048576 131072;3145728 65536;"
bits "a disabled bitmap records nothing" a.qcow2 b1 ""
clean "after vireo's writes" a.qcow2
qemu-io -c 'write -P 3 2M 4k' a.qcow2 >/dev/null
bits "qemu's writes into vireo's bitmap" a.qcow2 b0 "0 65536;1048576 131072;2097152 65536;3145728 65536;"
run "--enable" "$VI" bitmap --enable a.qcow2 b1
"$IO" a.qcow2 -c 'write -P 4 3900k 8k' >/dev/null
bits "enabled: records" a.qcow2 b1 "3670016 524288;"
same_info "enabled" a.qcow2

# --- qemu adds and fills, vireo loads and stores
qemu-img create -q -f qcow2 b.qcow2 8M
qemu-img bitmap --add b.qcow2 q0
qemu-img bitmap --add -g 1M b.qcow2 q1
qemu-io -c 'write -P 1 0 1k' -c 'write -P 1 5M 1M' b.qcow2 >/dev/null
qemu-img bitmap --disable b.qcow2 q1
run "vireo loads and stores qemu's bitmaps" "$VI" bitmap --add b.qcow2 v0
bits "qemu's bitmap after vireo's store" b.qcow2 q0 "0 65536;5242880 1048576;"
bits "qemu's 1M bitmap after vireo's store" b.qcow2 q1 "0 1048576;5242880 1048576;"
clean "qemu's bitmaps through vireo" b.qcow2
same_info "qemu's bitmaps through vireo" b.qcow2
cp b.qcow2 bq.qcow2
run "--merge q1 into v0" "$VI" bitmap --merge q1 b.qcow2 v0
qemu-img bitmap --merge q1 bq.qcow2 v0
bits "merged by vireo" b.qcow2 v0 "$(dirty bq.qcow2 v0 | tr '\n' ';')"
run "--clear --disable" "$VI" bitmap --clear --disable b.qcow2 q0
bits "cleared" b.qcow2 q0 ""
"$IO" b.qcow2 -c 'write -P 5 0 4k' >/dev/null
bits "disabled after --clear --disable" b.qcow2 q0 ""
"$VI" create -q -f qcow2 src.qcow2 8M
"$VI" bitmap --add src.qcow2 s
"$IO" src.qcow2 -c 'write -P 6 7M 4k' >/dev/null
run "--merge from another image (-b -F)" "$VI" bitmap --merge s -b src.qcow2 -F qcow2 b.qcow2 q0
bits "merged from another image" b.qcow2 q0 "7340032 65536;"
clean "merges" b.qcow2
run "--remove" "$VI" bitmap --remove b.qcow2 q1
if ! qemu-img info b.qcow2 | grep -q "name: q1"; then ok "removed"; else bad "removed"; fi
clean "removed" b.qcow2
"$VI" bitmap --remove b.qcow2 q0 && "$VI" bitmap --remove b.qcow2 v0
if ! qemu-img info b.qcow2 | grep -q bitmaps &&
   [ "$(od -An -tx1 -j95 -N1 b.qcow2 | tr -d ' ')" = 00 ]; then
	ok "the last one removed: no extension, autoclear bit clear"
else bad "the last one removed: no extension, autoclear bit clear"; fi
clean "no bitmaps left" b.qcow2

# --- refusals of the tool
refused "--add twice" "Bitmap already exists: b0" "$VI" bitmap --add a.qcow2 b0
refused "-g without --add" "granularity only supported with --add" \
	"$VI" bitmap --enable -g 64k a.qcow2 b0
refused "no operation" "Need at least one of" "$VI" bitmap a.qcow2 b0
refused "-b without --merge" "only supported with --merge" "$VI" bitmap --clear -b x a.qcow2 b0
refused "--remove of no bitmap" "Dirty bitmap 'nope' not found" "$VI" bitmap --remove a.qcow2 nope
refused "bad granularity" "Granularity" "$VI" bitmap --add -g 1000 a.qcow2 g
qemu-img create -q -f raw r.raw 1M
refused "raw" "persistent bitmaps" "$VI" bitmap --add -f raw r.raw b
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 1M
refused "compat=0.10" "v2" "$VI" bitmap --add v2.qcow2 b

# --- resize keeps them covering the disk
run "resize with bitmaps" "$VI" resize a.qcow2 8M
"$IO" a.qcow2 -c 'write -P 7 7M 4k' >/dev/null
bits "a write past the old end" a.qcow2 b0 "0 65536;1048576 131072;2097152 65536;3145728 65536;3932160 131072;7340032 65536;"
clean "resized with bitmaps" a.qcow2

# --- in use: a writer killed; both tools show it, check -r all drops it
"$VI" create -q -f qcow2 k.qcow2 4M
"$VI" bitmap --add k.qcow2 live
"$VI" bitmap --add --disable k.qcow2 kept
"$IO" -l k.qcow2 -c 'write -P 1 0 64k' -c 'flush' -c 'sleep 20000' >io.log 2>&1 &
pid=$!
for _ in $(seq 200); do grep -q '^@F' io.log && break; sleep 0.05; done
kill -9 $pid
wait $pid 2>/dev/null
if qemu-img info k.qcow2 | grep -A3 'in-use' | grep -q 'name: live' &&
   "$VI" info k.qcow2 | grep -A3 'in-use' | grep -q 'name: live'; then
	ok "killed: both tools show the bitmap in use"
else bad "killed: both tools show the bitmap in use"; qemu-img info k.qcow2 | sed 's/^/#   /'; fi
if qemu-img info k.qcow2 | grep -A3 'in-use' | grep -q 'name: kept'; then
	ok "killed: a disabled bitmap is in use too (it could have been changed meanwhile)"
else bad "killed: a disabled bitmap is in use too"; fi
refused "--enable of an in-use bitmap" "inconsistent" "$VI" bitmap --enable k.qcow2 live
"$VI" check k.qcow2 >chk.out 2>&1
if grep -q "bitmap 'live'.*inconsistent" chk.out; then ok "check reports it"
else bad "check reports it"; sed 's/^/#   /' chk.out; fi
"$VI" bitmap --add k.qcow2 later
run "check -r all" "$VI" check -r all k.qcow2
if ! qemu-img info k.qcow2 | grep -q 'name: live' && ! qemu-img info k.qcow2 | grep -q 'name: kept' &&
   qemu-img info k.qcow2 | grep -q 'name: later'
then ok "check -r all dropped the in-use bitmaps, kept the other"
else bad "check -r all dropped the in-use bitmaps, kept the other"; fi
clean "after check -r all" k.qcow2

# --- a stale extension: a program without bitmap support cleared autoclear bit 0
cp a.qcow2 s.qcow2
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(95); f.write(bytes([0]))' s.qcow2
run "a stale extension is ignored when reading" "$VI" info s.qcow2
run "and dropped when writing" "$VI" bitmap --add s.qcow2 fresh
if "$VI" info s.qcow2 | grep -q 'name: b0'; then bad "stale bitmaps gone"
else ok "stale bitmaps gone"; fi
run "their clusters are leaks check -r leaks frees" qemu-img check -r leaks s.qcow2
clean "stale extension dropped" s.qcow2

# --- hostile directories and tables, each on a copy of h.qcow2 (one bitmap, b, with data)
"$VI" create -q -f qcow2 h.qcow2 1M
"$VI" bitmap --add h.qcow2 b
"$IO" h.qcow2 -c 'write -P 1 0 4k' >/dev/null
hostile() { # name pattern python-statement (d: the directory's offset, t: b's table's)
	cp h.qcow2 x.qcow2
	python3 - x.qcow2 <<EOF
import struct, sys
f = open(sys.argv[1], "r+b")
data = open(sys.argv[1], "rb").read()
off = struct.unpack(">I", data[100:104])[0]
while True:
    typ, ln = struct.unpack(">II", data[off:off + 8])
    if typ == 0x23852875:
        ext = off + 8
        d = struct.unpack(">Q", data[ext + 16:ext + 24])[0]
        break
    off += 8 + ((ln + 7) & ~7)
t = struct.unpack(">Q", data[d:d + 8])[0]
def put(o, fmt, v): f.seek(o); f.write(struct.pack(fmt, v))
$3
EOF
	local rc v
	for v in "info" "check" "bitmap --clear" "bitmap --remove"; do
		"$VI" $v x.qcow2 $( [ "${v#bitmap}" != "$v" ] && echo b) >/dev/null 2>&1
		rc=$?
		if [ $rc -ge 128 ]; then bad "$1: vireo-img $v: signal $((rc - 128))"; return; fi
	done
	refused "$1" "$2" "$VI" info x.qcow2
}
hostile "bitmap type 2" "type 2" "put(d + 16, 'B', 2)"
hostile "reserved flag bits" "reserved flag bits" "put(d + 12, '>I', 1 << 9)"
hostile "granularity bits 40" "granularity bits 40" "put(d + 17, 'B', 40)"
hostile "misaligned table" "not a cluster boundary" "put(d, '>Q', t + 512)"
hostile "table size" "needs 1" "put(d + 8, '>I', 9)"
hostile "empty name" "name is 0 bytes" "put(d + 18, '>H', 0)"
hostile "entry past the directory" "past the" "put(d + 20, '>I', 4096)"
hostile "table past the end of the file" "past the end of the file" "put(d, '>Q', 1 << 40)"
hostile "table entry reserved bits" "reserved" \
	"e = struct.unpack('>Q', data[t:t + 8])[0]; put(t, '>Q', e | (1 << 60))"
hostile "data cluster on the refcount table" "refcount table" \
	"put(t, '>Q', struct.unpack('>Q', data[48:56])[0])"

tap_end
