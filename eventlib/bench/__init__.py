"""Benchmarks of eventlib: the harness and the benchmark models that the
command-line scripts in ``benchmarks/`` call.

- :mod:`eventlib.bench.harness`: the one timing loop, the environment
  record, the optional peer, :class:`~eventlib.bench.harness.Method`.
- :mod:`eventlib.bench.operators`: ``python -m eventlib.bench``, eventlib's
  operators against the dense product, ``jax.experimental.sparse`` and the
  peer.
- :mod:`eventlib.bench.coba`: the Vogels-Abbott COBA network and its
  whole-network benchmark (``benchmarks/coba.py``).
- :mod:`eventlib.bench.cpu_core`: the CPU benchmark of the core operators
  and layers (``benchmarks/cpu_core.py``).
- :mod:`eventlib.bench.scale`: the large single-GPU cases
  (``benchmarks/scale_gpu.py``).
- :mod:`eventlib.bench.sharded`: the sharded operators and network
  (``benchmarks/sharded_gpu.py``).

The submodules import JAX and eventlib's layers; nothing in the library
imports them.
"""

from .harness import Method as Method
from .harness import environment as environment
from .harness import load_peer as load_peer
from .harness import median_seconds as median_seconds
from .harness import time_calls as time_calls
from .operators import main as main

__all__ = ["Method", "environment", "load_peer", "main", "median_seconds", "time_calls"]
