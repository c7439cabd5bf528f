#!/usr/bin/env python
"""CPU benchmark of eventlib's core operators, side by side with the peer
(brainstate >= 0.6 with brainevent >= 0.3) in one process (the cases:
:mod:`eventlib.bench.cpu_core`).

Usage::

    python benchmarks/cpu_core.py                 # full run (minutes, several GB)
    python benchmarks/cpu_core.py --quick         # smoke run at small sizes
    python benchmarks/cpu_core.py --out benchmarks/results/cpu_core.json
"""

from __future__ import annotations

import sys
from pathlib import Path

from eventlib.bench import cpu_core


def main(argv=None) -> int:
    return cpu_core.run(cpu_core.parse_args(argv, results=Path(__file__).resolve().parent / "results"))


if __name__ == "__main__":
    sys.exit(main())
