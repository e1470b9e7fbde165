"""names.py declares every recorded intermediate once; the forward pass, the debugger's steps and its source
excerpts are held to it."""

import pytest

import minigptoss
from minigptoss.cli.step import build_steps
from minigptoss.names import BY_NAME, INTERMEDIATES, declared, recorded_names
from minigptoss.views.steps import SOURCES, source_of


@pytest.fixture(scope="module")
def recorded():
    model = minigptoss.random_model(minigptoss.TINY, seed=0)
    with minigptoss.capture() as cache:
        model.forward([1, 2, 3, 4, 5])
    return cache, model.config


def test_forward_records_exactly_the_declared_names_in_order(recorded):
    cache, config = recorded
    assert list(cache) == recorded_names(config.num_hidden_layers)


def test_every_recorded_tensor_has_its_declared_shape(recorded):
    cache, c = recorded
    T = 5
    size = {"T": T, "Tk": T, "H": c.hidden_size, "nq": c.num_attention_heads, "nkv": c.num_key_value_heads,
            "2": 2, "d": c.head_dim, "d/2": c.head_dim // 2, "E": c.num_experts, "k": c.experts_per_token,
            "I": c.intermediate_size, "2I": 2 * c.intermediate_size, "V": c.vocab_size,
            "nq d": c.num_attention_heads * c.head_dim,
            "(nq+2nkv)d": (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim}
    for name, value in cache.items():
        dims = declared(name).shape.split(" bool")[0].strip("()").split(", ")
        expected = tuple(size[dim.rstrip(",")] for dim in dims)
        assert value.shape == expected, (name, declared(name).shape)


def test_every_step_reads_and_writes_declared_names_and_every_name_is_shown(recorded):
    cache, _ = recorded
    steps = build_steps(cache)
    shown = {name for step in steps for name in (*step.inputs, *step.outputs)}
    step_names = {step.name for step in steps}
    for name in shown:
        declared(name)  # raises KeyError for an undeclared name
    for name in cache:
        assert name in shown, f"{name} is recorded but no debugger step shows it"
        entry = declared(name)
        layer = name.split(".")[1] if name.startswith("blocks.") else "0"
        assert entry.step.replace("N", layer) in step_names, f"{name}: declared step {entry.step} does not exist"


def test_declared_names_are_unique_and_unknown_names_are_refused():
    assert len(BY_NAME) == len(INTERMEDIATES)
    assert declared("blocks.12.attn.probs").shape == "(nq, T, Tk)"
    with pytest.raises(KeyError, match="not a recorded intermediate"):
        declared("blocks.0.attn.pattern")


def test_every_source_excerpt_is_found_by_its_markers():
    for kind, sources in SOURCES.items():
        for func, needles in sources:
            code, _, _ = source_of(func, needles)
            for needle in needles or ():
                assert needle in code, (kind, needle)


def test_a_marker_that_stops_matching_is_an_error_not_the_whole_function():
    from minigptoss import model
    with pytest.raises(LookupError, match="no longer contains"):
        source_of(model.forward, ("this line is not in forward",))
