"""The course page's schedule and the student copies, both made from the notebooks at build time.

A chapter's time is written once, in its notebook's metadata (``eventlib.minutes.reading`` and
``eventlib.minutes.exercises``, whole minutes); ``tools/notebooks.py sync`` writes the chapter's
"Time needed" line from it. This extension reads the same metadata, so the course page and a
chapter cannot disagree:

- the directive ``course-schedule`` (used in ``book/course.md``) takes the sessions as YAML and
  renders the schedule: per session its chapters, their reading and exercise minutes, the
  exercises with their levels (read from the notebooks' ``### Exercise N (level)`` headings), the
  discussion time that fills the session, the homework and what a GPU adds; then a table of the
  chapters with a link to each student copy. A session whose material leaves less than
  ``MIN_DISCUSSION`` or more than ``MAX_DISCUSSION`` minutes for discussion is a build warning
  (an error under ``--warningiserror``). A chapter without the metadata shows "not given" (the
  notebook rules in tests/notebooks fail it, and tests/book fails the disagreement).
- at the end of an HTML build, ``student/NN_name.ipynb`` is written into the site: each notebook
  without its solution cells and with its outputs cleared (``tools/notebooks.py student``), and
  every chapter page gets a note linking to its copy, after its "Time needed" line.

The session YAML::

    minutes: 90                     # the length of every session
    sessions:
      - title: Events
        chapters: [01_quickstart, 02_event_driven_operators]
        pages: [{doc: concepts, title: Concepts, reading: 15}]   # optional prose pages
        homework: ...
        gpu: ...
        optional: false
"""

from __future__ import annotations

import importlib.util
import posixpath
from pathlib import Path

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

NOTEBOOK_DIR = "notebooks"
STUDENT_DIR = "student"  # in the built site
MIN_DISCUSSION = 10  # minutes a session keeps for discussion at least
MAX_DISCUSSION = 35  # and at most: beyond it the session's material does not fill it


def _tool(srcdir: str | Path):
    """``tools/notebooks.py`` as a module (tools/ is not a package)."""
    path = Path(srcdir) / "tools" / "notebooks.py"
    spec = importlib.util.spec_from_file_location("eventlib_notebook_tool_sphinx", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def student_href(docname: str, stem: str) -> str:
    """The link from page ``docname`` to the student copy of ``notebooks/<stem>.ipynb``."""
    return posixpath.relpath(f"{STUDENT_DIR}/{stem}.ipynb", posixpath.dirname(docname) or ".")


def _download_html(href: str, text: str) -> str:
    return f'<a class="reference download" href="{href}" download>{text}</a>'


def plan(spec: dict, notebook_dir: Path, tool) -> tuple[list[dict], list[str]]:
    """The sessions of ``spec`` (the directive's YAML) with their chapters' minutes, read from the
    notebooks in ``notebook_dir``; and the sessions whose material does not fill their time
    (less than ``MIN_DISCUSSION`` or more than ``MAX_DISCUSSION`` minutes left for discussion).

    A chapter without the minutes metadata has ``None`` for them; its session is not checked
    (tests/notebooks fails the notebook itself)."""
    length = int(spec.get("minutes", 90))
    sessions, problems = [], []
    for number, session in enumerate(spec.get("sessions", []), 1):
        chapters = []
        for stem in session.get("chapters", []):
            nb = tool.read(Path(notebook_dir) / f"{stem}.ipynb")
            title = tool.title(nb)
            chapters.append(
                {
                    "stem": stem,
                    "short": f"{int(stem[:2])}. {title.split(':')[0]}",  # "3. Dynamics and integration"
                    "minutes": tool.minutes(nb),
                    "exercises": tool.exercises(nb),
                }
            )
        pages = session.get("pages", [])
        complete = all(c["minutes"] for c in chapters)
        reading = sum(int(p["reading"]) for p in pages) + sum(c["minutes"]["reading"] for c in chapters if c["minutes"])
        exercise_min = sum(c["minutes"]["exercises"] for c in chapters if c["minutes"])
        discussion = length - reading - exercise_min
        if complete and not MIN_DISCUSSION <= discussion <= MAX_DISCUSSION:
            problems.append(
                f"session {number} ({session['title']}) has {reading} + {exercise_min} minutes of material, "
                f"leaving {discussion} of {length} for discussion (want {MIN_DISCUSSION} to {MAX_DISCUSSION})"
            )
        sessions.append(
            {
                **session,
                "number": number,
                "chapters": chapters,
                "pages": pages,
                "complete": complete,
                "reading": reading,
                "exercise_minutes": exercise_min,
                "discussion": discussion,
            }
        )
    return sessions, problems


class CourseSchedule(SphinxDirective):
    """The schedule of the course, from the YAML body and the notebooks' metadata."""

    has_content = True

    def run(self):
        spec = yaml.safe_load("\n".join(self.content)) or {}
        length = int(spec.get("minutes", 90))
        tool = _tool(self.env.srcdir)
        notebook_dir = Path(self.env.srcdir) / NOTEBOOK_DIR
        for path in sorted(notebook_dir.glob("*.ipynb")):
            self.env.note_dependency(str(path))  # re-read this page when a chapter changes
        sessions, problems = plan(spec, notebook_dir, tool)
        for problem in problems:
            logger.warning(f"course-schedule: {problem}", location=(self.env.docname, self.lineno))
        here = posixpath.dirname(self.env.docname)

        def minutes(value, complete=True):
            return f"{value} min" if complete else "not given"

        overview = [
            f"| session ({length} min) | chapters and pages | reading | exercises | discussion |",
            "|---|---|---|---|---|",
        ]
        details: list[str] = []
        chapter_rows: list[str] = []
        for session in sessions:
            names = [f"[{p['title']}]({p['doc']}.md)" for p in session["pages"]]  # prose pages first
            exercise_lines = []
            for chapter in session["chapters"]:
                stem, short, times = chapter["stem"], chapter["short"], chapter["minutes"]
                if times is None:
                    logger.info(f"course-schedule: {stem}.ipynb has no eventlib.minutes metadata")
                link = posixpath.relpath(f"{NOTEBOOK_DIR}/{stem}.ipynb", here)
                names.append(f"[{short}]({link})")
                levels = ", ".join(f"{n} ({level})" for n, level in chapter["exercises"])
                exercise_lines.append(f"[{short}]({link}): exercises {levels or 'none'}")
                reading, exercise_min = (times["reading"], times["exercises"]) if times else ("?", "?")
                download = _download_html(student_href(self.env.docname, stem), "download")
                chapter_rows.append(
                    f"| [{short}]({link}) | {session['number']} | {reading} | {exercise_min} "
                    f"| {len(chapter['exercises'])} | {download} |"
                )
            complete = session["complete"]
            label = f"{session['number']}. {session['title']}" + (" (optional)" if session.get("optional") else "")
            overview.append(
                f"| {label} | {'; '.join(names)} | {minutes(session['reading'], complete)} "
                f"| {minutes(session['exercise_minutes'], complete)} | {minutes(session['discussion'], complete)} |"
            )
            details += [
                f"**Session {label}**",
                "",
                f"- *Material*: {'; '.join(names)}.",
                *[f"- *Exercises in class*: {line}." for line in exercise_lines],
                f"- *Homework*: {session.get('homework', '').strip()}",
                f"- *What a GPU adds*: {session.get('gpu', '').strip()}",
                "",
            ]
        lines = overview + [""] + details
        lines += [
            "The chapters one by one, with the student copy of each notebook (solutions removed, "
            "outputs cleared) to download:",
            "",
            "| chapter | session | reading [min] | exercises [min] | exercises | student copy |",
            "|---|---|---|---|---|---|",
            *chapter_rows,
        ]
        container = nodes.container(classes=["course-schedule"])
        self.state.nested_parse(StringList(lines, source=self.env.docname), self.content_offset, container)
        return [container]


def _add_student_note(app, doctree):
    """A note after a chapter's "Time needed" line, linking to its student copy."""
    docname = app.env.docname
    if not docname.startswith(f"{NOTEBOOK_DIR}/"):
        return
    stem = posixpath.basename(docname)
    href = student_href(docname, stem)
    note = nodes.note()
    para = nodes.paragraph()
    para += nodes.Text("For a class: the ")
    para += nodes.raw("", _download_html(href, "student copy of this notebook"), format="html")
    para += nodes.Text(
        " has the exercises without their solutions and no outputs; open it in Jupyter or upload it to Colab."
    )
    note += para
    target = None
    for paragraph in doctree.findall(nodes.paragraph):
        if paragraph.astext().startswith("Time needed"):
            target = paragraph
            break
    if target is None:
        section = next(iter(doctree.findall(nodes.section)), None)
        if section is None:
            return
        section.insert(1, note)
    else:
        target.parent.insert(target.parent.index(target) + 1, note)


def _write_student_copies(app, exception):
    """``student/<notebook>.ipynb`` in the built HTML site, from ``tools/notebooks.py``."""
    if exception is not None or app.builder.format != "html":
        return
    tool = _tool(app.srcdir)
    out = Path(app.outdir) / STUDENT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((Path(app.srcdir) / NOTEBOOK_DIR).glob("*.ipynb")):
        tool.write(tool.student_copy(tool.read(path)), out / path.name)


def setup(app):
    app.add_directive("course-schedule", CourseSchedule)
    app.connect("doctree-read", _add_student_note)
    app.connect("build-finished", _write_student_copies)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
