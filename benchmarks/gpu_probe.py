"""A GPU probe used while developing the kernels (benchmarks/KERNEL_NOTES.md):
correctness against float64 and in-graph timings of the kernel paths next to
the dense product, kernel-setting variants (--variants), the cost of the
pieces of one call (--parts), and the stored-connectivity kernel's block
size, program count and atomic ordering (--csr-tiling, --coba-tiling). The benchmark proper is ``python -m
eventlib.bench``.

    python benchmarks/gpu_probe.py [--sizes 10000 50000] [--out probe.json]
    python benchmarks/gpu_probe.py --csr-tiling --sizes 50000 1000000 400000 --fan 2500 1000 80
    python benchmarks/gpu_probe.py --coba-tiling --sizes 400000 40000
    python benchmarks/gpu_probe.py --coba-profile --sizes 400000
    python benchmarks/gpu_probe.py --coba-copies --sizes 400000
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from eventlib import connectivity
from eventlib.bench import coba, median_seconds
from eventlib.ops import csr_event_matmul, event_matmul

N_PATTERNS = 16


UNROLLED = False  # --unrolled: the patterns as straight-line code, no loop


def in_graph_ms(fn, *args, reps=20):
    """Median time per pattern of ``fn`` mapped over N_PATTERNS patterns.

    ``lax.map`` is a while loop, and on a GPU each iteration waits for its
    condition (benchmarks/KERNEL_NOTES.md, "What the harness costs"). With ``UNROLLED`` the
    patterns run as straight-line code instead, which times the kernels
    alone (for dense products XLA could then merge the independent dots
    that share a weight, so it is not used for them)."""
    if UNROLLED:
        f = jax.jit(lambda spikes, *a: lax.scan(lambda c, s: (c, fn(s, *a)), None, spikes, unroll=True)[1])
    else:
        f = jax.jit(lambda spikes, *a: lax.map(lambda s: fn(s, *a), spikes))
    jax.block_until_ready(f(*args))
    return median_seconds(f, *args, reps=reps) * 1e3 / N_PATTERNS


def _csr(s, indptr, indices, *, n, max_row, path):
    return csr_event_matmul(s, jnp.float32(0.5), indptr, indices, n, max_row=max_row, path=path)


def rel_err(out, ref):
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.001, 0.01, 0.05, 0.2])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--out", default=None)
    ap.add_argument("--skip", nargs="*", default=[], help="methods to leave out")
    ap.add_argument("--variants", action="store_true", help="check vector-kernel settings, then exit")
    ap.add_argument("--parts", action="store_true", help="time the pieces of one call, then exit")
    ap.add_argument("--csr-tiling", action="store_true", help="sweep the CSR kernel's tiling, then exit")
    ap.add_argument("--fan", type=int, nargs="+", help="--csr-tiling: targets per input, one per size")
    ap.add_argument("--coba-tiling", action="store_true", help="the COBA step for several CSR tilings, then exit")
    ap.add_argument("--coba-profile", action="store_true", help="device time per kernel of a COBA run, then exit")
    ap.add_argument("--coba-copies", action="store_true", help="copies in the compiled COBA loop, then exit")
    ap.add_argument("--unrolled", action="store_true", help="time without the lax.map loop (kernels alone)")
    args = ap.parse_args(argv)
    global UNROLLED
    UNROLLED = args.unrolled
    if args.coba_tiling:
        return coba_tiling(args.sizes)
    if args.coba_profile:
        return coba_profile(args.sizes)
    if args.coba_copies:
        return coba_copies(args.sizes)
    if args.csr_tiling:
        return csr_tiling(args.sizes, args.fan or [max(1, n // 20) for n in args.sizes], args.rates[:2])
    if args.variants:
        return variants()
    if args.parts:
        return parts()
    print(jax.__version__, jax.devices(), flush=True)
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        key = jax.random.PRNGKey(n)
        w = jax.random.normal(key, (n, n), jnp.float32)
        cols = rng.choice(n, min(n, 512), replace=False)
        w_cols = np.asarray(w[:, cols], np.float64)
        conn = connectivity.fixed_num_per_pre(n, n, n // 20, seed=1)
        indptr, indices = jnp.asarray(conn.indptr), jnp.asarray(conn.indices)
        for batch in args.batches:
            for rate in args.rates:
                spikes = (rng.random((N_PATTERNS, batch, n)) < rate).astype(np.float32)
                sp = jnp.asarray(spikes)
                row = dict(n=n, batch=batch, rate=rate)
                for name, fn in [
                    ("dense_highest", lambda s, w: jnp.matmul(s, w, precision=lax.Precision.HIGHEST)),
                    ("dense_default", lambda s, w: s @ w),
                    ("kernel", lambda s, w: event_matmul(s, w, path="kernel")),
                    ("event_xla", lambda s, w: event_matmul(s, w, path="event")),
                ]:
                    if name in args.skip:
                        continue
                    try:
                        if name == "kernel":
                            t0 = time.perf_counter()
                            jax.block_until_ready(jax.jit(fn)(sp[0], w))
                            row["kernel_first_call_s"] = time.perf_counter() - t0
                        row[name] = in_graph_ms(fn, sp, w)
                        out = np.asarray(jax.jit(fn)(sp[0], w))[:, cols]
                        row[name + "_err"] = rel_err(out, spikes[0].astype(np.float64) @ w_cols)
                    except Exception as e:  # noqa: BLE001 - a probe reports and goes on
                        row[name] = f"{type(e).__name__}: {str(e)[:200]}"
                for name, path in [("csr_kernel", "kernel"), ("csr_event_xla", "event")]:
                    if name in args.skip:
                        continue
                    fn = functools.partial(_csr, n=n, max_row=conn.max_row, path=path)
                    try:
                        row[name] = in_graph_ms(fn, sp, indptr, indices)
                        a = np.asarray(jax.jit(fn)(sp[0], indptr, indices))
                        b = np.asarray(jax.jit(fn)(sp[0], indptr, indices))
                        ref = np.asarray(_csr(sp[0], indptr, indices, n=n, max_row=conn.max_row, path="dense"))
                        row[name + "_err"] = rel_err(a, ref)
                        row[name + "_repeat_identical"] = bool(np.array_equal(a, b))
                    except Exception as e:  # noqa: BLE001
                        row[name] = f"{type(e).__name__}: {str(e)[:200]}"
                rows.append(row)
                print(json.dumps(row), flush=True)
        del w
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


def parts():
    from eventlib.ops._compact import active_indices, count_active

    rng = np.random.default_rng(2)
    n = 50000
    w = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    for rate in (0.001, 0.01):
        sp = jnp.asarray((rng.random((N_PATTERNS, 1, n)) < rate).astype(np.float32))
        pieces = {
            "any+count": lambda s: count_active(jnp.any(s != 0, axis=0)),
            "cumsum": lambda s: jnp.cumsum(s[0] != 0, dtype=jnp.int32),
            "active_indices": lambda s: active_indices(s[0] != 0, 64),
            "nonzero": lambda s: jnp.nonzero(s[0] != 0, size=n, fill_value=n)[0],
            "kernel_op": lambda s: event_matmul(s, w, path="kernel"),
            "empty_map": lambda s: s[0, :4],
        }
        for name, fn in pieces.items():
            print("part", rate, name, f"{in_graph_ms(fn, sp) * 1e3:.1f} us", flush=True)
    return 0


def variants():
    from eventlib.ops import dense_event as de

    rng = np.random.default_rng(1)
    n = 10000
    w = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    w64 = np.asarray(w, np.float64)
    for unroll, split, stages in [(4, 16, 1), (4, 16, 2), (1, 16, 1), (1, 1, 1), (4, 1, 1), (1, 16, 2)]:
        de._VEC_UNROLL, de._VEC_SPLIT, de._VEC_STAGES = unroll, split, stages
        errs = []
        for rate in (0.001, 0.01, 0.2):
            s = (rng.random((1, n)) < rate).astype(np.float32)
            out = np.asarray(jax.jit(lambda s, w: event_matmul(s, w, path="kernel"))(jnp.asarray(s), w))
            errs.append(rel_err(out, s.astype(np.float64) @ w64))
        print("variant", unroll, split, stages, " ".join(f"{e:.1e}" for e in errs), flush=True)
    de._VEC_UNROLL, de._VEC_SPLIT, de._VEC_STAGES = 4, 16, 1
    return 0


def csr_tiling(sizes, fans, rates):
    """The CSR kernel at batch 1 for several blocks of inputs per program and
    program counts below which blocks shrink, and with the atomics relaxed
    or left acquire-release (default settings only): time per call and
    equality with XLA's scatter (weights 0.5: exact sums)."""
    import contextlib

    from eventlib.ops import _primitive
    from eventlib.ops import sparse_event as se

    relaxed = _primitive.relaxed_atomics
    defaults = (se._CSR_BLOCK, se._CSR_PROGRAMS)
    rng = np.random.default_rng(2)
    for n, k in zip(sizes, fans, strict=True):
        # Random targets drawn on the device (repeats allowed): building a
        # large fixed fan-out on the host would take longer than the probe.
        indices = jax.random.randint(jax.random.PRNGKey(n), (n * k,), 0, n, jnp.int32)
        indptr = jnp.arange(n + 1, dtype=jnp.int32) * k
        table = indices.reshape(n, k)
        for rate in rates:
            spikes = np.zeros((N_PATTERNS, 1, n), np.float32)
            for p in range(N_PATTERNS):
                spikes[p, 0, rng.choice(n, max(1, int(rate * n)), replace=False)] = 1.0
            spikes = jnp.asarray(spikes)
            ref = np.zeros(n)
            np.add.at(ref, np.asarray(table)[np.flatnonzero(np.asarray(spikes[0, 0]))].ravel(), 0.5)
            configs = [(block, programs, "relaxed") for block in (256, 512, 1024) for programs in (512, 2048)]
            configs += [(*defaults, "acq_rel")]
            best = None
            for block, programs, ordering in configs:
                se._CSR_BLOCK, se._CSR_PROGRAMS = block, programs
                # Probing only: the acquire-release baseline replaces the
                # flagged patch with a no-op for this process.
                _primitive.relaxed_atomics = relaxed if ordering == "relaxed" else contextlib.nullcontext
                jax.clear_caches()
                fn = functools.partial(_csr, n=n, max_row=k, path="kernel")
                out = np.asarray(jax.jit(fn)(spikes[0], indptr, indices))[0]
                ms = in_graph_ms(fn, spikes, indptr, indices)
                equal = np.array_equal(out, ref)
                if equal and (best is None or ms < best[0]):
                    best = (ms, block, programs, ordering)
                print(
                    f"n={n} k={k} rate={rate:g} block={block} programs={programs} {ordering}: "
                    f"{ms * 1e3:.1f} us, equal to numpy: {equal}",
                    flush=True,
                )
            print(f"BEST n={n} k={k} rate={rate:g}: {best}", flush=True)
    se._CSR_BLOCK, se._CSR_PROGRAMS = defaults
    _primitive.relaxed_atomics = relaxed
    return 0


def coba_tiling(sizes, duration=0.2):
    """Time per step of the COBA network (eventlib.bench.coba, fused, unroll
    16) for several CSR blocks of inputs per program and program counts: in
    a network step the product runs at about 0.2% activity, where the
    number of programs, not the synapses, sets its cost."""
    from eventlib.ops import sparse_event as se

    defaults = (se._CSR_BLOCK, se._CSR_PROGRAMS)
    configs = [(block, programs) for block in (256, 512, 1024) for programs in (256, 1024)]
    for n in sizes:
        p = coba.Coba(n=n)
        syn, conn = coba.event_synapses(p, seed=42)
        for block, programs in configs:
            se._CSR_BLOCK, se._CSR_PROGRAMS = block, programs
            jax.clear_caches()
            r = coba.measure_eventlib(p, duration, 42, 16, syn, conn, "eventlib")
            print(
                f"coba n={n} block={block} programs={programs}: {r['step_us']:.2f} us/step, rate {r['rate_hz']:.2f} Hz",
                flush=True,
            )
    se._CSR_BLOCK, se._CSR_PROGRAMS = defaults
    return 0


def coba_copies(sizes, steps=160, unroll=16):
    """The copies XLA puts in the compiled COBA loop (fused, unroll 16): a
    copy of a whole output before each kernel call costs a read and a
    write of it on every step, which is why each kernel call gets its own
    zero buffer (benchmarks/KERNEL_NOTES.md, "The benchmark harness")."""
    import re

    for n in sizes:
        p = coba.Coba(n=n)
        syn, conn = coba.event_synapses(p, seed=42)
        state = coba.initial_state(p, 42)
        hlo = coba.simulate.lower(p, syn, conn, state, n_steps=steps, unroll=unroll).compile().as_text()
        lines = hlo.splitlines()
        copies = [line.strip()[:160] for line in lines if re.search(r"= \S+ copy\(", line)]
        calls = sum("custom-call(" in line for line in lines)
        print(f"coba n={n}: {len(copies)} copies, {calls} custom calls in the compiled loop", flush=True)
        for line in copies:
            print("   ", line, flush=True)
    return 0


def coba_profile(sizes, duration=0.1, top=12):
    """Where a COBA step's time goes: the run is traced with jax.profiler
    (a Perfetto trace), and the device events are summed by name."""
    import collections
    import gzip
    import pathlib
    import tempfile

    for n in sizes:
        p = coba.Coba(n=n)
        syn, conn = coba.event_synapses(p, seed=42)
        state = coba.initial_state(p, 42)
        n_steps = p.steps(duration)
        compiled = coba.simulate.lower(p, syn, conn, state, n_steps=n_steps, unroll=16).compile()
        jax.block_until_ready(compiled(conn, state))
        with tempfile.TemporaryDirectory() as tmp:
            with jax.profiler.trace(tmp, create_perfetto_trace=True):
                jax.block_until_ready(compiled(conn, state))
            trace = next(pathlib.Path(tmp).rglob("*.json.gz"))
            events = json.loads(gzip.open(trace).read())
        events = events.get("traceEvents", events) if isinstance(events, dict) else events
        # Device tracks: the process names that mention the GPU.
        names = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
        device = {pid for pid, name in names.items() if "/device:" in name or "GPU" in name or "gpu" in name}
        totals = collections.Counter()
        for e in events:
            if e.get("ph") == "X" and e.get("pid") in device:
                totals[e["name"]] += float(e.get("dur", 0))
        print(f"coba n={n}: {n_steps} steps; device tracks {sorted(names[p] for p in device)}", flush=True)
        if not device:
            print(f"  no device track among {sorted(names.values())[:20]}", flush=True)
        for name, us in totals.most_common(top):
            print(f"  {us / n_steps:8.2f} us/step  {name[:110]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
