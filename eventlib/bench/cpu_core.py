"""CPU benchmark of eventlib's core operators, side by side with the peer
(brainstate >= 0.6 with brainevent >= 0.3) in one process.

The command line is ``benchmarks/cpu_core.py``.

Every measured function is jitted once per (case, method); spike vectors of
every rate go through that one compiled function (a trace counter and JAX's
compile events confirm nothing is recompiled between rates). Per call the time
is wall clock around ``jax.block_until_ready(f(spikes))``, cycling through
several precomputed spike patterns. See benchmarks/README.md for the columns.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import brainstate
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

from ..layers import EventFixedProb, EventLinear
from ..ops import csr_event_matmul, event_matmul
from .harness import Method, Progress, load_peer, time_calls
from .harness import environment as _environment

RATES = (0.001, 0.01, 0.05, 0.2)
N_PATTERNS = 8
WEIGHT = 0.5  # scalar synaptic weight: a dyadic value, so sparse sums are exact in float32

try:  # optional progress bar; never a dependency
    from tqdm import tqdm as _tqdm
except ImportError:  # depends on the environment
    _tqdm = None


# ---------------------------------------------------------------------------
# Environment


def environment(args) -> dict:
    """The run's environment and timing settings, in the fields of the
    committed result files."""
    env = _environment(
        ("jax", "jaxlib", "numpy", "brainstate", "brainevent", "numba", "brainunit", "braintools"),
        ("OPENBLAS_CORETYPE", "XLA_FLAGS", "JAX_PLATFORMS", "OMP_NUM_THREADS"),
    )
    versions = env["versions"]
    versions = {"python": versions["python"], "eventlib": versions["eventlib (imported)"]} | {
        k: v for k, v in versions.items() if k not in ("python", "eventlib (imported)")
    }
    git = {"commit": env["git_commit"], "eventlib_dirty": env["eventlib_dirty"]} if env["git_commit"] else {}
    keys = ("command", "date_utc")
    return {k: env[k] for k in keys} | {
        "quick": args.quick,
        **{k: env[k] for k in ("cpu_model", "cpu_count", "cpus_usable", "platform", "jax_backend", "jax_devices")},
        "env": env["env"],
        "versions": versions,
        "eventlib_git": git,
        "layer_jit": args.layer_jit,
        "timing": {
            "min_time_s": args.min_time,
            "min_calls": args.min_calls,
            "max_calls": args.max_calls,
            "n_patterns": N_PATTERNS,
            "seed": args.seed,
        },
    }


# ---------------------------------------------------------------------------
# Output: markdown to stdout as results arrive, a copy kept for the .md file


class Report:
    def __init__(self):
        self.lines: list[str] = []

    def write(self, text: str = "") -> None:
        for line in text.split("\n"):
            self.lines.append(line)
        if _tqdm is not None:
            _tqdm.write(text)
        else:
            print(text, flush=True)

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        self.write("| " + " | ".join(header) + " |")
        self.write("|" + "---|" * len(header))
        for r in rows:
            self.write("| " + " | ".join(str(x) for x in r) + " |")
        self.write()


def fmt_ms(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def fmt_x(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.0f}x" if x >= 100 else f"{x:.3g}x"


def fmt_bytes(b: int | None) -> str:
    if b is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b} B"


def fmt_rate(r: float) -> str:
    return "all-active" if r == 1.0 else f"{100 * r:g}%"


# ---------------------------------------------------------------------------
# Timing


class CompileCounter:
    """Counts XLA backend compilations (JAX monitoring events)."""

    def __init__(self):
        self.count = 0
        try:
            jax.monitoring.register_event_duration_secs_listener(self._on_event)
        except Exception:  # pragma: no cover - older JAX
            self.count = -(10**9)

    def _on_event(self, event, duration, **kwargs):
        if "backend_compile" in event:
            self.count += 1


def warm_up(call, patterns, min_s: float = 0.1, max_s: float = 2.0) -> None:
    """Every pattern once and at least ``min_s`` of calls (thread pools and
    caches settle), but no more than ``max_s`` (after at least two calls)."""
    start = time.perf_counter()
    j = 0
    while True:
        jax.block_until_ready(call(patterns[j % len(patterns)]))
        j += 1
        elapsed = time.perf_counter() - start
        if j >= 2 and elapsed > max_s:
            break
        if j >= len(patterns) and elapsed >= min_s:
            break


# ---------------------------------------------------------------------------
# Spike patterns


def make_patterns(rng, n: int, batch: int, rate: float) -> tuple[list[np.ndarray], int]:
    """``N_PATTERNS`` bool arrays of shape (n,) (batch 1) or (batch, n), each
    row with exactly ``round(rate * n)`` active entries."""
    k = int(round(rate * n))
    pats = []
    for _ in range(N_PATTERNS):
        s = np.zeros((batch, n), bool)
        for b in range(batch):
            s[b, rng.choice(n, k, replace=False)] = True
        pats.append(s[0] if batch == 1 else s)
    return pats, k


# ---------------------------------------------------------------------------
# Methods


def counted(body, counter):
    def traced(*args):
        counter[0] += 1
        return body(*args)

    return traced


def jit_with_args(body, counter, *operands):
    """``jax.jit`` of ``body(spikes, *operands)``; operands are arguments, not constants."""
    f = jax.jit(counted(body, counter))
    return lambda s: f(s, *operands)


def jit_layer(layer, counter, how: str):
    body = counted(lambda s: layer(s), counter)
    return brainstate.transform.jit(body) if how == "brainstate" else jax.jit(body)


def layer_wrapper_name(how: str) -> str:
    return "brainstate.transform.jit" if how == "brainstate" else "jax.jit (weights closed over)"


def nbytes_of(*arrays) -> int:
    return int(sum(np.asarray(a).nbytes if not hasattr(a, "nbytes") else a.nbytes for a in arrays))


def host_csr_reference(indptr: np.ndarray, indices: np.ndarray, weight: float, n_post: int):
    """float64 host reference for a scalar-weight CSR connectivity."""

    def ref(spikes: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(spikes)
        out = np.empty((rows.shape[0], n_post))
        for b, row in enumerate(rows):
            act = np.flatnonzero(row)
            if act.size:
                tg = np.concatenate([indices[indptr[i] : indptr[i + 1]] for i in act])
            else:
                tg = np.zeros(0, np.int64)
            out[b] = np.bincount(tg, minlength=n_post) * weight
        return out if spikes.ndim == 2 else out[0]

    return ref


def host_fixed_num_reference(table: np.ndarray, weight: float, n_post: int):
    """float64 host reference for the peer's (n_pre, conn_num) index table."""

    def ref(spikes: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(spikes)
        out = np.stack([np.bincount(table[row].ravel(), minlength=n_post) * weight for row in rows])
        return out if spikes.ndim == 2 else out[0]

    return ref


def device_dense_reference(dense):
    f = jax.jit(lambda s, m: jnp.matmul(s.astype(jnp.float32), m, precision=jax.lax.Precision.HIGHEST))
    return lambda spikes: np.asarray(f(jnp.asarray(spikes), dense))


# ---------------------------------------------------------------------------
# Running one case


class Bench:
    def __init__(self, args, peer, peer_reason):
        self.args = args
        self.peer = peer
        self.peer_reason = peer_reason
        self.report = Report()
        self.rows: list[dict] = []
        self.cases: dict[str, dict] = {}
        self.compiles = CompileCounter()

    # -- one (case, method): compile once, then every rate ---------------------
    def run_method(self, case: dict, m: Method, patterns: dict, progress: Progress, check_all_active: bool):
        args = self.args
        base = {
            "case": case["id"],
            "method": m.name,
            "lib": m.family,
            "wrapper": m.wrapper,
            "n_pre": case["n"],
            "n_post": case["n"],
            "batch": case["batch"],
        }
        rates = list(RATES) + ([1.0] if check_all_active else [])
        try:
            call, held = m.build()
            first_np, _ = patterns[RATES[0]]
            first_dev = jnp.asarray(first_np[0])
            t0 = time.perf_counter()
            jax.block_until_ready(call(first_dev))
            first_call = time.perf_counter() - t0
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            self.report.write(f"| {m.name} | build/first call failed: {msg} |")
            self.rows.append({**base, "error": msg})
            for r in rates:
                progress.step(f"{m.name} {fmt_rate(r)} (failed)")
            return
        traces_first = m.counter[0]
        compiles_sweep = 0
        for rate in rates:
            pats_np, k = patterns[rate]
            pats = [jnp.asarray(p) for p in pats_np]
            row = dict(base, rate=rate, k=k)
            if case["batch"] > 1:
                row["k_union_mean"] = float(np.mean([np.any(p, axis=0).sum() for p in pats_np]))
            try:
                c0 = self.compiles.count
                warm_up(call, pats)
                if rate == 1.0:  # the check: a few calls suffice
                    stats = time_calls(call, pats, min(args.min_time, 0.2), min(args.min_calls, 5), args.max_calls)
                else:
                    stats = time_calls(call, pats, args.min_time, args.min_calls, args.max_calls)
                compiles_sweep += self.compiles.count - c0
                out = np.asarray(call(pats[0]), dtype=np.float64)
                ref = np.asarray(m.reference(pats_np[0]), dtype=np.float64)
                row.update(stats)
                row["max_abs_diff"] = float(np.max(np.abs(out - ref))) if ref.size else 0.0
                row["ref_max_abs"] = float(np.max(np.abs(ref))) if ref.size else 0.0
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            row.update(first_call_s=first_call, conn_bytes=held, note=m.note)
            dense = self._dense_median(case["id"], rate)
            if "median_ms" in row and dense is not None:
                row["speedup_vs_dense"] = dense / row["median_ms"]
            self.rows.append(row)
            self._print_row(row)
            progress.step(f"{m.name} {fmt_rate(rate)}")
        retraced = m.counter[0] != traces_first or compiles_sweep > 0
        for row in self.rows:
            if row["case"] == case["id"] and row["method"] == m.name:
                row.update(retraced=retraced, traces=m.counter[0], compiles_during_sweep=compiles_sweep)

    def _dense_median(self, case_id: str, rate: float):
        for row in self.rows:
            if row["case"] == case_id and row["lib"] == "dense" and row.get("rate") == rate and "median_ms" in row:
                return row["median_ms"]
        return None

    ROW_HEADER = [
        "method",
        "rate",
        "k",
        "median ms",
        "p10",
        "p90",
        "calls",
        "x dense",
        "first call s",
        "bytes",
        "max abs diff",
    ]

    def _print_row(self, r: dict) -> None:
        if "error" in r and "median_ms" not in r:
            self.report.write(f"| {r['method']} | {fmt_rate(r['rate'])} | {r['k']} | error: {r['error']} |")
            return
        self.report.write(
            "| "
            + " | ".join(
                [
                    r["method"],
                    fmt_rate(r["rate"]),
                    str(r["k"]),
                    fmt_ms(r["median_ms"]),
                    fmt_ms(r["p10_ms"]),
                    fmt_ms(r["p90_ms"]),
                    str(r["calls"]),
                    fmt_x(r.get("speedup_vs_dense")),
                    f"{r['first_call_s']:.2f}",
                    fmt_bytes(r["conn_bytes"]),
                    f"{r['max_abs_diff']:.2g}",
                ]
            )
            + " |"
        )

    def run_case(self, case: dict, methods: list[Method], all_active_for: set[str]) -> None:
        rep = self.report
        rep.write(f"## Case {case['id']}: {case['title']}")
        rep.write()
        rep.write(f"Issue target: {case['target']}")
        for note in case.get("notes", []):
            rep.write(f"- {note}")
        rep.write()
        rng = np.random.default_rng(self.args.seed + 1000 * int(case["id"][0]))
        patterns = {r: make_patterns(rng, case["n"], case["batch"], r) for r in RATES}
        patterns[1.0] = ([np.ones_like(patterns[RATES[0]][0][0])], case["n"])
        n_steps = sum(len(RATES) + (1 if m.family in all_active_for else 0) for m in methods)
        progress = Progress(n_steps, f"case {case['id']}")
        rep.write("| " + " | ".join(self.ROW_HEADER) + " |")
        rep.write("|" + "---|" * len(self.ROW_HEADER))
        try:
            for m in methods:
                self.run_method(case, m, patterns, progress, m.family in all_active_for)
                gc.collect()
        finally:
            progress.close()
        rep.write()
        self.cases[case["id"]] = {k: v for k, v in case.items()}
        self.summarise_case(case, [m.name for m in methods])

    def summarise_case(self, case: dict, labels: list[str]) -> None:
        rep = self.report
        rows = [r for r in self.rows if r["case"] == case["id"]]

        def get(label, rate, key):
            for r in rows:
                if r["method"] == label and r.get("rate") == rate:
                    return r.get(key)
            return None

        show_all = any(r.get("rate") == 1.0 for r in rows)
        rate_cols = list(RATES) + ([1.0] if show_all else [])
        rep.write(f"Median ms per call (p10-p90), case {case['id']}:")
        rep.write()
        body = []
        for lab in labels:
            cells = []
            for rate in rate_cols:
                med = get(lab, rate, "median_ms")
                cells.append(
                    "-"
                    if med is None
                    else f"{fmt_ms(med)} ({fmt_ms(get(lab, rate, 'p10_ms'))}-{fmt_ms(get(lab, rate, 'p90_ms'))})"
                )
            body.append([lab, *cells])
        rep.table(["method", *[fmt_rate(r) for r in rate_cols]], body)
        rep.write(f"Speed-up vs dense (dense median / method median), case {case['id']}:")
        rep.write()
        rep.table(
            ["method", *[fmt_rate(r) for r in rate_cols]],
            [[lab, *[fmt_x(get(lab, r, "speedup_vs_dense")) for r in rate_cols]] for lab in labels],
        )
        body = []
        for lab in labels:
            mine = [r for r in rows if r["method"] == lab]
            if not mine:
                continue
            if "first_call_s" not in mine[0]:
                body.append([lab, "-", "-", "-", "-", "-", mine[0].get("error", "")])
                continue
            diffs = [r["max_abs_diff"] for r in mine if "max_abs_diff" in r and r["rate"] != 1.0]
            aa = [r.get("max_abs_diff") for r in mine if r["rate"] == 1.0]
            body.append(
                [
                    lab,
                    mine[0].get("wrapper", ""),
                    f"{mine[0]['first_call_s']:.2f}",
                    fmt_bytes(mine[0]["conn_bytes"]),
                    str(mine[0].get("retraced")),
                    f"{max(diffs):.2g}" if diffs else "-",
                    (f"{aa[0]:.2g}" if aa and aa[0] is not None else "-"),
                ]
            )
        rep.table(
            [
                "method",
                "jit",
                "first call s",
                "bytes held",
                "retraced",
                "max abs diff (rates)",
                "max abs diff (all-active)",
            ],
            body,
        )
        verdict = case.get("verdict")
        if verdict is not None:
            text = verdict(get)
            case["verdict_text"] = text
            rep.write(f"**Target check**: {text}")
            rep.write()


# ---------------------------------------------------------------------------
# Case builders


def lazy_method(name: str, family: str, build, reference, **kw) -> Method:
    """A :class:`Method` built only when measured: ``build(method)`` returns
    ``(call, bytes held)`` and may count traces in ``method.counter``."""
    m = Method(name, family, reference=reference, **kw)
    m.build = lambda: build(m)
    return m


def random_weight(n: int, seed: int):
    w = jax.random.normal(jax.random.PRNGKey(seed), (n, n), jnp.float32) * (1.0 / math.sqrt(n))
    return jax.block_until_ready(w)


def linear_methods(bench: Bench, W, how: str) -> list[Method]:
    n = W.shape[0]
    peer = bench.peer
    ref = device_dense_reference(W)
    wbytes = int(W.nbytes)
    methods: list[Method] = []

    def add(label, lib, build, **kw):
        methods.append(lazy_method(label, lib, build, ref, **kw))

    add("dense s@W", "dense", lambda m: (jit_with_args(lambda s, w: s.astype(jnp.float32) @ w, m.counter, W), wbytes))
    add(
        "eventlib event_matmul (op)",
        "eventlib",
        lambda m: (jit_with_args(lambda s, w: event_matmul(s, w), m.counter, W), wbytes),
    )

    def b_layer(m):
        layer = EventLinear(n, n, W)
        return jit_layer(layer, m.counter, how), int(layer.weight.value.nbytes)

    add("eventlib EventLinear (layer)", "eventlib", b_layer, wrapper=layer_wrapper_name(how))
    if peer is not None:

        def b_peer_layer(m):
            layer = brainstate.nn.EventLinear(n, n, W)  # float_as_event=True by default; spikes are bool
            return jit_layer(layer, m.counter, how), int(np.asarray(layer.weight.value).nbytes)

        add(
            "peer EventLinear (layer)",
            "peer",
            b_peer_layer,
            wrapper=layer_wrapper_name(how),
            note="brainstate.nn.EventLinear, float_as_event=True (default)",
        )
        add(
            "peer BinaryArray@W (op)",
            "peer",
            lambda m: (jit_with_args(lambda s, w: peer.BinaryArray(s) @ w, m.counter, W), wbytes),
            note="brainevent binary_densemv/mm, default CPU backend (numba)",
        )
    return methods


def fixed_prob_methods(
    bench: Bench, n: int, p: float, how: str, with_dense: bool = True, with_bcoo: bool = True
) -> tuple[list[Method], dict]:
    """Methods for the sparse cases; also returns build facts."""
    peer = bench.peer
    info = {}
    t0 = time.perf_counter()
    layer = EventFixedProb(n, n, conn_num=p, conn_weight=WEIGHT, seed=0)
    jax.block_until_ready((layer.indptr, layer.indices))
    info["eventlib_build_s"] = time.perf_counter() - t0
    info["eventlib_synapses"] = layer.n_synapses
    info["eventlib_max_row"] = layer.max_row
    indptr_np, indices_np = np.asarray(layer.indptr), np.asarray(layer.indices)
    ref = host_csr_reference(indptr_np, indices_np, WEIGHT, n)
    methods: list[Method] = []

    def add(label, lib, build, reference, **kw):
        methods.append(lazy_method(label, lib, build, reference, **kw))

    if with_dense:

        def b_dense(m):
            dense = jax.block_until_ready(layer.to_dense())
            return jit_with_args(lambda s, w: s.astype(jnp.float32) @ w, m.counter, dense), int(dense.nbytes)

        add("dense s@M", "dense", b_dense, ref, note="M = eventlib's connectivity as a dense matrix")

    def b_layer(m):
        return jit_layer(layer, m.counter, how), int(layer.nbytes)

    add(
        "eventlib EventFixedProb (layer)",
        "eventlib",
        b_layer,
        ref,
        wrapper=layer_wrapper_name(how),
        note=f"Bernoulli(p) per pair, no repeats: {layer.n_synapses} synapses",
    )

    def b_op(m):
        w = jnp.float32(WEIGHT)
        max_row = layer.max_row
        f = lambda s, w, ip, ix: csr_event_matmul(s, w, ip, ix, n, max_row=max_row)  # noqa: E731
        return jit_with_args(f, m.counter, w, layer.indptr, layer.indices), int(layer.nbytes)

    add("eventlib csr_event_matmul (op)", "eventlib", b_op, ref, note="connectivity passed as jit arguments")

    if with_bcoo:

        def b_bcoo(m):
            pre, post = layer.synapses()
            mat = jsparse.BCOO((jnp.full(pre.shape, WEIGHT, jnp.float32), jnp.stack([pre, post], 1)), shape=(n, n))
            held = int(mat.data.nbytes + mat.indices.nbytes)
            return jit_with_args(lambda s, mm: s.astype(jnp.float32) @ mm, m.counter, mat), held

        add("BCOO s@M (jax.experimental.sparse)", "jax.sparse", b_bcoo, ref, note="built from eventlib's synapses")

    if peer is not None:
        t0 = time.perf_counter()
        player = brainstate.nn.EventFixedProb(n, n, conn_num=p, conn_weight=WEIGHT, seed=0)
        jax.block_until_ready(player.weight.value)
        info["peer_build_s"] = time.perf_counter() - t0
        table = np.asarray(player.conn.indices)
        info["peer_conn_num"] = int(table.shape[1])
        info["peer_synapses"] = int(table.size)
        info["peer_distinct_fraction"] = (
            float(np.mean([np.unique(r).size for r in table[: min(200, n)]]) / table.shape[1]) if table.size else None
        )
        pref = host_fixed_num_reference(table, WEIGHT, n)
        peer_bytes = int(table.nbytes + np.asarray(player.weight.value).nbytes)

        def b_peer(m):
            return jit_layer(player, m.counter, how), peer_bytes

        add(
            "peer EventFixedProb (layer)",
            "peer",
            b_peer,
            pref,
            wrapper=layer_wrapper_name(how),
            note=f"fixed {table.shape[1]} targets per pre, drawn with replacement (allow_multi_conn=True)",
        )

        def b_peer_op(m):
            mat = peer.FixedNumPerPre((jnp.float32(WEIGHT), jnp.asarray(table)), shape=(n, n))
            return jit_with_args(lambda s, mm: peer.BinaryArray(s) @ mm, m.counter, mat), peer_bytes

        add(
            "peer BinaryArray@FixedNumPerPre (op)",
            "peer",
            b_peer_op,
            pref,
            note="brainevent binary_fcnmv/mm (numba); index table passed as a jit argument",
        )
    return methods, info


def verdict_speedup(labels, rate, factor):
    def check(get):
        parts = []
        for lab in labels:
            s = get(lab, rate, "speedup_vs_dense")
            if s is not None:
                parts.append(f"{lab}: {s:.3g}x vs dense at {fmt_rate(rate)} ({'met' if s >= factor else 'NOT met'})")
        return "; ".join(parts) or "not measured"

    return check


def verdict_vs_peer(ours, theirs, rates, falls_with_rate=False):
    def check(get):
        parts = []
        for rate in rates:
            a, b = get(ours, rate, "median_ms"), get(theirs, rate, "median_ms")
            if a is None:
                parts.append(f"{ours} not measured at {fmt_rate(rate)}")
            elif b is None:
                parts.append(f"{ours} {fmt_ms(a)} ms at {fmt_rate(rate)}; peer not measured")
            else:
                parts.append(
                    f"at {fmt_rate(rate)} {ours} {fmt_ms(a)} ms vs {theirs} {fmt_ms(b)} ms "
                    f"({'met' if a < b else 'NOT met'}, ratio {b / a:.3g})"
                )
        if falls_with_rate:
            meds = [get(ours, r, "median_ms") for r in RATES]
            if None not in meds:
                mono = all(x <= y * 1.05 for x, y in zip(meds[:-1], meds[1:], strict=True))
                parts.append(
                    f"{ours} time over rates {' / '.join(fmt_ms(x) for x in meds)} ms: "
                    f"{'falls monotonically as the rate falls (met)' if mono else 'NOT monotone in rate'}"
                )
        return "; ".join(parts)

    return check


def quick_note(args) -> list[str]:
    return (
        ["QUICK RUN: sizes are reduced, so target checks do not apply to the issue's configuration"]
        if args.quick
        else []
    )


def case1(bench: Bench) -> None:
    args = bench.args
    n = args.n_linear
    W = random_weight(n, args.seed)
    case = {
        "id": "1",
        "title": f"EventLinear, n_pre = n_post = {n}, batch 1",
        "target": "eventlib >= 50x faster than dense at 1% (issue config n=20000; peer measured 1.3 ms vs 87 ms dense)",
        "n": n,
        "batch": 1,
        "notes": quick_note(args) + ["W ~ N(0, 1/n) float32; spikes bool"],
        "verdict": verdict_speedup(["eventlib event_matmul (op)", "eventlib EventLinear (layer)"], 0.01, 50.0),
    }
    bench.run_case(case, linear_methods(bench, W, args.layer_jit), {"eventlib", "dense"})
    del W
    gc.collect()


def case2(bench: Bench) -> None:
    args = bench.args
    n, p = args.n_sparse, 0.05
    methods, info = fixed_prob_methods(bench, n, p, args.layer_jit)
    notes = quick_note(args) + [
        f"eventlib: each pair connected with probability p={p}, no repeats "
        f"({info['eventlib_synapses']} synapses, longest row {info['eventlib_max_row']}, "
        f"built in {info['eventlib_build_s']:.2f} s)",
        f"scalar weight {WEIGHT}; the reference is a float64 host sum over the active rows",
    ]
    if "peer_conn_num" in info:
        notes.append(
            f"peer: brainstate.nn.EventFixedProb(n, n, conn_num={p}) = a FIXED count int(n*p) = "
            f"{info['peer_conn_num']} targets per pre, drawn WITH replacement (default allow_multi_conn=True; "
            f"~{100 * info['peer_distinct_fraction']:.1f}% of a row's targets distinct), "
            f"{info['peer_synapses']} synapses, built in {info['peer_build_s']:.2f} s"
        )
    else:
        notes.append(f"peer skipped: {bench.peer_reason}")
    case = {
        "id": "2",
        "title": f"EventFixedProb, n = {n}, p = {p}, scalar weight, batch 1",
        "target": "eventlib faster than the peer at 1% (issue config n=20000; peer measured 0.29 ms)",
        "n": n,
        "batch": 1,
        "notes": notes,
        "build": info,
        "verdict": verdict_vs_peer("eventlib EventFixedProb (layer)", "peer EventFixedProb (layer)", [0.01]),
    }
    bench.run_case(case, methods, {"eventlib", "dense"})
    del methods
    gc.collect()


def case3(bench: Bench) -> None:
    args = bench.args
    n, b, p = args.n_batched, args.batch, 0.05
    methods, info = fixed_prob_methods(bench, n, p, args.layer_jit)
    notes = quick_note(args) + [
        "every batch row has exactly k active inputs; k_union (JSON) = inputs active in any row",
        f"eventlib: {info['eventlib_synapses']} synapses (Bernoulli p={p}); "
        + (
            f"peer: {info['peer_conn_num']} targets per pre with replacement"
            if "peer_conn_num" in info
            else f"peer skipped: {bench.peer_reason}"
        ),
    ]
    case = {
        "id": "3a",
        "title": f"EventFixedProb batched, n = {n}, p = {p}, batch {b}",
        "target": "eventlib time falls with rate and beats the peer at 0.1%",
        "n": n,
        "batch": b,
        "notes": notes,
        "build": info,
        "verdict": verdict_vs_peer(
            "eventlib EventFixedProb (layer)", "peer EventFixedProb (layer)", [0.001], falls_with_rate=True
        ),
    }
    bench.run_case(case, methods, {"eventlib", "dense"})
    del methods
    gc.collect()
    W = random_weight(n, args.seed + 1)
    case = {
        "id": "3b",
        "title": f"EventLinear batched, n = {n}, batch {b}",
        "target": "eventlib time falls with rate and beats the peer at 0.1%",
        "n": n,
        "batch": b,
        "notes": quick_note(args) + ["W ~ N(0, 1/n) float32"],
        "verdict": verdict_vs_peer(
            "eventlib EventLinear (layer)", "peer EventLinear (layer)", [0.001], falls_with_rate=True
        ),
    }
    bench.run_case(case, linear_methods(bench, W, args.layer_jit), {"eventlib", "dense"})
    del W
    gc.collect()


def time_build(make, repeats: int) -> tuple[list[float], Any]:
    times, obj = [], None
    for r in range(repeats):
        obj = None
        gc.collect()
        t0 = time.perf_counter()
        obj = make(r)
        jax.block_until_ready([x for x in jax.tree_util.tree_leaves(obj[1]) if hasattr(x, "block_until_ready")])
        times.append(time.perf_counter() - t0)
    return times, obj


def case4(bench: Bench) -> None:
    """Construction time."""
    args, rep, peer = bench.args, bench.report, bench.peer
    n, p = args.n_build, 0.05
    k = int(n * p)
    rep.write(f"## Case 4: construction, n = {n}, conn_num = {p}")
    rep.write()
    rep.write(
        f"Issue target: EventFixedProb({n}, {n}, conn_num={p}) builds in < 2 s "
        "(issue config n=20000; peer with allow_multi_conn=False measured 36.6 s)"
    )
    for note in quick_note(args):
        rep.write(f"- {note}")
    rep.write()

    def ev(**kw):
        def make(r):
            layer = EventFixedProb(n, n, conn_weight=WEIGHT, seed=r, **kw)
            return layer, (layer.indptr, layer.indices)

        return make

    def pe(**kw):
        def make(r):
            layer = brainstate.nn.EventFixedProb(n, n, conn_weight=WEIGHT, seed=r, **kw)
            return layer, (layer.weight.value, layer.conn.indices)

        return make

    plan = [
        (
            "eventlib EventFixedProb(conn_num=p)",
            "Bernoulli(p) per pair, no repeats",
            ev(conn_num=p),
            3,
            lambda L: (L.n_synapses, L.nbytes),
        ),
        (
            f"eventlib EventFixedProb(conn_num={k}, allow_multi_conn=False)",
            f"{k} distinct targets per pre",
            ev(conn_num=k, allow_multi_conn=False),
            3,
            lambda L: (L.n_synapses, L.nbytes),
        ),
        (
            f"eventlib EventFixedProb(conn_num={k}, allow_multi_conn=True)",
            f"{k} targets per pre, with replacement",
            ev(conn_num=k, allow_multi_conn=True),
            3,
            lambda L: (L.n_synapses, L.nbytes),
        ),
    ]
    skipped = []
    if peer is not None:

        def peer_facts(L):
            t = np.asarray(L.conn.indices)
            return int(t.size), int(t.nbytes + np.asarray(L.weight.value).nbytes)

        plan.append(
            (
                "peer EventFixedProb(conn_num=p) default allow_multi_conn=True",
                f"int(n*p)={k} targets per pre, with replacement",
                pe(conn_num=p),
                3,
                peer_facts,
            )
        )
        if args.skip_slow_peer:
            skipped.append("peer allow_multi_conn=False skipped (--skip-slow-peer)")
        else:
            plan.append(
                (
                    "peer EventFixedProb(conn_num=p, allow_multi_conn=False)",
                    f"int(n*p)={k} distinct targets per pre",
                    pe(conn_num=p, allow_multi_conn=False),
                    1,
                    peer_facts,
                )
            )
    else:
        skipped.append(f"peer skipped: {bench.peer_reason}")
    progress = Progress(len(plan), "case 4")
    out_rows = []
    try:
        for label, semantics, make, repeats, facts in plan:
            row = {
                "case": "4",
                "method": label,
                "lib": label.split()[0],
                "n_pre": n,
                "n_post": n,
                "semantics": semantics,
                "repeats": repeats,
            }
            try:
                times, (obj, _) = time_build(make, repeats)
                syn, held = facts(obj)
                row.update(
                    build_s_median=float(np.median(times)), build_s_all=times, synapses=int(syn), conn_bytes=int(held)
                )
                del obj
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            out_rows.append(row)
            bench.rows.append(row)
            progress.step(label)
            gc.collect()
    finally:
        progress.close()
    rep.table(
        ["builder", "semantics", "synapses", "bytes held", "build s (median)", "runs"],
        [
            [
                r["method"],
                r["semantics"],
                r.get("synapses", "-"),
                fmt_bytes(r.get("conn_bytes")),
                f"{r['build_s_median']:.3g}" if "build_s_median" in r else r.get("error", "-"),
                r["repeats"],
            ]
            for r in out_rows
        ],
    )
    for s in skipped:
        rep.write(f"- {s}")
    ours = out_rows[0].get("build_s_median")
    text = (
        (
            f"eventlib EventFixedProb(conn_num={p}) built in {ours:.3g} s "
            f"({'met' if ours < 2.0 else 'NOT met'}; target < 2 s)"
        )
        if ours is not None
        else "not measured"
    )
    rep.write()
    rep.write(f"**Target check**: {text}")
    rep.write()
    bench.cases["4"] = {
        "id": "4",
        "title": f"construction, n = {n}, conn_num = {p}",
        "n": n,
        "target": "eventlib < 2 s",
        "verdict_text": text,
        "notes": skipped + quick_note(args),
    }


def case5(bench: Bench) -> None:
    """Scale demo: 10**6 neurons, 1e8 synapses."""
    args, rep = bench.args, bench.report
    n, p, rate = args.n_scale, args.p_scale, 0.001
    rep.write(f"## Case 5: scale demo, EventFixedProb({n}, {n}, conn_num={p:g})")
    rep.write()
    progress = Progress(4, "case 5")
    info: dict[str, Any] = {"case": "5", "n_pre": n, "n_post": n, "conn_num": p, "rate": rate, "batch": 1}
    try:
        t0 = time.perf_counter()
        layer = EventFixedProb(n, n, conn_num=p, conn_weight=WEIGHT, seed=0)
        jax.block_until_ready((layer.indptr, layer.indices))
        info["build_s"] = time.perf_counter() - t0
        info["synapses"] = layer.n_synapses
        info["conn_bytes"] = layer.nbytes
        info["max_row"] = layer.max_row
        progress.step("build")
        rng = np.random.default_rng(args.seed + 5000)
        pats_np, k = make_patterns(rng, n, 1, rate)
        info["k"] = k
        pats = [jnp.asarray(x) for x in pats_np]
        ref = host_csr_reference(np.asarray(layer.indptr), np.asarray(layer.indices), WEIGHT, n)
        variants = [
            (
                "eventlib csr_event_matmul (op)",
                "jax.jit",
                lambda c: jit_with_args(
                    lambda s, w, ip, ix: csr_event_matmul(s, w, ip, ix, n, max_row=layer.max_row),
                    c,
                    jnp.float32(WEIGHT),
                    layer.indptr,
                    layer.indices,
                ),
            ),
            (
                "eventlib EventFixedProb (layer)",
                layer_wrapper_name(args.layer_jit),
                lambda c: jit_layer(layer, c, args.layer_jit),
            ),
        ]
        info["methods"] = []
        for label, wrapper, make in variants:
            counter = [0]
            entry: dict[str, Any] = {"method": label, "wrapper": wrapper}
            try:
                call = make(counter)
                t0 = time.perf_counter()
                jax.block_until_ready(call(pats[0]))
                entry["first_call_s"] = time.perf_counter() - t0
                warm_up(call, pats)
                entry.update(time_calls(call, pats, args.min_time, args.min_calls, args.max_calls))
                out = np.asarray(call(pats[0]), np.float64)
                entry["max_abs_diff"] = float(np.max(np.abs(out - ref(pats_np[0]))))
                entry["traces"] = counter[0]
                entry["retraced"] = counter[0] != 1
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            info["methods"].append(entry)
            progress.step(label)
        layer = variants = None  # release the 1e8-synapse table before the next case
    except Exception as exc:
        info["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    finally:
        progress.close()
    gc.collect()
    bench.rows.append({**info, "method": "scale demo", "lib": "eventlib"})
    rep.write(
        f"Build {info.get('build_s', float('nan')):.3g} s; {info.get('synapses', '-')} synapses; "
        f"bytes held {fmt_bytes(info.get('conn_bytes'))} (a dense matrix would need "
        f"{fmt_bytes(4 * n * n)}); one call at {fmt_rate(rate)} activity (k = {info.get('k', '-')}):"
    )
    rep.write()
    rep.table(
        ["method", "jit", "first call s", "median ms", "p10", "p90", "calls", "max abs diff"],
        [
            [
                e["method"],
                e["wrapper"],
                f"{e['first_call_s']:.2f}" if "first_call_s" in e else "-",
                fmt_ms(e.get("median_ms")),
                fmt_ms(e.get("p10_ms")),
                fmt_ms(e.get("p90_ms")),
                e.get("calls", "-"),
                f"{e['max_abs_diff']:.2g}" if "max_abs_diff" in e else e.get("error", "-"),
            ]
            for e in info.get("methods", [])
        ],
    )
    if "error" in info:
        rep.write(f"error: {info['error']}")
    bench.cases["5"] = {
        "id": "5",
        "title": f"scale demo n = {n}, conn_num = {p:g}",
        "n": n,
        "target": "(demonstration; no target)",
    }


# ---------------------------------------------------------------------------


def parse_args(argv=None, results: Path = Path("benchmarks/results")):
    """The command line of ``benchmarks/cpu_core.py``; ``--out`` defaults to
    ``cpu_core.json`` (``cpu_core_quick.json`` with ``--quick``) in ``results``."""
    ap = argparse.ArgumentParser(
        prog="benchmarks/cpu_core.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke test); skips case 5")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default benchmarks/results/cpu_core.json, or cpu_core_quick.json with "
        "--quick); the markdown copy goes next to it with suffix .md",
    )
    ap.add_argument("--cases", default="1,2,3,4,5", help="comma-separated subset of 1,2,3,4,5")
    ap.add_argument(
        "--skip-slow-peer",
        action="store_true",
        help="skip the peer's O(n_pre*n_post) allow_multi_conn=False construction in case 4",
    )
    ap.add_argument("--no-peer", action="store_true", help="do not measure the peer even if installed")
    ap.add_argument(
        "--layer-jit",
        choices=("brainstate", "jax"),
        default="brainstate",
        help="how layers are jitted: brainstate.transform.jit (weights are jit arguments; default) or "
        "jax.jit (weights closed over as constants: slow first call at large n)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-time", type=float, default=None, help="seconds of calls per cell (default 0.5)")
    ap.add_argument("--min-calls", type=int, default=None, help="calls per cell at least (default 15)")
    ap.add_argument("--max-calls", type=int, default=None, help="calls per cell at most (default 2000)")
    ap.add_argument("--n-linear", type=int, default=None, help="case 1 size (default 20000)")
    ap.add_argument("--n-sparse", type=int, default=None, help="case 2 size (default 20000)")
    ap.add_argument("--n-batched", type=int, default=None, help="case 3 size (default 5000)")
    ap.add_argument("--batch", type=int, default=None, help="case 3 batch (default 32)")
    ap.add_argument("--n-build", type=int, default=None, help="case 4 size (default 20000)")
    ap.add_argument("--n-scale", type=int, default=10**6, help="case 5 size (default 10**6)")
    ap.add_argument("--p-scale", type=float, default=1e-4, help="case 5 connection probability (default 1e-4)")
    args = ap.parse_args(argv)
    quick = args.quick
    defaults = {
        "min_time": (0.05, 0.5),
        "min_calls": (5, 15),
        "max_calls": (200, 2000),
        "n_linear": (2000, 20000),
        "n_sparse": (2000, 20000),
        "n_batched": (1000, 5000),
        "batch": (8, 32),
        "n_build": (2000, 20000),
    }
    for key, (q, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, q if quick else full)
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in args.case_list if c not in ("1", "2", "3", "4", "5")]
    if bad:
        ap.error(f"unknown case(s) {bad}; choose from 1,2,3,4,5")
    if quick and args.cases == "1,2,3,4,5":
        args.case_list = ["1", "2", "3", "4"]
    if args.out is None:
        args.out = results / ("cpu_core_quick.json" if quick else "cpu_core.json")
    return args


def write_outputs(bench: Bench, env: dict, args, peer, reason) -> None:
    result = {
        "meta": env,
        "peer": {"available": peer is not None, "reason_skipped": reason},
        "rates": list(RATES),
        "cases": {k: {kk: vv for kk, vv in c.items() if not callable(vv)} for k, c in bench.cases.items()},
        "rows": bench.rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(bench.report.lines) + "\n")


def run(args) -> int:
    """Runs the cases ``args.case_list``, printing the report as results
    arrive and writing ``args.out`` (JSON) and the report beside it after
    every case.

    Args:
        args: the result of :func:`parse_args`.

    Returns:
        0.
    """
    # brainstate 0.6 calls brainevent names that brainevent 0.3 deprecates:
    # one warning per call would bury the report.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    peer, reason = load_peer(args.no_peer)
    bench = Bench(args, peer, reason)
    env = environment(args)
    rep = bench.report
    v = env["versions"]
    rep.write(f"# eventlib CPU benchmark{' (QUICK)' if args.quick else ''}")
    rep.write()
    rep.write(f"- date {env['date_utc']}; command `{env['command']}`")
    rep.write(
        f"- CPU {env['cpu_model']}, {env['cpu_count']} cores ({env['cpus_usable']} usable); "
        f"JAX backend {env['jax_backend']}"
    )
    rep.write("- versions: " + ", ".join(f"{k} {v[k]}" for k in v))
    peer_line = f"brainstate {v['brainstate']} + brainevent {v['brainevent']}" if peer else f"SKIPPED: {reason}"
    rep.write(f"- peer: {peer_line}")
    rep.write(
        f"- timing: median of >= {args.min_calls} calls and >= {args.min_time} s (at most {args.max_calls}) "
        f"after warm-up, cycling {N_PATTERNS} spike patterns per rate; layers jitted with "
        f"{layer_wrapper_name(args.layer_jit)}"
    )
    rep.write()
    runners = {"1": case1, "2": case2, "3": case3, "4": case4, "5": case5}
    t_start = time.perf_counter()
    for i, c in enumerate(args.case_list):
        print(f"[case {c}: {i + 1}/{len(args.case_list)} cases]", file=sys.stderr, flush=True)
        runners[c](bench)
        env["cases_done"] = args.case_list[: i + 1]
        write_outputs(bench, env, args, peer, reason)  # a checkpoint after every case
    env["total_s"] = time.perf_counter() - t_start
    rep.write(f"Total time {env['total_s']:.0f} s.")
    write_outputs(bench, env, args, peer, reason)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}", file=sys.stderr)
    return 0
