"""Importing the authors' TF PoseFix checkpoints: tensors, network output, contract, optimizer state, bad inputs.

Uses the official-code checkpoint of ../shared/data/official_posefix (ResNet-50 256x192, synthetic weights; its
README section 2) and released-style snapshots written with tests/tf_writer.py.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from tf_writer import write_table, write_tf_checkpoint

from pipelines.import_weights import main as import_main
from posefix_video.config import ModelConfig
from posefix_video.errors import CheckpointError
from posefix_video.net.checkpoint import load_checkpoint, load_model
from posefix_video.net.model import build_model
from posefix_video.net.posefix_tf import (
    convert_posefix_tf,
    detect_depth,
    name_map,
    optimizer_kind,
    state_dict_to_tf,
    tf_to_torch,
)
from posefix_video.net.tf_checkpoint import TFCheckpoint, read_tf_checkpoint


@pytest.fixture(scope="module")
def variables(shared_data) -> dict:
    return json.loads((shared_data / "official_posefix" / "variables.json").read_text())


@pytest.fixture(scope="module")
def official_tensors(official_posefix_checkpoint) -> dict[str, np.ndarray]:
    return read_tf_checkpoint(official_posefix_checkpoint)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def test_imported_tensors_match_variables_json(official_posefix_model, variables):
    path = official_posefix_model("coco")
    model, cfg, contract = load_model(path)
    back = state_dict_to_tf(model)  # our tensors under the TF names and layouts (the inverse transposes)
    assert len(back) == len(variables["variables"]) == 282
    for v in variables["variables"]:
        assert list(back[v["name"]].shape) == v["shape"], v["name"]
        assert _sha(back[v["name"]]) == v["sha256"], v["name"]
    assert sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for k, b in model.state_dict().items() if "running" in k) == variables["num_params"]


def test_kernel_layouts_by_hand(official_tensors):
    """conv HWIO -> OIHW; conv2d_transpose [kh, kw, out, in] -> [in, out, kh, kw], no spatial flip."""
    w = official_tensors["up2/weights"]  # (4, 4, 256 out, 256 in)
    t = tf_to_torch("up2/weights", w)
    assert t[5, 7, 1, 2] == w[1, 2, 7, 5]  # [in, out, kh, kw] <- [kh, kw, out, in]
    c = official_tensors["resnet_v1_50/conv1/weights"]  # (7, 7, 20 in, 64 out)
    t = tf_to_torch("resnet_v1_50/conv1/weights", c)
    assert t.shape == (64, 20, 7, 7) and t[9, 2, 3, 6] == c[3, 6, 2, 9]  # channel 2 stays R of [B, G, R, maps]


def test_network_reproduces_the_official_logits(official_posefix_model, shared_data):
    """The official debug tensors: the graph's input (BGR crop minus means, peak-255 heatmaps) and its logits."""
    model, _, _ = load_model(official_posefix_model("coco"))
    for ds in ("COCO", "PoseTrack"):
        d = np.load(shared_data / "official_posefix" / f"debug_{ds}.npz")
        x = np.concatenate([d["image"], d["input_heatmaps"]], axis=2).transpose(2, 0, 1)[None]
        with torch.no_grad():
            y = model(torch.from_numpy(np.ascontiguousarray(x)))[0].numpy().transpose(1, 2, 0)
        # float32 TF vs PyTorch kernels: logits of std ~2.4 agree to ~3e-5 (a deconv or BN mistake moves them by >1)
        assert np.abs(y - d["output_logits"]).max() < 2e-4, ds


def test_checkpoint_carries_config_contract_and_source(official_posefix_model, variables):
    cfg, _, ckpt = load_checkpoint(official_posefix_model("posetrack"))
    assert cfg == ModelConfig(depth=50, input_size=(256, 192), layout="posetrack18", heatmap_sigma=7.0,
                              bn_eps=1.001e-5)
    c = ckpt["input_contract"]
    assert (c["channel_order"], c["mean"], c["std"], c["heatmap_peak"], c["sigma"], c["bn_eps"], c["layout"]) == (
        "BGR", [123.68, 116.78, 103.94], [1.0, 1.0, 1.0], 255.0, 7.0, 1.001e-5, "posetrack18")
    s = ckpt["source"]
    assert s["index_sha256"] == variables["index_sha256"]
    assert (s["dataset"], s["authors_model"], s["tensors"]) == ("posetrack", "PoseFix_posetrack2018_resnet50_256x192",
                                                                282)


def _released_snapshot(tensors: dict[str, np.ndarray], folder) -> tuple:
    """The fixture's tensors plus what the official Trainer's Saver also holds (README section 2)."""
    trainable = [n for n in tensors if n.endswith(("/weights", "/biases", "/gamma", "/beta"))]
    full = dict(tensors)
    rng = np.random.default_rng(0)
    for n in trainable:
        full[n + "/Adam"] = rng.standard_normal(tensors[n].shape).astype(np.float32) * 1e-3
        full[n + "/Adam_1"] = np.abs(full[n + "/Adam"]) ** 2
    full.update(beta1_power=np.float32(0.9 ** 1000), beta2_power=np.float32(0.999 ** 1000),
                Variable=np.float32(5e-6))
    return write_tf_checkpoint(folder / "snapshot_140.ckpt", full), len(trainable)


def test_released_style_snapshot_skips_and_counts_optimizer_state(official_tensors, tmp_path):
    prefix, trainable = _released_snapshot(official_tensors, tmp_path)
    assert trainable == 170
    # corrupt an Adam slot: the importer must not even read it
    e = TFCheckpoint(prefix).entries["up3/weights/Adam"]
    shard = TFCheckpoint(prefix).shard_path(e.shard)
    with open(shard, "r+b") as f:
        f.seek(e.offset + 10)
        f.write(b"\xff\xff")
    imported = convert_posefix_tf(prefix, dataset="coco", input_size=(256, 192))
    assert imported.report.skipped == {"Adam slots (<var>/Adam)": 170, "Adam slots (<var>/Adam_1)": 170,
                                       "Adam beta1_power": 1, "Adam beta2_power": 1, "learning rate (Variable)": 1}
    assert imported.report.imported == 282 and imported.report.depth == 50
    back = state_dict_to_tf(imported.model)
    assert back.keys() == official_tensors.keys()
    assert all(np.array_equal(back[k], v) for k, v in official_tensors.items())


def test_names_and_depths():
    assert optimizer_kind("up1/weights/Adam_1") and optimizer_kind("Variable") and not optimizer_kind("up1/weights")
    for depth, units in ((50, 16), (101, 33), (152, 50)):
        with torch.device("meta"):
            model = build_model(ModelConfig(depth=depth))
        names = name_map(model)
        assert len({n.rsplit("/bottleneck_v1", 1)[0] for n in names if "/unit_" in n}) == units
        assert detect_depth(sorted(names), "x") == depth
        assert names["up1/weights"] == "deconv.0.weight" and names["up3/BatchNorm/moving_variance"] == \
            "deconv.7.running_var"
        assert names[f"resnet_v1_{depth}/block4/unit_1/bottleneck_v1/shortcut/BatchNorm/gamma"] == \
            "layer4.0.downsample.1.weight"
    with pytest.raises(CheckpointError, match="resnet_v1_18"):
        detect_depth(["resnet_v1_18/conv1/weights"], "x")


# ---------------------------------------------------------------------------------------------------------------
# the command line and its errors


def _cli(capsys, *args) -> tuple[int, str]:
    rc = import_main(["posefix-tf", *map(str, args)])
    return rc, capsys.readouterr().err


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("POSEFIX_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "models"


def test_cli_writes_and_installs(official_posefix_checkpoint, tmp_path, home, capsys):
    out = tmp_path / "m.pth"
    index = f"{official_posefix_checkpoint}.index"
    rc, err = _cli(capsys, index, "--dataset", "coco", "--input-size", "256x192", "-o", out, "--name")
    assert rc == 0, err
    assert "282 tensors" in err and "skipped 0 optimizer tensors" in err
    installed = home / "posefix-coco-r50-256x192.pth"
    assert out.read_bytes() == installed.read_bytes()
    assert json.loads(installed.with_suffix(".json").read_text())["input_contract"]["channel_order"] == "BGR"
    rc, err = _cli(capsys, index, "--dataset", "coco", "--input-size", "256x192", "--name", "posefix-coco-r50-256x192")
    assert rc == 2 and "installed already" in err and "--force" in err
    rc, err = _cli(capsys, index, "--dataset", "coco", "--input-size", "256x192", "--name", "posefix-coco-r50-256x192",
                   "--force")
    assert rc == 0, err


def _another_network(tensors, folder):
    """The fixture minus up3, plus a head the official graph does not have."""
    other = {k: v for k, v in tensors.items() if not k.startswith("up3/")}
    other["extra_head/weights"] = np.zeros((1, 1, 256, 17), np.float32)
    return write_tf_checkpoint(folder / "other.ckpt", other)


@pytest.mark.parametrize("case", ["missing_shard", "truncated_index", "v1", "not_a_checkpoint", "another_network",
                                  "crc", "input_size", "wrong_joints"])
def test_cli_errors_exit_2_without_output(case, official_tensors, official_posefix_checkpoint, tmp_path, home,
                                          capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    size = ["--input-size", "256x192"]
    if case in ("missing_shard", "truncated_index", "crc", "input_size"):
        prefix = write_tf_checkpoint(folder / "snap.ckpt", official_tensors)
        if case == "missing_shard":
            (folder / "snap.ckpt.data-00000-of-00001").unlink()
            expect = "missing data shard " + str(folder / "snap.ckpt.data-00000-of-00001")
        elif case == "truncated_index":
            index = folder / "snap.ckpt.index"
            index.write_bytes(index.read_bytes()[:5000])
            expect = "truncated or corrupt checkpoint index"
        elif case == "crc":
            e = TFCheckpoint(prefix).entries["up2/weights"]
            shard = folder / "snap.ckpt.data-00000-of-00001"
            with open(shard, "r+b") as f:
                f.seek(e.offset + 4)
                f.write(b"\x00\x00\x80\x7f")
            expect = "crc32c mismatch in tensor up2/weights"
        else:
            size = ["--input-size", "320x240"]
            expect = "256x192 or 384x288 only"
    elif case == "v1":
        prefix = folder / "resnet_v1_50.ckpt"
        write_table(prefix, [(b"", b""), (b"resnet_v1_50/conv1/weights", b"")])
        expect = "V1 checkpoint"
    elif case == "not_a_checkpoint":
        prefix = folder / "model.pth"
        torch.save({"a": torch.zeros(3)}, prefix)
        expect = "a PyTorch file, not a TensorFlow checkpoint"
    elif case == "another_network":
        prefix = _another_network(official_tensors, folder)
        expect = "missing 5: up3/weights, up3/BatchNorm/gamma"
    else:
        wrong = dict(official_tensors)
        wrong["out/weights"], wrong["out/biases"] = wrong["out/weights"][..., :16], wrong["out/biases"][:16]
        prefix = write_tf_checkpoint(folder / "w.ckpt", wrong)
        expect = "out/biases [16] (ours [17])"
    out = tmp_path / "out.pth"
    rc, err = _cli(capsys, prefix, "--dataset", "coco", *size, "-o", out, "--name", "x")
    assert rc == 2 and err.startswith("error: ") and expect in err, err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".out.pth*"))
    assert not home.exists() or not list(home.iterdir())
    if case == "another_network":
        assert "unexpected 1: extra_head/weights" in err


def test_cli_refuses_output_over_input_and_needs_a_destination(official_posefix_checkpoint, capsys, home):
    rc, err = _cli(capsys, official_posefix_checkpoint, "--dataset", "coco", "--input-size", "256x192")
    assert rc == 2 and "-o OUT.pth" in err
    index = f"{official_posefix_checkpoint}.index"
    rc, err = _cli(capsys, official_posefix_checkpoint, "--dataset", "coco", "-o", index)
    assert rc == 2 and "same file as the input" in err
    shard = f"{official_posefix_checkpoint}.data-00000-of-00001"
    rc, err = _cli(capsys, index, "--dataset", "coco", "-o", shard)
    assert rc == 2 and "same file as the input" in err
