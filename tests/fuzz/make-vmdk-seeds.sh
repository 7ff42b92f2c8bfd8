#!/usr/bin/env bash
# Seeds for the vmdk fuzz targets (issue 20), called by make-seeds.sh: CORPUS_DIR [VIREO_IMG]
#   vmdk_header  mode byte (0 header, 1 stream footer), u64 file size, the first sector (or the
#                last three) of images qemu-img and vireo-img made
#   vmdk_desc    descriptors qemu-img wrote (files and embedded), and hand-made ones
#   probe        small sparse and stream files built here (qemu-img's are 64 KiB and more)
set -euo pipefail
corpus=$(cd "$1" && pwd)
vireo_img=${2:+$(realpath "$2")}
mkdir -p "$corpus/vmdk_header" "$corpus/vmdk_desc" "$corpus/probe"
find "$corpus/vmdk_header" "$corpus/vmdk_desc" -maxdepth 1 -type f ! -name 'crash-*' \
	! -name 'found-*' -delete
rm -f "$corpus"/probe/vmdk-small-*
python3 - "$corpus" <<'PY'
import struct, sys, zlib
corpus = sys.argv[1]

def header(cap, grain, gtes, desc_off, desc_size, rgd, gd, overhead, flags=3, version=1,
           compress=0):
    h = struct.pack('<4sIIQQQQIQQQB4sH', b'KDMV', version, flags, cap, grain, desc_off,
                    desc_size, gtes, rgd, gd, overhead, 0, b'\n \r\n', compress)
    return h + bytes(512 - len(h))

def desc(ct, extents):
    return ('# Disk DescriptorFile\nversion=1\nCID=1a2b3c4d\nparentCID=ffffffff\n'
            'createType="%s"\n\n# Extent description\n%s\n# The Disk Data Base\n#DDB\n\n'
            'ddb.virtualHWVersion = "4"\nddb.adapterType = "ide"\n' % (ct, extents)).encode()

def sector(b):
    return b + bytes(-len(b) % 512)

# a monolithic sparse file: 4 KiB grains, 16 per table, 2 tables (one sector each), 2 grains
cap, grain, gtes = 256, 8, 16
d = sector(desc('monolithicSparse', 'RW 256 SPARSE "x.vmdk"\n'))
ds = len(d) // 512
rgd = 1 + ds           # redundant directory, then its 2 tables
gd = rgd + 3           # directory, then its 2 tables
first = gd + 3         # the first grain
tab = [0] * 32
tab[0], tab[17] = first, first + grain
def tables(dir_sec):
    return (sector(struct.pack('<2I', dir_sec + 1, dir_sec + 2)) +
            sector(struct.pack('<16I', *tab[:16])) + sector(struct.pack('<16I', *tab[16:])))
img = header(cap, grain, gtes, 1, ds, rgd, gd, first) + d + tables(rgd) + tables(gd)
assert len(img) == first * 512
img += bytes(range(256)) * 16 + b'\xab' * 4096
open(corpus + '/probe/vmdk-small-sparse', 'wb').write(img)

# a stream file: header says GD_AT_END, two compressed grains, GT, GD and footer at the end
dd = sector(desc('streamOptimized', 'RW 256 SPARSE "s.vmdk"\n'))
ds = len(dd) // 512
out = bytearray(header(cap, grain, gtes, 1, ds, 0, 2**64 - 1, 1 + ds, 0x30001, 3, 1) + dd)
tab = [0] * 32
for g, data in ((0, bytes(range(256)) * 16), (20, b'\x5a' * 4096)):
    tab[g] = len(out) // 512
    z = zlib.compress(data)
    out += sector(struct.pack('<QI', g * grain, len(z)) + z)
gts = []
for t in range(2):
    out += struct.pack('<QII', 1, 0, 1) + bytes(496)
    gts.append(len(out) // 512)
    out += sector(struct.pack('<16I', *tab[16 * t:16 * t + 16]))
out += struct.pack('<QII', 1, 0, 2) + bytes(496)
gdsec = len(out) // 512
out += sector(struct.pack('<2I', *gts))
out += struct.pack('<QII', 1, 0, 3) + bytes(496)
out += header(cap, grain, gtes, 1, ds, 0, gdsec, 1 + ds, 0x30001, 3, 1)
out += bytes(512)
open(corpus + '/probe/vmdk-small-stream', 'wb').write(out)

def put_header(name, mode, fsize, data):
    open(corpus + '/vmdk_header/' + name, 'wb').write(bytes([mode]) + struct.pack('<Q', fsize) + data)

put_header('small-sparse', 0, len(img), bytes(img[:512]))
put_header('small-stream', 0, len(out), bytes(out[:512]))
put_header('small-stream-footer', 1, len(out), bytes(out[-1536:]))

for name, text in [
    ('zero-rdonly-vmfs', 'version=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="custom"\n'
     'RW 100 VMFS "a-flat.vmdk"\nRDONLY 28 ZERO\nRW 2048 FLAT "sub/b c.vmdk" 4096\n'),
    ('parent-crlf', '# Disk DescriptorFile\r\nversion=2\r\nCID=12\r\nparentCID=34\r\n'
     'parentFileNameHint="../base.vmdk"\r\ncreateType="monolithicSparse"\r\n'
     'RW 64 SPARSE "x.vmdk"\r\n'),
    ('embedded-padded', '# Disk DescriptorFile\nversion=1\nCID=1\ncreateType="streamOptimized"\n'
     'RW 8 SPARSE "s.vmdk"\n' + '\0' * 64),
]:
    open(corpus + '/vmdk_desc/' + name, 'wb').write(text.encode())
open(corpus + '/vmdk_desc/small-sparse-embedded', 'wb').write(d.rstrip(b'\0'))
PY
if ! command -v qemu-img >/dev/null; then
	echo "make-vmdk-seeds: qemu-img not found: only the hand-made vmdk seeds" >&2
	exit 0
fi
tmp=$(mktemp -d /tmp/vireo-vmdk-seeds.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
q() { qemu-img "$@" >/dev/null; }
hdr() { # NAME FILE: the first sector, with the file's size
	{ printf '\0'; python3 -c "import struct,sys; sys.stdout.buffer.write(struct.pack('<Q', $(stat -c %s "$2")))"
	  head -c 512 "$2"; } > "$corpus/vmdk_header/$1"
}
q create -f vmdk sparse.vmdk 100M
q create -f vmdk -o zeroed_grain=on,adapter_type=lsilogic,hwversion=7 zeroed.vmdk 3G
q create -f vmdk -o subformat=streamOptimized qstream.vmdk 100M
q create -f vmdk -o subformat=twoGbMaxExtentSparse,compat6=on two.vmdk 5G
q create -f vmdk -o subformat=twoGbMaxExtentFlat twoflat.vmdk 5G
q create -f vmdk -o subformat=monolithicFlat flat.vmdk 1M
hdr sparse sparse.vmdk
hdr zeroed zeroed.vmdk
hdr qemu-stream qstream.vmdk
hdr two-s001 two-s001.vmdk
for f in two twoflat flat; do cp $f.vmdk "$corpus/vmdk_desc/qemu-$f"; done
dd if=zeroed.vmdk bs=512 skip=1 count=20 status=none | tr -d '\0' > "$corpus/vmdk_desc/qemu-embedded"
if [ -n "$vireo_img" ] && [ -x "$vireo_img" ]; then
	"$vireo_img" create -q -f vmdk -o subformat=streamOptimized vstream.vmdk 100M
	hdr vireo-stream vstream.vmdk
	{ printf '\1'; python3 -c "import struct,sys; sys.stdout.buffer.write(struct.pack('<Q', $(stat -c %s vstream.vmdk)))"
	  tail -c 1536 vstream.vmdk; } > "$corpus/vmdk_header/vireo-stream-footer"
fi
