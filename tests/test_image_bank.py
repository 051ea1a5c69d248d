"""The decode-once image bank: pixel-identical crops, parallel build, stale/missing/partial banks refused."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest

from pipelines import build_image_bank
from posefix_video.errors import ConfigError, InputError
from posefix_video.keypoints import COCO17
from posefix_video.train.config import load_train_config
from posefix_video.train.data import Augmentation, ImageBank, PoseFixDataset, build_dataset, load_coco_persons
from posefix_video.train.data import image_bank as image_bank_module
from posefix_video.train.data.image_decode import ImageDecoder


@pytest.fixture(scope="module")
def coco(shared_data):
    d = shared_data / "coco_mmpose"
    return d, load_coco_persons(d / "test_coco.json", d)


def _small_images(folder, n, seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        h, w = int(rng.integers(9, 40)), int(rng.integers(9, 40))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        path = folder / (f"{i:03d}.png" if i % 7 == 0 else f"{i:03d}.jpg")
        cv2.imwrite(str(path), img)
        paths.append(str(path))
    return paths


def test_bank_images_equal_the_decoder_and_crops_equal_the_decode_path(coco, tmp_path):
    root, persons = coco
    bank = ImageBank.build(tmp_path / "bank", [p.image_path for p in persons])
    assert len(bank) == len({p.image_path for p in persons}) == 4
    dec = ImageDecoder()
    for p in persons:
        img = bank.get(p.image_path)
        assert not img.flags.writeable and np.array_equal(img, dec.decode(p.image_path)[0])
    assert bank.get(tmp_path / "elsewhere.jpg") is None
    assert bank.nbytes == (tmp_path / "bank" / "pixels.u8").stat().st_size
    # augmented samples, with and without the bank: bank images are full size, like reduced_decode=False
    opened = ImageBank.open(tmp_path / "bank", check=[p.image_path for p in persons])
    aug = Augmentation(scale_factor=0.5, rotation_factor=40.0, rotation_prob=1.0, flip_prob=0.5)
    a = PoseFixDataset(persons=persons, layout=COCO17, augmentation=aug, seed=3, reduced_decode=False)
    b = PoseFixDataset(persons=persons, layout=COCO17, augmentation=aug, seed=3, image_bank=opened)
    idx = list(range(len(persons)))
    for x, y in zip(a.__getitems__(idx), b.__getitems__(idx)):
        for key in x:
            assert np.array_equal(x[key].numpy(), y[key].numpy()), key
    # the dataset (and its bank) pickle to workers without the mapped pixels
    clone = pickle.loads(pickle.dumps(b))
    assert clone.image_bank._pixels is None and b.image_bank._pixels is not None
    assert np.array_equal(clone[2]["image"].numpy(), b[2]["image"].numpy())


def test_parallel_build_equals_serial_build(tmp_path):
    paths = _small_images(tmp_path, 140)  # > 2 chunks of 64: the pool path runs
    serial = ImageBank.build(tmp_path / "serial", paths)
    parallel = ImageBank.build(tmp_path / "parallel", paths, workers=2)
    assert serial.entries == parallel.entries
    s = (tmp_path / "serial" / "pixels.u8").read_bytes()
    assert s == (tmp_path / "parallel" / "pixels.u8").read_bytes()
    dec = ImageDecoder()
    for p in paths[:10]:
        assert np.array_equal(parallel.get(p), dec.decode(p)[0])


def test_stale_missing_and_broken_banks_are_refused(tmp_path):
    paths = _small_images(tmp_path, 5)
    folder = tmp_path / "bank"
    ImageBank.build(folder, paths[:4])
    with pytest.raises(ConfigError, match=r"lacks 1 of the dataset's images \(e.g. .*004.jpg\).*build_image_bank"):
        ImageBank.open(folder, check=paths)
    img = cv2.imread(paths[1])
    cv2.imwrite(paths[1], 255 - img, [cv2.IMWRITE_JPEG_QUALITY, 50])
    with pytest.raises(ConfigError, match=r"1 images changed since the bank was built \(e.g. .*001.jpg"):
        ImageBank.open(folder, check=paths[:4])
    ImageBank.open(folder)  # without a check it opens
    with open(folder / "pixels.u8", "ab") as f:
        f.write(b"x")
    with pytest.raises(InputError, match=r"pixels.u8: .* bytes, the index says"):
        ImageBank.open(folder)
    (folder / "index.json").write_text("{")
    with pytest.raises(InputError, match=r"index.json: not a readable image bank index"):
        ImageBank.open(folder)
    with pytest.raises(ConfigError, match=r"no image bank here"):
        ImageBank.open(tmp_path / "nothing")


def test_interrupted_build_leaves_no_bank_and_full_disk_is_refused(tmp_path, monkeypatch):
    paths = _small_images(tmp_path, 80)
    folder = tmp_path / "bank"
    ImageBank.build(folder, paths[:3])
    calls = []

    def failing_fill(chunk):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fill(chunk)

    real_fill = image_bank_module._fill
    monkeypatch.setattr(image_bank_module, "_fill", failing_fill)
    with pytest.raises(KeyboardInterrupt):
        ImageBank.build(folder, paths)
    assert not (folder / "index.json").exists()  # the old bank is gone too: no index, no bank
    assert [p.name for p in folder.iterdir()] == ["pixels.u8"]  # the old pixels; the temporary file removed
    with pytest.raises(ConfigError, match="no image bank here"):
        ImageBank.open(folder)
    monkeypatch.setattr(image_bank_module, "_fill", real_fill)
    monkeypatch.setattr(image_bank_module.shutil, "disk_usage", lambda _: type("U", (), {"free": 1000})())
    with pytest.raises(ConfigError, match=r"needs 0.0 GB \(80 images\), 0.0 GB free"):
        ImageBank.build(tmp_path / "other", paths)
    with pytest.raises(InputError, match=r"missing.jpg: image missing or not readable"):
        image_bank_module.ImageBank.build(tmp_path / "third", [tmp_path / "missing.jpg"])


def test_pipeline_builds_the_recipe_bank_and_training_data_uses_it(coco, tmp_path, capsys):
    root, persons = coco
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({
        "model": {"depth": 18, "input_size": [64, 32], "layout": "coco17", "width": 16, "deconv_channels": 32},
        "data": {"kind": "coco", "train_ann": str(root / "test_coco.json"), "train_images": str(root),
                 "val_ann": ""},
    }))  # fmt: skip
    bank = tmp_path / "bank"
    assert build_image_bank.main(["--config", str(recipe)]) == 2
    assert "no bank folder" in capsys.readouterr().err
    cfg = load_train_config(recipe, [f"data.image_bank={bank}"])
    with pytest.raises(ConfigError, match="no image bank here"):
        build_dataset(cfg, split="train")
    assert build_image_bank.main(["--config", str(recipe), f"data.image_bank={bank}", "--workers", "0"]) == 0
    assert "4 images" in capsys.readouterr().out
    ds = build_dataset(cfg, split="train")
    assert ds.image_bank is not None and len(ds.image_bank) == 4
    plain = build_dataset(load_train_config(recipe), split="train")
    assert plain.image_bank is None
    # same samples except where the plain path decodes at reduced size
    a, b = ds[0], plain[0]
    assert np.array_equal(a["target_keypoints"].numpy(), b["target_keypoints"].numpy())
