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

import argparse
import os
import sys
from pathlib import Path

from eventlib.bench import coba

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 40000, 400000], help="numbers of neurons")
    ap.add_argument("--duration", type=float, default=1.0, help="biological seconds per run (default 1)")
    ap.add_argument("--durations", type=float, nargs="+", help="one duration per size (overrides --duration)")
    ap.add_argument("--unrolls", type=int, nargs="+", default=[1, 4, 16], help="lax.scan unroll values to measure")
    ap.add_argument(
        "--formulations",
        nargs="+",
        default=["fused", "layers"],
        choices=["fused", "layers"],
        help="synaptic step: one n -> 2n product (fused), one product per projection (layers)",
    )
    ap.add_argument("--neurons-only", action="store_true", help="also time the neuron update without synapses")
    ap.add_argument("--no-peer", action="store_true", help="skip brainstate + brainevent")
    ap.add_argument("--peer-unroll", type=int, default=1)
    ap.add_argument("--brian", action="store_true", help="also run Brian 2 (C++ standalone) in --brian-python")
    ap.add_argument("--brian-runtime", action="store_true", help="also Brian 2's runtime (Cython) mode")
    ap.add_argument(
        "--brian-python",
        default=str(HERE.parent / ".venv-brian" / "bin" / "python"),
        help="a Python with brian2 (requirements/brian.txt; make bench-coba creates .venv-brian)",
    )
    ap.add_argument("--brian-max-n", type=int, default=40000, help="largest size Brian 2 runs at")
    ap.add_argument(
        "--cores",
        type=int,
        help="run on this many of the cores available (set before JAX starts; Brian 2 inherits it). Default: all",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="JSON results (a .md table is written beside it)")
    args = ap.parse_args(argv)
    if args.durations is not None and len(args.durations) != len(args.sizes):
        ap.error("--durations needs one value per size")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
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
