"""The large cases on one GPU: 10^9 stored synapses, procedural against
stored connectivity, and 10^10 procedural synapses.

The command line is ``benchmarks/scale_gpu.py``.

Cases (batch 1, in-graph medians as in ``python -m eventlib.bench``):

1. **10^10 procedural synapses**: ``EventFixedProb(n, n, prob, procedural=True)``
   with n = 10^6 and prob = 0.01 (10^4 targets per neuron on average);
   device memory in use before and after building it and its peak during
   the calls. Run first, so that the peak is this case's own.
2. **Procedural against stored** at a size where both fit: the same layer
   (same seed, so the same matrix; checked) built both ways, time per
   synaptic event.
3. **10^9 stored synapses**: n = 10^6 neurons with 1000 targets each
   (repeats allowed, as brainevent's ``FixedNumPerPre`` table), drawn on the
   device; eventlib's kernel, its deterministic mode, and XLA's own
   scatter-add of the same events (the rate a plain scatter reaches).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..layers import EventFixedProb
from ..ops import csr_event_matmul, which_path
from .harness import Method, device_name, versions
from .harness import log as _log
from .operators import measure


def memory_in_use() -> dict:
    """``bytes_in_use`` and ``peak_bytes_in_use`` of the first local device."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return {k: stats.get(k) for k in ("bytes_in_use", "peak_bytes_in_use")}


def patterns_of(rng, n: int, rate: float, count: int):
    """``count`` spike vectors with exactly ``rate * n`` active inputs."""
    k = max(1, int(round(rate * n)))
    out = np.zeros((count, 1, n), np.float32)
    for p in range(count):
        out[p, 0, rng.choice(n, k, replace=False)] = 1.0
    return jnp.asarray(out), k


def log(msg: str) -> None:
    """Progress on stdout (this script's log is its output)."""
    _log(msg, file=sys.stdout)


def timed_row(case, method, patterns, events, args, **extra) -> tuple[dict, np.ndarray]:
    """The row of ``method`` timed on ``patterns`` (``events`` synaptic
    events per call), and its first output."""
    r = measure(method, patterns, args.reps, args.budget)
    out = r.pop("first_out")
    row = {"case": case, "method": method.name, "events_per_call": events, **r, **extra}
    row["us"] = row.pop("ms") * 1e3
    row["ns_per_event"] = row["us"] * 1e3 / events
    row["updates_per_s"] = events / (row["us"] * 1e-6)
    log(f"  {method.name}: {row['us']:.1f} us per call, {row['ns_per_event']:.3f} ns per event")
    return row, np.asarray(out)


def procedural_huge(args, rng, rows):
    """Case 1: 10^10 procedural synapses, with the device memory in use."""
    n, prob = args.huge_n, args.huge_prob
    log(f"procedural: n = {n}, prob = {prob} ({n * n * prob:.3g} synapses expected)")
    before = memory_in_use()
    layer = EventFixedProb(n, n, prob, conn_weight=0.5, seed=1, procedural=True)
    held = sum(int(a.nbytes) for a in layer.connectivity.value.values())
    after = memory_in_use()
    for rate in args.huge_rates:
        patterns, k = patterns_of(rng, n, rate, args.patterns)
        m = Method("eventlib EventFixedProb procedural", "sparse", lambda s: layer(s), ())
        row, _ = timed_row("procedural 10^10", m, patterns, k * n * prob, args, n=n, prob=prob, rate=rate)
        row.update(layer_index_bytes=held, memory_before=before, memory_after_build=after, memory=memory_in_use())
        rows.append(row)
        del patterns


def procedural_vs_stored(args, rng, rows):
    """Case 2: the same layer procedural and stored; time per synaptic event."""
    n, prob = args.both_n, args.both_prob
    log(f"procedural against stored: n = {n}, prob = {prob}")
    patterns, k = patterns_of(rng, n, args.both_rate, args.patterns)
    outs = {}
    for procedural in (False, True):
        t0 = time.perf_counter()
        layer = EventFixedProb(n, n, prob, conn_weight=0.5, seed=2, procedural=procedural)
        build_s = time.perf_counter() - t0
        form = "procedural" if procedural else "stored"
        held = sum(int(a.nbytes) for a in layer.connectivity.value.values())
        m = Method(f"eventlib EventFixedProb {form}", "sparse", lambda s, layer=layer: layer(s), ())
        row, outs[form] = timed_row(
            "procedural vs stored", m, patterns, k * n * prob, args, n=n, prob=prob, rate=args.both_rate
        )
        row.update(build_s=build_s, layer_index_bytes=held)
        rows.append(row)
        del layer
    same = bool(np.array_equal(outs["stored"], outs["procedural"]))
    log(f"  same outputs (sums of 0.5 are exact): {same}")
    rows[-1]["same_output_as_stored"] = same


def stored_billion(args, rng, rows):
    """Case 3: 10^9 stored synapses, against XLA's scatter-add of the same events."""
    n, k = args.big_n, args.big_k
    log(f"stored: n = {n}, {k} targets each ({n * k:.3g} synapses)")
    key = jax.random.PRNGKey(3)
    indices = jax.random.randint(key, (n * k,), 0, n, jnp.int32)
    indptr = jnp.arange(n + 1, dtype=jnp.int32) * k
    table = indices.reshape(n, k)
    jax.block_until_ready(indices)
    memory = memory_in_use()
    for rate in args.big_rates:
        patterns, n_active = patterns_of(rng, n, rate, args.patterns)
        cap = 2 * n_active

        def xla_scatter(s, table, cap=cap):
            idx = jnp.nonzero(s[0], size=cap, fill_value=n)[0]
            tgt = table.at[idx].get(mode="fill", fill_value=n).reshape(-1)
            return jnp.zeros((n,), jnp.float32).at[tgt].add(0.5, mode="drop")[None]

        methods = [
            Method(
                "eventlib csr_event_matmul",
                "sparse",
                lambda s, ip, ix: csr_event_matmul(s, 0.5, ip, ix, n, max_row=k),
                (indptr, indices),
            ),
            Method(
                "eventlib csr_event_matmul deterministic",
                "sparse",
                lambda s, ip, ix: csr_event_matmul(s, 0.5, ip, ix, n, max_row=k, deterministic=True),
                (indptr, indices),
            ),
            Method("XLA nonzero + gather + scatter-add", "sparse", xla_scatter, (table,)),
        ]
        outs = {}
        for m in methods:
            try:
                row, outs[m.name] = timed_row("stored 10^9", m, patterns, n_active * k, args, n=n, k=k, rate=rate)
            except Exception as e:  # noqa: BLE001 - reported, the run goes on
                row = {"case": "stored 10^9", "method": m.name, "n": n, "k": k, "rate": rate, "error": repr(e)[:300]}
                log(f"  {m.name}: {row['error']}")
            row["memory"] = memory
            rows.append(row)
        ref = outs.get("XLA nonzero + gather + scatter-add")
        for name, out in outs.items():
            if ref is not None:
                log(f"  {name}: equal to XLA's scatter: {np.array_equal(out, ref)}")
                for r in rows:
                    if r.get("method") == name and r.get("rate") == rate and r["case"] == "stored 10^9":
                        r["equal_to_xla_scatter"] = bool(np.array_equal(out, ref))
        del patterns


def table(result: dict) -> str:
    """The rows as a markdown table."""
    lines = [
        f"`{result['command']}`",
        "",
        f"{result['date']}, {result['device']}, jax {result['versions'].get('jax')}, path {result['path']!r}",
        "",
        "| case | method | n | active | events per call | us per call | ns per event | 10^9 updates/s "
        "| index bytes held |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if "us" not in r:
            lines.append(
                f"| {r['case']} | {r['method']} | {r['n']} | {r['rate']:g} | error: {r.get('error')} | | | | |"
            )
            continue
        held = r.get("layer_index_bytes")
        lines.append(
            f"| {r['case']} | {r['method']} | {r['n']} | {r['rate']:g} | {r['events_per_call']:.3g} | "
            f"{r['us']:.1f} | {r['ns_per_event']:.3f} | {r['updates_per_s'] * 1e-9:.1f} | "
            f"{'' if held is None else f'{held:,}'} |"
        )
    peaks = [
        r["memory"]["peak_bytes_in_use"] for r in result["rows"] if r["case"] == "procedural 10^10" and r.get("memory")
    ]
    if peaks and peaks[0] is not None:
        lines += [
            "",
            "Peak device memory during the 10^10-synapse procedural case (inputs included): "
            f"{max(peaks) / 2**20:.0f} MiB.",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    """The command line of ``benchmarks/scale_gpu.py``."""
    ap = argparse.ArgumentParser(prog="benchmarks/scale_gpu.py", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("scale.json"))
    ap.add_argument("--patterns", type=int, default=4)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--huge-n", type=int, default=10**6)
    ap.add_argument("--huge-prob", type=float, default=0.01)
    ap.add_argument("--huge-rates", type=float, nargs="+", default=[0.001, 0.01])
    ap.add_argument("--both-n", type=int, default=10**5)
    ap.add_argument("--both-prob", type=float, default=0.01)
    ap.add_argument("--both-rate", type=float, default=0.01)
    ap.add_argument("--big-n", type=int, default=10**6)
    ap.add_argument("--big-k", type=int, default=1000)
    ap.add_argument("--big-rates", type=float, nargs="+", default=[0.001, 0.01])
    ap.add_argument("--cases", nargs="+", default=["huge", "both", "big"], choices=["huge", "both", "big"])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.huge_n, args.both_n, args.big_n, args.big_k = 20000, 5000, 20000, 100
        args.patterns, args.reps, args.budget = 2, 3, 0.2
    return args


def run(args) -> dict:
    """Runs the cases ``args.cases`` and writes ``args.out`` (JSON, after
    every case) and a markdown table beside it.

    Args:
        args: the parsed command line of ``benchmarks/scale_gpu.py``.

    Returns:
        the result: command, date, device, versions and rows.
    """
    rng = np.random.default_rng(0)
    rows: list[dict] = []
    result = {
        "command": "python benchmarks/scale_gpu.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": device_name(),
        "backend": jax.default_backend(),
        "path": which_path(),
        "versions": versions(),
        "rows": rows,
    }
    steps = {"huge": procedural_huge, "both": procedural_vs_stored, "big": stored_billion}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for case in args.cases:
        steps[case](args, rng, rows)
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")  # partial results survive
    args.out.with_suffix(".md").write_text(table(result))
    log(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return result
