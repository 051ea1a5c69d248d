"""The learning proof as a test: the committed checkpoint (trained by our recipe on synthetic people, see
docs/demo.md) improves simulated tracker poses on a held-out synthetic clip."""

from __future__ import annotations

import dataclasses

from posefix_video.demo import (
    DEMO_CHECKPOINT,
    ClipSpec,
    load_demo_refiner,
    make_clip,
    refine_and_evaluate,
    simulate_tracks,
)
from posefix_video.synthetic.tracker_sim import TrackerSimSettings


def test_refinement_improves_ap_on_held_out_clip(tmp_path):
    refiner = load_demo_refiner(DEMO_CHECKPOINT)
    clip = make_clip(tmp_path / "clip", ClipSpec(seed=2000, frames=20, first_video=1))  # val seed, unseen in training
    regimes = {
        "posefix": (TrackerSimSettings.training(), 5.0),  # the statistics the model was trained on: at least +5 AP
        "drift": (dataclasses.replace(TrackerSimSettings.clean(), drift=0.5), 0.0),  # never seen in training
    }
    for r, (name, (settings, min_gain)) in enumerate(regimes.items()):
        tracks = simulate_tracks(clip, tmp_path / f"tracks_{name}", settings, seed=r)
        res = refine_and_evaluate(clip, tracks, tmp_path / f"refined_{name}", refiner=refiner)
        before, after = res.before.groups("ap")["Total"], res.after.groups("ap")["Total"]
        assert after - before > min_gain, f"{name}: input AP {before:.1f}, refined AP {after:.1f}"
