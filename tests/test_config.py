import pytest

from posefix_video.config import ModelConfig, dump_config, load_config
from posefix_video.errors import ConfigError


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("depth: 152\ninput_size: [384, 288]\n")
    cfg = load_config(ModelConfig, p, ["layout=posetrack18", "heatmap_sigma=5"])
    assert cfg == ModelConfig(depth=152, input_size=(384, 288), layout="posetrack18", heatmap_sigma=5.0)
    out = tmp_path / "saved.yaml"
    dump_config(cfg, out)
    assert load_config(ModelConfig, out) == cfg


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("depht: 50\n")
    with pytest.raises(ConfigError, match="unknown config key 'depht'"):
        load_config(ModelConfig, p)
    with pytest.raises(ConfigError, match="must be an integer"):
        load_config(ModelConfig, None, ["depth=fifty"])
    with pytest.raises(ConfigError, match="multiples of 32"):
        load_config(ModelConfig, None, ["input_size=[100,75]"])


def test_input_sigma_matches_reference_points():
    assert ModelConfig(input_size=(256, 192)).input_sigma == 7.0
    assert ModelConfig(input_size=(384, 288)).input_sigma == 9.0
