"""Check a built static site in a real browser (headless Chromium).

Every ``*.html`` file under the site root is served from ``127.0.0.1`` and
opened in Chromium through Playwright. A page fails the check on:

- a failed load, or an HTTP error for the page or anything it loads;
- a JavaScript exception, or a console error not in the allow-list;
- any request to another host (the site must work with no network);
- math that MathJax did not typeset, or typeset as an error;
- an image that did not load (``naturalWidth == 0``);
- a link to a local page that does not exist, or to an ``#anchor`` that the
  target page does not define;
- a figure (an image in a ``<figure>`` or in a notebook cell's output)
  without a caption or without alt text, or shown smaller than its natural
  size: the book's figures are drawn at the size they are read
  (``eventlib.plotting``), so scaling one down by the factor ``s`` shrinks
  its smallest text, ``FIGURE_FONT_PT``, to ``s * FIGURE_FONT_PT``, which
  must stay at least ``MIN_FIGURE_FONT_PT`` at the desktop width;
- tracking language in the visible text (``TRACKING_PHRASES``: words about
  how the book was made, not about its subject), solutions included;
- at the desktop width, a notebook cell's output or a display equation wider
  than the column (it would scroll);
- at a phone's width (``PHONE_VIEWPORT``, 390 px), a page body wider than the
  screen: wide tables, code and equations must scroll inside their own box.

Usage: ``python tests/book/site_check.py _build/html [--screenshots DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import http.server
import re
import sys
import threading
import urllib.parse
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"  # Debian's package; never a downloaded browser build
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Console errors that are not faults of the site, as regular expressions, each
# with its reason. Empty: the book logs no console error at all.
CONSOLE_ALLOW: tuple[str, ...] = ()

# Directories of a Sphinx build that hold assets, not pages: MathJax and the
# theme ship a few HTML fragments there that are never meant to be opened.
SKIP_DIRS = ("_static", "_sources", "_images")

PAGE_TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1280, "height": 800}
PHONE_VIEWPORT = {"width": 390, "height": 844}

# The smallest text in a notebook figure, in points: eventlib.plotting.FONT_PT
# (tests/book/test_site.py checks that the two agree).
FIGURE_FONT_PT = 10.0
# The smallest figure text a reader gets at the desktop width.
MIN_FIGURE_FONT_PT = 9.0

# Phrases that talk about how the book was made (its tracker, its work
# sessions) rather than about its subject; matched case-insensitively in the
# visible text of every page, with folded solutions opened.
TRACKING_PHRASES = (
    "issue target",
    "target check",
    "target met",
    "(met)",
    "earlier run",
    "previous stop",
    "this session",
    "NBVAL_IGNORE_OUTPUT",
)


@dataclasses.dataclass
class Problem:
    page: str  # path relative to the site root
    # 'load', 'http', 'js', 'console', 'external', 'math', 'image', 'link', 'anchor',
    # 'caption', 'alt', 'figure-size', 'wording', 'overflow', 'wide'
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: [{self.kind}] {self.detail}"


@dataclasses.dataclass
class Report:
    pages: list[str]
    problems: list[Problem]
    screenshots: list[Path] = dataclasses.field(default_factory=list)
    math_pages: list[str] = dataclasses.field(default_factory=list)  # pages with typeset math

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}

    def summary(self) -> str:
        lines = [f"{len(self.pages)} pages checked, {len(self.problems)} problems"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve(root: Path):
    """Serve ``root`` on 127.0.0.1 at a free port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def default_screenshots(root: Path, outdir: Path) -> dict[str, Path]:
    """The home page, and the core notebook chapter (or the first one built)."""
    shots = {"book/intro.html": Path(outdir) / "home.png"}
    notebooks = sorted(p for p in find_pages(Path(root)) if p.startswith("notebooks/"))
    if notebooks:
        core = "notebooks/02_event_driven_operators.html"
        shots[core if core in notebooks else notebooks[0]] = Path(outdir) / "notebook.png"
    return shots


def find_pages(root: Path) -> list[str]:
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts[0] not in SKIP_DIRS:
            pages.append(rel.as_posix())
    return pages


@contextlib.contextmanager
def browser_page(executable: str = CHROMIUM):
    """A fresh Chromium page (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


# Runs in the page after load: waits for MathJax and images, then reports
# what the page defines and links to.
_INSPECT_JS = """
async () => {
  // Folded cells (solutions) open, so that their figures and text count too.
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const math = Array.from(document.querySelectorAll('.math'));
  if (math.length && window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await document.fonts.ready;  // MathJax's web fonts load after typesetting
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = 'eager'; });
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done);
    setTimeout(done, 10000);
  })));
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id)
    .concat(Array.from(document.querySelectorAll('a[name]')).map(e => e.name));
  return {
    ids: ids,
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    mathTotal: math.length,
    mathUntypeset: math.filter(m => !m.querySelector('mjx-container'))
      .map(m => m.textContent.trim().slice(0, 60)),
    mathErrors: Array.from(document.querySelectorAll('mjx-merror'))
      .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80)),
    mathjaxLoaded: !!(window.MathJax && MathJax.version),
    brokenImages: images.filter(img => !img.complete || img.naturalWidth === 0)
      .map(img => img.getAttribute('src')),
    figures: images.filter(img => img.closest('figure') || img.closest('.cell_output'))
      .map(img => {
        const figure = img.closest('figure');
        const caption = figure && figure.querySelector('figcaption');
        return {
          src: (img.getAttribute('src') || '').slice(-80),
          alt: (img.getAttribute('alt') || '').trim(),
          caption: caption ? caption.textContent.trim() : '',
          natural: img.naturalWidth,
          rendered: img.getBoundingClientRect().width,
        };
      }),
    text: document.body.innerText,
    // at the desktop width a notebook's output and a display equation fit the column
    wide: Array.from(document.querySelectorAll('.cell_output, mjx-container[display="true"]'))
      .filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
      .map(e => `${e.scrollWidth} px in ${e.clientWidth}: ${(e.textContent || '').trim().slice(0, 60)}`),
  };
}
"""

# Runs in the page at the phone's width: is the page body wider than the
# screen, and which elements stick out without a scrolling box around them?
_OVERFLOW_JS = """
() => {
  const width = document.documentElement.clientWidth;
  const page = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
  const scrolls = el => {
    for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
      const o = getComputedStyle(e).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden' || o === 'clip') return true;
    }
    return false;
  };
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (el.classList.length ? '.' + Array.from(el.classList).slice(0, 2).join('.') : '');
  const all = Array.from(document.body.querySelectorAll('*'))
    .filter(el => getComputedStyle(el).position !== 'fixed' && !scrolls(el));
  // boxes that stick out, and boxes whose text (a long word) runs out of them
  const boxes = all.filter(el => el.getBoundingClientRect().right > width + 1);
  const texts = all.filter(el => el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1
    && getComputedStyle(el).overflowX === 'visible' && el.getBoundingClientRect().right <= width + 1);
  const out = boxes.concat(texts).slice(0, 3).map(name);
  return {width: width, page: page, out: out};
}
"""

_REFRESH = re.compile(r'<meta[^>]+http-equiv="refresh"[^>]+url=([^"]+)"', re.IGNORECASE)


def check_site(
    root: Path | str,
    *,
    executable: str = CHROMIUM,
    console_allow: tuple[str, ...] = CONSOLE_ALLOW,
    screenshots: dict[str, Path] | None = None,
) -> Report:
    """Open every page of the site at ``root`` in Chromium and check it.

    ``screenshots`` maps page paths (relative to ``root``) to PNG files to
    write (a 1280 x 800 view of the top of the page).
    """
    root = Path(root).resolve()
    pages = find_pages(root)
    problems: list[Problem] = []
    ids: dict[str, set[str]] = {}
    links: list[tuple[str, str]] = []  # (page, absolute href)
    shots: list[Path] = []
    math_pages: list[str] = []
    allow = [re.compile(a) for a in console_allow]

    with serve(root) as base, browser_page(executable) as page:
        host = urllib.parse.urlsplit(base).netloc
        current = {"page": ""}

        def add(kind: str, detail: str) -> None:
            problems.append(Problem(current["page"], kind, detail))

        def route(r):
            if urllib.parse.urlsplit(r.request.url).netloc == host:
                r.continue_()
            else:  # offline site: nothing may leave the machine
                add("external", r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("pageerror", lambda exc: add("js", str(exc).splitlines()[0]))

        def on_console(msg):
            if msg.type == "error":
                text = f"{msg.text} ({msg.location.get('url', '')})"
                if not any(a.search(text) for a in allow):
                    add("console", text)

        page.on("console", on_console)
        page.on(
            "response",
            lambda resp: resp.status >= 400 and add("http", f"{resp.status} {resp.url}"),
        )
        page.on(
            "requestfailed",
            lambda req: urllib.parse.urlsplit(req.url).netloc == host and add("load", f"{req.failure} {req.url}"),
        )

        for rel in pages:
            current["page"] = rel
            url = base + urllib.parse.quote(rel)
            try:
                page.goto(url, wait_until="load")
                refresh = _REFRESH.search((root / rel).read_text(encoding="utf-8", errors="replace"))
                if refresh:  # a redirect page: check where it leads, then inspect the target
                    target = urllib.parse.urljoin(url, refresh.group(1))
                    links.append((rel, target))
                    page.wait_for_url(target.split("#")[0] + "*")
                    page.wait_for_load_state("load")
                info = page.evaluate(_INSPECT_JS)
                # Let late requests (fonts, lazy scripts) finish here, so that
                # leaving the page does not cancel them and each failure is
                # reported against the page that made the request.
                page.wait_for_load_state("networkidle")
            except Exception as exc:  # a page that cannot be opened at all
                add("load", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            ids[rel] = set(info["ids"])
            links += [(rel, href) for href in info["links"]]
            if info["mathTotal"] and not info["mathUntypeset"]:
                math_pages.append(rel)
            if info["mathTotal"] and not info["mathjaxLoaded"]:
                add("math", f"{info['mathTotal']} math elements but MathJax did not load")
            for text in info["mathUntypeset"]:
                add("math", f"not typeset: {text!r}")
            for text in info["mathErrors"]:
                add("math", f"MathJax error: {text}")
            for src in info["brokenImages"]:
                add("image", f"not loaded: {src}")
            for figure in info["figures"]:
                figure_problems(figure, add)
            for box in info["wide"]:
                add("wide", box)
            lowered = info["text"].lower()
            for phrase in TRACKING_PHRASES:
                if phrase.lower() in lowered:
                    at = lowered.index(phrase.lower())
                    line = info["text"][max(0, at - 60) : at + len(phrase) + 60].replace("\n", " ")
                    add("wording", f"{phrase!r} in ...{line}...")

        # The same pages at a phone's width: nothing may widen the page body.
        phone = page.context.browser.new_context(viewport=PHONE_VIEWPORT)
        phone_page = phone.new_page()
        phone_page.set_default_timeout(PAGE_TIMEOUT_MS)
        phone_page.route(
            "**/*", lambda r: r.abort() if urllib.parse.urlsplit(r.request.url).netloc != host else r.continue_()
        )
        for rel in pages:
            current["page"] = rel
            if _REFRESH.search((root / rel).read_text(encoding="utf-8", errors="replace")):
                continue  # a redirect page: its target is checked as a page of its own
            try:
                phone_page.goto(base + urllib.parse.quote(rel), wait_until="load")
                phone_page.evaluate(_INSPECT_JS)  # math typeset, images loaded
                wide = phone_page.evaluate(_OVERFLOW_JS)
            except Exception as exc:
                add("load", f"at {PHONE_VIEWPORT['width']} px: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            if wide["page"] > wide["width"] + 1:
                add(
                    "overflow",
                    f"at {wide['width']} px the page is {wide['page']} px wide; "
                    f"sticking out: {', '.join(wide['out']) or '?'}",
                )
        phone.close()

        # Screenshots in a fresh context: what a first-time reader sees (the
        # theme remembers scroll positions between the pages visited above).
        for rel, out in (screenshots or {}).items():
            fresh = page.context.browser.new_context(viewport=VIEWPORT)
            shot_page = fresh.new_page()
            shot_page.route(
                "**/*", lambda r: r.abort() if urllib.parse.urlsplit(r.request.url).netloc != host else r.continue_()
            )
            shot_page.goto(base + urllib.parse.quote(rel), wait_until="load")
            shot_page.evaluate(_INSPECT_JS)
            out = Path(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            shot_page.screenshot(path=str(out))
            fresh.close()
            shots.append(out)

    for rel, href in links:
        parts = urllib.parse.urlsplit(href)
        if parts.netloc != host or parts.scheme not in ("http", "https"):
            continue  # other sites (not reachable offline) and mailto: links
        target = urllib.parse.unquote(parts.path).lstrip("/")
        path = root / target
        if path.is_dir():
            target = (Path(target) / "index.html").as_posix()
            path = root / target
        if not path.is_file():
            problems.append(Problem(rel, "link", f"no such page: {href}"))
            continue
        anchor = urllib.parse.unquote(parts.fragment)
        if anchor and target.endswith(".html"):
            known = ids.get(target)
            if known is None:  # a page not visited (under a skipped directory)
                known = set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8", errors="replace")))
            if anchor not in known:
                problems.append(Problem(rel, "anchor", f"no id {anchor!r} in {target}"))
    return Report(pages=pages, problems=problems, screenshots=shots, math_pages=math_pages)


def figure_problems(figure: dict, add) -> None:
    """Caption, alt text and size of one figure image (from ``_INSPECT_JS``)."""
    src = figure["src"]
    if not figure["caption"]:
        add("caption", f"a figure without a caption: {src}")
    if not figure["alt"]:
        add("alt", f"a figure without alt text: {src}")
    natural, rendered = figure["natural"], figure["rendered"]
    if natural and rendered:
        font = FIGURE_FONT_PT * rendered / natural
        if font < MIN_FIGURE_FONT_PT:
            add(
                "figure-size",
                f"{src} shown {rendered:.0f} px wide of its natural {natural} px: "
                f"its {FIGURE_FONT_PT:g} pt text reads as {font:.1f} pt (< {MIN_FIGURE_FONT_PT:g})",
            )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the built site, e.g. _build/html")
    parser.add_argument("--screenshots", type=Path, help="write screenshots of the home page and a notebook here")
    args = parser.parse_args(argv)
    shots = default_screenshots(args.root, args.screenshots) if args.screenshots else None
    report = check_site(args.root, screenshots=shots)
    print(report.summary())
    for path in report.screenshots:
        print(f"screenshot: {path}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
