"""``python -m eventlib.bench``: eventlib's operators against the dense
product, ``jax.experimental.sparse`` and the peer (brainstate 0.6 with
brainevent 0.3), on whatever device JAX runs on, in one process.

For every size, batch and firing rate it measures each method's time per
call inside one compiled program (a ``lax.map`` over several spike patterns,
so Python dispatch is excluded), its first-call time (trace, compile and,
for the peer, its CUDA build), the bytes the operation must move, the
fraction of the device's read bandwidth that is (the denominator is the best
read rate a dense product reaches in the same run), the speed-up over the
dense product at ``HIGHEST`` precision, and the error against a float64
reference. Results go to a JSON file (with every version), a printed table
and a figure.

The matrices: a dense ``n x n`` weight (standard normal) for the dense
methods; a fixed fan-out of ``n // 20`` distinct targets per input with one
weight of 0.5 for the sparse ones -- the same index table for eventlib, BCOO
and the peer, so all compute the same product (exactly, since sums of 0.5
are exact in float32).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import connectivity
from ..ops import csr_event_matmul, event_matmul
from .harness import Method, Progress, device_name, load_peer, median_seconds, versions

RATES = (0.001, 0.01, 0.05, 0.2)
SPARSE_WEIGHT = 0.5  # dyadic: sparse sums are exact in float32, in any order
FAN_OUT_DIVISOR = 20  # n // 20 targets per input: connection probability 0.05
HIGHEST = lax.Precision.HIGHEST
REF_ROWS = 4  # batch rows checked against the float64 sparse reference


# -- methods -------------------------------------------------------------------


def dense_methods(weight, peer) -> list[Method]:
    methods = [
        Method("dense (HIGHEST)", "dense", lambda s, w: jnp.matmul(s, w, precision=HIGHEST), (weight,)),
        Method("dense (default)", "dense", lambda s, w: s @ w, (weight,), "TF32 on recent NVIDIA GPUs"),
        Method("eventlib event_matmul", "dense", lambda s, w: event_matmul(s, w), (weight,), "path='auto'"),
    ]
    if peer is not None:
        methods.append(
            Method("brainevent BinaryArray @ W", "dense", lambda s, w: peer.BinaryArray(s) @ w, (weight,), "default")
        )
    return methods


def sparse_methods(conn, n: int, peer) -> list[Method]:
    from jax.experimental import sparse as jsparse

    indptr, indices = jnp.asarray(conn.indptr), jnp.asarray(conn.indices)
    table = indices.reshape(n, -1)  # fixed fan-out: every row has the same length
    weight = jnp.float32(SPARSE_WEIGHT)
    max_row = conn.max_row
    pre = jnp.repeat(jnp.arange(n, dtype=jnp.int32), max_row)
    bcoo = jsparse.BCOO(
        (jnp.full(indices.shape, SPARSE_WEIGHT, jnp.float32), jnp.stack([pre, indices], axis=1)), shape=(n, n)
    )
    methods = [
        Method(
            "eventlib csr_event_matmul",
            "sparse",
            lambda s, ip, ix: csr_event_matmul(s, weight, ip, ix, n, max_row=max_row),
            (indptr, indices),
            "path='auto'",
        ),
        Method(
            "eventlib csr_event_matmul deterministic",
            "sparse",
            lambda s, ip, ix: csr_event_matmul(s, weight, ip, ix, n, max_row=max_row, deterministic=True),
            (indptr, indices),
            "deterministic=True: no float atomics",
        ),
        Method("jax.experimental.sparse BCOO", "sparse", lambda s, m: s @ m, (bcoo,)),
    ]
    if peer is not None:
        mat = peer.FixedNumPerPre((weight, table), shape=(n, n))
        methods.append(
            Method("brainevent BinaryArray @ FixedNumPerPre", "sparse", lambda s, m: peer.BinaryArray(s) @ m, (mat,))
        )
    return methods


# -- measurement ---------------------------------------------------------------


def measure(method: Method, patterns, reps: int, budget_s: float) -> dict:
    """First-call time, then the median in-graph time per call."""
    mapped = jax.jit(lambda spikes, *ops: lax.map(lambda s: method.fn(s, *ops), spikes))
    t0 = time.perf_counter()
    first = mapped(patterns, *method.operands)
    jax.block_until_ready(first)
    first_call = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(mapped(patterns, *method.operands))
    one = time.perf_counter() - t0
    reps = max(3, min(reps, int(budget_s / max(one, 1e-9))))
    per_call = median_seconds(mapped, patterns, *method.operands, reps=reps) / patterns.shape[0]
    return {"ms": per_call * 1e3, "first_call_s": first_call, "reps": reps, "first_out": first[0]}


def dense_reference(spikes0, weight, cols):
    return np.asarray(spikes0, np.float64) @ np.asarray(weight[:, cols], np.float64)


def sparse_reference(spikes0, table):
    """``spikes0 @ M`` in float64 for the fixed fan-out table, weight 0.5
    (the first rows of a batch, at most ``REF_ROWS``)."""
    spikes0 = np.asarray(spikes0)[:REF_ROWS]
    n_post = spikes0.shape[1]
    out = np.zeros(spikes0.shape, np.float64)
    for b, row in enumerate(spikes0):
        active = np.nonzero(row)[0]
        out[b] = SPARSE_WEIGHT * np.bincount(table[active].reshape(-1), minlength=n_post)
    return out


def rel_err(out, ref) -> float:
    norm = float(np.linalg.norm(ref))
    return float(np.linalg.norm(np.asarray(out, np.float64) - ref) / norm) if norm else float(np.abs(out).max())


# -- the run -------------------------------------------------------------------


def run(args, save: Callable[[dict], None] = lambda result: None) -> dict:
    peer, peer_reason = load_peer(args.no_peer)
    rng = np.random.default_rng(args.seed)
    cases = [(n, b, r) for n in args.sizes for b in args.batches for r in args.rates]
    progress = None  # sized once the methods of the first size are known
    rows, floors = [], []
    for n in args.sizes:
        weight = jax.random.normal(jax.random.PRNGKey(n), (n, n), jnp.float32)
        cols = np.sort(rng.choice(n, min(n, 256), replace=False))
        conn = connectivity.fixed_num_per_pre(n, n, max(1, n // FAN_OUT_DIVISOR), seed=n)
        table = np.asarray(conn.indices).reshape(n, -1)
        methods = _selected(dense_methods(weight, peer) + sparse_methods(conn, n, peer), args.only)
        if progress is None:
            progress = Progress(len(cases) * len(methods))
        for batch in args.batches:
            for rate in args.rates:
                spikes = (rng.random((args.patterns, batch, n)) < rate).astype(np.float32)
                patterns = jnp.asarray(spikes)
                k_union = float(np.mean([np.any(p != 0, axis=0).sum() for p in spikes]))
                if rate == args.rates[0]:
                    # What the harness costs by itself: the same lax.map
                    # with a body that only sums the pattern. On a GPU each
                    # loop iteration also waits for its condition.
                    floor = Method("loop floor", "floor", lambda s: jnp.sum(s, axis=-1), ())
                    floor_ms = measure(floor, patterns, args.reps, args.budget)["ms"]
                    floors.append({"n": n, "batch": batch, "ms": floor_ms})
                refs = {}
                for m in methods:
                    label = f"n={n} batch={batch} rate={rate:g} {m.name}"
                    row = {"n": n, "batch": batch, "rate": rate, "k_union": k_union, "method": m.name}
                    row.update(family=m.family, note=m.note)
                    try:
                        result = measure(m, patterns, args.reps, args.budget)
                    except Exception as e:  # noqa: BLE001 - a failing method is reported, the run goes on
                        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                        rows.append(row)
                        progress.step(label)
                        continue
                    out0 = np.asarray(result.pop("first_out"))
                    if m.family == "dense":
                        if "dense" not in refs:
                            refs["dense"] = dense_reference(spikes[0], weight, cols)
                        row["rel_err"] = rel_err(out0[:, cols], refs["dense"])
                        row["bytes"] = 4 * (n * n if m.name.startswith("dense") else k_union * n) + 8 * batch * n
                    else:
                        if "sparse" not in refs:
                            refs["sparse"] = sparse_reference(spikes[0], table)
                        row["rel_err"] = rel_err(out0[:REF_ROWS], refs["sparse"])
                        per_syn = 12 if "BCOO" in m.name else 4  # (row, col, value) vs target index
                        syn = conn.n_synapses if "BCOO" in m.name else k_union * table.shape[1]
                        row["bytes"] = per_syn * syn + 8 * batch * n
                    row.update(result)
                    rows.append(row)
                    progress.step(label)
            save(_summary(rows, peer, peer_reason, args, floors))  # partial results survive an interrupted run
        del weight
    progress.close()
    return _summary(rows, peer, peer_reason, args, floors)


def _selected(methods, only):
    """The methods whose name contains one of ``only`` (all when empty)."""
    return [m for m in methods if not only or any(o in m.name for o in only)]


def _summary(rows, peer, peer_reason, args, floors=()) -> dict:
    # The denominator: the best read rate a dense product reached in this run.
    dense_rates = [r["bytes"] / r["ms"] * 1e-6 for r in rows if r.get("ms") and r["method"].startswith("dense")]
    best_read = max(dense_rates) if dense_rates else None
    for r in rows:
        if "ms" not in r:
            continue
        r["GBps"] = r["bytes"] / r["ms"] * 1e-6
        r["bandwidth_fraction"] = r["GBps"] / best_read if best_read else None
        dense = _find(rows, r, "dense (HIGHEST)")
        r["speedup_vs_dense"] = dense["ms"] / r["ms"] if dense and "ms" in dense else None
    return {
        "command": "python -m eventlib.bench " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": device_name(),
        "backend": jax.default_backend(),
        "versions": versions(),
        "peer": None if peer is None else "brainevent " + importlib.metadata.version("brainevent"),
        "peer_skipped_because": peer_reason,
        "patterns_per_graph": args.patterns,
        "best_dense_read_GBps": best_read,
        "loop_floor": list(floors),
        "rows": rows,
    }


def _find(rows, like, method):
    for r in rows:
        if (r["n"], r["batch"], r["rate"], r["method"]) == (like["n"], like["batch"], like["rate"], method):
            return r
    return None


# -- report --------------------------------------------------------------------


def table(result: dict) -> str:
    """Markdown: time per call in ms, speed-up over dense HIGHEST, and the
    fraction of the read bandwidth, one row per (n, batch, rate)."""
    rows = result["rows"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = "| n | batch | rate | " + " | ".join(methods) + " |"
    lines = [head, "|" + "---|" * (3 + len(methods))]
    for key in dict.fromkeys((r["n"], r["batch"], r["rate"]) for r in rows):
        cells = []
        for m in methods:
            r = next((r for r in rows if (r["n"], r["batch"], r["rate"], r["method"]) == (*key, m)), None)
            if r is None or "ms" not in r:
                cells.append("error" if r else "")
                continue
            frac = r.get("bandwidth_fraction")
            cells.append(f"{r['ms']:.3g} ({r['speedup_vs_dense']:.2g}x, {frac:.0%})")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# How the figure draws each method: (label, colour and marker, line style). A dense weight is drawn
# with solid lines, stored connectivity with dashed ones; a method not listed gets its own name.
PLOT_STYLE = {
    "dense (HIGHEST)": ("dense, float32 (HIGHEST)", "ko", "-"),
    "dense (default)": ("dense, default (TF32)", "k^", ":"),
    "eventlib event_matmul": ("eventlib, dense weight", "C0o", "-"),
    "brainevent BinaryArray @ W": ("brainevent, dense weight", "C3s", "-"),
    "eventlib csr_event_matmul": ("eventlib, stored", "C0o", "--"),
    "eventlib csr_event_matmul deterministic": ("eventlib, stored, deterministic", "C2d", "--"),
    "jax.experimental.sparse BCOO": ("BCOO, stored", "C7v", "--"),
    "brainevent BinaryArray @ FixedNumPerPre": ("brainevent, stored", "C3s", "--"),
}


def plot(result: dict, path: Path) -> None:
    """Time per call against the firing rate, in the book's figure style (``eventlib.plotting``):
    one panel per size (rows) and batch (columns), one legend below the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from ..plotting import book_style_rc, new_figure

    with plt.rc_context(book_style_rc()):  # the text too, not only the figure's size
        rows = [r for r in result["rows"] if "ms" in r]
        sizes = sorted({r["n"] for r in rows}, reverse=True)
        batches = sorted({r["batch"] for r in rows})
        fig, axes = new_figure(len(sizes), len(batches), height=1.2 + 2.6 * len(sizes), sharex=True, squeeze=False)
        for (n, batch), ax in zip([(n, b) for n in sizes for b in batches], axes.flat, strict=True):
            for m in dict.fromkeys(r["method"] for r in rows):
                pts = [(r["rate"], r["ms"]) for r in rows if (r["n"], r["batch"], r["method"]) == (n, batch, m)]
                if pts:
                    label, marker, line = PLOT_STYLE.get(m, (m, "o", "-"))
                    ax.plot(*zip(*pts, strict=True), marker, ls=line, label=label)
            ax.set(xscale="log", yscale="log", title=f"n = {n}, batch {batch}")
            ax.yaxis.set_minor_formatter(NullFormatter())  # decades only: no crowded labels
            ax.grid(True, which="major", alpha=0.3)
        for ax in axes[-1]:
            ax.set_xlabel("fraction of inputs active")
        for ax in axes[:, 0]:
            ax.set_ylabel("time per call [ms]")
        handles = {}
        for ax in axes.flat:  # every method once, in the order first drawn
            for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, h)
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=2)
        fig.suptitle(result["device"])
        fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    gpu = jax.default_backend() == "gpu"
    ap = argparse.ArgumentParser(prog="python -m eventlib.bench", description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000] if gpu else [2000, 10000])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    ap.add_argument("--patterns", type=int, default=16, help="spike patterns per compiled program")
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions (fewer when slow, see --budget)")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timed repetitions per case, roughly")
    ap.add_argument("--no-peer", action="store_true", help="leave out brainstate/brainevent")
    ap.add_argument("--only", nargs="+", default=[], help="run only the methods whose name contains one of these")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--out", type=Path, default=Path("bench.json"), help="JSON results (a .md table and .png beside)")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.patterns, args.reps, args.budget = [500], 4, 3, 0.2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = run(args, save=lambda result: args.out.write_text(json.dumps(result, indent=1) + "\n"))
    md = table(result)
    print(f"\n{result['device']}; best dense read {result['best_dense_read_GBps'] or 0:.0f} GB/s")
    print("time per call in ms (speed-up over dense HIGHEST, fraction of that read bandwidth)\n")
    print(md)
    worst = {}
    for r in result["rows"]:
        if "rel_err" in r:
            worst[r["method"]] = max(worst.get(r["method"], 0.0), r["rel_err"])
    print("\nworst ||out - ref|| / ||ref|| against float64: " + "; ".join(f"{m} {e:.1e}" for m, e in worst.items()))
    if result["loop_floor"]:
        each = ", ".join(f"n={f['n']} batch={f['batch']}: {f['ms']:.4f} ms" for f in result["loop_floor"])
        md += (
            "\n\nThe harness alone (a lax.map whose body only sums the pattern), per call, "
            "included in every time above: " + each
        )
        print("\nloop floor per call: " + each)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(md + "\n")
    written = [args.out, args.out.with_suffix(".md")]
    try:
        plot(result, args.out.with_suffix(".png"))
        written.append(args.out.with_suffix(".png"))
    except ImportError:
        print("matplotlib is not installed: no figure", file=sys.stderr)
    print("\nwrote " + ", ".join(map(str, written)))
    return 0
