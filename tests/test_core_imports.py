"""hsviewer.core stays cheap to import: its names load their modules (and torch) on first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hsviewer.core

ROOT = Path(__file__).resolve().parents[1]


def imported_after(statement: str) -> set[str]:
    """The top-level modules a fresh interpreter holds after running `statement` (this checkout first on the path)."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    return set(out.stdout.split())


def test_importing_the_core_imports_neither_torch_nor_transformers():
    modules = imported_after("import hsviewer.core")
    assert "hsviewer" in modules  # the check ran in this checkout's package
    assert {"torch", "transformers"} & modules == set()


# The GUI thread imports these (errors, Reduction and lowrank when it builds its tabs, read_text_file
# when a text file is opened), and it never waits for torch.
@pytest.mark.parametrize("module", ["errors", "linalg.lowrank", "linalg.reduction", "passes.text"])
def test_modules_the_gui_thread_imports_leave_torch_out(module):
    assert {"torch", "transformers"} & imported_after(f"import hsviewer.core.{module}") == set()


@pytest.mark.parametrize("name", hsviewer.core.__all__)
def test_every_exported_name_resolves(name):
    value = getattr(hsviewer.core, name)
    module = hsviewer.core._EXPORTS[name]
    assert value is getattr(sys.modules[f"hsviewer.core.{module}"], name)
    assert name in dir(hsviewer.core)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        hsviewer.core.no_such_name  # noqa: B018


def test_listing_models_leaves_torch_out():
    # `hsviewer models` reads headers only; importing torch for it cost two seconds.
    modules = imported_after("from hsviewer.core.model.discovery.scan import find_models\nfind_models()")
    assert {"torch", "transformers"} & modules == set()


def test_the_command_line_parser_leaves_numpy_and_torch_out():
    # The parser's choices live in core.choices: `hsviewer --help` need not load numpy, let alone torch.
    modules = imported_after("import hsviewer.cli\nhsviewer.cli.build_parser()")
    assert {"numpy", "torch", "transformers"} & modules == set()
