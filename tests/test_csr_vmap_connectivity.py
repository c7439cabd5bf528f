"""``jax.vmap`` of csr_event_matmul over the connectivity itself: one
matrix per element (``indptr``/``indices`` mapped), alone or together with
the weight and the spikes, the static ``max_row`` bounding every matrix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, dyadic, make_spikes

from eventlib import ops

N_MAP, N_PRE, N_POST, N_SYN = 3, 9, 6, 20
CASES = [("event", False), ("kernel", False), ("dense", False), ("auto", False), ("event", True)]


def _matrices(rng):
    """``N_MAP`` CSR matrices with ``N_SYN`` synapses each, rows of uneven length."""
    indptrs = []
    for _ in range(N_MAP):
        cuts = np.sort(rng.integers(0, N_SYN + 1, N_PRE - 1))
        indptrs.append(np.concatenate([[0], cuts, [N_SYN]]))
    indptr = np.stack(indptrs).astype(np.int32)
    indices = rng.integers(0, N_POST, (N_MAP, N_SYN)).astype(np.int32)
    return indptr, indices, int(np.max(np.diff(indptr, axis=1)))


def _product(path, deterministic, max_row):
    def product(spikes, weight, indptr, indices):
        return ops.csr_event_matmul(
            spikes, weight, indptr, indices, N_POST, max_row=max_row, path=path, deterministic=deterministic
        )

    return product


def _reference(spikes, weight, indptr, indices):
    return ops.sparse_matmul_reference(spikes, weight, indptr, indices, N_POST)


@pytest.mark.parametrize(("path", "deterministic"), CASES)
def test_vmap_over_connectivity(rng, path, deterministic):
    indptr, indices, max_row = _matrices(rng)
    spikes = make_spikes(rng, "float", (2, N_PRE), 4)
    weight = dyadic(rng, (N_SYN,))
    product = _product(path, deterministic, max_row)
    got = jax.vmap(product, in_axes=(None, None, 0, 0))(spikes, weight, indptr, indices)
    for m in range(N_MAP):
        assert_close(got[m], _reference(spikes, weight, indptr[m], indices[m]), tol=1e-6)


@pytest.mark.parametrize(("path", "deterministic"), CASES)
def test_vmap_over_weight_indices_and_spikes(rng, path, deterministic):
    """Weight and targets mapped together (the row offsets shared), with a
    mapped batch of spikes and a scalar weight per matrix as well."""
    indptr, indices, _ = _matrices(rng)
    indptr = indptr[0]
    max_row = int(np.max(np.diff(indptr)))
    spikes = make_spikes(rng, "bool", (N_MAP, 2, N_PRE), 5)
    weight = dyadic(rng, (N_MAP, N_SYN))
    product = _product(path, deterministic, max_row)
    got = jax.vmap(product, in_axes=(None, 0, None, 0))(spikes[0], weight, indptr, indices)
    for m in range(N_MAP):
        assert_close(got[m], _reference(spikes[0], weight[m], indptr, indices[m]), tol=1e-6)
    scalars = jnp.asarray(dyadic(rng, (N_MAP,)))
    got = jax.vmap(product, in_axes=(0, 0, None, 0))(spikes, scalars, indptr, indices)
    for m in range(N_MAP):
        assert_close(got[m], _reference(spikes[m], scalars[m], indptr, indices[m]), tol=1e-6)


@pytest.mark.parametrize("path", ["event", "dense"])
def test_grad_under_vmap_over_connectivity(rng, path):
    """Per-matrix gradients in the weight and the float spikes."""
    indptr, indices, max_row = _matrices(rng)
    spikes = jnp.asarray(make_spikes(rng, "float", (N_MAP, 2, N_PRE), 4))
    weight = jnp.asarray(dyadic(rng, (N_MAP, N_SYN)))

    def loss(product):
        return lambda s, w, p, i: jnp.sum(jnp.sin(product(s, w, p, i)))

    grads = jax.grad(loss(_product(path, False, max_row)), argnums=(0, 1))
    got = jax.vmap(grads)(spikes, weight, indptr, indices)
    ref = jax.vmap(jax.grad(loss(_reference), argnums=(0, 1)))(spikes, weight, indptr, indices)
    for g, r in zip(got, ref, strict=True):
        assert_close(g, r, tol=1e-5)
