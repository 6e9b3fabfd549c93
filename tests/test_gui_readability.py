"""What a new user reads off the panels (issue 10, points 9 and 10): legends clear of the data, panel
letters in reading order, panels exported by their titles, a Σ colour bar that reaches σ1, readable
byte tokens, a note when colour is dropped, a read-out that moves nothing, dialogs wide enough."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.support import wait_job

# The fixtures `settings`, `window` and `loaded` (the real main window, errors recorded) are in conftest.py.


@pytest.fixture(scope="module")
def byte_tokenizer():
    """GPT-2's byte-level BPE with its 256 byte tokens and no merges: every byte a token of its own."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {char: i for i, char in enumerate(bytes_to_unicode().values())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def test_byte_tokens_show_their_bytes_not_a_replacement_character(byte_tokenizer):
    from hsviewer.core.passes.text import token_strings

    text = "café — ok"
    ids = byte_tokenizer(text)["input_ids"]
    assert any("\ufffd" in byte_tokenizer.decode([i]) for i in ids)  # what a label showed before
    strings = token_strings(byte_tokenizer, ids)
    assert not any("\ufffd" in s for s in strings)
    expected = [chr(b) if b < 0x80 else f"<0x{b:02X}>" for b in text.encode("utf-8")]  # one token per byte
    assert strings == expected


def test_sentencepiece_byte_tokens_keep_their_own_name():
    from hsviewer.core.passes.text import token_strings

    class ByteFallback:  # a SentencePiece tokenizer's byte-fallback piece, as transformers answers for it
        def decode(self, ids):
            return "\ufffd"

        def convert_ids_to_tokens(self, i):
            return "<0xE2>"

    assert token_strings(ByteFallback(), [7]) == ["<0xE2>"]


@pytest.mark.parametrize(
    ("mode", "colour"), [("RGB", True), ("RGBA", True), ("L", False), ("P-grey", False), ("P-colour", True)]
)
def test_a_colour_image_is_said_to_be_shown_in_greyscale(tmp_path, mode, colour):
    from PIL import Image

    from hsviewer.core.analyses.image.run import load_image

    rng = np.random.default_rng(0)
    grey = (rng.random((20, 30)) * 255).astype(np.uint8)
    if mode.startswith("P"):
        img = Image.fromarray(grey).convert("P")  # a palette of greys
        if mode == "P-colour":
            img.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    elif mode == "L":
        img = Image.fromarray(grey)
    else:
        img = Image.fromarray(np.stack([grey, grey[::-1], grey[:, ::-1]], axis=-1)).convert(mode)
    path = tmp_path / "picture.png"
    img.save(path)
    loaded = load_image(path, downsample=1)
    assert loaded.colour == (img.mode if colour else "")
    assert loaded.warnings == []  # the usual way in, not a warning


def test_the_image_tab_says_when_colour_is_dropped(qtbot, window, tmp_path):
    from PIL import Image

    rgb = np.zeros((24, 32, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "red.png")
    with wait_job(qtbot, window, "image"):
        window.open_image(str(tmp_path / "red.png"))
    assert "colour image (RGB) shown in greyscale" in window.image_tab.info.text()
    assert window.image_tab.result.to_dict()["colour"] == "RGB"


def test_the_sigma_colour_bar_covers_every_singular_value(qtbot, window, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    pixels = (rng.random((120, 160)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "noise.png")
    with wait_job(qtbot, window, "image"):
        window.open_image(str(tmp_path / "noise.png"))
    s = np.linalg.svd(pixels.astype(np.float64), compute_uv=False)  # by hand: sigma_1 is about 10^4
    assert s[0] > 1e4
    diagonal = np.diag(window.image_tab.sigma.image.image)
    np.testing.assert_allclose(diagonal, np.log10(s), atol=1e-4)  # coloured by log10 sigma
    bar = window.image_tab.sigma.bar
    low, high = (10.0**v for v in bar.levels())
    assert high >= s[0] * (1 - 1e-6) and low <= s[-1] * (1 + 1e-6)
    ticks = bar.axis._tickLevels[0]  # the axis reads sigma itself, at its log10 position
    assert len(ticks) >= 2
    for position, label in ticks:
        assert float(label.replace(",", "")) == pytest.approx(10**position, rel=0.05)


def test_the_hidden_state_sigma_bar_reaches_sigma_1(qtbot, loaded):
    tab = loaded.hidden_tab
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    x = tab.result.original
    s = np.linalg.svd(x - x.mean(0) - x.mean(1)[:, None] + x.mean(), compute_uv=False)  # double centring
    np.testing.assert_allclose(np.diag(tab.sigma.image.image)[:3], np.log10(s[:3]), atol=1e-3)
    assert 10 ** tab.sigma.bar.levels()[1] >= s[0] * (1 - 1e-4)
    assert len(tab.sigma.bar.axis._tickLevels[0]) >= 2  # less than a decade: its two ends are labelled


def _intersect(a, b) -> bool:
    return a.intersects(b) and not a.intersected(b).isEmpty()


def test_sweep_legends_never_cover_the_data(qtbot, loaded):
    tab = loaded.sweep_tab
    loaded.resize(1280, 800)
    loaded.tabs.setCurrentWidget(tab)
    for box in tab.control_boxes.values():
        box.setChecked(True)
    tab.grid_field.setText("90")
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    qtbot.wait(100)  # the layout settles
    counts = {}
    for plot in (tab.components, tab.norms, tab.loss, tab.kl):
        legend, data = plot.legend.sceneBoundingRect(), plot.getViewBox().sceneBoundingRect()
        assert legend.height() > 0 and not _intersect(legend, data), plot.titleLabel.text
        assert plot.sceneBoundingRect().contains(legend)  # part of the panel: exported with it
        counts[plot.titleLabel.text[:2]] = len(plot.legend.items)
    assert counts == {"A)": 5, "B)": 2, "C)": 7, "D)": 5}  # reduced, 4 controls; C: + clean, clean shuffled
    tab.views.setCurrentWidget(tab.measures_view)  # each measure: the plain run and the 4 controls
    qtbot.wait(100)
    for title, plot in tab.measures_view.plots().items():
        legend, data = plot.legend.sceneBoundingRect(), plot.getViewBox().sceneBoundingRect()
        assert legend.height() > 0 and not _intersect(legend, data), title
        assert plot.sceneBoundingRect().contains(legend) and len(plot.legend.items) == 5, title


def test_sweep_panels_are_lettered_in_reading_order(loaded):
    tab = loaded.sweep_tab
    loaded.tabs.setCurrentWidget(tab)
    loaded.resize(1280, 800)
    panels = [p for p in tab.plots().values() if p.titleLabel.text[1:2] == ")"]
    order = sorted(panels, key=lambda p: (round(p.sceneBoundingRect().top()), p.sceneBoundingRect().left()))
    assert [p.titleLabel.text[0] for p in order] == list("ABCDEFG")


def test_the_empty_grid_panel_says_how_to_fill_it(qtbot, loaded):
    tab = loaded.sweep_tab
    assert tab.grid_note.isVisible() and "Grid thresholds" in tab.grid_note.textItem.toPlainText()
    (x0, x1), (y0, y1) = tab.grid_map.plot.viewRange()
    assert x0 <= tab.grid_note.pos().x() <= x1 and y0 <= tab.grid_note.pos().y() <= y1  # in view
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    assert tab.grid_note.isVisible()  # a sweep without thresholds leaves the panel empty
    tab.grid_field.setText("80, 99")
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    assert not tab.grid_note.isVisible()


def test_panels_are_exported_by_their_titles(qtbot, loaded, tmp_path):
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((24, 32)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    with wait_job(qtbot, loaded, "image"):
        loaded.open_image(str(tmp_path / "a.png"))
    with wait_job(qtbot, loaded, "hidden"):
        loaded.hidden_tab.run()
    with wait_job(qtbot, loaded, "sweep"):
        loaded.sweep_tab.run()
    for tab in (loaded.image_tab, loaded.hidden_tab, loaded.sweep_tab):
        for name, plot in tab.plots().items():
            assert plot.titleLabel.text.startswith(name), (name, plot.titleLabel.text)
    loaded.tabs.setCurrentWidget(loaded.sweep_tab)
    loaded.export_figure(str(tmp_path / "kl.svg"), "D) KL divergence")
    assert "KL divergence" in (tmp_path / "kl.svg").read_text()


def test_the_hover_readout_keeps_its_height_and_the_controls_stay_put(qtbot, loaded):
    tab = loaded.hidden_tab
    loaded.resize(1280, 800)
    loaded.tabs.setCurrentWidget(tab)
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    qtbot.wait(50)
    tab.hover.setText("short")
    qtbot.wait(50)
    before = (tab.hover.height(), tab.run_button.mapTo(loaded, tab.run_button.rect().topLeft()))
    long = tab.hover_text("Difference", 3, 17, -0.125) + " " + "a very long token " * 30
    tab.hover.setText(long)
    qtbot.wait(50)
    after = (tab.hover.height(), tab.run_button.mapTo(loaded, tab.run_button.rect().topLeft()))
    assert after == before
    assert tab.hover.full_text() == long and tab.hover.toolTip() == long  # all of it, on demand


def test_the_url_dialog_is_wide_enough_for_a_url_and_its_title(window):
    from hsviewer.gui.dialogs import url_dialog

    dialog = url_dialog(window)
    dialog.show()
    try:
        url = "https://upload.wikimedia.org/wikipedia/commons/thumb/a/a9/Example.jpg/640px-Example.jpg"
        metrics = dialog.fontMetrics()
        assert dialog.width() >= metrics.horizontalAdvance(url) * 0.8
        assert dialog.width() >= metrics.horizontalAdvance(dialog.windowTitle()) + 200  # room for WM buttons
    finally:
        dialog.close()
        dialog.deleteLater()


def test_the_model_box_shows_a_long_hub_id_whole(qtbot, window):
    from hsviewer.gui.forms import LONG_MODEL_NAME

    window.resize(1280, 800)
    window.tabs.setCurrentWidget(window.hidden_tab)
    qtbot.wait(50)
    combo = window.hidden_tab.picker.combo
    combo.setCurrentText(LONG_MODEL_NAME)
    edit = combo.lineEdit()
    assert edit.width() >= edit.fontMetrics().horizontalAdvance(LONG_MODEL_NAME) + 4


def test_the_sweep_csv_gives_each_run_its_own_clean_loss(qtbot, loaded, tmp_path):
    tab = loaded.sweep_tab
    tab.control_boxes["shuffled"].setChecked(True)
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    loaded.tabs.setCurrentWidget(tab)
    loaded.export_data(str(tmp_path / "sweep.csv"))
    with open(tmp_path / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    result = tab.result
    clean = {row["run"]: float(row["clean_loss"]) for row in rows}
    assert clean["main"] == pytest.approx(result.clean_loss, abs=1e-6)
    assert clean["shuffled"] == pytest.approx(result.controls["shuffled"].clean_loss, abs=1e-6)
    assert abs(clean["shuffled"] - clean["main"]) > 1e-6


def _widest_stroke(svg: str) -> float:
    """The widest line an SVG reader that ignores vector-effect (librsvg, cairosvg) would draw, in pixels:
    each stroked shape's width scaled by the largest stretch of its group's transform."""
    import re
    import xml.etree.ElementTree as ET

    widest = 0.0
    for group in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}g"):
        shapes = [c for c in group if c.tag.rpartition("}")[2] in ("path", "polyline", "rect")]
        if not shapes or group.get("stroke", "none") == "none":
            continue
        numbers = re.findall(r"[-+]?[\d.]+(?:e[-+]?\d+)?", group.get("transform", "matrix(1,0,0,1,0,0)"))
        a, b, c, d = (float(v) for v in numbers[:4])
        stretch = float(np.linalg.svd(np.array([[a, c], [b, d]]), compute_uv=False)[0])
        widest = max(widest, stretch * float(group.get("stroke-width", "1")))
    return widest


def test_exported_svg_lines_stay_thin_in_every_reader(qtbot, loaded, tmp_path):
    tab = loaded.sweep_tab
    tab.control_boxes["shuffled"].setChecked(True)  # a dashed clean-loss line across the loss panel
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    loaded.tabs.setCurrentWidget(tab)
    for name in ("C) Impact of reduction on loss", "B) Impact on logits and hidden states", None):
        path = tmp_path / "panel.svg"
        loaded.export_figure(str(path), *([name] if name else []))
        svg = path.read_text()
        assert svg.count("<polyline") + svg.count("<path") > 20  # curves, markers, axes: still vectors
        assert _widest_stroke(svg) <= 3.0, name  # pens are at most 2 pixels wide on screen


def test_a_legend_takes_two_columns_when_its_panel_is_wide_enough(qtbot, loaded):
    tab = loaded.sweep_tab
    loaded.resize(1280, 800)
    loaded.tabs.setCurrentWidget(tab)
    qtbot.wait(100)
    legend = tab.norms.legend  # "Hidden states" and "Logits" fit side by side in a panel 300 pixels wide
    assert tab.norms.getViewBox().width() > 250
    qtbot.waitUntil(lambda: legend.columnCount == 2)


def test_line_panels_label_their_axes_in_their_own_units(window):
    # pyqtgraph's SI prefix turned "KL (nats)" into "KL (nats) (x0.001)" for small values
    sweep = window.sweep_tab
    sweep.kl.setYRange(0.0002, 0.0004, padding=0)
    axis = sweep.kl.getAxis("left")
    axis.setRange(0.0002, 0.0004)
    assert axis.labelString().count("(") == 1, axis.labelString()
