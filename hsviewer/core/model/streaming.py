"""Streamed execution: a model whose weights stay in their safetensors files and come in a module at a time.

transformers' from_pretrained with a device_map that sends the model to "disk" builds the skeleton on
the meta device and, for safetensors checkpoints, indexes each tensor where it lies (no copy);
accelerate's AlignDevicesHook then reads each module's weights before its forward and puts them
back on the meta device after it. The tensors are cast to the skeleton's precision as they are
read, so the weights stay stored as they are (bf16 mostly) and are computed in what the plan picks,
one module at a time. Everything hsviewer installs on the decoder blocks (output hooks, the
row-cutting pre-hooks, the replayed prefix, whose stubbed blocks read nothing) sits around that.

On the CPU the skeleton and the index are built here (from_config on the meta device, transformers'
own index of the files with its key renamings, then accelerate's dispatch_model), not by
from_pretrained: that reads every tensor once while loading and keeps the files mapped, so an 8B
model's load peaked at 11 GB resident for weights it then left on disk.

What accelerate does not do, and this module does:
- count the bytes read, for the plan's estimate and the benchmark;
- stop a pass within a module when asked (Cancel): the reader raises StreamStopped;
- keep the input and output embeddings in memory as stored: accelerate would read and upcast the
  whole vocabulary-sized head for every chunk of logits (once per layer in a sweep); here the lookup
  upcasts the rows it picks, and the head a chunk of vocabulary rows at a time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import torch
from accelerate.hooks import remove_hook_from_module
from accelerate.utils import OffloadedWeightsLoader, PrefixedDataset
from safetensors import safe_open
from torch import nn

from hsviewer.core.errors import HsviewerError, StreamStopped
from hsviewer.core.model.anatomy import BlockOutput, replace_hidden
from hsviewer.core.model.memory import HEAD_CHUNK_BYTES

_read = [0]  # bytes read from the weights' files by every streamed model in this process


def bytes_read() -> int:
    """Bytes of weights read from disk (or the page cache) by streamed models so far."""
    return _read[0]


def check_safetensors(folder: Path | None, name: str) -> None:
    """Streaming reads safetensors files in place: refuse a checkpoint in any other format."""
    if folder is not None and not any(folder.glob("*.safetensors")):
        raise HsviewerError(
            f"{name} is stored as pytorch_model.bin, not safetensors: hsviewer streams only safetensors "
            "checkpoints. Convert it (transformers: model.save_pretrained(folder, safe_serialization=True)) or "
            "give it the memory to load whole (--stream never with a larger --memory-budget)."
        )


DISK = {"": "disk"}  # the CPU's device_map: every module's weights stay in the files


def from_files(folder: Path, config: Any, dtype: torch.dtype, trust_remote_code: bool = False) -> Any:
    """The model's skeleton in `dtype` on the meta device, its weights indexed where they lie in the
    folder's safetensors files and read a module at a time; refused when a weight is not in the files."""
    from accelerate import dispatch_model, init_empty_weights
    from transformers import AutoModelForCausalLM
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.integrations.accelerate import accelerate_disk_offload

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    files = sorted(str(f) for f in folder.glob("*.safetensors"))
    index_file = folder / "model.safetensors.index.json"
    sharded = json.loads(index_file.read_text()) if index_file.is_file() else None
    mapping = get_model_conversion_mapping(model, None, None)
    index = accelerate_disk_offload(model, None, files, DISK, sharded, mapping)
    missing = sorted(name for name, _ in model.named_parameters() if name not in index)
    if missing:
        raise HsviewerError(
            f"{folder.name} cannot be streamed: {len(missing)} of its weights ({missing[0]}, ...) are not stored "
            "under the names the model expects. Load it whole (--stream never)."
        )
    dispatch_model(model, device_map=DISK, main_device="cpu", offload_index=index)
    return model


def device_map(device: str, gpu_bytes: int | None = None) -> tuple[Any, dict[Any, int] | None]:
    """from_pretrained's device_map and max_memory for a streamed model: on the CPU all of it on disk
    (read in place, a module at a time); on a GPU as much as `gpu_bytes` holds there, the rest in
    CPU memory, and beyond that on disk (accelerate moves each module to the GPU for its forward)."""
    if not device.startswith("cuda"):
        return DISK, None
    if gpu_bytes is None:  # no plan (the files do not say the model's size): accelerate's own balance
        return "auto", None
    import psutil

    from hsviewer.core.model.memory import MARGIN

    index = torch.device(device).index or 0
    cpu = int(MARGIN * psutil.virtual_memory().available)
    return "auto", {index: max(int(gpu_bytes), 0), "cpu": cpu}


class Stream:
    """A streamed model's weight reader: counts what it reads, and stops a pass once `stop` is set (the GUI's
    worker makes it each job's cancel flag)."""

    def __init__(self, stored_dtype: str) -> None:
        self.stored_dtype = stored_dtype
        self.stop = threading.Event()

    def request_stop(self) -> None:
        """Make the pass under way stop at its next module's read, raising StreamStopped."""
        self.stop.set()


class _Reader(OffloadedWeightsLoader):
    """accelerate's loader over the checkpoint's own safetensors files, counting and stoppable."""

    def __init__(self, loader: OffloadedWeightsLoader, stream: Stream) -> None:
        super().__init__(state_dict=loader.state_dict, save_folder=loader.save_folder, index=loader.index)
        self.device = loader.device
        self.stream = stream

    def __getitem__(self, key: str) -> torch.Tensor:
        if self.stream.stop.is_set():
            raise StreamStopped
        entry = self.index.get(key) or {}
        if key in self.state_dict or entry.get("safetensors_file") is None:
            return super().__getitem__(key)
        tensor = self.stored(key)
        return tensor.to(getattr(torch, entry["dtype"])) if "dtype" in entry else tensor

    def stored(self, key: str) -> torch.Tensor:
        """The tensor as the file stores it."""
        entry = self.index[key]
        with safe_open(entry["safetensors_file"], framework="pt", device="cpu") as f:
            tensor = f.get_tensor(entry.get("weight_name", key))
        _read[0] += tensor.nbytes
        return tensor


def attach(model: nn.Module, stored_dtype: str) -> Stream:
    """Swap the model's offload loaders for counting, stoppable readers; on the CPU keep the embeddings in memory."""
    stream = Stream(stored_dtype)
    readers: dict[int, _Reader] = {}
    for module in model.modules():
        weights = getattr(getattr(module, "_hf_hook", None), "weights_map", None)
        if isinstance(weights, PrefixedDataset) and isinstance(weights.dataset, OffloadedWeightsLoader):
            loader = weights.dataset
            if not isinstance(loader, _Reader):
                weights.dataset = readers.setdefault(id(loader), _Reader(loader, stream))
    _keep_embeddings(model)
    return stream


def _keep_embeddings(model: Any) -> None:
    """The input embedding and the LM head in memory as stored, computed in the skeleton's precision."""
    kept: dict[tuple[str, str], nn.Parameter] = {}
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        hook = getattr(module, "_hf_hook", None)
        weights = getattr(hook, "weights_map", None)
        if not isinstance(module, (nn.Embedding, nn.Linear)) or not getattr(hook, "offload", False):
            continue  # an embedding of its own kind, or one accelerate placed on a device: left to accelerate
        if hook is None or str(hook.execution_device) != "cpu" or not isinstance(weights, PrefixedDataset):
            continue  # on a GPU accelerate moves it there for its forward
        index = getattr(weights.dataset, "index", {})
        if not all(weights.prefix + name in index for name, _ in module.named_parameters()):
            continue  # held in CPU memory by accelerate (a GPU's offload), not read from a file
        compute = module.weight.dtype
        remove_hook_from_module(module)
        for name, _ in list(module.named_parameters(recurse=False)):
            key = weights.prefix + name
            entry = weights.dataset.index[key]  # a _Reader's: attach() swapped it in
            ident = (entry["safetensors_file"], entry.get("weight_name", key))
            if ident not in kept:
                kept[ident] = nn.Parameter(weights.dataset.stored(key), requires_grad=False)
            setattr(module, name, kept[ident])
        if isinstance(module, nn.Embedding):
            module.register_forward_hook(lambda m, args, out, dtype=compute: out.to(dtype))
        else:
            cast(nn.Module, module).forward = _chunked_linear(module, compute)  # as hooks.replay_prefix stubs blocks


def _chunked_linear(module: nn.Linear, compute: torch.dtype) -> Any:
    """The head's forward in `compute` precision from its stored weight, a chunk of output rows at a time."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        weight, bias = module.weight, module.bias
        rows = max(1, HEAD_CHUNK_BYTES // (weight.shape[1] * 4))
        x = x.to(compute)
        out = x.new_empty((*x.shape[:-1], weight.shape[0]))
        for start in range(0, weight.shape[0], rows):
            part = slice(start, start + rows)
            b = None if bias is None else bias[part].to(compute)
            out[..., part] = nn.functional.linear(x, weight[part].to(compute), b)
        return out

    return forward


@contextmanager
def first_block_only(blocks: Sequence[nn.Module]) -> Iterator[None]:
    """The blocks after the first pass their input through, in the first one's output format: the load's
    probes (is it causal, is the head separable) are about the attention mask and the head, and reading
    every block for their four tokens would read a streamed model from disk once per probe."""
    seen: dict[str, BlockOutput] = {}

    def record(module: nn.Module, args: tuple[Any, ...], output: BlockOutput) -> None:
        seen["output"] = output

    def through(*args: Any, **kwargs: Any) -> BlockOutput:
        hidden = args[0] if args else kwargs.get("hidden_states", next(iter(kwargs.values())))
        return replace_hidden(seen["output"], hidden)

    hook = blocks[0].register_forward_hook(record)
    saved = [block.__dict__.get("forward") for block in blocks[1:]]
    try:
        for block in blocks[1:]:
            block.forward = through
        yield
    finally:
        hook.remove()
        for block, old in zip(blocks[1:], saved, strict=True):
            if old is None:
                block.__dict__.pop("forward", None)
            else:
                block.forward = old
