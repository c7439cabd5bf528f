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


def exercise_problems(nb):
    problems = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        if "exercise" in tags(cell):
            if cell.cell_type != "code" or "raises-exception" not in tags(cell):
                problems.append(f"cell {i}: an exercise stub must be a code cell tagged raises-exception")
            if "NotImplementedError" not in cell.source:
                problems.append(f"cell {i}: an exercise stub must raise NotImplementedError")
            errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
            if not errors or errors[0].ename != "NotImplementedError":
                problems.append(f"cell {i}: the stub's recorded output is not a NotImplementedError")
            nxt = cells[i + 1] if i + 1 < len(cells) else None
            if nxt is None or nxt.cell_type != "code" or not {"solution", "hide-input"} <= set(tags(nxt)):
                problems.append(f"cell {i}: a stub must be followed by a solution cell (tags solution, hide-input)")
        if "solution" in tags(cell):
            prev = cells[i - 1] if i > 0 else None
            if prev is None or "exercise" not in tags(prev):
                problems.append(f"cell {i}: a solution must follow an exercise stub")
            if "raises-exception" in tags(cell):
                problems.append(f"cell {i}: a solution must run without error")
    return problems


def line_problems(nb):
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for j, line in enumerate(cell.source.splitlines(), 1):
                if len(line) > MAX_COLUMNS:
                    problems.append(f"cell {i} line {j}: {len(line)} columns > {MAX_COLUMNS}")
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


def test_exercises(notebook):
    _, nb = notebook
    assert exercise_problems(nb) == []


def test_code_fits_the_page(notebook):
    _, nb = notebook
    assert line_problems(nb) == []


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


def small_notebook(tool, name="99_planted.ipynb"):
    """A notebook that follows every rule, to be broken one rule at a time."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(tool.badge_source(name), id="badge"),
        nbformat.v4.new_markdown_cell("# Planted\n\n**What you will learn**\n\n- x\n\n**Time needed**: 1 min", id="t"),
        nbformat.v4.new_code_cell(tool.install_source(), id="install", execution_count=1),
        nbformat.v4.new_markdown_cell("## Summary\n\n## See also", id="end"),
    ]
    nb.metadata["kernelspec"] = dict(tool.KERNELSPEC)
    return nb


def png_base64(pixels) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_planted_notebook_passes(tool):
    nb = small_notebook(tool)
    name = "99_planted.ipynb"
    assert badge_problems(nb, name, tool) == install_problems(nb, tool) == skeleton_problems(nb) == []
    assert execution_problems(nb) == error_problems(nb) == figure_problems(nb) == line_problems(nb) == []


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


def test_broken_exercise_is_caught(tool):
    nb = small_notebook(tool)
    stub = nbformat.v4.new_code_cell('raise NotImplementedError("todo")', id="stub", execution_count=2)
    stub.metadata["tags"] = ["exercise"]  # raises-exception missing, no solution after it
    stub.outputs = [nbformat.v4.new_output("error", ename="NotImplementedError", evalue="todo", traceback=[])]
    nb.cells.insert(3, stub)
    problems = exercise_problems(nb)
    assert any("raises-exception" in p for p in problems) and any("followed by" in p for p in problems)
    assert error_problems(nb) == ["cell 3: NotImplementedError: todo"]


def test_long_line_unexecuted_cell_and_missing_heading_are_caught(tool):
    nb = small_notebook(tool)
    nb.cells.insert(3, nbformat.v4.new_code_cell("x = 1  # " + "y" * 80, id="long"))
    assert line_problems(nb) == ["cell 3 line 1: 89 columns > 79"]
    assert execution_problems(nb) != []  # the new cell was never run
    nb.cells[1].source = "# Planted"
    assert "no 'what you will learn' heading" in skeleton_problems(nb)
