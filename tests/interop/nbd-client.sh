#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# vireo's NBD client (blockdev/nbd_*.c, issue 17) against qemu-nbd: exports of a raw and a
# qcow2 image, read-only and writable, on a unix socket and on TCP 127.0.0.1 (a free port).
#
#  - vireo-img info (human and JSON), map (human and JSON) and compare of nbd:// and
#    nbd+unix:// sources, and of the nbd:HOST:PORT:exportname= and nbd:unix: forms: the same
#    text as qemu-img's on the same URI;
#  - a qcow2 image over a backing file on NBD: info --backing-chain and map as qemu-img's;
#  - vireo-img convert from exports (to raw and qcow2 files) and onto exports (-n and without:
#    raw, and a qcow2 image written into a raw export; onto a qcow2 export over TCP), each
#    result checked with qemu-img compare (and qemu-img check for the qcow2 one);
#  - write-zeroes and discard reaching the server (a sparse source converted with -n over
#    data: the export's map shows the holes), an unaligned write (read-modify-write);
#  - refusals with a message: an unknown export, a read-only export opened read-write, a
#    server that is not there;
#  - reconnection: qemu-nbd killed (SIGKILL) between requests and while 64 writes of 256 KiB
#    are going, restarted within reconnect-delay: every request succeeds and every byte is
#    there (qemu-io); without reconnect-delay a request fails at once with EIO; with a delay
#    that runs out it fails after the delay.
#  - extended headers (NBD_OPT_EXTENDED_HEADERS) with qemu-nbd on an 8 GiB sparse export,
#    proven by qemu-nbd's trace events: the option ACKed, every request with the extended magic,
#    a 6 GiB write-zeroes and an 8 GiB trim as one request each, block status past 4 GiB (map
#    as qemu-img's), reads that agree;
#  - the other servers: a qcow2 image exported by qemu-storage-daemon (when installed) and by
#    vireo-storage-daemon (when given): info and map as qemu-img's, writes and reads (img_io),
#    convert checked with qemu-img compare; vireo-storage-daemon through a proxy that records
#    the bytes: extended request and reply magics on the wire.
# Output: "ok - NAME" / "not ok - NAME" lines, then "N passed, N failed"; exit 1 on a failure,
# 77 without qemu-nbd, qemu-img, qemu-io or python3 (for a free port). About 20 s.
# usage: nbd-client.sh VIREO_IMG IMG_IO [VIREO_STORAGE_DAEMON]
set -u
if [ $# -ne 2 ] && [ $# -ne 3 ]; then
	echo "usage: $0 VIREO_IMG IMG_IO [VIREO_STORAGE_DAEMON]" >&2
	exit 2
fi
VSD=${3:+$(realpath "$3")}
for t in qemu-nbd qemu-img qemu-io python3; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed (qemu-utils, python3)"; exit 77; }
done
VI=$(realpath "$1")
IO=$(realpath "$2")
T=$(mktemp -d /tmp/vireo-nbd-client.XXXXXX)
. "$(dirname "$(realpath "$0")")/nbd-lib.sh"
# serve NAME ARGS...: qemu-nbd --fork (returns once it listens), its pid kept in $NAME.pid
serve() {
	local name=$1
	shift
	qemu-nbd --fork --pid-file="$T/$name.pid" -t "$@" || return 1
	PIDS="$PIDS $(cat "$T/$name.pid")"
}
# stop NAME: SIGKILL, and wait until it is gone (a zombie counts: its sockets are closed)
# started LOG: waits (10 s at most) until img_io -l logged its first flush: it is connected
started() {
	for _ in $(seq 200); do grep -q "^@F" "$1" 2>/dev/null && return; sleep 0.05; done
}
stop() {
	local pid
	pid=$(cat "$T/$1.pid")
	kill -9 "$pid" 2>/dev/null
	while [ -e /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; do
		sleep 0.02
	done
}

# ---- images: data, a hole, zeroes written, data at the end (the peer's own qcow2) ----
qemu-img create -q -f qcow2 src.qcow2 64M
qemu-io -f qcow2 -c "write -P 0xab 0 1M" -c "write -P 0xcd 10M 3M" -c "write -z 20M 1M" \
	-c "write -P 0xef 63M 1M" src.qcow2 >/dev/null
qemu-img convert -O raw src.qcow2 src.raw
qemu-img create -q -f raw w.raw 64M
qemu-io -f raw -c "write -P 0x77 0 64M" w.raw >/dev/null # old data that zeroes must overwrite
qemu-img create -q -f qcow2 w.qcow2 64M
qemu-img create -q -f raw r.raw 64M
P1=$(free_port)
serve q -f qcow2 -r -e 4 -k "$T/q.sock" -x q src.qcow2 ||
	{ echo "not ok - qemu-nbd starts"; exit 1; }
serve r -f raw -r -b 127.0.0.1 -p "$P1" -x r src.raw
serve w -f raw --discard=unmap -k "$T/w.sock" -x w w.raw
P2=$(free_port)
serve wq -f qcow2 --discard=unmap -b 127.0.0.1 -p "$P2" -x wq w.qcow2
Q="nbd+unix:///q?socket=$T/q.sock"
R="nbd://127.0.0.1:$P1/r"
W="nbd+unix:///w?socket=$T/w.sock"
WQ="nbd://127.0.0.1:$P2/wq"

echo "# sources"
for u in "$Q" "$R" "nbd:unix:$T/q.sock:exportname=q" "nbd:127.0.0.1:$P1:exportname=r"; do
	same "info $u" "$VI info '$u'" "qemu-img info '$u'"
done
same "info --output=json $Q" "$VI info --output=json '$Q' | python3 -m json.tool" \
	"qemu-img info --output=json '$Q' | python3 -m json.tool"
for u in "$Q" "$R"; do
	same "map $u" "$VI map '$u'" "qemu-img map '$u'"
	same "map --output=json $u" "$VI map --output=json '$u'" "qemu-img map --output=json '$u'"
done
check "compare $Q $R" "$VI" compare "$Q" "$R"
check "compare src.qcow2 $Q" "$VI" compare src.qcow2 "$Q"
check "convert -O qcow2 $Q" "$VI" convert -O qcow2 "$Q" out.qcow2
check "  qemu-img compare" qemu-img compare src.qcow2 out.qcow2
check "  qemu-img check" qemu-img check -q out.qcow2
check "convert -O raw $R" "$VI" convert -O raw "$R" out.raw
check "  qemu-img compare" qemu-img compare src.qcow2 out.raw
refused "other data differs" "mismatch" "$VI" compare "$Q" w.raw

echo "# a backing file on NBD"
check "create -b $Q" "$VI" create -q -f qcow2 -b "$Q" -F raw ov.qcow2
same "info --backing-chain" "$VI info --backing-chain ov.qcow2" "qemu-img info --backing-chain ov.qcow2"
same "map --output=json" "$VI map --output=json ov.qcow2" "qemu-img map --output=json ov.qcow2"
check "compare with the source" "$VI" compare ov.qcow2 src.qcow2
check "written over (img_io), read through" "$IO" ov.qcow2 -c "write -P 0x99 10M 64K" \
	-c "read -P 0x99 10M 64K" -c "read -P 0xcd 11M 1M" -c "read -P 0xab 0 1M"

echo "# targets"
check "convert -n -O raw onto $W" "$VI" convert -n -O raw src.qcow2 "$W"
check "  qemu-img compare" qemu-img compare -U src.qcow2 "$W"
if "$VI" map --output=json "$W" | grep -q '"start": 1048576, "length": 9437184, .*"zero": true'
then ok "  the zeroes over old data are holes in the export (write-zeroes, may unmap)"
else not_ok "  the zeroes over old data are holes in the export (write-zeroes, may unmap)" \
	"$("$VI" map --output=json "$W" 2>&1)"; fi
check "convert -O raw onto $W (create: size checked, first sector zeroed)" \
	"$VI" convert -O raw src.qcow2 "$W"
check "  qemu-img compare" qemu-img compare -U src.qcow2 "$W"
check "convert -O qcow2 into the raw export $W" "$VI" convert -O qcow2 src.qcow2 "$W"
check "  qemu-img compare of the qcow2 inside" qemu-img compare -U -f qcow2 -F qcow2 src.qcow2 w.raw
check "  qemu-img check of it" qemu-img check -U -q -f qcow2 w.raw
check "  vireo-img reads it back through NBD (probed qcow2)" "$VI" compare src.qcow2 "$W"
check "convert -n onto the qcow2 export $WQ" "$VI" convert -n -O raw src.raw "$WQ"
check "  qemu-img compare" qemu-img compare src.raw "$WQ"
check "unaligned write and write-zeroes (img_io)" "$IO" -f raw "$WQ" -c "write -P 0x42 1000 3000" \
	-c "write -z 5000 100000" -c "read -P 0x42 1000 3000" -c "read -P 0 5000 100000" \
	-c "discard 32M 1M" -c "flush"
check "  seen by qemu-io" qemu-io -U -r -f qcow2 -c "read -P 0x42 1000 3000" \
	-c "read -P 0 5000 100000" -c "read -P 0xab 0 1000" -c "read -P 0xab 105000 943576" w.qcow2
refused "a file that is not an export is not created" "export holds" \
	"$VI" create -f raw "$W" 65M

echo "# refusals"
refused "unknown export" "no export 'nope'" "$VI" info "nbd+unix:///nope?socket=$T/q.sock"
refused "read-only export opened read-write" "read-only" "$VI" convert -n -O raw src.raw "$Q"
refused "no server" "could not connect" "$VI" info "nbd+unix:///x?socket=$T/none.sock"
refused "TLS" "TLS" "$VI" info "nbds://127.0.0.1:$P1/r"
refused "bad filename" "port" "$VI" info "nbd://127.0.0.1:0/r"

echo "# reconnect"
RR="nbd+unix:///rr?socket=$T/rr.sock"
serve rr -f raw -k "$T/rr.sock" -x rr r.raw
# killed between requests: the next request waits for the new server
"$IO" -l -f raw -o reconnect-delay=20 "$RR" -c "write -P 0x11 0 1M" -c "flush" -c "sleep 1500" \
	-c "read -P 0x11 0 1M" -c "write -P 0x22 1M 1M" -c "flush" > rc1.log 2>&1 &
io=$!
started rc1.log
stop rr
sleep 1.5
serve rr -f raw -k "$T/rr.sock" -x rr r.raw
if wait $io; then ok "killed between requests: the next ones wait, then succeed"
else not_ok "killed between requests: the next ones wait, then succeed" "$(cat rc1.log)"; fi
# killed while 64 writes of 256 KiB go, in groups of 8 (as the slow path sends a device's):
# the server is stopped first, so that writes are in flight when it dies; they go again
cmds=(-c "flush")
for i in $(seq 0 63); do
	cmds+=(-c "write -P $((i + 1)) $((i * 256))K 256K")
	[ $((i % 8)) = 7 ] && cmds+=(-c "sleep 20")
done
"$IO" -l -f raw -g 8 -o reconnect-delay=20 "$RR" "${cmds[@]}" -c "flush" > rc2.log 2>&1 &
io=$!
started rc2.log
sleep 0.05
kill -STOP "$(cat "$T/rr.pid")"
sleep 0.3
stop rr
sleep 1
serve rr -f raw -k "$T/rr.sock" -x rr r.raw
if wait $io; then ok "killed mid-way through 64 writes: all succeed after the reconnection"
else not_ok "killed mid-way through 64 writes: all succeed after the reconnection" "$(cat rc2.log)"; fi
grep -q "connection lost" rc2.log && ok "  the loss and the reconnection are logged" ||
	not_ok "  the loss and the reconnection are logged" "$(cat rc2.log)"
reads=()
for i in $(seq 0 63); do reads+=(-c "read -P $((i + 1)) $((i * 256))K 256K"); done
check "  every byte written (qemu-io)" qemu-io -U -r -f raw "${reads[@]}" r.raw
# without reconnect-delay: a request while the server is gone fails at once
"$IO" -l -f raw "$RR" -c "write -P 0x33 0 4K" -c "flush" -c "sleep 800" -c "read -P 0x33 0 4K" \
	> rc3.log 2>&1 &
io=$!
started rc3.log
stop rr
start=$(date +%s%N)
if wait $io; then not_ok "without reconnect-delay: EIO at once" "$(cat rc3.log)"
elif grep -q "Input/output error" rc3.log && [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 1500 ]
then ok "without reconnect-delay: EIO at once"
else not_ok "without reconnect-delay: EIO at once" "$(cat rc3.log)"; fi
# a delay that runs out: EIO after it
serve rr -f raw -k "$T/rr.sock" -x rr r.raw
"$IO" -l -f raw -o reconnect-delay=1 "$RR" -c "write -P 0x33 0 4K" -c "flush" -c "sleep 300" \
	-c "read -P 0x33 0 4K" > rc4.log 2>&1 &
io=$!
started rc4.log
stop rr
start=$(date +%s%N)
if wait $io; then not_ok "reconnect-delay=1 runs out: EIO after it" "$(cat rc4.log)"
else
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	if grep -q "not back within reconnect-delay" rc4.log && [ $ms -ge 700 ] && [ $ms -lt 3000 ]
	then ok "reconnect-delay=1 runs out: EIO after it (${ms} ms)"
	else not_ok "reconnect-delay=1 runs out: EIO after it" "after $ms ms" "$(cat rc4.log)"; fi
fi

echo "# extended headers"
# qemu-nbd's trace events (the log backend, on stderr) show what it negotiated and received
if qemu-nbd --trace help 2>&1 | grep -qx nbd_receive_request; then
	qemu-img create -q -f raw big.raw 8G
	qemu-io -f raw -c "write -P 0x41 5G 64k" -c "write -P 0x44 7G 1M" big.raw >/dev/null
	qemu-nbd -t -f raw -k "$T/big.sock" -x big --trace nbd_negotiate_send_rep_len \
		--trace nbd_receive_request big.raw 2> big-trace.log &
	PIDS="$PIDS $!"
	disown $!
	for _ in $(seq 100); do [ -S "$T/big.sock" ] && break; sleep 0.05; done
	B="nbd+unix:///big?socket=$T/big.sock"
	check "6 GiB write-zeroes, reads, 8 GiB trim (img_io)" "$IO" -f raw "$B" \
		-c "write -z 1G 6G" -c "read -P 0 5G 64K" -c "read -P 0x44 7G 1M" -c "flush" \
		-c "discard 4G 4G" -c "flush"
	"$VI" map --output=json "$B" > big-map.json 2>&1 || not_ok "vireo-img map" "$(cat big-map.json)"
	cp big-trace.log vireo-trace.log # what vireo's client sent, before any QEMU client's
	same "  map --output=json of the 8 GiB export" "cat big-map.json" \
		"qemu-img map --output=json '$B'"
	check "  qemu-img compare" qemu-img compare -U -f raw -F raw big.raw "$B"
	grep -q 'Reply opt=11 (extended headers), type=1 (ack)' vireo-trace.log \
		&& ok "  qemu-nbd ACKed NBD_OPT_EXTENDED_HEADERS" \
		|| not_ok "  qemu-nbd ACKed NBD_OPT_EXTENDED_HEADERS" "$(grep opt= vireo-trace.log)"
	if grep -q 'Got request' vireo-trace.log && ! grep 'Got request' vireo-trace.log |
		grep -qv 'magic = 0x21e41c71'; then
		ok "  every request had the extended magic"
	else
		not_ok "  every request had the extended magic" \
			"$(grep 'Got request' vireo-trace.log | head -5)"
	fi
	for want in 'type = 0x6, from = 1073741824, len = 6442450944' \
		'type = 0x4, from = 4294967296, len = 4294967296' 'type = 0x7, from = 0, len = 8589934592'; do
		grep -q "$want" vireo-trace.log && ok "  one request: $want" \
			|| not_ok "  one request: $want" "$(grep 'Got request' vireo-trace.log | head -5)"
	done
else
	echo "ok - extended headers # SKIP this qemu-nbd has no trace events"
fi

echo "# other servers"
# other_server NAME URI: what a daemon exports (a copy of src.qcow2 as qcow2 node "d")
other_server() {
	local name=$1 u=$2
	same "$name: info" "$VI info '$u'" "qemu-img info '$u'"
	same "$name: map --output=json" "$VI map --output=json '$u'" "qemu-img map --output=json '$u'"
	check "$name: writes and reads (img_io)" "$IO" "$u" -c "write -P 0x5e 5M 64K" \
		-c "read -P 0x5e 5M 64K" -c "read -P 0xab 0 1M" -c "write -z 10M 1M" \
		-c "discard 12M 1M" -c "read -P 0 10M 1M" -c "flush"
	check "$name: convert from it" "$VI" convert -O raw "$u" "$name.raw"
	check "$name:   qemu-img compare" qemu-img compare "$name.raw" "$u"
}
if command -v qemu-storage-daemon >/dev/null; then
	cp src.qcow2 qsd.qcow2
	if qemu-storage-daemon --blockdev driver=file,node-name=f,filename=qsd.qcow2 \
		--blockdev driver=qcow2,node-name=q,file=f \
		--nbd-server addr.type=unix,addr.path="$T/qsd.sock" \
		--export type=nbd,id=e,node-name=q,name=d,writable=on \
		--pidfile "$T/qsd.pid" --daemonize; then
		PIDS="$PIDS $(cat "$T/qsd.pid")"
		other_server qemu-storage-daemon "nbd+unix:///d?socket=$T/qsd.sock"
	else
		not_ok "qemu-storage-daemon starts"
	fi
else
	echo "ok - qemu-storage-daemon # SKIP not installed"
fi
if [ -n "$VSD" ]; then
	cp src.qcow2 vsd.qcow2
	"$VSD" --blockdev driver=qcow2,node-name=q,file.driver=file,file.filename=vsd.qcow2 \
		--nbd-server addr.type=unix,addr.path="$T/vsd.sock" \
		--export type=nbd,id=e,node-name=q,name=d,writable=on > vsd.log 2>&1 &
	PIDS="$PIDS $!"
	disown $! # no "Killed" notice from bash at the end
	for _ in $(seq 100); do [ -S "$T/vsd.sock" ] && break; sleep 0.05; done
	other_server vireo-storage-daemon "nbd+unix:///d?socket=$T/vsd.sock"
	# the same through a proxy that records both directions: extended headers on the wire
	python3 - "$T/vsd.sock" "$T/rec.sock" "$T/rec" <<'PY' &
import os, socket, sys, threading
up, path, rec = sys.argv[1:]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(4)
def pipe(a, b, f):
    while True:
        d = a.recv(65536)
        if not d:
            break
        f.write(d)
        f.flush()
        b.sendall(d)
    b.shutdown(socket.SHUT_WR)
n = 0
while True:
    c, _ = srv.accept()
    u = socket.socket(socket.AF_UNIX)
    u.connect(up)
    n += 1
    for a, b, name in ((c, u, "c"), (u, c, "s")):
        threading.Thread(target=pipe, args=(a, b, open("%s.%d.%s" % (rec, n, name), "wb")),
                         daemon=True).start()
PY
	PIDS="$PIDS $!"
	disown $!
	for _ in $(seq 100); do [ -S "$T/rec.sock" ] && break; sleep 0.05; done
	check "vireo-storage-daemon through the proxy (img_io)" "$IO" \
		"nbd+unix:///d?socket=$T/rec.sock" -c "write -P 0x6a 6M 64K" -c "read -P 0x6a 6M 64K" \
		-c "write -z 7M 1M" -c "discard 8M 1M" -c "flush"
	if python3 - "$T/rec.1.c" "$T/rec.1.s" <<'PY'
import struct, sys
c, s = (open(f, "rb").read() for f in sys.argv[1:])
ext_opt = struct.pack(">QII", 0x49484156454F5054, 11, 0)
ack = struct.pack(">QIII", 0x3e889045565a9, 11, 1, 0)
assert ext_opt in c, "NBD_OPT_EXTENDED_HEADERS not sent"
assert ack in s, "NBD_OPT_EXTENDED_HEADERS not ACKed"
assert struct.pack(">I", 0x21e41c71) in c and struct.pack(">I", 0x25609513) not in c
assert struct.pack(">I", 0x6e8a278c) in s
assert struct.pack(">I", 0x67446698) not in s and struct.pack(">I", 0x668e33ef) not in s
PY
	then ok "  extended headers on the wire (request and reply magics, no compact ones)"
	else not_ok "  extended headers on the wire (request and reply magics, no compact ones)"; fi
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
