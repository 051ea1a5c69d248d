"""Issue 15, class 1: an output is never the same file as an input, for every CLI and every output option
(symlinks, `..` and hard links resolved; outputs inside input folders refused). Each refusal happens before any
work, exits 2, names both paths, and leaves the input byte for byte as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from posefix_video.cli import OutputError, check_outputs


@pytest.fixture
def files(tmp_path):
    """Stand-in inputs: the CLIs must refuse before reading any of them."""
    paths = {name: tmp_path / name for name in ("clip.mp4", "tracks.json", "model.pth", "gt.json", "pred.json")}
    for name, p in paths.items():
        p.write_bytes(f"input {name}\n".encode())
    return paths


def _refused(capsys, code: int, *names: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, no traceback
    for name in names:
        assert name in err, err
    return err


def _unchanged(files) -> None:
    for name, p in files.items():
        assert p.read_bytes() == f"input {name}\n".encode()


@pytest.mark.parametrize("option", ["video", "checkpoint", "tracks_render", "out_is_render"])
def test_refine_video_outputs_never_inputs(files, capsys, option):
    from pipelines.refine_video import main

    v, t, c = (str(files[n]) for n in ("clip.mp4", "tracks.json", "model.pth"))
    extra = {"video": ["-o", v], "checkpoint": ["-o", c], "tracks_render": ["--render", t],
             "out_is_render": ["-o", str(files["clip.mp4"].parent / "x.json"), "--render",
                               str(files["clip.mp4"].parent / "x.json")]}[option]
    code = main([v, t, "--checkpoint", c, "--no-progress", *extra])
    _refused(capsys, code, extra[-1])
    _unchanged(files)


def test_refine_video_symlink_hardlink_and_dotdot(files, tmp_path, capsys):
    from pipelines.refine_video import main

    v, t, c = (str(files[n]) for n in ("clip.mp4", "tracks.json", "model.pth"))
    (tmp_path / "link.json").symlink_to(files["clip.mp4"])
    os.link(files["tracks.json"], tmp_path / "hard.json")
    (tmp_path / "sub").mkdir()
    for out in (tmp_path / "link.json", tmp_path / "hard.json", tmp_path / "sub" / ".." / "model.pth"):
        code = main([v, t, "--checkpoint", c, "-o", str(out), "--no-progress"])
        err = _refused(capsys, code, str(out), "same file as the input")
        assert any(str(files[n]) in err for n in ("clip.mp4", "tracks.json", "model.pth"))
    _unchanged(files)
    assert (tmp_path / "link.json").is_symlink()


def test_refine_video_output_inside_frame_folder(files, tmp_path, capsys):
    from pipelines.refine_video import main

    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "000000.jpg").write_bytes(b"jpeg")
    code = main([str(frames), str(files["tracks.json"]), "--checkpoint", str(files["model.pth"]),
                 "-o", str(frames / "refined.json")])
    _refused(capsys, code, "inside the input folder", str(frames))
    assert sorted(p.name for p in frames.iterdir()) == ["000000.jpg"]


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_evaluate_outputs_never_inputs(files, capsys, option):
    from pipelines.evaluate import main

    gt, pred = str(files["gt.json"]), str(files["pred.json"])
    for target in (pred, gt):
        code = main(["--gt", gt, "--pred", pred, option, target])
        _refused(capsys, code, option, target)
    _unchanged(files)


def test_evaluate_json_inside_prediction_folder(tmp_path, capsys):
    from pipelines.evaluate import main

    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    code = main(["--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--json",
                 str(tmp_path / "pred" / "metrics.json")])
    _refused(capsys, code, "inside the input folder")
    assert not (tmp_path / "pred" / "metrics.json").exists()


def test_train_out_is_a_file(tmp_path, capsys):
    from pipelines.train import main

    out = tmp_path / "run"
    out.write_bytes(b"not a folder")
    code = main(["--config", "configs/tiny_synthetic.yaml", "--out", str(out), "--quiet"])
    _refused(capsys, code, "--out", str(out), "is a file")
    assert out.read_bytes() == b"not a folder"


def test_make_synthetic_track_out_is_gt_folder_and_sheet_out_is_folder(tmp_path, capsys):
    from pipelines.make_synthetic import main

    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "000001_mpiinew_test.json").write_text("{}")
    code = main(["track", "--gt", str(gt / "000001_mpiinew_test.json"), "--out", str(gt)])
    _refused(capsys, code, str(gt))
    assert (gt / "000001_mpiinew_test.json").read_text() == "{}"
    code = main(["sheet", "--out", str(gt)])
    _refused(capsys, code, "is a folder")


def test_demo_out_is_a_file(tmp_path, capsys):
    from pipelines.demo import main

    out = tmp_path / "demo_out"
    out.write_text("mine")
    _refused(capsys, main(["--out", str(out)]), "is a file")
    assert out.read_text() == "mine"


def test_refine_posetrack_out_dir_is_an_input_folder(tmp_path, files, capsys):
    from pipelines.refine_posetrack import main

    preds, frames = tmp_path / "preds", tmp_path / "frames"
    preds.mkdir()
    frames.mkdir()
    for out in (preds, frames):
        code = main(["--frames-root", str(frames), "--pred-dir", str(preds), "--out-dir", str(out),
                     "--checkpoint", str(files["model.pth"]), "--no-progress"])
        _refused(capsys, code, "--out-dir", str(out))


def test_build_image_bank_into_the_image_folder(tmp_path, capsys):
    from pipelines.build_image_bank import main

    images = tmp_path / "images"
    images.mkdir()
    code = main(["--config", "configs/tiny_synthetic.yaml", f"data.train_images={images}", "--out", str(images),
                 "--workers", "0"])
    _refused(capsys, code, "--out", str(images))


def test_check_outputs_rules(tmp_path):
    src = tmp_path / "in.json"
    src.write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path)
    check_outputs(inputs=[src], outputs={"-o": tmp_path / "new" / "out.json"})  # a folder to create: fine
    with pytest.raises(OutputError, match="same file"):
        check_outputs(inputs=[src], outputs={"-o": tmp_path / "alias" / "in.json"})  # symlinked folder
    with pytest.raises(OutputError, match="is a folder"):
        check_outputs(inputs=[src], outputs={"-o": tmp_path / "dir"})
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_outputs(inputs=[], outputs={"-o": src / "out.json"})
    with pytest.raises(OutputError, match="same file"):
        check_outputs(inputs=[], outputs={"-o": tmp_path / "a.json", "--render": tmp_path / "dir" / ".." / "a.json"})
    with pytest.raises(OutputError, match="is a file"):
        check_outputs(inputs=[], outputs={}, folders={"--out": src})
    check_outputs(inputs=[None], outputs={"-o": None}, folders={"--out": None})


def test_refine_video_api_refuses_too(files):
    from posefix_video.video.refine_video import refine_video

    with pytest.raises(OutputError, match="same file"):
        refine_video(files["clip.mp4"], files["tracks.json"], files["model.pth"], out=files["model.pth"])
    _unchanged(files)


def test_paths_are_reported_as_given(tmp_path):
    src = tmp_path / "a.json"
    src.write_text("x")
    rel = Path(os.path.relpath(src))
    with pytest.raises(OutputError) as err:
        check_outputs(inputs=[src], outputs={"--json": rel})
    assert str(rel) in str(err.value) and str(src) in str(err.value)
