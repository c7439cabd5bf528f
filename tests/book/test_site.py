"""The built book, page by page, in headless Chromium; and the checker itself
on a small site with planted faults."""

from __future__ import annotations

import html
import inspect
import re
import urllib.parse
from pathlib import Path

import pytest
import yaml
from site_check import browser_page, check_site, serve

ROOT = Path(__file__).resolve().parents[2]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part.get("chapters", [])]
    return files


def test_every_page_passes(report):
    assert report.pages, "no pages found"
    assert report.ok, report.summary()


def test_every_toc_entry_is_a_checked_page(report):
    pages = set(report.pages)
    missing = [f for f in _toc_files() if f"{f}.html" not in pages]
    assert not missing, f"in _toc.yml but not built: {missing}"


def test_math_is_typeset_offline(report, site):
    # The concepts chapter is written in math; the checker saw it typeset with
    # no request leaving 127.0.0.1, so MathJax came from the site itself.
    assert "book/concepts.html" in report.math_pages
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_screenshots(report, capsys):
    assert report.screenshots, "no screenshot written"
    for path in report.screenshots:
        assert path.stat().st_size > 10_000, f"{path} looks empty"
        with capsys.disabled():
            print(f"\nscreenshot: {path}")


def test_notebook_pages_launch_in_colab(site):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    owner_repo = urllib.parse.urlsplit(repo["url"]).path.strip("/")
    pages = sorted((site / "notebooks").glob("*.html"))
    if not pages:
        pytest.skip("no notebook chapters built yet")
    for page in pages:
        expected = (
            f"https://colab.research.google.com/github/{owner_repo}/blob/{repo['branch']}/notebooks/{page.stem}.ipynb"
        )
        assert expected in page.read_text(encoding="utf-8"), f"{page.name}: no Colab launch link {expected}"


def test_search_finds_the_layers(site, chromium):
    with serve(site) as base, browser_page(chromium) as page:
        page.goto(base + "search.html?q=EventFixedProb")
        page.wait_for_selector("#search-results ul.search li")
        hits = page.locator("#search-results ul.search li a").evaluate_all("els => els.map(a => a.href)")
    assert any(h.split("#")[0].endswith("book/api.html") for h in hits), hits


def _public_classes():
    import eventlib

    names = {f"eventlib.{n}": getattr(eventlib, n) for n in eventlib.__all__}
    names.update({f"eventlib.ops.{n}": getattr(eventlib.ops, n) for n in dir(eventlib.ops) if not n.startswith("_")})
    conn = eventlib.connectivity
    names.update({f"eventlib.connectivity.{n}": getattr(conn, n) for n in conn.__all__})
    return {name: obj for name, obj in names.items() if inspect.isclass(obj)}


def _words(text: str) -> str:
    """The words of a text, whatever markup or typography surrounds them
    (Sphinx turns ``--`` into a dash and straight quotes into curly ones)."""
    return " ".join(re.findall(r"[A-Za-z0-9_]+", text))


def _rendered_summary(doc: str) -> str:
    """A docstring's first paragraph as Sphinx shows it: a role shows its
    target (its last component with ``~``), literals lose their backticks."""
    summary = inspect.cleandoc(doc).split("\n\n")[0]
    summary = re.sub(
        r":[\w:]+:`(~?)([^`<]*?)(?:\s*<[^>]*>)?`",
        lambda m: m.group(2).split(".")[-1] if m.group(1) else m.group(2),
        summary,
    )
    return _words(summary)


def _page_words(page: Path) -> str:
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page.read_text(encoding="utf-8"), flags=re.S)
    return _words(html.unescape(re.sub(r"<[^>]+>", " ", text)))


def test_api_page_shows_class_docstrings(site):
    """The API page (book/api.md, at book/api.html in the built site) shows
    every public class's docstring summary: a class without its own
    docstring would show only a signature."""
    page = site / "book" / "api.html"
    assert page.is_file(), f"{page} not built"
    words = _page_words(page)
    missing = {}
    for name, cls in _public_classes().items():
        doc = vars(cls).get("__doc__")
        if not doc or _rendered_summary(doc) not in words:
            missing[name] = _rendered_summary(doc or "") or "(no docstring)"
    assert not missing, f"summaries not on {page}: {missing}"


def test_api_summary_matching_sees_sphinx_markup(tmp_path):
    """The matching itself, on a page written as Sphinx renders a summary
    with roles, literals and a dash, and on one that lacks it."""
    doc = "The connectivity of :class:`~eventlib.FixedNumConn`, with ``x @ M`` -- event-driven.\n\n  More."
    page = tmp_path / "api.html"
    page.write_text(
        "<dl><dd><p>The connectivity of <a><code>FixedNumConn</code></a>, with <code>x</code> "
        "<code>@</code> <code>M</code> &#8211; event-driven.</p></dd></dl>"
    )
    assert _rendered_summary(doc) in _page_words(page)
    page.write_text("<dl><dt>class FixedNumConn(in_size, out_size)</dt><dd></dd></dl>")
    assert _rendered_summary(doc) not in _page_words(page)


# -- the checker on a site with planted faults --------------------------------

_GOOD = """<!DOCTYPE html><html><head><title>good</title></head><body>
<h1 id="top">A page</h1><p id="here">target</p>
<a href="index.html">home</a>
</body></html>"""

_BROKEN = """<!DOCTYPE html><html><head><title>broken</title></head><body>
<a href="good.html#here">fine link</a>
<a href="missing.html">broken link</a>
<a href="good.html#nowhere">broken anchor</a>
<a href="#top">anchor on a page that lacks it</a>
<img src="no-such-image.png" alt="">
<script>console.error("planted console error");</script>
<script>throw new Error("planted exception");</script>
<script src="https://cdn.example.invalid/lib.js"></script>
</body></html>"""

_MATH = """<!DOCTYPE html><html><head><title>math</title></head><body>
<p><span class="math">\\(x^2\\)</span> with no MathJax on the page</p>
</body></html>"""


def test_checker_reports_planted_faults(tmp_path: Path, chromium):
    (tmp_path / "index.html").write_text(_GOOD.replace("A page", "Home"))
    (tmp_path / "good.html").write_text(_GOOD)
    (tmp_path / "broken.html").write_text(_BROKEN)
    (tmp_path / "math.html").write_text(_MATH)

    report = check_site(tmp_path, executable=chromium)

    assert report.pages == ["broken.html", "good.html", "index.html", "math.html"]
    by_page = {}
    for p in report.problems:
        by_page.setdefault(p.page, []).append(p)
    assert set(by_page) == {"broken.html", "math.html"}, report.summary()

    found = {(p.kind, p.detail) for p in by_page["broken.html"]}

    def has(kind, pattern):
        return any(k == kind and re.search(pattern, d) for k, d in found)

    assert has("link", r"missing\.html"), report.summary()
    assert has("anchor", r"'nowhere' in good\.html"), report.summary()
    assert has("anchor", r"'top' in broken\.html"), report.summary()
    assert has("image", r"no-such-image\.png"), report.summary()
    assert has("http", r"404 .*no-such-image\.png"), report.summary()
    assert has("console", r"planted console error"), report.summary()
    assert has("js", r"planted exception"), report.summary()
    assert has("external", r"cdn\.example\.invalid"), report.summary()
    assert not has("link", r"good\.html"), "a valid link was reported"
    assert {p.kind for p in by_page["math.html"]} == {"math"}, report.summary()


def test_checker_follows_redirect_pages(tmp_path: Path, chromium):
    # Jupyter Book's index.html is a redirect; one to a missing page must fail.
    (tmp_path / "index.html").write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="refresh" content="0; url=gone.html" /></head></html>'
    )
    report = check_site(tmp_path, executable=chromium)
    kinds = report.kinds()
    assert "link" in kinds and ("http" in kinds or "load" in kinds), report.summary()


def test_api_reference_covers_every_public_name(site):
    import inspect

    import eventlib
    import eventlib.connectivity
    import eventlib.ops

    html = (site / "book" / "api.html").read_text(encoding="utf-8")
    public_ops = [
        n for n in dir(eventlib.ops) if not n.startswith("_") and not inspect.ismodule(getattr(eventlib.ops, n))
    ]
    names = [f"eventlib.{n}" for n in eventlib.__all__ if not inspect.ismodule(getattr(eventlib, n))]
    names += [f"eventlib.ops.{n}" for n in public_ops]
    names += [f"eventlib.connectivity.{n}" for n in eventlib.connectivity.__all__]
    missing = [n for n in names if f'id="{n}"' not in html]
    assert not missing, f"not in the API reference: {missing}"
    for module in ("eventlib", "eventlib.ops", "eventlib.connectivity"):
        assert f'id="module-{module}"' in html, module
