"""scripts/gpu_check.py --smoke: every section of the GPU check runs (toy sizes, CPU) and fills its table row."""

from __future__ import annotations

import re

import pytest


def test_gpu_check_smoke_fills_every_row(load_script, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    gpu_check = load_script("gpu_check")
    assert gpu_check.main(["--smoke", "--out", str(tmp_path / "table.md")]) == 0
    table = (tmp_path / "table.md").read_text()
    assert table in capsys.readouterr().out
    rows = [ln.split(" | ") for ln in table.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    names = [r[0].strip("| ") for r in rows]
    assert names == ["matmul ceiling", "refiner persons/s", "refine_video 1080p", "training", "ONNX Runtime vs torch",
                     "refiner"]  # the last: torch.compile, skipped in --smoke
    assert not [r for r in rows if "failed" in r[2] or "n/a" in r[2]]
    assert re.search(r"end-to-end [\d.]+ s", table) and re.search(r"e2e / slowest stage [\d.]+", table)
    diff = float(re.search(r"max logit diff ([\d.e+-]+)", table).group(1))
    assert diff < 1e-4  # ONNX Runtime ran the same network


def test_gpu_check_refuses_a_cpu_without_smoke(load_script, capsys):
    gpu_check = load_script("gpu_check")
    if gpu_check.torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gpu_check.main([]) == 2
    assert "--smoke" in capsys.readouterr().err
