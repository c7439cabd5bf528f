"""Second derivatives of every operator, on every path, against the dense
reference: reverse-over-reverse (``jax.grad`` of ``jax.grad``) and
forward-over-reverse (``jax.jvp`` of ``jax.grad``), in the weight, in float
spikes, and mixed.

The losses are nonlinear (``sin``) so that the second derivatives are not
trivially zero; the spikes have exact zeros, where the derivative is the
dense product's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, make_spikes

from eventlib import ops
from eventlib.ops import procedural_event as proc

PATHS = ("event", "kernel", "dense", "auto")
N_PRE, N_POST, BATCH = 7, 5, 2


def _loss(product):
    return lambda weight, spikes: jnp.sum(jnp.sin(product(spikes, weight)))


def _second_derivatives(loss, weight, spikes, v_w, v_s):
    """Every second derivative of ``loss(weight, spikes)`` contracted with
    the directions ``v_w``/``v_s``: reverse-over-reverse in (w, w), (s, s),
    both mixed orders, and forward-over-reverse."""

    def dir_w(w, s):
        return jnp.vdot(jax.grad(loss, 0)(w, s), v_w)

    def dir_s(w, s):
        return jnp.vdot(jax.grad(loss, 1)(w, s), v_s)

    return {
        "ww": jax.grad(dir_w, 0)(weight, spikes),
        "ws": jax.grad(dir_w, 1)(weight, spikes),
        "sw": jax.grad(dir_s, 0)(weight, spikes),
        "ss": jax.grad(dir_s, 1)(weight, spikes),
        "fwd": jax.jvp(jax.grad(loss, argnums=(0, 1)), (weight, spikes), (v_w, v_s))[1],
    }


def _check(loss, ref_loss, weight, spikes, rng, tol=1e-4):
    # 1e-4: a scalar weight's forward-over-reverse sums terms that cancel.
    weight, spikes = jnp.asarray(weight), jnp.asarray(spikes)
    v_w = jnp.asarray(rng.normal(size=weight.shape), weight.dtype)
    v_s = jnp.asarray(rng.normal(size=spikes.shape), spikes.dtype)
    got = _second_derivatives(loss, weight, spikes, v_w, v_s)
    ref = _second_derivatives(ref_loss, weight, spikes, v_w, v_s)
    for key in got:
        for g, r in zip(jax.tree.leaves(got[key]), jax.tree.leaves(ref[key]), strict=True):
            assert_close(g, r, tol=tol)


def _spikes(rng, batch=BATCH):
    return make_spikes(rng, "float", (batch, N_PRE), 3, dyadic=False)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("batch", [1, BATCH])
def test_event_matmul(rng, path, batch):
    weight = rng.normal(size=(N_PRE, N_POST)).astype(np.float32)
    loss = _loss(lambda s, w: ops.event_matmul(s, w, path=path))
    _check(loss, _loss(ops.event_matmul_reference), weight, _spikes(rng, batch), rng)


@pytest.mark.parametrize("path", PATHS)
def test_event_matmul_float_as_event_weight(rng, path):
    """With float_as_event only the weight's second derivative is defined by
    the forward (the spike derivative is straight-through)."""
    weight = jnp.asarray(rng.normal(size=(N_PRE, N_POST)).astype(np.float32))
    spikes = jnp.asarray(_spikes(rng))
    v = jnp.asarray(rng.normal(size=weight.shape).astype(np.float32))

    def hvp(product):
        loss = _loss(product)
        return jax.grad(lambda w: jnp.vdot(jax.grad(loss)(w, spikes), v))(weight)

    got = hvp(lambda s, w: ops.event_matmul(s, w, float_as_event=True, path=path))
    ref = hvp(lambda s, w: ops.event_matmul_reference(s, w, float_as_event=True))
    assert_close(got, ref, tol=1e-5)


def _csr(rng):
    counts = rng.integers(0, 4, N_PRE)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    indices = rng.integers(0, N_POST, indptr[-1]).astype(np.int32)
    return indptr, indices


@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.parametrize(("path", "deterministic"), [(p, False) for p in PATHS] + [("event", True)])
def test_csr_event_matmul(rng, path, deterministic, scalar):
    indptr, indices = _csr(rng)
    shape = () if scalar else indices.shape
    weight = rng.normal(size=shape).astype(np.float32)

    def product(s, w):
        return ops.csr_event_matmul(s, w, indptr, indices, N_POST, path=path, deterministic=deterministic)

    def reference(s, w):
        return ops.sparse_matmul_reference(s, w, indptr, indices, N_POST)

    _check(_loss(product), _loss(reference), weight, _spikes(rng), rng)


RULES = {"prob": {"prob": 0.4}, "fixed": {"k": 3}, "multi": {"k": 3, "distinct": False}}


@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.parametrize("rule_name", sorted(RULES))
@pytest.mark.parametrize("path", PATHS)
def test_procedural_event_matmul(rng, path, rule_name, scalar):
    rule, table = ops.make_rule(N_PRE, N_POST, 11, **RULES[rule_name])
    dense = jnp.asarray(proc.stored_connectivity(rule).to_dense().astype(np.float32))
    weight = rng.normal(size=() if scalar else (N_PRE,)).astype(np.float32)

    def product(s, w):
        return ops.procedural_event_matmul(s, w, rule, table, path=path)

    def reference(s, w):
        return jnp.matmul(s, dense * (w if w.ndim == 0 else w[:, None]), precision=jax.lax.Precision.HIGHEST)

    _check(_loss(product), _loss(reference), weight, _spikes(rng), rng)


def test_homogeneous_matmul(rng):
    weight = np.float32(rng.normal())

    def reference(s, w):
        return jnp.matmul(s, jnp.full((N_PRE, N_POST), w), precision=jax.lax.Precision.HIGHEST)

    _check(_loss(lambda s, w: ops.homogeneous_matmul(s, w, N_POST)), _loss(reference), weight, _spikes(rng), rng)


@pytest.mark.parametrize("path", PATHS)
def test_event_matmul_hessian_under_vmap(rng, path):
    """Per-example second derivatives (``vmap`` of ``grad`` of ``grad``)."""
    weight = jnp.asarray(rng.normal(size=(N_PRE, N_POST)).astype(np.float32))
    spikes = jnp.asarray(_spikes(rng, 3))
    v = jnp.asarray(rng.normal(size=weight.shape).astype(np.float32))

    def per_example(product):
        loss = _loss(product)

        def hvp(s):
            return jax.grad(lambda w: jnp.vdot(jax.grad(loss)(w, s), v))(weight)

        return jax.vmap(hvp)(spikes)

    got = per_example(lambda s, w: ops.event_matmul(s, w, path=path))
    assert_close(got, per_example(ops.event_matmul_reference), tol=1e-5)
