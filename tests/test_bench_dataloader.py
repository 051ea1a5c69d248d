"""The loader benchmark runs end to end at a tiny size and reports every measurement (no timing asserted)."""

from __future__ import annotations

import re

import simplejpeg


def test_bench_dataloader_tiny_run(capsys, tmp_path, load_script):
    bench = load_script("bench_dataloader")
    assert bench.main(["--images", "6", "--samples", "40", "--batch", "8", "--repeats", "2", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"median [\d.]+ ms CPU per sample = \d+ samples/s per core", out)
    assert re.search(r"decode [\d.]+ \(cv2.imread [\d.]+, [\d.]+x ours\), warp", out)
    assert re.search(r"image bank \(6 images, 6 MB.*counting the build in a single epoch", out)
    # the default synthetic set is COCO-like: 4:4:4 JPEGs
    bench.make_coco_set(tmp_path, 1)
    assert simplejpeg.decode_jpeg_header((tmp_path / "000000.jpg").read_bytes())[3] == "444"
