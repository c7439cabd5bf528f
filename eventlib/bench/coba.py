"""The Vogels-Abbott conductance-based E/I network (COBA) as a whole-network
benchmark: eventlib, the peer (brainstate >= 0.6 with brainevent >= 0.3) and,
optionally, Brian 2, in one run on one device.

The command line is ``benchmarks/coba.py``.

The network (PEER.md section 6, Brian 2's ``COBA`` example): ``n`` leaky
integrate-and-fire neurons, 80% excitatory; C = 200 pF, g_L = 10 nS
(tau_m = 20 ms), E_L = V_reset = -60 mV, V_th = -50 mV, 5 ms refractory, a
constant drive of 200 pA; conductances decaying exponentially with tau_e = 5 ms
and tau_i = 10 ms, reversal potentials 0 mV and -80 mV, jumps of 6 nS and
67 nS per presynaptic spike; every pair connected with probability 80 / n, so
a neuron has 80 synapses on average at every size; dt = 0.1 ms; V0 uniform in
[-60, -50] mV. Integration as Brian 2's ``exponential_euler``: each step
updates v exactly for the conductances at the start of the step, decays the
conductances exactly, then thresholds, resets, and adds this step's spikes to
the conductances (no delay).

What is timed: the whole simulation is one compiled ``lax.scan`` (state and
spikes stay on the device; the connectivity is an argument). eventlib's trace
and compile are timed ahead of time (``lower(...).compile()``), then two runs
from the same initial state; "first call" is compile + first run. The peer's
``brainstate.transform.jit`` is timed as a first and a second call; its
compile time is their difference. The realtime factor is simulated seconds /
wall seconds of the second run.
Brian 2 runs in its own Python (``--brian-python``) through
``benchmarks/coba_brian2.py``; its wall time excludes code generation and the
C++ build.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import shlex
import subprocess
import time
import warnings
from pathlib import Path

import brainstate
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..layers import EventFixedProb
from ..ops import csr_event_matmul
from .harness import environment as _environment
from .harness import log, major_minor, timed, version

# ---------------------------------------------------------------------------
# The network


@dataclasses.dataclass(frozen=True)
class Coba:
    """Parameters of the network. Units: mV, ms, nS, pA, pF (nS * mV = pA,
    pA / pF = mV / ms)."""

    n: int = 4000
    exc_fraction: float = 0.8
    synapses_per_neuron: float = 80.0
    c_m: float = 200.0  # membrane capacitance [pF]
    g_l: float = 10.0  # leak conductance [nS]
    e_l: float = -60.0  # resting potential [mV]
    v_reset: float = -60.0  # reset potential [mV]
    v_th: float = -50.0  # threshold [mV]
    refractory: float = 5.0  # refractory period [ms]
    i_ext: float = 200.0  # constant drive [pA]
    tau_e: float = 5.0  # excitatory conductance decay [ms]
    tau_i: float = 10.0  # inhibitory conductance decay [ms]
    e_e: float = 0.0  # excitatory reversal potential [mV]
    e_i: float = -80.0  # inhibitory reversal potential [mV]
    w_e: float = 6.0  # excitatory jump [nS]
    w_i: float = 67.0  # inhibitory jump [nS]
    dt: float = 0.1  # time step [ms]

    @property
    def n_exc(self) -> int:
        return int(round(self.n * self.exc_fraction))

    @property
    def n_inh(self) -> int:
        return self.n - self.n_exc

    @property
    def prob(self) -> float:
        """Connection probability of every (pre, post) pair."""
        return min(1.0, self.synapses_per_neuron / self.n)

    @property
    def refractory_steps(self) -> int:
        return int(round(self.refractory / self.dt))

    def steps(self, duration_s: float) -> int:
        return int(round(duration_s * 1000.0 / self.dt))


def initial_state(p: Coba, seed: int) -> dict:
    """v uniform in [E_L, V_th], no conductance, no recent spike."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(p.e_l, p.v_th, p.n).astype(np.float32)
    return {
        "v": jnp.asarray(v),
        "ge": jnp.zeros((p.n,), jnp.float32),
        "gi": jnp.zeros((p.n,), jnp.float32),
        # Step of the last spike: far enough back that nobody starts refractory.
        "last": jnp.full((p.n,), -(2**30), jnp.int32),
    }


def neuron_step(p: Coba, state: dict, step):
    """One step of the neurons alone: returns the state after integration
    and reset (conductances decayed, not yet incremented) and the spikes."""
    v, ge, gi, last = state["v"], state["ge"], state["gi"], state["last"]
    g_tot = p.g_l + ge + gi
    v_inf = (p.g_l * p.e_l + ge * p.e_e + gi * p.e_i + p.i_ext) / g_tot
    v_new = v_inf + (v - v_inf) * jnp.exp(g_tot * (-p.dt / p.c_m))
    free = (step - last) >= p.refractory_steps  # Brian 2: clamped while t - lastspike < refractory
    v = jnp.where(free, v_new, v)
    spikes = free & (v > p.v_th)
    state = {
        "v": jnp.where(spikes, p.v_reset, v),
        "ge": ge * float(np.exp(-p.dt / p.tau_e)),
        "gi": gi * float(np.exp(-p.dt / p.tau_i)),
        "last": jnp.where(spikes, step, last),
    }
    return state, spikes


# Synaptic input: a hashable (static) description of the formulation, called
# with the connectivity arrays (passed to the compiled function as arguments,
# never closed over as constants) and the spikes of all n neurons. Returns
# the number of excitatory and inhibitory spikes each neuron receives.


@dataclasses.dataclass(frozen=True)
class EventSynapses:
    """eventlib's ``csr_event_matmul`` on the connectivity of two
    ``EventFixedProb`` layers (E -> all, I -> all), one call per layer."""

    n_exc: int
    n: int
    max_row_e: int
    max_row_i: int
    path: str = "auto"

    def __call__(self, conn, spikes):
        kw = {"path": self.path}
        in_e = csr_event_matmul(
            spikes[: self.n_exc], 1.0, conn["indptr_e"], conn["indices_e"], self.n, max_row=self.max_row_e, **kw
        )
        in_i = csr_event_matmul(
            spikes[self.n_exc :], 1.0, conn["indptr_i"], conn["indices_i"], self.n, max_row=self.max_row_i, **kw
        )
        return in_e, in_i


@dataclasses.dataclass(frozen=True)
class FusedEventSynapses:
    """The same synapses as one n -> 2n connectivity: excitatory rows target
    outputs [0, n), inhibitory rows [n, 2n). One call per step, so one
    compaction of the active inputs instead of two."""

    n: int
    max_row: int
    path: str = "auto"

    def __call__(self, conn, spikes):
        out = csr_event_matmul(
            spikes, 1.0, conn["indptr"], conn["indices"], 2 * self.n, max_row=self.max_row, path=self.path
        )
        return out[: self.n], out[self.n :]


@dataclasses.dataclass(frozen=True)
class DenseSynapses:
    """The dense products ``spikes_e @ W_e`` and ``spikes_i @ W_i``: the
    reference the event-driven versions must equal."""

    n_exc: int

    def __call__(self, conn, spikes):
        s = spikes.astype(jnp.float32)
        hi = lax.Precision.HIGHEST
        return (
            jnp.matmul(s[: self.n_exc], conn["w_e"], precision=hi),
            jnp.matmul(s[self.n_exc :], conn["w_i"], precision=hi),
        )


@dataclasses.dataclass(frozen=True)
class NoSynapses:
    """No recurrent input: the cost of the neuron update alone."""

    n: int

    def __call__(self, conn, spikes):
        zero = jnp.zeros((self.n,), jnp.float32)
        return zero, zero


def build_layers(p: Coba, seed: int):
    """eventlib's two projections: E -> all and I -> all, each pair connected
    with probability 80 / n (Brian 2's ``connect(p=...)``)."""
    layer_e = EventFixedProb(p.n_exc, p.n, conn_num=p.prob, conn_weight=1.0, seed=seed)
    layer_i = EventFixedProb(p.n_inh, p.n, conn_num=p.prob, conn_weight=1.0, seed=seed + 1)
    return layer_e, layer_i


def event_synapses(p: Coba, seed: int, formulation: str = "fused", path: str = "auto"):
    """``(synapses, conn)`` for :func:`simulate`.

    Args:
        p: the network's parameters.
        seed: the connectivity's seed (the inhibitory projection uses ``seed + 1``).
        formulation: ``'fused'`` (one n -> 2n product) or ``'layers'`` (one
            product per projection).
        path: the computation path of ``csr_event_matmul``.
    """
    layer_e, layer_i = build_layers(p, seed)
    if formulation == "layers":
        conn = {
            "indptr_e": layer_e.indptr,
            "indices_e": layer_e.indices,
            "indptr_i": layer_i.indptr,
            "indices_i": layer_i.indices,
        }
        return EventSynapses(p.n_exc, p.n, layer_e.max_row, layer_i.max_row, path), conn
    if formulation != "fused":
        raise ValueError(f"formulation must be 'fused' or 'layers', got {formulation!r}")
    pre_e, post_e = (np.asarray(a) for a in layer_e.synapses())
    pre_i, post_i = (np.asarray(a) for a in layer_i.synapses())
    fused = EventFixedProb.from_synapses(
        np.concatenate([pre_e, pre_i + p.n_exc]),
        np.concatenate([post_e, post_i + p.n]),
        p.n,
        2 * p.n,
        conn_weight=1.0,
    )
    conn = {"indptr": fused.indptr, "indices": fused.indices}
    return FusedEventSynapses(p.n, fused.max_row, path), conn


def dense_synapses(p: Coba, seed: int):
    """The same connectivity as :func:`event_synapses`, as dense matrices."""
    layer_e, layer_i = build_layers(p, seed)
    return DenseSynapses(p.n_exc), {"w_e": layer_e.to_dense(), "w_i": layer_i.to_dense()}


@functools.partial(jax.jit, static_argnames=("p", "synapses", "n_steps", "unroll", "record"))
def simulate(p: Coba, synapses, conn, state, *, n_steps: int, unroll: int = 1, record: bool = False):
    """Runs ``n_steps`` steps in one ``lax.scan``.

    Returns ``(state, counts, raster)``: the final state, int32 ``(2,)``
    excitatory and inhibitory spike totals, and the bool ``(n_steps, n)``
    spikes when ``record`` (else None).
    """

    def step(carry, k):
        state, counts = carry
        state, spikes = neuron_step(p, state, k)
        in_e, in_i = synapses(conn, spikes)
        state["ge"] = state["ge"] + p.w_e * in_e
        state["gi"] = state["gi"] + p.w_i * in_i
        # Spikes counted per neuron: an elementwise add fuses with the
        # neuron update, where a sum on every step was several more kernels.
        return (state, counts + spikes.astype(jnp.int32)), (spikes if record else None)

    (state, counts), raster = lax.scan(
        step, (state, jnp.zeros((p.n,), jnp.int32)), jnp.arange(n_steps, dtype=jnp.int32), unroll=unroll
    )
    return state, jnp.stack([jnp.sum(counts[: p.n_exc]), jnp.sum(counts[p.n_exc :])]), raster


def rates_hz(p: Coba, counts, duration_s: float) -> dict:
    """Mean firing rates in Hz from the excitatory and inhibitory totals."""
    c = np.asarray(counts, dtype=np.float64)
    return {
        "exc": float(c[0] / (p.n_exc * duration_s)),
        "inh": float(c[1] / (p.n_inh * duration_s)),
        "all": float(c.sum() / (p.n * duration_s)),
    }


# ---------------------------------------------------------------------------
# The peer: the same equations with brainstate states and brainstate.nn
# EventFixedProb (fixed out-degree 80 drawn with replacement, its default).


def make_peer(p: Coba, seed: int):
    """A brainstate module for the network, or raises ImportError when the
    peer is missing or too old."""
    if not hasattr(brainstate.nn, "EventFixedProb") or major_minor(version("brainstate")) < (0, 6):
        raise ImportError(f"brainstate >= 0.6 needed, found {version('brainstate')}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # brainstate 0.6 uses deprecated brainevent names
        import brainevent  # noqa: F401  (the peer's kernels)

    fan_out = int(round(p.synapses_per_neuron))

    class PeerCoba(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.syn_e = brainstate.nn.EventFixedProb(p.n_exc, p.n, conn_num=fan_out, conn_weight=p.w_e, seed=seed)
            self.syn_i = brainstate.nn.EventFixedProb(p.n_inh, p.n, conn_num=fan_out, conn_weight=p.w_i, seed=seed + 1)
            s = initial_state(p, seed)
            self.v = brainstate.HiddenState(s["v"])
            self.ge = brainstate.HiddenState(s["ge"])
            self.gi = brainstate.HiddenState(s["gi"])
            self.last = brainstate.ShortTermState(s["last"])
            self.counts = brainstate.ShortTermState(jnp.zeros((2,), jnp.int32))

        def reset(self):
            s = initial_state(p, seed)
            self.v.value, self.ge.value, self.gi.value, self.last.value = s["v"], s["ge"], s["gi"], s["last"]
            self.counts.value = jnp.zeros((2,), jnp.int32)

        def update(self, k):
            state = {"v": self.v.value, "ge": self.ge.value, "gi": self.gi.value, "last": self.last.value}
            state, spikes = neuron_step(p, state, k)
            in_e = self.syn_e(spikes[: p.n_exc])
            in_i = self.syn_i(spikes[p.n_exc :])
            self.v.value, self.last.value = state["v"], state["last"]
            self.ge.value = state["ge"] + in_e
            self.gi.value = state["gi"] + in_i
            f = spikes.astype(jnp.float32)
            step_counts = jnp.stack([jnp.sum(f[: p.n_exc]), jnp.sum(f[p.n_exc :])]).astype(jnp.int32)
            self.counts.value = self.counts.value + step_counts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return PeerCoba()


def peer_runner(net, unroll: int):
    """``run(steps)``: the peer network over the int32 step numbers
    ``steps``, compiled with ``brainstate.transform.jit``; returns the
    excitatory and inhibitory spike totals."""

    @brainstate.transform.jit
    def run(steps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # brainstate 0.6 uses deprecated brainevent names
            brainstate.transform.for_loop(net.update, steps, unroll=unroll)
        return net.counts.value

    return run


# ---------------------------------------------------------------------------
# Measurement


def row(sim: str, p: Coba, duration: float, first: float, second: float, counts, **extra) -> dict:
    """One result row: ``first`` and ``second`` are the wall seconds of the
    first and the second run, ``counts`` the spike totals of the second."""
    n_steps = p.steps(duration)
    r = rates_hz(p, counts, duration)
    return {
        "simulator": sim,
        "device": jax.default_backend(),
        "n": p.n,
        "duration_s": duration,
        "n_steps": n_steps,
        "first_call_s": first,
        "run_s": second,
        "compile_s": first - second if first is not None else None,
        "realtime_factor": duration / second,
        "step_us": second / n_steps * 1e6,
        "rate_hz": r["all"],
        "rate_exc_hz": r["exc"],
        "rate_inh_hz": r["inh"],
        **extra,
    }


def measure_eventlib(p, duration, seed, unroll, syn, conn, label, **extra) -> dict:
    """Trace and compile ahead of time (timed alone), then two runs from the
    same initial state: the first call is compile + first run."""
    state = initial_state(p, seed)
    n_steps = p.steps(duration)
    t0 = time.perf_counter()
    compiled = simulate.lower(p, syn, conn, state, n_steps=n_steps, unroll=unroll).compile()
    compile_s = time.perf_counter() - t0
    (_, counts1, _), first = timed(lambda: compiled(conn, state))
    (_, counts, _), second = timed(lambda: compiled(conn, state))
    if not np.array_equal(np.asarray(counts1), np.asarray(counts)):
        raise AssertionError("two runs from the same state gave different spike counts")
    r = row(label, p, duration, compile_s + first, second, counts, unroll=unroll, first_run_s=first, **extra)
    r["compile_s"] = compile_s
    return r


def measure_peer(p, duration, seed, unroll) -> dict:
    """The peer's network: a first and a second call of its compiled run,
    from the same initial state."""
    t0 = time.perf_counter()
    net = make_peer(p, seed)
    build = time.perf_counter() - t0
    run = peer_runner(net, unroll)
    steps = jnp.arange(p.steps(duration), dtype=jnp.int32)
    _, first = timed(lambda: run(steps))
    net.reset()
    counts, second = timed(lambda: run(steps))
    n_syn = int(net.syn_e.conn.indices.size + net.syn_i.conn.indices.size) if hasattr(net.syn_e, "conn") else None
    return row(
        "brainstate + brainevent", p, duration, first, second, counts, unroll=unroll, build_s=build, synapses=n_syn
    )


def measure_brian(p, duration, seed, python, mode, script: Path) -> dict:
    """Brian 2's run of the network, through ``script`` (``benchmarks/coba_brian2.py``)
    in the Python ``python``; ``mode`` is ``'standalone'`` or ``'runtime'``."""
    cmd = [python, str(script), "--n", str(p.n), "--duration", str(duration), "--seed", str(seed)]
    cmd += ["--mode", mode]
    log("  " + shlex.join(cmd))
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"Brian 2 failed ({out.returncode}):\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    r = {
        "simulator": f"Brian 2 ({mode})",
        "variant": "C++, 1 thread" if mode == "standalone" else "Cython",
        "device": "cpu, 1 core",
        "n": p.n,
        "duration_s": duration,
        "n_steps": p.steps(duration),
        "first_call_s": None,
        "run_s": res["run_s"],
        "compile_s": res.get("build_s"),
        "realtime_factor": duration / res["run_s"],
        "step_us": res["run_s"] / p.steps(duration) * 1e6,
        "rate_hz": res["counts"][0] / (p.n * duration) + res["counts"][1] / (p.n * duration),
        "rate_exc_hz": res["counts"][0] / (p.n_exc * duration),
        "rate_inh_hz": res["counts"][1] / (p.n_inh * duration),
        "synapses": res.get("synapses"),
        "brian": res,
    }
    return r


def environment(seed: int) -> dict:
    """The run's environment, in the fields of the committed result files."""
    env = _environment(
        ("jax", "jaxlib", "numpy", "brainstate", "brainevent", "numba"),
        ("XLA_FLAGS", "JAX_PLATFORMS", "OMP_NUM_THREADS"),
    )
    versions = env["versions"]
    versions = {"python": versions["python"], "eventlib": versions["eventlib (imported)"]} | {
        k: v for k, v in versions.items() if k not in ("python", "eventlib (imported)")
    }
    keys = ("command", "date_utc", "cpu_model", "cpu_count", "platform", "jax_backend")
    return {k: env[k] for k in keys} | {
        "jax_devices": env["jax_device_kinds"],
        "env": env["env"],
        "versions": versions,
        "git_commit": env["git_commit"],
        "eventlib_dirty": env["eventlib_dirty"],
        "seed": seed,
        "cores_used": env["cores_used"],
    }


COLUMNS = [
    ("simulator", "simulator", "{}"),
    ("variant", "variant", "{}"),
    ("n", "neurons", "{:d}"),
    ("synapses", "synapses", "{:,}"),
    ("duration_s", "bio s", "{:g}"),
    ("first_call_s", "first call s", "{:.2f}"),
    ("compile_s", "compile s", "{:.2f}"),
    ("run_s", "run s", "{:.3f}"),
    ("realtime_factor", "realtime x", "{:.2f}"),
    ("step_us", "us / step", "{:.1f}"),
    ("rate_exc_hz", "rate E Hz", "{:.2f}"),
    ("rate_inh_hz", "rate I Hz", "{:.2f}"),
]


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            v = r.get(key)
            cells.append("—" if v is None else fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None, brian_python: str = ".venv-brian/bin/python"):
    """The command line of ``benchmarks/coba.py``; ``brian_python`` is the
    default of ``--brian-python``."""
    ap = argparse.ArgumentParser(
        prog="benchmarks/coba.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
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
        default=brian_python,
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


def run(args, brian_script: Path) -> tuple[list[dict], list[str]]:
    """The whole-network benchmark: for every size, eventlib's formulations
    at every unroll, optionally the neurons alone, the peer and Brian 2;
    results are written to ``args.out`` after every measurement.

    Args:
        args: the parsed command line of ``benchmarks/coba.py`` (``sizes``,
            ``duration``, ``durations``, ``unrolls``, ``formulations``,
            ``neurons_only``, ``no_peer``, ``peer_unroll``, ``brian``,
            ``brian_runtime``, ``brian_python``, ``brian_max_n``, ``seed``,
            ``out``).
        brian_script: the path of ``benchmarks/coba_brian2.py``.

    Returns:
        the result rows and the comparison lines.
    """
    env = environment(args.seed)
    durations = args.durations or [args.duration] * len(args.sizes)
    rows: list[dict] = []
    checks: list[str] = []
    log(f"device: {env['jax_devices']}")

    def add(r):
        rows.append(r)
        log(
            f"  {r['simulator']} {r.get('variant', '')}: run {r['run_s']:.3f} s, "
            f"{r['realtime_factor']:.2f}x realtime, {r['step_us']:.1f} us/step, "
            f"E {r['rate_exc_hz']:.2f} Hz, I {r['rate_inh_hz']:.2f} Hz"
        )
        write(args, env, rows, checks)

    for n, duration in zip(args.sizes, durations, strict=True):
        p = Coba(n=n)
        log(f"n = {n}, {duration:g} s biological ({p.steps(duration)} steps)")
        best = None
        for form in args.formulations:
            t0 = time.perf_counter()
            synapses, conn = event_synapses(p, args.seed, form)
            conn = jax.block_until_ready(conn)
            build = time.perf_counter() - t0
            n_syn = int(conn["indices"].shape[0]) if "indices" in conn else None
            if n_syn is None:
                n_syn = int(conn["indices_e"].shape[0] + conn["indices_i"].shape[0])
            label = "eventlib"
            for unroll in args.unrolls:
                log(f"  {label} {form}, unroll {unroll}")
                r = measure_eventlib(
                    p, duration, args.seed, unroll, synapses, conn, label,
                    variant=f"{form}, unroll {unroll}", formulation=form, build_s=build, synapses=n_syn,
                )  # fmt: skip
                add(r)
                if best is None or r["run_s"] < best["run_s"]:
                    best = r
        if args.neurons_only:
            log("  neurons alone (no synapses)")
            r = measure_eventlib(
                p, duration, args.seed, best["unroll"], NoSynapses(n), {}, "neurons only",
                variant=f"unroll {best['unroll']}", synapses=0,
            )  # fmt: skip
            add(r)
        best["best_for_size"] = True
        if not args.no_peer:
            log(f"  brainstate + brainevent, unroll {args.peer_unroll}")
            try:
                r = measure_peer(p, duration, args.seed, args.peer_unroll)
                r["variant"] = f"unroll {args.peer_unroll}"
                add(r)
                diff = abs(r["rate_hz"] - best["rate_hz"]) / r["rate_hz"]
                msg = (
                    f"n = {n}: eventlib ({best['variant']}) rate {best['rate_hz']:.2f} Hz, peer {r['rate_hz']:.2f} Hz, "
                    f"differ by {100 * diff:.1f}% ({'within' if diff <= 0.1 else 'NOT within'} 10%); "
                    f"eventlib {r['run_s'] / best['run_s']:.2f}x the peer's speed"
                )
                checks.append(msg)
                log(msg)
            except ImportError as e:
                log(f"  peer skipped: {e}")
        if args.brian and n <= args.brian_max_n:
            for mode in ["standalone"] + (["runtime"] if args.brian_runtime else []):
                log(f"  Brian 2 {mode}")
                r = measure_brian(p, duration, args.seed, args.brian_python, mode, brian_script)
                add(r)
                if mode == "standalone":
                    msg = (
                        f"n = {n}: eventlib ({best['variant']}) {best['realtime_factor']:.2f}x realtime, "
                        f"Brian 2 standalone {r['realtime_factor']:.2f}x: "
                        f"eventlib {r['run_s'] / best['run_s']:.2f}x faster"
                    )
                    checks.append(msg)
                    log(msg)
        write(args, env, rows, checks)

    return rows, checks


def write(args, env, rows, checks) -> None:
    """The JSON results and a markdown table beside them, at ``args.out``
    (nothing when it is None)."""
    if args.out is None:
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, "rows": rows, "checks": checks}, indent=1) + "\n")
    md = [
        "# COBA network benchmark",
        "",
        f"`{env['command']}`",
        "",
        f"{env['date_utc']}, {env['cpu_model']} ({env['cpu_count']} cores, this run on {len(env['cores_used'])}), "
        f"devices {', '.join(env['jax_devices'])}; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
        + "".join(sorted({f", Brian 2 {r['brian']['brian2']}" for r in rows if "brian" in r})),
        "",
        table(rows),
        "",
        *("- " + c for c in checks),
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md))
