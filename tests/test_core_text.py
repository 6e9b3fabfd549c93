"""Reading text files and tokenising with the model's context limit."""

from __future__ import annotations

import pytest

from hsviewer.core import HsviewerError, read_text_file
from hsviewer.core.passes.text import tokenize


def test_utf8_file_is_read_and_stripped(tmp_path):
    path = tmp_path / "text.txt"
    body = "Het Stedelijk — ˈsteːdələk myˈzeːjʏm, ‘modern’ art. 美術館"
    path.write_text(f"\n\n  \t{body}\r\n  \n", encoding="utf-8")
    assert read_text_file(path) == body
    assert read_text_file(str(path)) == body


def test_inner_whitespace_is_kept(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("  first line\n\n  second line  \n", encoding="utf-8")
    assert read_text_file(path) == "first line\n\n  second line"


def test_utf8_byte_order_mark_is_not_part_of_the_text(tmp_path):
    # Windows editors often save UTF-8 with a BOM; it is not a character of the text.
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffthe museum".encode())
    assert read_text_file(path) == "the museum"


def test_missing_file(tmp_path):
    with pytest.raises(HsviewerError, match="No text file"):
        read_text_file(tmp_path / "absent.txt")


def test_directory(tmp_path):
    with pytest.raises(HsviewerError, match="Could not read"):
        read_text_file(tmp_path)


@pytest.mark.parametrize(
    "data", [b"caf\xe9 au lait", b"\xff\xfe\x00t\x00h\x00e", b"\x80\x81\x82"], ids=["latin-1", "utf-16", "garbage"]
)
def test_not_utf8(tmp_path, data):
    path = tmp_path / "latin.txt"
    path.write_bytes(data)
    with pytest.raises(HsviewerError, match="not UTF-8"):
        read_text_file(path)


@pytest.mark.parametrize("content", ["", "   ", "\n\n\t \r\n", "\u3000\u2003"])
def test_whitespace_only(tmp_path, content):
    path = tmp_path / "blank.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(HsviewerError, match="no text"):
        read_text_file(path)


def test_tokenize_words(tiny_model):
    tokens = tokenize(tiny_model, "  the museum of modern art  ")
    assert tokens.strings == ["the", "museum", "of", "modern", "art"]
    assert tokens.ids.shape == (1, 5)
    assert tokens.ids[0].tolist() == tiny_model.tokenizer("the museum of modern art")["input_ids"]
    assert tokens.warnings == []
    assert len(tokens) == 5


def test_tokenize_truncates_to_the_context(tiny_model):
    assert tiny_model.context_length == 64
    tokens = tokenize(tiny_model, " ".join(["museum"] * 100))
    assert tokens.ids.shape == (1, 64)
    assert len(tokens.warnings) == 1
    assert "100" in tokens.warnings[0] and "64" in tokens.warnings[0]


def test_tokenize_exactly_the_context_has_no_warning(tiny_model):
    tokens = tokenize(tiny_model, " ".join(["art"] * 64))
    assert tokens.ids.shape == (1, 64)
    assert tokens.warnings == []


@pytest.mark.parametrize("text", ["", "   ", "\n", None])
def test_tokenize_empty(tiny_model, text):
    with pytest.raises(HsviewerError, match="empty"):
        tokenize(tiny_model, text)


def test_tokenize_one_token(tiny_model):
    with pytest.raises(HsviewerError, match="two tokens"):
        tokenize(tiny_model, "museum")
