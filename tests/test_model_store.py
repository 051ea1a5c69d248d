"""The models folder: names, install, listing, the default model of a layout, and refine_video without
--checkpoint (the card's command) on an imported official model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pipelines.models import main as models_main
from pipelines.refine_video import main as refine_main
from posefix_video.config import ModelConfig
from posefix_video.errors import CheckpointError
from posefix_video.net import model_store
from posefix_video.net.contract import InputContract
from posefix_video.net.model import build_model


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("POSEFIX_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "models"


def _tiny(layout: str, depth: int = 18, size=(64, 64), pose_input: bool = True):
    cfg = ModelConfig(depth=depth, width=8, deconv_channels=8, input_size=size, layout=layout, pose_input=pose_input)
    return build_model(cfg), cfg


def _install(name: str, layout: str, depth: int = 18, size=(64, 64), source=None, pose_input: bool = True) -> None:
    model, cfg = _tiny(layout, depth, size, pose_input)
    model_store.save_model(model, cfg, InputContract.ours(cfg), source or {"kind": "test"}, name=name)


def test_models_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("POSEFIX_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert model_store.models_dir() == tmp_path / ".cache" / "posefix-video" / "models"
    monkeypatch.setenv("POSEFIX_HOME", str(tmp_path / "h"))
    assert model_store.models_dir() == tmp_path / "h" / "models"


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "x.pth", "-x", "a b", "x" * 101])
def test_bad_names(bad, home):
    with pytest.raises(CheckpointError, match="model name"):
        model_store.check_name(bad)


def test_install_list_resolve_and_default(home, tmp_path):
    assert model_store.list_models() == [] and model_store.default_model("coco17") is None
    _install("b-coco-small", "coco17", depth=18)
    _install("a-coco-small", "coco17", depth=18)
    _install("z-coco-deep", "coco17", depth=34)
    _install("pt", "posetrack18", depth=18)
    names = [i.name for i in model_store.list_models()]
    assert names == ["a-coco-small", "b-coco-small", "pt", "z-coco-deep"]
    info = {i.name: i for i in model_store.list_models()}["pt"]
    assert (info.layout, info.depth, info.input_size, info.source) == ("posetrack18", 18, (64, 64), {"kind": "test"})
    assert "RGB minus" in info.contract
    # deepest first, then larger input, then name
    assert model_store.default_model("coco17") == home / "z-coco-deep.pth"
    assert model_store.default_model("posetrack18") == home / "pt.pth"
    _install("x-topdown", "coco17", depth=152, size=(96, 96), pose_input=False)  # not a refiner: never a default
    assert model_store.default_model("coco17") == home / "z-coco-deep.pth"
    assert not {i.name: i for i in model_store.list_models()}["x-topdown"].pose_input
    _install("y-coco-big", "coco17", depth=34, size=(96, 64))
    assert model_store.default_model("coco17") == home / "y-coco-big.pth"
    _install("posefix-coco-r152-384x288", "coco17", depth=18)  # the suggested name wins
    assert model_store.default_model("coco17") == home / "posefix-coco-r152-384x288.pth"
    # names and paths
    assert model_store.resolve_checkpoint("pt") == home / "pt.pth"
    outside = tmp_path / "pt"  # an existing file of that name is taken as a path
    shutil.copy(home / "pt.pth", outside)
    assert model_store.resolve_checkpoint(str(outside)) == outside
    with pytest.raises(CheckpointError) as e:
        model_store.resolve_checkpoint("nope")
    assert "a-coco-small, b-coco-small" in str(e.value) and "pipelines.import_weights" in str(e.value)
    # a summary-less file copied in by hand is read to describe it; an unreadable one is reported
    (home / "pt.json").unlink()
    (home / "junk.pth").write_bytes(b"junk")
    assert {i.name: i.layout for i in model_store.list_models()}["pt"] == "posetrack18"
    assert model_store.unreadable_models() == [home / "junk.pth"]


def test_install_model_copies_a_checkpoint_and_refuses_taken_names(home, tmp_path):
    from posefix_video.net.checkpoint import save_checkpoint

    model, cfg = _tiny("coco17")
    src = tmp_path / "mine.pth"
    save_checkpoint(src, model, cfg)
    path = model_store.install_model(src, "mine")
    assert path.read_bytes() == src.read_bytes()
    assert json.loads(path.with_suffix(".json").read_text())["source"] == {"kind": "posefix_video checkpoint"}
    with pytest.raises(CheckpointError, match="installed already"):
        model_store.install_model(src, "mine")
    model_store.install_model(src, "mine", force=True)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"x")
    with pytest.raises(CheckpointError):
        model_store.install_model(bad, "bad")
    assert not (home / "bad.pth").exists()


def test_no_model_installed_says_how_to_install(home):
    with pytest.raises(CheckpointError) as e:
        model_store.resolve_model(None, "posetrack18")
    msg = str(e.value)
    assert "mks0601/PoseFix_RELEASE" in msg and "PoseFix_posetrack2018_resnet152_384x288" in msg
    assert "python -m pipelines.import_weights posefix-tf" in msg and "--dataset posetrack" in msg
    assert "--name posefix-pt18-r152-384x288" in msg


def test_refine_posetrack_without_checkpoint_or_model(home, tmp_path, capsys):
    from pipelines.refine_posetrack import main as posetrack_main

    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "v.json").write_text("{}")
    (tmp_path / "frames").mkdir()
    code = posetrack_main(["--frames-root", str(tmp_path / "frames"), "--pred-dir", str(tmp_path / "pred"),
                           "--out-dir", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "no posetrack18 model is installed" in err and "--dataset posetrack" in err
    assert not (tmp_path / "out" / "v.json").exists()


def test_models_command_lists(home, capsys):
    assert models_main([]) == 0
    assert "no model installed" in capsys.readouterr().out
    _install("pt", "posetrack18")
    assert models_main([]) == 0
    out = capsys.readouterr().out
    assert "pt: PoseFix, posetrack18, ResNet-18, 64x64" in out and "default for posetrack18 tracks" in out


# ---------------------------------------------------------------------------------------------------------------
# the card's command: python -m pipelines.refine_video clip tracks.json, no --checkpoint


def _clip_and_tracks(shared_data, tmp_path):
    """Two frames of a PoseTrack fixture image; two of the official fixture's input poses on the second."""
    from posefix_video.io import write_posetrack18
    from posefix_video.keypoints import POSETRACK18
    from posefix_video.records import PersonRecord, PoseSequence

    image = shared_data / "posetrack18_mmpose" / "images" / "val" / "012834_mpii_test" / "000000.jpg"
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        shutil.copy(image, frames / f"{i:06d}.jpg")
    inputs = json.loads((shared_data / "official_posefix" / "inputs_PoseTrack.json").read_text())
    persons = [p for p in inputs if p["image_id"] == 10128340000][:2]
    seq = PoseSequence(name="012834_mpii_test", layout=POSETRACK18, num_frames=2)
    for f in (1,):
        for t, p in enumerate(persons):
            kp = np.asarray(p["keypoints"], float).reshape(17, 3)
            present = kp[:, 2] > 0
            present[[3, 4]] = False  # PoseTrack's unused ear slots
            seq.add(PersonRecord(frame=f, track_id=t, keypoints=np.where(present[:, None], kp[:, :2], 0),
                                 scores=np.asarray(p["scores"], float), present=present,
                                 visibility=present.astype(float)))
    tracks = tmp_path / "tracks.json"
    write_posetrack18(seq, tracks, seq_name="012834_mpii_test", image_size=(1920, 1080))
    return frames, tracks


def test_refine_video_without_checkpoint_uses_the_installed_model(official_posefix_model, shared_data, home,
                                                                  tmp_path, capsys):
    frames, tracks = _clip_and_tracks(shared_data, tmp_path)
    args = [str(frames), str(tracks), "--no-flip", "--device", "cpu", "--no-progress", "--decoder", "opencv",
            "--backend", "torch"]  # no ONNX export: keeps the test short; safeguard auto = off for this model
    out = tmp_path / "tracks_refined.json"
    assert refine_main(args) == 2  # nothing installed: the two steps, no output
    err = capsys.readouterr().err
    assert "no posetrack18 model is installed" in err and "pipelines.import_weights posefix-tf" in err
    assert not out.exists()

    model_store.install_model(official_posefix_model("coco"), "posefix-coco-r50-256x192")
    model_store.install_model(official_posefix_model("posetrack"), "posefix-pt18-r50-256x192")
    assert refine_main(args) == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    anns = data["annotations"]
    assert len(anns) == 2 and len(data["images"]) == 2
    given = json.loads(tracks.read_text())["annotations"]
    assert any(a["keypoints"] != g["keypoints"] for a, g in zip(anns, given))  # the network moved joints
    # a name given to --checkpoint is resolved in the models folder; the coco model refuses posetrack tracks
    assert refine_main([*args, "--checkpoint", "posefix-coco-r50-256x192", "-o", str(tmp_path / "c.json")]) == 2
    assert "the checkpoint refines coco17 poses" in capsys.readouterr().err
