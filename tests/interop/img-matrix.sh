#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The vireo-img verb x format matrix (issue 13): every verb on every format vireo-img supports,
# compared with qemu-img on the same input.
#
#  - Formats: raw; qcow2 compat=0.10 and 1.1; each version over a backing file (a qcow2 one and
#    a raw one); qcow2 with an external data file; a compressed qcow2 (with some plain clusters
#    written over it); a qcow2 with an internal snapshot. qemu-img and qemu-io make the inputs:
#    they are the peer's images.
#  - Read-only verbs (info human / json / --backing-chain, check human / json, map human / json,
#    measure human / json, compare, -s included) run on the same file with both tools: the same
#    exit status, the same JSON (jq -S; nothing excluded), the same human text.
#  - Modifying verbs (create; convert to raw and qcow2, compat=0.10, -c, -B, -S 0, cluster_size,
#    data_file; resize; amend; rebase, safe and -u; commit; dd; check -r) run with each tool on
#    its own copy of the inputs: the same exit status, then the results compared: the same guest
#    content as qemu-img's result (as the source's, for convert; as before, for a safe rebase),
#    `qemu-img check` of vireo's result clean, `qemu-img info` of both results the same (but
#    "actual-size" and "children": the layout of each tool's file), vireo-img info of vireo's
#    result the same as qemu-img info of it, and for convert the same allocation (data, zero,
#    hole, compressed ranges) and vireo-img map of it the same as qemu-img map of it.
#  - check's own statuses on images with a leak (3) and corruptions (2), and their repair.
#  - Each verb on a missing file, a directory, an empty file, a file without read permission
#    (run as nobody when root), a qcow2 header cut short, qcow2 files cut mid-L1 and
#    mid-refcount table, an L1 and an L2 entry pointing at misaligned tables / clusters: the exit
#    status qemu-img gives (an error's where vireo refuses at open what qemu-img reads lazily,
#    see failed_rc), a message on stderr naming the file, never a signal.
#  - Probing: a file that starts with another format's magic (qcow2 version 9, VMDK, VHDX, VPC,
#    qcow version 1, LUKS, QED, VDI) is refused without -f by info/convert/check/map, with a
#    message naming the format, and opens as raw with -f raw; plain data, zeroes and text probe
#    as raw. VPC and VDI are formats vireo reads (issue 20): their magic followed by zeroes is a
#    damaged image of that format, refused the same way (the message names the damaged field
#    and the format) and by qemu-img too. So is VMDK: its magic followed by zeroes (a grain size
#    of 0) or alone (a header cut short). So is VHDX, and a real VHDX image probes as vhdx,
#    its info and content as qemu-img's.
#
# Any exit status >= 128 of vireo-img (a signal) fails the check it belongs to.
# Output: one "ok - NAME" / "not ok - NAME" line per check (details of a failure on "#" lines
# after it), "# SECTION (at Ns)" lines, then "N passed, N failed"; exit 1 on any failure, 77 when
# a peer tool is missing. Takes about a minute on 2 CPUs.
# usage: img-matrix.sh VIREO_IMG
set -u
if [ $# -ne 1 ]; then
	echo "usage: $0 VIREO_IMG" >&2
	exit 2
fi
for t in qemu-img qemu-io jq; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
if [ "$(id -u)" = 0 ] && { ! command -v setpriv >/dev/null || ! id nobody >/dev/null 2>&1 ||
			   ! getent group nogroup >/dev/null; }; then
	echo "SKIP: no setpriv, user nobody or group nogroup to run the unreadable-file cases with"
	exit 77
fi
T=$(mktemp -d /tmp/vireo-img-matrix.XXXXXX)
trap 'cd /; rm -rf "$T"' EXIT
trap 'exit 130' INT TERM # (the EXIT trap cleans up then too: a test timeout sends TERM)
# 0755 all the way, and a copy of the binary, so that nobody can reach both (unreadable-file cases)
chmod 755 "$T"
cp "$(realpath "$1")" "$T/vireo-img" && chmod 755 "$T/vireo-img"
VI=$T/vireo-img
if ! "$VI" --version >/dev/null 2>&1; then
	echo "not ok - $1 runs: $("$VI" --version 2>&1 | head -c 300)"
	echo "0 passed, 1 failed"
	exit 1
fi
L=$T/log
mkdir "$L" "$T/src" "$T/bad" "$T/probe"
export LC_ALL=C
passed=0
failed=0

# Known gaps: checks where vireo-img refuses, with a message, what qemu-img does, because the
# feature is not built yet. Each line is "CHECK-NAME-PATTERN|why"; such a check's failure is
# reported "ok ... # TODO why", and its success fails ("passes now: drop it from the list"), so
# the list always says exactly what is missing.
known_gaps=(
	"amend -o refcount_bits=8 q3*|changing refcount_bits (rewriting the refcount structures) is not built"
)
gap_of() { # name: prints the reason when it is a known gap
	local g
	for g in "${known_gaps[@]}"; do
		# shellcheck disable=SC2053 # the pattern is a glob on purpose
		if [[ $1 == ${g%%|*} ]]; then echo "${g#*|}"; return 0; fi
	done
	return 1
}
ok() {
	local why
	if why=$(gap_of "$1"); then
		failed=$((failed + 1))
		echo "not ok - $1 (a known gap passes now: drop it from known_gaps: $why)"
		return
	fi
	passed=$((passed + 1)); echo "ok - $1"
}
bad() { # name [details]
	local why
	if why=$(gap_of "$1"); then
		passed=$((passed + 1)); echo "ok - $1 # TODO known gap: $why"
		return
	fi
	failed=$((failed + 1))
	echo "not ok - $1"
	if [ -n "${2:-}" ]; then printf '%s\n' "$2" | head -n 24 | sed 's/^/#   /'; fi
}

# V / Q ARGS...: run vireo-img / qemu-img; stdout, stderr in $L/{v,q}.{out,err}, status in vrc/qrc.
# NOBODY=1 runs them without the power to read a file of mode 000: as nobody when we are root.
if [ "$(id -u)" = 0 ]; then
	drop=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
else
	drop=()
fi
as() { if [ "${NOBODY:-0}" = 1 ]; then "${drop[@]}" "$@"; else "$@"; fi; }
V() { as "$VI" "$@" >"$L/v.out" 2>"$L/v.err"; vrc=$?; }
Q() { as qemu-img "$@" >"$L/q.out" 2>"$L/q.err"; qrc=$?; }
VQ() { V "$@"; Q "$@"; }

stderrs() {
	echo "vireo-img exit $vrc, stderr: $(head -c 600 "$L/v.err")"
	echo "qemu-img  exit $qrc, stderr: $(head -c 600 "$L/q.err")"
}

# Same exit status as qemu-img (and no signal). Returns 0 when both succeeded.
same_rc() { # name
	if [ "$vrc" -ge 128 ]; then
		bad "$1: exit status" "vireo-img killed by signal $((vrc - 128))"$'\n'"$(stderrs)"
	elif [ "$vrc" = "$qrc" ]; then
		ok "$1: exit status $vrc"
	else
		bad "$1: exit status" "$(stderrs)"
	fi
	[ "$vrc" = 0 ] && [ "$qrc" = 0 ]
}

# The JSON both printed, through the same jq filter, is the same.
same_json() { # name filter
	local d
	if [ ! -s "$L/q.out" ] || [ ! -s "$L/v.out" ]; then
		bad "$1: json" "no JSON printed"$'\n'"$(stderrs)"
	elif ! jq -S "$2" "$L/q.out" >"$L/q.json" 2>"$L/jq.err"; then
		bad "$1: json" "qemu-img's output is not JSON: $(head -c 300 "$L/q.out")"
	elif ! jq -S "$2" "$L/v.out" >"$L/v.json" 2>"$L/jq.err"; then
		bad "$1: json" "vireo-img's output is not JSON: $(head -c 300 "$L/v.out") $(cat "$L/jq.err")"
	elif d=$(diff -u --label qemu-img --label vireo-img "$L/q.json" "$L/v.json"); then
		ok "$1: json"
	else
		bad "$1: json" "$d"
	fi
}

# Both printed the same text (after filter: a command reading stdin).
same_text() { # name [filter...]
	local d name=$1
	shift
	if [ $# = 0 ]; then set -- cat; fi
	"$@" <"$L/q.out" >"$L/q.txt"
	"$@" <"$L/v.out" >"$L/v.txt"
	if d=$(diff -u --label qemu-img --label vireo-img "$L/q.txt" "$L/v.txt"); then
		ok "$name: output"
	else
		bad "$name: output" "$d"
	fi
}

# A failure message exists and names the file (only when vireo-img failed).
names_file() { # name file
	if [ "$vrc" = 0 ] || [ "$vrc" -ge 128 ]; then return; fi
	if [ -s "$L/v.err" ] && grep -qF -- "$2" "$L/v.err"; then
		ok "$1: message names $2"
	else
		bad "$1: message names $2" "stderr: $(head -c 600 "$L/v.err")"
	fi
}

# ---------------------------------------------------------------------------------------------
# Inputs (made by the peer)
cd "$T/src" || exit 1
{
	qemu-img create -q -f raw raw.raw 4M
	qemu-io -f raw -c 'write -P 0xa1 0 1M' -c 'write -P 0xa2 2M 512k' raw.raw
	qemu-img create -q -f qcow2 -o compat=0.10 q2.qcow2 4M
	qemu-io -c 'write -P 0x21 0 256k' -c 'write -z 1M 64k' -c 'write -P 0x22 3M 100k' q2.qcow2
	qemu-img create -q -f qcow2 q3.qcow2 4M
	qemu-io -c 'write -P 0x31 0 256k' -c 'write -z 1M 128k' -c 'write -P 0x32 3M 100k' q3.qcow2
	qemu-img create -q -f qcow2 -o compat=0.10 -b q3.qcow2 -F qcow2 q2b.qcow2
	qemu-io -c 'write -P 0x61 128k 192k' -c 'write -P 0x62 3100k 8k' q2b.qcow2
	qemu-img create -q -f qcow2 -b raw.raw -F raw q3b.qcow2 6M
	qemu-io -c 'write -P 0x41 512k 1M' -c 'write -z 2M 64k' -c 'write -P 0x42 5M 64k' q3b.qcow2
	qemu-img create -q -f qcow2 -o data_file=q3d.data q3d.qcow2 4M
	qemu-io -c 'write -P 0x51 0 1M' -c 'write -P 0x52 2M 64k' q3d.qcow2
	qemu-img convert -c -O qcow2 q3.qcow2 q3c.qcow2
	qemu-io -c 'write -P 0x71 2M 128k' q3c.qcow2
	# an internal snapshot, then writes over what it holds
	qemu-img create -q -f qcow2 q3s.qcow2 4M
	qemu-io -c 'write -P 0x91 0 256k' q3s.qcow2
	qemu-img snapshot -c snap1 q3s.qcow2
	qemu-io -c 'write -P 0x92 128k 256k' -c 'write -z 3M 64k' q3s.qcow2
	# other content for compare, a new backing file for rebase
	qemu-img create -q -f raw other.raw 4M
	qemu-io -f raw -c 'write -P 0xa1 0 1M' -c 'write -P 0xa3 2M 4k' other.raw
	qemu-img create -q -f raw new.raw 4M
	qemu-io -f raw -c 'write -P 0x99 1M 1M' new.raw
	qemu-img create -q -f raw zero.raw 4M
	# targets for convert -n
	qemu-img create -q -f raw full.raw 6M
	qemu-io -f raw -c 'write -P 0xee 0 6M' full.raw
	qemu-img create -q -f qcow2 full.qcow2 6M
	qemu-io -c 'write -P 0xee 0 6M' full.qcow2
	# raw.raw, longer: with zeroes, and with data past raw.raw's end
	cp raw.raw long0.raw
	truncate -s 6M long0.raw
	cp long0.raw long1.raw
	qemu-io -f raw -c 'write -P 0xa4 5000k 4k' long1.raw
} >/dev/null || { echo "could not make the inputs"; exit 1; }
IMAGES="raw.raw q2.qcow2 q3.qcow2 q2b.qcow2 q3b.qcow2 q3d.qcow2 q3c.qcow2 q3s.qcow2"
mkdir "$T/cv"
for img in $IMAGES; do
	qemu-img convert -O raw "$img" "../cv/$img.raw" &&
		qemu-img convert -O qcow2 "$img" "../cv/$img.qcow2" ||
		{ echo "could not make the inputs"; exit 1; }
done

# Fresh copies of the inputs @files for each tool, in $T/v and $T/q (same names in both, so that
# what the tools print about them can be compared).
fresh() { # files...
	local f paths=()
	rm -rf "$T/v" "$T/q"
	mkdir "$T/v" "$T/q"
	for f in $(printf '%s\n' "$@" | sort -u); do paths+=("$T/src/$f"); done
	cp -a "${paths[@]}" "$T/v/" && cp -a "${paths[@]}" "$T/q/" || exit 1
}
# at DIR CMD...: CMD run inside DIR (no subshell: V and Q set vrc / qrc)
at() {
	local here=$PWD rc
	cd "$1" || exit 1
	shift
	"$@"
	rc=$?
	cd "$here" || exit 1
	return $rc
}
# Vin / Qin ARGS: V / Q run inside $WD/v / $WD/q
WD=$T
Vin() { at "$WD/v" V "$@"; }
Qin() { at "$WD/q" Q "$@"; }

# The guest content of @file as qemu-img reads it (raw, into @out), read from inside @dir: qemu-img
# resolves an image's relative data_file name against its working directory, not the image's.
content() { # dir file out
	local f=()
	case $2 in *.raw | *.data) f=(-f raw) ;; esac
	at "$1" qemu-img convert "${f[@]}" -O raw "$2" "$3" >"$L/conv.err" 2>&1
}

# qemu-img's JSON about a file in @dir (run from inside it), through @filter, into @out; a failure
# leaves a text naming @dir instead, so that two failures never compare equal.
qjson() { # dir filter out qemu-img-args...
	local dir=$1 filter=$2 out=$3
	shift 3
	if at "$dir" qemu-img "$@" >"$L/qj.out" 2>&1 && jq -S "$filter" "$L/qj.out" >"$out" 2>&1
	then return 0; fi
	{ echo "qemu-img $* failed in $dir:"; cat "$L/qj.out"; } >"$out"
}

# vireo-img's JSON about a file in @dir, normalized, into @out (or a failure naming @dir).
vjson() { # dir out vireo-img-args...
	local dir=$1 out=$2
	shift 2
	if at "$dir" "$VI" "$@" >"$L/vj.out" 2>&1 && jq -S . "$L/vj.out" >"$out" 2>&1; then return 0; fi
	{ echo "vireo-img $* failed in $dir:"; cat "$L/vj.out"; } >"$out"
}

# Two files the same (qemu-img's first): ok, or the diff.
same_files() { # name qemu-file vireo-file
	local d
	if d=$(diff -u --label qemu-img --label vireo-img "$2" "$3"); then ok "$1"; else bad "$1" "$d"; fi
}

# After a modifying verb: the files @files in $T/v and $T/q show the same content and the same
# `qemu-img info`; vireo's qcow2 files pass `qemu-img check`, and vireo-img info says of them
# what qemu-img info says (everything: the same file). NOCONTENT=1: the caller compared a qcow2
# file's content already. With REF=src the content is
# compared with the file's before the verb instead (in $T/src).
# Excluded from the info comparison: "actual-size" and "children" (the protocol node: file
# length and allocation), which describe how each tool laid the image out in its file, not what
# the image is; two correct tools may differ there.
same_results() { # name files...
	local name=$1 f d ref="qemu-img's" dir=$T/${REF:-q} magic slow=
	shift
	if [ "${REF:-q}" = src ]; then ref="before"; fi
	# with a data file, qemu-img must read each image from inside its own directory
	case " $* " in *".data "*) slow=1 ;; esac
	for f in "$@"; do
		magic=
		read -r -N 4 magic <"$T/v/$f"
		if [ "$magic" != $'QFI\xfb' ]; then
			# raw (a raw image, a data file, a raw output): its bytes are its content
			if d=$(cmp "$dir/$f" "$T/v/$f" 2>&1); then ok "$name: $f same content as $ref"
			else bad "$name: $f same content as $ref" "$d"; fi
			continue
		fi
		if [ -n "${NOCONTENT:-}" ]; then
			: # compared by the caller
		elif [ -z "$slow" ]; then
			if qemu-img compare -q "$dir/$f" "$T/v/$f" >"$L/cmp.err" 2>&1; then
				ok "$name: $f same content as $ref"
			else
				bad "$name: $f same content as $ref" "$(cat "$L/cmp.err")"
			fi
		elif ! content "$dir" "$f" "$L/q.raw"; then
			bad "$name: $f same content as $ref" "$ref: $(cat "$L/conv.err")"
		elif ! content "$T/v" "$f" "$L/v.raw"; then
			bad "$name: $f same content as $ref" "vireo-img's: $(cat "$L/conv.err")"
		elif d=$(cmp "$L/q.raw" "$L/v.raw" 2>&1); then
			ok "$name: $f same content as $ref"
		else
			bad "$name: $f same content as $ref" "$d"
		fi
		if at "$T/v" qemu-img check "$f" >"$L/chk.out" 2>&1; then
			ok "$name: $f qemu-img check clean"
		else
			bad "$name: $f qemu-img check clean" "$(cat "$L/chk.out")"
		fi
		qjson "$T/v" . "$L/vi-full.json" info --output=json "$f"
		vjson "$T/v" "$L/vv.json" info --output=json "$f"
		same_files "$name: $f vireo-img info of it as qemu-img's" "$L/vi-full.json" "$L/vv.json"
		# (their sizes, compared here, are what qemu-img compare does not compare)
		jq -S 'del(.["actual-size"], .children)' "$L/vi-full.json" >"$L/vi.json" 2>&1
		qjson "$T/q" 'del(.["actual-size"], .children)' "$L/qi.json" info --output=json "$f"
		same_files "$name: $f same qemu-img info as qemu-img's result" "$L/qi.json" "$L/vi.json"
	done
}

# A file a verb should not have touched is byte for byte what it was.
unchanged() { # name files...
	local name=$1 f
	shift
	for f in "$@"; do
		if cmp -s "$T/src/$f" "$T/v/$f"; then ok "$name: $f unchanged"
		else bad "$name: $f unchanged"; fi
	done
}

own_of() { # image: its files (with its data file)
	case $1 in q3d.qcow2) echo "$1 q3d.data" ;; *) echo "$1" ;; esac
}
backing_of() { # image: its backing file
	case $1 in q2b.qcow2) echo q3.qcow2 ;; q3b.qcow2) echo raw.raw ;; esac
}

# ---------------------------------------------------------------------------------------------
# Read-only verbs, both tools on the same file
echo "# read-only verbs (at ${SECONDS}s)"
for img in $IMAGES; do
	cd "$T/src" || exit 1
	# info: the whole JSON, nothing excluded (the protocol node under "children" included)
	VQ info --output=json "$img"
	same_rc "info --output=json $img" && same_json "info --output=json $img" .
	VQ info "$img"
	same_rc "info $img" && same_text "info $img"
	VQ info --backing-chain --output=json "$img"
	same_rc "info --backing-chain --output=json $img" &&
		same_json "info --backing-chain --output=json $img" .
	VQ info --backing-chain "$img"
	same_rc "info --backing-chain $img" && same_text "info --backing-chain $img"

	VQ check --output=json "$img"
	same_rc "check --output=json $img" && same_json "check --output=json $img" .
	VQ check "$img"
	same_rc "check $img" && same_text "check $img"

	VQ map --output=json "$img"
	same_rc "map --output=json $img" && same_json "map --output=json $img" .
	VQ map "$img"
	same_rc "map $img" && same_text "map $img"

	for o in "-O raw" "-O qcow2" "-O qcow2 -o compat=0.10" "-O qcow2 -o cluster_size=4k"; do
		VQ measure --output=json $o "$img"
		same_rc "measure --output=json $o $img" && same_json "measure --output=json $o $img" .
	done
	VQ measure -O qcow2 "$img"
	same_rc "measure -O qcow2 $img" && same_text "measure -O qcow2 $img"

	VQ compare "$img" "$img"
	same_rc "compare $img $img" && same_text "compare $img $img"
	VQ compare "$img" other.raw
	same_rc "compare $img other.raw"
	same_text "compare $img other.raw"
	# -s: also fails on a size or allocation ("block status") difference; against other
	# content, the image's raw and qcow2 conversions by qemu-img (same content, other
	# allocation), and itself
	for other in raw.raw "../cv/$img.raw" "../cv/$img.qcow2" "$img"; do
		VQ compare -s "$img" "$other"
		same_rc "compare -s $img $other"
		same_text "compare -s $img $other"
	done
done
cd "$T/src" || exit 1
VQ measure --output=json -O qcow2 --size 1G
same_rc "measure --size 1G" && same_json "measure --size 1G" .
VQ measure --output=json -O qcow2 -o compat=0.10,cluster_size=512 --size 100M
same_rc "measure --size 100M compat=0.10 cluster_size=512" &&
	same_json "measure --size 100M compat=0.10 cluster_size=512" .
for v in "info" "map --output=json" "check" "convert -O raw"; do
	o=
	case $v in convert*) o=out.raw ;; esac
	VQ $v -f qcow2 raw.raw $o
	same_rc "$v -f qcow2 raw.raw"
	names_file "$v -f qcow2 raw.raw" raw.raw
	rm -f out.raw
done
VQ convert -O qcow2 -B raw.raw q3b.qcow2 out.qcow2
same_rc "convert -O qcow2 -B raw.raw (no -F)"
rm -f out.qcow2
for pair in "raw.raw long0.raw" "long0.raw raw.raw" "raw.raw long1.raw" "long1.raw q3b.qcow2"; do
	VQ compare $pair
	same_rc "compare $pair"
	same_text "compare $pair"
done
# map of a qcow2 file whose data cluster ends in a hole of the file (qemu-img: data and zero;
# the human form leaves it out)
cp --sparse=always q3.qcow2 ../cv/q3-sparse.qcow2
for o in --output=json --output=human; do
	VQ map $o ../cv/q3-sparse.qcow2
	same_rc "map $o (a hole in a data cluster)" && same_text "map $o (a hole in a data cluster)"
done
VQ compare -f raw -F qcow2 raw.raw q3.qcow2
same_rc "compare -f raw -F qcow2" && same_text "compare -f raw -F qcow2"
# -F is not -f's default: the second image is probed
VQ compare -f qcow2 q3.qcow2 ../cv/q3.qcow2.raw
same_rc "compare -f qcow2 q3.qcow2 (raw)" && same_text "compare -f qcow2 q3.qcow2 (raw)"

# a bad command line: qemu-img's status for it is 1, whatever the verb
for verb in info check map convert compare resize rebase commit amend measure dd create; do
	VQ $verb --no-such-option raw.raw
	same_rc "$verb --no-such-option"
	VQ $verb
	same_rc "$verb without arguments"
done

# ---------------------------------------------------------------------------------------------
echo "# check: leaks (3), corruptions (2), repairs (at ${SECONDS}s)"
# leak.qcow2: one more cluster at the end of the file with refcount 1 and no reference;
# corrupt.qcow2: its first data cluster with refcount 0; over.qcow2: with refcount 2 (a
# corruption, the copied flag is wrong, and a leak)
u64() { od -An -t u8 --endian=big -j "$2" -N 8 "$1" | tr -d ' '; }
poke16() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
cd "$T/src" || exit 1
qemu-img create -q -f qcow2 leak.qcow2 4M
qemu-io -c 'write -P 0x81 0 128k' leak.qcow2 >/dev/null
cp leak.qcow2 corrupt.qcow2
refblock=$(u64 leak.qcow2 "$(u64 leak.qcow2 48)")
clusters=$(($(stat -c %s leak.qcow2) / 65536))
truncate -s +64k leak.qcow2
poke16 leak.qcow2 $((refblock + 2 * clusters)) '\x00\x01'
data=$(qemu-img map --output=json corrupt.qcow2 | jq '.[0].offset')
cp corrupt.qcow2 over.qcow2
poke16 corrupt.qcow2 $((refblock + 2 * data / 65536)) '\x00\x00'
poke16 over.qcow2 $((refblock + 2 * data / 65536)) '\x00\x02'
for img in leak.qcow2 corrupt.qcow2 over.qcow2; do
	VQ check "$img"
	want=2
	if [ "$img" = leak.qcow2 ]; then want=3; fi
	if [ "$qrc" != $want ]; then bad "$img is made as meant (qemu-img check: $want)" "$(stderrs)"; fi
	same_rc "check $img"
	same_text "check $img"
	VQ check --output=json "$img"
	same_rc "check --output=json $img"
	same_json "check --output=json $img" .
	for r in leaks all; do
		# -r leaks on a cluster with refcount 0: qemu-img stops ("need to rebuild refcount
		# structures", exit 1), vireo reports the corruption it leaves (exit 2); not compared
		if [ "$img $r" = "corrupt.qcow2 leaks" ]; then continue; fi
		fresh "$img"
		Vin check -r $r --output=json "$img"
		Qin check -r $r --output=json "$img"
		same_rc "check -r $r $img"
		# after a repair, where the image ends is each tool's own: qemu-img -r all rebuilds the
		# refcount structure at the end of the file
		same_json "check -r $r $img" 'del(.["image-end-offset"])'
		if [ "$vrc" = 0 ]; then same_results "check -r $r $img" "$img"; fi
	done
done

# ---------------------------------------------------------------------------------------------
echo "# create (at ${SECONDS}s)"
for c in "-f raw new.img 3M" "-f qcow2 new.img 3M" "-f qcow2 -o compat=0.10 new.img 3M" \
	"-f qcow2 -o cluster_size=4k,lazy_refcounts=on new.img 3M" \
	"-f qcow2 -o refcount_bits=1 new.img 3M" "-f qcow2 -o extended_l2=on new.img 3M" \
	"-f qcow2 -b q3.qcow2 -F qcow2 new.img" "-f qcow2 -b raw.raw -F raw new.img 8M" \
	"-f qcow2 -o compat=0.10 -b q2.qcow2 -F qcow2 new.img" \
	"-f qcow2 -o data_file=new.data new.img 3M" \
	"-f qcow2 -o data_file=new.data,data_file_raw=on new.img 3M" \
	"-f raw -o preallocation=full new.img 1M" "-f qcow2 -o preallocation=metadata new.img 3M" \
	"-f qcow2 -o compat=0.10,data_file=new.data new.img 3M" \
	"-f qcow2 -o compat=0.10,lazy_refcounts=on new.img 3M" "-f raw -b raw.raw new.img 3M" \
	"-f qcow2 -o cluster_size=3k new.img 3M" "-f qcow2 new.img" "-f qcow2 -b q3.qcow2 new.img" \
	"-f raw new.img 1000" "-f qcow2 new.img 1000"; do
	fresh raw.raw q2.qcow2 q3.qcow2
	Vin create $c
	Qin create $c
	if same_rc "create $c"; then
		same_text "create $c"
		files=new.img
		case $c in *data_file=*) files="new.img new.data" ;; esac
		same_results "create $c" $files
	fi
done

# ---------------------------------------------------------------------------------------------
echo "# convert (at ${SECONDS}s)"
# The allocation of two converted images, without host offsets (each tool's layout): which
# ranges are data, zero, holes, compressed, merged where they meet.
shape='def merge: reduce .[] as $e ([];
	if length > 0 and (.[-1] | del(.start, .length)) == ($e | del(.start, .length))
	   and .[-1].start + .[-1].length == $e.start
	then .[-1].length += $e.length else . + [$e] end);
	map(del(.offset)) | merge'
for img in $IMAGES; do
	for o in "-O raw" "-O qcow2" "-O qcow2 -o compat=0.10" "-c -O qcow2" \
		"-O raw -o compat=0.10" "-O qcow2 -o cluster_size=4k" \
		"-O qcow2 -S 0" "-O qcow2 -o data_file=out.data" "-O qcow2 -B raw.raw -F raw" \
		"-c -O qcow2 -B q3.qcow2 -F qcow2" "-n -O raw" "-n -O qcow2"; do
		# the snapshot image: what convert copies is its active layer, as any image's; the
		# target's cluster size: from a raw, a qcow2 and a compressed source
		case "$img $o" in
		"q3s.qcow2 -O raw" | "q3s.qcow2 -O qcow2") ;;
		q3s.qcow2* | q2*"cluster_size=4k" | q3[bd]*"cluster_size=4k") continue ;;
		esac
		fresh $(own_of "$img") $(backing_of "$img") raw.raw q3.qcow2
		# -n: into an existing image, larger than the source and full of data
		case $o in
		"-n -O raw") cp "$T/src/full.raw" "$T/v/out" && cp "$T/src/full.raw" "$T/q/out" ;;
		"-n -O qcow2") cp "$T/src/full.qcow2" "$T/v/out" && cp "$T/src/full.qcow2" "$T/q/out" ;;
		esac
		Vin convert $o "$img" out
		Qin convert $o "$img" out
		name="convert $o $img"
		same_rc "$name" || continue
		same_text "$name"
		# with -B, what the source's backing chain holds is taken to be in the new backing
		# file, and is not copied: the result shows the source only over its own backing
		# (where it is compared with the source's, the content is not compared again with
		# qemu-img's result)
		nocontent=
		case "$img $o" in
		"q2b.qcow2 "*"-B raw.raw"* | "q3b.qcow2 "*"-B q3.qcow2"* | *" -n "*) ;;
		*)
		nocontent=1
		if at "$T/v" qemu-img compare -q "$img" out >"$L/cmp.err" 2>&1; then
			ok "$name: same content as the source"
		else
			bad "$name: same content as the source" "$(cat "$L/cmp.err")"
		fi ;;
		esac
		case $o in
		*data_file=*) NOCONTENT=$nocontent same_results "$name" out out.data ;;
		*) NOCONTENT=$nocontent same_results "$name" out ;;
		esac
		# (a raw target's allocation: where -n wrote zeroes, holes or not)
		case $o in *qcow2* | "-n -O raw") ;; *) continue ;; esac
		qjson "$T/v" . "$L/vm-full.json" map --output=json out
		vjson "$T/v" "$L/vv.json" map --output=json out
		same_files "$name: vireo-img map of it as qemu-img's" "$L/vm-full.json" "$L/vv.json"
		jq -S "$shape" "$L/vm-full.json" >"$L/vm.json" 2>&1
		qjson "$T/q" "$shape" "$L/qm.json" map --output=json out
		same_files "$name: same allocation as qemu-img's" "$L/qm.json" "$L/vm.json"
	done
done

# ---------------------------------------------------------------------------------------------
echo "# resize, amend, rebase, commit (at ${SECONDS}s)"
for img in $IMAGES; do
	own=$(own_of "$img")
	backing=$(backing_of "$img")
	inputs="$own $backing new.raw q3.qcow2"
	for args in "+1M" "3M" "--shrink -1M" "--shrink 1000k"; do
		set -- $args
		fresh $inputs
		# qemu-img resize [--shrink] FILE SIZE
		Vin resize "${@:1:$#-1}" "$img" "${!#}"
		Qin resize "${@:1:$#-1}" "$img" "${!#}"
		if same_rc "resize $img $args"; then
			same_text "resize $img $args"
			same_results "resize $img $args" $own
			unchanged "resize $img $args" $backing
		fi
	done
	for o in compat=0.10 compat=1.1 lazy_refcounts=on size=8M size=1M refcount_bits=8 \
		backing_file=new.raw,backing_fmt=raw cluster_size=4k; do
		fresh $inputs
		Vin amend -o $o "$img"
		Qin amend -o $o "$img"
		if same_rc "amend -o $o $img"; then
			same_text "amend -o $o $img"
			same_results "amend -o $o $img" $own
			unchanged "amend -o $o $img" $backing
		fi
	done
	for args in "-b new.raw -F raw" "-u -b new.raw -F raw" "-b q3.qcow2 -F qcow2" "-b ''" \
		"-u -b ''" "-b new.raw"; do
		fresh $inputs
		eval "Vin rebase $args $img"
		eval "Qin rebase $args $img"
		# a safe rebase keeps what the guest sees: compared with the image before the
		# rebase, not with qemu-img's result (qemu-img 10 does not keep it on a compat=0.10
		# image without a backing file: it unmaps the clusters it should write as zeroes,
		# and the new backing file shows through)
		if same_rc "rebase $args $img"; then
			same_text "rebase $args $img"
			case $args in
			-u*) same_results "rebase $args $img" $own ;;
			*) REF=src same_results "rebase $args $img" $own ;;
			esac
			unchanged "rebase $args $img" $backing new.raw
		fi
	done
	for args in "" "-d" "-b raw.raw"; do
		fresh $inputs
		Vin commit $args "$img"
		Qin commit $args "$img"
		if same_rc "commit ${args:+$args }$img"; then
			same_text "commit ${args:+$args }$img"
			same_results "commit ${args:+$args }$img" $own $backing
		fi
	done
done

# convert onto its own source or a file of the source's chain: refused (qemu-img: by its image
# lock), the source left as it was
for c in "convert -O qcow2 q3.qcow2 q3.qcow2" "convert -O raw q3b.qcow2 raw.raw" \
	"convert -n -O raw q3b.qcow2 raw.raw"; do
	fresh q3.qcow2 q3b.qcow2 raw.raw
	Vin $c
	Qin $c
	same_rc "$c" && continue
	unchanged "$c" q3.qcow2 q3b.qcow2 raw.raw
done

# commit -b through a chain of three: top.qcow2 -> q3b.qcow2 -> raw.raw
for args in "-b raw.raw" "-b q3b.qcow2" ""; do
	fresh q3b.qcow2 raw.raw
	for d in v q; do
		qemu-img create -q -f qcow2 -b q3b.qcow2 -F qcow2 "$T/$d/top.qcow2" &&
			qemu-io -c 'write -P 0x55 1M 64k' "$T/$d/top.qcow2" >/dev/null || exit 1
	done
	Vin commit $args top.qcow2
	Qin commit $args top.qcow2
	if same_rc "commit ${args:+$args }top.qcow2"; then
		same_text "commit ${args:+$args }top.qcow2"
		same_results "commit ${args:+$args }top.qcow2" top.qcow2 q3b.qcow2 raw.raw
	fi
done

# -q: nothing on stdout
for c in "resize -q q3b.qcow2 +1M" "amend -q -o compat=0.10 q3.qcow2" "commit -q q3b.qcow2" \
	"rebase -q -b q3.qcow2 -F qcow2 q3b.qcow2" "check -q q3.qcow2" "create -q -f qcow2 n.qcow2 1M" \
	"convert -q -O qcow2 q3b.qcow2 o.qcow2" "compare -q q3.qcow2 q3b.qcow2"; do
	fresh q3.qcow2 q3b.qcow2 raw.raw
	Vin $c
	Qin $c
	same_rc "$c" && same_text "$c"
done

# ---------------------------------------------------------------------------------------------
echo "# dd (at ${SECONDS}s)"
for img in $IMAGES; do
	if [ "$img" = q3s.qcow2 ]; then continue; fi # (its active layer: as any image's)
	for args in "bs=64k" "bs=1M count=2" "bs=4k skip=300" "-O qcow2 bs=512k" "bs=1M skip=10"; do
		# skip past the end (a warning and an empty output) once per format
		case "$img $args" in raw.raw* | q3.qcow2*) ;; *"skip=10") continue ;; esac
		fresh $(own_of "$img") $(backing_of "$img")
		eval "Vin dd $args if=$img of=out"
		eval "Qin dd $args if=$img of=out"
		if same_rc "dd $args $img"; then
			same_text "dd $args $img"
			same_results "dd $args $img" out
		fi
	done
	# with both skip and count qemu-img copies count - skip blocks; vireo-img copies count
	# blocks from skip on, as dd(1) does (tools/vireo-img-dd.c): compared with dd(1)
	fresh $(own_of "$img") $(backing_of "$img")
	Vin dd bs=64k skip=5 count=20 "if=$img" of=out
	if [ "$vrc" = 0 ]; then
		rm -f "$L/dd.raw"
		content "$T/src" "$img" "$L/full.raw" &&
			dd if="$L/full.raw" of="$L/dd.raw" bs=64k skip=5 count=20 status=none
		if cmp -s "$L/dd.raw" "$T/v/out"; then ok "dd bs=64k skip=5 count=20 $img: as dd(1)"
		else bad "dd bs=64k skip=5 count=20 $img: as dd(1)"; fi
	else
		bad "dd bs=64k skip=5 count=20 $img: exit status" "$(cat "$L/v.err")"
	fi
done

# ---------------------------------------------------------------------------------------------
echo "# bad inputs (at ${SECONDS}s)"
# A file cut in the middle of its L1 or refcount table: qemu-img opens it (its file layer reads
# past the end of the file as zeroes) and works on the zeroes; vireo refuses a header whose
# tables end past the end of the file (DESIGN.md: corrupt images are refused with a clear
# message). Likewise an L1 entry pointing at a misaligned L2 table: qemu-img finds it when a
# request reaches it, vireo when it opens the image. So the expected status is an error's:
# compare's 2, check's 1 (could not check) or 2 (corruptions found, as qemu-img check says), 1
# for every other verb.
failed_rc() { # name
	local want=1
	case $1 in compare*) want=2 ;; check*) [ "$vrc" = 2 ] && want=2 ;; esac
	if [ "$vrc" -ge 128 ]; then
		bad "$1: exit status" "vireo-img killed by signal $((vrc - 128))"$'\n'"$(stderrs)"
	elif [ "$vrc" = "$want" ]; then
		ok "$1: exit status $vrc"
	else
		bad "$1: exit status $want" "$(stderrs)"
	fi
}
# missing, a directory, empty, unreadable (run as nobody when root), a qcow2 header cut short,
# qcow2 files cut in the middle of the refcount table and of the L1 table
cd "$T/bad" || exit 1
WD=$T/bad
mkdir badsrc
qemu-img create -q -f qcow2 badsrc/good.qcow2 4M
qemu-io -c 'write -P 0x31 0 128k' badsrc/good.qcow2 >/dev/null
mkdir badsrc/dir.img
: >badsrc/empty.img
head -c 40 badsrc/good.qcow2 >badsrc/cut-header.img
head -c $(($(u64 badsrc/good.qcow2 48) + 4)) badsrc/good.qcow2 >badsrc/cut-reftable.img
head -c $(($(u64 badsrc/good.qcow2 40) + 4)) badsrc/good.qcow2 >badsrc/cut-l1.img
# an L1 entry pointing at a misaligned L2 table; an L2 entry pointing at a misaligned cluster
l1=$(u64 badsrc/good.qcow2 40)
l2=$(($(u64 badsrc/good.qcow2 "$l1") & 0xfffffffffffe00))
cp badsrc/good.qcow2 badsrc/bad-l1.img
cp badsrc/good.qcow2 badsrc/bad-l2.img
poke64() { # file offset value: 8 bytes, big-endian
	local i bytes=
	for i in 7 6 5 4 3 2 1 0; do bytes+=$(printf '\\x%02x' $((($3 >> (8 * i)) & 255))); done
	printf "$bytes" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
poke64 badsrc/bad-l1.img "$l1" $(((1 << 63) | (l2 + 512)))
poke64 badsrc/bad-l2.img "$l2" $(((1 << 63) | (3 << 16) + 512))
cp "$T/src/zero.raw" badsrc/
# noread.img (made in each copy: a non-root user could not copy it): good.qcow2, mode 000
noread() { # dir
	cp "$T/bad/badsrc/good.qcow2" "$1/noread.img" && chmod 000 "$1/noread.img" || exit 1
	if [ "$(id -u)" = 0 ]; then chown nobody "$1"; fi
}
mkdir probe-read
noread probe-read
if [ ! -e probe-read/noread.img ] || NOBODY=1 as test -r probe-read/noread.img; then
	bad "noread.img cannot be read (else the unreadable-file cases test nothing)"
else
	ok "noread.img cannot be read"
fi
for f in missing.img dir.img empty.img noread.img cut-header.img cut-reftable.img cut-l1.img \
	bad-l1.img bad-l2.img; do
	for verb in "info @" "info --output=json @" "info --backing-chain --output=json @" \
		"check @" "check --output=json @" "check -r all @" "map @" "map --output=json @" \
		"convert -O raw @ out" "convert -O qcow2 @ out" "compare @ zero.raw" \
		"compare zero.raw @" "resize @ +1M" "rebase -b zero.raw -F raw @" \
		"rebase -u -b zero.raw -F raw @" "commit @" "amend -o compat=1.1 @" \
		"measure -O qcow2 @" "measure --output=json -O raw @" "dd if=@ of=out" \
		"create -f qcow2 -b @ -F qcow2 new.img 1M"; do
		args=${verb//@/$f}
		NOBODY=0
		rm -rf v q
		cp -a badsrc v
		cp -a badsrc q
		if [ "$f" = noread.img ]; then
			NOBODY=1
			noread v
			noread q
		fi
		Vin $args
		Qin $args
		NOBODY=0
		case $f in
		cut-l1.img | cut-reftable.img | bad-l1.img) failed_rc "$args" ;;
		*) same_rc "$args" ;;
		esac
		names_file "$args" "$f"
	done
done
# create's target: in a missing directory, a directory, a file that may not be written
rm -rf v q
cp -a badsrc v
cp -a badsrc q
for t in nodir/new.img dir.img; do
	for f in raw qcow2; do
		Vin create -f $f "$t" 1M
		Qin create -f $f "$t" 1M
		same_rc "create -f $f $t 1M"
		names_file "create -f $f $t 1M" "$t"
	done
done
chmod 444 v/good.qcow2
NOBODY=1 V create -f qcow2 "$T/bad/v/good.qcow2" 1M
NOBODY=1 Q create -f qcow2 "$T/bad/v/good.qcow2" 1M
same_rc "create over a file that may not be written"
names_file "create over a file that may not be written" good.qcow2

# ---------------------------------------------------------------------------------------------
echo "# probing (at ${SECONDS}s)"
cd "$T/probe" || exit 1
zeros() { head -c 65536 /dev/zero; }
# magic at the start, then zeroes to 64 KiB
mk() { { printf "$2"; zeros; } | head -c 65536 >"$1"; }
cp "$T/src/q3.qcow2" qcow2v9.img
printf '\x00\x00\x00\x09' | dd of=qcow2v9.img bs=1 seek=4 conv=notrunc status=none
mk vmdk.img 'KDMV\x01\x00\x00\x00'
mk vhdx.img 'vhdxfile'
mk vpc.img 'conectix'
mk qcow1.img 'QFI\xfb\x00\x00\x00\x01'
mk luks.img 'LUKS\xba\xbe\x00\x01'
mk qed.img 'QED\x00'
mk vdi.img '<<< Oracle VM VirtualBox Disk Image >>>\n'
printf '\x7f\x10\xda\xbe' | dd of=vdi.img bs=1 seek=64 conv=notrunc status=none
printf 'KDMV' >vmdk-short.img # a VMDK magic and nothing more
declare -A NAME=([qcow2v9.img]='qcow2' [vmdk.img]='vmdk' [vmdk-short.img]='vmdk' [vhdx.img]='vhdx'
		 [vpc.img]='vpc|vhd' [qcow1.img]='qcow' [luks.img]='luks' [qed.img]='qed' [vdi.img]='vdi')
for f in qcow2v9.img vmdk.img vmdk-short.img vhdx.img vpc.img qcow1.img luks.img qed.img vdi.img; do
	for verb in "info @" "info --output=json @" "convert -O raw @ out" "check @" "map @"; do
		rm -f out
		args=${verb//@/$f}
		V $args
		if [ "$vrc" = 1 ]; then
			ok "probe: $args: exit status 1"
		else
			bad "probe: $args: exit status 1" "exit $vrc, stderr: $(cat "$L/v.err")"
		fi
		names_file "probe: $args" "$f"
		if [ "$vrc" != 0 ] && [ "$vrc" -lt 128 ]; then
			if grep -qiE -- "${NAME[$f]}" "$L/v.err"; then
				ok "probe: $args: message names the format (${NAME[$f]})"
			else
				bad "probe: $args: message names the format (${NAME[$f]})" "$(cat "$L/v.err")"
			fi
		fi
	done
	VQ info -f raw --output=json "$f"
	same_rc "probe: info -f raw $f" && same_json "probe: info -f raw $f" .
	VQ map -f raw --output=json "$f"
	same_rc "probe: map -f raw $f" && same_json "probe: map -f raw $f" .
	VQ check -f raw "$f"
	same_rc "probe: check -f raw $f"
	rm -f out qout
	V convert -f raw -O raw "$f" out
	qemu-img convert -f raw -O raw "$f" qout
	if [ "$vrc" = 0 ] && cmp -s qout out; then ok "probe: convert -f raw $f: as qemu-img's"
	else bad "probe: convert -f raw $f: as qemu-img's" "exit $vrc, $(cat "$L/v.err")"; fi
done
# VPC and VDI magics are vireo's formats now: qemu-img's probe takes them too, and refuses them
for f in vpc.img vdi.img vmdk.img vmdk-short.img; do
	VQ info "$f"
	same_rc "probe: info $f, a damaged ${f%.img} image, as qemu-img"
done
# a real VHDX image (vireo reads the format now, issue 20) probes as vhdx, as qemu-img shows it
qemu-img create -q -f vhdx -o block_size=1M real.vhdx 16M
qemu-io -f vhdx -c 'write -P 0x42 3M 64k' real.vhdx >/dev/null
VQ info --output=json real.vhdx
same_rc "probe: info real.vhdx" && same_json "probe: info real.vhdx" .
rm -f out qout
V convert -O raw real.vhdx out
qemu-img convert -O raw real.vhdx qout
if [ "$vrc" = 0 ] && cmp -s qout out; then ok "probe: convert real.vhdx: as qemu-img's"
else bad "probe: convert real.vhdx: as qemu-img's" "exit $vrc, $(cat "$L/v.err")"; fi
# no magic: raw
perl -e 'srand(1); print map { chr(int(rand(256))) } 1 .. 65536' >data.img
zeros >zeroes.img
for i in $(seq 2000); do echo "line $i of some text"; done | head -c 65536 >text.img
for f in data.img zeroes.img text.img; do
	VQ info --output=json "$f"
	same_rc "probe: info $f" && same_json "probe: info $f" .
	rm -f out qout
	V convert -O raw "$f" out
	qemu-img convert -O raw "$f" qout
	if [ "$vrc" = 0 ] && cmp -s qout out; then ok "probe: convert $f: as qemu-img's"
	else bad "probe: convert $f: as qemu-img's" "exit $vrc, $(cat "$L/v.err")"; fi
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
