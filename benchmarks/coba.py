#!/usr/bin/env python
"""The Vogels-Abbott conductance-based E/I network (COBA) as a whole-network
benchmark: eventlib, the peer (brainstate >= 0.6 with brainevent >= 0.3) and,
optionally, Brian 2, in one run on one device. The network and what is timed:
:mod:`eventlib.bench.coba`.

Usage::

    python benchmarks/coba.py                                 # n = 4000, 40000, 400000; 1 s each
    python benchmarks/coba.py --sizes 4000 --duration 10      # 10 s of biological time
    python benchmarks/coba.py --sizes 4000 40000 --durations 10 1 --cores 1 --brian   # make bench-coba
    python benchmarks/coba.py --sizes 4000 --duration 0.1 --unrolls 1 --no-peer --out /tmp/coba.json   # smoke run
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from eventlib.bench import coba

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    args = coba.parse_args(argv, brian_python=str(HERE.parent / ".venv-brian" / "bin" / "python"))
    if args.cores:
        # Before the first JAX computation: XLA sizes its CPU thread pool from
        # the cores this process may use.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    rows, checks = coba.run(args, brian_script=HERE / "coba_brian2.py")
    print(coba.table(rows))
    for c in checks:
        print("- " + c)
    return 0


if __name__ == "__main__":
    sys.exit(main())
