"""Numbers and tables of the prose pages, read from ``benchmarks/results/*.json`` at build time.

The prose pages (``book/benchmarks.md``, ``book/concepts.md``) never type a measured number: they
name it, and this extension looks it up in the committed results when the book is built.

- ``{bench}`gpu.dense1.xdense.0.001``` is the role for one value; it renders as
  ``<span class="bench-value">72×</span>`` (``{bench-code}`` renders it as code, for commands).
- The ``bench-table`` directive renders a whole table, computed from the same files, inside
  ``<div class="bench-generated">`` that scrolls sideways on a narrow screen::

      ```{bench-table} gpu-full
      ```

An unknown name is a build error (and the book builds with warnings as errors). The CSS classes
``bench-value`` and ``bench-generated`` are how ``tests/book/test_prose_numbers.py`` tells generated
numbers from typed ones. Each value is defined once, in :func:`values`, and each table in
:data:`TABLES`.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
RATES = (0.001, 0.01, 0.05, 0.2)  # the activity levels every operator benchmark measures


# -- formatting ------------------------------------------------------------------------------


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, without an exponent for the sizes used here."""
    return f"{x:.{digits}g}" if abs(x) < 10**digits else f"{x:,.0f}"


def times(x: float) -> str:
    """A ratio, as the book writes speed-ups: ``72×``, ``4.5×``, ``0.41×``."""
    if x >= 10:
        return f"{x:.0f}×"
    return f"{x:.2g}×" if x < 1 else f"{x:.1f}×"


def pct(x: float) -> str:
    """A fraction as a percentage: ``0.87`` -> ``87 %``, ``0.003`` -> ``0.3 %``."""
    p = 100 * x
    return f"{p:.0f} %" if p >= 9.5 else f"{p:.1g} %"


def rate_label(rate: float) -> str:
    return f"{100 * rate:g} %"


# -- the results -----------------------------------------------------------------------------


@cache
def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def cpu_ms(case: str, method: str, rate: float) -> float:
    rows = load("cpu_core.json")["rows"]
    return next(r["median_ms"] for r in rows if (r["case"], r["method"], r.get("rate")) == (case, method, rate))


def gpu_row(n: int, batch: int, method: str, rate: float) -> dict:
    rows = load("gpu_h200.json")["rows"]
    return next(r for r in rows if (r["n"], r["batch"], r["method"], r["rate"]) == (n, batch, method, rate))


def gpu_ms(n: int, batch: int, method: str, rate: float) -> float:
    return gpu_row(n, batch, method, rate)["ms"]


EV_DENSE = "eventlib event_matmul"
PEER_DENSE = "brainevent BinaryArray @ W"
EV_CSR = "eventlib csr_event_matmul"
EV_DET = "eventlib csr_event_matmul deterministic"
PEER_CSR = "brainevent BinaryArray @ FixedNumPerPre"
DENSE_HI = "dense (HIGHEST)"
DENSE_TF32 = "dense (default)"


def _span(xs, fmt) -> str:
    """The range of ``xs`` as ``lo–hi unit`` (the unit written once)."""
    lo, hi = fmt(min(xs)), fmt(max(xs))
    if lo == hi:
        return lo
    unit = re.search(r"[^\d.,]*$", lo).group()
    return f"{lo.removesuffix(unit)}–{hi}"


@cache
def values() -> dict[str, str]:
    """Every named value of the prose pages: name -> text."""
    v: dict[str, str] = {}
    cpu = load("cpu_core.json")
    meta = cpu["meta"]
    v["cpu.date"] = meta["date_utc"][:10]
    v["cpu.model"] = meta["cpu_model"]
    v["cpu.cores"] = str(meta["cpu_count"])
    for pkg in ("jax", "brainstate", "brainevent", "numba"):
        v[f"cpu.version.{pkg}"] = meta["versions"][pkg]

    # Case 1: a dense weight, n = 20000, one vector.
    for rate in RATES:
        dense = cpu_ms("1", "dense s@W", rate)
        v[f"cpu.1.xdense.{rate}"] = times(dense / cpu_ms("1", "eventlib event_matmul (op)", rate))
    # Case 2: stored connectivity, one vector.
    v["cpu.2.xdense.low"] = _span(
        [cpu_ms("2", "dense s@M", r) / cpu_ms("2", "eventlib csr_event_matmul (op)", r) for r in RATES[:2]], times
    )
    v["cpu.2.peer_faster"] = _span(
        [
            cpu_ms("2", "eventlib EventFixedProb (layer)", r) / cpu_ms("2", "peer EventFixedProb (layer)", r)
            for r in RATES
        ],
        times,
    )
    # Case 3a: stored connectivity, batch 32.
    peer3 = [cpu_ms("3a", "peer EventFixedProb (layer)", r) for r in RATES]
    v["cpu.3a.peer_ms"] = _span(peer3, lambda x: f"{x:.0f} ms")
    v["cpu.3a.eventlib_ms.0.001"] = f"{cpu_ms('3a', 'eventlib EventFixedProb (layer)', 0.001):.1f} ms"
    # Cases 4 and 5: construction.
    build = next(r for r in cpu["rows"] if r["case"] == "4" and r["method"] == "eventlib EventFixedProb(conn_num=p)")
    v["cpu.4.build_s"] = f"{build['build_s_median']:.2f} s"
    big = next(r for r in cpu["rows"] if r["case"] == "5")
    v["cpu.5.build_s"] = f"{big['build_s']:.1f} s"
    v["cpu.5.mb"] = f"{big['conn_bytes'] / 1e6:.0f} MB"

    # The bandwidth floor on the CPU (concepts page): the dense product streams its matrix.
    dense_ms = cpu_ms("1", "dense s@W", 0.001)
    bandwidth = 20000 * 20000 * 4 / (dense_ms * 1e-3)
    v["cpu.floor.dense_ms"] = f"{dense_ms:.1f} ms"
    v["cpu.floor.GBps"] = f"{bandwidth / 1e9:.0f} GB/s"
    above = [
        cpu_ms("1", "eventlib event_matmul (op)", r) / (4 * r * 20000 * 20000 / bandwidth * 1e3) for r in RATES[1:]
    ]
    v["cpu.floor.max_above"] = times(max(above))
    csr_ms = cpu_ms("2", "eventlib csr_event_matmul (op)", 0.01)
    synapses = 0.01 * 20000 * 0.05 * 20000  # active rows x mean fan-out
    v["cpu.floor.csr_ms"] = f"{csr_ms:.1f} ms"
    v["cpu.floor.csr_mb"] = f"{synapses * 4 / 1e6:.1f} MB"
    v["cpu.floor.csr_floor_ms"] = f"{synapses * 4 / bandwidth * 1e3:.2f} ms"
    v["cpu.floor.csr_ns"] = f"{csr_ms * 1e6 / synapses:.1f} ns"
    v["concepts.union.0.01.32"] = pct(1 - (1 - 0.01) ** 32)

    # The GPU run.
    gpu = load("gpu_h200.json")
    v["gpu.date"] = gpu["date"][:10]
    v["gpu.device"] = gpu["device"].split(": ", 1)[-1]
    v["gpu.command"] = gpu["command"]
    v["gpu.versions"] = ", ".join(
        f"{k} {gpu['versions'][k]}" for k in ("python", "jax", "jaxlib", "numpy", "brainstate", "brainevent")
    )
    v["gpu.version.eventlib"] = gpu["versions"]["eventlib (imported)"]
    v["gpu.best_read"] = f"{gpu['best_dense_read_GBps'] / 1e3:.1f} TB/s"
    floors = [f["ms"] * 1e3 for f in gpu["loop_floor"]]
    v["gpu.floor_us"] = _span(floors, lambda x: f"{x:.0f} µs")
    n = 50000
    for rate in RATES:
        dense = gpu_ms(n, 1, DENSE_HI, rate)
        v[f"gpu.dense1.xdense.{rate}"] = times(dense / gpu_ms(n, 1, EV_DENSE, rate))
        v[f"gpu.dense1.fraction.{rate}"] = pct(gpu_row(n, 1, EV_DENSE, rate)["bandwidth_fraction"])
    v["gpu.dense1.xpeer"] = _span([gpu_ms(n, 1, PEER_DENSE, r) / gpu_ms(n, 1, EV_DENSE, r) for r in RATES], times)
    # Stored connectivity, one vector: eventlib against the peer, rate by rate (> 1: eventlib faster).
    for rate in RATES:
        ratio = gpu_ms(n, 1, PEER_CSR, rate) / gpu_ms(n, 1, EV_CSR, rate)
        v[f"gpu.csr1.xpeer.{rate}"] = times(ratio)
        v[f"gpu.csr1.peer_faster.{rate}"] = times(1 / ratio)
    v["gpu.csr.det_cost1"] = _span([gpu_ms(n, 1, EV_DET, r) / gpu_ms(n, 1, EV_CSR, r) for r in RATES], times)
    v["gpu.csr.det_cost"] = _span(
        [gpu_ms(m, b, EV_DET, r) / gpu_ms(m, b, EV_CSR, r) for m in (n, 10000) for b in (1, 64) for r in RATES], times
    )
    v["gpu.csr64.xdense.0.001"] = times(gpu_ms(n, 64, DENSE_HI, 0.001) / gpu_ms(n, 64, EV_CSR, 0.001))
    v["gpu.csr64.xpeer.0.001"] = times(gpu_ms(n, 64, PEER_CSR, 0.001) / gpu_ms(n, 64, EV_CSR, 0.001))
    v["gpu.dense64.xdense.0.001"] = times(gpu_ms(n, 64, DENSE_HI, 0.001) / gpu_ms(n, 64, EV_DENSE, 0.001))
    v["gpu.dense64.auto_slower"] = pct(
        max(gpu_ms(n, 64, EV_DENSE, r) / gpu_ms(n, 64, DENSE_HI, r) - 1 for r in RATES[1:])
    )
    v["gpu.tf32.batch64"] = times(gpu_ms(n, 64, DENSE_HI, 0.01) / gpu_ms(n, 64, DENSE_TF32, 0.01))
    first = {m: gpu_row(n, 1, m, 0.001)["first_call_s"] for m in (EV_DENSE, EV_CSR, PEER_DENSE, PEER_CSR)}
    for m, key in ((EV_DENSE, "ev_dense"), (EV_CSR, "ev_csr"), (PEER_DENSE, "peer_dense"), (PEER_CSR, "peer_csr")):
        v[f"gpu.first.{key}"] = f"{first[m]:.2f} s" if first[m] < 1 else f"{first[m]:.1f} s"
    errs = {
        m: max(r["rel_err"] for r in gpu["rows"] if r["method"] == m and "rel_err" in r)
        for m in (EV_DENSE, PEER_DENSE, DENSE_TF32)
    }
    v["gpu.err.ev_dense"] = f"{errs[EV_DENSE]:.1e}"
    v["gpu.err.peer_dense"] = f"{errs[PEER_DENSE]:.1e}"
    v["gpu.err.tf32"] = f"{errs[DENSE_TF32]:.1e}"

    # Large cases on one GPU.
    scale = load("scale_h200.json")
    proc = [r for r in scale["rows"] if r["case"] == "procedural 10^10"]
    v["scale.proc.bytes"] = f"{proc[0]['layer_index_bytes'] / 1e3:.1f} kB"
    v["scale.proc.peak"] = f"{max(r['memory']['peak_bytes_in_use'] for r in proc) / 2**20:.0f} MiB"
    pair = {r["method"]: r for r in scale["rows"] if r["case"] == "procedural vs stored"}
    v["scale.proc_vs_stored"] = times(
        pair["eventlib EventFixedProb procedural"]["us"] / pair["eventlib EventFixedProb stored"]["us"]
    )

    # Whole networks.
    coba = load("coba_gpu_h200.json")
    for row in coba["rows"]:
        if row["simulator"] == "eventlib":
            v[f"coba.gpu.realtime.{row['n']}"] = times(row["realtime_factor"])
    return v


# -- tables ----------------------------------------------------------------------------------


def _cpu_case(case: str):
    cpu = load("cpu_core.json")
    rows = [r for r in cpu["rows"] if r["case"] == case and "median_ms" in r]
    dense = {r["rate"]: r["median_ms"] for r in rows if r["method"].startswith("dense")}
    header = ["method", "rate", "k", "median ms", "p10 ms", "p90 ms", "× dense"]
    body = []
    for r in rows:
        xd = (
            "–"
            if r["method"].startswith("dense") or r["rate"] not in dense
            else times(dense[r["rate"]] / r["median_ms"])
        )
        rate = "all" if r["rate"] == 1.0 else rate_label(r["rate"])
        body.append([r["method"], rate, f"{r['k']:,}", sig(r["median_ms"]), sig(r["p10_ms"]), sig(r["p90_ms"]), xd])
    return header, body


def _cpu_build():
    cpu = load("cpu_core.json")
    header = ["method", "synapses", "build s (median)"]
    body = [[r["method"], f"{r['synapses']:,}", f"{r['build_s_median']:.2f}"] for r in cpu["rows"] if r["case"] == "4"]
    return header, body


def _gpu_summary():
    n = 50000
    lines = [
        ("dense weight, batch 1", EV_DENSE, 1, "eventlib"),
        ("dense weight, batch 1", PEER_DENSE, 1, "brainevent"),
        ("dense weight, batch 1", DENSE_HI, 1, "dense (HIGHEST)"),
        ("stored, batch 1", EV_CSR, 1, "eventlib"),
        ("stored, batch 1", PEER_CSR, 1, "brainevent"),
        ("stored, batch 1", EV_DET, 1, "eventlib, deterministic"),
        ("stored, batch 64", EV_CSR, 64, "eventlib"),
        ("stored, batch 64", PEER_CSR, 64, "brainevent"),
        ("dense weight, batch 64", EV_DENSE, 64, "eventlib"),
        ("dense weight, batch 64", PEER_DENSE, 64, "brainevent"),
        ("dense weight, batch 64", DENSE_HI, 64, "dense (HIGHEST)"),
        ("dense weight, batch 64", DENSE_TF32, 64, "dense (default, TF32)"),
    ]
    header = ["case", "method", *[rate_label(r) for r in RATES]]
    body = [[case, label, *[sig(gpu_ms(n, b, m, r)) for r in RATES]] for case, m, b, label in lines]
    return header, body


def _gpu_full():
    gpu = load("gpu_h200.json")
    header = ["n", "batch", "method", *[rate_label(r) for r in RATES]]
    seen, body = [], []
    for r in gpu["rows"]:
        key = (r["n"], r["batch"], r["method"])
        if key not in seen:
            seen.append(key)
    for n, batch, method in seen:
        cells = []
        for rate in RATES:
            row = gpu_row(n, batch, method, rate)
            cells.append(
                f"{sig(row['ms'])} ({times(row['speedup_vs_dense'])}, {pct(row['bandwidth_fraction'])})"
                if "ms" in row
                else "–"
            )
        body.append([f"{n:,}", str(batch), method, *cells])
    return header, body


def _scale():
    scale = load("scale_h200.json")
    header = ["case", "method", "active", "events per call", "µs per call", "ns per event", "index bytes held"]
    body = [
        [
            r["case"],
            r["method"],
            rate_label(r["rate"]),
            f"{r['events_per_call']:.0e}",
            f"{r['us']:.1f}",
            f"{r['ns_per_event']:.3f}",
            f"{r['layer_index_bytes']:,}" if r.get("layer_index_bytes") else "–",
        ]
        for r in scale["rows"]
    ]
    return header, body


def _coba(name: str):
    coba = load(name)
    header = [
        "simulator",
        "variant",
        "neurons",
        "synapses",
        "realtime factor",
        "µs per step",
        "compile s",
        "rate E Hz",
        "rate I Hz",
    ]
    body = [
        [
            r["simulator"],
            r.get("variant", "–"),
            f"{r['n']:,}",
            f"{r['synapses']:,}" if "synapses" in r else "–",
            times(r["realtime_factor"]),
            f"{r['step_us']:.1f}",
            f"{r['compile_s']:.2f}",
            f"{r['rate_exc_hz']:.1f}",
            f"{r['rate_inh_hz']:.1f}",
        ]
        for r in coba["rows"]
    ]
    return header, body


def _sharded_one():
    rows = load("sharded_h200.json")["one_gpu"]["rows"]
    header = ["case", "n", "batch or fan-out", "activity", "time per call", "held per device"]
    body = []
    for r in rows:
        if r["case"] in ("dense", "csr"):
            held = r.get("weight_bytes_per_device") or r.get("connectivity_bytes_per_device")
            size = f"batch {r['batch']}" if "batch" in r else f"fan-out {r.get('fan', '–')}"
            body.append(
                [
                    r["case"],
                    f"{r['n']:,}",
                    size,
                    rate_label(r["rate"]),
                    f"{r['time_ms']:.4f} ms",
                    f"{held / 2**30:.2f} GiB" if held else "–",
                ]
            )
        elif "refused" in r:
            body.append(
                [r["case"], f"{r['n']:,}", f"fan-out {r['fan']}", "–", "refused: " + r["refused"].split(":")[0], "–"]
            )
    return header, body


def _sharded_network():
    rows = load("sharded_h200.json")["one_gpu"]["rows"]
    header = ["network", "neurons", "synapses", "µs per step", "realtime factor", "connectivity per device"]
    body = [
        [
            "COBA",
            f"{r['n']:,}",
            f"{r['synapses']:,}",
            f"{r['step_us']:.1f}",
            times(r["realtime_factor"]),
            f"{r['connectivity_bytes_per_device'] / 2**20:.0f} MiB",
        ]
        for r in rows
        if r["case"] == "coba"
    ]
    return header, body


def _sharded_two():
    rows = load("sharded_h200.json")["two_gpus_dense"]["rows"]
    t = {(r["devices"], r["batch"], r["rate"]): r["time_ms"] for r in rows}
    header = ["batch", "activity", "1 GPU", "2 GPUs", "model: 1 GPU / 2", "1 GPU / 2 GPUs"]
    body = [
        [
            str(b),
            rate_label(rate),
            f"{t[1, b, rate]:.4f} ms",
            f"{t[2, b, rate]:.4f} ms",
            f"{t[1, b, rate] / 2:.4f} ms",
            times(t[1, b, rate] / t[2, b, rate]),
        ]
        for (d, b, rate) in t
        if d == 1 and (2, b, rate) in t
    ]
    return header, body


def _concepts_floor():
    v = values()
    bandwidth = 20000 * 20000 * 4 / (cpu_ms("1", "dense s@W", 0.001) * 1e-3)
    header = [
        "activity ρ",
        "active rows k",
        "bytes read 4 k n_post",
        f"floor at {v['cpu.floor.GBps']}",
        "measured (event_matmul)",
    ]
    body = []
    for rate in RATES:
        k = rate * 20000
        nbytes = 4 * k * 20000
        body.append(
            [
                rate_label(rate),
                f"{k:,.0f}",
                f"{nbytes / 1e6:g} MB",
                f"{sig(nbytes / bandwidth * 1e3, 2)} ms",
                f"{sig(cpu_ms('1', 'eventlib event_matmul (op)', rate))} ms",
            ]
        )
    return header, body


TABLES = {
    "cpu-1": lambda: _cpu_case("1"),
    "cpu-2": lambda: _cpu_case("2"),
    "cpu-3a": lambda: _cpu_case("3a"),
    "cpu-3b": lambda: _cpu_case("3b"),
    "cpu-build": _cpu_build,
    "gpu-summary": _gpu_summary,
    "gpu-full": _gpu_full,
    "scale": _scale,
    "coba-gpu": lambda: _coba("coba_gpu_h200.json"),
    "coba-cpu": lambda: _coba("coba_cpu.json"),
    "sharded-one": _sharded_one,
    "sharded-network": _sharded_network,
    "sharded-two": _sharded_two,
    "concepts-floor": _concepts_floor,
}


# -- Sphinx ----------------------------------------------------------------------------------


def bench_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    key = text.strip()
    table = values()
    if key not in table:
        msg = inliner.reporter.error(f"bench: no value named {key!r} (book/_ext/bench_results.py)", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    return [nodes.inline(rawtext, table[key], classes=["bench-value"])], []


def bench_code_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """A value shown as code, such as a command line (no typographic quotes or dashes)."""
    made, messages = bench_role(name, rawtext, text, lineno, inliner, options, content)
    if messages:
        return made, messages
    return [nodes.literal(rawtext, made[0].astext(), classes=["bench-value"])], []


def _table_node(header, body):
    table = nodes.table(classes=["bench-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    thead = nodes.thead()
    group += thead
    tbody = nodes.tbody()
    group += tbody
    for cells, section in [(header, thead), *[(row, tbody) for row in body]]:
        tr = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=str(cell))
            tr += entry
        section += tr
    return table


class BenchTable(Directive):
    """A table computed from the committed results: ``{bench-table} <name>``."""

    required_arguments = 1
    option_spec = {"class": directives.class_option}

    def run(self):
        name = self.arguments[0]
        if name not in TABLES:
            raise self.error(f"bench-table: no table named {name!r} (book/_ext/bench_results.py)")
        header, body = TABLES[name]()
        box = nodes.container(classes=["bench-generated", *self.options.get("class", [])])
        box += _table_node(header, body)
        return [box]


def _depend_on_results(app, env, docname, source):
    if "{bench" in source[0]:
        for path in sorted(RESULTS.glob("*.json")):
            env.note_dependency(str(path))


def setup(app):
    app.add_role("bench", bench_role)
    app.add_role("bench-code", bench_code_role)
    app.add_directive("bench-table", BenchTable)
    app.add_css_file("bench.css")
    app.connect("source-read", lambda app, docname, source: _depend_on_results(app, app.env, docname, source))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
