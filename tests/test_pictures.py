"""Pictures: views/svg.py's SVG, views/report.py's HTML page (`step --export`), and a capture's notebook display.

SVG is parsed with xml.etree (well-formed, escaped), HTML with html.parser (tags balanced); the checks read the
tooltips (<title>), labels and cell values back out of the markup.
"""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from rich.console import Console

from helpers import check_html, top_level_svgs

import minigptoss
from minigptoss.attention import kv_head_of
from minigptoss.cli import build_parser, main
from minigptoss.cli import step as stepper
from minigptoss.views import svg
from minigptoss.views.report import report_html
from minigptoss.views.steps import hand_decode

SVG = "{http://www.w3.org/2000/svg}"
TOKENS = [72, 101, 108, 108, 111, 44, 32, 60, 38, 62, 33, 10]  # "Hello, <&>!\n": 12 > the window of 8


def parse(svg_text: str) -> ET.Element:
    return ET.fromstring(svg_text)


def titles(root: ET.Element) -> list[str]:
    """Every tooltip of the picture (the document's own title first)."""
    return [t.text for t in root.iter(f"{SVG}title")]


def texts(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter(f"{SVG}text")]


@pytest.fixture(scope="module")
def model():
    return minigptoss.load(minigptoss.TINY_WEIGHTS)


@pytest.fixture(scope="module")
def cache(model):
    with minigptoss.capture() as recorded:
        model.forward(TOKENS)
    return recorded


# -- views/svg.py --------------------------------------------------------------------------------------------------

def test_heatmap_has_a_tooltip_per_cell_escaped_labels_and_a_legend():
    matrix = np.array([[1.0, 2.5], [-3.0, -np.inf]])
    root = parse(svg.heatmap_svg(matrix, ["a<b", "&c"], ["x", "y\"z"], title="m <1>"))
    tips = titles(root)
    assert tips[0] == "m <1>"
    assert tips[1:] == ["a<b × x: value 1", "a<b × y\"z: value 2.5", "&c × x: value -3", "&c × y\"z: value masked"]
    labels = texts(root)
    assert {"a<b", "&c", "x", "y\"z"} <= set(labels)
    assert "-3" in labels and "3" in labels and "0" in labels  # the signed legend: -3 .. 0 .. 3
    fills = [r.get("fill") for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert fills[3] == svg.MASKED_FILL and len(set(fills)) == 4
    assert root.find(f"{SVG}path") is not None  # the masked cell's hatch


def test_a_large_heatmap_is_averaged_down_and_says_so():
    matrix = np.arange(200 * 300, dtype=float).reshape(200, 300)
    root = parse(svg.heatmap_svg(matrix))
    cells = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(cells) == svg.MAX_CELLS * svg.MAX_CELLS
    assert any("averaged over blocks" in (t or "") for t in texts(root))
    first = np.mean(matrix[:3, :4])  # 200 rows in 96 blocks: the first 8 hold 3 rows; 300 columns: 12 hold 4
    assert titles(root)[0] == f"0 × 0: value {svg.number(first)}"


def test_attention_draws_every_head_with_its_sink_column_and_the_masked_band(cache, model):
    c = model.config
    probs, sink, mask = (cache[f"blocks.0.attn.{k}"] for k in ("probs", "sink_mass", "mask"))
    assert c.is_sliding(0) and not mask[10, 0]  # key 0 is outside query 10's window
    labels = [chr(t) for t in TOKENS]
    root = parse(svg.attention_svg(probs, sink, mask, kv_head_of(c.num_attention_heads, c.num_key_value_heads),
                                   labels, title="layer 0"))
    heads = [t for t in texts(root) if re.fullmatch(r"h\d+ kv\d+", t or "")]
    assert heads == [f"h{h} kv{h // c.queries_per_kv_head}" for h in range(c.num_attention_heads)]
    tips = titles(root)[1:]
    T = len(TOKENS)
    assert len(tips) == c.num_attention_heads * T * (T + 1)  # per head: a sink cell and T keys per query
    assert f"h3 kv0 · query 10 10 ! → sink: p = {svg.number(sink[3, 10])}" in tips
    assert f"h5 kv1 · query 9 9 > → key 7 7 <: p = {svg.number(probs[5, 9, 7])}" in tips
    assert "h5 kv1 · query 10 10 ! → key 0 0 H: masked" in tips  # outside the window
    assert "h0 kv0 · query 0 0 H → key 1 1 e: masked" in tips  # the future
    masked = sum(1 for t in tips if t.endswith(": masked"))
    assert masked == c.num_attention_heads * int((~mask).sum())
    assert "sink" in texts(root)


def test_attention_can_draw_chosen_heads_and_the_last_queries_only(cache):
    probs = cache["blocks.1.attn.probs"]
    root = parse(svg.attention_svg(probs, heads=[2], limit=4))
    tips = titles(root)
    assert len(tips) == 4 * 5 and all(t.startswith("h2 ·") for t in tips)
    assert tips[0].startswith("h2 · query 8 8 → sink")


def test_router_grid_colours_the_chosen_experts_and_counts_tokens(cache, model):
    ids, weights = cache["blocks.2.moe.router.expert_ids"], cache["blocks.2.moe.router.weights"]
    root = parse(svg.router_svg(ids, weights, model.config.num_experts, [chr(t) for t in TOKENS]))
    tips = titles(root)
    chosen = [t for t in tips if "weight" in t]
    assert len(chosen) == ids.size
    assert f"4 o → e{ids[4, 0]}: weight {svg.number(weights[4, 0])} (choice 1 of 2)" in chosen
    load = np.bincount(ids.reshape(-1), minlength=model.config.num_experts)
    labels = texts(root)
    counts = labels[labels.index("tokens") + 1:][:model.config.num_experts]
    assert counts == [str(n) for n in load]


def test_bars_put_negative_values_left_of_zero_with_their_values():
    root = parse(svg.bars_svg(["a", "b"], [-2.0, -0.5], value_name="log p"))
    assert titles(root) == ["a: log p -2", "b: log p -0.5"]
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    zero = float(root.find(f"{SVG}line").get("x1"))
    assert all(float(b.get("x")) + float(b.get("width")) == pytest.approx(zero, abs=0.1) for b in bars)
    assert float(bars[0].get("width")) == pytest.approx(4 * float(bars[1].get("width")), abs=0.2)


def test_two_bar_charts_can_share_one_scale():
    widths = lambda drawing: [float(r.get("width")) for r in parse(drawing).iter(f"{SVG}rect")
                              if r.find(f"{SVG}title") is not None]
    assert widths(svg.bars_svg(["a"], [1.0], length=100)) == [100.0]
    assert widths(svg.bars_svg(["a"], [1.0], length=100, high=4.0)) == [25.0]


def test_every_picture_has_an_opaque_light_background_first_so_it_reads_on_a_dark_page():
    """GitHub's dark mode shows an SVG on a dark page: the dark labels need the picture's own white ground."""
    for drawing in [svg.bars_svg(["a"], [1.0]), svg.heatmap_svg(np.eye(2)), svg.grid_svg([svg.bars_svg(["a"], [1.0])])]:
        first = next(iter(parse(drawing)))
        first = first if first.tag != f"{SVG}title" else list(parse(drawing))[1]
        assert first.tag == f"{SVG}rect" and first.get("fill") == "#ffffff" and first.get("width") == "100%"


def test_candidates_show_probability_and_log_probability_of_the_top_tokens():
    logits = np.log(np.array([0.1, 0.6, 0.3]))
    root = parse(svg.candidates_svg(logits, ["x", "y", "z"], top=2))
    tips = titles(root)
    assert "1 y: p 0.6" in tips and "2 z: p 0.3" in tips
    assert f"p 0.6   log p {svg.number(np.log(0.6))}" in texts(root)
    assert not any(t.startswith("0 x") for t in tips)
    # the bars grow with the probability: the most likely token's is the longest, even when its log p is ~0
    logits = np.array([12.0, 0.0, 1.0, 2.0])  # p(0) = 0.99994, log p(0) = -6e-05
    bars = [float(r.get("width")) for r in parse(svg.candidates_svg(logits, list("abcd"), top=4)).iter(f"{SVG}rect")
            if r.find(f"{SVG}title") is not None]
    assert bars == sorted(bars, reverse=True) and bars[0] > 10 * bars[-1]


# -- views/report.py and `step --export` ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def session(model):
    args = build_parser().parse_args(["step", "--weights", "tiny", "-n", "1", "--tokens", ",".join(map(str, TOKENS))])
    return stepper.open_session(args, Console(file=None, record=True), model=model)


def test_the_report_is_one_well_formed_page_with_a_section_and_pictures_per_step(session):
    every = stepper.all_steps(session.config.num_hidden_layers)
    steps = [s for s in every if s.layer in (None, 0)]
    page = report_html(session, steps, top=5)
    checker = check_html(page)
    assert checker.ids == [s.name for s in steps]
    assert "script" not in checker.tags and "link" not in checker.tags  # self-contained, no JS needed
    pictures = top_level_svgs(page)
    assert len(pictures) >= 4
    for block in pictures:
        parse(block)  # every picture is well-formed XML
    assert page.count('<a href="#') == len(steps)
    attention = page.split('<section id="blocks.0.attn">')[1].split("</section>")[0]
    assert "h7 kv1" in attention and "→ sink: p = " in attention and ": masked</title>" in attention
    router = page.split('<section id="blocks.0.moe.router">')[1].split("</section>")[0]
    ids = session.cache["blocks.0.moe.router.expert_ids"]
    assert f"→ e{ids[0, 0]}: weight" in router
    mlp1 = page.split('<section id="blocks.0.moe.mlp1">')[1].split("</section>")[0]
    e = int(ids[0, 0])
    decoded = hand_decode(session.weights["block.0.mlp.mlp1_weight.blocks"][e, 0, 0],
                          int(session.weights["block.0.mlp.mlp1_weight.scales"][e, 0, 0]))
    assert f"<td>0x{decoded['bytes'][0]:02X}</td>" in mlp1 and f"<td>{decoded['weights'][0]}</td>" in mlp1
    logits = page.split('<section id="logits">')[1].split("</section>")[0]
    best = int(np.argmax(session.cache["logits"][-1]))
    assert f"<title>{best} " in logits and "log p" in logits
    assert "<details><summary>source</summary>" in attention
    # a picture is not followed by the terminal's text view of the same thing (its block glyphs read as barcodes)
    for name in ("blocks.0.attn", "blocks.0.moe.router", "blocks.0.moe.mlp1", "logits"):
        section = page.split(f'<section id="{name}">')[1].split("</section>")[0]
        assert '<pre class="rich">' not in section.split("<details>")[0], name
    assert "<th>sink S_h</th>" in attention  # what only the terminal view said: the sink logits, as a table
    rope = page.split('<section id="blocks.0.attn.rope">')[1].split("</section>")[0]
    assert '<pre class="rich">' in rope.split("<details>")[0]  # no picture there: the terminal view stays
    assert all('width="100%"' in block.split(">", 1)[0] for block in pictures)  # scaled to the page's width


def test_step_export_writes_index_html_and_prints_its_path(tmp_path, capsys):
    folder = tmp_path / "report"
    status = main(["step", "--weights", "tiny", "-n", "1", "--tokens", "72,101,108", "--only", "attn,output", "--export",
                   str(folder)])
    out, err = capsys.readouterr()
    assert status == 0, err
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert str(folder / "index.html") in out.replace("\n", "")
    assert check_html(page).ids == ["timeline", "pass-1"] + [f"pass-1-blocks.{n}.attn{part}" for n in range(4)
                                                             for part in ("", ".out")] + ["pass-1-logits"]
    assert len(top_level_svgs(page)) == 4 + 1  # attention per layer, the candidates


def test_step_export_onto_a_file_is_one_line_and_status_2(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("x")
    assert main(["step", "--weights", "tiny", "--tokens", "72", "--export", str(target)]) == 2
    err = capsys.readouterr().err
    assert "--export" in err and "not a folder" in err and len(err.strip().splitlines()) == 1


# -- the notebook display -----------------------------------------------------------------------------------------

def test_a_capture_displays_in_a_notebook_as_a_table_and_a_picture(cache):
    html = cache._repr_html_()  # what IPython's HTML formatter calls
    assert isinstance(html, str)
    checker = check_html(html)
    assert "table" in checker.tags and "svg" in checker.tags
    assert "<code>blocks.3.moe.router.expert_ids</code>" in html and "(12, 2)" in html
    assert "the k experts chosen per token" in html
    assert "h7 kv1" in html  # the first attention pattern, drawn


def test_a_capture_without_attention_lists_its_names_only(model):
    with minigptoss.capture("embed") as only:
        model.forward(TOKENS[:3])
    html = only._repr_html_()
    assert "<code>embed</code>" in html and "<svg" not in html
    check_html(html)


def test_pictures_choose_a_drawing_by_what_the_tensor_is(cache):
    probs = cache.picture("blocks.0.attn.hook_pattern")  # TransformerLens's name works too
    assert isinstance(probs._repr_svg_(), str) and isinstance(probs._repr_html_(), str)
    root = parse(probs.svg)
    assert "0 H" in texts(root) and "h4 kv1" in texts(root)  # token labels from the recorded tokens
    one = parse(cache.picture("blocks.0.attn.probs", head=6).svg)
    assert {t.split(" ·")[0] for t in titles(one)[1:]} == {"h6 kv1"}
    router = titles(parse(cache.picture("blocks.0.moe.router.expert_ids").svg))
    assert sum("weight" in t for t in router) == cache["blocks.0.moe.router.expert_ids"].size
    logits = titles(parse(cache.picture("logits").svg))
    best = int(np.argmax(cache["logits"][-1]))
    assert any(t.startswith(f"{best} ") and ": p " in t for t in logits)
    embed = titles(parse(cache.picture("embed").svg))
    assert f"0 H × 5: embed {svg.number(cache['embed'][0, 5])}" in embed
    inv = titles(parse(cache.picture("rope.inv_freq").svg))
    assert f"[1]: inv_freq {svg.number(cache['rope.inv_freq'][1])}" in inv
    scores = titles(parse(cache.picture("blocks.1.attn.scores").svg))
    assert sum(t.endswith("masked") for t in scores) == 8 * int((~cache["blocks.1.attn.mask"]).sum())
    parse(cache.picture("blocks.0.moe.mlp1").svg)  # (T, k, 2I): flattened after the token axis


def test_a_picture_of_an_unrecorded_name_is_a_key_error(cache):
    with pytest.raises(KeyError, match="blocks.9.attn.probs"):
        cache.picture("blocks.9.attn.probs")


def label_crowding(root: ET.Element) -> list[tuple[float, float]]:
    """(spacing, font size) of every pair of neighbouring axis labels: row labels (right-aligned, one above the
    other) and column labels (rotated, side by side). A label larger than its cell has spacing < font size."""
    default = float(root.get("font-size", svg.FONT))
    rows, columns = {}, {}
    for text in root.iter(f"{SVG}text"):
        size = float(text.get("font-size", default))
        x, y = float(text.get("x")), float(text.get("y"))
        if "rotate" in text.get("transform", ""):
            columns.setdefault(round(y, 1), []).append((x, size))
        elif text.get("text-anchor") == "end":
            rows.setdefault(round(x, 1), []).append((y, size))
    pairs = []
    for line in (*rows.values(), *columns.values()):
        line.sort()
        pairs += [(b[0] - a[0], max(a[1], b[1])) for a, b in zip(line, line[1:])]
    return pairs


@pytest.mark.parametrize("T", [9, 30, 48, 64])
def test_axis_labels_are_never_larger_than_the_cells_they_name(T):
    """At 30 tokens the labels were font-size 8 on 7 px cells and overlapped: every label's font now fits its
    cell, and where cells are under 6 px only every other (third, ...) label is written."""
    rng = np.random.default_rng(T)
    probs = rng.random((8, T, T))
    probs /= probs.sum(-1, keepdims=True)
    labels = [f"tok{i}" for i in range(T)]
    pictures = [svg.attention_svg(probs, probs[:, :, 0], np.tril(np.ones((T, T), bool)), [0] * 4 + [1] * 4, labels),
                svg.heatmap_svg(rng.random((T, 3 * T)), labels, [str(i) for i in range(3 * T)]),
                svg.heatmap_svg(rng.random((T, 200)), labels, [str(i) for i in range(200)], cell=10)]
    for drawing in pictures:
        pairs = label_crowding(parse(drawing))
        assert pairs and all(spacing >= size - 0.11 for spacing, size in pairs), min(pairs)  # (0.1 px rounding)
