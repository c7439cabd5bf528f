"""Measured numbers in the prose come from a computation, never from typing.

The Benchmarks page takes its numbers and tables from ``benchmarks/results/*.json`` at build time
(``book/_ext/bench_results.py`` marks them with the classes ``bench-value`` and
``bench-generated``); chapters 7 and 8 paste theirs from the notebooks' cells with MyST-NB glue
(``pasted-text`` and ``pasted-inline`` spans). This test reads the built HTML and fails when the
visible prose of those pages — outside code cells and their outputs, glued spans and generated
content — holds a number with a decimal point, a "×" or a "%": such a number was typed, and
drifts from the results as soon as they change.

It needs only the built site (``_build/html``), not a browser; like the other tests here it skips
when the site is not built, unless ``EVENTLIB_BOOK_REQUIRED=1``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import REQUIRED, SITE

PAGES = ["book/benchmarks.html", "notebooks/07_performance.html", "notebooks/08_scale.html"]

# Elements whose text is not typed prose: code and cell outputs, glued values, generated values and
# tables, and the page's navigation around the article.
SKIP_CLASSES = {
    "cell_input",  # a notebook's code
    "cell_output",  # what the code printed or drew
    "highlight",  # code blocks
    "pasted-text",  # {glue:text}
    "pasted-inline",  # {glue}
    "bench-value",  # {bench}, book/_ext/bench_results.py
    "bench-generated",  # {bench-table}
    "headerlink",
}
SKIP_TAGS = {"code", "pre", "script", "style"}

# Constants of the setup, not measurements (each is a parameter the benchmarks were given).
ALLOWED = [
    r"\b0\.1 ms\b",  # the time step of the COBA network
    # the activity levels every operator benchmark runs, when the text says so
    r"\b(0\.1|1|5|20) ?% (of (the )?inputs )?(activity|active)\b",
    r"\b(probability|p =) 0\.\d+",  # a connection probability the benchmark or network is built with
]
SUSPECT = re.compile(r"\d+\.\d+|\d\s*×|×\s*\d|\d\s*%")


class _Prose(HTMLParser):
    """The text of <article>, less the skipped elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []  # per open element: is it (or an ancestor) skipped?
        self.in_article = 0
        self.chunks: list[str] = []

    VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "source", "col", "area", "base"}

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        classes = set((dict(attrs).get("class") or "").split())
        skipped = (self.stack[-1] if self.stack else False) or tag in SKIP_TAGS or bool(classes & SKIP_CLASSES)
        self.stack.append(skipped)
        if tag == "article":
            self.in_article += 1

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if self.stack:
            self.stack.pop()
        if tag == "article":
            self.in_article -= 1

    def handle_data(self, data):
        if self.in_article and not (self.stack and self.stack[-1]):
            self.chunks.append(data)


def typed_numbers(html: str) -> list[str]:
    """Every suspect number in the prose of one page, with some context."""
    parser = _Prose()
    parser.feed(html)
    text = re.sub(r"\s+", " ", " ".join(parser.chunks))
    for pattern in ALLOWED:
        text = re.sub(pattern, "", text)
    return [text[max(0, m.start() - 40) : m.end() + 20].strip() for m in SUSPECT.finditer(text)]


@pytest.fixture(scope="module")
def built() -> Path:
    if not (SITE / "index.html").is_file():
        if REQUIRED:
            pytest.fail(f"no built book at {SITE} (run `make book`)")
        pytest.skip(f"no built book at {SITE}")
    return SITE


@pytest.mark.parametrize("page", PAGES)
def test_no_typed_numbers(built, page):
    path = built / page
    assert path.is_file(), f"{page} is not in the built book"
    found = typed_numbers(path.read_text(encoding="utf-8"))
    assert found == [], f"{page}: numbers typed into the prose (glue or generate them):\n" + "\n".join(found)


# -- the check can fail --------------------------------------------------------------------------

PLANTED = """<html><body><nav>0.5 % of the nav is not checked</nav><article>
<p>eventlib is <span class="pasted-text">72×</span> faster at 0.1 % activity,
and <span class="bench-value">4.5×</span> at 20 % activity; a step is 0.1 ms.</p>
<div class="cell_output"><pre>rate 1.27 23.5%</pre></div>
<div class="bench-generated"><table><tr><td>0.0351</td></tr></table></div>
<p>The code <code>conn_num=0.05</code> is code.</p>
{bad}
</article></body></html>"""


@pytest.mark.parametrize(
    "bad",
    [
        "<p>procedural took 1.27 times the time</p>",
        "<p>about 40× faster</p>",
        "<p>the peer is 15 % slower</p>",
        "<p>about 40 × faster</p>",
        "<h2>Speed-up of 2.5</h2>",
        "<figcaption>measured 3.4 ms</figcaption>",
    ],
)
def test_planted_typed_number_is_caught(tmp_path, bad):
    page = tmp_path / "bad.html"
    page.write_text(PLANTED.format(bad=bad), encoding="utf-8")
    assert typed_numbers(page.read_text(encoding="utf-8")) != []


def test_planted_page_without_typed_numbers_passes(tmp_path):
    page = tmp_path / "good.html"
    page.write_text(PLANTED.format(bad="<p>every number above came from a computation</p>"), encoding="utf-8")
    assert typed_numbers(page.read_text(encoding="utf-8")) == []
