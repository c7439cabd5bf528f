#!/usr/bin/env python
"""Keep the book's notebooks in shape: generated cells, student copies, re-execution.

Every notebook in ``notebooks/`` follows one skeleton (``notebooks/README.md``). Two of its cells are
generated from ``_config.yml`` (``repository.url`` and ``repository.branch``), the one place the
repository's address is written:

- the first cell, a markdown cell holding only the "Open in Colab" badge;
- the guarded install cell, which installs eventlib on Colab only and leaves Colab's jax alone.

Commands::

    python tools/notebooks.py sync [--check]           write (or only check) the generated cells
    python tools/notebooks.py student [OUTDIR]         copies without solutions (default _build/student/)
    python tools/notebooks.py execute [NOTEBOOK ...]   re-execute in place, then normalise metadata

``execute`` runs each notebook top to bottom with nbclient (kernel ``python3``, working directory
``notebooks/``), then strips what changes from run to run without meaning anything (execution
timestamps, the Python patch version, widget state), so re-executing on an unchanged library leaves
the file unchanged apart from the cells that print timings.

``sync`` also writes each notebook's "**Time needed**" line from its metadata
``eventlib.minutes.{reading,exercises}`` (whole minutes), the one place a chapter's time is written:
the course page's schedule (``book/_ext/course.py``) reads the same numbers.

Exercises (``notebooks/README.md``): a markdown cell ``### Exercise N (easy|medium|hard)``; a
starter cell tagged ``exercise`` that runs as committed, with ``...`` blanks and ``# TODO``
comments; then solution cells tagged ``solution`` and ``hide-cell`` whose metadata
``mystnb.code_prompt_show`` is "Show solution" (the book folds source and output together).
Student copies drop the ``solution`` cells and clear every output. A cell whose output varies from
run to run (a timing) carries the tag ``nbval-ignore-output``.

Needs nbformat and PyYAML; ``execute`` also needs nbclient and ipykernel.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
CONFIG = ROOT / "_config.yml"
NB_VERSION = 4

BADGE_ID = "colab-badge"
INSTALL_ID = "colab-install"
INSTALL_MARKER = "# Colab only: install eventlib"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
EXECUTE_TIMEOUT_S = 600  # per cell

# The exercise conventions (checked by tests/notebooks, used by the book's course page).
EXERCISE_TAG = "exercise"
SOLUTION_TAGS = ("solution", "hide-cell")
SOLUTION_PROMPTS = {"code_prompt_show": "Show solution", "code_prompt_hide": "Hide solution"}
LEVELS = ("easy", "medium", "hard")
EXERCISE_HEADING = re.compile(r"### Exercise (\d+) \((easy|medium|hard)\)")
TIME_NEEDED = re.compile(r"\*\*Time needed\*\*.*?(?=\n\s*\n|\Z)", re.S)


# -- the generated cells -------------------------------------------------------------------------


def repository(config: Path = CONFIG) -> tuple[str, str]:
    """``(url, branch)`` from ``_config.yml``; the url without a trailing slash or ``.git``."""
    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    repo = data.get("repository") or {}
    url = str(repo.get("url", "")).rstrip("/")
    if url.endswith(".git"):
        url = url[: -len(".git")]
    branch = str(repo.get("branch", "main"))
    if not url.startswith("https://github.com/") or url.count("/") != 4:
        raise SystemExit(f"{config}: repository.url must look like https://github.com/OWNER/REPO, got {url!r}")
    return url, branch


def badge_source(name: str, config: Path = CONFIG) -> str:
    """The markdown of the Colab badge for ``notebooks/<name>``."""
    url, branch = repository(config)
    owner_repo = url.removeprefix("https://github.com/")
    target = f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/notebooks/{name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({target})"


def install_source(config: Path = CONFIG) -> str:
    """The guarded install cell: pip runs on Colab only, and jax is neither named nor upgraded,
    so Colab keeps its own CUDA-enabled jax; elsewhere (nbval, the book) the cell does nothing
    and the checked-out library is used."""
    url, branch = repository(config)
    # The address sits in a variable (IPython expands {name} in a magic) to keep lines short.
    return (
        f"{INSTALL_MARKER}; Colab's own CUDA-enabled jax is kept.\n"
        "import sys\n"
        "\n"
        f'eventlib_source = "git+{url}@{branch}"\n'
        'if "google.colab" in sys.modules:\n'
        '    %pip install --quiet "eventlib @ {eventlib_source}"'
    )


def is_badge_cell(cell) -> bool:
    return cell.cell_type == "markdown" and cell.source.lstrip().startswith("[![Open In Colab]")


def is_install_cell(cell) -> bool:
    return cell.cell_type == "code" and (INSTALL_MARKER in cell.source or "google.colab" in cell.source)


# -- time needed ---------------------------------------------------------------------------------


def minutes(nb) -> dict[str, int] | None:
    """``{"reading": R, "exercises": E}`` from the notebook's metadata, or None where it lacks
    them (or they are not positive whole numbers)."""
    data = (nb.metadata.get("eventlib") or {}).get("minutes") or {}
    values = {key: data.get(key) for key in ("reading", "exercises")}
    if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values.values()):
        return values
    return None


def time_needed_source(reading: int, exercises: int) -> str:
    """The "**Time needed**" paragraph for ``reading`` and ``exercises`` minutes."""
    return (
        f"**Time needed**: about {reading} minutes of reading and {exercises} minutes of "
        f"exercises ({reading + exercises} minutes in all)."
    )


def time_needed_cell(nb):
    """The first markdown cell holding a "**Time needed**" paragraph, or None."""
    return next((c for c in nb.cells if c.cell_type == "markdown" and TIME_NEEDED.search(c.source)), None)


def exercises(nb) -> list[tuple[int, str]]:
    """``(N, level)`` of each ``### Exercise N (level)`` heading, in order."""
    found = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = EXERCISE_HEADING.match(cell.source.lstrip())
            if match:
                found.append((int(match.group(1)), match.group(2)))
    return found


def title(nb) -> str:
    """The notebook's title: its first ``# `` heading, without the ``#``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def synced(nb, name: str, config: Path = CONFIG):
    """A copy of ``nb`` with the badge alone in the first cell and exactly one install cell
    (an existing one is rewritten where it stands, a new one goes before the first code cell),
    and, where the metadata gives the minutes, the "**Time needed**" paragraph written from them."""
    nb = copy.deepcopy(nb)
    times = minutes(nb)
    cell = time_needed_cell(nb)
    if times is not None and cell is not None:
        line = time_needed_source(times["reading"], times["exercises"])
        cell.source = TIME_NEEDED.sub(lambda _: line, cell.source, count=1)
    badge = next((c for c in nb.cells if is_badge_cell(c)), None) or nbformat.v4.new_markdown_cell(id=BADGE_ID)
    badge.source = badge_source(name, config)
    cells = [c for c in nb.cells if not is_badge_cell(c)]

    installs = [i for i, c in enumerate(cells) if is_install_cell(c)]
    if installs:
        cells = [c for i, c in enumerate(cells) if i not in installs[1:]]
        install = cells[installs[0]]
    else:
        install = nbformat.v4.new_code_cell(id=INSTALL_ID)
        first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
        cells.insert(first_code, install)
    install.source = install_source(config)
    nb.cells = [badge, *cells]
    return nb


# -- normalisation -----------------------------------------------------------------------------


def normalise(nb):
    """Strip metadata that changes between runs or machines; keep kernelspec python3."""
    meta = nb.metadata
    meta.pop("widgets", None)
    meta["kernelspec"] = dict(KERNELSPEC)
    info = dict(meta.get("language_info") or {})
    info.pop("version", None)  # the Python patch version: noise in every diff
    info.setdefault("name", "python")
    meta["language_info"] = info
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # nbclient's timestamps
        for key in ("collapsed", "scrolled", "ExecuteTime"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)
    return nb


def merge_streams(outputs):
    """Join consecutive outputs of one stream: how a print is split into chunks depends on
    timing, so unmerged outputs would differ from run to run (nbval joins them the same way)."""
    merged = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if out.output_type == "stream" and prev is not None and prev.output_type == "stream":
            if prev.name == out.name:
                prev.text += out.text
                continue
        merged.append(out)
    return merged


def read(path: Path):
    return nbformat.read(path, as_version=NB_VERSION)


def write(nb, path: Path) -> None:
    nbformat.validate(nb)
    nbformat.write(nb, path)


def show(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def notebooks(paths=None) -> list[Path]:
    if paths:
        return [Path(p).resolve() for p in paths]
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


# -- student copies ------------------------------------------------------------------------------


def tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def student_copy(nb):
    """``nb`` without its solution cells (tagged ``solution``, whatever else they carry) and with
    every output cleared."""
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if "solution" not in tags(c)]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return normalise(nb)


# -- commands ------------------------------------------------------------------------------------


def cmd_sync(args) -> int:
    stale = []
    for path in notebooks(args.notebooks):
        nb = read(path)
        new = synced(nb, path.name)
        if new == nb:
            continue
        stale.append(path)
        if not args.check:
            write(new, path)
            print(f"updated {show(path)}")
    if args.check and stale:
        names = "\n  ".join(show(p) for p in stale)
        print(f"out of date (run: python tools/notebooks.py sync):\n  {names}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{len(notebooks(args.notebooks))} notebooks in sync")
    return 0


def cmd_student(args) -> int:
    out = Path(args.outdir).resolve()
    if out == NOTEBOOK_DIR.resolve():
        raise SystemExit("refusing to write student copies over the sources in notebooks/")
    out.mkdir(parents=True, exist_ok=True)
    for path in notebooks(args.notebooks):
        nb = student_copy(read(path))
        write(nb, out / path.name)
        print(show(out / path.name))
    return 0


def execute(path: Path, timeout: int = EXECUTE_TIMEOUT_S) -> float:
    """Run ``path`` in place; return the wall time in seconds."""
    # Only this command needs a kernel.
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from nbclient import NotebookClient

    class ThisPython(KernelSpecManager):
        """The python3 kernel on this interpreter (as nbval's --nbval-current-env does), never a
        kernelspec of the same name registered for another environment."""

        def get_kernel_spec(self, kernel_name):
            argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
            return KernelSpec(argv=argv, display_name=KERNELSPEC["display_name"], language="python")

    class ThisPythonManager(KernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("kernel_spec_manager", ThisPython())
            super().__init__(**kwargs)

    nb = read(path)
    client = NotebookClient(
        nb,
        kernel_manager_class=ThisPythonManager,  # nbclient starts and shuts down the kernel
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()  # cells tagged raises-exception may fail; any other error stops here
    elapsed = time.perf_counter() - start
    write(normalise(nb), path)
    return elapsed


def cmd_execute(args) -> int:
    total = 0.0
    for path in notebooks(args.notebooks):
        elapsed = execute(path, args.timeout)
        total += elapsed
        print(f"{elapsed:7.1f} s  {show(path)}", flush=True)
    print(f"{total:7.1f} s  in all")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/notebooks.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See notebooks/README.md for the skeleton every notebook follows.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sync", help="write the Colab badge, install cell and Time needed line")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 listing notebooks out of date")
    p.add_argument("notebooks", nargs="*", help="default: every notebooks/*.ipynb")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("student", help="write copies without solution cells and with outputs cleared")
    p.add_argument("outdir", nargs="?", default=str(ROOT / "_build" / "student"), help="default: _build/student/")
    p.add_argument("--notebooks", nargs="*", help="default: every notebooks/*.ipynb")
    p.set_defaults(func=cmd_student)

    p = sub.add_parser("execute", help="re-execute notebooks in place (for when the library changes)")
    p.add_argument("notebooks", nargs="*", help="default: every notebooks/*.ipynb")
    p.add_argument("--timeout", type=int, default=EXECUTE_TIMEOUT_S, help="seconds per cell (default %(default)s)")
    p.set_defaults(func=cmd_execute)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
