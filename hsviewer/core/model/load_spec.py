"""How to load a model, checked once: the one value the CLI, the app and the API hand to iter_load and plan_load.

No torch here: the app's dialog builds a LoadSpec on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsviewer.core.choices import check_device
from hsviewer.core.errors import HsviewerError
from hsviewer.core.model.default import DEFAULT_MODEL
from hsviewer.core.model.memory import DTYPES, STREAMS


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    """A model source and how to load it; a bad choice is refused when the spec is built, before anything is read.

    device: None lets the load choose (cuda when available, else cpu). dtype "auto": float32 when the
    memory plan fits, else bfloat16. device_map "auto" spreads a large model over devices (accelerate).
    memory_budget: bytes to plan for instead of what is free. stream: "auto" streams the weights from disk
    when the plan does not fit, "always" streams, "never" refuses. threads: CPU threads; 0 leaves torch's choice.
    """

    source: str = DEFAULT_MODEL
    dtype: str = "auto"
    device: str | None = None
    device_map: str | None = None
    trust_remote_code: bool = False
    memory_budget: int | None = None
    stream: str = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        source = str(self.source).strip()
        if not source:
            raise HsviewerError("No model given.")
        if self.dtype not in DTYPES:  # the caller's mistake, not a damaged cache to rebuild
            raise HsviewerError(f"Unknown dtype {self.dtype!r}: use {', '.join(DTYPES)}.")
        check_stream(self.stream, self.device_map)
        _check_count(self.threads, "Threads", 0)
        if self.memory_budget is not None:
            _check_count(self.memory_budget, "The memory budget (bytes)", 1)
        object.__setattr__(self, "source", source)  # frozen: one spelling however given
        object.__setattr__(self, "device", check_device(self.device))  # meta, a typo: refused here

    @property
    def thread_count(self) -> int | None:
        """threads as use_threads takes them: None for torch's own choice."""
        return self.threads or None


def check_stream(stream: str, device_map: str | None) -> None:
    if stream not in STREAMS:
        raise HsviewerError(f"Stream must be one of {', '.join(STREAMS)}; got {stream!r}.")
    if stream == "always" and device_map:
        raise HsviewerError("--stream always and --device-map place the weights each their own way: choose one.")


def _check_count(value: object, what: str, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise HsviewerError(f"{what} must be a whole number of at least {least}; got {value!r}.")
