#!/usr/bin/env python3
"""List, or keep only some GPU architectures of, the CUDA code in a shared library.

A library built for several GPUs carries one SASS (cubin) or PTX entry per
kernel per architecture in its .nv_fatbin section. `--keep 90` zeroes the
payload of every other entry in place: offsets and headers stay as they are,
so the library loads as before on that architecture, and the zeros cost
nothing once compressed. Without --keep it only prints the breakdown.

    scripts/prune_fatbin.py libonnxruntime_providers_cuda.so
    scripts/prune_fatbin.py --keep 90 --out pruned.so libonnxruntime_providers_cuda.so
"""

import argparse
import collections
import struct
import sys

FATBIN_MAGIC = 0xBA55ED50
KIND = {1: "ptx", 2: "sass"}


def section(data: bytes, name: bytes) -> tuple[int, int]:
    """File offset and size of an ELF64 section."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    strtab_off, = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)
    for i in range(shnum):
        base = shoff + i * shentsize
        name_off, = struct.unpack_from("<I", data, base)
        offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        end = data.index(b"\0", strtab_off + name_off)
        if data[strtab_off + name_off:end] == name:
            return offset, size
    sys.exit(f"no {name.decode()} section")


def entries(data: bytes, offset: int, size: int):
    """(payload offset, payload size, kind, arch) of every fatbin entry."""
    pos, end_all = offset, offset + size
    while pos + 16 <= end_all:
        magic, _version, header, fat_size = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            pos += 8
            continue
        e, end = pos + header, pos + header + fat_size
        while e < end:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, e)
            arch, = struct.unpack_from("<I", data, e + 28)
            yield e + entry_header, payload, KIND.get(kind, str(kind)), arch
            e += entry_header + payload
        pos = end


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("library")
    p.add_argument("--keep", help="comma-separated SASS architectures to keep, e.g. 90")
    p.add_argument("--out", help="where to write the pruned library (with --keep)")
    args = p.parse_args()
    data = bytearray(open(args.library, "rb").read())
    offset, size = section(data, b".nv_fatbin")
    found = list(entries(data, offset, size))
    totals, counts = collections.Counter(), collections.Counter()
    for _, payload, kind, arch in found:
        totals[(kind, arch)] += payload
        counts[(kind, arch)] += 1
    print(f"{args.library}: .nv_fatbin {size / 2**20:.1f} MiB")
    for (kind, arch), total in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {kind} sm_{arch}: {counts[(kind, arch)]} entries, {total / 2**20:.1f} MiB")
    if not args.keep:
        return
    keep = {int(a) for a in args.keep.split(",")}
    if not any(kind == "sass" and arch in keep for _, _, kind, arch in found):
        sys.exit(f"no SASS for sm_{args.keep} in {args.library}; nothing would run")
    zeroed = 0
    for start, payload, kind, arch in found:
        if not (kind == "sass" and arch in keep):
            data[start:start + payload] = bytes(payload)
            zeroed += payload
    with open(args.out or args.library, "wb") as f:
        f.write(data)
    print(f"  zeroed {zeroed / 2**20:.1f} MiB; kept SASS for sm_{sorted(keep)}")


if __name__ == "__main__":
    main()
