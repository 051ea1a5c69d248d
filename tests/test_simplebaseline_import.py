"""SimpleBaseline importers: Microsoft and mmpose (1.x and 0.x) key layouts, numpy metadata through the allow-list,
unsafe files refused, malformed files named, and the import_weights subcommands."""

from __future__ import annotations

import argparse
from collections import OrderedDict

import numpy as np
import pytest
import torch

from posefix_video.config import ModelConfig
from posefix_video.errors import CheckpointError
from posefix_video.net.checkpoint import load_model
from posefix_video.net.model import build_model
from posefix_video.net.simplebaseline_weights import convert_simplebaseline, import_simplebaseline

TINY = ModelConfig(depth=18, input_size=(64, 64), width=8, deconv_channels=16, pose_input=False)


def _tiny_msra_state() -> OrderedDict:
    torch.manual_seed(0)
    ours = build_model(TINY).state_dict()
    out = OrderedDict()
    for k, v in ours.items():  # our names -> Microsoft's
        k = k.replace("deconv.", "deconv_layers.", 1) if k.startswith("deconv.") else k
        k = k.replace("final.", "final_layer.", 1) if k.startswith("final.") else k
        out[k] = v.clone() + (0.01 * torch.randn_like(v) if v.is_floating_point() else 0)
    return out


def _mmpose_file(state: OrderedDict, head: str = "head.") -> dict:
    sd = OrderedDict()
    for k, v in state.items():
        sd[(head if k.startswith(("deconv_layers.", "final_layer.")) else "backbone.") + k] = v
    meta = {"epoch": 210, "cfg": "codec = dict(type='MSRAHeatmap', input_size=(64, 64), heatmap_size=(16, 16))",
            "dataset_meta": {"sigmas": np.linspace(0.025, 0.107, 17), "keypoint_colors": np.zeros((17, 3), np.uint8),
                             "flip_indices": [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]}}
    return {"meta": meta, "state_dict": sd, "message_hub": {"runtime_info": {"iter": 1}}}


def _same_weights(path, state):
    model, cfg, contract = load_model(path)
    ours = model.state_dict()
    for k, v in state.items():
        k = k.replace("deconv_layers.", "deconv.").replace("final_layer.", "final.")
        assert torch.equal(ours[k], v), k
    return cfg, contract


def test_msra_state_dict_imports_with_bgr_contract(tmp_path):
    state = _tiny_msra_state()
    torch.save({"state_dict": OrderedDict(("module." + k, v) for k, v in state.items())}, tmp_path / "dp.pth")
    torch.save(state, tmp_path / "pose_resnet_18_64x64.pth")
    for name in ("pose_resnet_18_64x64.pth", "dp.pth"):  # plain, and DataParallel-prefixed inside `state_dict`
        out = tmp_path / f"ours_{name}"
        cfg = import_simplebaseline("msra", tmp_path / name, out, input_size=(64, 64))
        assert (cfg.depth, cfg.width, cfg.deconv_channels, cfg.num_deconv, cfg.pose_input) == (18, 8, 16, 3, False)
        cfg, contract = _same_weights(out, state)
        assert (contract.channel_order, contract.decoder) == ("BGR", "argmax_msra")
        assert contract.mean == (123.675, 116.28, 103.53) and contract.std == (58.395, 57.12, 57.375)
    # the input size comes from the file name when not given
    assert convert_simplebaseline("msra", tmp_path / "pose_resnet_18_64x64.pth").cfg.input_size == (64, 64)


@pytest.mark.parametrize("head", ["head.", "keypoint_head."])
def test_mmpose_1x_and_0x_import_through_the_numpy_allow_list(tmp_path, head):
    state = _tiny_msra_state()
    torch.save(_mmpose_file(state, head), tmp_path / "mm.pth")
    with pytest.raises(Exception, match="numpy"):  # what torch's safe loader alone does with these files
        torch.load(tmp_path / "mm.pth", weights_only=True)
    imported = convert_simplebaseline("mmpose", tmp_path / "mm.pth")
    assert imported.cfg.input_size == (64, 64)  # from the mmpose config text (w, h)
    assert "meta" in imported.report.skipped and "message_hub" in imported.report.skipped
    out = tmp_path / "ours.pth"
    import_simplebaseline("mmpose", tmp_path / "mm.pth", out)
    _, contract = _same_weights(out, state)
    assert (contract.channel_order, contract.decoder) == ("RGB", "argmax_mmpose")


def test_a_file_needing_other_python_objects_is_refused(tmp_path):
    payload = _mmpose_file(_tiny_msra_state())
    payload["meta"]["args"] = argparse.Namespace(work_dir="x")  # any global outside the numpy allow-list
    torch.save(payload, tmp_path / "unsafe.pth")
    with pytest.raises(CheckpointError, match=r"unsafe\.pth: refused to load .*argparse\.Namespace.*allow-list"):
        convert_simplebaseline("mmpose", tmp_path / "unsafe.pth")


def test_malformed_files_are_named(tmp_path):
    state = _tiny_msra_state()
    torch.save(_mmpose_file(state), tmp_path / "mm.pth")
    with pytest.raises(CheckpointError, match="mmpose checkpoint .*simplebaseline-mmpose"):
        convert_simplebaseline("msra", tmp_path / "mm.pth")
    torch.save(state, tmp_path / "ms.pth")
    with pytest.raises(CheckpointError, match="no `backbone.` keys.*simplebaseline-msra"):
        convert_simplebaseline("mmpose", tmp_path / "ms.pth")
    broken = OrderedDict(state)
    del broken["layer2.0.conv1.weight"]
    broken["final_layer.weight"] = broken["final_layer.weight"][:16]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="16 heatmaps; layout coco17 has 17"):
        convert_simplebaseline("msra", tmp_path / "broken.pth", input_size=(64, 64))
    broken["final_layer.weight"] = state["final_layer.weight"]
    with pytest.raises(CheckpointError, match=r"missing: layer2\.0\.conv1\.weight"):
        torch.save(broken, tmp_path / "broken.pth")
        convert_simplebaseline("msra", tmp_path / "broken.pth", input_size=(64, 64))
    (tmp_path / "text.pth").write_text("not a torch file")
    with pytest.raises(CheckpointError, match="text.pth: cannot read"):
        convert_simplebaseline("msra", tmp_path / "text.pth")
    with pytest.raises(CheckpointError, match="nothere.pth: .* not found"):
        convert_simplebaseline("msra", tmp_path / "nothere.pth")


def test_reference_files_import_to_the_same_network(simplebaseline_models):
    (m1, c1, k1), (m2, c2, k2) = load_model(simplebaseline_models["msra"]), load_model(simplebaseline_models["mmpose"])
    assert c1 == c2 and (c1.depth, c1.input_size, c1.pose_input) == (50, (256, 192), False)
    assert (k1.channel_order, k1.decoder, k2.channel_order, k2.decoder) == ("BGR", "argmax_msra", "RGB",
                                                                           "argmax_mmpose")
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert len(s1) == 338 and all(torch.equal(s1[k], s2[k]) for k in s1)


def test_import_weights_subcommands(tmp_path, capsys):
    from pipelines import import_weights

    state = _tiny_msra_state()
    torch.save(state, tmp_path / "ms.pth")
    torch.save(_mmpose_file(state), tmp_path / "mm.pth")
    assert import_weights.main(["simplebaseline-msra", str(tmp_path / "ms.pth"), "--input-size", "64x64",
                                "-o", str(tmp_path / "a.pth")]) == 0
    assert import_weights.main(["simplebaseline-mmpose", str(tmp_path / "mm.pth"), "--layout", "posetrack18",
                                "-o", str(tmp_path / "b.pth")]) == 0
    _, cfg_a, ka = load_model(tmp_path / "a.pth")
    _, cfg_b, kb = load_model(tmp_path / "b.pth")
    assert (cfg_a.layout, ka.decoder, cfg_b.layout, kb.decoder) == ("coco17", "argmax_msra", "posetrack18",
                                                                   "argmax_mmpose")
    capsys.readouterr()
    assert import_weights.main(["simplebaseline-msra", str(tmp_path / "mm.pth"), "-o", str(tmp_path / "c.pth")]) == 2
    assert "simplebaseline-mmpose" in capsys.readouterr().err and not (tmp_path / "c.pth").exists()
    # the output may not overwrite the input
    assert import_weights.main(["simplebaseline-msra", str(tmp_path / "ms.pth"), "-o", str(tmp_path / "ms.pth")]) == 2


def test_a_posefix_checkpoint_is_not_an_initializer(tmp_path):
    from posefix_video.net.checkpoint import save_checkpoint
    from posefix_video.net.topdown import TopDownEstimator

    cfg = ModelConfig(depth=18, input_size=(64, 64), width=8, deconv_channels=16)  # pose_input True
    save_checkpoint(tmp_path / "posefix.pth", build_model(cfg), cfg)
    with pytest.raises(CheckpointError, match=r"posefix.pth: a PoseFix model \(pose input\), not a top-down"):
        TopDownEstimator.from_checkpoint(tmp_path / "posefix.pth", device="cpu")
    # an imported file by path loads; its decoder follows the file's kind
    torch.save(_tiny_msra_state(), tmp_path / "ms.pth")
    import_simplebaseline("msra", tmp_path / "ms.pth", tmp_path / "sb.pth", input_size=(64, 64))
    est = TopDownEstimator.from_checkpoint(tmp_path / "sb.pth", device="cpu", flip_test=False)
    assert (est.decoder, est.convention, est.contract.channel_order, est.input_size) == ("argmax_msra", "msra",
                                                                                         "BGR", (64, 64))
