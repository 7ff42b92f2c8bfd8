#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# VHDX against qemu-img and qemu-io, both ways (issue 20):
#  - images qemu-img made (dynamic and fixed, 1 MiB and default blocks, a 2 MiB log,
#    block_state_zero off), filled by qemu-io at known offsets with holes between: vireo-img
#    info (human, JSON) and check (human, JSON, exit status) as qemu-img's; vireo-img convert
#    -O raw equal to the image for qemu-img compare and to qemu-img's own raw; vireo-img
#    compare; vireo-img map covering the disk, data where qemu-io wrote; vireo (img_io) writes
#    into them (inside blocks, new blocks, the last block, zeroes, discard) and qemu-io reads
#    every pattern back, qemu-img check clean;
#  - images vireo-img made with the same options: qemu-img's "Formatting" line, file length and
#    info; qemu-img check clean; qemu-io writes, vireo reads, and the other way round;
#  - convert both ways and the round trip qcow2 -> vhdx -> qcow2, each compared by qemu-img;
#  - the log: an image qemu left with a log to replay (a BAT write failed through blkdebug after
#    its log entry) and one vireo left (img_io killed after its log entry was written, with
#    strace's fault injection): qemu-img and vireo-img info refuse it read-only, check -r all of
#    either tool replays it, the other tool then reads the data;
#  - hostile images (truncated, both headers damaged, both region tables damaged, a
#    differencing image, a bad block size, a magic and nothing more): exit 1 with a message
#    naming what is wrong, never a signal; measure -O vhdx and resize refused as qemu-img does.
# usage: img-vhdx.sh VIREO_IMG IMG_IO    (exit 77 without qemu-img, qemu-io, python3 or jq)
set -u
VI=$(realpath "$1")
IO=$(realpath "$2")
. "$(dirname "$(realpath "$0")")/tap.sh"
tap_start img-vhdx qemu-img qemu-io python3 jq
export LC_ALL=C

same() { # name file1 file2: the same bytes
	if cmp -s "$2" "$3"; then ok "$1"; else bad "$1"; diff "$2" "$3" | head -8 | sed 's/^/#   /'; fi
}
json_same() { # name file1 file2: the same JSON (keys sorted)
	if diff <(jq -S . "$2") <(jq -S . "$3") >jd.out 2>&1; then ok "$1"
	else bad "$1"; head -10 jd.out | sed 's/^/#   /'; fi
}
refused() { # name pattern command...: exit 1 with a message matching pattern
	"${@:3}" >ref.out 2>&1
	local rc=$?
	if [ $rc = 1 ] && grep -qi -- "$2" ref.out; then ok "$1: $(head -c 160 ref.out | tr '\n' ' ')"
	else bad "$1 (exit $rc)"; sed 's/^/#   /' ref.out | head -5; fi
}
qreads() { # name image "PATTERN OFF LEN"...: qemu-io verifies each
	local args=() c
	for c in "${@:3}"; do args+=(-c "read -P $c"); done
	if qemu-io -r -f vhdx "${args[@]}" "$2" >qr.out 2>&1 && ! grep -q "verification failed" qr.out
	then ok "$1: qemu-io reads"; else bad "$1: qemu-io reads"; grep -v "^read\|ops;" qr.out | head -4 | sed 's/^/#   /'; fi
}
vreads() { # name image "PATTERN OFF LEN"...: vireo (img_io) verifies each
	local args=() c
	for c in "${@:3}"; do args+=(-c "read -P $c"); done
	if "$IO" -f vhdx "$2" "${args[@]}" >vr.out 2>&1; then ok "$1: vireo reads"
	else bad "$1: vireo reads"; head -4 vr.out | sed 's/^/#   /'; fi
}
qclean() { run "$1: qemu-img check clean" qemu-img check -f vhdx "$2"; }

# what qemu-io writes into every image of 64 MiB (the last block is written too) and where
PATTERNS=("0x11 0 4k" "0x22 3M 1M" "0x33 9M 5M" "0x44 40000k 512" "0x55 62M 2M")
qfill() { qemu-io -f vhdx -c "write -P 0x11 0 4k" -c "write -P 0x22 3M 1M" -c "write -P 0x33 9M 5M" \
	-c "write -P 0x44 40000k 512" -c "write -P 0x55 62M 2M" "$1" >/dev/null; }
# what vireo writes over them: inside a written block, a new block, zeroes, a discard
VWRITES=(-c "write -P 0x66 3M 4k" -c "write -P 0x77 20M 1536k" -c "write -z 9M 64k"
	 -c "discard 62M 1M" -c "write -P 0x88 63M 4k")
VPATTERNS=("0x66 3M 4k" "0x22 3076k 1020k" "0x77 20M 1536k" "0 9M 64k" "0x33 9280k 4928k"
	   "0x11 0 4k" "0x88 63M 4k")
# the discarded range reads zeroes (a fixed disk's blocks stay, their file range punched)
discarded() { echo "0 62M 1M"; }

OPTS=("" "block_size=1M,log_size=2M" "subformat=fixed" "subformat=fixed,block_state_zero=off,block_size=1M"
      "block_state_zero=off")
n=0
for o in "${OPTS[@]}"; do
	n=$((n + 1))
	name="qemu's ${o:-default}"
	q=q$n.vhdx
	qemu-img create -q -f vhdx ${o:+-o "$o"} "$q" 64M
	qfill "$q"
	"$VI" info "$q" >v.txt; qemu-img info "$q" >q.txt
	same "$name: info" q.txt v.txt
	"$VI" info --output=json "$q" >v.json; qemu-img info --output=json "$q" >q.json
	json_same "$name: info --output=json" q.json v.json
	"$VI" check "$q" >v.txt 2>&1; vrc=$?; qemu-img check "$q" >q.txt 2>&1; qrc=$?
	same "$name: check (exit $qrc/$vrc)" q.txt v.txt; [ $vrc = $qrc ] || bad "$name: check exit $vrc, not $qrc"
	"$VI" check --output=json "$q" >v.json; qemu-img check --output=json "$q" >q.json
	json_same "$name: check --output=json" q.json v.json
	rm -f v.raw q.raw
	run "$name: vireo-img convert -O raw" "$VI" convert -O raw "$q" v.raw
	qemu-img convert -O raw "$q" q.raw
	same "$name: the raw bytes qemu-img's" q.raw v.raw
	run "$name: qemu-img compare with vireo's raw" qemu-img compare -f vhdx -F raw "$q" v.raw
	run "$name: vireo-img compare with qemu's raw" "$VI" compare -f vhdx -F raw "$q" q.raw
	# map: the extents cover the disk once, in order; data wherever qemu-io wrote
	"$VI" map --output=json "$q" >map.json
	if python3 - map.json "${PATTERNS[@]}" <<'EOF'
import json, sys
def size(s):
    m = {'k': 1 << 10, 'M': 1 << 20}
    return int(s[:-1]) * m[s[-1]] if s[-1] in m else int(s)
ext = json.load(open(sys.argv[1]))
pos = 0
for e in ext:
    assert e['start'] == pos, e
    pos += e['length']
assert pos == 64 << 20, pos
for p in sys.argv[2:]:
    _, off, ln = p.split()
    off, ln = size(off), size(ln)
    for e in ext:
        if e['start'] < off + ln and off < e['start'] + e['length']:
            assert e['data'] and 'offset' in e, (p, e)
EOF
	then ok "$name: map covers the disk, data where written"; else bad "$name: map"; fi
	# vireo writes into qemu's image, qemu reads
	cp "$q" w.vhdx
	run "$name: vireo writes" "$IO" -f vhdx w.vhdx "${VWRITES[@]}"
	qclean "$name, written by vireo" w.vhdx
	qreads "$name, written by vireo" w.vhdx "${VPATTERNS[@]}" "$(discarded "$o")" "0x44 40000k 512" \
		"0 14M 6M"

	# the same image by vireo-img
	v=v$n.vhdx
	"$VI" create -f vhdx ${o:+-o "$o"} "$v" 64M >v.txt
	qemu-img create -f vhdx ${o:+-o "$o"} qsame.vhdx 64M >q.txt
	same "vireo's ${o:-default}: the Formatting line" <(sed 's/qsame.vhdx/F/' q.txt) <(sed "s/$v/F/" v.txt)
	[ "$(stat -c %s "$v")" = "$(stat -c %s qsame.vhdx)" ] && ok "vireo's ${o:-default}: qemu-img's file length" ||
		bad "vireo's ${o:-default}: file length $(stat -c %s "$v"), qemu-img's $(stat -c %s qsame.vhdx)"
	qclean "vireo's ${o:-default}" "$v"
	"$VI" info --output=json "$v" >v.json; qemu-img info --output=json "$v" >q.json
	json_same "vireo's ${o:-default}: info as qemu-img's" q.json v.json
	qfill "$v"
	vreads "vireo's ${o:-default}, written by qemu" "$v" "${PATTERNS[@]}" "0 4k 2M" "0 14M 25M"
	run "vireo's ${o:-default}, written by qemu: vireo-img check" "$VI" check "$v"
	run "vireo's ${o:-default}: vireo writes" "$IO" -f vhdx "$v" "${VWRITES[@]}"
	qclean "vireo's ${o:-default}, written by both" "$v"
	qreads "vireo's ${o:-default}, written by both" "$v" "${VPATTERNS[@]}" "$(discarded "$o")"
done

# ---- convert both ways, and the round trip ----------------------------------------------------
qemu-img create -q -f qcow2 src.qcow2 64M
qemu-io -f qcow2 -c "write -P 0xa1 0 3M" -c "write -P 0xa2 17M 100k" -c "write -z 30M 1M" \
	-c "write -P 0xa3 50M 14M" src.qcow2 >/dev/null
for o in "" "subformat=fixed" "block_size=1M,log_size=2M" "subformat=fixed,block_state_zero=off"; do
	rm -f c.vhdx back.qcow2 qc.vhdx
	run "convert -O vhdx ${o:+-o $o}" "$VI" convert -O vhdx ${o:+-o "$o"} src.qcow2 c.vhdx
	qclean "convert -O vhdx ${o:+-o $o}" c.vhdx
	run "convert -O vhdx ${o:+-o $o}: qemu-img compare" qemu-img compare src.qcow2 c.vhdx
	qemu-img convert -O vhdx ${o:+-o "$o"} src.qcow2 qc.vhdx
	[ "$(stat -c %s c.vhdx)" = "$(stat -c %s qc.vhdx)" ] && ok "convert -O vhdx ${o:+-o $o}: qemu-img's file length" ||
		bad "convert -O vhdx ${o:+-o $o}: file length $(stat -c %s c.vhdx), qemu-img's $(stat -c %s qc.vhdx)"
	run "qemu-img convert -O vhdx ${o:+-o $o}: vireo-img compare" "$VI" compare src.qcow2 qc.vhdx
	run "round trip qcow2 -> vhdx ${o:+($o)} -> qcow2" "$VI" convert -O qcow2 c.vhdx back.qcow2
	run "round trip ${o:+($o)}: qemu-img compare with the original" qemu-img compare src.qcow2 back.qcow2
	run "round trip ${o:+($o)}: qemu-img check" qemu-img check back.qcow2
done

# ---- the log --------------------------------------------------------------------------------
# qemu's: its BAT write (the 8th write of this session: 2 headers, data, 2 headers, log entry,
# log data sector, BAT) fails through blkdebug, so the log entry is there and the BAT is not
blk=$(python3 - <<'EOF'
import json
n = 7
ss = [{"event": "pwritev", "state": i, "new_state": i + 1} for i in range(1, n + 1)]
print("json:" + json.dumps({"driver": "vhdx", "file": {"driver": "blkdebug", "set-state": ss,
      "inject-error": [{"event": "pwritev", "state": n + 1, "errno": 5}],
      "image": {"driver": "file", "filename": "qlog.vhdx"}}}))
EOF
)
qemu-img create -q -f vhdx -o block_size=1M qlog.vhdx 64M
qemu-io -c "write -P 0x99 5M 64k" "$blk" >/dev/null 2>&1
if qemu-img info qlog.vhdx 2>&1 | grep -q "needs to be replayed"; then
	cp qlog.vhdx qlog2.vhdx
	refused "qemu's pending log: vireo-img info refuses it" "needs to be replayed" "$VI" info qlog.vhdx
	refused "qemu's pending log: vireo-img check (read-only) refuses it" "check -r all" "$VI" check qlog.vhdx
	"$VI" check -r all qlog.vhdx >chk.out 2>&1; vrc=$?
	qemu-img check -r all qlog2.vhdx >qchk.out 2>&1
	same "qemu's pending log: check -r all replays it (exit $vrc)" qchk.out chk.out
	qreads "qemu's pending log, replayed by vireo" qlog.vhdx "0x99 5M 64k" "0 0 5M"
	run "qemu's pending log: both replays give the same disk" qemu-img compare qlog.vhdx qlog2.vhdx
else
	bad "qemu left no pending log (blkdebug's write count changed?)"
fi
# vireo's: img_io killed at the flush that follows its log entry (the 4th fdatasync: the
# header's new write GUIDs, the blocks' data, the header naming the log, the entry), before
# the BAT sectors are written in place
if command -v strace >/dev/null; then
	"$VI" create -q -f vhdx -o block_size=1M vlog.vhdx 64M
	(strace -f -o /dev/null -e inject=fdatasync:signal=KILL:when=4 \
		"$IO" -f vhdx vlog.vhdx -c "write -P 0x5a 5M 64k" -c "write -P 0x5b 40M 1M" \
		>/dev/null 2>&1; true) 2>/dev/null
	cp vlog.vhdx vlog2.vhdx
	refused "vireo's pending log: qemu-img info refuses it" "needs to be replayed" qemu-img info vlog.vhdx
	refused "vireo's pending log: vireo-img info refuses it" "needs to be replayed" "$VI" info vlog.vhdx
	run "vireo's pending log: qemu-img check -r all replays it" qemu-img check -r all vlog.vhdx
	qreads "vireo's pending log, replayed by qemu" vlog.vhdx "0x5a 5M 64k" "0x5b 40M 1M" "0 0 5M"
	run "vireo's pending log: vireo-img check -r all replays it" "$VI" check -r all vlog2.vhdx
	run "vireo's pending log: both replays give the same disk" qemu-img compare vlog.vhdx vlog2.vhdx
else
	echo "# strace not installed: vireo's pending log not made (skipped)"
fi

# ---- hostile images -------------------------------------------------------------------------
"$VI" create -q -f vhdx -o block_size=1M h.vhdx 64M
"$IO" -f vhdx h.vhdx -c "write -P 1 0 4k" -c "write -P 2 7M 4k" >/dev/null
patch() { # file offset hexbytes: overwrite
	python3 -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(int(sys.argv[2])); f.write(bytes.fromhex(sys.argv[3]))" "$@"
}
cp h.vhdx t.vhdx; truncate -s 9M t.vhdx
refused "truncated image" "truncated" "$VI" info t.vhdx
cp h.vhdx t.vhdx; patch t.vhdx 65600 ff; patch t.vhdx 131136 ff
refused "both headers damaged" "neither VHDX header is valid" "$VI" info t.vhdx
cp h.vhdx t.vhdx; patch t.vhdx 196700 ff; patch t.vhdx 262236 ff
refused "both region tables damaged" "region table at 0x30000: checksum" "$VI" info t.vhdx
cp h.vhdx t.vhdx; patch t.vhdx $((3 * 1048576 + 65536 + 4)) 02
refused "a differencing image" "differencing" "$VI" convert -O raw t.vhdx out.raw
cp h.vhdx t.vhdx; patch t.vhdx $((3 * 1048576 + 65536)) 00003000
refused "a 3 MiB block size" "BlockSize 3145728" "$VI" info t.vhdx
{ printf 'vhdxfile'; head -c 65528 /dev/zero; } >t.vhdx
refused "a magic and nothing more" "too short for a VHDX header section" "$VI" info t.vhdx
refused "measure -O vhdx (qemu-img: not supported either)" "vhdx" "$VI" measure -O vhdx --size 1G
qemu-img resize -f vhdx h.vhdx 128M >/dev/null 2>&1 && bad "qemu-img resize works now: support it too"
refused "resize (qemu-img cannot either)" "cannot be resized" "$VI" resize h.vhdx 128M

tap_end
