"""The GPU rule of :mod:`eventlib.ops.paths`, pinned on the CPU.

On a GPU, ``'auto'`` runs the dense product outright for small products,
and otherwise switches to it at run time when the active count makes it
cheaper (the stored connectivity too); the portable path visits its active
inputs in a few large chunks, never one loop step per active input. The
GPU formulations are pure JAX, so they run here: the operators' lowering
functions are called with ``platform='cuda'`` (which is what the CUDA
lowering does), on the CPU, and compared with the float64 dense reference
(exactly: dyadic weights and values make every sum exact in any order).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_exact, dense_from_synapses, dyadic, f64, random_synapses
from jax.core import ShapedArray

import eventlib
from eventlib import connectivity
from eventlib.ops import dense_event, paths, sparse_event

CH05 = {"fc1": ("csr", 1600, 64, 128), "fc2": ("dense", 1600, 128, 10)}


# -- the rule ---------------------------------------------------------------------


@pytest.mark.parametrize("layer", sorted(CH05))
def test_small_products_run_dense_on_a_gpu(layer):
    """Chapter 05's layers (25 steps x batch 64 in one product) are small:
    ``'auto'`` takes the dense product on a GPU, the event path on CPU, and
    an explicit path is never overridden."""
    family, batch, n_pre, n_post = CH05[layer]
    sizes = {"batch": batch, "n_pre": n_pre, "n_post": n_post}
    assert eventlib.which_path("auto", backend="gpu", family=family, **sizes) == "dense"
    assert eventlib.which_path("auto", backend="cpu", family=family, **sizes) == "event"
    assert eventlib.which_path("event", backend="gpu", family=family, **sizes) == "event"
    assert eventlib.which_path("kernel", backend="gpu", family=family, **sizes) == "kernel"
    assert paths.resolve("auto", "cuda", family, sizes=(batch, n_pre, n_post)).run == "dense"
    assert paths.resolve("auto", "cuda", family, kernel=False, sizes=(batch, n_pre, n_post)).run == "dense"


def test_large_products_stay_event_driven_with_a_run_time_switch_on_a_gpu():
    sizes = (256, 4096, 4096)
    assert not paths.gpu_small(*sizes)
    expected = "kernel" if paths.gpu_kernels_supported() else "event"
    for family in ("dense", "csr"):
        choice = paths.resolve("auto", "cuda", family, sizes=sizes)
        assert choice.run == expected and choice.may_switch and choice.vectorised
        assert eventlib.which_path("auto", backend="gpu", family=family, batch=256, n_pre=4096, n_post=4096) == expected
    # An explicit path never switches; the CPU keeps its loops, and its
    # stored path never switches.
    assert paths.resolve("event", "cuda", "csr", sizes=sizes) == paths.Choice("event", False, True)
    assert paths.resolve("auto", "cpu", "csr", sizes=sizes) == paths.Choice("event", False, False)
    assert paths.resolve("auto", None, "dense", sizes=sizes) == paths.Choice("event", True, False)


def test_dense_time_estimate_and_chunks():
    assert paths.gpu_dense_seconds(1, 1000, 1000) == pytest.approx(4e6 / paths.GPU_BYTES_PER_SECOND)
    assert paths.gpu_dense_seconds(1000, 1000, 1000) == pytest.approx(2e9 / paths.GPU_FLOPS)
    for n_pre in (1, 7, 64, 100, 128, 4096, 100_000):
        chunk = paths.gpu_chunk_rows(n_pre)
        assert chunk * paths.GPU_MAX_CHUNKS >= n_pre and chunk & (chunk - 1) == 0
    assert paths.gpu_chunk_pairs(1600 * 64, 80) == (1600, 12800, 1600 * 64)  # chapter 05: one step
    assert max(paths.gpu_chunk_pairs(10**8, 1000)) * 1000 <= paths.GPU_CHUNK_SLOTS
    assert paths.gpu_chunk_pairs(3, 5) == (1, 3)
    with pytest.raises(ValueError, match="together"):
        eventlib.which_path("auto", backend="gpu", batch=1)


# -- no loop step per active input on a GPU ---------------------------------------


def _loop_updates(jaxpr, inside=False):
    """Sizes of the updates of the scatters and of the dot operands found
    inside loop bodies of ``jaxpr`` (recursively)."""
    sizes = []
    for eqn in jaxpr.eqns:
        in_loop = inside or eqn.primitive.name == "while"
        if inside and eqn.primitive.name.startswith("scatter"):
            sizes.append(int(np.prod(eqn.invars[-1].aval.shape)))
        for sub in _sub_jaxprs(eqn.params.values()):
            sizes += _loop_updates(sub, in_loop)
    return sizes


def _sub_jaxprs(values):
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from _sub_jaxprs(v)
        elif hasattr(v, "eqns"):
            yield v
        elif hasattr(v, "jaxpr") and hasattr(v.jaxpr, "eqns"):
            yield v.jaxpr


def _csr_case(n_pre=64, n_post=128, p=0.5, seed=0):
    conn = connectivity.fixed_prob(n_pre, n_post, p, seed=seed)
    rng = np.random.default_rng(seed)
    return conn, dyadic(rng, (conn.n_synapses,))


def test_stored_gpu_form_scatters_whole_chunks():
    """The stored path's loop on a GPU adds a chunk of active pairs' windows
    per step (chapter 05's fc1: every pair in one step), not one window."""
    conn, w = _csr_case()
    spikes = np.zeros((1600, 64), bool)
    impl = functools.partial(
        sparse_event._csr_event_impl,
        n_post=128,
        max_row=conn.max_row,
        float_as_event=False,
        path="event",
        deterministic=False,
    )
    args = (spikes, w, conn.indptr, conn.indices)
    gpu = _loop_updates(jax.make_jaxpr(functools.partial(impl, platform="cuda"))(*args).jaxpr)
    cpu = _loop_updates(jax.make_jaxpr(functools.partial(impl, platform=None))(*args).jaxpr)
    sizes = paths.gpu_chunk_pairs(1600 * 64, conn.max_row)
    assert gpu and min(gpu) >= sizes[0] * conn.max_row > conn.max_row
    assert max(gpu) == 1600 * 64 * conn.max_row
    assert cpu and max(cpu) <= conn.max_row  # the CPU keeps one pair per step


def test_dense_weight_gpu_form_has_few_chunks():
    n_pre = 1000
    w = np.zeros((n_pre, 16), np.float32)
    for batch in (1, 64):
        jaxpr = jax.make_jaxpr(
            functools.partial(dense_event._event_matmat_impl, float_as_event=False, path="event", platform="cuda")
        )(np.zeros((batch, n_pre), bool), w)
        loops = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "while"]
        assert loops  # the chunked loop, each step a (batch, chunk) x (chunk, 16) product
        body = loops[0].params["body_jaxpr"].jaxpr
        dots = [e for e in body.eqns if e.primitive.name == "dot_general"]
        assert dots and dots[0].invars[1].aval.shape == (paths.gpu_chunk_rows(n_pre), 16)


# -- the GPU forms are exact ------------------------------------------------------


def _csr_forward(spikes, w, conn, path, max_row=None):
    impl = functools.partial(
        sparse_event._csr_event_impl,
        n_post=conn.n_post,
        max_row=conn.max_row if max_row is None else max_row,
        float_as_event=False,
        path=path,
        deterministic=False,
        platform="cuda",
    )
    return jax.jit(impl)(jnp.asarray(spikes), jnp.asarray(w), conn.indptr, conn.indices)


def _csr_weight_cotangent(spikes, ct, w, conn, path, max_row=None):
    def f(s, c):
        return sparse_event._weight_cotangent(
            c,
            s,
            conn.indptr,
            conn.indices,
            ShapedArray(np.shape(w), jnp.float32),
            n_post=conn.n_post,
            max_row=conn.max_row if max_row is None else max_row,
            float_as_event=False,
            path=path,
            deterministic=False,
            platform="cuda",
        )

    return jax.jit(f)(jnp.asarray(spikes), jnp.asarray(ct))


def _spikes(rng, batch, n_pre, activity):
    """float32 spikes: dyadic values at ``activity`` of the entries."""
    mask = rng.random((batch, n_pre)) < activity
    return np.where(mask, rng.integers(1, 9, (batch, n_pre)) / 4, 0).astype(np.float32)


@pytest.mark.parametrize("path", ["event", "auto", "dense"])
@pytest.mark.parametrize("activity", [0.0, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("sizes", [(1, 64, 128, 0.5), (1600, 64, 128, 0.5), (7, 300, 40, 0.2)])
def test_stored_gpu_forms_equal_the_dense_reference(path, activity, sizes):
    batch, n_pre, n_post, p = sizes
    rng = np.random.default_rng([batch, n_pre, int(activity * 100)])
    conn, w = _csr_case(n_pre, n_post, p, seed=n_pre)
    dense = dense_from_synapses(conn.pre_indices(), conn.indices, w, n_pre, n_post)
    spikes = _spikes(rng, batch, n_pre, activity)
    ct = dyadic(rng, (batch, n_post))
    assert_exact(_csr_forward(spikes, w, conn, path), f64(spikes) @ dense)
    # d/dw of sum(ct * (spikes @ M)): per synapse s of row i, sum_b spikes[b, i] ct[b, j].
    per_synapse = (f64(spikes).T @ f64(ct))[conn.pre_indices(), conn.indices]
    assert_exact(_csr_weight_cotangent(spikes, ct, w, conn, path), per_synapse)
    assert_exact(_csr_weight_cotangent(spikes, ct, np.float32(0.5), conn, path), per_synapse.sum())


@pytest.mark.parametrize("path", ["event", "auto"])
def test_stored_gpu_form_rows_longer_than_the_window(path):
    """A stale ``max_row`` (rows outgrew it): the GPU form takes the dense
    product, exactly, as the CPU form takes the pass over every synapse."""
    rng = np.random.default_rng(5)
    conn, _ = connectivity.from_indices(*random_synapses(rng, 40, 30, mean_row=6.0), 40, 30)
    w = dyadic(rng, (conn.n_synapses,))
    dense = dense_from_synapses(conn.pre_indices(), conn.indices, w, 40, 30)
    spikes = _spikes(rng, 9, 40, 0.2)
    ct = dyadic(rng, (9, 30))
    assert_exact(_csr_forward(spikes, w, conn, path, max_row=2), f64(spikes) @ dense)
    outer = f64(spikes).T @ f64(ct)
    got = _csr_weight_cotangent(spikes, ct, w, conn, path, max_row=2)
    assert_exact(got, outer[conn.pre_indices(), conn.indices])


@pytest.mark.parametrize("path", ["event", "auto"])
@pytest.mark.parametrize("activity", [0.0, 0.05, 0.5, 1.0])
@pytest.mark.parametrize("batch", [1, 64])
def test_dense_weight_gpu_forms_equal_the_dense_reference(path, activity, batch):
    n_pre, n_post = 300, 17
    rng = np.random.default_rng([batch, int(activity * 100)])
    w = dyadic(rng, (n_pre, n_post))
    spikes = _spikes(rng, batch, n_pre, activity)
    ct = dyadic(rng, (batch, n_post))
    fwd = functools.partial(dense_event._event_matmat_impl, float_as_event=False, path=path, platform="cuda")
    assert_exact(jax.jit(fwd)(spikes, w), f64(spikes) @ f64(w))
    outer = functools.partial(
        dense_event._event_outer, weight_dtype=jnp.float32, float_as_event=False, path=path, platform="cuda"
    )
    assert_exact(jax.jit(outer)(spikes, ct), f64(spikes).T @ f64(ct))
