"""``python -m eventlib.demo``: event-driven against dense, on this machine.

Builds an ``EventLinear`` and an ``EventFixedProb`` layer, checks that they
give the dense product exactly, and times both against ``spikes @ W`` at
several firing rates through one compiled function each.
"""

from __future__ import annotations

import argparse

import brainstate
import jax
import jax.numpy as jnp
import numpy as np

import eventlib
from eventlib.bench.harness import call_times


def _median_ms(fn, inputs, min_calls: int = 10, budget_s: float = 0.3) -> float:
    jax.block_until_ready(fn(inputs[0]))  # compile and warm up
    return 1e3 * float(np.median(call_times(fn, inputs, min_calls=min_calls, min_time=budget_s)))


def main(argv=None) -> None:
    """Runs the demo; ``argv``: the command line (``--n``), default ``sys.argv``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="neurons per population (default 5000)")
    args = parser.parse_args(argv)
    n = args.n
    brainstate.random.seed(0)
    rng = np.random.default_rng(0)
    print(f"eventlib {eventlib.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}; n = {n}\n")

    weight = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32) * 0.1)
    layers = {
        "EventLinear": eventlib.EventLinear(n, n, weight),
        "EventFixedProb (p=0.05)": eventlib.EventFixedProb(n, n, conn_num=0.05, conn_weight=0.1, seed=0),
    }
    rates = (0.001, 0.01, 0.05, 0.2, 1.0)
    patterns = {r: [jnp.asarray(rng.random(n) < r) for _ in range(4)] for r in rates}
    dense = jax.jit(lambda s, w: jnp.matmul(s.astype(w.dtype), w, precision="highest"))

    for name, layer in layers.items():
        matrix = layer.to_dense()
        step = jax.jit(layer.__call__)
        exact = all(bool(jnp.allclose(step(s), dense(s, matrix), rtol=1e-5, atol=1e-5)) for s in patterns[0.05])
        print(f"{name}: {layer.to_dense().size:,} matrix entries; matches the dense product: {exact}")
        print(f"  {'rate':>6} {'active':>7} {'dense ms':>9} {'event ms':>9} {'speed-up':>9}")
        for r in rates:
            t_dense = _median_ms(lambda s, m=matrix: dense(s, m), patterns[r])
            t_event = _median_ms(step, patterns[r])
            k = int(patterns[r][0].sum())
            print(f"  {r:>6.1%} {k:>7} {t_dense:>9.3f} {t_event:>9.3f} {t_dense / t_event:>8.1f}x")
        print()
    print("Same compiled function at every rate: its time follows the number of spikes.")


if __name__ == "__main__":
    main()
