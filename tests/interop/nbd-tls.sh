#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# NBD over TLS both ways with QEMU's tools (issue 17): vireo's NBD client (driver=nbd with
# tls-creds) against qemu-nbd and qemu-storage-daemon, and vireo-storage-daemon's server with
# tls-authz against QEMU's clients, with a CA, certificates and keys made by certtool and
# psktool (gnutls-bin), as QEMU's documentation makes them.
#
#  - x509 on TCP (qemu-nbd --tls-creds): vireo-img map and compare through --image-opts
#    driver=nbd,...,tls-creds=ID as qemu-img's on the same options; vireo-img convert -n writes
#    onto the export and qemu-img compare and qemu-io read it back over TLS; a qcow2 image on
#    the export (driver=qcow2,file.driver=nbd); refusals with their message: a CA that did not
#    sign the server, a tls-hostname the certificate does not hold, no tls-creds, TLS asked of
#    a server without it (never plaintext);
#  - pre-shared keys on a unix socket (qemu-nbd), a wrong key refused;
#  - qemu-storage-daemon with verify-peer and tls-authz: vireo's client with the certificate
#    the identity names is served, one another CA signed is not; vireo-storage-daemon with the
#    same authz-simple identity lets in QEMU's client with that certificate (qemu-img,
#    nbdinfo), and refuses it when the identity names someone else, and a client without a
#    certificate: the identity string means the same to both;
#  - vireo-storage-daemon --sandbox on holding a driver=nbd node over TLS (PSK) on qemu-nbd,
#    exported again in plaintext on a unix socket: qemu-nbd killed and started again, the
#    node's receiver thread reconnects and redoes TLS under its seccomp filter, qemu-io reads on.
# Output: "ok - NAME" / "not ok - NAME" lines, then "N passed, N failed"; exit 1 on a failure,
# 77 without qemu-nbd, qemu-img, qemu-io, certtool, psktool or python3 (a free port). ~15 s.
# usage: nbd-tls.sh VIREO_IMG VIREO_STORAGE_DAEMON
set -u
if [ $# -ne 2 ]; then
	echo "usage: $0 VIREO_IMG VIREO_STORAGE_DAEMON" >&2
	exit 2
fi
for t in qemu-nbd qemu-img qemu-io certtool psktool python3; do
	command -v $t >/dev/null ||
		{ echo "SKIP: $t not installed (qemu-utils, gnutls-bin, python3)"; exit 77; }
done
VI=$(realpath "$1")
VSD=$(realpath "$2")
T=$(mktemp -d /tmp/vireo-nbd-tls.XXXXXX)
. "$(dirname "$(realpath "$0")")/nbd-lib.sh"
# wait_for PATH|PORT: a unix socket or a TCP port on 127.0.0.1 that accepts
wait_for() {
	for _ in $(seq 100); do
		if [[ $1 == /* ]]; then [ -S "$1" ] && return 0
		else python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" \
			2>/dev/null && return 0
		fi
		sleep 0.05
	done
	echo "# nothing listens on $1" >&2
	return 1
}

# stop PIDFILE: the process ends (SIGTERM, then waited for: a daemon's pid file lock goes too)
stop() {
	local p
	p=$(cat "$1" 2>/dev/null) || return 0
	kill "$p" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$p" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -9 "$p" 2>/dev/null
}
# vsd PIDFILE LISTEN ARGS...: vireo-storage-daemon in the background (its stderr in vsd.log),
# once LISTEN (a socket path or a port) accepts
vsd() {
	local pidf=$1 at=$2
	shift 2
	"$VSD" "$@" 2>vsd.log &
	echo $! >"$pidf"
	PIDS="$PIDS $!"
	wait_for "$at"
}

# ---- the CA, certificates and keys (certtool, psktool) ------------------------------------
# certtool NAME TEMPLATE [CA]: NAME-key.pem and NAME-cert.pem (self-signed without CA)
cert() {
	local name=$1 tmpl=$2 ca=${3:-}
	certtool --generate-privkey --outfile "$name-key.pem" >/dev/null 2>&1 || return 1
	printf '%b' "$tmpl" >"$name.info"
	if [ -z "$ca" ]; then
		certtool --generate-self-signed --load-privkey "$name-key.pem" \
			--template "$name.info" --outfile "$name-cert.pem" >/dev/null 2>&1
	else
		certtool --generate-certificate --load-privkey "$name-key.pem" \
			--load-ca-certificate "$ca-cert.pem" --load-ca-privkey "$ca-key.pem" \
			--template "$name.info" --outfile "$name-cert.pem" >/dev/null 2>&1
	fi
}
DAYS='expiration_days = 2\n'
cert ca "cn = vireo test CA\nca\ncert_signing_key\n$DAYS" &&
	cert ca2 "cn = another CA\nca\ncert_signing_key\n$DAYS" &&
	cert server "organization = Vireo Test\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\n$DAYS" ca &&
	cert client "country = GB\nstate = London\nlocality = London\norganization = Vireo Test\ncn = client.example.com\ntls_www_client\nencryption_key\nsigning_key\n$DAYS" ca &&
	cert mallory "cn = mallory.example.com\ntls_www_client\nencryption_key\nsigning_key\n$DAYS" ca2 ||
	{ echo "not ok - certtool made the CA and certificates"; exit 1; }
# QEMU's file names: srv (the server's), cli (a client's), nocert (a client without a
# certificate), other (a client another CA signed, trusting our CA), ca2dir (a client trusting
# only the other CA)
mkdir srv cli nocert other ca2dir psk-srv psk-cli psk-wrong
cp ca-cert.pem srv/ && cp server-cert.pem srv/server-cert.pem && cp server-key.pem srv/
cp ca-cert.pem cli/ && cp client-cert.pem cli/ && cp client-key.pem cli/
cp ca-cert.pem nocert/
cp ca-cert.pem other/ && cp mallory-cert.pem other/client-cert.pem &&
	cp mallory-key.pem other/client-key.pem
cp ca2-cert.pem ca2dir/ca-cert.pem
psktool -u alice -p psk-srv/keys.psk >/dev/null 2>&1 && cp psk-srv/keys.psk psk-cli/ &&
	psktool -u alice -p psk-wrong/keys.psk >/dev/null 2>&1 ||
	{ echo "not ok - psktool made the keys"; exit 1; }
# the client's name as QEMU's tls-authz (gnutls_x509_crt_get_dn) and ours compare it
DN="C=GB,ST=London,L=London,O=Vireo Test,CN=client.example.com"
DN_OPT=${DN//,/,,}
ok "certtool and psktool made a CA, server and client certificates and pre-shared keys"

X_CLI="tls-creds-x509,id=tls0,endpoint=client,dir=$T/cli"
X_SRV="tls-creds-x509,id=tls0,endpoint=server,dir=$T/srv"
P_CLI="tls-creds-psk,id=tls0,endpoint=client,dir=$T/psk-cli,username=alice"
P_SRV="tls-creds-psk,id=tls0,endpoint=server,dir=$T/psk-srv"

head -c 6M /dev/urandom >src.raw
head -c 6M /dev/urandom >src2.raw
cp src.raw disk.raw

# ---- qemu-nbd, x509 on TCP ---------------------------------------------------------------
PORT=$(free_port)
qemu-nbd --fork --pid-file="$T/qn.pid" -t -f raw -x disk -b 127.0.0.1 -p "$PORT" \
	--object "$X_SRV,verify-peer=off" --tls-creds tls0 disk.raw
PIDS="$PIDS $(cat qn.pid)"
wait_for "$PORT"
NBD="driver=nbd,server.type=inet,server.host=localhost,server.port=$PORT,export=disk"
same "map of an x509 TLS export (qemu-nbd, TCP) as qemu-img's" \
	"'$VI' map --output=json --object '$X_CLI' --image-opts '$NBD,tls-creds=tls0'" \
	"qemu-img map --output=json --object '$X_CLI' --image-opts '$NBD,tls-creds=tls0'"
check "vireo-img compare reads the x509 TLS export" \
	"$VI" compare --object "$X_CLI" --image-opts "$NBD,tls-creds=tls0" src.raw
check "vireo-img convert -n writes onto the x509 TLS export" \
	"$VI" convert -n --object "$X_CLI" --image-opts src2.raw "$NBD,tls-creds=tls0"
check "qemu-img compare over TLS reads what vireo-img wrote" \
	qemu-img compare --object "$X_CLI" --image-opts "$NBD,tls-creds=tls0" \
	"driver=raw,file.filename=$T/src2.raw"
check "qemu-io over TLS reads what vireo-img wrote" \
	qemu-io --object "$X_CLI" --image-opts "$NBD,tls-creds=tls0" \
	-c "read -v 4M 16" -c "read -v 0 16"
check "... and the export's file holds it" cmp disk.raw src2.raw
refused "a CA that did not sign the server's certificate is refused" \
	"certificate was refused" \
	"$VI" info --object "tls-creds-x509,id=tls0,endpoint=client,dir=$T/ca2dir" \
	--image-opts "$NBD,tls-creds=tls0"
refused "a tls-hostname the certificate does not hold is refused" "does not match" \
	"$VI" info --object "$X_CLI" --image-opts "$NBD,tls-creds=tls0,tls-hostname=disk.example"
refused "without tls-creds the server's demand for TLS is shown" "requires TLS" \
	"$VI" info --image-opts "$NBD"
stop qn.pid

# a qcow2 image on a TLS export: the format over file.driver=nbd, as qemu-img --image-opts
qemu-img create -q -f qcow2 q.qcow2 8M
qemu-io -f qcow2 -c "write -P 0x6b 1M 512k" q.qcow2 >/dev/null
PORT=$(free_port)
qemu-nbd --fork --pid-file="$T/qn.pid" -t -f raw -x q -b 127.0.0.1 -p "$PORT" \
	--object "$X_SRV,verify-peer=off" --tls-creds tls0 q.qcow2
PIDS="$PIDS $(cat qn.pid)"
wait_for "$PORT"
QNBD="driver=qcow2,file.driver=nbd,file.server.type=inet,file.server.host=127.0.0.1"
QNBD="$QNBD,file.server.port=$PORT,file.export=q,file.tls-creds=tls0"
same "map of a qcow2 image on an x509 TLS export as qemu-img's" \
	"'$VI' map --output=json --object '$X_CLI' --image-opts '$QNBD'" \
	"qemu-img map --output=json --object '$X_CLI' --image-opts '$QNBD'"
stop qn.pid

# ---- qemu-nbd, pre-shared keys on a unix socket -----------------------------------------
SOCK=$T/psk.sock
qemu-nbd --fork --pid-file="$T/qn.pid" -t -f raw -x disk -k "$SOCK" \
	--object "$P_SRV" --tls-creds tls0 disk.raw
PIDS="$PIDS $(cat qn.pid)"
wait_for "$SOCK"
UNBD="driver=nbd,server.type=unix,server.path=$SOCK,export=disk"
check "vireo-img compare reads a PSK TLS export (qemu-nbd, unix socket)" \
	"$VI" compare --object "$P_CLI" --image-opts "$UNBD,tls-creds=tls0" src2.raw
refused "a key the server does not hold is refused" "for user 'alice'" \
	"$VI" info --object "tls-creds-psk,id=tls0,endpoint=client,dir=$T/psk-wrong,username=alice" \
	--image-opts "$UNBD,tls-creds=tls0"
stop qn.pid
qemu-nbd --fork --pid-file="$T/qn.pid" -t -f raw -x disk -k "$SOCK" disk.raw
PIDS="$PIDS $(cat qn.pid)"
wait_for "$SOCK"
refused "TLS asked of a server without it is refused, never plaintext" "TLS" \
	"$VI" info --object "$P_CLI" --image-opts "$UNBD,tls-creds=tls0"
stop qn.pid

# ---- tls-authz: qemu-storage-daemon's and vireo-storage-daemon's -------------------------
if command -v qemu-storage-daemon >/dev/null; then
	PORT=$(free_port)
	qemu-storage-daemon --object "$X_SRV" --object "authz-simple,id=auth0,identity=$DN_OPT" \
		--blockdev "driver=file,node-name=f0,filename=$T/disk.raw" \
		--nbd-server "addr.type=inet,addr.host=127.0.0.1,addr.port=$PORT,tls-creds=tls0,tls-authz=auth0" \
		--export "type=nbd,id=e0,node-name=f0,name=disk,writable=on" \
		--pidfile "$T/qsd.pid" --daemonize
	PIDS="$PIDS $(cat qsd.pid)"
	NBD="driver=nbd,server.type=inet,server.host=localhost,server.port=$PORT,export=disk"
	check "qemu-storage-daemon's tls-authz lets in vireo's client with the certificate it names" \
		"$VI" compare --object "$X_CLI" --image-opts "$NBD,tls-creds=tls0" src2.raw
	refused "... and refuses one another CA signed" "nbd://localhost:$PORT/disk" \
		"$VI" info --object "tls-creds-x509,id=tls0,endpoint=client,dir=$T/other" \
		--image-opts "$NBD,tls-creds=tls0"
	stop qsd.pid
else
	echo "# qemu-storage-daemon is not installed: its tls-authz is not compared"
fi
PORT=$(free_port)
vsd vsd.pid "$PORT" --object "$X_SRV" --object "authz-simple,id=auth0,identity=$DN_OPT" \
	--blockdev "driver=raw,node-name=d0,file.driver=file,file.filename=$T/disk.raw" \
	--nbd-server "addr.type=inet,addr.host=127.0.0.1,addr.port=$PORT,tls-creds=tls0,tls-authz=auth0" \
	--export "nbd,id=e0,node-name=d0,name=disk,writable=on"
NBD="driver=nbd,server.type=inet,server.host=localhost,server.port=$PORT,export=disk"
check "vireo-storage-daemon's tls-authz lets in qemu-img with the certificate it names" \
	qemu-img compare --object "$X_CLI" --image-opts "$NBD,tls-creds=tls0" \
	"driver=raw,file.filename=$T/src2.raw"
check "... qemu-io writes through it" \
	qemu-io --object "$X_CLI" --image-opts "$NBD,tls-creds=tls0" -c "write -P 0x3e 0 64k"
check "... and vireo's own client" \
	"$VI" info --object "$X_CLI" --image-opts "$NBD,tls-creds=tls0"
if command -v nbdinfo >/dev/null; then
	check "... and nbdinfo (libnbd) with that certificate" \
		nbdinfo "nbds://localhost:$PORT/disk?tls-certificates=$T/cli"
	refused "... but not nbdinfo without a client certificate" "nbdinfo" \
		nbdinfo "nbds://localhost:$PORT/disk?tls-certificates=$T/nocert"
fi
refused "... nor a client whose certificate another CA signed" "nbd://localhost:$PORT/disk" \
	"$VI" info --object "tls-creds-x509,id=tls0,endpoint=client,dir=$T/other" \
	--image-opts "$NBD,tls-creds=tls0"
stop vsd.pid
# RFC 4514's order (certtool -i's) is not the one compared: someone else
vsd vsd.pid "$PORT" --object "$X_SRV" \
	--object "authz-simple,id=auth1,identity=CN=client.example.com,,O=Vireo Test,,L=London,,ST=London,,C=GB" \
	--blockdev "driver=raw,node-name=d0,file.driver=file,file.filename=$T/disk.raw" \
	--nbd-server "addr.type=inet,addr.host=127.0.0.1,addr.port=$PORT,tls-creds=tls0,tls-authz=auth1" \
	--export "nbd,id=e0,node-name=d0,name=disk"
refused "an identity that names someone else refuses qemu-img's client" "TLS" \
	qemu-img info --object "$X_CLI" --image-opts "$NBD,tls-creds=tls0"
stop vsd.pid
if grep -q "'$DN' is not allowed by tls-authz 'auth1'" vsd.log; then
	ok "the daemon's log names the certificate it refused"
else
	not_ok "the daemon's log names the certificate it refused" "$(cat vsd.log)"
fi

# ---- a node over TLS under the sandbox: qemu-nbd restarted, the receiver redoes TLS --------
SOCK=$T/psk.sock
serve_psk() {
	qemu-nbd --fork --pid-file="$T/qn.pid" -t -f raw -x disk -k "$SOCK" \
		--object "$P_SRV" --tls-creds tls0 disk.raw
	PIDS="$PIDS $(cat qn.pid)"
	wait_for "$SOCK"
}
serve_psk
cp disk.raw before.raw
PLAIN=$T/plain.sock
vsd vsd.pid "$PLAIN" --sandbox on --object "$P_CLI" \
	--blockdev "driver=nbd,node-name=n0,server.type=unix,server.path=$SOCK,export=disk,tls-creds=tls0,reconnect-delay=30" \
	--nbd-server "addr.type=unix,addr.path=$PLAIN" --export "nbd,id=e0,node-name=n0,name=n0"
check "a sandboxed daemon reads a PSK TLS export through its node" \
	qemu-img compare -f raw "nbd+unix:///n0?socket=$PLAIN" before.raw
kill -9 "$(cat qn.pid)"
rm -f "$SOCK"
(sleep 1; serve_psk) &
restart=$!
check "... qemu-nbd killed and started again: the receiver reconnects with TLS" \
	qemu-img compare -f raw "nbd+unix:///n0?socket=$PLAIN" before.raw
wait $restart
PIDS="$PIDS $(cat qn.pid)"
if kill -0 "$(cat vsd.pid)" 2>/dev/null && grep -q reconnected vsd.log &&
	! grep -q "sandbox" vsd.log; then
	ok "... under its seccomp filter (alive, 'reconnected', no sandbox line)"
else
	not_ok "... under its seccomp filter (alive, 'reconnected', no sandbox line)" "$(cat vsd.log)"
fi
stop vsd.pid
stop qn.pid

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
