"""The course page's schedule (``book/_ext/course.py``): every chapter in one session, and every
session's material filling its time; shown failing on planted notebooks."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("sphinx")


def load_course():
    spec = importlib.util.spec_from_file_location("eventlib_course_ext", ROOT / "book" / "_ext" / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def course():
    return load_course()


def course_spec() -> dict:
    """The YAML body of the course-schedule directive in book/course.md."""
    text = (ROOT / "book" / "course.md").read_text(encoding="utf-8")
    body = re.search(r"```\{course-schedule\}\n(.*?)\n```", text, re.S)
    assert body, "book/course.md has no course-schedule directive"
    return yaml.safe_load(body.group(1))


def test_every_chapter_is_in_one_session():
    scheduled = [stem for s in course_spec()["sessions"] for stem in s.get("chapters", [])]
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(scheduled) == chapters


def test_sessions_fill_their_time(course, tool):
    sessions, problems = course.plan(course_spec(), ROOT / "notebooks", tool)
    assert problems == []
    for session in sessions:
        if session["complete"]:
            assert session["reading"] + session["exercise_minutes"] + session["discussion"] == 90


def _notebook(path: Path, minutes: dict | None, title: str = "# A chapter: in short") -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"{title}\n\n**Time needed**: x", id="t")]
    if minutes is not None:
        nb.metadata["eventlib"] = {"minutes": minutes}
    nbformat.write(nb, path)


def test_planted_schedule_problems_are_caught(course, tool, tmp_path):
    _notebook(tmp_path / "01_a.ipynb", {"reading": 30, "exercises": 30})
    _notebook(tmp_path / "02_b.ipynb", {"reading": 20, "exercises": 20})
    _notebook(tmp_path / "03_c.ipynb", None)
    spec = {
        "minutes": 90,
        "sessions": [
            {"title": "Fits", "chapters": ["01_a"]},
            {"title": "Too much", "chapters": ["01_a", "02_b"]},
            {"title": "Too little", "chapters": ["02_b"], "pages": [{"doc": "x", "title": "X", "reading": 5}]},
            {"title": "Unknown", "chapters": ["03_c"]},
        ],
    }
    sessions, problems = course.plan(spec, tmp_path, tool)
    assert problems == [
        "session 2 (Too much) has 50 + 50 minutes of material, leaving -10 of 90 for discussion (want 10 to 35)",
        "session 3 (Too little) has 25 + 20 minutes of material, leaving 45 of 90 for discussion (want 10 to 35)",
    ]
    assert [s["discussion"] for s in sessions[:3]] == [30, -10, 45]
    assert sessions[0]["chapters"][0]["short"] == "1. A chapter"
    assert sessions[3]["complete"] is False and sessions[3]["chapters"][0]["minutes"] is None


def test_student_href(course):
    assert course.student_href("notebooks/01_quickstart", "01_quickstart") == "../student/01_quickstart.ipynb"
    assert course.student_href("book/course", "02_x") == "../student/02_x.ipynb"
