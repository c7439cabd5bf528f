"""The sharded operators and a sharded COBA network on 1, 2, 4, ... devices:
time, memory per device and bytes communicated, beside the scaling model of
:mod:`eventlib.sharding`.

The command line is ``benchmarks/sharded_gpu.py``.

Connectivity is built on the devices, each device drawing its own block, so
no host array of 10^9 synapses is ever made. To make the matrix the same
whatever the device count, the targets are block-structured: row ``i``'s
``fan`` synapses are split into ``B`` equal groups (``B`` = the largest
device count of the run), group ``b`` drawing its targets uniformly (with
repeats) from the ``b``-th of ``B`` equal column ranges, by the library's
counter-based hash of (seed, row, position). Device ``k`` of ``d`` then
owns groups ``[k B/d, (k + 1) B/d)``: exactly ``fan / d`` synapses per row, no padding. (A
uniform draw over all columns would give each device a binomial share; for
timing, the difference is the padding that ``eventlib.shard_csr`` adds.)

Cases:

- ``dense``: ``sharded_event_matmul`` on an ``n x n`` float32 weight split by
  column, at several activities, batch 1 and 64.
- ``csr``: ``sharded_csr_event_matmul``, scalar weight, outputs left split.
- ``csr-large``: a stored form past one device's limit (more than 2**31
  synapses: int32 offsets): one device refuses it, several run it.
- ``coba``: the Vogels-Abbott network of :mod:`eventlib.bench.coba` with the
  neurons split over the devices: each step all-gathers the new spikes (n
  bools) and each device adds its synapses' events into its own neurons'
  conductances. Excitatory and inhibitory inputs share one product: target
  ``2 j`` is neuron ``j``'s excitatory conductance, ``2 j + 1`` its
  inhibitory one, so a device's outputs are its own neurons'.

Timings are in-graph medians (several spike patterns mapped in one compiled
call, or a whole ``lax.scan`` of network steps), after a warm-up.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from .. import __version__, sharding
from ..connectivity import hashing
from ..ops import csr_event_matmul
from . import coba
from .harness import log, median_seconds, timed

N_PATTERNS = 8
COLLECTIVE = re.compile(
    r"=\s*(\w+)\[([\d,]*)\][^=]*?\b(all-gather|all-reduce|collective-permute|all-to-all)(?:-start)?\("
)
DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s32": 4, "u32": 4, "f32": 4, "bf16": 2, "f16": 2}


def collective_bytes(compiled_text: str) -> list[dict]:
    """The collectives of a compiled program and the bytes of each result."""
    out = []
    for dtype, dims, op in COLLECTIVE.findall(compiled_text):
        shape = [int(x) for x in dims.split(",") if x]
        out.append({"op": op, "dtype": dtype, "shape": shape, "bytes": int(np.prod(shape)) * DTYPE_BYTES.get(dtype, 4)})
    return out


def median_s(fn, *args, reps: int) -> float:
    """Warm-up call, then the median of ``reps`` timed calls."""
    jax.block_until_ready(fn(*args))
    return median_seconds(fn, *args, reps=reps)


def memory_per_device(mesh) -> list[dict]:
    """Memory statistics of each device of ``mesh``."""
    rows = []
    for dev in mesh.devices.flat:
        stats = dev.memory_stats() or {}
        rows.append({k: stats.get(k) for k in ("bytes_in_use", "peak_bytes_in_use", "bytes_limit")})
    return rows


# -- connectivity built on the devices -----------------------------------------


def block_targets(rows, positions, *, seed, fan, n_post, blocks):
    """Targets of ``(rows[:, None], positions[None, :])``: position ``j``
    belongs to group ``j // (fan / blocks)`` and draws uniformly from that
    group's range of ``n_post / blocks`` columns, by the library's hash
    (:mod:`eventlib.connectivity.hashing`, the stream of fixed counts)."""
    width = n_post // blocks
    group = positions // (fan // blocks)
    bits = hashing.hash_bits(seed, hashing.STREAM_COUNT, rows[:, None], positions[None, :], xp=jnp)
    return group[None, :] * width + hashing.below(bits, width, jnp)


def sharded_block_csr(mesh, *, n_pre, n_post, fan, seed, blocks, interleave=None):
    """A :class:`eventlib.sharding.ShardedCSR` with scalar weight 1, built on the
    devices. ``interleave``: ``(n_exc,)`` to map target ``t`` of row ``i`` to
    ``2 t + (i >= n_exc)`` (the COBA layout); ``n_post`` is then the
    number of neurons and the product has ``2 n_post`` outputs."""
    d = mesh.devices.size
    axis = mesh.axis_names[0]
    if fan % blocks or blocks % d or n_post % blocks:
        raise ValueError(f"fan ({fan}) and n_post ({n_post}) must be divisible by blocks ({blocks}), blocks by d ({d})")
    local_fan, n_local = fan // d, n_post // d

    def local(_):
        k = lax.axis_index(axis)
        rows = jnp.arange(n_pre, dtype=jnp.int32)
        positions = k * local_fan + jnp.arange(local_fan, dtype=jnp.int32)
        tgt = block_targets(rows, positions, seed=seed, fan=fan, n_post=n_post, blocks=blocks) - k * n_local
        if interleave is not None:
            tgt = 2 * tgt + (rows[:, None] >= interleave[0]).astype(jnp.int32)
        indptr = jnp.arange(n_pre + 1, dtype=jnp.int32) * local_fan
        return indptr[None], tgt.reshape(1, -1)

    build = jax.jit(
        sharding._shard_map(local, mesh, (P(axis),), (P(axis), P(axis))),
    )
    indptr, indices = build(jnp.zeros((d,), jnp.int32))
    n_out = 2 * n_post if interleave is not None else n_post
    weight = jax.device_put(jnp.float32(1.0), NamedSharding(mesh, P()))
    return sharding.ShardedCSR(weight, indptr, indices, n_out, local_fan)


def spike_patterns(key, n, rate, batch, count=N_PATTERNS):
    """``count`` patterns of ``(batch, n)`` bools, exactly ``round(rate n)``
    active per row."""
    k = max(1, int(round(rate * n)))
    keys = jax.random.split(key, count * batch)
    idx = jax.vmap(lambda kk: jax.random.choice(kk, n, (k,), replace=False))(keys)
    s = jnp.zeros((count * batch, n), bool).at[jnp.arange(count * batch)[:, None], idx].set(True)
    return s.reshape(count, batch, n)


# -- operators ------------------------------------------------------------------


def time_product(product, spikes, conn, reps):
    """Seconds per pattern of ``product(spikes, conn)`` in one compiled call."""
    f = jax.jit(lambda s, c: lax.map(lambda x: product(x, c), s))
    return median_s(f, spikes, conn, reps=reps) / spikes.shape[0]


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def bench_dense(args, counts, rows):
    """``sharded_event_matmul`` at every device count, batch and rate."""
    n = args.dense_n
    first = {}
    for d in counts:
        mesh = sharding.post_mesh(d)
        make = jax.jit(
            lambda key: jax.random.normal(key, (n, n), jnp.float32) / np.sqrt(n),
            out_shardings=NamedSharding(mesh, P(None, "post")),
        )
        weight = make(jax.random.PRNGKey(1))
        weight_bytes = weight.addressable_shards[0].data.nbytes
        for batch in args.batches:
            for rate in args.rates:
                spikes = spike_patterns(jax.random.PRNGKey(int(rate * 1e6) + batch), n, rate, batch)
                if batch == 1:
                    spikes = spikes[:, 0]
                product = functools.partial(sharding.sharded_event_matmul, mesh=mesh)
                t = time_product(product, spikes, weight, args.reps)
                compiled = jax.jit(product).lower(spikes[0], weight).compile()
                out = np.asarray(compiled(spikes[0], weight))
                first.setdefault((batch, rate), out)
                text = compiled.as_text()
                rows.append(
                    {
                        "case": "dense",
                        "rel_diff_from_first": rel_diff(out, first[(batch, rate)]),
                        "devices": d,
                        "n": n,
                        "batch": batch,
                        "rate": rate,
                        "time_ms": t * 1e3,
                        "weight_bytes_per_device": weight_bytes,
                        "collectives": collective_bytes(text),
                        "memory": memory_per_device(mesh),
                    }
                )
                log(f"dense n={n} d={d} batch={batch} rate={rate:g}: {t * 1e3:.4f} ms")


def _refusal_probe(spikes, indptr, indices, *, n_post, max_row):
    return csr_event_matmul(spikes, 1.0, indptr, indices, n_post, max_row=max_row)


def bench_csr(args, counts, rows, *, n, fan, label):
    """``sharded_csr_event_matmul`` at every device count and rate; a device
    count whose blocks pass int32 positions is recorded as refused."""
    blocks = max(counts)
    first = {}
    for d in counts:
        mesh = sharding.post_mesh(d)
        synapses = n * fan
        if synapses // d + fan // d >= 2**31:
            # One device's block would need offsets past int32: the stored
            # form refuses it (checked here with shapes only, nothing built).
            try:
                jax.eval_shape(
                    functools.partial(_refusal_probe, n_post=n, max_row=fan // d),
                    jax.ShapeDtypeStruct((n,), bool),
                    jax.ShapeDtypeStruct((n + 1,), jnp.int32),
                    jax.ShapeDtypeStruct((synapses // d,), jnp.int32),
                )
                refused = "not refused"
            except ValueError as err:
                refused = str(err)
            rows.append({"case": label, "devices": d, "n": n, "fan": fan, "synapses": synapses, "refused": refused})
            log(f"{label} n={n} fan={fan} d={d}: refused: {refused}")
            continue
        csr = sharded_block_csr(mesh, n_pre=n, n_post=n, fan=fan, seed=7, blocks=blocks)
        jax.block_until_ready(csr.indices)
        index_bytes = csr.indices.addressable_shards[0].data.nbytes + csr.indptr.addressable_shards[0].data.nbytes
        for rate in args.rates:
            spikes = spike_patterns(jax.random.PRNGKey(int(rate * 1e6)), n, rate, 1)[:, 0]
            product = functools.partial(sharding.sharded_csr_event_matmul, mesh=mesh)
            t = time_product(product, spikes, csr, args.reps)
            # The connectivity is an argument: closed over, it would be a
            # constant of the program (gigabytes).
            compiled = jax.jit(product).lower(spikes[0], csr).compile()
            # Weight 1: integer sums, exact in any order, so every device
            # count must give the same bits.
            out = np.asarray(compiled(spikes[0], csr))
            first.setdefault(rate, out)
            text = compiled.as_text()
            events = int(round(rate * n)) * fan
            rows.append(
                {
                    "case": label,
                    "devices": d,
                    "n": n,
                    "fan": fan,
                    "synapses": synapses,
                    "batch": 1,
                    "rate": rate,
                    "equal_to_first": bool(np.array_equal(out, first[rate])),
                    "time_ms": t * 1e3,
                    "updates_per_s": events / t,
                    "connectivity_bytes_per_device": index_bytes,
                    "collectives": collective_bytes(text),
                    "memory": memory_per_device(mesh),
                }
            )
            log(f"{label} n={n} fan={fan} d={d} rate={rate:g}: {t * 1e3:.4f} ms ({events / t / 1e9:.1f}e9 updates/s)")


# -- the COBA network, sharded --------------------------------------------------


def coba_runner(p, mesh, csr, *, n_steps, unroll, synapses=True):
    """A compiled function running ``n_steps`` steps of the COBA network of
    :mod:`eventlib.bench.coba` with the neurons split over ``mesh``; returns the
    final state and the per-neuron spike counts (both split). With
    ``synapses=False`` the product is left out (the neurons and the
    all-gather alone: the part of a step that the synapses do not explain)."""

    axis = mesh.axis_names[0]
    n_local = p.n // mesh.devices.size

    def local(state, csr):
        def step(carry, k):
            state, counts = carry
            state, spikes = coba.neuron_step(p, state, k)
            every = lax.all_gather(spikes, axis, tiled=True)  # the one collective: n bools
            if synapses:
                g = csr_event_matmul(
                    every, csr.weight, csr.indptr[0], csr.indices[0], 2 * n_local, max_row=csr.max_row
                ).reshape(n_local, 2)
                state["ge"] = state["ge"] + p.w_e * g[:, 0]
                state["gi"] = state["gi"] + p.w_i * g[:, 1]
            else:
                state["ge"] = state["ge"] + p.w_e * every[:n_local].astype(jnp.float32)
            return (state, counts + spikes.astype(jnp.int32)), None

        (state, counts), _ = lax.scan(
            step, (state, jnp.zeros((n_local,), jnp.int32)), jnp.arange(n_steps, dtype=jnp.int32), unroll=unroll
        )
        return state, counts

    state_spec = {"v": P(axis), "ge": P(axis), "gi": P(axis), "last": P(axis)}
    csr_spec = sharding.ShardedCSR(P(), P(axis), P(axis), csr.n_post, csr.max_row)
    return jax.jit(sharding._shard_map(local, mesh, (state_spec, csr_spec), (state_spec, P(axis))))


def bench_coba(args, counts, rows):
    """The sharded COBA network at every size and device count, with and
    without its synapses."""

    blocks = max(counts)
    for n in args.coba_sizes:
        p = coba.Coba(n=n)
        first_counts = None
        fan = int(p.synapses_per_neuron)
        n_steps = p.steps(args.duration)
        for d in counts:
            mesh = sharding.post_mesh(d)
            csr = sharded_block_csr(mesh, n_pre=n, n_post=n, fan=fan, seed=11, blocks=blocks, interleave=(p.n_exc,))
            state0 = jax.device_put(coba.initial_state(p, seed=3), NamedSharding(mesh, P("post")))
            result = {"case": "coba", "devices": d, "n": n, "synapses": n * fan, "duration_s": args.duration}
            for synapses in (True, False):
                run = coba_runner(p, mesh, csr, n_steps=n_steps, unroll=args.unroll, synapses=synapses)
                t0 = time.perf_counter()
                compiled = run.lower(state0, csr).compile()
                compile_s = time.perf_counter() - t0
                (_, c1), _ = _timed(compiled, state0, csr)
                (_, c2), second = _timed(compiled, state0, csr)
                key = "" if synapses else "no_synapses_"
                result[key + "compile_s"] = compile_s
                result[key + "run_s"] = second
                result[key + "step_us"] = second / n_steps * 1e6
                if synapses:
                    c = np.asarray(c2)
                    result["realtime_factor"] = args.duration / second
                    result["rate_exc_hz"] = float(c[: p.n_exc].sum() / (p.n_exc * args.duration))
                    result["rate_inh_hz"] = float(c[p.n_exc :].sum() / (p.n_inh * args.duration))
                    result["runs_agree"] = bool(np.array_equal(np.asarray(c1), c))
                    # Synaptic inputs are integer counts (exact in any order),
                    # so the whole simulation is the same on every device count.
                    first_counts = c if first_counts is None else first_counts
                    result["spikes_equal_to_first"] = bool(np.array_equal(c, first_counts))
                    # The scan body is unrolled, so the program holds one
                    # collective per unrolled step: keep the distinct ones.
                    # (On one device XLA keeps a no-op all-gather.)
                    distinct = {json.dumps(c, sort_keys=True) for c in collective_bytes(compiled.as_text())}
                    result["collectives_per_step"] = [json.loads(c) for c in sorted(distinct)]
                    gathered = sum(c["bytes"] for c in result["collectives_per_step"])
                    result["bytes_gathered_per_step"] = gathered if d > 1 else 0
                    result["connectivity_bytes_per_device"] = (
                        csr.indices.addressable_shards[0].data.nbytes + csr.indptr.addressable_shards[0].data.nbytes
                    )
                    result["memory"] = memory_per_device(mesh)
            rows.append(result)
            log(
                f"coba n={n} d={d}: {result['step_us']:.1f} us/step ({result['realtime_factor']:.2f}x realtime), "
                f"neurons + all-gather alone {result['no_synapses_step_us']:.1f} us/step, "
                f"rates {result['rate_exc_hz']:.2f}/{result['rate_inh_hz']:.2f} Hz, compile {result['compile_s']:.2f} s"
            )


def _timed(fn, *args):
    return timed(lambda: fn(*args))


def bench_gather(args, counts, rows):
    """The all-gather of n bools alone, in a scan (the model's per-step
    communication term)."""
    for n in args.coba_sizes:
        for d in counts:
            if d == 1:
                continue
            mesh = sharding.post_mesh(d)

            def local(x):
                def step(x, _):
                    every = lax.all_gather(x, "post", tiled=True)
                    return x ^ every[: x.shape[0]], None

                return lax.scan(step, x, None, length=1000, unroll=args.unroll)[0]

            f = jax.jit(sharding._shard_map(local, mesh, (P("post"),), P("post")))
            x = jax.device_put(jnp.zeros((n,), bool), NamedSharding(mesh, P("post")))
            t = median_s(f, x, reps=5) / 1000
            rows.append({"case": "all-gather", "devices": d, "n": n, "step_us": t * 1e6})
            log(f"all-gather of {n} bools over {d} devices: {t * 1e6:.2f} us")


# -- report ----------------------------------------------------------------------


def model_rows(rows):
    """Each case's measured time beside the model: t(d) = t(1) / d for the
    local work, plus the measured all-gather for the network."""
    gather = {(r["n"], r["devices"]): r["step_us"] for r in rows if r["case"] == "all-gather"}
    base = {}
    for r in rows:
        if r.get("devices") == 1 and "time_ms" in r:
            base[(r["case"], r["n"], r.get("batch"), r.get("rate"))] = r["time_ms"]
        if r.get("devices") == 1 and r["case"] == "coba":
            base[("coba", r["n"])] = r["step_us"]
    for r in rows:
        if "time_ms" in r:
            t1 = base.get((r["case"], r["n"], r.get("batch"), r.get("rate")))
            r["model_ms"] = t1 / r["devices"] if t1 else None
        if r["case"] == "coba":
            t1 = base.get(("coba", r["n"]))
            r["model_step_us"] = (t1 / r["devices"] + gather.get((r["n"], r["devices"]), 0.0)) if t1 else None


def table(rows) -> str:
    """The operator rows and the network rows as markdown tables."""
    lines = [
        "| case | n | batch / fan | activity | devices | time | model t(1)/d | connectivity or weight per device "
        "| communicated per call |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["case"] in ("dense", "csr", "csr-large") and "time_ms" in r:
            per_dev = r.get("weight_bytes_per_device") or r.get("connectivity_bytes_per_device")
            comm = sum(c["bytes"] for c in r["collectives"])
            extra = f"batch {r['batch']}" if r["case"] == "dense" else f"fan {r['fan']}"
            model = f"{r['model_ms']:.4f} ms" if r.get("model_ms") else "-"
            lines.append(
                f"| {r['case']} | {r['n']:,} | {extra} | {r['rate'] * 100:g}% | {r['devices']} | "
                f"{r['time_ms']:.4f} ms | "
                f"{model} | {per_dev / 2**30:.2f} GiB | {comm} B |"
            )
        elif "refused" in r:
            lines.append(
                f"| {r['case']} | {r['n']:,} | fan {r['fan']} | - | {r['devices']} | "
                f"refused: {r['refused'][:80]} | - | - | - |"
            )
    lines += [
        "",
        "| network | neurons | synapses | devices | us / step | realtime x | neurons + all-gather alone | model "
        "| rate E / I Hz | connectivity per device | all-gather per step | compile s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["case"] == "coba":
            comm = r["bytes_gathered_per_step"]
            model = f"{r['model_step_us']:.1f}" if r.get("model_step_us") else "-"
            lines.append(
                f"| COBA | {r['n']:,} | {r['synapses']:,} | {r['devices']} | {r['step_us']:.1f} | "
                f"{r['realtime_factor']:.2f} | "
                f"{r['no_synapses_step_us']:.1f} us | {model} | {r['rate_exc_hz']:.2f} / {r['rate_inh_hz']:.2f} | "
                f"{r['connectivity_bytes_per_device'] / 2**20:.1f} MiB | {comm} B | {r['compile_s']:.2f} |"
            )
    gathers = [r for r in rows if r["case"] == "all-gather"]
    if gathers:
        each = (f"n = {r['n']:,} over {r['devices']}: {r['step_us']:.2f} us" for r in gathers)
        lines += ["", "All-gather of n bools alone, per step: " + ", ".join(each)]
    return "\n".join(lines)


def parse_args(argv=None):
    """The command line of ``benchmarks/sharded_gpu.py``."""
    ap = argparse.ArgumentParser(prog="benchmarks/sharded_gpu.py", description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, nargs="+", help="device counts (default: 1, 2, 4, ... up to all)")
    ap.add_argument(
        "--cases",
        nargs="+",
        default=["dense", "csr", "csr-large", "coba"],
        choices=["dense", "csr", "csr-large", "coba"],
    )
    ap.add_argument("--rates", type=float, nargs="+", default=[0.001, 0.01, 0.05])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--dense-n", type=int, default=50000)
    ap.add_argument("--csr", type=int, nargs=2, default=[1_000_000, 1000], metavar=("N", "FAN"))
    ap.add_argument("--csr-large", type=int, nargs=2, default=[3_000_000, 1000], metavar=("N", "FAN"))
    ap.add_argument("--coba-sizes", type=int, nargs="+", default=[400_000, 4_000_000])
    ap.add_argument("--duration", type=float, default=1.0, help="biological seconds per network run")
    ap.add_argument("--unroll", type=int, default=16)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="small sizes, short runs")
    ap.add_argument("--out", default=None, help="JSON path; a .md table is written beside it")
    args = ap.parse_args(argv)
    if args.quick:
        args.rates, args.batches, args.dense_n, args.reps = [0.01], [1, 4], 512, 2
        args.csr, args.csr_large, args.coba_sizes, args.duration = [4096, 16], [4096, 16], [4000], 0.01
    return args


def run(args) -> int:
    """Runs the cases ``args.cases`` on the device counts ``args.devices``
    (default 1, 2, 4, ... up to all), prints the table and writes
    ``args.out`` (JSON) and a markdown table beside it.

    Args:
        args: the parsed command line of ``benchmarks/sharded_gpu.py``.

    Returns:
        the exit status: 1 when a case failed, else 0.
    """
    available = jax.device_count()
    counts = args.devices or [d for d in (1, 2, 4, 8, 16) if d <= available]
    if max(counts) > available:
        backend = jax.default_backend()
        raise SystemExit(f"--devices asks for {max(counts)} devices, the {backend} backend has {available}")
    log(f"jax {jax.__version__}, {available} devices ({jax.devices()[0].device_kind}), running on {counts}")
    rows: list[dict] = []
    cases = {
        "dense": lambda: bench_dense(args, counts, rows),
        "csr": lambda: bench_csr(args, counts, rows, n=args.csr[0], fan=args.csr[1], label="csr"),
        "csr-large": lambda: bench_csr(
            args, counts, rows, n=args.csr_large[0], fan=args.csr_large[1], label="csr-large"
        ),
        "coba": lambda: (bench_gather(args, counts, rows), bench_coba(args, counts, rows)),
    }
    failed = []
    for name in args.cases:
        # One case failing (say, out of memory) keeps the others' results.
        try:
            cases[name]()
        except Exception as err:  # noqa: BLE001 - reported and counted below
            log(f"case {name} failed: {type(err).__name__}: {err}")
            failed.append({"case": name, "error": f"{type(err).__name__}: {err}"[:2000]})
    rows.extend(failed)
    model_rows(rows)
    text = table(rows)
    print(text)
    if args.out:
        meta = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "devices": [f"{d} ({d.device_kind})" for d in jax.devices()],
            "device_counts": counts,
            "versions": {"python": platform.python_version(), "jax": jax.__version__, "eventlib": __version__},
            "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "NCCL_NVLS_ENABLE", "XLA_PYTHON_CLIENT_PREALLOCATE")},
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
        out.with_suffix(".md").write_text(
            f"# Sharded operators and network\n\n`{meta['command']}`\n\n"
            f"{meta['date_utc']}; {', '.join(meta['devices'])}; jax {jax.__version__}\n\n{text}\n"
        )
        log(f"wrote {out} and {out.with_suffix('.md')}")
    return 1 if failed else 0
