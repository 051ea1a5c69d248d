"""ONNX export and the ONNX Runtime backend: export + checker + metadata, ORT vs torch logits and refined keypoints
(within 0.01 px on the demo clip), the export cache, the auto rule, the Refiner seam and the error messages."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from posefix_video.demo import DEMO_CHECKPOINT, ClipSpec, make_clip, simulate_tracks
from posefix_video.errors import CheckpointError, ConfigError
from posefix_video.net import onnx_backend
from posefix_video.net.checkpoint import load_model
from posefix_video.net.contract import InputContract
from posefix_video.net.onnx_backend import BackendError, OnnxRunner, resolve_backend
from posefix_video.net.refiner import CONFIDENCE_KEY, Refiner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(a copy of the demo checkpoint, its cached export beside it): exported once for the whole session."""
    folder = tmp_path_factory.mktemp("onnx")
    ckpt = folder / "demo.pth"
    shutil.copyfile(DEMO_CHECKPOINT, ckpt)
    runner = OnnxRunner.for_checkpoint(ckpt, device="cpu", batch_size=8, folders=[folder])
    return ckpt, runner.path


@pytest.fixture(scope="session")
def demo_clip(tmp_path_factory):
    """A small demo clip (synthetic video + GT) and its simulated tracker output."""
    from posefix_video.synthetic.tracker_sim import TrackerSimSettings

    out = tmp_path_factory.mktemp("clip")
    clip = make_clip(out / "clip", ClipSpec(frames=8, min_tracks=3, max_tracks=4))
    tracks = simulate_tracks(clip, out / "tracks", TrackerSimSettings.training(), seed=0)
    return clip, tracks


def _poses(path: Path) -> dict[tuple[int, int], np.ndarray]:
    """(image index, track id) -> (17, 3) keypoints of a PoseTrack18 file."""
    data = json.loads(path.read_text())
    frame = {im["id"]: i for i, im in enumerate(data["images"])}
    return {(frame[a["image_id"]], a["track_id"]): np.asarray(a["keypoints"], float).reshape(17, 3)
            for a in data["annotations"]}


# ---------------------------------------------------------------------------------------------------------------
# export


def test_export_passes_checker_and_carries_metadata(exported):
    import onnx

    ckpt, path = exported
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    model, cfg, contract = load_model(ckpt)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] and isinstance(dims[0], str)  # the dynamic batch axis
    assert dims[1:] == [model.in_channels, *cfg.input_size]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert onnx_backend.config_from_metadata(meta, path) == cfg
    assert meta[onnx_backend.KEY_LAYOUT] == cfg.layout == "posetrack18"
    assert meta[onnx_backend.KEY_SHA] == onnx_backend.sha256_file(ckpt)
    # the demo checkpoint has no contract entry: ours is recorded, and read back equal
    assert contract == InputContract.ours(cfg)
    assert onnx_backend.contract_from_metadata(meta, path) == contract
    assert json.loads(meta[onnx_backend.KEY_CONTRACT])["mean"] == list(contract.mean)


def test_ort_logits_equal_torch_for_any_batch(exported):
    ckpt, path = exported
    model, cfg, _ = load_model(ckpt)
    runner = OnnxRunner.from_file(path, device="cpu", batch_size=4)
    for n in (1, 3, 6):  # 6 > batch_size: split into 4 + 2; 3 padded to 4
        x = torch.randn(n, model.in_channels, *cfg.input_size, generator=torch.Generator().manual_seed(n))
        with torch.inference_mode():
            ref, got = model(x), runner(x)
        assert got.shape == ref.shape
        assert float((got - ref).abs().max()) < 1e-4 * float(ref.abs().max())


class _RecordingSession:
    """Stands in for an InferenceSession: output row i = input row i's mean (shape (b, 1, 1, 1)); records shapes."""

    def __init__(self):
        self.shapes = []

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def get_outputs(self):
        return [type("O", (), {"shape": ["batch", 1, 1, 1]})()]

    def run(self, names, feeds):
        x = feeds[onnx_backend.INPUT_NAME]
        self.shapes.append(x.shape[0])
        return [x.mean(axis=(1, 2, 3), keepdims=True)]


def test_batches_are_padded_to_few_shapes():
    session = _RecordingSession()
    runner = OnnxRunner(session=session, batch_size=8, device="cpu", meta={})
    for n in range(1, 20):
        x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 2, 3, 3)
        assert torch.equal(runner(x).flatten(), torch.arange(n, dtype=torch.float32))  # order kept, padding cut
    assert set(session.shapes) == {1, 2, 4, 8}


# ---------------------------------------------------------------------------------------------------------------
# the refiner with either backend


def test_refined_keypoints_on_the_demo_clip_equal_within_001_px(exported, demo_clip, tmp_path):
    from posefix_video.video.refine_video import refine_video

    ckpt, _ = exported
    clip, tracks = demo_clip
    outs = {}
    for backend in ("torch", "onnxruntime"):
        refiner = Refiner.from_checkpoint(ckpt, device="cpu", backend=backend, batch_size=16)
        assert refiner.backend == backend
        outs[backend] = tmp_path / backend / clip.gt.name
        # no safeguard: it keeps input joints where the network is unsure, and the point is the network's answer
        s = refine_video(clip.video, tracks, out=outs[backend], refiner=refiner, batch_size=8, seq_name=clip.gt.stem,
                         safeguard=False)
        assert s.refined > 20
    a, b, given = _poses(outs["torch"]), _poses(outs["onnxruntime"]), _poses(tracks)
    assert a.keys() == b.keys() == given.keys()
    diff = max(np.abs(a[k][:, :2] - b[k][:, :2]).max() for k in a)
    moved = max(np.abs(a[k][:, :2] - given[k][:, :2]).max() for k in a)
    # written to 0.01 px (video/writer.py): values a hair apart may round one step apart
    assert diff <= 0.01 + 1e-9 and moved > 1.0  # the network moved joints, both backends the same way
    # unrounded: the refiner's own output on the clip's frames
    import cv2

    from posefix_video.io import read_tracks

    seq = read_tracks(tracks)
    frames = np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in sorted(clip.frames.iterdir())])
    recs = list(seq.persons())
    raw = [Refiner.from_checkpoint(ckpt, device="cpu", backend=b).refine_records(frames, recs, safeguard=None)[0]
           for b in ("torch", "onnxruntime")]
    assert sum(CONFIDENCE_KEY in r.extra for r in raw[0]) > 20  # refined persons
    assert max(np.abs(p.keypoints - q.keypoints).max() for p, q in zip(*raw)) < 0.01


def test_onnx_file_as_checkpoint_and_auto_rule_in_the_cli(exported, demo_clip, tmp_path):
    from pipelines import refine_video as cli

    ckpt, path = exported
    clip, tracks = demo_clip
    common = [str(clip.video), str(tracks), "--device", "cpu", "--no-progress", "--seq-name", clip.gt.stem]
    assert cli.main([*common, "--checkpoint", str(path), "-o", str(tmp_path / "a.json")]) == 0
    assert cli.main([*common, "--checkpoint", str(ckpt), "-o", str(tmp_path / "b.json")]) == 0  # auto: ORT
    a, b = _poses(tmp_path / "a.json"), _poses(tmp_path / "b.json")
    assert all(np.array_equal(a[k], b[k]) for k in a)  # the same ORT network either way
    assert cli.main([*common, "--checkpoint", str(path), "--backend", "torch", "-o", str(tmp_path / "c.json")]) == 2


def test_from_onnx_reads_config_and_refuses_foreign_files(exported, tmp_path):
    import onnx

    ckpt, path = exported
    refiner = Refiner.from_onnx(path, device="cpu")
    _, cfg, _ = load_model(ckpt)
    assert refiner.layout.name == cfg.layout and refiner.input_size == cfg.input_size
    assert refiner.sigma == cfg.input_sigma and refiner.model is None
    proto = onnx.load(path)
    del proto.metadata_props[:]
    onnx.save(proto, tmp_path / "foreign.onnx")
    with pytest.raises(CheckpointError, match="not a posefix_video ONNX export"):
        Refiner.from_onnx(tmp_path / "foreign.onnx", device="cpu")


def test_refiner_takes_any_runner(exported):
    """The seam: a callable (B, C, H, W) -> logits in place of the torch model gives the torch results."""
    ckpt, _ = exported
    model, cfg, _ = load_model(ckpt)
    plain = Refiner.from_model(model, cfg, device="cpu", flip_test=True)
    seam = Refiner.from_model(None, cfg, device="cpu", flip_test=True, runner=lambda x: model(x))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (2, 160, 120, 3), dtype=np.uint8)
    kp = rng.uniform(30, 110, (3, 17, 2))
    args = (frames, np.array([0, 1, 1]), kp, np.ones((3, 17), bool))
    np.testing.assert_array_equal(plain.refine_arrays(*args).keypoints, seam.refine_arrays(*args).keypoints)
    with pytest.raises(ValueError, match="torch backend only"):
        Refiner.from_model(None, cfg, device="cpu", precision="bf16", runner=lambda x: x)
    with pytest.raises(ValueError, match="either"):
        Refiner.from_model(model, cfg, device="cpu", runner=lambda x: x)


# ---------------------------------------------------------------------------------------------------------------
# cache


def test_cache_is_reused_rebuilt_when_corrupt_and_falls_back(exported, tmp_path, monkeypatch):
    ckpt, path = exported
    work = tmp_path / "w"
    work.mkdir()
    shutil.copyfile(ckpt, work / "m.pth")
    cached = work / path.name.replace("demo", "m")
    shutil.copyfile(path, cached)
    calls = []

    def export(model, cfg, out, **kw):  # the fixture's export of the same weights stands in for a real one
        calls.append(Path(out))
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)

    monkeypatch.setattr(onnx_backend, "export_network", export)
    runner = OnnxRunner.for_checkpoint(work / "m.pth", device="cpu", folders=[work])
    assert runner.path == cached and calls == []  # a cache hit: no export
    cached.write_bytes(b"not an onnx file")
    runner = OnnxRunner.for_checkpoint(work / "m.pth", device="cpu", folders=[work])
    assert calls == [cached] and runner.meta[onnx_backend.KEY_SHA] == onnx_backend.sha256_file(ckpt)
    blocked = tmp_path / "a_file"
    blocked.write_text("")  # a folder that cannot exist: the next one is used
    runner = OnnxRunner.for_checkpoint(work / "m.pth", device="cpu", folders=[blocked / "sub", tmp_path / "cache"])
    assert calls[1:] == [tmp_path / "cache" / cached.name] and runner.path == calls[1]


# ---------------------------------------------------------------------------------------------------------------
# the auto rule and errors


def test_auto_rule():
    assert resolve_backend("auto", "cpu") == "onnxruntime"
    assert resolve_backend("auto", "cuda:0") == "torch"
    assert resolve_backend("auto", "cpu", precision="bf16") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ConfigError, match="fp32"):
        resolve_backend("onnxruntime", "cpu", precision="bf16")
    with pytest.raises(ConfigError, match="backend must be one of"):
        resolve_backend("tensorflow", "cpu")


def test_missing_onnxruntime_names_the_install_command(exported, demo_clip, tmp_path, monkeypatch, capsys):
    from pipelines import refine_video as cli

    ckpt, _ = exported
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    assert resolve_backend("auto", "cpu") == "torch"
    with pytest.raises(BackendError, match="pip install onnxruntime"):
        Refiner.from_checkpoint(ckpt, device="cpu", backend="onnxruntime")
    clip, tracks = demo_clip
    rc = cli.main([str(clip.video), str(tracks), "--checkpoint", str(ckpt), "--backend", "onnxruntime",
                   "--device", "cpu", "--no-progress", "-o", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install onnxruntime" in err and "Traceback" not in err
    assert not (tmp_path / "o.json").exists()


def test_unavailable_provider_is_a_clear_error(exported):
    _, path = exported
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        OnnxRunner.from_file(path, device="cpu", providers=["tensorrt"])


def test_export_cli(exported, tmp_path, capsys):
    from pipelines import export_onnx
    from posefix_video.net.checkpoint import save_checkpoint

    # a checkpoint with its own input contract (the official one): recorded in the metadata as it is
    model, cfg, _ = load_model(exported[0])
    official = InputContract.official_posefix("posetrack18").replace(sigma=cfg.input_sigma, bn_eps=cfg.bn_eps)
    ckpt = tmp_path / "official.pth"
    save_checkpoint(ckpt, model, cfg, input_contract=official.to_dict())
    assert export_onnx.main([str(ckpt), "-o", str(tmp_path / "m.onnx")]) == 0
    err = capsys.readouterr().err
    assert "checker passed" in err and "max |logit difference|" in err
    meta = OnnxRunner.from_file(tmp_path / "m.onnx").meta
    assert meta[onnx_backend.KEY_SHA] == onnx_backend.sha256_file(ckpt)
    assert onnx_backend.contract_from_metadata(meta, "m.onnx") == official
    assert Refiner.from_onnx(tmp_path / "m.onnx", device="cpu").contract == official  # the export runs as trained
    assert export_onnx.main([str(tmp_path / "nope.pth"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "nope.pth" in capsys.readouterr().err
    (tmp_path / "f").write_text("")
    assert export_onnx.main([str(ckpt), "-o", str(tmp_path / "f" / "x.onnx")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_imported_official_model_ort_equals_torch_within_001_px(official_posefix_model, shared_data):
    """The authors' model imported from the official fixture (official input contract), on the fixture's COCO
    inputs: both backends refine to the same keypoints."""
    import cv2

    path = official_posefix_model("coco")
    inputs = json.loads((shared_data / "official_posefix" / "inputs_COCO.json").read_text())
    persons = [p for p in inputs if p["image_id"] in (785, 40083)]  # 5 persons on 2 images: keeps it short
    image_ids = sorted({p["image_id"] for p in persons})
    frames = np.stack([cv2.cvtColor(cv2.imread(str(shared_data / "coco_mmpose" / f"{i:012d}.jpg")),
                                    cv2.COLOR_BGR2RGB)[:333, :500] for i in image_ids])  # a common size
    kp = np.stack([np.asarray(p["keypoints"], float).reshape(17, 3) for p in persons])
    args = (frames, np.array([image_ids.index(p["image_id"]) for p in persons]), kp[..., :2], kp[..., 2] > 0)
    results = [Refiner.from_checkpoint(path, device="cpu", backend=b).refine_arrays(*args, safeguard=None)
               for b in ("torch", "onnxruntime")]
    assert results[0].refined.sum() >= 4
    np.testing.assert_array_equal(results[0].refined, results[1].refined)
    assert np.abs(results[0].keypoints - results[1].keypoints).max() < 0.01
    assert np.abs(results[0].keypoints - kp[..., :2]).max() > 1.0  # the network moved joints
