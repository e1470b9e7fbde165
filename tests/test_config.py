"""Config: presets match the facts sheet; config.json round trips; a bad field is one error naming it."""

import dataclasses
import json

import pytest

from minigptoss.config import GPT_OSS_20B, GPT_OSS_120B, TINY, Config, ConfigError


def test_presets_match_the_facts_sheet():
    assert (GPT_OSS_20B.num_hidden_layers, GPT_OSS_20B.num_experts) == (24, 32)
    assert (GPT_OSS_120B.num_hidden_layers, GPT_OSS_120B.num_experts) == (36, 128)
    for c in (GPT_OSS_20B, GPT_OSS_120B):
        assert (c.vocab_size, c.hidden_size, c.intermediate_size, c.head_dim) == (201088, 2880, 2880, 64)
        assert (c.num_attention_heads, c.num_key_value_heads, c.sliding_window, c.experts_per_token) == (64, 8, 128, 4)
        assert (c.rope_theta, c.rope_scaling_factor, c.rope_ntk_alpha, c.rope_ntk_beta) == (150000, 32, 1, 32)
        assert (c.initial_context_length, c.swiglu_limit) == (4096, 7.0)


@pytest.mark.parametrize("config", [GPT_OSS_20B, GPT_OSS_120B, TINY])
def test_json_round_trip(tmp_path, config):
    config.to_json(tmp_path / "config.json")
    assert Config.from_json(tmp_path / "config.json") == config
    assert list(json.loads((tmp_path / "config.json").read_text())) == [f.name for f in dataclasses.fields(Config)]


def write(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_unknown_field_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown field 'num_layers'"):
        Config.from_json(write(tmp_path, GPT_OSS_20B.to_dict() | {"num_layers": 3}))


def test_missing_field_is_named(tmp_path):
    data = GPT_OSS_20B.to_dict()
    del data["rope_ntk_beta"]
    with pytest.raises(ConfigError, match="missing field 'rope_ntk_beta'"):
        Config.from_json(write(tmp_path, data))


@pytest.mark.parametrize("field, value, message", [
    ("hidden_size", "2880", "must be an integer"), ("num_key_value_heads", 7, "multiple"),
    ("intermediate_size", 100, "multiple of 32"), ("experts_per_token", 40, "must not exceed"),
    ("head_dim", 4, "YaRN"), ("swiglu_limit", None, "must be a number")])
def test_bad_values_are_named(tmp_path, field, value, message):
    with pytest.raises(ConfigError, match=f"{field}.*{message}|{message}.*{field}"):
        Config.from_json(write(tmp_path, GPT_OSS_20B.to_dict() | {field: value}))


def test_unreadable_and_invalid_json(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        Config.from_json(tmp_path / "absent.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.from_json(tmp_path / "config.json")


def test_sliding_and_full_layers():
    assert [GPT_OSS_20B.window(n) for n in range(3)] == [128, 0, 128]
    assert dataclasses.replace(TINY, sliding_window=0).window(0) == 0
