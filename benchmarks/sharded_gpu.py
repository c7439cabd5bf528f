#!/usr/bin/env python
"""The sharded operators and a sharded COBA network on 1, 2, 4, ... devices:
time, memory per device and bytes communicated, beside the scaling model of
:mod:`eventlib.sharding` (the cases: :mod:`eventlib.bench.sharded`).

Usage::

    python benchmarks/sharded_gpu.py                       # every device count up to jax.device_count()
    python benchmarks/sharded_gpu.py --devices 1 2 --out benchmarks/results/sharded_h200x2.json
    python benchmarks/sharded_gpu.py --quick               # small sizes: a smoke run (CPU host devices too)
"""

from __future__ import annotations

import sys

from eventlib.bench import sharded


def main(argv=None) -> int:
    return sharded.run(sharded.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
