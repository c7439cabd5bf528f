"""Fixtures for the check of the built book (``make test-book``).

These tests need the built site (``_build/html``), Debian's Chromium and the
``playwright`` client, which only the docs environment has. Elsewhere (the
library's own environments) they are not collected; under ``make test-book``
(``EVENTLIB_BOOK_REQUIRED=1``) anything missing is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
REQUIRED = os.environ.get("EVENTLIB_BOOK_REQUIRED") == "1"

if importlib.util.find_spec("playwright") is None and not REQUIRED:
    collect_ignore_glob = ["test_*.py"]


def _missing(what: str):
    if REQUIRED:
        pytest.fail(f"{what} (run `make book`; .ci/run installs chromium)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def chromium() -> str:
    from site_check import CHROMIUM

    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} not found: apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
def site(chromium) -> Path:
    if not (SITE / "index.html").is_file():
        _missing(f"no built book at {SITE}")
    return SITE


@pytest.fixture(scope="session")
def report(site, chromium):
    """One visit of every page, with screenshots of the home page and of the
    core notebook chapter (or the first notebook built)."""
    from site_check import check_site, default_screenshots

    result = check_site(site, executable=chromium, screenshots=default_screenshots(site, SCREENSHOTS))
    for path in result.screenshots:
        print(f"screenshot: {path}")
    return result
