#!/usr/bin/env python
"""The large cases on one GPU: 10^9 stored synapses, procedural against
stored connectivity, and 10^10 procedural synapses (the cases:
:mod:`eventlib.bench.scale`).

Usage::

    python benchmarks/scale_gpu.py --out benchmarks/results/scale_h200.json
    python benchmarks/scale_gpu.py --quick          # small sizes, any device
"""

from __future__ import annotations

from eventlib.bench import scale


def main(argv=None) -> int:
    scale.run(scale.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
