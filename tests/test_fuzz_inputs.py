"""Fuzzing the inputs: tiny_weights' safetensors header and config.json, mutated (JSON types, nesting, numbers,
offsets, names, raw bytes), either load (and then run a forward pass) or raise the project's own error.

Any other exception (TypeError, RecursionError, OverflowError, NumPy's ValueError, ...) is a bug the command
line would print as a traceback. Examples: twice the profile's max_examples (80 by default, a few seconds;
1000 under HYPOTHESIS_PROFILE=thorough).
"""

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

import minigptoss
from minigptoss.errors import MinigptossError

SAFETENSORS = (minigptoss.TINY_WEIGHTS / "model.safetensors").read_bytes()
HEADER_LEN = int.from_bytes(SAFETENSORS[:8], "little")
HEADER = json.loads(SAFETENSORS[8:8 + HEADER_LEN])
DATA = SAFETENSORS[8 + HEADER_LEN:]
CONFIG = json.loads((minigptoss.TINY_WEIGHTS / "config.json").read_text())
NAMES = sorted(HEADER)

numbers = st.one_of(st.integers(-2**70, 2**70), st.sampled_from([0, 1, -1, 2**31, 2**63, 2**64, 10**30]),
                    st.floats(allow_nan=True, allow_infinity=True))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=6),
                    st.sampled_from(["BF16", "U8", "F32", "I64", "bool", "__metadata__"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                           max_leaves=8)


@st.composite
def header_mutation(draw):
    header = json.loads(json.dumps(HEADER))
    name = draw(st.sampled_from(NAMES))
    how = draw(st.sampled_from(["field", "entry", "offset", "shape", "rename", "drop", "add", "deep"]))
    if how == "field":
        header[name][draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = draw(json_values)
    elif how == "entry":
        header[name] = draw(json_values)
    elif how == "offset":
        header[name]["data_offsets"][draw(st.integers(0, 1))] += draw(st.integers(-2**40, 2**40))
    elif how == "shape":
        shape = header[name]["shape"]
        shape[draw(st.integers(0, len(shape) - 1))] = draw(numbers)
    elif how == "rename":
        header[draw(st.sampled_from(["block.4.attn.sinks", "block.-1.attn.sinks", "x", "block.99999999999.x",
                                     name + " ", name.upper()]))] = header.pop(name)
    elif how == "drop":
        del header[name]
    elif how == "add":
        header[draw(st.text(max_size=12))] = draw(json_values)
    else:
        depth = draw(st.sampled_from([10, 1000, 100_000]))
        return json.dumps(header).replace(f'"{name}": ', f'"{name}": ' + "[" * depth, 1).encode() + b"]" * depth
    return json.dumps(header).encode()


@st.composite
def config_mutation(draw):
    config = dict(CONFIG)
    key = draw(st.sampled_from(sorted(config)))
    how = draw(st.sampled_from(["value", "number", "drop", "add", "whole"]))
    if how == "value":
        config[key] = draw(json_values)
    elif how == "number":
        config[key] = draw(numbers)
    elif how == "drop":
        del config[key]
    elif how == "add":
        config[draw(st.sampled_from(["model_type", "rope_scaling", "num_local_experts", "layer_types", "x"]))] = \
            draw(json_values)
    else:
        return json.dumps(draw(json_values)).encode()
    return json.dumps(config).encode()


def corrupt(draw_bytes: bytes, position: int, byte: int) -> bytes:
    """One byte replaced (a flipped character, a stray non-UTF-8 byte)."""
    if not draw_bytes:
        return draw_bytes
    position %= len(draw_bytes)
    return draw_bytes[:position] + bytes([byte]) + draw_bytes[position + 1:]


@settings(max_examples=2 * settings().max_examples, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.one_of(st.just(None), header_mutation()), config=st.one_of(st.just(None), config_mutation()),
       flip=st.one_of(st.none(), st.tuples(st.booleans(), st.integers(0, 2**20), st.integers(0, 255))))
def test_mutated_checkpoints_load_or_raise_only_the_projects_errors(header, config, flip):
    header = json.dumps(HEADER).encode() if header is None else header
    config = json.dumps(CONFIG).encode() if config is None else config
    if flip is not None:
        in_header, position, byte = flip
        header, config = (corrupt(header, position, byte), config) if in_header else (header, corrupt(config, position, byte))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + DATA)
        (folder / "config.json").write_bytes(config)
        try:
            model = minigptoss.load(folder)
            model.forward([1, 2, 3])
        except MinigptossError as error:
            assert "\n" not in str(error)
