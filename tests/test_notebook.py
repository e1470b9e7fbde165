"""The notebook side: what a researcher sees in Jupyter (cache, cache.show, cache.picture), the errors a typo
gets, TransformerLens's spellings. The last test runs a real notebook through nbclient when Jupyter is installed
(nbclient + ipykernel: about 90 MB, so not in the test extra; `pip install nbclient ipykernel` to run it)."""

import re

import pytest

import minigptoss
from minigptoss.inspector import CaptureError
from minigptoss.model import TokenError


@pytest.fixture(scope="module")
def model():
    return minigptoss.load("sort")


@pytest.fixture(scope="module")
def cache(model):
    with minigptoss.capture() as cache:
        model.forward(model.tokenizer.encode("26023397="))
    return cache


def test_text_is_refused_with_how_to_encode_it(model):
    with pytest.raises(TokenError, match=r"encode the text first, e\.g\. model\.forward\(model\.tokenizer\.encode"):
        model.forward("hello")
    assert model.tokenizer.decode(model.tokenizer.encode("12=")) == "12="


def test_a_capture_pattern_that_matches_nothing_says_so_with_the_closest_names():
    with pytest.raises(CaptureError, match=r"capture\('blocks\.0\.atn\.\*'\) matches no recorded intermediate; closest: "
                                           r"blocks\.0\.attn\.\*"):
        with minigptoss.capture("blocks.0.atn.*"):
            pass
    with pytest.raises(CaptureError, match="closest: logits"):
        minigptoss.capture("logit").__enter__()
    with minigptoss.capture("blocks.*.hook_resid_post", "blocks.0.attn.*"):  # real names and TL names pass
        pass


def test_transformer_lens_shorthands_read_the_same_tensors(cache):
    probs = cache["blocks.0.attn.probs"]
    assert cache["pattern", 0] is probs and cache["blocks.0.attn.pattern"] is probs
    assert cache["blocks.0.attn.hook_pattern"] is probs and cache["resid_post", 1] is cache["blocks.1.resid_post"]
    with pytest.raises(KeyError, match="closest: blocks.0.attn.probs"):
        cache["blocks.0.attn.prob"]
    with pytest.raises(KeyError, match=r"short names are"):
        cache["patern", 0]


def test_the_html_views(cache):
    listing = cache._repr_html_()
    assert f"the {len(cache)} names (click to list)</summary>" in listing  # 104 rows folded
    assert listing.count("text-align:left") >= 4 * len(cache)  # every cell, against the notebook's right-alignment
    picture = cache.picture("blocks.0.attn.probs")._repr_html_()
    assert len(re.findall(r">blocks\.0\.attn\.probs</(?:text|div)>", picture)) == 1  # its name once (the SVG's own title)
    assert 'width="100%"' in picture
    from minigptoss.views.capture import TensorView

    view = TensorView(cache, ("pattern", 0))._repr_html_()
    assert "<svg" in view and "shape" in view and not any(glyph in view for glyph in "▀▄█▓▒░")


def test_a_notebook_shows_the_capture_as_html_and_pictures():
    """Executed by a real kernel: cache.show(...) displays HTML with an SVG (not rich's text blocks, which a
    notebook draws as scattered squares), `cache` a folded left-aligned table, the picture its name once."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    cells = ['import minigptoss\nmodel = minigptoss.load("sort")\n'
             'with minigptoss.capture() as cache:\n    model.forward(model.tokenizer.encode("26023397="))',
             'cache.show("blocks.0.attn.probs")', "cache", 'cache.picture("blocks.0.attn.probs")']
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    show, listing, picture = ([o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
                              for cell in notebook.cells[1:])
    assert len(show) == 1 and "<svg" in show[0].data["text/html"] and "<pre" not in show[0].data["text/html"]
    assert "(click to list)</summary>" in listing[0].data["text/html"]
    assert len(re.findall(r">blocks\.0\.attn\.probs</(?:text|div)>", picture[0].data["text/html"])) == 1
