"""The pure-numpy TF V2 checkpoint reader: crc32c, the SSTable index, tensor data, and its error messages.

The official fixture's .index was written by TensorFlow's own Saver, so reading it (every stored crc32c checked)
and matching variables.json checks the reader against TF itself; tests/tf_writer.py covers dtypes, shards and
malformed files without the shared data.
"""

from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pytest
from tf_writer import write_table, write_tf_checkpoint

from posefix_video.errors import CheckpointError
from posefix_video.net.crc32c import crc32c, crc32c_many, mask_crc
from posefix_video.net.tf_checkpoint import TFCheckpoint, checkpoint_prefix, list_tf_checkpoint, read_tf_checkpoint


def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert crc32c(bytes(range(32))) == 0x46DD794E  # RFC 3720 B.4: 0..31
    assert mask_crc(0) == 0xA282EAD8


@pytest.mark.parametrize("sizes", [[0, 1, 3, 4, 63, 64, 65], [4095, 4096, 4097, 8192, 3 * 4096 + 7], [100_003]])
def test_crc32c_many_matches_bytewise(sizes):
    rng = np.random.default_rng(len(sizes))
    bufs = [rng.integers(0, 256, n, dtype=np.uint8) for n in sizes]
    assert crc32c_many(bufs) == [crc32c(b.tobytes()) for b in bufs]


def test_reads_the_official_checkpoint(official_posefix_checkpoint, shared_data):
    meta = json.loads((shared_data / "official_posefix" / "variables.json").read_text())
    ckpt = TFCheckpoint(official_posefix_checkpoint)
    assert ckpt.num_shards == 1 and len(ckpt.entries) == meta["num_variables"] == 282
    assert hashlib.sha256(ckpt.index_bytes).hexdigest() == meta["index_sha256"]
    tensors = ckpt.read()  # every crc32c TF stored is checked here
    for v in meta["variables"]:
        e = ckpt.entries[v["name"]]
        assert (e.offset, e.size, list(e.shape), e.dtype) == (v["offset"], v["nbytes"], v["shape"], "float32")
        assert hashlib.sha256(tensors[v["name"]].astype("<f4").tobytes()).hexdigest() == v["sha256"], v["name"]
    listed = list_tf_checkpoint(official_posefix_checkpoint)
    assert [n for n, _, _ in listed] == [v["name"] for v in meta["variables"]]


def test_any_file_of_the_checkpoint_names_it(official_posefix_checkpoint):
    prefix = official_posefix_checkpoint
    for given in (prefix, f"{prefix}.index", f"{prefix}.data-00000-of-00001", f"{prefix}.meta", prefix.parent):
        assert checkpoint_prefix(given) == prefix


def test_writer_round_trip_dtypes_shards_blocks(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "a/float32": rng.standard_normal((3, 4, 5)).astype(np.float32),
        "a/float64": rng.standard_normal(7),
        "b/int64": np.arange(-3, 9, dtype=np.int64),
        "b/int32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "c/float16": np.float16([1.5, -2.25]),
        "c/bool": np.array([True, False, True]),
        "c/uint8": np.arange(256, dtype=np.uint8),
        "scalar": np.float32(3.5),
        "empty": np.zeros((0, 3), np.float32),
        **{f"many/v{i:03d}": np.full(i + 1, i, np.float32) for i in range(300)},  # several data blocks
    }
    prefix = write_tf_checkpoint(tmp_path / "m.ckpt", tensors, num_shards=3, block_bytes=512)
    got = read_tf_checkpoint(prefix)
    assert set(got) == set(tensors)
    for k, v in tensors.items():
        v = np.asarray(v)
        assert got[k].dtype == v.dtype and got[k].shape == v.shape and np.array_equal(got[k], v), k
    assert TFCheckpoint(prefix).entries["many/v007"].shard in (0, 1, 2)


def test_bfloat16_is_widened_to_float32(tmp_path):
    values = np.float32([1.0, -2.5, 3.140625, 0.0])  # exact in bfloat16
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    prefix = write_tf_checkpoint(tmp_path / "b.ckpt", {"w": bits}, dtypes={"w": "bfloat16"})
    got = read_tf_checkpoint(prefix)["w"]
    assert got.dtype == np.float32 and np.array_equal(got, values)


def test_writer_reproduces_the_official_shard(official_posefix_checkpoint, shared_data, tmp_path):
    meta = json.loads((shared_data / "official_posefix" / "variables.json").read_text())
    tensors = read_tf_checkpoint(official_posefix_checkpoint, check_crc=False)
    prefix = write_tf_checkpoint(tmp_path / "copy.ckpt", tensors)
    data = (tmp_path / "copy.ckpt.data-00000-of-00001").read_bytes()
    assert hashlib.sha256(data).hexdigest() == meta["shard_sha256"]
    ours, theirs = TFCheckpoint(prefix).entries, TFCheckpoint(official_posefix_checkpoint).entries
    assert ours == theirs  # same dtype, shape, offset, size and crc32c for every tensor


# ---------------------------------------------------------------------------------------------------------------
# malformed checkpoints


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {f"layer{i}/weights": rng.standard_normal((3, 3, 4, 8)).astype(np.float32) for i in range(20)}
    return write_tf_checkpoint(tmp_path / "small.ckpt", tensors, num_shards=2), tensors


def _error(path, **kw) -> str:
    with pytest.raises(CheckpointError) as e:
        TFCheckpoint(path).read(**kw)
    return str(e.value)


def test_missing_shard_is_named(small):
    prefix, _ = small
    shard = prefix.with_name("small.ckpt.data-00001-of-00002")
    shard.unlink()
    msg = _error(prefix)
    assert "missing data shard" in msg and str(shard) in msg


@pytest.mark.parametrize("keep", [0, 20, 47, 200, -1])
def test_truncated_index(small, keep):
    prefix, _ = small
    index = prefix.with_name("small.ckpt.index")
    data = index.read_bytes()
    index.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    msg = _error(prefix)
    assert str(index) in msg and "truncated or corrupt checkpoint index" in msg


def test_corrupt_index_block_fails_its_crc(small):
    prefix, _ = small
    index = prefix.with_name("small.ckpt.index")
    data = bytearray(index.read_bytes())
    data[30] ^= 0x01  # inside the first data block
    index.write_bytes(bytes(data))
    assert "fails its crc32c check" in _error(prefix)


def test_crc_mismatch_names_the_tensor(small):
    prefix, _ = small
    entry = TFCheckpoint(prefix).entries["layer7/weights"]
    shard = TFCheckpoint(prefix).shard_path(entry.shard)
    data = bytearray(shard.read_bytes())
    data[entry.offset + 100] ^= 0x10
    shard.write_bytes(bytes(data))
    msg = _error(prefix)
    assert "crc32c mismatch in tensor layer7/weights" in msg and str(shard) in msg
    assert TFCheckpoint(prefix).read(["layer6/weights"])  # the others still read
    assert TFCheckpoint(prefix).read(check_crc=False)["layer7/weights"].shape == (3, 3, 4, 8)


def test_truncated_shard_names_the_tensor(small):
    prefix, _ = small
    ckpt = TFCheckpoint(prefix)
    last = max((e for e in ckpt.entries.values() if e.shard == 0), key=lambda e: e.offset)
    shard = ckpt.shard_path(0)
    shard.write_bytes(shard.read_bytes()[:-10])
    msg = _error(prefix)
    assert "truncated data shard" in msg and last.name in msg


def test_v1_checkpoint(tmp_path):
    v1 = tmp_path / "resnet_v1_50.ckpt"  # V1: one table file, no .index (slim's ImageNet checkpoints)
    write_table(v1, [(b"", b"\x0a\x00"), (b"resnet_v1_50/conv1/weights", b"\x08\x01")])
    msg = _error(v1)
    assert "V1 checkpoint" in msg and str(v1) in msg


def test_not_a_checkpoint(tmp_path):
    other = tmp_path / "model.pth"
    other.write_bytes(b"PK not a table" * 100)
    assert "not a TensorFlow checkpoint" in _error(other)
    z = tmp_path / "PoseFix_coco2017_resnet152_384x288.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("snapshot_140.ckpt.index", b"x")
    assert "zip archive; unzip it" in _error(z)
    fake_index = tmp_path / "fake.ckpt.index"
    fake_index.write_bytes(b"\x00" * 100)
    assert "truncated or corrupt checkpoint index" in _error(tmp_path / "fake.ckpt")
    assert "no such checkpoint" in _error(tmp_path / "absent.ckpt")
    (tmp_path / "empty").mkdir()
    assert "no TensorFlow checkpoint (*.index) in this folder" in _error(tmp_path / "empty")


def test_data_file_without_index(small):
    prefix, _ = small
    prefix.with_name("small.ckpt.index").unlink()
    msg = _error(prefix.with_name("small.ckpt.data-00000-of-00002"))
    assert "index file" in msg and "missing" in msg


def test_table_without_bundle_header_is_refused(tmp_path):
    write_table(tmp_path / "t.ckpt.index", [(b"a", b"\x08\x01")])
    assert "without a tensor-bundle header" in _error(tmp_path / "t.ckpt")
