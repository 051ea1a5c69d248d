"""A small writer of TensorFlow V2 checkpoints, for tests and benchmarks (TensorFlow is not a dependency).

Writes what tf.train.Saver (V2) writes: `PREFIX.index`, an SSTable (prefix-compressed keys, a restart point every
16 entries, data blocks of about `block_bytes`, an index block, an empty metaindex block, the 48-byte footer; each
block with its masked-crc32c trailer) holding the BundleHeaderProto under the empty key and one BundleEntryProto
per tensor; and `PREFIX.data-NNNNN-of-NNNNN`, the tensors' bytes in sorted-name order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from posefix_video.net.crc32c import crc32c, crc32c_many, mask_crc
from posefix_video.net.tf_checkpoint import DTYPES, TABLE_MAGIC

_CODES = {v: k for k, v in DTYPES.items()}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes, fixed32: bool = False) -> bytes:
    if fixed32:
        return _varint(number << 3 | 5) + int(value).to_bytes(4, "little")
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def entry_proto(dtype: str, shape: tuple[int, ...], shard: int, offset: int, size: int, crc: int | None) -> bytes:
    shape_proto = b"".join(_field(2, _field(1, d) if d else b"") for d in shape)
    out = _field(1, _CODES[dtype]) + _field(2, shape_proto)
    if shard:
        out += _field(3, shard)
    if offset:
        out += _field(4, offset)
    out += _field(5, size)
    if crc is not None:
        out += _field(6, crc, fixed32=True)
    return out


def _block(entries: list[tuple[bytes, bytes]], restart_interval: int = 16) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        last = key
    restarts = restarts or [0]
    out += b"".join(r.to_bytes(4, "little") for r in restarts) + len(restarts).to_bytes(4, "little")
    return bytes(out)


def write_table(path: str | os.PathLike, entries: list[tuple[bytes, bytes]], block_bytes: int = 4096) -> None:
    """An SSTable of sorted (key, value) pairs."""
    data = bytearray()

    def put(contents: bytes) -> bytes:
        handle = _varint(len(data)) + _varint(len(contents))
        data.extend(contents + b"\x00" + mask_crc(crc32c(contents + b"\x00")).to_bytes(4, "little"))
        return handle

    index, block, size = [], [], 0
    for key, value in entries:
        block.append((key, value))
        size += len(key) + len(value) + 3
        if size >= block_bytes:
            index.append((key, put(_block(block))))
            block, size = [], 0
    if block:
        index.append((block[-1][0], put(_block(block))))
    meta = put(_block([]))
    idx = put(_block(index, restart_interval=1))
    footer = (meta + idx).ljust(40, b"\x00") + TABLE_MAGIC.to_bytes(8, "little")
    Path(path).write_bytes(bytes(data) + footer)


def write_tf_checkpoint(prefix: str | os.PathLike, tensors: dict[str, np.ndarray], *, num_shards: int = 1,
                        with_crc: bool = True, block_bytes: int = 4096, dtypes: dict[str, str] | None = None) -> Path:
    """Writes `tensors` (name -> array, TF layout) as a V2 checkpoint; tensor i (sorted) goes to shard i % n.

    `dtypes` overrides the stored dtype of some tensors (e.g. {"w": "bfloat16"} with the raw uint16 bits as array).
    Returns the prefix.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(tensors, key=lambda n: n.encode())
    arrays = {n: np.asarray(tensors[n], order="C") for n in names}  # keeps 0-d shapes
    raws = {n: arrays[n].astype(arrays[n].dtype.newbyteorder("<"), copy=False).reshape(-1).view(np.uint8)
            for n in names}
    crcs = dict(zip(names, crc32c_many([raws[n] for n in names]))) if with_crc else {}
    files = [open(f"{prefix}.data-{s:05d}-of-{num_shards:05d}", "wb") for s in range(num_shards)]
    offsets = [0] * num_shards
    entries = [(b"", _field(1, num_shards) + _field(3, _field(1, 1)))]
    try:
        for i, n in enumerate(names):
            s = i % num_shards
            raw = raws[n]
            files[s].write(raw.tobytes())
            crc = mask_crc(crcs[n]) if with_crc else None
            dtype = (dtypes or {}).get(n, str(arrays[n].dtype))
            entries.append((n.encode(), entry_proto(dtype, arrays[n].shape, s, offsets[s],
                                                    raw.size, crc)))
            offsets[s] += raw.size
    finally:
        for f in files:
            f.close()
    write_table(f"{prefix}.index", entries, block_bytes=block_bytes)
    return prefix
