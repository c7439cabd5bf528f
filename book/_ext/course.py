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
  ``MIN_DISCUSSION`` minutes of discussion, or a chapter without the metadata, is a build warning
  (an error under ``--warningiserror``).
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


class CourseSchedule(SphinxDirective):
    """The schedule of the course, from the YAML body and the notebooks' metadata."""

    has_content = True

    def run(self):
        spec = yaml.safe_load("\n".join(self.content)) or {}
        length = int(spec.get("minutes", 90))
        tool = _tool(self.env.srcdir)
        here = posixpath.dirname(self.env.docname)
        lines: list[str] = []
        chapter_rows: list[str] = []
        overview = [
            f"| session ({length} min) | chapters and pages | reading | exercises | discussion |",
            "|---|---|---|---|---|",
        ]
        details: list[str] = []
        for number, session in enumerate(spec.get("sessions", []), 1):
            title = session["title"]
            reading = exercise_min = 0
            names, exercise_lines = [], []
            for stem in session.get("chapters", []):
                path = Path(self.env.srcdir) / NOTEBOOK_DIR / f"{stem}.ipynb"
                self.env.note_dependency(str(path))
                nb = tool.read(path)
                times = tool.minutes(nb)
                if times is None:
                    logger.warning(
                        f"course-schedule: {path.name} has no eventlib.minutes metadata",
                        location=(self.env.docname, self.lineno),
                    )
                    times = {"reading": 0, "exercises": 0}
                reading += times["reading"]
                exercise_min += times["exercises"]
                link = posixpath.relpath(f"{NOTEBOOK_DIR}/{stem}.ipynb", here)
                chapter_title = tool.title(nb)
                short = f"{int(stem[:2])}. {chapter_title.split(':')[0]}"  # "3. Dynamics and integration"
                names.append(f"[{short}]({link})")
                levels = ", ".join(f"{n} ({level})" for n, level in tool.exercises(nb))
                exercise_lines.append(f"[{short}]({link}): exercises {levels or 'none'}")
                chapter_rows.append(
                    f"| [{short}]({link}) | {number} | {times['reading']} | {times['exercises']} "
                    f"| {len(tool.exercises(nb))} "
                    f"| {_download_html(student_href(self.env.docname, stem), 'download')} |"
                )
            for k, page in enumerate(session.get("pages", [])):  # prose pages come first
                reading += int(page["reading"])
                names.insert(k, f"[{page['title']}]({page['doc']}.md)")
            discussion = length - reading - exercise_min
            if not MIN_DISCUSSION <= discussion <= MAX_DISCUSSION:
                logger.warning(
                    f"course-schedule: session {number} ({title}) has {reading} + {exercise_min} minutes of "
                    f"material, leaving {discussion} of {length} for discussion "
                    f"(want {MIN_DISCUSSION} to {MAX_DISCUSSION})",
                    location=(self.env.docname, self.lineno),
                )
            label = f"{number}. {title}" + (" (optional)" if session.get("optional") else "")
            overview.append(f"| {label} | {'; '.join(names)} | {reading} min | {exercise_min} min | {discussion} min |")
            details += [
                f"**Session {label}**",
                "",
                f"- *Material*: {'; '.join(names)}.",
                *[f"- *Exercises in class*: {line}." for line in exercise_lines],
                f"- *Homework*: {session.get('homework', '').strip()}",
                f"- *What a GPU adds*: {session.get('gpu', '').strip()}",
                "",
            ]
        lines += overview + [""] + details
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
