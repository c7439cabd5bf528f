"""Half-precision weights (float16, bfloat16) are summed in float32 on every
path, as XLA's dense product sums them, and the result has the weight's
dtype.

Each case compares every path's error against a float64 reference computed
from the same half-precision weights: an event-driven path may not be more
than twice as far off as the same operator's or layer's ``path='dense'``,
and no path more than one unit of the half type's precision (``eps``) of
the largest output -- rounding a float32 sum to half precision costs at
most half of that, summing in half precision costs many units.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import dense_from_synapses, f64, make_spikes

import eventlib
from eventlib import ops
from eventlib.ops import procedural_event as proc

HALF = {"float16": jnp.float16, "bfloat16": jnp.bfloat16}
PATHS = ("event", "kernel", "dense", "auto")
# The Pallas interpreter (the 'kernel' path on CPU) is slow at these sizes:
# each kernel's accumulation is checked in one case of each test, for
# float16, whose 10-bit mantissa shows a half-precision sum soonest.
WITHOUT_KERNEL = tuple(p for p in PATHS if p != "kernel")


def _paths(dtype, first_case: bool):
    """The paths a case checks: every path for float16's first case."""
    return PATHS if dtype == "float16" and first_case else WITHOUT_KERNEL


N_PRE, N_POST = 1024, 32
N_ACTIVE = N_PRE // 4
FLOOR = 1e-6  # the absolute error a path may always have (cases summed exactly)


def _half_normal(rng, shape, dtype):
    return jnp.asarray(rng.normal(size=shape).astype(np.float32)).astype(dtype)


def _error(out, ref, dtype) -> float:
    out = np.asarray(out)
    assert out.dtype == np.dtype(dtype), (out.dtype, dtype)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    return float(np.max(np.abs(f64(out.astype(np.float32)) - ref)))


def _check(errors: dict, ref, dtype) -> None:
    """``errors`` maps a path name to its max error; ``'dense'`` is the bound."""
    bound = float(jnp.finfo(dtype).eps) * float(np.max(np.abs(ref)))
    for name, err in errors.items():
        assert err <= bound + FLOOR, f"{name}: error {err:.4g} > one eps of the largest output ({bound:.4g})"
        if name != "dense":
            assert err <= 2 * errors["dense"] + FLOOR, f"{name}: error {err:.4g} > 2 x dense {errors['dense']:.4g}"


def _spikes(rng, batch):
    return make_spikes(rng, "bool", (batch, N_PRE), N_ACTIVE)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", sorted(HALF))
def test_event_matmul(rng, dtype, batch):
    paths, dtype = _paths(dtype, batch == 3), HALF[dtype]
    weight = _half_normal(rng, (N_PRE, N_POST), dtype)
    spikes = _spikes(rng, batch)
    ref = f64(spikes) @ f64(weight.astype(jnp.float32))
    errors = {p: _error(ops.event_matmul(spikes, weight, path=p), ref, dtype) for p in paths}
    _check(errors, ref, dtype)


def _csr(rng):
    counts = rng.integers(0, 2 * N_POST, N_PRE)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return indptr, rng.integers(0, N_POST, indptr[-1]).astype(np.int32)


@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.parametrize("dtype", sorted(HALF))
def test_csr_event_matmul(rng, dtype, scalar):
    paths, dtype = _paths(dtype, not scalar), HALF[dtype]
    indptr, indices = _csr(rng)
    weight = _half_normal(rng, () if scalar else indices.shape, dtype)
    spikes = _spikes(rng, 2)
    pre = np.repeat(np.arange(N_PRE), np.diff(indptr))
    dense = dense_from_synapses(pre, indices, f64(weight.astype(jnp.float32)), N_PRE, N_POST)
    ref = f64(spikes) @ dense
    errors = {
        p: _error(ops.csr_event_matmul(spikes, weight, indptr, indices, N_POST, path=p), ref, dtype) for p in paths
    }
    if not scalar:  # the sorted product reads the weight the same way for both kinds
        det = ops.csr_event_matmul(spikes, weight, indptr, indices, N_POST, deterministic=True)
        errors["deterministic"] = _error(det, ref, dtype)
    coo = ops.coo_matmul(jnp.asarray(spikes).astype(dtype), weight, jnp.asarray(pre), jnp.asarray(indices), N_POST)
    errors["coo_matmul"] = _error(coo, ref, dtype)
    _check(errors, ref, dtype)


@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.parametrize("rule_args", [{"prob": 0.5}, {"k": N_POST // 2}], ids=["prob", "fixed"])
@pytest.mark.parametrize("dtype", sorted(HALF))
def test_procedural_event_matmul(rng, dtype, rule_args, scalar):
    paths, dtype = _paths(dtype, not scalar and "prob" in rule_args), HALF[dtype]
    rule, table = ops.make_rule(N_PRE, N_POST, 3, **rule_args)
    weight = _half_normal(rng, () if scalar else (N_PRE,), dtype)
    spikes = _spikes(rng, 1)
    w64 = f64(weight.astype(jnp.float32))
    ref = f64(spikes) @ (proc.stored_connectivity(rule).to_dense() * (w64 if scalar else w64[:, None]))
    errors = {p: _error(ops.procedural_event_matmul(spikes, weight, rule, table, path=p), ref, dtype) for p in paths}
    _check(errors, ref, dtype)


def _layer_errors(make_layer, spikes, dtype, paths=PATHS):
    """Each path's error of the layer built by ``make_layer(path)``, against
    the float64 product with its half-precision synapses."""
    errors, ref = {}, None
    for path in paths:
        layer = make_layer(path)
        if ref is None:
            pre, post = layer.synapses()
            w, _ = layer._weight_vector()
            w = np.broadcast_to(f64(jnp.asarray(w).astype(jnp.float32)), np.shape(pre))
            ref = f64(spikes) @ dense_from_synapses(np.asarray(pre), np.asarray(post), w, layer.n_pre, layer.n_post)
        errors[path] = _error(layer(spikes), ref, dtype)
    return errors, ref


@pytest.mark.parametrize("dtype", sorted(HALF))
def test_event_linear(rng, dtype):
    paths, dtype = _paths(dtype, True), HALF[dtype]
    weight = _half_normal(rng, (N_PRE, N_POST), dtype)
    spikes = _spikes(rng, 1)[0]
    ref = f64(spikes) @ f64(weight.astype(jnp.float32))
    errors = {p: _error(eventlib.EventLinear(N_PRE, N_POST, weight, path=p)(spikes), ref, dtype) for p in paths}
    _check(errors, ref, dtype)


def _per_synapse(rng, dtype):
    return lambda shape: _half_normal(rng, shape, dtype)


@pytest.mark.parametrize("procedural", [False, True])
@pytest.mark.parametrize("dtype", sorted(HALF))
def test_event_fixed_prob(rng, dtype, procedural):
    paths, dtype = _paths(dtype, procedural), HALF[dtype]
    spikes = _spikes(rng, 1)[0]

    def make(path):
        init = _per_synapse(np.random.default_rng(0), dtype)  # the same weights for every path
        return eventlib.EventFixedProb(N_PRE, N_POST, 0.5, init, seed=4, path=path, procedural=procedural)

    errors, ref = _layer_errors(make, spikes, dtype, paths)
    _check(errors, ref, dtype)


@pytest.mark.parametrize("event", [False, True])
@pytest.mark.parametrize("dtype", sorted(HALF))
def test_fixed_num_conn(rng, dtype, event):
    paths, dtype = _paths(dtype, event), HALF[dtype]
    spikes = _spikes(rng, 1)[0]
    layer_type = eventlib.EventFixedNumConn if event else eventlib.FixedNumConn

    def make(path):
        init = _per_synapse(np.random.default_rng(0), dtype)
        return layer_type(N_PRE, N_POST, N_PRE // 2, init, seed=5, path=path)

    errors, ref = _layer_errors(make, spikes, dtype, paths if event else ("dense",))
    _check(errors, ref, dtype)
