#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a sparse raw disk image with realistic content: extents of real files (libraries,
binaries, text: compressible and not), runs of zeroes written as data, and holes, roughly
what a used filesystem image holds.

usage: mkimage.py OUT SIZE_MIB [DATA_PERCENT]"""
import os
import random
import sys

out, size_mib = sys.argv[1], int(sys.argv[2])
pct = int(sys.argv[3]) if len(sys.argv) > 3 else 60
rng = random.Random(42)
corpus = bytearray()
for d in ("/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/share/doc"):
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            try:
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as fh:
                        corpus += fh.read(4 << 20)
            except OSError:
                pass
            if len(corpus) >= 256 << 20:
                break
        if len(corpus) >= 256 << 20:
            break
size = size_mib << 20
with open(out, "wb") as fh:
    fh.truncate(size)
    off = 0
    while off < size:
        n = min(rng.choice([64, 256, 1024, 4096]) << 10, size - off)
        r = rng.randrange(100)
        if r < pct:
            src = rng.randrange(0, len(corpus) - n)
            fh.seek(off)
            fh.write(corpus[src:src + n])
        elif r < pct + 10:
            fh.seek(off)
            fh.write(bytes(n))  # zeroes written as data
        off += n
