"""Training-image decoding: pixel-identical to OpenCV, reduced decodes, fallbacks, and errors that name the file."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from posefix_video.errors import InputError
from posefix_video.train.data.image_decode import ImageDecoder


@pytest.fixture(scope="module")
def coco_jpegs(shared_data):
    files = sorted((shared_data / "coco_mmpose").glob("*.jpg"))
    assert files
    return files


def _cv2_rgb(path, flag=cv2.IMREAD_COLOR):
    return cv2.imread(str(path), flag | cv2.IMREAD_IGNORE_ORIENTATION)[:, :, ::-1]


def test_jpeg_decode_is_pixel_identical_to_opencv(coco_jpegs):
    dec = ImageDecoder()
    for path in coco_jpegs:
        for factor, flag in ((1, cv2.IMREAD_COLOR), (2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4)):
            img, used = dec.decode(str(path), factor)
            ref = _cv2_rgb(path, flag)
            assert used == factor and img.dtype == np.uint8
            assert img.shape == ref.shape, (path.name, factor)
            assert np.array_equal(img, ref), (path.name, factor)


def test_synthetic_420_jpeg_and_buffer_growth(tmp_path):
    rng = np.random.default_rng(0)
    dec = ImageDecoder()
    # small first, then larger: the buffer grows; odd sizes check the ceil(size / f) output size
    for h, w in ((31, 45), (241, 333), (97, 130)):
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2.0)
        path = tmp_path / f"{h}x{w}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 85])  # 4:2:0 by default
        for factor, flag in ((1, cv2.IMREAD_COLOR), (2, cv2.IMREAD_REDUCED_COLOR_2)):
            out, _ = dec.decode(str(path), factor)
            assert out.shape == (-(-h // factor), -(-w // factor), 3)
            assert np.array_equal(out, _cv2_rgb(path, flag))


def test_grayscale_jpeg_and_png_give_rgb(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "g.jpg"), gray)
    dec = ImageDecoder()
    img, _ = dec.decode(str(tmp_path / "g.jpg"))
    assert img.shape == (40, 60, 3) and np.array_equal(img, _cv2_rgb(tmp_path / "g.jpg"))
    assert np.array_equal(img[..., 0], img[..., 2])
    colour = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    img, used = dec.decode(str(tmp_path / "c.png"), 2)
    assert used == 1  # PNG has no DCT-domain reduction: full size, and the caller's affine stays as it was
    assert np.array_equal(img, colour[:, :, ::-1])


def test_bad_files_are_input_errors_naming_file_and_record(tmp_path, coco_jpegs):
    dec = ImageDecoder()
    with pytest.raises(InputError, match=r"nothere\.jpg: person 3: image missing or not readable"):
        dec.decode(str(tmp_path / "nothere.jpg"), record="person 3")
    data = coco_jpegs[0].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"cut\.jpg: person 0: .*not a decodable image: .*(Premature|end)"):
        dec.decode(str(tmp_path / "cut.jpg"), record="person 0")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(InputError, match=r"text\.jpg: image missing or not readable \(not a decodable image\)"):
        dec.decode(str(tmp_path / "text.jpg"))
    with pytest.raises(ValueError, match="decode factor 3"):
        dec.decode(str(coco_jpegs[0]), 3)


def test_pickled_decoder_starts_with_its_own_buffer(coco_jpegs):
    dec = ImageDecoder()
    first, _ = dec.decode(str(coco_jpegs[0]))
    clone = pickle.loads(pickle.dumps(dec))
    assert clone._buffer.size == 0 and dec._buffer.size > 0
    again, _ = clone.decode(str(coco_jpegs[0]))
    assert np.array_equal(first, again) and not np.shares_memory(first, again)
