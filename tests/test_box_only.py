"""Box-only persons: initial poses from a top-down initializer, then PoseFix (video/initial_poses.py, refine_video,
the pipelines' --initializer / --no-refine)."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from posefix_video.errors import CheckpointError
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord
from posefix_video.video.initial_poses import INITIALIZED_NOT_REFINED, NO_POSE, NOT_REFINED, PoseStage, needs_pose


def _record(frame, track, posed):
    kp = np.full((17, 2), 10.0 + track) if posed else np.zeros((17, 2))
    return PersonRecord(frame=frame, track_id=track, keypoints=kp, scores=None, present=np.full(17, posed),
                        box=np.array([1.0, 2.0, 30.0, 60.0]))


class FakeInitializer:
    layout = POSETRACK18
    device = torch.device("cpu")
    flip_test = False

    def __init__(self):
        self.calls = []

    def estimate_records(self, frames, records, frame_offset=0):
        self.calls.append([r.track_id for r in records])
        return [r.replace(keypoints=np.full((17, 2), 100.0 + r.track_id), present=np.ones(17, bool),
                          extra={**r.extra, "initializer": "msra"}) for r in records]


class FakeRefiner:
    layout = POSETRACK18
    device = torch.device("cpu")
    flip_test = False

    def __init__(self):
        self.calls = []

    def refine_records(self, frames, records, frame_offset=0, **options):
        self.calls.append(([r.track_id for r in records], options))
        return [r.replace(keypoints=r.keypoints + 1) for r in records], Counter()


def test_stage_poses_box_only_persons_then_refines_everyone_in_input_order():
    records = [_record(0, 0, True), _record(0, 1, False), _record(1, 2, False), _record(1, 3, True)]
    init, ref = FakeInitializer(), FakeRefiner()
    out, counts = PoseStage(refiner=ref, initializer=init).refine_records(np.zeros((2, 4, 4, 3), np.uint8), records,
                                                                         scores="input")
    assert init.calls == [[1, 2]]  # only the box-only persons, in input order
    assert ref.calls == [([0, 1, 2, 3], {"scores": "input"})]  # every person, options passed on
    assert [r.track_id for r in out] == [0, 1, 2, 3]
    assert [r.keypoints[0, 0] for r in out] == [11.0, 102.0, 103.0, 14.0]  # initializer pose + 1 from the refiner
    assert counts == Counter()
    assert not needs_pose(records[0]) and needs_pose(records[1])  # inputs untouched


def test_stage_without_initializer_passes_box_only_persons_through_with_a_named_reason():
    records = [_record(0, 0, True), _record(0, 1, False)]
    ref = FakeRefiner()
    out, counts = PoseStage(refiner=ref).refine_records(np.zeros((1, 4, 4, 3), np.uint8), records)
    assert ref.calls[0][0] == [0]
    assert counts == Counter({NO_POSE: 1}) and "--initializer" in NO_POSE
    assert not out[1].present.any() and np.array_equal(out[1].box, records[1].box)


def test_stage_no_refine_keeps_the_initializer_poses_and_counts_why():
    records = [_record(0, 0, True), _record(0, 1, False)]
    out, counts = PoseStage(initializer=FakeInitializer()).refine_records(np.zeros((1, 4, 4, 3), np.uint8), records)
    assert out[1].keypoints[0, 0] == 101.0 and out[0].keypoints[0, 0] == 10.0
    assert counts == Counter({INITIALIZED_NOT_REFINED: 1, NOT_REFINED: 1})
    with pytest.raises(CheckpointError, match="--no-refine needs --initializer"):
        PoseStage()
    other = FakeRefiner()
    other.layout = type("L", (), {"name": "coco17"})()
    with pytest.raises(CheckpointError, match="layout"):
        PoseStage(refiner=other, initializer=FakeInitializer())


# ---------------------------------------------------------------------------------------------------------------
# end to end on a synthetic clip


@pytest.fixture(scope="module")
def box_clip(tmp_path_factory):
    """A synthetic clip (frame folder + GT) and its box-only tracks (GT boxes, every joint (0, 0, 0))."""
    from posefix_video.demo import ClipSpec, make_clip

    root = tmp_path_factory.mktemp("box_clip")
    clip = make_clip(root / "clip", ClipSpec(seed=1234, frames=6, width=192, height=160, min_tracks=2, max_tracks=3))
    data = json.loads(clip.gt.read_text())
    for ann in data["annotations"]:
        ann["keypoints"] = [0] * 51
    tracks = root / "boxes" / clip.gt.name
    tracks.parent.mkdir()
    tracks.write_text(json.dumps(data))
    return clip, tracks


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """(initializer, refiner) checkpoints of tiny random networks (posetrack18)."""
    from posefix_video.config import ModelConfig
    from posefix_video.net.checkpoint import save_checkpoint
    from posefix_video.net.model import build_model
    from posefix_video.train.run import topdown_contract

    root = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    kw = dict(depth=18, input_size=(64, 64), layout="posetrack18", width=8, deconv_channels=16)
    td = ModelConfig(**kw, pose_input=False)
    save_checkpoint(root / "init.pth", build_model(td), td, input_contract=topdown_contract(td))
    pf = ModelConfig(**kw)
    save_checkpoint(root / "posefix.pth", build_model(pf), pf)
    return root / "init.pth", root / "posefix.pth"


def _read(path):
    from posefix_video.io import read_tracks

    return read_tracks(path)


def test_refine_video_box_only_input_with_initializer_refines_every_person(box_clip, tiny_models, tmp_path):
    from posefix_video.video.refine_video import refine_video

    clip, tracks = box_clip
    init, posefix = tiny_models
    n = _read(tracks).num_persons
    summary = refine_video(clip.frames, tracks, posefix, tmp_path / "out.json", initializer=init, device="cpu",
                           precision="fp32", batch_size=4)
    assert (summary.persons, summary.refined, summary.passed_through) == (n, n, {})
    out = _read(tmp_path / "out.json")
    assert out.num_persons == n
    used = POSETRACK18.used_mask
    for r in out.persons():
        assert r.present[used].all() and "initializer" in r.extra
        assert r.box is not None and r.scores is not None


def test_no_refine_writes_the_initializer_poses_one_per_detection_in_input_order(box_clip, tiny_models, tmp_path):
    from posefix_video.net.topdown import TopDownEstimator
    from posefix_video.video.decoders import open_frames
    from posefix_video.video.refine_video import refine_video

    clip, tracks = box_clip
    init, _ = tiny_models
    seq = _read(tracks)
    summary = refine_video(clip.frames, tracks, None, tmp_path / "out.json", initializer=init, refine=False,
                           device="cpu", batch_size=4)
    assert summary.refined == 0 and summary.passed_through == {INITIALIZED_NOT_REFINED: seq.num_persons}
    out = _read(tmp_path / "out.json")
    # the same poses as the estimator alone on the decoded frames, person for person
    frames = np.stack(list(open_frames(clip.frames).frames()))
    est = TopDownEstimator.from_checkpoint(init, device="cpu")
    expected = est.estimate_records(frames, list(seq.persons()))
    got = list(out.persons())
    assert [(r.frame, r.track_id) for r in got] == [(r.frame, r.track_id) for r in seq.persons()]
    for g, e in zip(got, expected):
        assert np.allclose(g.keypoints[POSETRACK18.used_mask], e.keypoints[POSETRACK18.used_mask], atol=0.01)
        assert np.allclose(g.scores, e.scores, atol=1e-4)


def test_box_only_without_initializer_passes_through_as_valid_poseval_persons(box_clip, tiny_models, tmp_path):
    from posefix_video.video.refine_video import refine_video

    clip, tracks = box_clip
    _, posefix = tiny_models
    n = _read(tracks).num_persons
    summary = refine_video(clip.frames, tracks, posefix, tmp_path / "out.json", device="cpu", batch_size=4)
    assert summary.refined == 0 and summary.passed_through == {NO_POSE: n}
    data = json.loads((tmp_path / "out.json").read_text())
    assert len(data["annotations"]) == n
    for ann in data["annotations"]:
        assert ann["keypoints"] == [0] * 51  # poseval's "not predicted", 51 values as it requires
        assert len(ann["bbox"]) == 4 and isinstance(ann["track_id"], int)
    from posefix_video.eval import evaluate_posetrack

    evaluate_posetrack([clip.gt], [tmp_path / "out.json"], tracking=True)  # poseval reads it


def test_cli_initializer_options(box_clip, tiny_models, tmp_path, capsys):
    from pipelines.refine_video import main

    clip, tracks = box_clip
    init, posefix = tiny_models
    assert main([str(clip.frames), str(tracks), "--no-refine", "-o", str(tmp_path / "a.json"), "--no-progress",
                 "--device", "cpu"]) == 2
    assert "--no-refine needs --initializer" in capsys.readouterr().err
    assert not (tmp_path / "a.json").exists()
    assert main([str(clip.frames), str(tracks), "--initializer", str(init), "--no-refine", "-o",
                 str(tmp_path / "b.json"), "--no-progress", "--device", "cpu"]) == 0
    assert _read(tmp_path / "b.json").num_persons == _read(tracks).num_persons
    assert main([str(clip.frames), str(tracks), "--initializer", str(posefix), "--checkpoint", str(posefix), "-o",
                 str(tmp_path / "c.json"), "--no-progress", "--device", "cpu"]) == 2
    assert "not a top-down initializer" in capsys.readouterr().err


def test_mot_txt_box_tracker_end_to_end(box_clip, tiny_models, tmp_path):
    """MOTChallenge text from the simulated box tracker -> initializer -> PoseFix: one person per line, each on
    its frame (MOT frames from 1) with its track id, posed and refined."""
    from posefix_video.demo import simulate_box_tracks
    from posefix_video.video.refine_video import refine_video

    clip, _ = box_clip
    init, posefix = tiny_models
    mot = simulate_box_tracks(clip, tmp_path / "boxes.txt", seed=3)
    lines = [line.split(",") for line in mot.read_text().splitlines()]
    assert lines and all(len(f) == 10 for f in lines)
    summary = refine_video(clip.frames, mot, posefix, tmp_path / "out.json", initializer=init, frame_base=1,
                           device="cpu", batch_size=4, seq_name=clip.gt.stem)
    assert (summary.persons, summary.refined) == (len(lines), len(lines))
    out = _read(tmp_path / "out.json")
    got = sorted((r.frame, r.track_id) for r in out.persons())
    assert got == sorted((int(f[0]) - 1, int(f[1])) for f in lines)
    assert all(r.present[POSETRACK18.used_mask].all() for r in out.persons())
