"""``csr_event_matmul`` and ``coo_matmul`` against the dense product of the
stored matrix, values and derivatives, for scalar and per-synapse weights."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    ACTIVITIES,
    BATCH_SHAPES,
    N_REC,
    SPIKE_KINDS,
    assert_close,
    assert_exact,
    dense_from_synapses,
    dyadic,
    events,
    f64,
    make_spikes,
    n_active,
    random_synapses,
    recurrent_loss,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlib import connectivity, ops
from eventlib.ops import paths

# (n_pre, n_post): 1x1, n_pre != n_post, sizes around powers of two, and long
# rows (n_post = 300) that make the event path visit few inputs per step.
SHAPES = ((1, 1), (7, 3), (8, 5), (9, 16), (17, 2), (64, 5), (300, 7), (40, 300))
# Bool spikes at every size; integer and float spikes at a few (each
# combination compiles anew).
SHAPE_KINDS = [(*shape, "bool") for shape in SHAPES] + [
    (*shape, kind) for shape in ((1, 1), (9, 16), (40, 300)) for kind in ("int", "float")
]
SHAPE_KIND_IDS = [f"{a}x{b}-{kind}" for a, b, kind in SHAPE_KINDS]
WEIGHT_KINDS = ("scalar", "per_synapse")

# The tests marked ``kernel_twin`` run again on the kernels (the Pallas
# interpreter on CPU, see tests/conftest.py): every kernel and branch, on a
# subset of the cases where the interpreter is slow.
twin = pytest.mark.kernel_twin


@functools.cache
def build(conn_kind, n_pre, n_post):
    """A connectivity of one of three kinds: random synapse lists (uneven and
    empty rows, repeated pairs), fixed probability, or fixed fan-out.

    One fixed matrix per (kind, sizes), so that the parametrised cases share
    their compiled functions (a new synapse count or longest row compiles
    anew)."""
    if conn_kind == "random":
        rng = np.random.default_rng([n_pre, n_post])
        conn, _ = connectivity.from_indices(*random_synapses(rng, n_pre, n_post), n_pre, n_post)
    elif conn_kind == "prob":
        conn = connectivity.fixed_prob(n_pre, n_post, 0.3, seed=n_pre)
    else:
        conn = connectivity.fixed_num_per_pre(n_pre, n_post, min(3, n_post), seed=n_pre)
    return conn


def make_weight(rng, weight_kind, conn):
    if weight_kind == "scalar":
        return np.float32(rng.integers(1, 65) / 256)
    return dyadic(rng, (conn.n_synapses,))


def dense_of(conn, weight):
    """float64 ``(n_pre, n_post)`` matrix of ``conn`` with ``weight``."""
    return dense_from_synapses(conn.pre_indices(), conn.indices, weight, conn.n_pre, conn.n_post)


def values(spikes, float_as_event=False):
    return events(spikes) if float_as_event else f64(spikes)


def cotangent(rng, shape):
    return (rng.integers(-8, 9, shape) / 8).astype(np.float32)


def weight_grad_reference(spikes, g, conn, scalar, float_as_event=False):
    """float64 d(sum(out * g))/d(weight): for synapse s from i to j,
    ``sum_b values[b, i] * g[b, j]``; summed over synapses for a scalar."""
    vals = values(spikes, float_as_event).reshape(-1, conn.n_pre)
    per_synapse = np.sum(vals[:, conn.pre_indices()] * f64(g).reshape(-1, conn.n_post)[:, conn.indices], axis=0)
    return per_synapse.sum() if scalar else per_synapse


def csr(spikes, weight, conn, **kw):
    """The operator on ``conn``'s arrays; ``max_row`` given, so that it also
    runs with the connectivity traced."""
    kw.setdefault("max_row", conn.max_row)
    return ops.csr_event_matmul(spikes, weight, conn.indptr, conn.indices, conn.n_post, **kw)


@functools.partial(jax.jit, static_argnames=("n_post", "max_row", "float_as_event"))
def grad_weight(spikes, weight, indptr, indices, g, *, n_post, max_row, float_as_event=False):
    """Compiled once per shape; ``indptr`` is traced, so ``max_row`` is given."""

    def loss(w):
        out = ops.csr_event_matmul(spikes, w, indptr, indices, n_post, max_row=max_row, float_as_event=float_as_event)
        return jnp.sum(out * g)

    return jax.grad(loss)(weight)


@functools.partial(jax.jit, static_argnames=("n_post", "float_as_event"))
def grad_weight_reference(spikes, weight, indptr, indices, g, *, n_post, float_as_event=False):
    def loss(w):
        return jnp.sum(
            ops.sparse_matmul_reference(spikes, w, indptr, indices, n_post, float_as_event=float_as_event) * g
        )

    return jax.grad(loss)(weight)


# -- forward -----------------------------------------------------------------


@twin(where=lambda activity, kind, **_: activity in (("none", "few", "all") if kind == "bool" else ("few",)))
@pytest.mark.parametrize("activity", ACTIVITIES)
@pytest.mark.parametrize(("n_pre", "n_post", "kind"), SHAPE_KINDS, ids=SHAPE_KIND_IDS)
def test_matches_dense_exactly(rng, n_pre, n_post, kind, activity):
    """Random synapse lists, per-synapse dyadic weights: equal to the float64
    product with the stored matrix, exactly."""
    conn = build("random", n_pre, n_post)
    weight = make_weight(rng, "per_synapse", conn)
    spikes = make_spikes(rng, kind, (3, n_pre), n_active(activity, n_pre))
    out = csr(spikes, weight, conn)
    assert out.shape == (3, n_post) and out.dtype == jnp.float32
    assert_exact(out, values(spikes) @ dense_of(conn, weight))


@twin
@pytest.mark.parametrize(("weight_kind", "float_as_event"), [("scalar", True), ("per_synapse", False)])
def test_library_reference(rng, weight_kind, float_as_event):
    """The library's own references (product and its weight gradient) are
    the float64 dense computation, and the operator equals them."""
    conn = build("random", 40, 9)
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, "float", (3, 40), 10)
    g = cotangent(rng, (3, 9))
    args = (spikes, weight, conn.indptr, conn.indices, g)
    ref = ops.sparse_matmul_reference(spikes, weight, conn.indptr, conn.indices, 9, float_as_event=float_as_event)
    assert_exact(ref, values(spikes, float_as_event) @ dense_of(conn, weight))
    assert_exact(csr(spikes, weight, conn, float_as_event=float_as_event), ref)
    ref_grad = grad_weight_reference(*args, n_post=9, float_as_event=float_as_event)
    assert_exact(ref_grad, weight_grad_reference(spikes, g, conn, weight_kind == "scalar", float_as_event))
    assert_exact(grad_weight(*args, n_post=9, max_row=conn.max_row, float_as_event=float_as_event), ref_grad)


@twin(where=lambda activity, **_: activity == "quarter")
@pytest.mark.parametrize("activity", ["one", "quarter", "all"])
@pytest.mark.parametrize(
    ("conn_kind", "batch"),
    [("random", ()), ("random", (3,)), ("prob", (3,)), ("fan_out", (3,))],
    ids=["random-vector", "random-batch3", "prob-batch3", "fan_out-batch3"],
)
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_connectivity_and_weight_kinds(rng, conn_kind, weight_kind, batch, activity):
    """Every connectivity kind with a scalar or a per-synapse weight."""
    conn = build(conn_kind, 64, 20)
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, "bool", (*batch, 64), n_active(activity, 64))
    assert_exact(csr(spikes, weight, conn), values(spikes) @ dense_of(conn, weight))


@twin(where=lambda activity, batch, **_: activity == "quarter" and batch == (3,))
@pytest.mark.parametrize("activity", ["none", "one", "quarter", "all"])
@pytest.mark.parametrize(
    ("conn_kind", "batch"),
    [("random", ()), ("random", (3,)), ("prob", (2, 3)), ("fan_out", (3,))],
    ids=["random-vector", "random-batch3", "prob-batch2x3", "fan_out-batch3"],
)
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_deterministic(rng, conn_kind, weight_kind, batch, activity):
    """``deterministic=True`` (sort by target, segmented sums): the dense
    values exactly, and the same bits on a second run. Every ``path`` runs
    the same sorted formulation (``test_deterministic_ignores_path``), so
    each path is called on one case here: each call compiles the sorted
    product anew, and it is the slowest product to compile."""
    conn = build(conn_kind, 64, 20)
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, "float", (*batch, 64), n_active(activity, 64))
    ref = values(spikes) @ dense_of(conn, weight)
    every_path = conn_kind == "random" and batch == (3,) and activity == "quarter"
    for path in ops.PATHS if every_path else ("auto",):
        out = csr(spikes, weight, conn, path=path, deterministic=True)
        assert_exact(out, ref)
        np.testing.assert_array_equal(np.asarray(out), np.asarray(csr(spikes, weight, conn, deterministic=True)))


@pytest.mark.parametrize("platform", ["cpu", "cuda", None])
@pytest.mark.parametrize("path", ops.PATHS)
def test_deterministic_ignores_path(path, platform):
    """``deterministic=True`` runs the sorted formulation whatever ``path``
    and platform, and refuses the families without one."""
    assert paths.resolve(path, platform, "csr", deterministic=True).run == "sorted"
    for family in ("dense", "procedural"):
        with pytest.raises(ValueError, match="stored connectivity only"):
            paths.resolve(path, platform, family, deterministic=True)


@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_deterministic_chunks(rng, weight_kind, monkeypatch):
    """Several chunks of active rows (a small chunk size), float weights
    rounded in the formulation's fixed order: close to float64 and
    identical between runs; gradients through it as without it."""
    from eventlib.ops import sparse_event

    monkeypatch.setattr(sparse_event, "_SORTED_CHUNK_SLOTS", 64)
    jax.clear_caches()  # the chunk size is chosen when the product is traced
    conn = connectivity.fixed_prob(120, 50, 0.3, seed=5)
    assert sparse_event._SORTED_CHUNK_SLOTS // conn.max_row < 30
    weight = rng.standard_normal(() if weight_kind == "scalar" else (conn.n_synapses,)).astype(np.float32)
    spikes = make_spikes(rng, "float", (2, 120), 90, dyadic=False)
    out = csr(spikes, weight, conn, deterministic=True)
    assert_close(out, f64(spikes) @ dense_of(conn, weight))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(csr(spikes, weight, conn, deterministic=True)))

    def loss(w, s, deterministic):
        out = ops.csr_event_matmul(s, w, conn.indptr, conn.indices, 50, deterministic=deterministic)
        return jnp.sum(jnp.sin(out))

    for argnum in (0, 1):
        with_sort = jax.grad(loss, argnums=argnum)(weight, spikes, True)
        without = jax.grad(loss, argnums=argnum)(weight, spikes, False)
        if argnum == 0 and weight_kind == "scalar":
            # One sum over outputs of cos(out_j) * u_j, u = spikes @ adjacency,
            # with terms of both signs: the forward's float32 rounding
            # (relative to |out_j|), carried through sin's derivative, is
            # bounded by the terms' magnitudes, not by the smaller sum.
            u = f64(spikes) @ dense_of(conn, 1.0)
            bound = 1e-6 * np.sum(np.abs(u * weight * u) + np.abs(u))
            assert abs(float(with_sort) - float(without)) <= bound
        else:
            assert_close(with_sort, without, 1e-5)
    jax.clear_caches()


@twin
@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("batch", BATCH_SHAPES, ids=str)
def test_batch_shapes(rng, batch, kind):
    """Any leading batch shape, including an empty batch."""
    conn = build("random", 17, 6)
    weight = make_weight(rng, "per_synapse", conn)
    spikes = make_spikes(rng, kind, (*batch, 17), 5)
    out = csr(spikes, weight, conn)
    assert out.shape == (*batch, 6)
    assert_exact(out, values(spikes) @ dense_of(conn, weight))


@twin
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_float_weights_close(rng, weight_kind):
    """Normal weights, non-dyadic float spikes: within float32 rounding."""
    conn = build("prob", 300, 50)
    weight = rng.standard_normal(() if weight_kind == "scalar" else (conn.n_synapses,)).astype(np.float32)
    spikes = make_spikes(rng, "float", (4, 300), 60, dyadic=False)
    assert_close(csr(spikes, weight, conn), f64(spikes) @ dense_of(conn, weight))


@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
@pytest.mark.parametrize("path", ops.PATHS)
def test_paths_agree(rng, path, weight_kind):
    """``path='auto'|'event'|'dense'`` all give the dense values."""
    conn = build("random", 64, 9)
    weight = make_weight(rng, weight_kind, conn)
    for count in (0, 1, 20, 64):
        spikes = make_spikes(rng, "float", (2, 64), count)
        assert_exact(csr(spikes, weight, conn, path=path), values(spikes) @ dense_of(conn, weight))


@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_kernel_tiling(rng, weight_kind, monkeypatch):
    """The kernel's tiling at sizes the other tests are too small for: rows
    longer than one chunk (several chunks per row, looped inside the
    program), several groups of active rows per program, and a last
    program cut short by the end of the input."""
    from eventlib.ops import sparse_event

    # Two programs, so blocks of 128 inputs with several groups of active rows each.
    monkeypatch.setattr(sparse_event, "_CSR_PROGRAMS", 2)
    jax.clear_caches()  # the tiling is chosen when the kernel is traced
    conn = connectivity.fixed_prob(50, 700, 0.8, seed=3)
    block, rows, chunk = sparse_event._csr_tiling(3 * 50, conn.max_row)
    assert block == 128 and rows == 8  # two programs, the second cut short
    assert conn.max_row > 2 * chunk  # several chunks per row
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, "float", (3, 50), 20)
    out = ops.csr_event_matmul(spikes, weight, conn.indptr, conn.indices, 700, path="kernel")
    assert_exact(out, values(spikes) @ dense_of(conn, weight))
    jax.clear_caches()


@twin
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_float_as_event(rng, weight_kind):
    """``float_as_event=True`` counts each nonzero input, of any sign or
    magnitude, as one spike."""
    conn = build("random", 30, 8)
    weight = make_weight(rng, weight_kind, conn)
    mask = make_spikes(rng, "bool", (4, 30), 7)
    spikes = np.where(mask, rng.uniform(-3, 3, mask.shape), 0).astype(np.float32)
    out = csr(spikes, weight, conn, float_as_event=True)
    assert_exact(out, events(spikes) @ dense_of(conn, weight))
    ref = ops.sparse_matmul_reference(spikes, weight, conn.indptr, conn.indices, 8, float_as_event=True)
    assert_exact(out, ref)


@twin
def test_max_row_computed(rng):
    """Without ``max_row`` it is computed from the concrete connectivity; the
    result is the same as with it given."""
    conn = build("random", 50, 12)
    weight = make_weight(rng, "per_synapse", conn)
    spikes = make_spikes(rng, "bool", (3, 50), 10)
    expected = values(spikes) @ dense_of(conn, weight)
    assert_exact(ops.csr_event_matmul(spikes, weight, conn.indptr, conn.indices, 12), expected)
    assert_exact(csr(spikes, weight, conn, max_row=conn.max_row), expected)


@twin
def test_traced_connectivity_with_max_row(rng):
    """With ``max_row`` given, the connectivity itself may be a traced
    argument under ``jit``."""
    conn = build("random", 50, 12)
    weight = make_weight(rng, "per_synapse", conn)
    spikes = make_spikes(rng, "bool", (3, 50), 10)
    f = jax.jit(functools.partial(ops.csr_event_matmul, n_post=12, max_row=conn.max_row))
    assert_exact(f(spikes, weight, conn.indptr, conn.indices), values(spikes) @ dense_of(conn, weight))


@twin
def test_jit_with_concrete_connectivity(rng):
    """Under ``jit``, NumPy connectivity closed over by the function is
    concrete, so ``max_row`` can be left out (as the docstring promises)."""
    conn = build("random", 50, 12)
    weight = make_weight(rng, "per_synapse", conn)
    spikes = make_spikes(rng, "bool", (3, 50), 10)
    f = jax.jit(lambda s: ops.csr_event_matmul(s, weight, conn.indptr, conn.indices, 12))
    assert_exact(f(spikes), values(spikes) @ dense_of(conn, weight))


@twin
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_no_synapses(rng, weight_kind):
    """A connectivity without synapses gives zeros, and zero gradients."""
    conn, _ = connectivity.from_indices(np.zeros(0, np.int32), np.zeros(0, np.int32), 6, 4)
    weight = np.float32(0.5) if weight_kind == "scalar" else np.zeros(0, np.float32)
    spikes = make_spikes(rng, "float", (2, 6), 3)
    assert_exact(csr(spikes, weight, conn), np.zeros((2, 4)))
    gw, gs = jax.grad(lambda w, s: jnp.sum(csr(s, w, conn)), argnums=(0, 1))(weight, spikes)
    assert_exact(gw, np.zeros(np.shape(weight)))
    assert_exact(gs, np.zeros((2, 6)))


@pytest.mark.parametrize("batch", [(), (3,), (2, 3), (0,)], ids=str)
def test_coo_matmul(rng, batch):
    """``coo_matmul`` is ``x @ M`` for float inputs of any batch shape,
    repeated pairs adding up."""
    pre, post = random_synapses(rng, 11, 4)
    w = dyadic(rng, pre.shape)
    x = make_spikes(rng, "float", (*batch, 11), 6)
    out = ops.coo_matmul(jnp.asarray(x), jnp.asarray(w), jnp.asarray(pre), jnp.asarray(post), 4)
    assert out.shape == (*batch, 4)
    assert_exact(out, f64(x) @ dense_from_synapses(pre, post, w, 11, 4))


def test_csr_to_dense(rng):
    """``csr_to_dense`` is the stored matrix (repeated pairs add up), as is
    ``Connectivity.to_dense``."""
    conn = build("random", 9, 3)
    weight = make_weight(rng, "per_synapse", conn)
    expected = dense_of(conn, weight)
    assert_exact(ops.csr_to_dense(weight, conn.indptr, conn.indices, 3), expected)
    assert_exact(conn.to_dense(weight), expected)
    assert_exact(ops.csr_pre_indices(jnp.asarray(conn.indptr), conn.n_synapses), conn.pre_indices())


# -- derivatives ---------------------------------------------------------------


@twin(where=lambda activity, kind, **_: activity in ("none", "few", "all") and kind != "int")
@pytest.mark.parametrize("float_as_event", [False, True])
@pytest.mark.parametrize("activity", ACTIVITIES)
@pytest.mark.parametrize("kind", SPIKE_KINDS)
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_grad_weight(rng, weight_kind, kind, activity, float_as_event):
    """d/dweight of ``sum(out * g)``, per synapse or for the shared scalar,
    equals the float64 formula, exactly."""
    conn = build("random", 40, 9)
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, kind, (3, 40), n_active(activity, 40))
    g = cotangent(rng, (3, 9))
    args = (spikes, weight, conn.indptr, conn.indices, g)
    grad = grad_weight(*args, n_post=9, max_row=conn.max_row, float_as_event=float_as_event)
    assert grad.shape == np.shape(weight) and grad.dtype == jnp.float32
    assert_exact(grad, weight_grad_reference(spikes, g, conn, weight_kind == "scalar", float_as_event))


@twin(where=lambda activity, **_: activity in ("none", "few", "all"))
@pytest.mark.parametrize(
    ("batch", "activity"),
    [((3,), "none"), ((3,), "half"), ((), "few")],
    ids=["batch3-none", "batch3-half", "vector-few"],
)
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_grad_spikes(rng, weight_kind, activity, batch):
    """d/dspikes is the dense ``g @ M.T``, also at entries that are exactly
    zero; with ``float_as_event`` it is the same (straight-through)."""
    conn = build("random", 33, 6)
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, "float", (*batch, 33), n_active(activity, 33))
    g = cotangent(rng, (*batch, 6))
    expected = f64(g) @ dense_of(conn, weight).T

    def loss(s, float_as_event):
        return jnp.sum(csr(s, weight, conn, float_as_event=float_as_event) * g)

    def reference_loss(s):
        return jnp.sum(ops.sparse_matmul_reference(s, weight, conn.indptr, conn.indices, 6) * g)

    grad = jax.grad(loss)(spikes, False)
    assert_exact(grad, expected)
    assert_exact(grad, jax.grad(reference_loss)(spikes))
    assert_exact(jax.grad(loss)(spikes, True), expected)
    assert np.any(np.asarray(grad)[spikes == 0] != 0)  # zero entries do get a gradient


@twin
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_jvp(rng, weight_kind):
    """``jax.jvp`` in spikes and weight: ``ds @ M + s @ dM``."""
    conn = build("random", 20, 5)
    weight, dw = make_weight(rng, weight_kind, conn), make_weight(rng, weight_kind, conn)
    for count in (0, 1, 7, 20):
        spikes = make_spikes(rng, "float", (4, 20), count)
        ds = make_spikes(rng, "float", (4, 20), 20)
        out, tangent = jax.jvp(lambda s, w: csr(s, w, conn), (spikes, weight), (ds, dw))
        assert_exact(out, f64(spikes) @ dense_of(conn, weight))
        assert_exact(tangent, f64(ds) @ dense_of(conn, weight) + f64(spikes) @ dense_of(conn, dw))


# -- transformations -------------------------------------------------------------


@twin
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_jit_switches_at_run_time(rng, weight_kind):
    """One compiled function gives the dense values for every active count,
    including counts that take several steps of the event path."""
    conn = build("fan_out", 300, 40)  # equal rows: the event path up to all active
    weight = make_weight(rng, weight_kind, conn)
    wide = connectivity.fixed_num_per_pre(60, 300, 250, seed=1)  # long rows: few inputs per step
    wide_weight = make_weight(rng, weight_kind, wide)
    f = jax.jit(lambda s, w, c: csr(s, w, c), static_argnums=2)
    for batch in [(), (3,)]:
        for count in (0, 1, 2, 15, 16, 17, 100, 255, 256, 257, 299, 300):
            spikes = make_spikes(rng, "bool", (*batch, 300), count)
            assert_exact(f(spikes, weight, conn), values(spikes) @ dense_of(conn, weight))
        for count in (0, 1, *range(20, 61, 5), 31, 32, 33, 60):
            spikes = make_spikes(rng, "bool", (*batch, 60), count)
            assert_exact(f(spikes, wide_weight, wide), values(spikes) @ dense_of(wide, wide_weight))


@twin
@pytest.mark.parametrize(("kind", "weight_kind"), [("bool", "scalar"), ("float", "per_synapse")])
def test_vmap(rng, kind, weight_kind):
    """``vmap``, nested ``vmap`` and ``in_axes=1`` equal the batched call."""
    conn = build("random", 25, 4)
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, kind, (2, 3, 25), 6)
    expected = values(spikes) @ dense_of(conn, weight)

    def single(s):
        return csr(s, weight, conn)

    assert_exact(jax.vmap(single)(spikes), expected)
    assert_exact(jax.vmap(jax.vmap(single))(spikes), expected)
    assert_exact(jax.vmap(single, in_axes=1)(np.swapaxes(spikes, 0, 1)), expected)
    assert_exact(jax.jit(jax.vmap(jax.vmap(single)))(spikes), expected)


@twin
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_vmap_over_weights(rng, weight_kind):
    """``vmap`` over a batch of weights, with shared or mapped spikes."""
    conn = build("random", 15, 3)
    weights = np.stack([make_weight(rng, weight_kind, conn) for _ in range(4)])
    spikes = make_spikes(rng, "float", (4, 15), 5)
    dense = np.stack([dense_of(conn, w) for w in weights])

    def f(s, w):
        return csr(s, w, conn)

    assert_exact(jax.vmap(f)(spikes, weights), np.einsum("vi,vij->vj", f64(spikes), dense))
    assert_exact(jax.vmap(f, in_axes=(None, 0))(spikes, weights), np.einsum("bi,vij->vbj", f64(spikes), dense))


@twin
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_per_example_gradients(rng, weight_kind):
    """``vmap(grad)`` gives one weight gradient per example (per synapse, or
    for the scalar) and each example's spike gradient."""
    conn = build("random", 18, 3)
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, "float", (5, 18), 4)
    g = cotangent(rng, (5, 3))

    def loss(w, s, g):
        return jnp.sum(csr(s, w, conn) * g)

    gw, gs = jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(None, 0, 0))(weight, spikes, g)
    scalar = weight_kind == "scalar"
    expected = np.stack([weight_grad_reference(spikes[b], g[b], conn, scalar) for b in range(5)])
    assert_exact(gw, expected)
    assert_exact(gs, f64(g) @ dense_of(conn, weight).T)


@twin
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_jacobians(rng, weight_kind):
    """``jacfwd`` and ``jacrev`` in the weight and the spikes equal the
    analytic Jacobians."""
    conn = build("random", 6, 3)
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, "float", (6,), 2)
    pre, post = conn.pre_indices(), conn.indices
    # d out[j] / d w[s] = spikes[pre[s]] * (post[s] == j)
    jac_w = (f64(spikes)[pre][None, :] * (post[None, :] == np.arange(3)[:, None])).astype(np.float64)
    if weight_kind == "scalar":
        jac_w = jac_w.sum(axis=1)

    def of_weight(w):
        return csr(spikes, w, conn)

    def of_spikes(s):
        return csr(s, weight, conn)

    for jac in (jax.jacfwd, jax.jacrev):
        assert_exact(jac(of_weight)(weight), jac_w)
        assert_exact(jac(of_spikes)(spikes), dense_of(conn, weight).T)


@twin(where=lambda remat, **_: not remat)
@pytest.mark.parametrize("remat", [False, True], ids=["scan", "scan_checkpoint"])
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_grad_through_time(rng, weight_kind, remat):
    """Gradients through ``lax.scan`` (backpropagation through time) equal
    those of the reference."""
    conn = build("prob", N_REC, N_REC)
    xs = make_spikes(rng, "int", (5, 2, N_REC), 4).astype(np.float32)
    weight = make_weight(rng, weight_kind, conn)

    def product(s, w):
        return csr(s, w, conn)

    def reference(s, w):
        return ops.sparse_matmul_reference(s, w, conn.indptr, conn.indices, N_REC)

    grad = jax.grad(lambda w: recurrent_loss(product, w, xs, remat))(weight)
    ref = jax.grad(lambda w: recurrent_loss(reference, w, xs, remat))(weight)
    assert_close(grad, ref)


@twin
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_second_derivatives(rng, weight_kind):
    """``jax.hessian`` in spikes and weight jointly equals the reference's,
    block by block -- including the derivative of the weight gradient with
    respect to spikes that are exactly zero."""
    conn = build("random", 6, 3)
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, "float", (2, 6), 2)

    def loss(s, w):
        return jnp.sum(csr(s, w, conn) ** 2)

    def reference_loss(s, w):
        return jnp.sum(ops.sparse_matmul_reference(s, w, conn.indptr, conn.indices, 3) ** 2)

    got = jax.hessian(loss, argnums=(0, 1))(spikes, weight)
    ref = jax.hessian(reference_loss, argnums=(0, 1))(spikes, weight)
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        np.testing.assert_array_equal(np.asarray(got[i][j]), np.asarray(ref[i][j]), err_msg=f"block {i}{j}")


# -- properties ------------------------------------------------------------------


@st.composite
def sparse_problems(draw):
    n_pre = draw(st.sampled_from([1, 7, 8, 9, 17, 64, 300]))
    n_post = draw(st.sampled_from([1, 5, 16]))
    n_syn = draw(st.integers(0, 4 * n_pre))
    pre = draw(st.lists(st.integers(0, n_pre - 1), min_size=n_syn, max_size=n_syn))
    post = draw(st.lists(st.integers(0, n_post - 1), min_size=n_syn, max_size=n_syn))
    batch = draw(st.sampled_from([(), (1,), (3,), (2, 3)]))
    count = draw(st.integers(0, n_pre))
    kind = draw(st.sampled_from(SPIKE_KINDS))
    weight_kind = draw(st.sampled_from(WEIGHT_KINDS))
    float_as_event = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    conn, _ = connectivity.from_indices(np.array(pre, np.int32), np.array(post, np.int32), n_pre, n_post)
    return conn, batch, count, kind, weight_kind, float_as_event, np.random.default_rng(seed)


# Every example compiles anew (its own synapse count and longest row).
@twin
@settings(max_examples=settings.default.max_examples * 2 // 5)
@given(sparse_problems())
def test_property_exact(problem):
    """For any synapse list, batch, active count, spike and weight kind, the
    result and the weight gradient equal the float64 computation exactly."""
    conn, batch, count, kind, weight_kind, float_as_event, rng = problem
    weight = make_weight(rng, weight_kind, conn)
    spikes = make_spikes(rng, kind, (*batch, conn.n_pre), count)
    out = csr(spikes, weight, conn, float_as_event=float_as_event)
    assert_exact(out, values(spikes, float_as_event) @ dense_of(conn, weight))
    g = cotangent(rng, (*batch, conn.n_post))
    grad = grad_weight(
        spikes,
        weight,
        conn.indptr,
        conn.indices,
        g,
        n_post=conn.n_post,
        max_row=conn.max_row,
        float_as_event=float_as_event,
    )
    assert_exact(grad, weight_grad_reference(spikes, g, conn, weight_kind == "scalar", float_as_event))


@pytest.mark.parametrize("first", [np.inf, -np.inf, np.nan, -3.0, 0.0], ids=["inf", "-inf", "nan", "negative", "zero"])
def test_zero_buffer_per_call(first):
    """The kernels' output buffer is a zero computed from the call's own
    input (so XLA cannot merge the buffers of several calls and copy them):
    +0 everywhere, whatever that input's first element is."""
    from eventlib.ops._compact import zeros_for_call

    tied = jnp.asarray([first, 1.0], jnp.float32)
    zeros = np.asarray(jax.jit(lambda t: zeros_for_call(5, jnp.float32, t))(tied))
    np.testing.assert_array_equal(zeros, np.zeros(5, np.float32))
    assert not np.signbit(zeros).any()
    assert np.asarray(zeros_for_call(3, jnp.int32, jnp.zeros((0,)))).tolist() == [0, 0, 0]
