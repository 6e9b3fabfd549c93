"""The Hugging Face hub cache: each model repo's newest snapshot, a model folder or a repo of GGUF files."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from hsviewer.core.model.discovery.folders import files_below
from hsviewer.core.model.discovery.found import FoundModel
from hsviewer.core.model.discovery.gguf_rows import gguf_model
from hsviewer.core.model.discovery.hf_rows import hf_model, is_hf_folder

log = logging.getLogger(__name__)


def hf_cache_models(root: Path) -> Iterator[FoundModel]:
    if not root.is_dir():
        return
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(root)
    except Exception as e:  # CacheNotFound, a file where the folder should be, a permission error
        log.warning("Could not scan the Hugging Face cache %s: %s", root, e)
        return
    for warning in info.warnings:
        log.info("Skipping a damaged Hugging Face cache entry: %s", warning)
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        newest = max(repo.revisions, key=lambda r: r.last_modified)
        folder = Path(newest.snapshot_path)
        # The hub id loads the revision `main` names; any other snapshot loads as a folder.
        source = repo.repo_id if "main" in newest.refs else str(folder)
        if is_hf_folder(folder):
            model = hf_model(folder, name=repo.repo_id, source=source, kind="hf-cache")
            if model is not None:
                yield model
        else:  # a repo of GGUF files
            for path in files_below(folder, 1, ".gguf"):
                file = path.relative_to(folder).as_posix()
                gguf = gguf_model(path, name=f"{repo.repo_id}/{file}", source=str(path), kind="hf-cache")
                if gguf is not None:
                    yield gguf
