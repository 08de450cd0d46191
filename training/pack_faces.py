"""Pack a face set (``.npz`` laid out as FER2013's) small enough to travel, or unpack it.

    python training/pack_faces.py SRC.npz DST.npz.xz     # pack
    python training/pack_faces.py SRC.npz.xz DST.npz     # unpack

A GPU machine elsewhere may get only a copy of the checkout, not ``../shared``, with a limit on
its size; FER2013's ``train.npz`` is 63 MB as it is, and 48 MB as an uncompressed ``.npz`` run
through a byte-delta filter and LZMA (neighbouring pixels differ little). Only numpy and the
standard library are needed, so the GPU machine's Python unpacks it too.
"""

from __future__ import annotations

import io
import lzma
import sys
from pathlib import Path

import numpy as np

_FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 1}, {"id": lzma.FILTER_LZMA2, "preset": 9}]


def pack(source: Path, target: Path) -> None:
    with np.load(source) as faces:
        arrays = {name: faces[name] for name in faces.files}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(lzma.compress(buffer.getvalue(), format=lzma.FORMAT_XZ, filters=_FILTERS))
    partial.replace(target)


def unpack(source: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(lzma.decompress(source.read_bytes()))
    partial.replace(target)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = Path(argv[0]), Path(argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    (unpack if source.suffix == ".xz" else pack)(source, target)
    sizes = f"{source.stat().st_size / 1e6:.1f} MB -> {target.stat().st_size / 1e6:.1f} MB"
    print(f"{source} -> {target} ({sizes})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
