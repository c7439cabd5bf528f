"""Fixtures for the tests about the notebooks (``make test-notebooks``).

They read ``notebooks/*.ipynb`` with nbformat and PyYAML, which only the docs
environment has: elsewhere (the library's own environments) they are not
collected.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

if importlib.util.find_spec("nbformat") is None or importlib.util.find_spec("yaml") is None:
    collect_ignore_glob = ["test_*.py"]


def load_tool():
    """``tools/notebooks.py`` as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("eventlib_notebook_tool", ROOT / "tools" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tool():
    return load_tool()
