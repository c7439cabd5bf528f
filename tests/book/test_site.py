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


# -- figures, wording and the phone's width, on planted pages -----------------

_FIGURES = """<!DOCTYPE html><html><head><title>figures</title></head><body>
<figure><img src="wide.png" alt="A black bar."><figcaption>A bar, at its size.</figcaption></figure>
<figure><img src="wide.png" alt="" style="width: 200px"><figcaption> </figcaption></figure>
<div class="cell_output"><img src="wide.png" alt="A bar with no figure around it."></div>
</body></html>"""

_WORDING = """<!DOCTYPE html><html><head><title>wording</title></head><body>
<p>The speed-up target met the plan of this session.</p>
<details><summary>Show solution</summary><pre># NBVAL_IGNORE_OUTPUT
print(1)</pre></details>
</body></html>"""

_WIDE = """<!DOCTYPE html><html><head><title>wide</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>
<p>Fits.</p><div class="too-wide" style="width: 900px">a wide block</div>
</body></html>"""

_WIDE_OUTPUT = """<!DOCTYPE html><html><head><title>output</title>
<style>.cell_output { max-width: 600px; overflow-x: auto; }</style></head><body>
<div class="cell_output"><pre>fits</pre></div>
<div class="cell_output"><pre>{line}</pre></div>
</body></html>""".replace("{line}", "x" * 200)

_SCROLLS = """<!DOCTYPE html><html><head><title>scrolls</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>
<p>Fits.</p>
<div style="overflow-x: auto; max-width: 100%"><table style="width: 900px"><tr><td>wide</td></tr></table></div>
</body></html>"""


def _png(path: Path, width: int, height: int) -> None:
    from PIL import Image

    image = Image.new("RGB", (width, height), "white")
    image.paste((0, 0, 0), (20, 20, width - 20, height - 20))
    image.save(path)


def test_checker_reports_figure_wording_and_overflow_faults(tmp_path: Path, chromium):
    _png(tmp_path / "wide.png", 400, 100)
    (tmp_path / "index.html").write_text(_GOOD.replace("A page", "Home"))
    (tmp_path / "figures.html").write_text(_FIGURES)
    (tmp_path / "wording.html").write_text(_WORDING)
    (tmp_path / "wide.html").write_text(_WIDE)
    (tmp_path / "scrolls.html").write_text(_SCROLLS)
    (tmp_path / "output.html").write_text(_WIDE_OUTPUT)

    report = check_site(tmp_path, executable=chromium)
    found = {(p.page, p.kind, p.detail) for p in report.problems}

    def has(page, kind, pattern):
        return any(pg == page and k == kind and re.search(pattern, d) for pg, k, d in found)

    # figures: the second has no caption, no alt text and is shown at half its
    # natural width (10 pt text read as 5 pt); the third has no caption
    assert has("figures.html", "caption", r"wide\.png"), report.summary()
    assert has("figures.html", "alt", r"wide\.png"), report.summary()
    assert has("figures.html", "figure-size", r"200 px wide of its natural 400 px.*5\.0 pt"), report.summary()
    assert sum(p.kind == "caption" for p in report.problems) == 2, report.summary()
    assert sum(p.kind == "figure-size" for p in report.problems) == 1, report.summary()
    # wording: visible text, and text in a folded solution
    assert has("wording.html", "wording", r"target met"), report.summary()
    assert has("wording.html", "wording", r"this session"), report.summary()
    assert has("wording.html", "wording", r"NBVAL_IGNORE_OUTPUT"), report.summary()
    # overflow at 390 px: the bare wide block, not the table in its scroller
    assert has("wide.html", "overflow", r"at 390 px the page is \d+ px wide.*div\.too-wide"), report.summary()
    # an output line wider than the column at 1280 px
    assert has("output.html", "wide", r"px in 600: x{60}"), report.summary()
    assert sum(p.kind == "wide" for p in report.problems) == 1, report.summary()
    pages = {"figures.html", "wording.html", "wide.html", "output.html"}
    assert {p.page for p in report.problems} == pages, report.summary()


def test_figure_font_matches_the_book_style():
    import site_check

    from eventlib.plotting import FONT_PT

    assert site_check.FIGURE_FONT_PT == FONT_PT


# -- the course page against the chapters, and the student copies -------------

_TIME_NEEDED = re.compile(r"Time needed\s*:?\s*about (\d+) minutes of reading and (\d+) minutes of exercises")


def _text(html_text: str) -> str:
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", html_text, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def schedule_disagreements(site: Path) -> list[str]:
    """Where the course page's chapter table and the chapters' "Time needed"
    lines differ, or a chapter is missing from the table."""
    course = (site / "book" / "course.html").read_text(encoding="utf-8")
    table = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", course, re.S):
        student = re.search(r'href="\.\./student/([0-9a-z_]+)\.ipynb"', row)
        cells = [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if student and len(cells) >= 4:
            table[student.group(1)] = (cells[2], cells[3])
    problems = []
    for page in sorted((site / "notebooks").glob("*.html")):
        found = _TIME_NEEDED.search(_text(page.read_text(encoding="utf-8")))
        if found is None:
            problems.append(f"{page.name}: no 'Time needed' line")
            continue
        if page.stem not in table:
            problems.append(f"{page.name}: not in the course page's chapter table")
        elif table[page.stem] != found.groups():
            problems.append(
                f"{page.name}: the chapter says {found.groups()} minutes (reading, exercises), "
                f"the course page {table[page.stem]}"
            )
    return problems


def student_copy_problems(site: Path) -> list[str]:
    """Each chapter page links to its student copy, which exists in the site
    and holds the exercises without solutions or outputs."""
    import nbformat

    problems = []
    for page in sorted((site / "notebooks").glob("*.html")):
        href = f"../student/{page.stem}.ipynb"
        if f'href="{href}"' not in page.read_text(encoding="utf-8"):
            problems.append(f"{page.name}: no link to {href}")
        path = site / "student" / f"{page.stem}.ipynb"
        if not path.is_file():
            problems.append(f"{page.name}: {path.relative_to(site)} not in the site")
            continue
        nb = nbformat.read(path, as_version=4)
        cells = nb.cells
        if any("solution" in c.metadata.get("tags", []) for c in cells):
            problems.append(f"{path.name}: a solution cell in the student copy")
        if any(c.cell_type == "code" and c.outputs for c in cells):
            problems.append(f"{path.name}: outputs left in the student copy")
        if not any("exercise" in c.metadata.get("tags", []) for c in cells):
            problems.append(f"{path.name}: no exercise in the student copy")
    return problems


def test_course_page_agrees_with_the_chapters(site):
    assert schedule_disagreements(site) == []


def test_student_copies_are_published_and_linked(site):
    assert student_copy_problems(site) == []
    course = (site / "book" / "course.html").read_text(encoding="utf-8")
    for page in sorted((site / "notebooks").glob("*.html")):
        assert f'href="../student/{page.stem}.ipynb"' in course, f"the course page does not link {page.stem}"


def _planted_course_site(root: Path, course_minutes=("10", "15"), chapter_minutes=("10", "15")) -> None:
    import nbformat

    (root / "book").mkdir()
    (root / "notebooks").mkdir()
    (root / "student").mkdir()
    (root / "book" / "course.html").write_text(
        "<table><tr><td><a href='../notebooks/01_x.html'>One</a></td><td>1</td>"
        f"<td>{course_minutes[0]}</td><td>{course_minutes[1]}</td><td>2</td>"
        '<td><a href="../student/01_x.ipynb" download>01_x.ipynb</a></td></tr></table>'
    )
    (root / "notebooks" / "01_x.html").write_text(
        f"<p><strong>Time needed</strong>: about {chapter_minutes[0]} minutes of reading and "
        f"{chapter_minutes[1]} minutes of exercises (25 minutes in all).</p>"
        '<div class="admonition note"><a href="../student/01_x.ipynb" download>student copy</a></div>'
    )
    nb = nbformat.v4.new_notebook()
    starter = nbformat.v4.new_code_cell("answer = ...  # TODO: one plus one", id="s")
    starter.metadata["tags"] = ["exercise"]
    nb.cells = [starter]
    nbformat.write(nb, root / "student" / "01_x.ipynb")


def test_schedule_and_student_checks_catch_planted_faults(tmp_path: Path):
    import nbformat

    good = tmp_path / "good"
    good.mkdir()
    _planted_course_site(good)
    assert schedule_disagreements(good) == []
    assert student_copy_problems(good) == []

    bad = tmp_path / "bad"
    bad.mkdir()
    _planted_course_site(bad, course_minutes=("10", "15"), chapter_minutes=("20", "15"))
    assert schedule_disagreements(bad) == [
        "01_x.html: the chapter says ('20', '15') minutes (reading, exercises), the course page ('10', '15')"
    ]
    path = bad / "student" / "01_x.ipynb"
    nb = nbformat.read(path, as_version=4)
    solution = nbformat.v4.new_code_cell("answer = 2", id="a")
    solution.metadata["tags"] = ["solution", "hide-cell"]
    solution.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    nb.cells.append(solution)
    nbformat.write(nb, path)
    page = bad / "notebooks" / "01_x.html"
    page.write_text(page.read_text().replace("../student/01_x.ipynb", "../student/other.ipynb"))
    assert student_copy_problems(bad) == [
        "01_x.html: no link to ../student/01_x.ipynb",
        "01_x.ipynb: a solution cell in the student copy",
        "01_x.ipynb: outputs left in the student copy",
    ]
