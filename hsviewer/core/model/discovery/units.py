"""Counts and sizes as a listing shows them: 135.0M parameters, 98.4 MB."""

from __future__ import annotations


def human_count(n: int | None, estimated: bool = False) -> str:
    """135.0M, 7.2B; '' for None; '~' before an estimate."""
    if n is None:
        return ""
    for scale, unit in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= scale:
            text = f"{n / scale:.1f}{unit}"
            break
    else:
        text = str(n)
    return ("~" if estimated else "") + text


def human_bytes(n: int | None) -> str:
    """98.4 MB, 4.7 GB (powers of 1000, as Ollama and LM Studio show them); '' for None."""
    if n is None:
        return ""
    for scale, unit in ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "kB")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
