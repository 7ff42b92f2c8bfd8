#!/usr/bin/env bash
# Regenerates the seed corpora in tests/fuzz/corpus/<target>/ (committed, so the build does not
# need this script or its tools). Usage: tests/fuzz/make-seeds.sh [BUILD_DIR]
# Needs python3, and qemu-img + qemu-io (qemu-utils) for the qcow2 seeds. With BUILD_DIR (default
# build/) the assembled PVH test guests in BUILD_DIR/tests/integration/*.elf are added too.
# Every seed stays below 64 KiB. Files named crash-* (reproducers of fixed bugs) and found-*
# (inputs libFuzzer found that reach deeper states, picked by hand) are kept as they are.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
corpus=$here/corpus
for t in boot virtqueue virtio_blk_req qmp qcow2_open qcow2_header cmdline probe keyval scsi_cdb \
	virtio_scsi_req nbd_reply nbd_server luks_header; do
	mkdir -p "$corpus/$t"
	find "$corpus/$t" -maxdepth 1 -type f ! -name 'crash-*' ! -name 'found-*' -delete
done

python3 - "$corpus" <<'PY'
import os, struct, sys
corpus = sys.argv[1]

def put(target, name, data):
    assert len(data) < 64 * 1024, (target, name, len(data))
    with open(os.path.join(corpus, target, name), 'wb') as f:
        f.write(data)

# ---------------------------------------------------------------- boot: option byte + kernel
def boot_opt(initrd=0, cmdline=0, rsdp=False, small=False):
    return bytes([initrd | cmdline << 3 | (0x40 if rsdp else 0) | (0x80 if small else 0)])

def xen_note(entry, descsz=4):
    desc = struct.pack('<I', entry) if descsz == 4 else struct.pack('<Q', entry)
    return struct.pack('<III', 4, descsz, 18) + b'Xen\0' + desc

def elf(bits, entry=0x100000, note_in='phdr', descsz=4, paddr=0x100000, memsz=0x2000):
    code = b'\xb0\x2a\xe6\xf4\xf4' + b'\x90' * 11        # mov al,42; out 0xf4,al; hlt
    note = xen_note(entry, descsz)
    if bits == 64:
        ehsz, phsz, shsz = 64, 56, 64
    else:
        ehsz, phsz, shsz = 52, 32, 40
    nph = 2 if note_in == 'phdr' else 1
    phoff = ehsz
    code_off = 0x100
    note_off = code_off + len(code)
    shoff = (note_off + len(note) + 7) & ~7
    nsh = 2 if note_in == 'shdr' else 0
    if bits == 64:
        eh = b'\x7fELF' + bytes([2, 1, 1]) + bytes(9) + struct.pack(
            '<HHIQQQIHHHHHH', 2, 62, 1, entry, phoff, shoff if nsh else 0, 0, ehsz, phsz, nph,
            shsz, nsh, 0)
        ph = struct.pack('<IIQQQQQQ', 1, 5, code_off, paddr, paddr, len(code) + len(note), memsz, 0x1000)
        if nph == 2:
            ph += struct.pack('<IIQQQQQQ', 4, 4, note_off, 0, 0, len(note), len(note), 4)
        sh = b''
        if nsh:
            sh = bytes(shsz) + struct.pack('<IIQQQQIIQQ', 0, 7, 2, 0, note_off, len(note), 0, 0, 4, 0)
    else:
        eh = b'\x7fELF' + bytes([1, 1, 1]) + bytes(9) + struct.pack(
            '<HHIIIIIHHHHHH', 2, 3, 1, entry, phoff, shoff if nsh else 0, 0, ehsz, phsz, nph,
            shsz, nsh, 0)
        ph = struct.pack('<IIIIIIII', 1, code_off, paddr, paddr, len(code) + len(note), memsz, 5, 0x1000)
        if nph == 2:
            ph += struct.pack('<IIIIIIII', 4, note_off, 0, 0, len(note), len(note), 4, 4)
        sh = b''
        if nsh:
            sh = bytes(shsz) + struct.pack('<IIIIIIIIII', 0, 7, 2, 0, note_off, len(note), 0, 0, 4, 0)
    img = bytearray(eh + ph)
    img += bytes(code_off - len(img))
    img += code + note
    img += bytes(shoff - len(img)) if nsh else b''
    img += sh
    return bytes(img)

put('boot', 'pvh64', boot_opt() + elf(64))
put('boot', 'pvh64-initrd-cmdline-rsdp', boot_opt(5, 2, True) + elf(64))
put('boot', 'pvh64-note-in-section', boot_opt(4, 1) + elf(64, note_in='shdr'))
put('boot', 'pvh32-note8', boot_opt(0, 3) + elf(32, descsz=8))
put('boot', 'pvh32-small-ram-big-initrd', boot_opt(7, 0, False, True) + elf(32))
put('boot', 'pvh64-entry-outside', boot_opt() + elf(64, entry=0x200000))
put('boot', 'pvh64-below-1m', boot_opt() + elf(64, paddr=0x8000))
put('boot', 'pvh64-truncated', boot_opt() + elf(64)[:100])

def bzimage(version=0x020f, xloadflags=0x7f, relocatable=1, align=0x200000, pref=0x1000000,
            init_size=0x400000, cmdline_size=0x7ff, initrd_max=0x7fffffff, payload=0x1000,
            setup_sects=1, jump=0x6a):
    ss = ((setup_sects or 4) + 1) * 512
    b = bytearray(ss + payload)
    b[0x1f1] = setup_sects
    struct.pack_into('<I', b, 0x1f4, payload // 16)
    struct.pack_into('<H', b, 0x1fe, 0xaa55)
    b[0x200] = 0xeb
    b[0x201] = jump
    b[0x202:0x206] = b'HdrS'
    struct.pack_into('<H', b, 0x206, version)
    struct.pack_into('<H', b, 0x20e, 0x300 - 0x200)
    b[0x211] = 1
    struct.pack_into('<I', b, 0x214, 0x100000)
    struct.pack_into('<I', b, 0x22c, initrd_max)
    struct.pack_into('<I', b, 0x230, align)
    b[0x234] = relocatable
    struct.pack_into('<H', b, 0x236, xloadflags)
    struct.pack_into('<I', b, 0x238, cmdline_size)
    struct.pack_into('<Q', b, 0x258, pref)
    struct.pack_into('<I', b, 0x260, init_size)
    if ss > 0x300 + 40:
        b[0x300:0x300 + 30] = b'6.99.0-fuzz (vireo@example) #1'
    for i in range(payload):
        b[ss + i] = (i * 13 + 1) & 0xff
    return bytes(b)

put('boot', 'bz', boot_opt() + bzimage())
put('boot', 'bz-initrd-cmdline', boot_opt(5, 2, True) + bzimage())
put('boot', 'bz-cmdline-too-long', boot_opt(0, 5) + bzimage())
put('boot', 'bz-initrd-ceiling', boot_opt(6) + bzimage(initrd_max=0x3fffff))
put('boot', 'bz-not-relocatable', boot_opt(4) + bzimage(relocatable=0, pref=0x100000))
put('boot', 'bz-small-ram', boot_opt(0, 0, False, True) + bzimage(init_size=0x8000))
put('boot', 'bz-old-protocol', boot_opt() + bzimage(version=0x020b))
put('boot', 'bz-setup-sects-0', boot_opt() + bzimage(setup_sects=0, payload=0x800))
put('boot', 'bz-truncated', boot_opt() + bzimage()[:0x300])

# ------------------------------------------------ virtqueue: 24-byte header + guest memory
def desc(addr, length, flags=0, nxt=0):
    return struct.pack('<QIHH', addr, length, flags, nxt)

F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4

def vq_seed(size_log2, flags, cap, descs, avail, mem_size=0x1000, split=0xffff, bump=0,
            extra=(), desc_gpa=0, avail_gpa=0x200, used_gpa=0x300, push_len=1):
    hdr = struct.pack('<HBBIIIHHI', size_log2, flags, cap, desc_gpa, avail_gpa, used_gpa,
                      split, bump, push_len)
    mem = bytearray(mem_size)
    for i, d in enumerate(descs):
        if d is not None:
            mem[desc_gpa + 16 * i:desc_gpa + 16 * i + 16] = d
    struct.pack_into('<HH', mem, avail_gpa, 0, len(avail))
    for i, h in enumerate(avail):
        struct.pack_into('<H', mem, avail_gpa + 4 + 2 * i, h)
    for addr, blob in extra:
        mem[addr:addr + len(blob)] = blob
    return hdr + bytes(mem)

chains = [desc(0x400, 16, F_NEXT, 1), desc(0x500, 512, F_NEXT | F_WRITE, 2), desc(0x700, 1, F_WRITE),
          desc(0x800, 48, F_INDIRECT), None, desc(0x900, 8, F_NEXT, 6), desc(0x908, 8, F_NEXT, 5)]
indirect = desc(0xa00, 16, F_NEXT, 1) + desc(0xa10, 64, F_NEXT | F_WRITE, 2) + desc(0xa50, 1, F_WRITE)
put('virtqueue', 'three-chains', vq_seed(3, 0x02, 20, chains, [0, 3, 5], extra=[(0x800, indirect)]))
put('virtqueue', 'event-idx-bump', vq_seed(3, 0x03, 20, chains, [0, 3], bump=1,
                                             extra=[(0x800, indirect)]))
put('virtqueue', 'no-indirect-small-cap', vq_seed(3, 0x08, 0, chains, [0, 3, 5, 0],
                                                    extra=[(0x800, indirect)]))
put('virtqueue', 'broken-avail-idx', vq_seed(2, 0x00, 4, chains, [0], bump=0x100))
put('virtqueue', 'head-out-of-range', vq_seed(1, 0x00, 4, chains, [7]))
put('virtqueue', 'raw-size-not-power-of-2', vq_seed(6, 0x04, 4, chains, [0]))
# buffers in RAM region 1 (GPA 1 MiB): the image past 0x1000 lands there
two = vq_seed(3, 0x02, 20, [desc(0x100000, 32, F_NEXT, 1), desc(0x100ff0, 0x20, F_WRITE)],
              [0], mem_size=0x1000, split=0x1000) + bytes(0x1000)
put('virtqueue', 'two-regions-straddle', two)
put('virtqueue', 'size-256', vq_seed(8, 0x01, 50, chains, list(range(7)) * 4, mem_size=0x2000,
                                       avail_gpa=0x1000, used_gpa=0x1400,
                                       extra=[(0x800, indirect)]))

# ----------------------------------------- virtio_blk_req: 24-byte header + guest memory
def blk_hdr(capacity=2048, flags=0x0e, max_segs=0, cap=63, split=0, max_discard=256,
            max_wz=256):
    return struct.pack('<QBBBBIII', capacity, flags, max_segs, cap, split, max_discard, max_wz, 0)

def blk_mem(chains, extra=(), size=0x2000):
    """chains: list of lists of (addr, len, write); laid out as chained descriptors."""
    mem = bytearray(size)
    heads, i = [], 0
    for ch in chains:
        heads.append(i)
        for j, (addr, length, write) in enumerate(ch):
            fl = (F_WRITE if write else 0) | (F_NEXT if j + 1 < len(ch) else 0)
            mem[16 * i:16 * i + 16] = desc(addr, length, fl, i + 1)
            i += 1
    struct.pack_into('<HH', mem, 0x100, 0, len(heads))
    for k, h in enumerate(heads):
        struct.pack_into('<H', mem, 0x104 + 2 * k, h)
    for addr, blob in extra:
        mem[addr:addr + len(blob)] = blob
    return bytes(mem)

def req(t, sector):
    return struct.pack('<IIQ', t, 0, sector)

def seg(sector, n, flags):
    return struct.pack('<QII', sector, n, flags)

# (at most 16 descriptors per image: the table ends where the avail ring starts)
mixed = blk_mem(
    [[(0x200, 16, 0), (0x1000, 1024, 1), (0x240, 1, 1)],                    # IN
     [(0x300, 16, 0), (0x1400, 512, 0), (0x340, 1, 1)],                     # OUT
     [(0x380, 16, 0), (0x3c0, 1, 1)],                                       # FLUSH
     [(0x400, 16, 0), (0x1800, 20, 1), (0x440, 1, 1)]],                     # GET_ID
    extra=[(0x200, req(0, 2)), (0x300, req(1, 2047)), (0x380, req(4, 0)), (0x400, req(8, 0))])
mixed2 = blk_mem(
    [[(0x480, 32, 0), (0x4c0, 1, 1)],                                       # DISCARD
     [(0x500, 32, 0), (0x540, 1, 1)],                                       # WRITE_ZEROES
     [(0x580, 8, 0), (0x588, 8, 0), (0x1c00, 512, 1), (0x5c0, 1, 1)],       # split header
     [(0x600, 16, 0), (0x640, 1, 1)]],                                      # unknown type
    extra=[(0x480, req(11, 0) + seg(8, 16, 0)), (0x500, req(13, 0) + seg(100, 8, 1)),
           (0x580, req(0, 7)), (0x600, req(99, 0))])
put('virtio_blk_req', 'mixed', blk_hdr() + mixed)
put('virtio_blk_req', 'mixed2', blk_hdr() + mixed2)
put('virtio_blk_req', 'mixed-read-only', blk_hdr(flags=0x01) + mixed)
put('virtio_blk_req', 'mixed2-read-only', blk_hdr(flags=0x01) + mixed2)
put('virtio_blk_req', 'mixed2-no-features-small-cap', blk_hdr(flags=0x00, cap=1) + mixed2)
put('virtio_blk_req', 'out-of-range', blk_hdr(capacity=2) + mixed)
put('virtio_blk_req', 'out-of-range2', blk_hdr(capacity=100) + mixed2)
put('virtio_blk_req', 'unaligned', blk_hdr() + blk_mem(
    [[(0x200, 16, 0), (0x1000, 1000, 1), (0x240, 1, 1)]], extra=[(0x200, req(0, 0))]))
put('virtio_blk_req', 'no-status', blk_hdr() + blk_mem(
    [[(0x200, 16, 0), (0x1000, 512, 0)]], extra=[(0x200, req(1, 0))]))
# the request in an indirect table (INDIRECT_DESC negotiated: flag 0x08)
ind = desc(0x200, 16, F_NEXT, 1) + desc(0x1000, 512, F_NEXT | F_WRITE, 2) + desc(0x240, 1, F_WRITE)
m = bytearray(blk_mem([[(0x800, 48, 0)]], extra=[(0x200, req(0, 1)), (0x800, ind)]))
struct.pack_into('<H', m, 0xc, F_INDIRECT)
put('virtio_blk_req', 'indirect', blk_hdr(flags=0x0e | 0x08) + bytes(m))
# the data buffer in RAM region 1: the last split*64 bytes of the image go there
m = blk_mem([[(0x200, 16, 0), (0x100000, 512, 1), (0x240, 1, 1)]], extra=[(0x200, req(0, 0))],
            size=0x1000)
put('virtio_blk_req', 'region1-data', blk_hdr(split=8) + m + bytes(512))

# ---------------------------------------- virtio_scsi_req: 16-byte header + guest memory
# (blk_mem's layout: 16 descriptors at most, avail ring at 0x100)
def vscsi_hdr(ctrl=False, indirect=False, cap=63, split=0, cdb_size=32, sense_size=96):
    flags = (0x01 if ctrl else 0) | (0x02 if indirect else 0) | 0x04
    return struct.pack('<BBBBIII', flags, cap, split, 0, cdb_size - 1, sense_size, 0)

def lun(target=0, n=0):
    return bytes([1, target, 0x40 | (n >> 8), n & 0xff, 0, 0, 0, 0])

def cmd(cdb, l=lun(), tag=1, cdb_size=32):
    return l + struct.pack('<QBBB', tag, 0, 0, 0) + bytes(cdb).ljust(cdb_size, b'\0')[:cdb_size]

read10 = [0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0]
write10 = [0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0]
tur = [0, 0, 0, 0, 0, 0]
inquiry = [0x12, 0, 0, 0, 96, 0]
# READ(10) in, WRITE(10) out, TEST UNIT READY, a bidirectional one, a short response, a short header
cmds = blk_mem(
    [[(0x200, 51, 0), (0x300, 108, 1), (0x1000, 512, 1)],
     [(0x400, 51, 0), (0x1400, 512, 0), (0x480, 108, 1)],
     [(0x500, 51, 0), (0x580, 108, 1)],
     [(0x600, 51, 0), (0x1800, 16, 0), (0x680, 108, 1), (0x1900, 16, 1)],
     [(0x700, 51, 0), (0x780, 10, 1)],
     [(0x800, 20, 0), (0x880, 108, 1)]],
    extra=[(0x200, cmd(read10)), (0x400, cmd(write10, lun(0, 1))), (0x500, cmd(tur, lun(3, 0))),
           (0x600, cmd(write10)), (0x700, cmd(tur)), (0x800, cmd(tur))])
put('virtio_scsi_req', 'cmd-mixed', vscsi_hdr() + cmds)
put('virtio_scsi_req', 'cmd-mixed-small-cap', vscsi_hdr(cap=2) + cmds)
put('virtio_scsi_req', 'cmd-mixed-sense-0', vscsi_hdr(sense_size=0) + cmds)
# header, CDB and response split over descriptors; a CDB longer than SCSI_CDB_MAX; no LUN
# (byte 0 not 1), a second-level LUN, a LUN past 255
cmds2 = blk_mem(
    [[(0x200, 8, 0), (0x240, 43, 0), (0x300, 60, 1), (0x340, 48, 1), (0x1000, 96, 1)],
     [(0x400, 19 + 64, 0), (0x480, 108, 1)],
     [(0x500, 51, 0), (0x580, 108, 1)],
     [(0x600, 51, 0), (0x680, 108, 1)],
     [(0x700, 51, 0), (0x780, 108, 1)]],
    extra=[(0x200, cmd(inquiry)[:8]), (0x240, cmd(inquiry)[8:]),
           (0x400, cmd(read10, cdb_size=64)),
           (0x500, cmd(tur, bytes([0, 0, 0x40, 0, 0, 0, 0, 0]))),
           (0x600, cmd(tur, lun(0, 2)[:4] + bytes([0x40, 1, 0, 0]))),
           (0x700, cmd(tur, lun(1, 300)))])
put('virtio_scsi_req', 'cmd-split-and-luns', vscsi_hdr() + cmds2)
put('virtio_scsi_req', 'cmd-cdb-64', vscsi_hdr(cdb_size=64) + blk_mem(
    [[(0x400, 19 + 64, 0), (0x480, 108, 1), (0x1000, 512, 1)]],
    extra=[(0x400, cmd(read10, cdb_size=64))]))
put('virtio_scsi_req', 'cmd-cdb-6', vscsi_hdr(cdb_size=6) + blk_mem(
    [[(0x400, 19 + 6, 0), (0x480, 108, 1)]], extra=[(0x400, cmd(tur, cdb_size=6))]))
# buffers outside RAM: the data-in, then the response
put('virtio_scsi_req', 'cmd-fault', vscsi_hdr() + blk_mem(
    [[(0x200, 51, 0), (0x300, 108, 1), (0x50000, 512, 1)], [(0x400, 51, 0), (0x60000, 108, 1)]],
    extra=[(0x200, cmd(read10)), (0x400, cmd(tur))]))
# the request in an indirect table
ind = desc(0x200, 51, F_NEXT, 1) + desc(0x300, 108, F_NEXT | F_WRITE, 2) + desc(0x1000, 512, F_WRITE)
m = bytearray(blk_mem([[(0x800, 48, 0)]], extra=[(0x200, cmd(read10)), (0x800, ind)]))
struct.pack_into('<H', m, 0xc, F_INDIRECT)
put('virtio_scsi_req', 'cmd-indirect', vscsi_hdr(indirect=True) + bytes(m))
# the data-in buffer in RAM region 1
m = blk_mem([[(0x200, 51, 0), (0x300, 108, 1), (0x100000, 512, 1)]],
            extra=[(0x200, cmd(read10))], size=0x1000)
put('virtio_scsi_req', 'cmd-region1-data', vscsi_hdr(split=8) + m + bytes(512))

def tmf(sub, l=lun(), tag=7):
    return struct.pack('<II', 0, sub) + l + struct.pack('<Q', tag)

def an(t, l=lun(), ev=0x44):
    return struct.pack('<I', t) + l + struct.pack('<I', ev)

# ABORT TASK, LOGICAL UNIT RESET, I_T NEXUS RESET without room for the answer, AN QUERY,
# AN SUBSCRIBE (its answer split), an unknown type, a short TMF, a short AN
ctrl = blk_mem(
    [[(0x200, 24, 0), (0x240, 1, 1)],
     [(0x280, 24, 0), (0x2c0, 1, 1)],
     [(0x300, 24, 0)],
     [(0x400, 16, 0), (0x440, 5, 1)],
     [(0x480, 16, 0), (0x4c0, 2, 1), (0x4d0, 3, 1)],
     [(0x500, 4, 0), (0x540, 1, 1)],
     [(0x580, 10, 0), (0x5c0, 1, 1)],
     [(0x600, 8, 0), (0x640, 5, 1)]],
    extra=[(0x200, tmf(0)), (0x280, tmf(5, lun(0, 1))), (0x300, tmf(4)),
           (0x400, an(1)), (0x480, an(2, lun(2, 0))), (0x500, struct.pack('<I', 9)),
           (0x580, tmf(6)[:10]), (0x600, an(1)[:8])])
put('virtio_scsi_req', 'ctrl-mixed', vscsi_hdr(ctrl=True) + ctrl)
put('virtio_scsi_req', 'ctrl-mixed-small-cap', vscsi_hdr(ctrl=True, cap=1) + ctrl)

# ------------------------------------------------------------------ qmp: option byte + bytes
def qmp(opt, text):
    return bytes([opt]) + text.encode()

put('qmp', 'session', qmp(0x40 | 32, '{"execute":"query-status","id":1}\r\n'
    '{"execute":"echo","arguments":{"a":[1,2.5,{"b":null}],"s":"\\u00e9\\n"},"id":"x"}\n'
    '{"execute":"fail","arguments":{}}{"execute":"nope"}'))
put('qmp', 'no-negotiation', qmp(7, '{"execute":"query-status"}{"execute":"qmp_capabilities"}'
    '{"execute":"qmp_capabilities","id":[1]}'))
put('qmp', 'byte-by-byte', qmp(0x40, '{ "execute" : "echo", "arguments" : { "k" : "v" } }'))
put('qmp', 'malformed-then-good', qmp(0x40 | 15, '{"execute": ]\n{"execute":"query-status"}'))
put('qmp', 'bad-shapes', qmp(0x40 | 31, '[1,2]{"id":3}{"execute":5}{"execute":"echo",'
    '"arguments":[]}"str"  \t\n 42 null'))
put('qmp', 'deep-nesting', qmp(0x40 | 31, '[' * 40 + ']' * 40 + '{"execute":"echo"}'))
# three times 30 KB of digits (one unfinished number), in 8 KiB writes: over the 64 KiB limit
put('qmp', 'over-64k', qmp(0x80 | 0x40 | 63, '1' * 30000))
put('qmp', 'long-string', qmp(0x40 | 40, '{"execute":"echo","arguments":{"s":"' + 'A' * 30000 + '"}}'))
put('qmp', 'nul-byte', qmp(0x40 | 3, '{"execute":"echo\0"}{"execute":"query-status"}'))

# --------------------------------------------------------- cmdline: NUL-separated arguments
def args(*a):
    return '\0'.join(a).encode()

put('cmdline', 'full', args('run', '--kernel', '/proc/self/exe', '--initrd', '/proc/self/exe',
    '--cmdline', 'console=ttyS0', '--cpus', '2', '-m', '512M', '--serial', 'file:/tmp/x',
    '--qmp', 'unix:/tmp/q.sock,server,nowait', '--boot-timer', '--drive',
    'file=/proc/self/exe,format=raw,if=virtio-blk,num-queues=4,queue-size=128,iothreads=2,'
    'iothread-vq-mapping=0:1:0:1,cache=none,readonly=on,serial=disk,,0,poll-max-ns=1000'))
put('cmdline', 'help', args('--help'))
put('cmdline', 'version', args('run', '-V'))
put('cmdline', 'missing-value', args('--kernel'))
put('cmdline', 'bad-values', args('--kernel', '/proc/self/exe', '--cpus', '0', '-m', '1k',
    '--serial', 'tcp:1', '--qmp', 'unix:', 'extra'))
put('cmdline', 'drive-spec', b'file=/proc/self/exe,format=qcow2,num-queues=3,iothreads=2,'
    b'iothread-vq-mapping=1:0:1,readonly=off,serial=01234567890123456789')
put('cmdline', 'drive-spec-bad', b'file=/nonexistent,,x,queue-size=100,iothread-vq-mapping=0:9')

# ------------------------------------------- keyval: option byte (implied key, accessor) + text
def kv(opt, text):
    return bytes([opt]) + text.encode()

put('keyval', 'blockdev-nested', kv(0, 'driver=qcow2,file.driver=file,file.filename=/x,'
    'node-name=d0,cache.direct=on,l2-cache-size=4M'))
put('keyval', 'object-implied', kv(2, 'iothread,id=io0,poll-max-ns=32768,poll-grow=2'))
put('keyval', 'device-implied', kv(1 | 4, 'virtio-blk-pci,drive=d0,num-queues=4,serial=a,,b'))
put('keyval', 'lists', kv(8, 'm.1.iothread=io1,m.0.iothread=io0,v.0=x,v.1=y,n.0.0=z'))
put('keyval', 'json', kv(12, ' {"driver": "qcow2", "read-only": true, "size": 4096, '
    '"file": {"driver": "file", "filename": "/x"}, "l": [1, 2.5, null, "on"], '
    '"s": "1G", "neg": -1}'))
put('keyval', 'json-bad', kv(0, '{"a": [1, 2}, "b": NaN, "c": "x\\u0000y"}'))
put('keyval', 'json-deep', kv(0, '{"a":' + '[' * 17 + ']' * 17 + '}'))
put('keyval', 'deep-dotted', kv(0, '.'.join('abcdefghijklmnopq') + '=1'))
put('keyval', 'commas', kv(4, 'a=,,,,,b=c=d,e=,f=,,'))
# one refusal per seed (parsing stops at the first)
for i, bad in enumerate(['x,a=1', 'a..b=1', '=2', 'a=1,a=2', 'f=0,f.d=1', 'f.d=1,f=0', 'a.01=1',
                         '0=1', 'a.0=1,a.b=2', 'a.1=1', 'q$=1', '_a=1', 'a\x7f=1', 'a=1,y', 'a=1,',
                         ',a=1', '{"a": 1', '{"a": 1} x', '{"a": NaN}', '{"a": "\\u0000"}',
                         "{'a': 1}", '{"a": 409E}']):
    put('keyval', 'bad-%02d' % i, kv(0, bad))
# long ones: a 40 KB value whose JSON text ("\/" for each '/') is over the 64 KiB limit, a list
put('keyval', 'long-value', kv(0, 'a=' + '/' * 40000))
put('keyval', 'long-list', kv(8, ','.join('l.%d.x=%d' % (i, i) for i in range(2000))))
# values for each accessor (the option byte's bits 2-3 pick the first; the next keys rotate)
typed = 'a=64k,b=on,c=0x10,d=2GiB,e=-,f=no,g=,h=1e,i=18446744073709551616,j=false,k=-5,l=1tb'
for acc in range(4):
    put('keyval', 'typed-%d' % acc, kv(acc << 2, typed))
put('keyval', 'json-typed', kv(4, '{"a": true, "b": -5, "c": 1.5, "d": [1], "e": {"f": null}, '
    '"g": "yes", "h": 18446744073709551615, "i": "\\u000f", "": 0, "j": null}'))

# ------------------------------------ scsi_cdb: option byte, geometry, sense room, CDB, param list
def scsi(opt, cdb, param=b'', cap=8192, mult=0, descs=7, room=252):
    return (bytes([opt]) + struct.pack('<IBBH', cap, mult, descs, room) + bytes([len(cdb)]) +
            bytes(cdb) + param)

def be(n, v):
    return v.to_bytes(n, 'big')

def unmap_list(ranges):
    bd = b''.join(be(8, l) + be(4, n) + bytes(4) for l, n in ranges)
    return be(2, 6 + len(bd)) + be(2, len(bd)) + bytes(4) + bd

caching = bytes([0x08, 0x12, 0x04]) + bytes(17)
control = bytes([0x0a, 0x0a, 0x06, 0x10]) + bytes(8)
put('scsi_cdb', 'tur', scsi(0, [0x00, 0, 0, 0, 0, 0]))
put('scsi_cdb', 'request-sense-desc', scsi(0x20, [0x03, 1, 0, 0, 252, 0]))
put('scsi_cdb', 'inquiry', scsi(0, [0x12, 0, 0, 0, 96, 0]))
for page in (0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2):
    put('scsi_cdb', 'inquiry-vpd-%02x' % page, scsi(2, [0x12, 1, page, 0, 255, 0]))
put('scsi_cdb', 'read-capacity-10', scsi(0, [0x25] + [0] * 9))
put('scsi_cdb', 'read-capacity-16', scsi(2, [0x9e, 0x10] + [0] * 10 + [32, 0, 0, 0]))
put('scsi_cdb', 'read-6', scsi(0, [0x08, 0, 0, 8, 0, 0]))
put('scsi_cdb', 'write-6-ro', scsi(1, [0x0a, 0, 0, 8, 1, 0]))
put('scsi_cdb', 'read-10-fua', scsi(0, [0x28, 0x18, 0, 0, 0, 16, 0, 0, 8, 0]))
put('scsi_cdb', 'write-10', scsi(0, [0x2a, 0x08, 0, 0, 0x1f, 0xff, 0, 0, 1, 0]))
put('scsi_cdb', 'read-12', scsi(0, [0xa8, 0] + list(be(4, 100)) + list(be(4, 4)) + [0, 0]))
put('scsi_cdb', 'write-16-range', scsi(0, [0x8a, 0] + list(be(8, 8190)) + list(be(4, 4)) + [0, 0]))
put('scsi_cdb', 'verify-16-bytchk', scsi(0, [0x8f, 0x02] + list(be(8, 10)) + list(be(4, 4)) + [0, 0]))
put('scsi_cdb', 'verify-10', scsi(0, [0x2f, 0, 0, 0, 0, 10, 0, 0, 4, 0]))
put('scsi_cdb', 'write-same-10-unmap', scsi(2, [0x41, 0x08, 0, 0, 0, 0, 0, 0, 64, 0]))
put('scsi_cdb', 'write-same-16-ndob', scsi(2, [0x93, 0x09] + list(be(8, 0)) + list(be(4, 64)) + [0, 0]))
put('scsi_cdb', 'sync-cache-10', scsi(0, [0x35, 2, 0, 0, 0, 0, 0, 0, 0, 0]))
put('scsi_cdb', 'sync-cache-16', scsi(0, [0x91, 0] + list(be(8, 8)) + list(be(4, 8)) + [0, 0]))
put('scsi_cdb', 'unmap', scsi(2, [0x42, 0, 0, 0, 0, 0, 0, 0, 40, 0],
                             unmap_list([(0, 8), (100, 0), (8000, 192)])))
put('scsi_cdb', 'unmap-too-many', scsi(2, [0x42, 0, 0, 0, 0, 0, 0, 1, 0, 0],
                                      unmap_list([(i, 1) for i in range(9)])))
put('scsi_cdb', 'mode-sense-6-caching', scsi(0, [0x1a, 0, 0x08, 0, 255, 0]))
put('scsi_cdb', 'mode-sense-10-all', scsi(0, [0x5a, 0x10, 0x3f, 0xff, 0, 0, 0, 1, 0, 0]))
put('scsi_cdb', 'mode-sense-saved', scsi(0, [0x1a, 0, 0xc8, 0, 255, 0]))
put('scsi_cdb', 'mode-select-6', scsi(0x80, [0x15, 0x10, 0, 0, 4 + 8 + 20, 0],
                                     bytes([0, 0, 0, 8]) + be(4, 8192) + be(4, 512) + caching))
put('scsi_cdb', 'mode-select-10', scsi(0xc0, [0x55, 0x10, 0, 0, 0, 0, 0, 0, 8 + 12 + 20, 0],
                                      bytes(8) + control + caching))
put('scsi_cdb', 'report-luns', scsi(0, [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]))
put('scsi_cdb', 'report-opcodes-all', scsi(2, [0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 8, 0, 0, 0]))
put('scsi_cdb', 'report-opcodes-one', scsi(0, [0xa3, 0x0c, 2, 0x9e, 0, 0x10, 0, 0, 0, 64, 0, 0]))
put('scsi_cdb', 'start-stop', scsi(0, [0x1b, 1, 0, 0, 0x31, 0]))
put('scsi_cdb', 'prevent', scsi(0, [0x1e, 0, 0, 0, 1, 0]))
put('scsi_cdb', 'short-read-16', scsi(0, [0x88, 0, 0, 0]))
put('scsi_cdb', 'unknown', scsi(0x20, [0xd0] + [0] * 15, room=5))
put('scsi_cdb', 'naca', scsi(0, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x04]))

# ------------------------------------------------------- probe: the image file, byte for byte
# (the qcow2 images from qemu-img join these below). Headers carrying each format's magic, laid
# out as the format's spec says so that a driver for it gets past the magic.
put('probe', 'empty', b'')
put('probe', 'zeroes-4k', bytes(4096))
put('probe', 'zeroes-600', bytes(600))
put('probe', 'text', b'This is a plain text file, not a disk image.\n' * 20)
put('probe', 'one-byte', b'Q')

def pad(b, n):
    return bytes(b) + bytes(n - len(b))

# VMDK monolithic sparse: SparseExtentHeader (little endian), embedded descriptor at sector 1
desc_txt = (b'# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n'
            b'createType="monolithicSparse"\n\n# Extent description\n'
            b'RW 128 SPARSE "img"\n\n# The Disk Data Base\nddb.virtualHWVersion = "4"\n')
vmdk = struct.pack('<4sIIQQQQIQQQB4sH', b'KDMV', 1, 3, 128, 8, 1, 1, 512, 0, 2, 3, 0,
                   b'\n \r\n', 0)
put('probe', 'vmdk-sparse', pad(vmdk, 512) + pad(desc_txt, 512) + bytes(2048))
put('probe', 'vmdk-descriptor', desc_txt.replace(b'SPARSE "img"', b'FLAT "backing.raw" 0'))
put('probe', 'vmdk-truncated', vmdk[:40])

# VHDX: the file type identifier ("vhdxfile" + creator, UTF-16); the headers would follow at 64 KiB
put('probe', 'vhdx-ident', pad(b'vhdxfile' + 'vireo fuzz'.encode('utf-16-le'), 4096))

# VPC (VHD) dynamic disk: footer copy at 0, dynamic header ("cxsparse") at 512, BAT, footer at end
def vhd_sum(b):
    return (~sum(b)) & 0xffffffff

def vhd_footer(size, disk_type, data_off):
    f = bytearray(struct.pack('>8sIIQI4sI4sQQIII16sB', b'conectix', 2, 0x10000, data_off, 0,
                              b'vpc ', 0x50003, b'Wi2k', size, size, (2 << 16 | 4 << 8 | 17),
                              disk_type, 0, bytes(range(16)), 0))
    f = pad(f, 512)
    f = bytearray(f)
    struct.pack_into('>I', f, 64, vhd_sum(f))
    return bytes(f)

dyn = bytearray(pad(struct.pack('>8sQQIIII16sII512s', b'cxsparse', 0xffffffffffffffff, 1536,
                                0x10000, 32, 0x200000, 0, bytes(16), 0, 0, bytes(512)), 1024))
struct.pack_into('>I', dyn, 36, vhd_sum(dyn))
vpc_size = 32 * 0x200000
put('probe', 'vpc-dynamic', vhd_footer(vpc_size, 3, 512) + bytes(dyn) + b'\xff' * 512 +
    vhd_footer(vpc_size, 3, 512))
put('probe', 'vpc-fixed', bytes(4096) + vhd_footer(4096, 2, 0xffffffffffffffff))

# qcow version 1 (big endian): 48-byte header, L1 table at 4 KiB; one with a backing file
def qcow1(backing=b''):
    hdr = struct.pack('>4sIQIIQBBHIQ', b'QFI\xfb', 1, 48 if backing else 0, len(backing), 0,
                      65536, 12, 9, 0, 0, 4096)
    return pad(hdr + backing, 4096) + bytes(4096)

put('probe', 'qcow1', qcow1())
put('probe', 'qcow1-backing', qcow1(b'backing.raw'))

# QED (little endian): 4 KiB clusters, one-cluster tables, L1 at 4 KiB; one with a backing file
def qed(backing=b''):
    feat = 1 if backing else 0
    hdr = struct.pack('<4sIIIQQQQQII', b'QED\0', 4096, 1, 1, feat, 0, 0, 4096, 65536,
                      64 if backing else 0, len(backing))
    return pad(hdr + backing, 4096) + bytes(4096)

put('probe', 'qed', qed())
put('probe', 'qed-backing', qed(b'backing.raw'))

# LUKS1 (big endian phdr) and LUKS2 (binary header + JSON area)
luks1 = struct.pack('>6sH32s32s32sII20s32sI40s', b'LUKS\xba\xbe', 1, b'aes', b'xts-plain64',
                    b'sha256', 4096, 64, bytes(20), bytes(32), 1000,
                    b'01234567-89ab-cdef-0123-456789abcdef')
for i in range(8):
    luks1 += struct.pack('>II32sII', 0x0000DEAD, 0, bytes(32), 8 + i * 512, 4000)
put('probe', 'luks1', pad(luks1, 4096))
luks2 = pad(struct.pack('>6sHQQ48s32s64s40s48sQ', b'LUKS\xba\xbe', 2, 16384, 1, b'vireo',
                        b'sha256', bytes(64), b'01234567-89ab-cdef-0123-456789abcdef', b'', 0),
            4096)
put('probe', 'luks2', luks2 + b'{"keyslots":{},"tokens":{},"segments":{},"digests":{},'
    b'"config":{"json_size":"12288","keyslots_size":"0"}}')

# VDI: the text banner, then the signature 0xbeda107f at 0x40 (little endian), a v1.1 header
vdi = bytearray(pad(b'<<< Oracle VM VirtualBox Disk Image >>>\n', 64))
vdi += struct.pack('<III I', 0xbeda107f, 0x00010001, 0x190, 1)
vdi += struct.pack('<I', 0) + pad(b'fuzz', 256)
vdi += struct.pack('<IIIIIIIQIIII', 0x200, 0x400, 0, 0, 0, 512, 0, 1 << 20, 1 << 20, 0, 1, 0)
vdi = pad(vdi, 0x200) + b'\xff' * 4 + bytes(0x200 - 4)
put('probe', 'vdi', vdi)

# ------------------------------- nbd_reply: the NBD client reading a server (fuzz_nbd_reply.c)
# handshake (option bit 0): the server's side of it
def nbd_rep(opt, typ, data=b''):
    return struct.pack('>QIII', 0x3e889045565a9, opt, typ, len(data)) + data

NBD_GREET = struct.pack('>QQH', 0x4e42444d41474943, 0x49484156454f5054, 3)
NO_EXT = nbd_rep(11, 0x80000001) # the client asks for extended headers first
nbd_modern = (NBD_GREET + NO_EXT + nbd_rep(8, 1) +
              nbd_rep(10, 4, struct.pack('>I', 5) + b'base:allocation') + nbd_rep(10, 1) +
              nbd_rep(7, 3, struct.pack('>HQH', 0, 64 << 20, 0x1 | 0x4 | 0x8 | 0x20 | 0x40)) +
              nbd_rep(7, 3, struct.pack('>HIII', 3, 512, 4096, 32 << 20)) +
              nbd_rep(7, 3, struct.pack('>H', 1) + b'fuzz') + nbd_rep(7, 1))
put('nbd_reply', 'hs-modern', b'\x01' + nbd_modern)
put('nbd_reply', 'hs-extended',
    b'\x01' + NBD_GREET + nbd_rep(11, 1) +
    nbd_rep(10, 4, struct.pack('>I', 0) + b'base:allocation') + nbd_rep(10, 1) +
    nbd_rep(7, 3, struct.pack('>HQH', 0, 8 << 30, 0x1 | 0x4 | 0x8 | 0x20 | 0x40)) +
    nbd_rep(7, 3, struct.pack('>HIII', 3, 1, 4096, 32 << 20)) + nbd_rep(7, 1))
put('nbd_reply', 'hs-extended-no-go',
    b'\x01' + NBD_GREET + nbd_rep(11, 1) + nbd_rep(10, 1) + nbd_rep(7, 0x80000001) +
    nbd_rep(2, 1))
put('nbd_reply', 'hs-no-structured-no-go',
    b'\x01' + struct.pack('>QQH', 0x4e42444d41474943, 0x49484156454f5054, 1) + NO_EXT +
    nbd_rep(8, 0x80000001) + nbd_rep(7, 0x80000001) + struct.pack('>QH', 1 << 20, 3) +
    bytes(124))
put('nbd_reply', 'hs-export-name-only',
    b'\x01' + struct.pack('>QQH', 0x4e42444d41474943, 0x49484156454f5054, 2) +
    struct.pack('>QH', 4096, 1))
put('nbd_reply', 'hs-unknown-export',
    b'\x01' + NBD_GREET + NO_EXT + nbd_rep(8, 1) + nbd_rep(10, 0x80000006) +
    nbd_rep(7, 0x80000006, b'export not present') + nbd_rep(2, 1))

# replies: option (structured 2, base:allocation 4, context id 3 << 3, extended headers 32),
# 4 requests, the stream
def nbd_req(typ, flags=0, off=0, length=512, skip=0):
    return struct.pack('<BBHHB', typ, flags, off, length - 1, skip) + b'\0'
NBD_COOKIES = [0x100 + i * 0x1111 for i in range(4)]
def nbd_simple(err, cookie, data=b''):
    return struct.pack('>IIQ', 0x67446698, err, cookie) + data
def nbd_chunk(flags, typ, cookie, payload=b''):
    return struct.pack('>IHHQI', 0x668e33ef, flags, typ, cookie, len(payload)) + payload

table = (nbd_req(0, 0, 1, 4096, 7) + nbd_req(1, 0, 2, 1024) + nbd_req(5, 1, 0, 65536) +
         nbd_req(2))
c = NBD_COOKIES
stream = (nbd_chunk(0, 1, c[0], struct.pack('>Q', 512 + 1024) + b'\xcd' * 3072) +
          nbd_chunk(0, 2, c[0], struct.pack('>QI', 512, 1024)) +
          nbd_simple(0, c[1]) +
          nbd_chunk(0, 5, c[2], struct.pack('>III', 3, 32768, 3)) +
          nbd_chunk(1, 0, c[0]) + nbd_chunk(1, 0, c[2]) + nbd_simple(0, c[3]))
put('nbd_reply', 'rx-structured', bytes([2 | 4 | 3 << 3]) + table + stream)
errors = (nbd_chunk(0, 0x8002, c[0], struct.pack('>IH', 5, 3) + b'bad' +
                    struct.pack('>Q', 512 + 100)) +
          nbd_chunk(1, 0x8001, c[1], struct.pack('>IH', 28, 0)) +
          nbd_chunk(1, 0x8001, c[2], struct.pack('>IH', 22, 4) + b'nope') +
          nbd_chunk(1, 0, c[0]) +
          nbd_chunk(1, 0x8001, c[3], struct.pack('>IH', 5, 0)))
put('nbd_reply', 'rx-errors', bytes([2 | 4 | 3 << 3]) + table + errors)
simple_table = nbd_req(0, 0, 0, 2000, 200) + nbd_req(1) + nbd_req(4) + nbd_req(3)
put('nbd_reply', 'rx-simple', b'\x00' + simple_table + nbd_simple(0, c[0], b'\x5a' * 2000) +
    nbd_simple(1, c[1]) + nbd_simple(0, c[3]) + nbd_simple(0, c[2]))
# extended headers: 32-byte chunks echoing the request's offset (requests at offset * 512)
def nbd_xchunk(flags, typ, cookie, off, payload=b''):
    return struct.pack('>IHHQQQ', 0x6e8a278c, flags, typ, cookie, off, len(payload)) + payload
xstream = (nbd_xchunk(0, 1, c[0], 512, struct.pack('>Q', 512 + 1024) + b'\xcd' * 3072) +
           nbd_xchunk(0, 2, c[0], 512, struct.pack('>QI', 512, 1024)) +
           nbd_xchunk(1, 0, c[1], 1024) +
           nbd_xchunk(0, 6, c[2], 0, struct.pack('>IIQQ', 3, 1, 32768, 3)) +
           nbd_xchunk(1, 0, c[0], 512) + nbd_xchunk(1, 0, c[2], 0) +
           nbd_xchunk(1, 0x8001, c[3], 0, struct.pack('>IH', 5, 2) + b'no'))
put('nbd_reply', 'rx-extended', bytes([2 | 4 | 3 << 3 | 32]) + table + xstream)
put('nbd_reply', 'rx-extended-wrong-offset', bytes([2 | 4 | 3 << 3 | 32]) + table +
    nbd_xchunk(1, 0, c[1], 0))
put('nbd_reply', 'rx-extended-compact-chunk', bytes([2 | 4 | 3 << 3 | 32]) + table +
    nbd_chunk(1, 0, c[1]))
# ------------------------------- nbd_server: the NBD server's connection (fuzz_nbd_server.c)
# option byte: bit 0 canned handshake, bit 1 no structured replies, bit 2 export "" (read-only),
# bits 3-4 piece size 1 << n, bit 5 extended headers, bit 6 replies read only at the end; then ops
def srv_opt(canned=True, structured=True, ro=False, piece=3, lazy=False, extended=False):
    return bytes([(1 if canned else 0) | (0 if structured else 2) | (4 if ro else 0) |
                  piece << 3 | (32 if extended else 0) | (64 if lazy else 0)])
# shift: with extended headers the length is shifted left by it (the flags' high byte)
def srv_req(typ, off, length, flags=0, shift=0):
    return bytes([0, typ]) + struct.pack('<HQI', flags | shift << 8, off, length)
def srv_raw(b):
    return b''.join(bytes([1, len(b[i:i + 255])]) + b[i:i + 255] for i in range(0, len(b), 255))
SRV_DONE = bytes([3])
def be_opt(opt, data=b''):
    return struct.pack('>QII', 0x49484156454F5054, opt, len(data)) + data
def be_name(n, reqs=()):
    return struct.pack('>I', len(n)) + n + struct.pack('>H', len(reqs)) + \
        b''.join(struct.pack('>H', r) for r in reqs)
def be_meta(n, qs):
    return struct.pack('>I', len(n)) + n + struct.pack('>I', len(qs)) + \
        b''.join(struct.pack('>I', len(q)) + q for q in qs)
# every command, good and bad, through the canned handshake (structured, export "a")
cmds = (srv_req(0, 0, 4096) + srv_req(1, 8192, 4096) + srv_req(1, 0, 4096, 1) +
        srv_req(3, 0, 0) + srv_req(4, 4096, 65536) + srv_req(5, 0, 65536) +
        srv_req(6, 0, 4096, 2) + srv_req(6, 0, 4096, 16) + srv_req(7, 0, 1 << 20) +
        srv_req(7, 4096, 65536, 8) + srv_req(0, 0, 65536, 4) + srv_req(0, 0, 0) + SRV_DONE +
        bytes([2, 3, 0, 7, 1, 8, 2, 64]) + SRV_DONE)
put('nbd_server', 'cmd-all', srv_opt() + cmds)
put('nbd_server', 'cmd-all-simple', srv_opt(structured=False) + cmds)
put('nbd_server', 'cmd-all-readonly', srv_opt(ro=True) + cmds)
put('nbd_server', 'cmd-all-bytewise', srv_opt(piece=0) + cmds)
put('nbd_server', 'cmd-lazy-reader', srv_opt(lazy=True) +
    b''.join(srv_req(0, 0, 256 << 10) for _ in range(40)) + SRV_DONE)
errs = (srv_req(0, (1 << 20) - 10, 4096) + srv_req(1, (1 << 20) - 100, 4096) +
        srv_req(9, 0, 0) + srv_req(3, 1, 0) + srv_req(0, 0, 0x82000001) +
        srv_req(7, 0, 0) + srv_req(0, 0xfffffffffffffff0, 4096) + srv_req(0, 0, 4096, 0x20) +
        SRV_DONE + srv_req(2, 0, 0) + SRV_DONE)
put('nbd_server', 'cmd-errors-then-disc', srv_opt() + errs)
put('nbd_server', 'cmd-bad-magic', srv_opt() + srv_req(0, 0, 512) +
    srv_raw(struct.pack('>IHHQQI', 0x25609514, 0, 0, 1, 0, 512)) + SRV_DONE)
put('nbd_server', 'cmd-huge-write', srv_opt() + srv_req(1, 0, 0xffffffff) + SRV_DONE)
put('nbd_server', 'cmd-eof-midway', srv_opt() + srv_req(1, 0, 65536) + bytes([4]))
put('nbd_server', 'cmd-transport-fails', srv_opt() + srv_req(0, 0, 65536) + bytes([5]))
# raw handshakes: every option, well and badly formed
hs = (struct.pack('>I', 3) + be_opt(3) + be_opt(3, b'x') + be_opt(6, be_name(b'a', (0, 1, 2, 3))) +
      be_opt(6, be_name(b'', (1, 2))) + be_opt(7, be_name(b'zz')) + be_opt(6, b'\0\0') +
      be_opt(9, be_meta(b'a', [])) + be_opt(8) + be_opt(8, b'x') + be_opt(9, be_meta(b'a', [])) +
      be_opt(9, be_meta(b'a', [b'base:', b'qemu:', b'qemu:dirty-bitmap:', b'x-y:z'])) +
      be_opt(10, be_meta(b'a', [b'base:allocation', b'qemu:dirty-bitmap:bm', b'nocolon'])) +
      be_opt(10, be_meta(b'nope', [b'base:allocation'])) + be_opt(5) + be_opt(11) +
      be_opt(4242, b'\x55' * 300) + be_opt(7, be_name(b'a', (3,))))
put('nbd_server', 'hs-every-option', srv_opt(canned=False) + srv_raw(hs) +
    srv_req(0, 0, 4096) + SRV_DONE)
put('nbd_server', 'hs-export-name', srv_opt(canned=False) +
    srv_raw(struct.pack('>I', 1) + be_opt(1, b'a')) + srv_req(0, 0, 4096) + SRV_DONE)
put('nbd_server', 'hs-export-name-zeroes', srv_opt(canned=False) +
    srv_raw(struct.pack('>I', 1) + be_opt(1, b'')) + SRV_DONE)
put('nbd_server', 'hs-export-name-unknown', srv_opt(canned=False) +
    srv_raw(struct.pack('>I', 3) + be_opt(1, b'nope')) + SRV_DONE)
put('nbd_server', 'hs-not-fixed', srv_opt(canned=False) +
    srv_raw(struct.pack('>I', 0) + be_opt(3)) + SRV_DONE)
put('nbd_server', 'hs-bad-flags', srv_opt(canned=False) + srv_raw(struct.pack('>I', 8)) + SRV_DONE)
put('nbd_server', 'hs-abort', srv_opt(canned=False) +
    srv_raw(struct.pack('>I', 1) + be_opt(2, b'junk')) + SRV_DONE)
put('nbd_server', 'hs-bad-magic', srv_opt(canned=False) +
    srv_raw(struct.pack('>I', 1) + b'IHAVEOPX' + struct.pack('>II', 3, 0)) + SRV_DONE)
# TLS required (option bit 7): the canned handshake starts with STARTTLS; raw: refusals first
put('nbd_server', 'tls-cmd-all', bytes([srv_opt()[0] | 128]) + cmds)
put('nbd_server', 'tls-refusals', bytes([srv_opt(canned=False)[0] | 128]) +
    srv_raw(struct.pack('>I', 1) + be_opt(3) + be_opt(7, be_name(b'a')) + be_opt(4242, b'x' * 9) +
            be_opt(5, b'x') + be_opt(5) + be_opt(3)) + SRV_DONE)
put('nbd_server', 'tls-export-name', bytes([srv_opt(canned=False)[0] | 128]) +
    srv_raw(struct.pack('>I', 1) + be_opt(1, b'a')) + SRV_DONE)
put('nbd_server', 'hs-too-big', srv_opt(canned=False) +
    srv_raw(struct.pack('>I', 1) + struct.pack('>QII', 0x49484156454F5054, 7, 70000)) +
    srv_raw(b'\0' * 1000) + SRV_DONE)
# extended headers (option bit 5): alone, after structured replies, with TLS; 64-bit lengths,
# NBD_CMD_FLAG_PAYLOAD_LEN (0x20) where it is and is not allowed, then framing violations
PL = 0x20
put('nbd_server', 'ext-cmd-all', srv_opt(structured=False, extended=True) + cmds)
put('nbd_server', 'ext-cmd-all-after-structured', srv_opt(extended=True) + cmds)
put('nbd_server', 'ext-cmd-all-readonly', srv_opt(ro=True, extended=True) + cmds)
put('nbd_server', 'tls-ext-cmd-all', bytes([srv_opt(extended=True)[0] | 128]) + cmds)
put('nbd_server', 'ext-lazy-reader', srv_opt(lazy=True, extended=True) +
    b''.join(srv_req(0, 0, 256 << 10) for _ in range(40)) + SRV_DONE)
ext = (srv_req(1, 4096, 4096, PL) + srv_req(1, 8192, 4096, PL | 1) +
       srv_req(4, 0, 1, 0, 33) + srv_req(6, 0, 1, 2, 33) + srv_req(5, 0, 1, 0, 40) +
       srv_req(7, 0, 1, 0, 33) + srv_req(7, 0, 1, 8, 17) + srv_req(0, 0, 1, 0, 26) +
       srv_req(7, 0, 12, PL) + srv_req(3, 0, 16, PL) + srv_req(0, 0, 8, PL) +
       srv_req(9, 0, 4, PL) + srv_req(0, 0, 4096, 4) + SRV_DONE +
       bytes([2, 4, 0, 7, 1, 8, 2, 64, 3, 0]) + SRV_DONE + srv_req(1, 0, 1, PL, 30) + SRV_DONE)
put('nbd_server', 'ext-64bit-and-payloads', srv_opt(extended=True) + ext)
put('nbd_server', 'ext-compact-header', srv_opt(extended=True) + srv_req(3, 0, 0) +
    srv_raw(struct.pack('>IHHQQI', 0x25609513, 0, 3, 7, 0, 0)) + SRV_DONE)
put('nbd_server', 'cmd-extended-header', srv_opt() + srv_req(3, 0, 0) +
    srv_raw(struct.pack('>IHHQQQ', 0x21e41c71, 0, 3, 7, 0, 0)) + SRV_DONE)
hsx = (struct.pack('>I', 3) + be_opt(11, b'x') + be_opt(11) + be_opt(8) + be_opt(11) +
       be_opt(10, be_meta(b'a', [b'base:allocation'])) + be_opt(7, be_name(b'a')))
put('nbd_server', 'hs-extended', srv_opt(canned=False) + srv_raw(hsx) +
    srv_raw(struct.pack('>IHHQQQ', 0x21e41c71, 0, 7, 1, 0, 65536)) + SRV_DONE)
put('nbd_server', 'hs-extended-export-name', srv_opt(canned=False) +
    srv_raw(struct.pack('>I', 1) + be_opt(11) + be_opt(1, b'a')) + SRV_DONE)
PY

# ---------------------------------------------------------------------------- qcow2 seeds
if command -v qemu-img >/dev/null && command -v qemu-io >/dev/null; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(
		cd "$tmp"
		q() { qemu-img "$@" >/dev/null; }
		io() { qemu-io -f qcow2 "$@" >/dev/null; }
		head -c 65536 /dev/zero | tr '\0' '\273' > backing.raw   # the harness's backing.raw
		python3 -c "import sys; sys.stdout.buffer.write(bytes((i*7)&0xff for i in range(16384)))" > pattern.raw

		q create -f qcow2 -o cluster_size=512 plain.qcow2 64K
		io -c 'write -P 0x11 0 4k' -c 'write -z 8k 1k' -c 'write -P 0x22 63k 1k' plain.qcow2
		q create -f qcow2 -o cluster_size=512,compat=0.10 v2.qcow2 64K
		io -c 'write -P 0x33 1k 2k' v2.qcow2
		q convert -c -f raw -O qcow2 -o cluster_size=4096 pattern.raw zlib.qcow2
		q convert -c -f raw -O qcow2 -o cluster_size=4096,compression_type=zstd pattern.raw zstd.qcow2
		q create -f qcow2 -o cluster_size=512 -b backing.raw -F raw backing.qcow2 64K
		io -c 'write -P 0x44 2k 1k' -c 'write -z 4k 1k' backing.qcow2
		q create -f qcow2 -o cluster_size=512,data_file=data.raw data-file.qcow2 64K
		io -c 'write -P 0x55 0 2k' data-file.qcow2
		q create -f qcow2 -o cluster_size=512,refcount_bits=1 rc1.qcow2 64K
		io -c 'write -P 0x66 0 1k' rc1.qcow2
		q create -f qcow2 -o cluster_size=512,refcount_bits=64 rc64.qcow2 64K
		io -c 'write -P 0x77 0 1k' rc64.qcow2
		q create -f qcow2 -o cluster_size=512 snapshot.qcow2 64K
		io -c 'write -P 0x88 0 1k' snapshot.qcow2
		q snapshot -c s1 snapshot.qcow2
		io -c 'write -P 0x99 0 512' snapshot.qcow2
		# internal snapshots (issue 18): two of them across a size change, one over a
		# compressed cluster; and hostile copies: extra data over 1 KiB, a misaligned L1
		# table, an L1 table past the end of the file, an L1 entry with reserved bits
		q create -f qcow2 -o cluster_size=512 snapshots.qcow2 32K
		io -c 'write -P 0x21 0 2k' snapshots.qcow2
		q snapshot -c s1 snapshots.qcow2
		q resize snapshots.qcow2 48K
		io -c 'write -P 0x22 1k 2k' -c 'write -P 0x23 40k 1k' snapshots.qcow2
		q snapshot -c s2 snapshots.qcow2
		q convert -c -f raw -O qcow2 -o cluster_size=4096 pattern.raw zsnap.qcow2
		q snapshot -c z zsnap.qcow2
		io -c 'write -P 0x24 0 1k' zsnap.qcow2
		for bad in extra l1-misaligned l1-past-end l1-reserved; do
			cp snapshot.qcow2 snapshot-bad-$bad.qcow2
			python3 - snapshot-bad-$bad.qcow2 $bad <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(64); t = struct.unpack(">Q", f.read(8))[0]
f.seek(t); l1 = struct.unpack(">Q", f.read(8))[0]
def put(off, fmt, v): f.seek(off); f.write(struct.pack(fmt, v))
if sys.argv[2] == "extra": put(t + 36, ">I", 4096)
if sys.argv[2] == "l1-misaligned": put(t, ">Q", l1 + 256)
if sys.argv[2] == "l1-past-end": put(t, ">Q", 1 << 30)
if sys.argv[2] == "l1-reserved":
    f.seek(l1); e = struct.unpack(">Q", f.read(8))[0]; put(l1, ">Q", e | 3)
PY
		done
		q create -f qcow2 -o cluster_size=512 bitmap.qcow2 64K
		# LUKS (issue 18): luks_header gets a u32 area size, then a volume's first 592 bytes
		# (qemu-img's, with aes-256 and aes-128 keys, sha256 and sha1); qcow2_header the header
		# cluster of an encrypted qcow2 image (its LUKS header lies past the 64 KiB a seed
		# may hold: the extra file size says where)
		sec=(--object secret,id=s,data=seed)
		q create -f luks "${sec[@]}" -o key-secret=s,iter-time=1 l256.luks 64K
		q create -f luks "${sec[@]}" -o key-secret=s,iter-time=1,cipher-alg=aes-128,hash-alg=sha1 l128.luks 64K
		for f in l256 l128; do
			{ python3 -c 'import struct, sys; sys.stdout.buffer.write(struct.pack("<I", int(sys.argv[1])))' \
				"$(stat -c %s $f.luks)"; head -c 592 $f.luks; } > "$corpus/luks_header/$f"
		done
		q create -f qcow2 "${sec[@]}" -o cluster_size=512,encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=1 enc.qcow2 64K
		{ python3 -c 'import struct, sys; sys.stdout.buffer.write(struct.pack("<Q", 4 << 20))'; head -c 512 enc.qcow2; } \
			> "$corpus/qcow2_header/encrypted-luks"
		rm -f enc.qcow2 l256.luks l128.luks
		q bitmap --add bitmap.qcow2 b0
		# persistent bitmaps with data (issue 18): two granularities, one disabled, one left
		# in use; hostile copies: a bad type, granularity bits 40, a table entry with reserved
		# bits, an entry running past the directory
		q create -f qcow2 -o cluster_size=512 bitmaps.qcow2 64K
		q bitmap --add -g 512 bitmaps.qcow2 fine
		q bitmap --add -g 8k --disable bitmaps.qcow2 coarse
		io -c 'write -P 0x31 1k 3k' -c 'write -z 40k 2k' bitmaps.qcow2
		for bad in in-use type gran table-reserved past-dir; do
			cp bitmaps.qcow2 bitmap-bad-$bad.qcow2
			python3 - bitmap-bad-$bad.qcow2 $bad <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
data = open(sys.argv[1], "rb").read()
off = struct.unpack(">I", data[100:104])[0]
while True:
    typ, ln = struct.unpack(">II", data[off:off + 8])
    if typ == 0x23852875:
        d = struct.unpack(">Q", data[off + 24:off + 32])[0]
        break
    off += 8 + ((ln + 7) & ~7)
t = struct.unpack(">Q", data[d:d + 8])[0]
def put(o, fmt, v): f.seek(o); f.write(struct.pack(fmt, v))
if sys.argv[2] == "in-use": put(d + 12, ">I", 3)
if sys.argv[2] == "type": put(d + 16, "B", 2)
if sys.argv[2] == "gran": put(d + 17, "B", 40)
if sys.argv[2] == "table-reserved":
    put(t, ">Q", struct.unpack(">Q", data[t:t + 8])[0] | (1 << 60))
if sys.argv[2] == "past-dir": put(d + 20, ">I", 4096)
PY
		done
		q create -f qcow2 -o cluster_size=512,preallocation=metadata prealloc.qcow2 32K
		q create -f qcow2 -o cluster_size=65536 big-cluster-empty.qcow2 1G
		for f in *.qcow2; do
			if [ "$(stat -c %s "$f")" -lt 65536 ]; then
				cp "$f" "$corpus/qcow2_open/$f"
				# qcow2_header: 8 bytes of extra file size (0), then the image
				{ head -c 8 /dev/zero; cat "$f"; } > "$corpus/qcow2_header/$f"
			else
				echo "make-seeds: skipping $f ($(stat -c %s "$f") bytes, over 64 KiB)" >&2
			fi
		done
		# probe: qcow2 v2 and v3, with a backing file, with a data file; and a v3 image whose
		# header says version 9 (a known magic with an unknown version: never raw)
		for f in plain v2 backing data-file; do
			cp "$f.qcow2" "$corpus/probe/qcow2-$f"
		done
		cp plain.qcow2 v9.qcow2
		printf '\0\0\0\011' | dd of=v9.qcow2 bs=1 seek=4 conv=notrunc status=none
		cp v9.qcow2 "$corpus/probe/qcow2-version-9"
	)
else
	echo "make-seeds: qemu-img/qemu-io not found: qcow2 seeds not regenerated" >&2
fi

# ------------------------------------------------- vmdk (issue 20): headers, descriptors, probe
bash "$here/make-vmdk-seeds.sh" "$corpus" "$build/tools/vireo-img"
# --------------------------------------------- vpc and vdi (issue 20): headers, BATs, probe
bash "$here/make-vpc-seeds.sh" "$corpus" "$build/tools/vireo-img"

# ------------------------------------------- vhdx (issue 20): header section and log, probe
bash "$here/make-vhdx-seeds.sh" "$corpus" "$build/tools/vireo-img"

# ------------------------------------------------------- the assembled PVH guests, if built
for g in exit42 serial_hello triplefault; do
	f=$build/tests/integration/$g.elf
	if [ -f "$f" ]; then
		{ printf '\0'; cat "$f"; } > "$corpus/boot/guest-$g"
	fi
done
echo "seeds: $(find "$corpus" -type f | wc -l) files in $corpus"
