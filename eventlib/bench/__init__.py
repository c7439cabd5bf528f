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

from ._main import main as main

__all__ = ["main"]
