"""The per-joint safeguard, the score choice and absent-joint filling (net/safeguard.py, Refiner.refine_records)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posefix_video.keypoints import POSETRACK18
from posefix_video.net.refiner import FILLED_JOINTS_KEY, Refiner
from posefix_video.net.safeguard import Safeguard, apply_safeguard, choose_scores, ks85_radius
from posefix_video.records import PersonRecord

SIG = POSETRACK18.sigma_array


def _person():
    """One person: joints on a 100 x 200 box (area 20000), so KS-0.85 radii are known."""
    inp = np.zeros((1, 17, 2))
    inp[0, :, 0] = np.linspace(100, 200, 17)
    inp[0, :, 1] = np.linspace(50, 250, 17)
    usable = np.ones((1, 17), dtype=bool)
    usable[0, [3, 4]] = False  # PoseTrack18 ears
    return inp, usable


def test_ks85_radius_by_hand():
    inp, usable = _person()
    r = ks85_radius(inp, usable, SIG)
    expected = np.sqrt(-2 * 100 * 200 * (2 * SIG) ** 2 * np.log(0.85))
    np.testing.assert_allclose(r[0], expected)
    # a person without usable joints gets area 1 (no NaN)
    assert np.isfinite(ks85_radius(inp, np.zeros_like(usable), SIG)).all()


def test_confidence_rule_keeps_input_below_threshold_and_blends_above():
    inp, usable = _person()
    refined = inp + np.array([10.0, 0.0])
    conf = np.full((1, 17), 0.9)
    conf[0, 0], conf[0, 1], conf[0, 2] = 0.1, 0.35, 0.6
    out, kept = apply_safeguard(refined, conf, inp, usable, SIG, Safeguard(min_confidence=0.2, blend=0.3))
    assert kept[0, 0] and not kept[0, 1:].any()
    np.testing.assert_allclose(out[0, 0], inp[0, 0])  # kept
    np.testing.assert_allclose(out[0, 1], inp[0, 1] + [5.0, 0.0])  # (0.35 - 0.2) / 0.3 = half way
    np.testing.assert_allclose(out[0, 2], refined[0, 2])  # past the blend span
    np.testing.assert_allclose(out[0, 5], refined[0, 5])
    # joints that are not usable are returned as the network gave them
    np.testing.assert_allclose(out[0, 3], refined[0, 3])


def test_move_rule_keeps_small_moves():
    inp, usable = _person()
    r = ks85_radius(inp, usable, SIG)[0]
    refined = inp.copy()
    refined[0, 5, 0] += 0.9 * r[5]  # inside one radius: kept
    refined[0, 6, 0] += 1.1 * r[6]  # outside: moved
    out, kept = apply_safeguard(refined, np.ones((1, 17)), inp, usable, SIG, Safeguard(keep_within=1.0))
    assert kept[0, 5] and not kept[0, 6]
    np.testing.assert_allclose(out[0, 5], inp[0, 5])
    np.testing.assert_allclose(out[0, 6], refined[0, 6])


def test_choose_scores():
    s = np.array([0.5, 0.8])
    c = np.array([0.4, 1.0])
    np.testing.assert_allclose(choose_scores(s, c, "input"), s)
    np.testing.assert_allclose(choose_scores(s, c, "refined"), c)
    np.testing.assert_allclose(choose_scores(s, c, "product"), [0.2, 0.8])
    np.testing.assert_allclose(choose_scores(None, c, "product"), c)
    assert choose_scores(None, c, "input") is None
    with pytest.raises(ValueError):
        choose_scores(s, c, "max")


class ConstNet(torch.nn.Module):
    """Puts every joint's heatmap peak at cell (8, 10) of a 24 x 32 map, whatever the input."""

    def forward(self, x):
        out = torch.full((x.shape[0], 17, 32, 24), -20.0)
        out[:, :, 10, 8] = 20.0
        return out


def _refiner():
    return Refiner(model=ConstNet(), layout=POSETRACK18, input_size=(128, 96), sigma=2.0, device="cpu",
                   flip_test=False)


def _record(present):
    kp = np.stack([np.linspace(40, 80, 17), np.linspace(20, 100, 17)], -1)
    kp[~present] = 0.0
    scores = np.where(present, 0.7, 0.0)
    return PersonRecord(frame=0, track_id=1, keypoints=kp, scores=scores, present=present, visibility=scores.copy())


def test_fill_joints_writes_the_network_answer_with_its_confidence():
    present = np.ones(17, dtype=bool)
    present[[3, 4]] = False  # ears: never filled
    present[9] = False  # a wrist the input lacks
    frames = np.zeros((1, 120, 160, 3), dtype=np.uint8)
    refiner = _refiner()
    (plain,), _ = refiner.refine_records(frames, [_record(present)], safeguard=None)
    (filled,), _ = refiner.refine_records(frames, [_record(present)], safeguard=None, fill_joints=True)
    assert not plain.present[9] and FILLED_JOINTS_KEY not in plain.extra
    assert filled.present[9] and filled.extra[FILLED_JOINTS_KEY] == [9]
    assert not filled.present[[3, 4]].any()
    # every joint goes to the same point (the constant peak), so the filled wrist lies where the others went
    np.testing.assert_allclose(filled.keypoints[9], filled.keypoints[10])
    conf = filled.extra["posefix_confidence"][9]
    assert conf > 0.9 and filled.scores[9] == pytest.approx(conf) and filled.visibility[9] == pytest.approx(conf, 1e-3)
    np.testing.assert_allclose(filled.scores[present], 0.7)  # input scores kept ("input" mode)


def test_safeguard_in_the_refiner_and_score_modes():
    present = np.ones(17, dtype=bool)
    present[[3, 4]] = False
    rec = _record(present)
    frames = np.zeros((1, 120, 160, 3), dtype=np.uint8)
    refiner = _refiner()
    (moved,), _ = refiner.refine_records(frames, [rec], safeguard=None)
    assert not np.allclose(moved.keypoints[present], rec.keypoints[present])
    # a confidence bar above 1 keeps every input joint
    (kept,), _ = refiner.refine_records(frames, [rec], safeguard=Safeguard(min_confidence=1.01))
    np.testing.assert_allclose(kept.keypoints, rec.keypoints)
    (prod,), _ = refiner.refine_records(frames, [rec], safeguard=None, scores="product")
    conf = np.asarray(prod.extra["posefix_confidence"])
    np.testing.assert_allclose(prod.scores[present], 0.7 * conf[present])
    assert (prod.scores[~present] == 0).all()


def test_input_margin_keeps_joints_the_tracker_is_surer_of():
    inp, usable = _person()
    refined = inp + np.array([0.0, 10.0])
    conf = np.full((1, 17), 0.6)
    s_in = np.full((1, 17), 0.5)
    s_in[0, 0], s_in[0, 1] = 0.9, np.nan  # surer than the network; unknown
    rule = Safeguard(input_margin=0.2)
    out, kept = apply_safeguard(refined, conf, inp, usable, SIG, rule, s_in)
    assert kept[0, 0] and not kept[0, 1] and not kept[0, 2]
    np.testing.assert_allclose(out[0, 0], inp[0, 0])
    np.testing.assert_allclose(out[0, 2], refined[0, 2])
    # without input scores the test is off
    assert not apply_safeguard(refined, conf, inp, usable, SIG, rule)[1].any()


def test_uninformative_input_scores_are_unknown():
    from posefix_video.net.safeguard import informative_scores

    present = np.ones(17, dtype=bool)
    present[[3, 4]] = False
    assert np.isnan(informative_scores(None, present)).all()
    assert np.isnan(informative_scores(np.ones(17), present)).all()  # every joint 1: says nothing
    s = np.linspace(0.2, 0.9, 17)
    s[5] = 2.0  # a visibility flag, not a confidence
    got = informative_scores(s, present)
    assert np.isnan(got[5]) and np.allclose(np.delete(got, 5), np.delete(s, 5))
    # such a person is refined by the confidence test alone
    inp, usable = _person()
    refined = inp + 1.0
    conf = np.full((1, 17), 0.95)
    rule = Safeguard(min_confidence=0.7, blend=0.3, input_margin=-0.1)
    _, kept = apply_safeguard(refined, conf, inp, usable, SIG, rule, informative_scores(np.ones(17), present)[None])
    assert not kept.any()
    _, kept = apply_safeguard(refined, conf, inp, usable, SIG, rule, np.ones((1, 17)))
    assert kept[usable].all()  # had the 1s counted, nothing would move


def test_safeguard_default_follows_the_model():
    """On for networks with our contract (the rule was tuned on them), off for the authors' imported models."""
    from posefix_video.config import ModelConfig
    from posefix_video.net.contract import InputContract
    from posefix_video.net.model import build_model
    from posefix_video.net.refiner import Refiner
    from posefix_video.net.safeguard import DEFAULT_SAFEGUARD, recommended_safeguard

    cfg = ModelConfig(depth=18, input_size=(64, 64), layout="posetrack18", width=8, deconv_channels=16)
    ours = InputContract.ours(cfg)
    official = InputContract.official_posefix("posetrack18", sigma=cfg.input_sigma)
    assert recommended_safeguard(ours, ours) == DEFAULT_SAFEGUARD
    assert recommended_safeguard(official, ours) is None
    assert Refiner.from_model(build_model(cfg), cfg, device="cpu").recommended_safeguard == DEFAULT_SAFEGUARD
    official_cfg = ModelConfig(depth=18, input_size=(64, 64), layout="posetrack18", width=8, deconv_channels=16,
                               bn_eps=1.001e-5, heatmap_sigma=official.sigma)
    imported = Refiner.from_model(build_model(official_cfg), official_cfg, device="cpu", contract=official)
    assert imported.recommended_safeguard is None
