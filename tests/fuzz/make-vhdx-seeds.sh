#!/usr/bin/env bash
# Seeds for the vhdx fuzz targets (issue 20), called by make-seeds.sh: CORPUS_DIR [VIREO_IMG]
#   vhdx_header, vhdx_log  images qemu-img made (dynamic, fixed, block and log sizes, data
#                written by qemu-io), one with a log qemu left to replay (its BAT write failed
#                through blkdebug) and, with VIREO_IMG, one vireo made and one with a log vireo
#                left (img_io killed after its log entry, with strace), in fuzz_vhdx.h's form:
#                option byte (1: fix checksums, 3: and replay), size in KiB, then the runs of
#                non-zero bytes below the first payload block as (offset, length, bytes) records
#   probe          a small VHDX file: the header section and metadata packed below 64 KiB is not
#                possible (the region tables end at 320 KiB), so a 'vhdxfile' magic alone
# Needs qemu-img and qemu-io (else nothing is regenerated).
set -euo pipefail
corpus=$(cd "$1" && pwd)
vireo_img=${2:+$(realpath "$2")}
img_io=${vireo_img:+$(dirname "$(dirname "$vireo_img")")/tests/interop/img_io}
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || {
	echo "make-vhdx-seeds: qemu-img/qemu-io not found: vhdx seeds not regenerated" >&2
	exit 0
}
mkdir -p "$corpus/vhdx_header" "$corpus/vhdx_log" "$corpus/probe"
find "$corpus/vhdx_header" "$corpus/vhdx_log" -maxdepth 1 -type f ! -name 'crash-*' \
	! -name 'found-*' -delete
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
q() { qemu-img create -q -f vhdx "$@"; }
io() { qemu-io -f vhdx "$@" >/dev/null; }

q d-default.vhdx 64M
q -o block_size=1M,log_size=2M d-1m.vhdx 100M
io -c 'write -P 0x11 0 4k' -c 'write -P 0x22 5M 1M' -c 'write -P 0x33 50M 3M' d-1m.vhdx
q -o subformat=fixed,block_state_zero=off,block_size=1M f-1m.vhdx 10M
q -o subformat=fixed f-zero.vhdx 10M
q -o block_state_zero=off d-absent.vhdx 2G
# qemu's log left to replay: the 8th write of the session (its BAT sector) fails
q -o block_size=1M qlog.vhdx 64M
blk=$(python3 - <<'EOF'
import json
n = 7
ss = [{"event": "pwritev", "state": i, "new_state": i + 1} for i in range(1, n + 1)]
print("json:" + json.dumps({"driver": "vhdx", "file": {"driver": "blkdebug", "set-state": ss,
      "inject-error": [{"event": "pwritev", "state": n + 1, "errno": 5}],
      "image": {"driver": "file", "filename": "qlog.vhdx"}}}))
EOF
)
qemu-io -c "write -P 0x99 5M 64k" "$blk" >/dev/null 2>&1 || true
if [ -n "$vireo_img" ]; then
	"$vireo_img" create -q -f vhdx -o block_size=1M v-1m.vhdx 32M
	if [ -x "$img_io" ] && command -v strace >/dev/null; then
		"$vireo_img" create -q -f vhdx -o block_size=1M vlog.vhdx 64M
		(strace -f -o /dev/null -e inject=fdatasync:signal=KILL:when=4 "$img_io" -f vhdx \
			vlog.vhdx -c "write -P 0x5a 5M 64k" -c "write -P 0x5b 40M 1M" \
			>/dev/null 2>&1 || true) 2>/dev/null
	fi
fi

python3 - "$corpus" ./*.vhdx <<'PY'
import os, re, struct, sys
corpus = sys.argv[1]

def structures_end(d):
    # where the log, the BAT and the metadata region end (payload blocks come after them)
    ends = []
    for h in (0x10000, 0x20000):
        ln, off = struct.unpack_from('<IQ', d, h + 68)
        ends.append(off + ln)
    n = struct.unpack_from('<I', d, 0x30008)[0]
    for i in range(min(n, 2047)):
        off, ln = struct.unpack_from('<QI', d, 0x30010 + 32 * i + 16)
        ends.append(off + ln)
    return max(ends)

def records(d, end):
    # runs of non-zero bytes (fewer than 16 zeroes inside), at most 0xffff bytes each
    out = []
    for m in re.finditer(rb'[^\x00](?:\x00{0,15}[^\x00])*', d[:end]):
        for i in range(m.start(), m.end(), 0xffff):
            j = min(m.end(), i + 0xffff)
            out.append(struct.pack('<IH', i, j - i) + d[i:j])
    return b''.join(out)

for path in sys.argv[2:]:
    d = open(path, 'rb').read()
    name = os.path.basename(path)[:-5]
    body = struct.pack('<I', (len(d) + 1023) // 1024) + records(d, structures_end(d))
    for target, opts in (('vhdx_header', (1,)), ('vhdx_log', (1, 3))):
        for o in opts:
            seed = bytes([o]) + body
            assert len(seed) < 64 * 1024, (name, len(seed))
            with open(os.path.join(corpus, target, '%s-%d' % (name, o)), 'wb') as f:
                f.write(seed)
PY
# probe: the magic alone (a real image is over 320 KiB)
{ printf 'vhdxfile'; head -c 4088 /dev/zero; } >"$corpus/probe/vhdx-magic-only"
