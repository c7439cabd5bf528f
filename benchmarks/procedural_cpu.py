#!/usr/bin/env python
"""Cost per synaptic event of procedural against stored connectivity, on the
portable path (``path='event'``) on this machine's CPU.

Usage::

    python benchmarks/procedural_cpu.py               # n = 20000, k = 1000, 1% active
    python benchmarks/procedural_cpu.py --n 4000 --k 200 --repeats 10

Both layers hold the same matrix (same seed; checked on the first pattern).
Each is jitted once; a call's time is the wall clock around
``jax.block_until_ready(f(spikes))``, cycling through precomputed patterns
with exactly ``rate * n`` active inputs; the median over the calls is
divided by the synaptic events of the call (active inputs times their
targets). Needs only eventlib's own dependencies.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np

import eventlib
from eventlib.bench import time_calls


def median_call_s(fn, patterns, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of the compiled ``fn``, cycling
    through ``patterns``, after a first (compiling) call."""
    jax.block_until_ready(fn(patterns[0]))
    return time_calls(fn, patterns, 0.0, repeats, repeats)["median_ms"] * 1e-3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="n_pre = n_post")
    parser.add_argument("--k", type=int, default=1000, help="targets per input (fan-out), or n * prob")
    parser.add_argument("--rate", type=float, default=0.01, help="fraction of inputs active per call")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    n, k = args.n, args.k
    rng = np.random.default_rng(0)
    n_active = int(round(args.rate * n))
    patterns = []
    for _ in range(5):
        x = np.zeros(n, bool)
        x[rng.choice(n, n_active, replace=False)] = True
        patterns.append(x)
    print(f"# {platform.processor() or platform.machine()}, jax {jax.__version__}, {jax.devices()[0].platform}")
    print(f"# n = {n}, {n_active} active inputs per call")
    print("| connectivity | form | build s | index bytes | call ms | ns / synaptic event |")
    print("|---|---|---:|---:|---:|---:|")
    cases = (
        (f"fixed fan-out k={k}, distinct", k, False),
        (f"fixed fan-out k={k}, repeats allowed", k, True),
        (f"probability {k / n:g}", k / n, False),
    )
    for label, conn_num, multi in cases:
        outs = {}
        for procedural in (False, True):
            t0 = time.perf_counter()
            layer = eventlib.EventFixedProb(
                n,
                n,
                conn_num=conn_num,
                conn_weight=0.1,
                allow_multi_conn=multi,
                seed=0,
                path="event",
                procedural=procedural,
            )
            build = time.perf_counter() - t0
            fn = jax.jit(layer)
            outs[procedural] = np.asarray(fn(patterns[0]))
            call = median_call_s(fn, patterns, args.repeats)
            if procedural:
                np.testing.assert_allclose(outs[True], outs[False], rtol=1e-6, atol=1e-6)
            events = n_active * (k if isinstance(conn_num, int) else n * conn_num)
            index_bytes = sum(a.nbytes for a in layer.connectivity.value.values())
            form = "procedural" if procedural else "stored"
            print(
                f"| {label} | {form} | {build:.2f} | {index_bytes} | {call * 1e3:.2f} | {call / events * 1e9:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
