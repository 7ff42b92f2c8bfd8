#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# LUKS encryption against qemu-img and qemu-io, both ways (issue 18): standalone luks images
# and qcow2 encrypt.format=luks, secrets given as --object secret,id=...,data= | file= |
# format=base64:
#  - made by vireo-img (create, convert -O), read and written by qemu-io with the same secret;
#  - made and filled by qemu-img/qemu-io, read by vireo-img (convert gives qemu-img's bytes)
#    and written by vireo (img_io: partial sectors, partial clusters, zeroes, over a backing
#    file), then read by qemu-io with the patterns expected; qemu-img check clean;
#  - info without the key (header only) as qemu-img's (but the random uuid and iterations);
#  - a wrong passphrase and a missing key-secret refused with QEMU's words; the data on disk is
#    not the plaintext;
#  - hostile LUKS headers: a message naming the field, exit 1, never a signal.
# usage: luks.sh VIREO_IMG IMG_IO     (exit 77 when qemu-img / qemu-io / python3 are missing)
set -u
VI=$(realpath "$1")
IO=$(realpath "$2")
. "$(dirname "$(realpath "$0")")/tap.sh"
tap_start luks qemu-img qemu-io python3

refused() { # name pattern command...: exit 1 with a message matching pattern
	"${@:3}" >ref.out 2>&1
	local rc=$?
	if [ $rc = 1 ] && grep -q -- "$2" ref.out; then ok "$1: $(head -c 200 ref.out)"
	else bad "$1 (exit $rc)"; sed 's/^/#   /' ref.out | head -5; fi
}

S=(--object secret,id=sec0,data=vireo-pass)
IT=10 # PBKDF2 milliseconds: keep the test fast
# opts FMT FILE: the --image-opts string with the key for a luks or qcow2 image
opts() { if [ "$1" = luks ]; then echo "driver=luks,file.filename=$2,key-secret=sec0"
	 else echo "driver=qcow2,file.filename=$2,encrypt.key-secret=sec0"; fi; }
qio() { qemu-io "${S[@]}" --image-opts "$(opts "$1" "$2")" "${@:3}"; }
reads() { # name fmt image "PATTERN OFF LEN"...: qemu-io verifies each
	local args=() c
	for c in "${@:4}"; do args+=(-c "read -P $c"); done
	if qio "$2" "$3" "${args[@]}" >reads.out 2>&1 && ! grep -q "verification failed" reads.out
	then ok "$1: qemu-io reads"; else bad "$1: qemu-io reads"; sed 's/^/#   /' reads.out | head -4; fi
}
same_plain() { # name fmt image: vireo's decrypted bytes as qemu-img's
	rm -f v.raw q.raw
	"$VI" convert "${S[@]}" --image-opts -O raw "$(opts "$2" "$3")" v.raw
	qemu-img convert "${S[@]}" --image-opts -O raw "$(opts "$2" "$3")" q.raw
	if [ -s q.raw ] && cmp -s v.raw q.raw; then ok "$1: same plaintext"
	else bad "$1: same plaintext"; fi
}
same_info() { # name image: info without a key, as qemu-img's but uuid and iterations
	"$VI" info "$2" | grep -v -e uuid -e iters >v.txt
	qemu-img info "$2" | grep -v -e uuid -e iters >q.txt
	if cmp -s v.txt q.txt; then ok "$1: info"; else bad "$1: info"; diff v.txt q.txt | head | sed 's/^/#   /'; fi
	"$VI" info --output=json "$2" >v.json; qemu-img info --output=json "$2" >q.json
	if python3 - <<'EOF'
import json, sys
def scrub(o):
    if isinstance(o, dict):
        return {k: scrub(v) for k, v in o.items() if k not in ("uuid", "iters", "master-key-iters")}
    if isinstance(o, list):
        return [scrub(v) for v in o]
    return o
sys.exit(scrub(json.load(open("v.json"))) != scrub(json.load(open("q.json"))))
EOF
	then ok "$1: info --output=json"; else bad "$1: info --output=json"; fi
}
qemu_clean() {
	if qemu-img check "${S[@]}" --image-opts "$(opts qcow2 "$2")" >chk.out 2>&1; then
		ok "$1: qemu-img check"; else bad "$1: qemu-img check"; sed 's/^/#   /' chk.out; fi
}

for fmt in luks qcow2; do
	if [ $fmt = luks ]; then o="key-secret=sec0,iter-time=$IT"
	else o="encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=$IT"; fi
	# vireo makes it, qemu writes and reads, vireo reads
	run "$fmt: vireo-img create" "$VI" create -q -f $fmt "${S[@]}" -o "$o" v.$fmt 4M
	same_info "$fmt made by vireo" v.$fmt
	run "$fmt: qemu-io writes" qio $fmt v.$fmt -c 'write -P 0x11 0 1M' -c 'write -P 0x12 3M 5000'
	reads "$fmt made by vireo" $fmt v.$fmt "0x11 0 1M" "0x12 3M 5000"
	same_plain "$fmt made by vireo, written by qemu" $fmt v.$fmt
	[ $fmt = qcow2 ] && qemu_clean "$fmt made by vireo" v.$fmt
	# qemu makes it, vireo writes, qemu reads
	qemu-img create -q -f $fmt "${S[@]}" -o "$o" q.$fmt 4M
	qio $fmt q.$fmt -c 'write -P 0x21 0 2M' >/dev/null
	run "$fmt made by qemu: vireo writes" "$IO" -s secret,id=sec0,data=vireo-pass -f $fmt \
		-o "$( [ $fmt = luks ] && echo key-secret || echo encrypt.key-secret)=sec0" q.$fmt \
		-c 'write -P 0x22 1000 3000' -c 'write -P 0x23 1M 64k' -c 'write -z 2M 4k' \
		-c 'write -P 0x24 3M 512' -c 'read -P 0x22 1000 3000'
	reads "$fmt made by qemu, written by vireo" $fmt q.$fmt "0x21 0 1000" "0x22 1000 3000" \
		"0x21 4000 1044576" "0x23 1M 64k" "0 2M 4k" "0x24 3M 512"
	same_plain "$fmt made by qemu, written by vireo" $fmt q.$fmt
	[ $fmt = qcow2 ] && qemu_clean "$fmt made by qemu, written by vireo" q.$fmt
	same_info "$fmt made by qemu" q.$fmt
	# convert into an encrypted image
	qemu-img create -q -f raw src.raw 3M
	qemu-io -f raw -c 'write -P 0x31 0 1M' -c 'write -P 0x32 2M 7000' src.raw >/dev/null
	run "$fmt: convert -O $fmt" "$VI" convert "${S[@]}" -O $fmt -o "$o" src.raw c.$fmt
	if qemu-img compare -q "${S[@]}" --image-opts "$(opts $fmt c.$fmt)" driver=raw,file.filename=src.raw
	then ok "$fmt: converted, qemu-img compare"; else bad "$fmt: converted, qemu-img compare"; fi
	if grep -q "$(head -c 64 src.raw | tr -d '\0')" c.$fmt 2>/dev/null && [ -n "$(head -c 64 src.raw | tr -d '\0')" ]
	then bad "$fmt: the plaintext is on disk"; else ok "$fmt: the plaintext is not on disk"; fi
	# refusals
	refused "$fmt: wrong passphrase" "Invalid password, cannot unlock any keyslot" \
		"$VI" convert --object secret,id=sec0,data=wrong --image-opts -O raw \
		"$(opts $fmt v.$fmt)" x.raw
	refused "$fmt: no key-secret" "key-secret' is required for cipher" \
		"$VI" convert -O raw v.$fmt x.raw
	refused "$fmt: no such secret" "No secret with id 'sec0'" \
		"$VI" convert --image-opts -O raw "$(opts $fmt v.$fmt)" x.raw
done

# key slots: vireo adds one (qemu opens with it), removes the first by its passphrase (qemu can
# no longer open with that), refuses to erase the last; qemu adds one, vireo opens with it
S2=(--object secret,id=sec0,data=vireo-pass --object secret,id=sec1,data=second)
for fmt in luks qcow2; do
	if [ $fmt = luks ]; then p=""; k=key-secret; else p="encrypt."; k=encrypt.key-secret; fi
	img=c.$fmt
	run "$fmt: amend adds a key slot" "$VI" amend "${S2[@]}" --image-opts \
		-o "${p}state=active,${p}new-secret=sec1,${p}iter-time=$IT" "$(opts $fmt $img)"
	if qemu-io --object secret,id=x,data=second --image-opts \
		"driver=$fmt,file.filename=$img,$k=x" -c 'read -P 0x31 0 1M' >/dev/null 2>&1
	then ok "$fmt: qemu-io opens with the new passphrase"
	else bad "$fmt: qemu-io opens with the new passphrase"; fi
	run "$fmt: amend erases the slot of the old passphrase" "$VI" amend "${S2[@]}" \
		--image-opts -o "${p}state=inactive,${p}old-secret=sec0" \
		"driver=$fmt,file.filename=$img,$k=sec1"
	if qio $fmt $img -c 'read 0 4k' 2>&1 | grep -q "Invalid password"; then
		ok "$fmt: the old passphrase no longer opens it"
	else bad "$fmt: the old passphrase no longer opens it"; fi
	refused "$fmt: erasing the last slot" "only active keyslot" "$VI" amend "${S2[@]}" \
		--image-opts -o "${p}state=inactive,${p}keyslot=1" "driver=$fmt,file.filename=$img,$k=sec1"
	refused "$fmt: overwriting an active slot" "Refusing to overwrite active keyslot 1" \
		"$VI" amend "${S2[@]}" --image-opts \
		-o "${p}state=active,${p}new-secret=sec0,${p}keyslot=1,${p}iter-time=$IT" \
		"driver=$fmt,file.filename=$img,$k=sec1"
	run "$fmt: qemu-img amend adds a slot back" qemu-img amend "${S2[@]}" --image-opts \
		-o "${p}state=active,${p}new-secret=sec0,${p}iter-time=$IT" \
		"driver=$fmt,file.filename=$img,$k=sec1"
	same_plain "$fmt: vireo opens with qemu's new slot" $fmt $img
	[ $fmt = qcow2 ] && qemu_clean "$fmt: after the key slot changes" $img
done

# the secret from a file and base64; qcow2 encrypted over a backing file
printf 'vireo-pass' >pass.txt
run "key from file=" "$VI" convert --object secret,id=sec0,file=pass.txt --image-opts -O raw \
	"$(opts luks v.luks)" f.raw
run "key as base64" "$VI" convert --object secret,id=sec0,data=dmlyZW8tcGFzcw==,format=base64 \
	--image-opts -O raw "$(opts luks v.luks)" b.raw
if cmp -s f.raw b.raw; then ok "file= and base64 the same"; else bad "file= and base64 the same"; fi
qemu-img create -q -f raw base.raw 4M
qemu-io -f raw -c 'write -P 0x41 0 4M' base.raw >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw "${S[@]}" \
	-o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=$IT ob.qcow2 4M
run "encrypted over a backing file: partial-cluster writes" "$IO" \
	-s secret,id=sec0,data=vireo-pass -o encrypt.key-secret=sec0 ob.qcow2 \
	-c 'write -P 0x42 70000 1000' -c 'write -P 0x43 1M 100'
reads "encrypted over a backing file" qcow2 ob.qcow2 "0x41 0 70000" "0x42 70000 1000" \
	"0x41 71000 977576" "0x43 1M 100" "0x41 1048676 3145628"
qemu_clean "encrypted over a backing file" ob.qcow2
refused "encrypted qcow2 refuses compression" "compressed clusters cannot be" \
	"$VI" convert -c "${S[@]}" -O qcow2 \
	-o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=$IT src.raw cc.qcow2

# hostile LUKS headers
hostile() { # name pattern python-statement on x.luks (f, put)
	cp v.luks x.luks
	python3 - x.luks <<EOF
import struct, sys
f = open(sys.argv[1], "r+b")
def put(o, fmt, v): f.seek(o); f.write(struct.pack(fmt, v))
$3
EOF
	local rc
	"$VI" convert "${S[@]}" --image-opts -O raw "$(opts luks x.luks)" x.raw >/dev/null 2>&1
	rc=$?
	if [ $rc -ge 128 ]; then bad "$1: signal $((rc - 128))"; return; fi
	refused "$1" "$2" "$VI" info x.luks
}
hostile "LUKS version 2 header" "luks (version 2)" "put(6, '>H', 2)"
hostile "cipher mode" "cbc-plain" "f.seek(40); f.write(b'cbc-plain'.ljust(32, b'\0'))"
hostile "key bytes" "48-byte key" "put(108, '>I', 48)"
hostile "slot state" "key slot 3: state" "put(208 + 3 * 48, '>I', 7)"
hostile "stripes" "key slot 0" "put(208 + 44, '>I', 0)"
hostile "key material past the end" "past the end of the header area" "put(208 + 40, '>I', 1 << 30)"
hostile "payload past the end of the file" "payload offset" "put(104, '>I', 1 << 30)"

tap_end
