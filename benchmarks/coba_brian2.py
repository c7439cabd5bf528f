#!/usr/bin/env python
"""The COBA network of ``eventlib.bench.coba`` in Brian 2, run in its own Python
(``benchmarks/coba.py --brian``); it imports only Brian 2, not eventlib.

Measured with Brian 2 2.10.1 (``pip install -r requirements/brian.txt``,
Python 3.12, gcc for the C++ standalone build). Prints one JSON line on stdout: the excitatory
and inhibitory spike totals, the synapse count, the wall time of the simulation
loop (``run_s``) and of the code generation and build (``build_s``).

    python benchmarks/coba_brian2.py --n 4000 --duration 1 --mode standalone
    python benchmarks/coba_brian2.py --n 4000 --duration 1 --mode runtime

``standalone``: ``set_device('cpp_standalone')``, one thread (no OpenMP);
``run_s`` is the time Brian's generated program reports for its main loop
(``device._last_run_time``), which excludes building the synapses.
``runtime``: Cython code generation; a 10 ms run first compiles every code
object, then the timed run continues from there (``run_s`` is its wall time).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time


def network(b, n: int, seed: int):
    """The neurons, synapses and spike counter (no recording of spike times)."""
    b.seed(seed)
    n_exc = int(round(0.8 * n))
    eqs = """
    dv/dt = (g_l * (e_l - v) + ge * (e_e - v) + gi * (e_i - v) + i_ext) / c_m : volt (unless refractory)
    dge/dt = -ge / tau_e : siemens
    dgi/dt = -gi / tau_i : siemens
    """
    ns = {
        "c_m": 200 * b.pF,
        "g_l": 10 * b.nS,
        "e_l": -60 * b.mV,
        "e_e": 0 * b.mV,
        "e_i": -80 * b.mV,
        "i_ext": 200 * b.pA,
        "tau_e": 5 * b.ms,
        "tau_i": 10 * b.ms,
        "w_e": 6 * b.nS,
        "w_i": 67 * b.nS,
    }
    group = b.NeuronGroup(
        n,
        eqs,
        threshold="v > -50*mV",
        reset="v = -60*mV",
        refractory=5 * b.ms,
        method="exponential_euler",
        namespace=ns,
    )
    group.v = "-60*mV + rand() * 10*mV"
    exc, inh = group[:n_exc], group[n_exc:]
    syn_e = b.Synapses(exc, group, on_pre="ge += w_e", namespace=ns)
    syn_e.connect(p=min(1.0, 80.0 / n))
    syn_i = b.Synapses(inh, group, on_pre="gi += w_i", namespace=ns)
    syn_i.connect(p=min(1.0, 80.0 / n))
    mon_e = b.SpikeMonitor(exc, record=False)
    mon_i = b.SpikeMonitor(inh, record=False)
    return b.Network(group, syn_e, syn_i, mon_e, mon_i), (syn_e, syn_i), (mon_e, mon_i)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--duration", type=float, default=1.0, help="biological seconds")
    ap.add_argument("--mode", choices=["standalone", "runtime"], default="standalone")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    import brian2 as b

    b.prefs.logging.console_log_level = "WARNING"
    b.defaultclock.dt = 0.1 * b.ms
    out = {"brian2": b.__version__, "mode": args.mode, "n": args.n, "duration_s": args.duration}
    if args.mode == "standalone":
        with tempfile.TemporaryDirectory(prefix="coba_brian2_") as directory:
            b.set_device("cpp_standalone", directory=directory, build_on_run=False)
            b.prefs.devices.cpp_standalone.openmp_threads = 0
            net, syns, mons = network(b, args.n, args.seed)
            net.run(args.duration * b.second)
            t0 = time.perf_counter()
            b.device.build(directory=directory, compile=True, run=False)
            t1 = time.perf_counter()
            b.device.run(directory=directory, with_output=False)
            t2 = time.perf_counter()
            out.update(
                build_s=t1 - t0,
                process_s=t2 - t1,
                run_s=float(b.device._last_run_time),
                counts=[int(sum(mons[0].count[:])), int(sum(mons[1].count[:]))],
                synapses=int(len(syns[0]) + len(syns[1])),
            )
    else:
        b.prefs.codegen.target = "cython"
        net, syns, mons = network(b, args.n, args.seed)
        t0 = time.perf_counter()
        net.run(10 * b.ms)
        t1 = time.perf_counter()
        before = [int(sum(m.count[:])) for m in mons]
        net.run(args.duration * b.second)
        t2 = time.perf_counter()
        after = [int(sum(m.count[:])) for m in mons]
        out.update(
            build_s=t1 - t0,
            run_s=t2 - t1,
            counts=[a - c for a, c in zip(after, before, strict=True)],
            synapses=int(len(syns[0]) + len(syns[1])),
        )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
