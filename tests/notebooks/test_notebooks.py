"""The rules every notebook in ``notebooks/`` follows (see ``notebooks/README.md``).

Each rule is a function returning a list of problems, run on every notebook;
the last tests plant a broken notebook in a temporary folder and show that
the rules catch it.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

MAX_COLUMNS = 79
SKELETON = ["what you will learn", "time needed", "summary", "see also"]
# Below this standard deviation of the pixel values (0-255) an image is one flat colour.
BLANK_STD = 1.0

pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks yet")


def read(path):
    return nbformat.read(path, as_version=4)


def tags(cell):
    return cell.metadata.get("tags", [])


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


# -- the rules -----------------------------------------------------------------------------------


def badge_problems(nb, name, tool):
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown":
        return ["the first cell is not a markdown cell"]
    if first.source.strip() != tool.badge_source(name):
        return [f"the first cell is not exactly the Colab badge from _config.yml: {first.source[:120]!r}"]
    return []


def install_problems(nb, tool):
    cells = [c for c in nb.cells if tool.is_install_cell(c)]
    if len(cells) != 1:
        return [f"{len(cells)} install cells (want exactly one)"]
    src = cells[0].source
    problems = []
    if src != tool.install_source():
        problems.append("the install cell differs from the one _config.yml gives (run tools/notebooks.py sync)")
    if 'if "google.colab" in sys.modules:' not in src:
        problems.append("the install cell is not guarded by a Colab check")
    for line in src.splitlines():
        if "pip" in line and not line.lstrip().startswith("#"):
            if re.search(r"\bjax", line.replace("{eventlib_source}", "")):
                problems.append(f"the install cell touches jax: {line.strip()!r}")
            if re.search(r"(--upgrade|\s-U\b|--force-reinstall)", line):
                problems.append(f"the install cell upgrades packages: {line.strip()!r}")
    code_before = [c for c in code_cells(nb)[: code_cells(nb).index(cells[0])]]
    if code_before:
        problems.append("code runs before the install cell")
    return problems


def heading_lines(nb):
    """Markdown lines as plain lower-case words: leading '#', '*' and spaces removed."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                yield line.strip().lstrip("#*").strip().lower()


def skeleton_problems(nb):
    problems = []
    if len(nb.cells) < 2 or not nb.cells[1].source.lstrip().startswith("# "):
        problems.append("the second cell does not start with the title ('# ...')")
    lines = list(heading_lines(nb))
    positions = []
    for phrase in SKELETON:
        found = [i for i, line in enumerate(lines) if line.startswith(phrase)]
        if not found:
            problems.append(f"no '{phrase}' heading")
        else:
            positions.append(found[0])
    if positions != sorted(positions):
        problems.append(f"the skeleton headings are out of order (want {SKELETON})")
    return problems


MIN_EXERCISES = 2


def exercise_problems(nb, tool):
    """The exercise convention (notebooks/README.md): a heading ``### Exercise N (level)``, N
    counting 1, 2, ...; a starter cell tagged ``exercise`` that runs, with ``...`` blanks and a
    ``# TODO`` comment; then solution cells tagged ``solution`` and ``hide-cell`` whose prompts
    say "Show solution" / "Hide solution". At least two exercises per chapter."""
    problems = []
    cells = nb.cells
    numbers = []
    # "open" walks the cells after a heading: 'heading' -> 'starter' -> 'solution'
    state, heading_at = None, None

    answered = []  # per exercise: does a solution cell show output?

    def close(i):
        if state == "heading":
            problems.append(f"cell {heading_at}: an exercise heading without a starter cell tagged exercise")
        elif state == "starter":
            problems.append(f"cell {heading_at}: an exercise without a solution cell after its starter")
        elif state == "solution" and answered and not answered[-1]:
            problems.append(f"cell {heading_at}: no solution cell of this exercise shows its answer (no output)")

    for i, cell in enumerate(cells):
        cell_tags = set(tags(cell))
        if cell.cell_type == "markdown":
            first = cell.source.lstrip().split("\n", 1)[0]
            if re.match(r"#+\s*Exercise\b(?!s)", first, re.I):
                match = tool.EXERCISE_HEADING.fullmatch(first.strip())
                if not match:
                    problems.append(f"cell {i}: {first!r} is not '### Exercise N (easy|medium|hard)'")
                    continue
                close(i)
                numbers.append(int(match.group(1)))
                answered.append(False)
                state, heading_at = "heading", i
            elif state in ("starter", "solution"):
                close(i)
                state = None
            continue
        if "raises-exception" in cell_tags:
            problems.append(f"cell {i}: tagged raises-exception (exercise cells must run)")
        if "NotImplementedError" in cell.source and cell_tags & {"exercise", "solution"}:
            problems.append(f"cell {i}: raises NotImplementedError (a starter has '...' blanks instead)")
        if "hide-input" in cell_tags and cell_tags & {"exercise", "solution"}:
            problems.append(f"cell {i}: tagged hide-input (a solution is tagged hide-cell)")
        if "exercise" in cell_tags:
            if state != "heading":
                problems.append(f"cell {i}: a starter cell tagged exercise without an exercise heading before it")
            if "..." not in cell.source or "# TODO" not in cell.source:
                problems.append(f"cell {i}: a starter needs '...' blanks and a '# TODO' comment")
            if cell_tags & {"solution", "hide-cell"}:
                problems.append(f"cell {i}: a starter is shown, not folded (no solution or hide-cell tag)")
            state = "starter"
            continue
        if "solution" in cell_tags:
            if state not in ("starter", "solution"):
                problems.append(f"cell {i}: a solution must follow a starter cell tagged exercise")
            if "hide-cell" not in cell_tags:
                problems.append(f"cell {i}: a solution cell must be tagged hide-cell")
            prompts = {k: (cell.metadata.get("mystnb") or {}).get(k) for k in tool.SOLUTION_PROMPTS}
            if prompts != tool.SOLUTION_PROMPTS:
                problems.append(f"cell {i}: a solution's mystnb prompts are {prompts}, want {tool.SOLUTION_PROMPTS}")
            if answered and cell.get("outputs"):
                answered[-1] = True
            state = "solution"
            continue
        if state in ("heading", "starter"):
            close(i)
        state = None
    close(len(cells))
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"exercises numbered {numbers}, want 1, 2, ...")
    if len(numbers) < MIN_EXERCISES:
        problems.append(f"{len(numbers)} exercises (want at least {MIN_EXERCISES})")
    return problems


def line_problems(nb):
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for j, line in enumerate(cell.source.splitlines(), 1):
                if len(line) > MAX_COLUMNS:
                    problems.append(f"cell {i} line {j}: {len(line)} columns > {MAX_COLUMNS}")
    return problems


def output_line_problems(nb):
    """Printed output fits the column as code does: text lines of at most MAX_COLUMNS
    (a wider table is shown as a rendered table, display(Markdown(...)), or a figure)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            if out.output_type == "stream":
                text = out.text
            elif out.output_type in ("display_data", "execute_result") and set(out.data) == {"text/plain"}:
                text = out.data["text/plain"]
            else:
                continue
            for line in text.splitlines():
                if len(line) > MAX_COLUMNS:
                    problems.append(f"cell {i}: an output line of {len(line)} columns > {MAX_COLUMNS}")
                    break
    return problems


def execution_problems(nb):
    problems = []
    counts = [c.execution_count for c in code_cells(nb) if c.source.strip()]
    if counts != list(range(1, len(counts) + 1)):
        problems.append(f"code cells not executed once, top to bottom: execution counts {counts}")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and not cell.source.strip() and cell.outputs:
            problems.append(f"cell {i}: outputs without source")
    return problems


def error_problems(nb):
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            if out.output_type == "error" and "raises-exception" not in tags(cell):
                problems.append(f"cell {i}: {out.ename}: {out.evalue}")
            if out.output_type == "stream" and "Traceback (most recent call last)" in out.text:
                problems.append(f"cell {i}: a traceback printed to {out.name}")
    return problems


def pixel_std(png_base64: str) -> float:
    """The spread of a PNG's pixel values (all channels, 0-255)."""
    data = base64.b64decode(png_base64)
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"), dtype=np.float64)
    return float(image.std())


def figure_problems(nb):
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            png = out.get("data", {}).get("image/png")
            if png is not None and pixel_std(png) < BLANK_STD:
                problems.append(f"cell {i}: a blank figure (one flat colour)")
    return problems


def has_image(cell) -> bool:
    return any(
        {"image/png", "image/svg+xml", "image/jpeg"} & set(out.get("data", {})) for out in cell.get("outputs", [])
    )


def figure_metadata_problems(nb):
    """A cell that shows a figure gives MyST-NB a caption, a name (fig-...) and alt text."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not has_image(cell):
            continue
        meta = cell.metadata.get("mystnb") or {}
        figure = meta.get("figure") or {}
        alt = (meta.get("image") or {}).get("alt", "")
        if not str(figure.get("caption", "")).strip():
            problems.append(f"cell {i}: a figure without mystnb.figure.caption")
        if not str(figure.get("name", "")).startswith("fig-"):
            problems.append(f"cell {i}: a figure without mystnb.figure.name 'fig-...'")
        if not str(alt).strip():
            problems.append(f"cell {i}: a figure without mystnb.image.alt")
        # MyST-NB wraps every displayed output of the cell in the figure (glue records aside)
        shown = [
            out
            for out in cell.outputs
            if out.output_type in ("display_data", "execute_result")
            and not any(key.startswith("application/papermill.record") for key in out.get("data", {}))
        ]
        if len(shown) > 1:
            problems.append(f"cell {i}: a figure cell displays {len(shown)} outputs (one figure per cell)")
    return problems


def nbval_comment_problems(nb):
    """Varying outputs are marked by the cell tag nbval-ignore-output, never a comment."""
    return [
        f"cell {i}: NBVAL_IGNORE_OUTPUT in the source (tag the cell nbval-ignore-output)"
        for i, cell in enumerate(nb.cells)
        if "NBVAL_IGNORE_OUTPUT" in cell.source
    ]


def minutes_problems(nb, tool):
    """The metadata eventlib.minutes.{reading,exercises} are whole minutes, and the notebook's
    "**Time needed**" paragraph is the one `tools/notebooks.py sync` writes from them."""
    times = tool.minutes(nb)
    if times is None:
        return ["no metadata eventlib.minutes.{reading,exercises} (positive whole minutes)"]
    cell = tool.time_needed_cell(nb)
    if cell is None:
        return ["no '**Time needed**' paragraph"]
    found = tool.TIME_NEEDED.search(cell.source).group(0)
    want = tool.time_needed_source(times["reading"], times["exercises"])
    if found != want:
        return [f"the Time needed line {found!r} is not {want!r} (run tools/notebooks.py sync)"]
    return []


# -- every notebook ------------------------------------------------------------------------------


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param, read(request.param)


def test_name_pattern(notebook):
    path, _ = notebook
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), "notebooks are named NN_topic.ipynb"


def test_badge_alone_in_first_cell(notebook, tool):
    path, nb = notebook
    assert badge_problems(nb, path.name, tool) == []


def test_guarded_install_cell(notebook, tool):
    _, nb = notebook
    assert install_problems(nb, tool) == []


def test_skeleton(notebook):
    _, nb = notebook
    assert skeleton_problems(nb) == []


def test_exercises(notebook, tool):
    _, nb = notebook
    assert exercise_problems(nb, tool) == []


def test_figures_have_caption_and_alt_text(notebook):
    _, nb = notebook
    assert figure_metadata_problems(nb) == []


def test_no_nbval_comments(notebook):
    _, nb = notebook
    assert nbval_comment_problems(nb) == []


def test_time_needed_from_metadata(notebook, tool):
    _, nb = notebook
    assert minutes_problems(nb, tool) == []


def test_code_fits_the_page(notebook):
    _, nb = notebook
    assert line_problems(nb) == []


def test_output_fits_the_page(notebook):
    _, nb = notebook
    assert output_line_problems(nb) == []


def test_executed_top_to_bottom(notebook):
    _, nb = notebook
    assert execution_problems(nb) == []


def test_no_unexpected_errors(notebook):
    _, nb = notebook
    assert error_problems(nb) == []


def test_no_blank_figures(notebook):
    _, nb = notebook
    assert figure_problems(nb) == []


def test_kernelspec_and_clean_metadata(notebook):
    _, nb = notebook
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert "widgets" not in nb.metadata
    stamped = [i for i, c in enumerate(nb.cells) if "execution" in c.metadata]
    assert stamped == [], "execution timestamps left in (run tools/notebooks.py execute)"


def test_student_copy(notebook, tool):
    _, nb = notebook
    copy = tool.student_copy(nb)
    assert not [c for c in copy.cells if "solution" in tags(c)]
    stubs = [c.source for c in nb.cells if "exercise" in tags(c)]
    assert [c.source for c in copy.cells if "exercise" in tags(c)] == stubs
    assert all(not c.outputs and c.execution_count is None for c in code_cells(copy))
    n_solutions = sum("solution" in tags(c) for c in nb.cells)
    assert len(copy.cells) == len(nb.cells) - n_solutions


# -- the command line ----------------------------------------------------------------------------


def run_tool(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "notebooks.py"), *args], capture_output=True, text=True, cwd=ROOT
    )


def test_sync_check_passes():
    result = run_tool("sync", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_help():
    result = run_tool("--help")
    assert result.returncode == 0 and "sync" in result.stdout and "student" in result.stdout


def test_student_command_writes_copies(tmp_path):
    result = run_tool("student", str(tmp_path / "student"))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "student").glob("*.ipynb"))
    assert written == [p.name for p in NOTEBOOKS]
    for path in (tmp_path / "student").glob("*.ipynb"):
        nb = read(path)
        assert not [c for c in nb.cells if "solution" in tags(c)]


def test_student_command_refuses_the_sources():
    result = run_tool("student", str(ROOT / "notebooks"))
    assert result.returncode != 0


# -- the checks can fail -------------------------------------------------------------------------


def exercise_cells(tool, number, level="easy", cell_id="ex"):
    """One exercise as the convention wants it: heading, starter, folded solution."""
    heading = nbformat.v4.new_markdown_cell(f"### Exercise {number} ({level})\n\nAdd one.", id=f"{cell_id}-h")
    starter = nbformat.v4.new_code_cell("answer = ...  # TODO: one plus one", id=f"{cell_id}-s")
    starter.metadata["tags"] = ["exercise"]
    solution = nbformat.v4.new_code_cell("answer = 1 + 1\nprint(answer)", id=f"{cell_id}-a")
    solution.metadata["tags"] = ["solution", "hide-cell"]
    solution.metadata["mystnb"] = dict(tool.SOLUTION_PROMPTS)
    solution.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    return [heading, starter, solution]


def small_notebook(tool, name="99_planted.ipynb"):
    """A notebook that follows every rule, to be broken one rule at a time."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["eventlib"] = {"minutes": {"reading": 5, "exercises": 10}}
    time_line = tool.time_needed_source(5, 10)
    nb.cells = [
        nbformat.v4.new_markdown_cell(tool.badge_source(name), id="badge"),
        nbformat.v4.new_markdown_cell(f"# Planted\n\n**What you will learn**\n\n- x\n\n{time_line}", id="t"),
        nbformat.v4.new_code_cell(tool.install_source(), id="install"),
        nbformat.v4.new_markdown_cell("## Exercises", id="exercises"),
        *exercise_cells(tool, 1, "easy", "e1"),
        *exercise_cells(tool, 2, "hard", "e2"),
        nbformat.v4.new_markdown_cell("## Summary\n\n## See also", id="end"),
    ]
    renumber(nb)
    nb.metadata["kernelspec"] = dict(tool.KERNELSPEC)
    return nb


def renumber(nb):
    """Execution counts 1, 2, ... as a top-to-bottom run leaves them."""
    for count, cell in enumerate(code_cells(nb), 1):
        cell.execution_count = count


def all_problems(nb, tool, name="99_planted.ipynb"):
    return (
        badge_problems(nb, name, tool)
        + install_problems(nb, tool)
        + skeleton_problems(nb)
        + exercise_problems(nb, tool)
        + line_problems(nb)
        + output_line_problems(nb)
        + execution_problems(nb)
        + error_problems(nb)
        + figure_problems(nb)
        + figure_metadata_problems(nb)
        + nbval_comment_problems(nb)
        + minutes_problems(nb, tool)
    )


def png_base64(pixels) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_planted_notebook_passes(tool):
    nb = small_notebook(tool)
    assert all_problems(nb, tool) == []
    copy = tool.student_copy(nb)  # solutions tagged solution + hide-cell are dropped
    assert [c.id for c in copy.cells if c.cell_type == "code"] == ["install", "e1-s", "e2-s"]


def test_blank_figure_is_caught(tool):
    nb = small_notebook(tool)
    blank = np.full((50, 80, 3), 255)
    drawn = blank.copy()
    drawn[20:30, 10:70] = 0
    cell = nbformat.v4.new_code_cell("plt.show()", id="fig", execution_count=2)
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png_base64(drawn), "text/plain": ""})]
    nb.cells.insert(3, cell)
    assert figure_problems(nb) == []
    cell.outputs[0].data["image/png"] = png_base64(blank)
    assert figure_problems(nb) == ["cell 3: a blank figure (one flat colour)"]


def test_missing_badge_is_caught(tool, tmp_path):
    nb = small_notebook(tool)
    del nb.cells[0]
    path = tmp_path / "99_planted.ipynb"
    nbformat.write(nb, path)
    assert badge_problems(nb, path.name, tool) != []
    result = run_tool("sync", "--check", str(path))
    assert result.returncode == 1 and "99_planted.ipynb" in result.stderr
    # sync repairs it, after which the check passes
    assert run_tool("sync", str(path)).returncode == 0
    assert badge_problems(read(path), path.name, tool) == []
    assert run_tool("sync", "--check", str(path)).returncode == 0


def test_stale_address_is_caught(tool, tmp_path):
    nb = small_notebook(tool)
    nb.cells[0].source = nb.cells[0].source.replace("/blob/main/", "/blob/old-branch/")
    nb.cells[2].source = nb.cells[2].source.replace("@main", "@old-branch")
    assert badge_problems(nb, "99_planted.ipynb", tool) != []
    assert install_problems(nb, tool) != []


def test_jax_in_install_cell_is_caught(tool):
    nb = small_notebook(tool)
    nb.cells[2].source += "\n    %pip install --upgrade jax"
    problems = install_problems(nb, tool)
    assert any("touches jax" in p for p in problems) and any("upgrades" in p for p in problems)


def test_old_style_exercise_is_caught(tool):
    """A stub raising NotImplementedError (tagged raises-exception) and a solution tagged
    hide-input, as the chapters once had them."""
    nb = small_notebook(tool)
    starter, solution = nb.cells[5], nb.cells[6]
    starter.source = 'raise NotImplementedError("todo")'
    starter.metadata["tags"] = ["exercise", "raises-exception"]
    starter.outputs = [nbformat.v4.new_output("error", ename="NotImplementedError", evalue="todo", traceback=[])]
    solution.metadata["tags"] = ["solution", "hide-input"]
    del solution.metadata["mystnb"]
    problems = exercise_problems(nb, tool)

    def has(text):
        return any(text in p for p in problems)

    assert has("raises-exception") and has("NotImplementedError") and has("'...' blanks"), problems
    assert has("tagged hide-input") and has("must be tagged hide-cell") and has("prompts"), problems
    assert error_problems(nb) == []  # the raises-exception tag excuses the error there...
    starter.metadata["tags"] = ["exercise"]
    assert error_problems(nb) == ["cell 5: NotImplementedError: todo"]  # ...and nowhere else


def test_exercise_numbering_level_and_count_are_caught(tool):
    nb = small_notebook(tool)
    nb.cells[7].source = nb.cells[7].source.replace("Exercise 2", "Exercise 3")
    assert exercise_problems(nb, tool) == ["exercises numbered [1, 3], want 1, 2, ..."]
    nb.cells[7].source = "### Exercise 2: no level\n\nAdd one."
    problems = exercise_problems(nb, tool)
    assert any("is not '### Exercise N" in p for p in problems), problems
    del nb.cells[7:10]  # one exercise left
    assert exercise_problems(nb, tool) == ["1 exercises (want at least 2)"]


def test_exercise_parts_missing_are_caught(tool):
    nb = small_notebook(tool)
    del nb.cells[9]  # exercise 2 loses its solution
    problems = exercise_problems(nb, tool)
    assert any("without a solution" in p for p in problems), problems
    nb = small_notebook(tool)
    del nb.cells[8]  # exercise 2 loses its starter: the solution follows the heading
    problems = exercise_problems(nb, tool)
    assert any("must follow a starter" in p for p in problems), problems
    nb = small_notebook(tool)
    nb.cells[9].outputs = []  # a solution that shows nothing
    problems = exercise_problems(nb, tool)
    assert any("shows its answer" in p for p in problems), problems


def test_figure_without_caption_or_alt_is_caught(tool):
    nb = small_notebook(tool)
    drawn = np.full((50, 80, 3), 255)
    drawn[20:30, 10:70] = 0
    cell = nbformat.v4.new_code_cell("plt.show()", id="fig")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png_base64(drawn), "text/plain": ""})]
    nb.cells.insert(3, cell)
    renumber(nb)
    assert figure_metadata_problems(nb) == [
        "cell 3: a figure without mystnb.figure.caption",
        "cell 3: a figure without mystnb.figure.name 'fig-...'",
        "cell 3: a figure without mystnb.image.alt",
    ]
    cell.metadata["mystnb"] = {
        "figure": {"caption": "A bar.", "name": "fig-planted-bar"},
        "image": {"alt": "A black bar on white."},
    }
    assert all_problems(nb, tool) == []
    cell.metadata["mystnb"]["image"]["alt"] = " "
    assert figure_metadata_problems(nb) == ["cell 3: a figure without mystnb.image.alt"]
    cell.metadata["mystnb"]["image"]["alt"] = "A black bar on white."
    table = nbformat.v4.new_output("display_data", data={"text/markdown": "| a |\n|---|\n| 1 |", "text/plain": ""})
    cell.outputs.append(table)  # a table shown by the same cell would be captioned as a figure too
    assert figure_metadata_problems(nb) == ["cell 3: a figure cell displays 2 outputs (one figure per cell)"]


def test_nbval_comment_is_caught(tool):
    nb = small_notebook(tool)
    cell = nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nprint(time.time())", id="timing")
    nb.cells.insert(3, cell)
    renumber(nb)
    want = "cell 3: NBVAL_IGNORE_OUTPUT in the source (tag the cell nbval-ignore-output)"
    assert nbval_comment_problems(nb) == [want]
    cell.source = "print(time.time())"
    cell.metadata["tags"] = ["nbval-ignore-output"]
    assert nbval_comment_problems(nb) == []


def test_time_needed_out_of_step_is_caught(tool, tmp_path):
    nb = small_notebook(tool)
    nb.metadata["eventlib"]["minutes"]["exercises"] = 20  # the line still says 10
    assert any("Time needed line" in p for p in minutes_problems(nb, tool))
    path = tmp_path / "99_planted.ipynb"
    nbformat.write(nb, path)
    result = run_tool("sync", "--check", str(path))
    assert result.returncode == 1 and "99_planted.ipynb" in result.stderr
    assert run_tool("sync", str(path)).returncode == 0  # sync rewrites the line from the metadata
    fixed = read(path)
    assert minutes_problems(fixed, tool) == []
    assert tool.time_needed_source(5, 20) in fixed.cells[1].source
    del nb.metadata["eventlib"]
    assert minutes_problems(nb, tool) == ["no metadata eventlib.minutes.{reading,exercises} (positive whole minutes)"]
    nb.metadata["eventlib"] = {"minutes": {"reading": 5.5, "exercises": 10}}
    assert tool.minutes(nb) is None


def test_long_output_line_is_caught(tool):
    nb = small_notebook(tool)
    solution = nb.cells[6]
    solution.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 80 + "\n")]
    assert output_line_problems(nb) == ["cell 6: an output line of 80 columns > 79"]
    solution.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "y" * 90}, execution_count=1)]
    assert output_line_problems(nb) == ["cell 6: an output line of 90 columns > 79"]
    solution.outputs[0].data["text/markdown"] = "| a wide rendered table |"  # rendered, not printed
    assert output_line_problems(nb) == []


def test_long_line_unexecuted_cell_and_missing_heading_are_caught(tool):
    nb = small_notebook(tool)
    nb.cells.insert(3, nbformat.v4.new_code_cell("x = 1  # " + "y" * 80, id="long"))
    assert line_problems(nb) == ["cell 3 line 1: 89 columns > 79"]
    assert execution_problems(nb) != []  # the new cell was never run
    nb.cells[1].source = "# Planted"
    assert "no 'what you will learn' heading" in skeleton_problems(nb)
