"""Texts in, token ids out: reading, tokenising and truncating to the model's context."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hsviewer.core.errors import HsviewerError

if TYPE_CHECKING:
    # Only for annotations: the GUI thread calls read_text_file, and it never waits for torch.
    import torch

    from hsviewer.core.model.loading import ModelHandle


def read_text_file(path: str | Path) -> str:
    """A UTF-8 text file, stripped of leading and trailing white space."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a UTF-8 byte order mark is not text
    except FileNotFoundError:
        raise HsviewerError(f"No text file at {path}.") from None
    except UnicodeDecodeError:
        raise HsviewerError(f"{path} is not UTF-8 text.") from None
    except OSError as e:
        raise HsviewerError(f"Could not read {path}: {e.strerror}.") from None
    text = text.strip()
    if not text:
        raise HsviewerError(f"{path} holds no text.")
    return text


@dataclass
class Tokens:
    ids: torch.Tensor  # (1, T) token ids on the model's device
    strings: list[str]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.strings)


def tokenize(handle: ModelHandle, text: str) -> Tokens:
    """Token ids for one text (batch of 1), truncated to the context with a warning."""
    text = (text or "").strip()
    if not text:
        raise HsviewerError("The text is empty.")
    ids = list(handle.tokenizer(text)["input_ids"])
    notes = []
    limit = handle.context_length
    if limit and len(ids) > limit:
        notes.append(f"The text has {len(ids)} tokens; only the first {limit} (the model's context) are used.")
        ids = ids[:limit]
    if len(ids) < 2:
        raise HsviewerError("The text needs at least two tokens: one token has no variance across tokens to reduce.")
    import torch  # here, not at the top: see the note on the imports

    return Tokens(torch.tensor([ids], device=handle.device), token_strings(handle.tokenizer, ids), notes)


def token_strings(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token as text. A byte-level tokenizer splits a character such as '—' over several tokens,
    each of which alone decodes to U+FFFD: those show the bytes they hold instead, as <0xE2>."""
    strings = []
    for i in ids:
        text = tokenizer.decode([i])
        if "\ufffd" in text:
            text = _bytes_shown(tokenizer.convert_ids_to_tokens(i)) or text
        strings.append(text)
    return strings


@functools.cache
def _byte_of() -> dict[str, int]:
    """GPT-2's byte alphabet, character to byte: built once, not per token."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


def _bytes_shown(piece: str) -> str | None:
    """A token's text with the bytes that are no whole character as <0xNN>; None when the token is
    neither byte-level BPE (GPT-2's byte alphabet) nor already a byte token (<0xE2>, SentencePiece)."""
    if re.fullmatch(r"(<0x[0-9A-Fa-f]{2}>)+", piece):
        return piece
    byte_of = _byte_of()
    if not piece or any(char not in byte_of for char in piece):
        return None
    data = bytes(byte_of[char] for char in piece)
    shown = []
    while data:
        try:
            shown.append(data.decode("utf-8"))
            break
        except UnicodeDecodeError as e:
            shown.append(data[: e.start].decode("utf-8"))
            shown.append("".join(f"<0x{b:02X}>" for b in data[e.start : e.end]))
            data = data[e.end :]
    return "".join(shown)


def shuffled(tokens: Tokens, seed: int) -> Tokens:
    """The same tokens in a random order, the same for the same seed (torch.randperm on a seeded CPU
    generator): the shuffled control of a sweep and the shuffled pass of a reproduction agree."""
    import torch

    order = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(seed))
    strings = [tokens.strings[i] for i in order.tolist()]
    return Tokens(tokens.ids[:, order.to(tokens.ids.device)], strings)
