#!/usr/bin/env python3
"""Zero the creation/modification times that mp4mux stamps into mvhd/tkhd/mdhd,
so that samples/make_samples.sh gives byte-identical files on every run."""

import struct
import sys

CONTAINERS = {b"moov", b"trak", b"mdia"}
STAMPED = {b"mvhd", b"tkhd", b"mdhd"}


def walk(buf, start, end):
    off = start
    while off + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, off)
        if size < 8:
            break
        if kind in CONTAINERS:
            walk(buf, off + 8, off + size)
        elif kind in STAMPED:
            version = buf[off + 8]
            width = 8 if version == 1 else 4
            buf[off + 12:off + 12 + 2 * width] = bytes(2 * width)
        off += size


for path in sys.argv[1:]:
    data = bytearray(open(path, "rb").read())
    walk(data, 0, len(data))
    open(path, "wb").write(data)
