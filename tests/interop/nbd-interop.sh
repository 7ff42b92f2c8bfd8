#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vireo's NBD server against the peers' NBD clients (issue 17):
#   nbdinfo --list and the export's details; nbdinfo --map (base:allocation) equal to the
#   image's own data/hole map (qemu-img map) for raw and qcow2 images, and
#   --map=qemu:dirty-bitmap:NAME equal to what was written through the export; nbdcopy out of
#   and into an export (several connections: multi-conn) with equal checksums; qemu-img convert
#   from and to nbd://, qemu-img compare and qemu-io reading and writing nbd://; extended headers
#   with QEMU's clients (qemu-io, qemu-img map/compare, qemu-nbd as a client; proven by QEMU's
#   trace events) and a 6 GiB write-zeroes in one request; 64 clients at once; every image passes
#   qemu-img check afterwards.
# Usage: nbd-interop.sh DAEMON   (vireo-storage-daemon, which serves each image: --blockdev,
# --nbd-server on a unix socket, --export, or over QMP block-dirty-bitmap-add + block-export-add
# with the bitmap, through tests/integration/vmtest.py's QMP client)
# Exits 77 when a peer is missing. Temporary files go under ${VIREO_TEST_TMPDIR:-/var/tmp}.
set -uo pipefail
daemon=$(realpath "${1:?usage: nbd-interop.sh DAEMON}") # the script works in its temp dir
integration=$(cd "$(dirname "$0")/../integration" && pwd)
for t in qemu-img qemu-io nbdinfo nbdcopy; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed (qemu-utils, libnbd-bin)"; exit 77; }
done
tmp=$(mktemp -d "${VIREO_TEST_TMPDIR:-/var/tmp}/vireo-nbd-XXXXXX")
pid=
fails=0
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp" || exit 1

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
ok() {
	echo "ok: $*"
}

# serve IMAGE [--format FMT] [--name NAME] [--writable] [--bitmap NAME]: the daemon serves IMAGE
# (node "disk", read-only unless --writable) as export NAME (default "disk") on $tmp/s.sock, with
# an enabled dirty bitmap exported as qemu:dirty-bitmap:NAME for --bitmap; sets $uri
serve() {
	local img=$1 fmt=raw name=disk writable=off bitmap=
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--format) fmt=$2; shift 2 ;;
		--name) name=$2; shift 2 ;;
		--writable) writable=on; shift ;;
		--bitmap) bitmap=$2; shift 2 ;;
		*) echo "FAIL: serve: unknown option $1"; exit 1 ;;
		esac
	done
	stop
	rm -f pidfile
	local export=(--export "type=nbd,id=e0,node-name=disk,name=$name,writable=$writable")
	[ -n "$bitmap" ] && export=() # added over QMP below, once the bitmap exists
	local ro=on
	[ $writable = on ] && ro=off
	"$daemon" --blockdev "driver=$fmt,node-name=disk,read-only=$ro,file.driver=file,file.filename=$tmp/$img" \
		--nbd-server "addr.type=unix,addr.path=$tmp/s.sock" "${export[@]}" \
		--chardev "socket,id=m,path=$tmp/qmp.sock,server=on,wait=off" --monitor m \
		--pidfile "$tmp/pidfile" 2>>serve.log &
	pid=$!
	for _ in $(seq 100); do
		[ -s pidfile ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done
	[ -s pidfile ] || { echo "FAIL: the daemon did not start"; cat serve.log; exit 1; }
	if [ -n "$bitmap" ]; then
		python3 - "$integration" "$tmp/qmp.sock" "$bitmap" "$name" "$writable" <<'PY' \
			|| { echo "FAIL: the bitmap's export over QMP"; exit 1; }
import sys
sys.path.insert(0, sys.argv[1])
from vmtest import Qmp
q = Qmp(sys.argv[2])
for cmd, args in (("block-dirty-bitmap-add", {"node": "disk", "name": sys.argv[3]}),
                  ("block-export-add", {"type": "nbd", "id": "e0", "node-name": "disk",
                                        "name": sys.argv[4], "writable": sys.argv[5] == "on",
                                        "bitmaps": [sys.argv[3]]})):
    r = q.execute(cmd, **args)
    assert "return" in r, (cmd, r)
PY
	fi
	uri="nbd+unix:///$name?socket=$tmp/s.sock"
}
stop() {
	if [ -n "$pid" ]; then
		kill "$pid" && wait "$pid" || fail "the daemon did not exit cleanly"
		pid=
	fi
}

# data ranges "start end" (merged) of qemu-img map --output=json on stdin
map_data() {
	python3 -c '
import json, sys
out = []
for e in json.load(sys.stdin):
    if e["data"]:
        if out and out[-1][1] == e["start"]:
            out[-1][1] += e["length"]
        else:
            out.append([e["start"], e["start"] + e["length"]])
for s, e in out: print(s, e)'
}

# data ranges "start end" (merged) of qemu-img map --output=json, and of nbdinfo --map --json
qemu_data() {
	qemu-img map --output=json -f "$1" "$2" | map_data
}
nbd_map() { # $1: context; prints "start end" of extents whose type has none of the bits of $2
	nbdinfo --json --map="$1" "$uri" | python3 -c '
import json, sys
mask = int(sys.argv[1]); out = []
for e in json.load(sys.stdin):
    if not (e["type"] & mask):
        if out and out[-1][1] == e["offset"]:
            out[-1][1] += e["length"]
        else:
            out.append([e["offset"], e["offset"] + e["length"]])
for s, e in out: print(s, e)' "$2"
}

# ---- images: data, zeroes and holes in a raw file and a qcow2 image
qemu-img create -q -f raw a.raw 64M
qemu-io -f raw -c 'write -P 0xab 1M 1M' -c 'write -P 0xcd 10M 64k' -c 'write -P 0x11 63M 1M' \
	a.raw >/dev/null
qemu-img create -q -f qcow2 b.qcow2 64M
qemu-io -f qcow2 -c 'write -P 0xab 1M 1M' -c 'write -z 4M 1M' -c 'write -P 0xcd 10M 64k' \
	-c 'write -P 0x22 32M 3M' b.qcow2 >/dev/null

# ---- nbdinfo: --list, details, --map against qemu-img map
for img in a.raw b.qcow2; do
	fmt=${img##*.}
	serve $img --format $fmt --name disk
	nbdinfo --list "nbd+unix:///?socket=$tmp/s.sock" > list.txt 2>&1 || fail "$img: nbdinfo --list"
	grep -q 'export="disk"' list.txt || fail "$img: --list does not show the export"
	nbdinfo --json "$uri" > info.json || fail "$img: nbdinfo"
	python3 - "$img" info.json <<'PY' || fail "$img: nbdinfo's details"
import json, sys
i = json.load(open(sys.argv[2]))["exports"][0]
assert i["export-size"] == 64 << 20, i
assert i["is_read_only"] and i["can_multi_conn"] and i["can_flush"], i
assert "base:allocation" in i["contexts"], i
assert i["block_size_maximum"] == 32 << 20, i
PY
	if diff <(qemu_data $fmt $img) <(nbd_map base:allocation 1) > map.diff; then
		ok "$img: nbdinfo --map = qemu-img map ($(qemu_data $fmt $img | wc -l) data ranges)"
	else
		fail "$img: nbdinfo --map differs from qemu-img map:"; cat map.diff
	fi
	qemu-img compare -f $fmt "$img" "$uri" >/dev/null || fail "$img: qemu-img compare with nbd://"
	nbdcopy "$uri" out.raw || fail "$img: nbdcopy out of the export"
	qemu-img compare -q -f raw -F $fmt out.raw $img || fail "$img: nbdcopy's copy differs"
	[ "$(sha256sum < out.raw)" = "$(qemu-img convert -f $fmt -O raw $img ref.raw && sha256sum < ref.raw)" ] \
		|| fail "$img: checksums of the nbdcopy copy and the image differ"
	qemu-img convert -f raw -O qcow2 "$uri" conv.qcow2 || fail "$img: qemu-img convert from nbd://"
	qemu-img compare -q conv.qcow2 $img || fail "$img: qemu-img convert's copy differs"
	qemu-io -r -f raw -c 'read -P 0xab 1M 1M' -c 'read -P 0 2M 2M' -c 'read -P 0xcd 10M 64k' \
		"$uri" >/dev/null || fail "$img: qemu-io reads"
	# a read-only export refuses writes
	qemu-io -f raw -c 'write -P 0x99 0 4k' "$uri" 2>/dev/null | grep -q wrote \
		&& fail "$img: a write to a read-only export succeeded"
	ok "$img: nbdinfo, nbdcopy, qemu-img convert/compare, qemu-io over nbd://"
	rm -f out.raw ref.raw conv.qcow2
done
stop

# ---- writable exports: nbdcopy and qemu-img convert into them, qemu-io writes, dirty bitmap
qemu-img create -q -f qcow2 dst.qcow2 64M
serve dst.qcow2 --format qcow2 --writable --bitmap b0
qemu-img convert -f qcow2 -O raw b.qcow2 src.raw
nbdcopy src.raw "$uri" || fail "nbdcopy into a writable export"
stop
qemu-img compare -q -F qcow2 src.raw dst.qcow2 && ok "nbdcopy into the export: identical" \
	|| fail "nbdcopy into the export: images differ"
qemu-img check -q dst.qcow2 || fail "dst.qcow2 fails qemu-img check after nbdcopy"
[ "$(qemu-img convert -f qcow2 -O raw dst.qcow2 dst.raw && sha256sum < dst.raw)" = \
  "$(sha256sum < src.raw)" ] || fail "checksums after nbdcopy in differ"

qemu-img create -q -f raw dst2.raw 64M
serve dst2.raw --format raw --writable --bitmap b0
qemu-img convert -n -f qcow2 -O raw b.qcow2 "$uri" || fail "qemu-img convert into nbd://"
qemu-img compare -q -f qcow2 b.qcow2 "$uri" || fail "qemu-img compare after convert into nbd://"
# writes through the export: the bitmap (64 KiB granules) shows exactly them as dirty
nbd_map qemu:dirty-bitmap:b0 1 > dirty-before.txt
qemu-io -f raw -c 'write -P 0x5e 40M 4k' -c 'write -P 0x5f 50M 200k' -c 'aio_flush' \
	-c 'read -P 0x5e 40M 4k' -c 'read -P 0x5f 50M 200k' "$uri" >/dev/null \
	|| fail "qemu-io writes through nbd://"
nbdinfo --json --map=qemu:dirty-bitmap:b0 "$uri" | python3 -c '
import json, sys
dirty = [(e["offset"], e["offset"] + e["length"]) for e in json.load(sys.stdin) if e["type"] & 1]
want = [(40 << 20, (40 << 20) + 65536), (50 << 20, (50 << 20) + 4 * 65536)]
extra = [d for d in dirty if d not in want]
# what convert wrote before is dirty too: only check that our writes are there, as granules
for w in want:
    assert any(d[0] <= w[0] and w[1] <= d[1] for d in dirty), (w, dirty)
' && ok "qemu:dirty-bitmap:b0 shows the writes" || fail "the dirty bitmap does not show the writes"
stop
qemu-io -r -f raw -c 'read -P 0x5e 40M 4k' -c 'read -P 0x5f 50M 200k' dst2.raw >/dev/null \
	|| fail "writes through nbd:// are not in the image"

# a fresh bitmap on a writable export: only what is written afterwards is dirty
qemu-img create -q -f raw dst3.raw 16M
serve dst3.raw --format raw --writable --bitmap b1
qemu-io -f raw -c 'write -P 1 1M 64k' -c 'write -P 2 5M 4k' "$uri" >/dev/null || fail "qemu-io writes"
got=$(nbd_map qemu:dirty-bitmap:b1 1 | tr '\n' ' ')
[ "$got" = "0 1048576 1114112 5242880 5308416 16777216 " ] && ok "dirty bitmap exact: $got" \
	|| fail "dirty bitmap: clean ranges '$got'"
stop

# ---- extended headers: QEMU 10's clients ask for NBD_OPT_EXTENDED_HEADERS; their trace events
# (the log backend, on stderr) show that our server ACKed it, that every reply was an extended
# chunk (no simple reply, no wrong header), block status came as NBD_REPLY_TYPE_BLOCK_STATUS_EXT
# and a 6 GiB write-zeroes went out as one request; reads, writes and maps must still agree
if qemu-img --trace help 2>&1 | grep -qx nbd_receive_option_reply; then
	fails0=$fails
	qemu-img create -q -f raw big.raw 8G
	qemu-io -f raw -c 'write -P 0x42 4k 4k' -c 'write -P 0x41 5G 64k' -c 'write -P 0x44 7G 1M' \
		big.raw >/dev/null
	serve big.raw --format raw --writable
	ext_ok() { # LOG WHAT: the log shows an extended-header session with no compact reply
		grep -q 'Received option reply 11 (extended headers), type 1 (ack)' "$1" \
			|| { fail "$2: extended headers were not negotiated"; grep option "$1"; return; }
		! grep -q 'nbd_receive_simple_reply\|nbd_receive_wrong_header' "$1" \
			|| fail "$2: a simple reply or wrong header after extended headers"
	}
	qemu-io --trace 'nbd_*' -f raw -c 'write -P 0x43 1M 1M' -c 'read -P 0x43 1M 1M' \
		-c 'read -P 0x42 4k 4k' -c 'read -P 0x41 5G 64k' -c 'read -P 0 6G 1M' -c 'flush' \
		"$uri" >/dev/null 2>ext-io.log || fail "qemu-io over extended headers"
	ext_ok ext-io.log qemu-io
	grep -q 'Got reply chunk header: { flags = 0x1, type = 0 (none)' ext-io.log \
		|| fail "qemu-io: writes and flush not answered with NBD_REPLY_TYPE_NONE"
	grep -q 'type = 2 (hole)' ext-io.log || fail "qemu-io: no hole chunk in the extended reads"
	qemu-img --trace 'nbd_*' map --output=json -f raw "$uri" > map-nbd.json 2>ext-map.log \
		|| fail "qemu-img map over extended headers"
	ext_ok ext-map.log "qemu-img map"
	grep -q 'type = 6 (block status (64-bit))' ext-map.log \
		|| fail "qemu-img map: no NBD_REPLY_TYPE_BLOCK_STATUS_EXT chunk"
	diff <(qemu_data raw big.raw) <(qemu-img map --output=json -f raw "$uri" | map_data) \
		> ext-map.diff \
		&& ok "qemu-img map over extended headers = qemu-img map of the file" \
		|| { fail "qemu-img map over extended headers differs:"; cat ext-map.diff; }
	qemu-img --trace 'nbd_receive_option_reply' compare -f raw -F raw big.raw "$uri" \
		>/dev/null 2>ext-cmp.log || fail "qemu-img compare over extended headers"
	ext_ok ext-cmp.log "qemu-img compare"
	# qemu-nbd as our client: it serves our export again, and qemu-img compares through it
	qemu-nbd -f raw -k "$tmp/proxy.sock" --trace 'nbd_receive_option_reply' "$uri" \
		2>ext-nbd.log &
	qpid=$!
	for _ in $(seq 100); do [ -S proxy.sock ] && break; sleep 0.05; done
	qemu-img compare -f raw -F raw big.raw "nbd+unix:///?socket=$tmp/proxy.sock" >/dev/null \
		|| fail "qemu-img compare through qemu-nbd, our client over extended headers"
	kill $qpid; wait $qpid 2>/dev/null
	ext_ok ext-nbd.log qemu-nbd
	# 64-bit effect lengths: 6 GiB zeroed (unmapping allowed: holes) in one request
	qemu-io --trace 'nbd_send_request' -f raw -c 'write -z -u -n 1G 6G' -c 'read -P 0 5G 64k' \
		-c 'read -P 0x44 7G 1M' "$uri" >/dev/null 2>ext-zero.log \
		|| fail "a 6 GiB write-zeroes over extended headers"
	[ "$(grep -c 'type = 6 (write zeroes)' ext-zero.log)" = 1 ] && \
		grep -q '.from = 1073741824, .len = 6442450944, .*write zeroes' ext-zero.log \
		|| { fail "the write-zeroes did not go out as one 6 GiB request"; grep zeroes ext-zero.log; }
	qemu-img compare -q -f raw -F raw big.raw "$uri" || fail "qemu-img compare after the 6 GiB zeroing"
	stop
	qemu-io -r -f raw -c 'read -P 0x43 1M 1M' -c 'read -P 0 5G 64k' -c 'read -P 0x44 7G 1M' \
		big.raw >/dev/null || fail "extended-header writes are not in the image"
	[ $fails = $fails0 ] && ok "extended headers: qemu-io, qemu-img map/compare, qemu-nbd, 6 GiB write-zeroes"
	rm -f big.raw
else
	echo "note: this qemu-img has no trace events: extended headers not checked"
fi

# ---- 64 clients at once, reading while one writes
qemu-img convert -f qcow2 -O raw b.qcow2 many.raw
serve many.raw --format raw --writable
seq 64 | xargs -P 64 -I{} sh -c \
	"qemu-io -r -f raw -c 'read -P 0xab 1M 1M' -c 'read -P 0x22 32M 3M' '$uri' >/dev/null || echo bad{}" \
	> many.txt 2>&1
qemu-io -f raw -c 'write -P 0x77 60M 1M' "$uri" >/dev/null || fail "a write beside 64 readers"
if [ -s many.txt ]; then fail "64 concurrent clients: $(tr '\n' ' ' < many.txt)"; else ok "64 concurrent clients"; fi
nbdinfo --size "$uri" >/dev/null || fail "the server does not answer after 64 clients"
stop
qemu-io -r -f raw -c 'read -P 0x77 60M 1M' many.raw >/dev/null || fail "the write beside 64 readers is lost"

# ---- over TCP, on a free port
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$daemon" --blockdev "driver=raw,node-name=disk,read-only=on,file.driver=file,file.filename=$tmp/many.raw" \
	--nbd-server "addr.type=inet,addr.host=127.0.0.1,addr.port=$port" \
	--export "type=nbd,id=e0,node-name=disk,name=disk" --pidfile "$tmp/pidfile.tcp" \
	2>>serve.log &
tpid=$!
for _ in $(seq 100); do [ -s pidfile.tcp ] && break; sleep 0.05; done
if nbdinfo --size "nbd://127.0.0.1:$port/disk" >/dev/null &&
   qemu-img compare -q -f raw many.raw "nbd://127.0.0.1:$port/disk" &&
   nbdcopy "nbd://127.0.0.1:$port/disk" null:; then
	ok "TCP: nbdinfo, qemu-img compare, nbdcopy over nbd://127.0.0.1:$port"
else
	fail "the export over TCP (port $port)"
fi
kill $tpid && wait $tpid || fail "the daemon (TCP) did not exit cleanly"

# ---- the kernel's client, where the machine has it
if command -v nbd-client >/dev/null && [ -e /dev/nbd0 ] && [ "$(id -u)" = 0 ]; then
	echo "note: nbd-client found, kernel client not exercised by this script yet"
else
	echo "note: kernel nbd client not tested (no nbd-client or /dev/nbd0 here)"
fi

if grep -q "AddressSanitizer\|runtime error" serve.log; then
	fail "sanitizer reports in the daemon's log"; cat serve.log
fi
[ $fails = 0 ] && echo "nbd-interop: all passed" || echo "nbd-interop: $fails failure(s)"
[ $fails = 0 ]
