#!/usr/bin/env python
"""Execute every notebook on this machine's JAX device and record each chapter's time.

Used by ``make test-notebooks-gpu`` on a GPU machine, and once on the CPU for the column it
is compared with. Each notebook runs top to bottom in a fresh process, from ``notebooks/``
(as ``tools/notebooks.py execute`` runs it), and nothing is written back to it:

- with nbclient and ipykernel installed (``--engine nbclient``), in a kernel;
- otherwise (``--engine script``, the default where Jupyter is missing, e.g. a bare CUDA
  image), its code cells as one Python script: IPython magics (``%matplotlib inline``, the
  Colab-only ``%pip``) become ``pass``, the figures go to the Agg backend, and the cells
  tagged ``exercise`` (stubs that raise ``NotImplementedError``) are left out.

Usage::

    python tools/gpu_notebooks.py --column gpu                      # every notebook
    python tools/gpu_notebooks.py --column cpu 05_training_a_snn    # one chapter, CPU column
    python tools/gpu_notebooks.py --column gpu_path_event --default-path event 05_training_a_snn

``--default-path`` runs ``eventlib.set_default_path(PATH)`` first (``event`` stands in for a
GPU without the kernels, a T4 or V100). Results are merged into ``--out`` (default
``benchmarks/results/notebooks_gpu.json``, one column per ``--column``, each with the device
it ran on), and a Markdown table of all columns is written beside it (``.md``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "notebooks_gpu.json"
MAGIC = re.compile(r"^(\s*)[%!].*$")


def notebooks(names) -> list[Path]:
    paths = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    if not names:
        return paths
    chosen = [p for p in paths if any(p.stem == n or p.name == n or p.stem.startswith(n) for n in names)]
    if len(chosen) < len(names):
        raise SystemExit(f"no notebook matches some of {names}")
    return chosen


def as_script(path: Path, default_path: str | None) -> str:
    """The notebook's code cells as one script, each cell announced on stderr."""
    nb = json.loads(path.read_text())
    parts = ["import matplotlib\nmatplotlib.use('Agg')\nimport sys as _sys, time as _time\n"]
    if default_path:
        parts.append(f"import eventlib as _ev\n_ev.set_default_path({default_path!r})\n")
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or "exercise" in cell.get("metadata", {}).get("tags", []):
            continue
        src = "".join(cell["source"])
        src = "\n".join(MAGIC.sub(r"\1pass", line) for line in src.splitlines())
        parts.append(f"print('--- cell {i}', round(_time.perf_counter(), 1), file=_sys.stderr, flush=True)\n{src}\n")
    parts.append("import matplotlib.pyplot as _plt\n_plt.close('all')\n")
    return "\n".join(parts)


def run_script(path: Path, default_path: str | None, timeout: float) -> dict:
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(as_script(path, default_path))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, f.name], cwd=NOTEBOOK_DIR, env=env, capture_output=True, text=True, timeout=timeout
        )
        ok, tail = proc.returncode == 0, (proc.stderr[-2000:] if proc.returncode else "")
    except subprocess.TimeoutExpired:
        ok, tail = False, f"timed out after {timeout:.0f} s"
    finally:
        os.unlink(f.name)
    return {"seconds": round(time.perf_counter() - start, 1), "ok": ok, **({"error": tail} if tail else {})}


def run_nbclient(path: Path, default_path: str | None, timeout: float) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    if default_path:
        nb.cells.insert(0, nbformat.v4.new_code_cell(f"import eventlib\neventlib.set_default_path({default_path!r})"))
    client = NotebookClient(
        nb, timeout=int(timeout), kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
        ok, err = True, None
    except Exception as e:  # noqa: BLE001  a failing notebook is recorded, the others still run
        ok, err = False, str(e)[-2000:]
    return {"seconds": round(time.perf_counter() - start, 1), "ok": ok, **({"error": err} if err else {})}


def device() -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, jax; d = jax.devices()[0]; "
            "print(jax.default_backend(), d.device_kind, f'({os.cpu_count()} CPU cores)')",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def table(results: dict) -> str:
    columns = results["columns"]
    names = sorted({n for c in columns.values() for n in c["notebooks"]})
    head = " | ".join(f"{k} [s]" for k in columns)
    lines = [f"| notebook | {head} |", "|---|" + "---|" * len(columns)]
    for n in names:
        cells = []
        for c in columns.values():
            r = c["notebooks"].get(n)
            cells.append("-" if r is None else f"{r['seconds']:.1f}" + ("" if r["ok"] else " (failed)"))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("")
    for k, c in columns.items():
        lines.append(
            f"- {k}: {c['device']}, {c['date_utc']}, engine {c['engine']}"
            + (f", default path {c['default_path']}" if c.get("default_path") else "")
        )
    if "cpu" in columns and "gpu" in columns:
        lines.append("")
        for n in names:
            a, b = columns["cpu"]["notebooks"].get(n), columns["gpu"]["notebooks"].get(n)
            if a and b and a["ok"] and b["ok"]:
                lines.append(f"- {n}: GPU {a['seconds'] / b['seconds']:.1f}x faster than the CPU")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", help="names or stems (default: every notebook)")
    p.add_argument("--column", required=True, help="the column of the results file: cpu, gpu, ...")
    p.add_argument("--engine", choices=["auto", "script", "nbclient"], default="auto")
    p.add_argument("--default-path", choices=["auto", "event", "kernel", "dense"])
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds per notebook")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        try:
            import ipykernel  # noqa: F401
            import nbclient  # noqa: F401

            engine = "nbclient"
        except ImportError:
            engine = "script"
    run = run_nbclient if engine == "nbclient" else run_script
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"columns": {}}
    column = {
        "device": device(),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "engine": engine,
        "default_path": args.default_path,
        "notebooks": {},
    }
    failed = 0
    for path in notebooks(args.notebooks):
        r = run(path, args.default_path, args.timeout)
        column["notebooks"][path.stem] = r
        failed += not r["ok"]
        print(f"{r['seconds']:8.1f} s  {'ok' if r['ok'] else 'FAILED'}  {path.name}", flush=True)
        if not r["ok"]:
            print(r.get("error", ""), file=sys.stderr)
    old = results["columns"].get(args.column, {}).get("notebooks", {})
    column["notebooks"] = {**old, **column["notebooks"]}  # a partial run keeps the other chapters
    results["columns"][args.column] = column
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(table(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
