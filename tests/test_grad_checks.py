"""Derivatives against finite differences (``jax.test_util.check_grads``):
forward and reverse mode, to second order, for every operator and layer on
every path, in the weight and in float spikes.

float32 finite differences need a large step and loose tolerances (1e-2);
the sizes are tiny so that the Pallas interpreter runs ('kernel') stay
fast. Spikes have exact zeros: the derivative there is the dense product's,
which is what a finite difference of the (continuous) product measures.
With ``float_as_event=True`` the forward ignores spike magnitudes and the
spike derivative is straight-through, so only the weight is checked.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import make_spikes
from jax.test_util import check_grads

import eventlib
from eventlib import ops

PATHS = ("event", "kernel", "dense", "auto")
N_PRE, N_POST, BATCH = 6, 4, 2
TOL = {"eps": 1e-2, "atol": 1e-2, "rtol": 1e-2}


def _check(fn, weight, spikes=None):
    """``fn(weight, spikes)`` (or ``fn(weight)``), made nonlinear so that its
    second derivatives are not zero, checked to second order."""
    args = (jnp.asarray(weight),) if spikes is None else (jnp.asarray(weight), jnp.asarray(spikes))
    # A gentle nonlinearity: finite differences of steep ones need steps too small for float32.
    check_grads(lambda *a: jnp.sin(0.5 * fn(*a)), args, order=2, modes=("fwd", "rev"), **TOL)


def _spikes(rng):
    return make_spikes(rng, "float", (BATCH, N_PRE), 3, dyadic=False)


@pytest.mark.parametrize("path", PATHS)
def test_event_matmul(rng, path):
    weight = rng.normal(size=(N_PRE, N_POST)).astype(np.float32)
    spikes = _spikes(rng)
    _check(lambda w, s: ops.event_matmul(s, w, path=path), weight, spikes)
    _check(lambda w: ops.event_matmul(spikes, w, float_as_event=True, path=path), weight)
    _check(lambda w: ops.event_matmul(spikes[0] != 0, w, path=path), weight)  # bool spikes, a vector


def _csr(rng):
    counts = rng.integers(0, 4, N_PRE)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return indptr, rng.integers(0, N_POST, indptr[-1]).astype(np.int32)


@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.parametrize(("path", "deterministic"), [(p, False) for p in PATHS] + [("auto", True)])
def test_csr_event_matmul(rng, path, deterministic, scalar):
    indptr, indices = _csr(rng)
    weight = rng.normal(size=() if scalar else indices.shape).astype(np.float32)
    spikes = _spikes(rng)

    def product(w, s, **kwargs):
        return ops.csr_event_matmul(s, w, indptr, indices, N_POST, path=path, deterministic=deterministic, **kwargs)

    _check(product, weight, spikes)
    _check(lambda w: product(w, spikes, float_as_event=True), weight)


RULES = {"prob": {"prob": 0.5}, "fixed": {"k": 2}}


@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.parametrize("rule_name", sorted(RULES))
@pytest.mark.parametrize("path", PATHS)
def test_procedural_event_matmul(rng, path, rule_name, scalar):
    rule, table = ops.make_rule(N_PRE, N_POST, 21, **RULES[rule_name])
    weight = rng.normal(size=() if scalar else (N_PRE,)).astype(np.float32)
    spikes = _spikes(rng)

    def product(w, s, **kwargs):
        return ops.procedural_event_matmul(s, w, rule, table, path=path, **kwargs)

    _check(product, weight, spikes)
    _check(lambda w: product(w, spikes, float_as_event=True), weight)


@pytest.mark.parametrize("scalar", [False, True])
def test_coo_matmul(rng, scalar):
    indptr, indices = _csr(rng)
    pre = ops.csr_pre_indices(jnp.asarray(indptr), indices.shape[0])
    weight = rng.normal(size=() if scalar else indices.shape).astype(np.float32)
    _check(lambda w, x: ops.coo_matmul(x, w, pre, jnp.asarray(indices), N_POST), weight, _spikes(rng))


def test_homogeneous_matmul(rng):
    weight, spikes = np.float32(rng.normal()), _spikes(rng)
    _check(lambda w, s: ops.homogeneous_matmul(s, w, N_POST), weight, spikes)
    _check(lambda w: ops.homogeneous_matmul(spikes, w, N_POST, float_as_event=True), weight)


# -- layers --------------------------------------------------------------------


class _Weight:
    """A plain holder as the layers' ``param_type``: raw JAX transformations
    may write a tracer into it (a brainstate State refuses that)."""

    def __init__(self, value):
        self.value = value


def _through_layer(layer):
    """The layer as a function of ``(weight, spikes)``: the weight is written
    into ``layer.weight.value`` for the call, then the original restored."""

    def fn(w, s=None):
        original = layer.weight.value
        layer.weight.value = w
        try:
            return layer(s)
        finally:
            layer.weight.value = original

    return fn


def _check_layer(layer, rng, spikes_too=True):
    shape = jnp.shape(layer.weight.value)
    # A scalar weight multiplies every input: smaller, for the finite differences' sake.
    weight = jnp.asarray(rng.normal(size=shape).astype(np.float32) * (0.3 if shape == () else 1.0))
    spikes = _spikes(rng)
    fn = _through_layer(layer)
    if spikes_too:
        _check(fn, weight, spikes)
    else:
        _check(lambda w: fn(w, spikes), weight)


@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.parametrize("path", PATHS)
def test_event_linear(rng, path, scalar):
    weight = 0.5 if scalar else rng.normal(size=(N_PRE, N_POST)).astype(np.float32)
    _check_layer(eventlib.EventLinear(N_PRE, N_POST, weight, path=path, param_type=_Weight), rng)
    _check_layer(
        eventlib.EventLinear(N_PRE, N_POST, weight, float_as_event=True, path=path, param_type=_Weight),
        rng,
        spikes_too=False,
    )


@pytest.mark.parametrize("procedural", [False, True])
@pytest.mark.parametrize("path", PATHS)
def test_event_fixed_prob(rng, path, procedural):
    for conn_num in (0.5, 2):
        weight = np.ones((N_PRE,), np.float32) if procedural else 0.5
        layer = eventlib.EventFixedProb(
            N_PRE, N_POST, conn_num, weight, seed=3, path=path, procedural=procedural, param_type=_Weight
        )
        _check_layer(layer, rng)
        layer = eventlib.EventFixedProb(
            N_PRE,
            N_POST,
            conn_num,
            weight,
            seed=3,
            path=path,
            procedural=procedural,
            float_as_event=True,
            param_type=_Weight,
        )
        _check_layer(layer, rng, spikes_too=False)


@pytest.mark.parametrize("path", PATHS)
def test_event_fixed_num_conn(rng, path):
    n_syn = N_POST * 2  # fixed fan-in: every postsynaptic neuron has 2 partners
    layer = eventlib.EventFixedNumConn(
        N_PRE, N_POST, 2, np.ones((n_syn,), np.float32), seed=4, path=path, param_type=_Weight
    )
    _check_layer(layer, rng)
    layer = eventlib.EventFixedNumConn(N_PRE, N_POST, 2, 0.5, seed=4, path=path, deterministic=True, param_type=_Weight)
    _check_layer(layer, rng)


@pytest.mark.parametrize("procedural", [False, True])
def test_fixed_num_conn(rng, procedural):
    target = "post" if procedural else "pre"  # procedural connectivity is fan-out
    layer = eventlib.FixedNumConn(
        N_PRE, N_POST, 2, 0.5, efferent_target=target, seed=5, procedural=procedural, param_type=_Weight
    )
    _check_layer(layer, rng)
