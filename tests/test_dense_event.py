"""``eventlib.ops.event_matmul`` against the dense product, values and derivatives.

The event path chooses at run time between work on the active rows only and
the dense product, so every check runs over activity levels (none, one, a few,
a quarter, half, all active) and sizes around powers of two.
"""

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
    dyadic,
    events,
    f64,
    make_spikes,
    n_active,
    recurrent_loss,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import eventlib
from eventlib import ops

# (n_pre, n_post): 1x1, n_pre != n_post, and sizes around powers of two.
SHAPES = ((1, 1), (1, 4), (7, 3), (8, 5), (9, 16), (17, 2), (64, 5), (300, 7))
# Bool spikes at every size; integer and float spikes at a few (each
# combination compiles anew).
SHAPE_KINDS = [(*shape, "bool") for shape in SHAPES] + [
    (*shape, kind) for shape in ((1, 1), (9, 16), (300, 7)) for kind in ("int", "float")
]
SHAPE_KIND_IDS = [f"{a}x{b}-{kind}" for a, b, kind in SHAPE_KINDS]

# The tests marked ``kernel_twin`` run again on the kernels (the Pallas
# interpreter on CPU, see tests/conftest.py): every kernel and branch, on a
# subset of the cases where the interpreter is slow.
twin = pytest.mark.kernel_twin


def values(spikes, float_as_event=False):
    """float64 contribution of each input (the dense product's left factor)."""
    return events(spikes) if float_as_event else f64(spikes)


def cotangent(rng, shape):
    """Dyadic cotangents, so that gradients are exact too."""
    return (rng.integers(-8, 9, shape) / 8).astype(np.float32)


def weighted_sum(f, g):
    """The scalar ``sum(f(...) * g)`` whose gradient pulls ``g`` back."""
    return lambda *args: jnp.sum(f(*args) * g)


# Compiled once per shape and shared by the parametrised cases (activity
# levels differ only at run time, inside one compiled function).
@functools.partial(jax.jit, static_argnames="float_as_event")
def grad_weight(spikes, weight, g, float_as_event=False):
    return jax.grad(weighted_sum(lambda w: ops.event_matmul(spikes, w, float_as_event=float_as_event), g))(weight)


@functools.partial(jax.jit, static_argnames="float_as_event")
def grad_weight_reference(spikes, weight, g, float_as_event=False):
    f = functools.partial(ops.event_matmul_reference, spikes, float_as_event=float_as_event)
    return jax.grad(weighted_sum(f, g))(weight)


# -- forward -----------------------------------------------------------------


@twin(where=lambda activity, kind, **_: activity in (("none", "few", "all") if kind == "bool" else ("few",)))
@pytest.mark.parametrize("batch", [(), (3,)], ids=["vector", "batch3"])
@pytest.mark.parametrize("activity", ACTIVITIES)
@pytest.mark.parametrize(("n_pre", "n_post", "kind"), SHAPE_KINDS, ids=SHAPE_KIND_IDS)
def test_matches_dense_exactly(rng, n_pre, n_post, kind, activity, batch):
    """Dyadic weights: the result equals the float64 dense product and the
    library's own reference bit for bit, at every activity level."""
    spikes = make_spikes(rng, kind, (*batch, n_pre), n_active(activity, n_pre))
    weight = dyadic(rng, (n_pre, n_post))
    out = ops.event_matmul(spikes, weight)
    assert out.dtype == jnp.float32
    assert_exact(out, values(spikes) @ f64(weight))
    assert_exact(out, ops.event_matmul_reference(jnp.asarray(spikes), jnp.asarray(weight)))


@twin
@pytest.mark.parametrize("kind", SPIKE_KINDS)
@pytest.mark.parametrize("batch", BATCH_SHAPES, ids=str)
def test_batch_shapes(rng, batch, kind):
    """Any leading batch shape, including an empty batch, gives
    ``(*batch, n_post)`` and the dense values."""
    spikes = make_spikes(rng, kind, (*batch, 17), 5)
    weight = dyadic(rng, (17, 6))
    out = ops.event_matmul(spikes, weight)
    assert out.shape == (*batch, 6)
    assert_exact(out, values(spikes) @ f64(weight))


@twin
@pytest.mark.parametrize("batch", [(), (4,)], ids=["vector", "batch4"])
@pytest.mark.parametrize("n_pre", [9, 300])
def test_float_weights_close(rng, n_pre, batch):
    """Normal weights and non-dyadic float spikes: within float32 rounding of
    the float64 product."""
    spikes = make_spikes(rng, "float", (*batch, n_pre), max(1, n_pre // 5), dyadic=False)
    weight = rng.standard_normal((n_pre, 13)).astype(np.float32)
    assert_close(ops.event_matmul(spikes, weight), f64(spikes) @ f64(weight))


@pytest.mark.parametrize("path", eventlib.ops.PATHS)
@pytest.mark.parametrize("activity", ["one", "few", "all"])
def test_paths_agree(rng, path, activity):
    """``path='auto'|'event'|'kernel'|'dense'`` all give the dense values."""
    spikes = make_spikes(rng, "float", (3, 64), n_active(activity, 64))
    weight = dyadic(rng, (64, 5))
    assert_exact(ops.event_matmul(spikes, weight, path=path), f64(spikes) @ f64(weight))


def test_default_path(rng, restore_default_path):
    """``set_default_path`` changes what ``'auto'`` runs, not the values;
    ``which_path`` reports it; explicit paths are unaffected."""
    assert eventlib.which_path("dense") == "dense"
    assert eventlib.which_path("event") == "event"
    assert eventlib.which_path() in ("event", "kernel")
    assert eventlib.which_path(backend="cpu") in ("event", "kernel")
    assert eventlib.which_path("auto", backend="cpu") != "dense"
    spikes = make_spikes(rng, "bool", (2, 40), 4)
    weight = dyadic(rng, (40, 3))
    before = ops.event_matmul(spikes, weight)
    eventlib.set_default_path("dense")
    assert eventlib.which_path() == "dense"
    assert eventlib.which_path("event") == "event"
    assert_exact(ops.event_matmul(spikes, weight), before)
    eventlib.set_default_path("event")
    assert eventlib.which_path() == "event"
    assert_exact(ops.event_matmul(spikes, weight), before)


@twin
@pytest.mark.parametrize("kind", SPIKE_KINDS)
def test_float_as_event(rng, kind):
    """``float_as_event=True`` counts every nonzero input (any sign or
    magnitude) as one spike."""
    mask = make_spikes(rng, "bool", (4, 30), 7)
    if kind == "float":
        spikes = np.where(mask, rng.uniform(-3, 3, mask.shape), 0).astype(np.float32)
    elif kind == "int":
        spikes = np.where(mask, rng.integers(-3, 4, mask.shape), 0).astype(np.int32)
    else:
        spikes = mask
    weight = dyadic(rng, (30, 8))
    out = ops.event_matmul(spikes, weight, float_as_event=True)
    assert_exact(out, events(spikes) @ f64(weight))
    ref = ops.event_matmul_reference(jnp.asarray(spikes), jnp.asarray(weight), float_as_event=True)
    assert_exact(out, ref)


@twin
def test_bool_and_binary_float_agree(rng):
    """Bool spikes and the same spikes as float 0/1 give identical bits,
    also for non-dyadic weights."""
    mask = make_spikes(rng, "bool", (5, 100), 20)
    weight = rng.standard_normal((100, 9)).astype(np.float32)
    assert_exact(ops.event_matmul(mask, weight), ops.event_matmul(mask.astype(np.float32), weight))


@twin
@pytest.mark.parametrize(
    ("spike_dtype", "weight_dtype", "expected"),
    [
        (jnp.bool_, jnp.float32, jnp.float32),
        (jnp.int32, jnp.float32, jnp.float32),
        (jnp.float16, jnp.float32, jnp.float32),
        (jnp.bool_, jnp.bfloat16, jnp.bfloat16),
        (jnp.float32, jnp.float16, jnp.float32),
    ],
)
def test_output_dtype(rng, spike_dtype, weight_dtype, expected):
    """The result has the weight's float type, widened by wider float spikes
    (as the dense product would be)."""
    spikes = jnp.asarray(make_spikes(rng, "bool", (2, 12), 3)).astype(spike_dtype)
    weight = jnp.asarray(dyadic(rng, (12, 4))).astype(weight_dtype)
    # Two different float types meet only under standard promotion (strict
    # promotion refuses float16 with float32, in the dense product too).
    with jax.numpy_dtype_promotion("standard"):
        out = ops.event_matmul(spikes, weight)
    assert out.dtype == expected
    assert_exact(out, f64(spikes.astype(jnp.float32)) @ f64(weight.astype(jnp.float32)))


# -- derivatives ---------------------------------------------------------------


@twin(where=lambda activity, **_: activity in ("none", "few", "all"))
@pytest.mark.parametrize("float_as_event", [False, True])
@pytest.mark.parametrize("activity", ACTIVITIES)
@pytest.mark.parametrize("kind", SPIKE_KINDS)
def test_grad_weight(rng, kind, activity, float_as_event):
    """d/dW of ``sum(out * g)`` is ``values.T @ g``, exactly, and equals the
    gradient of the dense reference."""
    spikes = make_spikes(rng, kind, (3, 33), n_active(activity, 33))
    weight = dyadic(rng, (33, 6))
    g = cotangent(rng, (3, 6))
    grad = grad_weight(spikes, weight, g, float_as_event=float_as_event)
    assert grad.shape == weight.shape and grad.dtype == jnp.float32
    assert_exact(grad, values(spikes, float_as_event).T @ f64(g))
    assert_exact(grad, grad_weight_reference(spikes, weight, g, float_as_event=float_as_event))


@twin(where=lambda activity, **_: activity in ("none", "few", "all"))
@pytest.mark.parametrize("batch", [(), (3,)], ids=["vector", "batch3"])
@pytest.mark.parametrize("activity", ACTIVITIES)
def test_grad_spikes(rng, activity, batch):
    """d/dspikes is the dense ``g @ W.T`` -- also at entries that are exactly
    zero (surrogate-gradient training needs them)."""
    spikes = make_spikes(rng, "float", (*batch, 33), n_active(activity, 33))
    weight = dyadic(rng, (33, 6))
    g = cotangent(rng, (*batch, 6))
    grad = jax.grad(weighted_sum(lambda s: ops.event_matmul(s, weight), g))(spikes)
    expected = f64(g) @ f64(weight).T
    assert_exact(grad, expected)
    assert_exact(grad, jax.grad(weighted_sum(lambda s: ops.event_matmul_reference(s, weight), g))(spikes))
    if activity != "all":
        assert np.any(np.asarray(grad)[spikes == 0] != 0)  # zero entries do get a gradient


@twin
def test_grad_spikes_float_as_event_straight_through(rng):
    """With ``float_as_event=True`` the spike derivative is straight-through:
    that of the dense product ``spikes @ W``."""
    spikes = make_spikes(rng, "float", (2, 20), 6, dyadic=False)
    weight = dyadic(rng, (20, 4))
    g = cotangent(rng, (2, 4))
    grad = jax.grad(weighted_sum(lambda s: ops.event_matmul(s, weight, float_as_event=True), g))(spikes)
    assert_exact(grad, f64(g) @ f64(weight).T)


@twin(where=lambda activity, **_: activity in ("none", "half"))
@pytest.mark.parametrize("activity", ["none", "one", "half", "all"])
def test_jvp(rng, activity):
    """``jax.jvp`` in both arguments: ``ds @ W + s @ dW``."""
    spikes = make_spikes(rng, "float", (4, 20), n_active(activity, 20))
    weight = dyadic(rng, (20, 5))
    ds = make_spikes(rng, "float", (4, 20), 20)  # tangent nonzero everywhere
    dw = dyadic(rng, (20, 5))
    out, tangent = jax.jvp(ops.event_matmul, (spikes, weight), (ds, dw))
    assert_exact(out, f64(spikes) @ f64(weight))
    assert_exact(tangent, f64(ds) @ f64(weight) + f64(spikes) @ f64(dw))
    _, ref = jax.jvp(ops.event_matmul_reference, (jnp.asarray(spikes), jnp.asarray(weight)), (ds, dw))
    assert_exact(tangent, ref)


@twin
def test_grad_empty_batch(rng):
    """An empty batch gives zero gradients of the right shapes."""
    spikes = np.zeros((0, 10), np.float32)
    weight = dyadic(rng, (10, 3))
    gw, gs = jax.grad(lambda w, s: jnp.sum(ops.event_matmul(s, w)), argnums=(0, 1))(weight, spikes)
    assert_exact(gw, np.zeros((10, 3)))
    assert gs.shape == (0, 10)


# -- transformations -------------------------------------------------------------


@twin
def test_jit_switches_at_run_time(rng):
    """One compiled function gives the dense values for every active count
    (known only at run time), around every multiple of small powers of two.
    The active rows are shared by the batch rows, so that the batched call
    stays on the event path up to larger counts."""
    weight = dyadic(rng, (300, 7))
    f = jax.jit(ops.event_matmul)
    for batch in [(), (5,)]:
        for count in (0, 1, 2, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 75, 76, 128, 129, 150, 151, 299, 300):
            spikes = make_spikes(rng, "float", (*batch, 300), count, shared=True)
            assert_exact(f(spikes, weight), values(spikes) @ f64(weight))


def test_batched_kernel_switch(rng):
    """The batched kernel as ``path='auto'`` runs it on a GPU: it counts the
    rows active in the batch first, then takes its event kernel up to a
    quarter of the rows and the dense product beyond, both exact (run here
    through the Pallas interpreter, around the switch point)."""
    from eventlib.ops import dense_event

    weight = dyadic(rng, (128, 40))
    f = jax.jit(functools.partial(dense_event._event_matmat_kernel, platform=None, adaptive=True))
    for count in (0, 1, 31, 32, 33, 64, 128):
        spikes = make_spikes(rng, "float", (6, 128), count, shared=True)
        assert_exact(f(values(spikes), weight), values(spikes) @ f64(weight))


@twin
def test_grad_under_jit(rng):
    """Gradients inside ``jax.jit`` at several activity levels."""
    weight = dyadic(rng, (40, 6))
    g = cotangent(rng, (3, 6))
    f = jax.jit(jax.grad(lambda w, s: jnp.sum(ops.event_matmul(s, w) * g), argnums=(0, 1)))
    for count in (0, 1, 5, 20, 40):
        spikes = make_spikes(rng, "float", (3, 40), count)
        gw, gs = f(weight, spikes)
        assert_exact(gw, f64(spikes).T @ f64(g))
        assert_exact(gs, f64(g) @ f64(weight).T)


@twin
@pytest.mark.parametrize("kind", SPIKE_KINDS)
def test_vmap(rng, kind):
    """``vmap`` over a leading axis, nested ``vmap``, and ``in_axes=1`` equal
    the batched call."""
    spikes = make_spikes(rng, kind, (2, 3, 25), 3, shared=True)  # few active: the event path
    weight = dyadic(rng, (25, 4))
    expected = values(spikes) @ f64(weight)

    def single(s):
        return ops.event_matmul(s, weight)

    assert_exact(jax.vmap(single)(spikes), expected)
    assert_exact(jax.vmap(jax.vmap(single))(spikes), expected)
    swapped = np.swapaxes(spikes, 0, 1)  # (3, 2, 25)
    assert_exact(jax.vmap(single, in_axes=1)(swapped), expected)
    assert_exact(jax.jit(jax.vmap(jax.vmap(single)))(spikes), expected)


@twin
def test_vmap_over_weights(rng):
    """``vmap`` over a batch of weights (and over both arguments)."""
    spikes = make_spikes(rng, "float", (4, 15), 5)
    weights = dyadic(rng, (4, 15, 3))
    expected = np.einsum("vi,vij->vj", f64(spikes), f64(weights))
    assert_exact(jax.vmap(ops.event_matmul)(spikes, weights), expected)
    expected_shared = np.einsum("bi,vij->vbj", f64(spikes), f64(weights))
    assert_exact(jax.vmap(ops.event_matmul, in_axes=(None, 0))(spikes, weights), expected_shared)


@twin
@pytest.mark.parametrize("float_as_event", [False, True])
def test_per_example_gradients(rng, float_as_event):
    """``vmap(grad)`` gives one weight gradient per example, and the spike
    gradient of each example."""
    spikes = make_spikes(rng, "float", (5, 18), 4, shared=True)  # few active: the event path
    weight = dyadic(rng, (18, 3))
    g = cotangent(rng, (5, 3))

    def loss(w, s, g):
        return jnp.sum(ops.event_matmul(s, w, float_as_event=float_as_event) * g)

    gw, gs = jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(None, 0, 0))(weight, spikes, g)
    assert_exact(gw, np.einsum("bi,bj->bij", values(spikes, float_as_event), f64(g)))
    assert_exact(gs, f64(g) @ f64(weight).T)


@twin
def test_jacobians(rng):
    """``jacfwd`` and ``jacrev`` in the weight and the spikes equal the
    analytic Jacobians of ``s @ W``."""
    spikes = make_spikes(rng, "float", (6,), 2)
    weight = dyadic(rng, (6, 3))
    jac_w = np.einsum("i,jk->jik", f64(spikes), np.eye(3))  # d out[j] / d W[i, k]
    for jac in (jax.jacfwd, jax.jacrev):
        assert_exact(jac(lambda w: ops.event_matmul(spikes, w))(weight), jac_w)
        assert_exact(jac(lambda s: ops.event_matmul(s, weight))(spikes), f64(weight).T)


@twin(where=lambda remat, **_: not remat)
@pytest.mark.parametrize("remat", [False, True], ids=["scan", "scan_checkpoint"])
def test_grad_through_time(rng, remat):
    """Gradients through ``lax.scan`` (backpropagation through time) equal
    those of the dense reference."""
    xs = make_spikes(rng, "int", (5, 2, N_REC), 4).astype(np.float32)
    weight = dyadic(rng, (N_REC, N_REC))
    grad = jax.grad(lambda w: recurrent_loss(ops.event_matmul, w, xs, remat))(weight)
    ref = jax.grad(lambda w: recurrent_loss(ops.event_matmul_reference, w, xs, remat))(jnp.asarray(weight))
    assert_close(grad, ref)


@twin
def test_second_derivatives(rng):
    """``jax.hessian`` in spikes and weight jointly (``jacfwd`` of ``grad``)
    equals the dense reference's, block by block -- including the derivative
    of the weight gradient with respect to spikes that are exactly zero."""
    # Few active inputs, shared by the batch rows: the event path runs.
    spikes = make_spikes(rng, "float", (2, 40), 2, shared=True)
    weight = dyadic(rng, (40, 3))

    def loss(product):
        return lambda s, w: jnp.sum(product(s, w) ** 2)

    got = jax.hessian(loss(ops.event_matmul), argnums=(0, 1))(spikes, weight)
    ref = jax.hessian(loss(ops.event_matmul_reference), argnums=(0, 1))(jnp.asarray(spikes), jnp.asarray(weight))
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        np.testing.assert_array_equal(np.asarray(got[i][j]), np.asarray(ref[i][j]), err_msg=f"block {i}{j}")


# -- properties ------------------------------------------------------------------


@st.composite
def dense_problems(draw):
    n_pre = draw(st.sampled_from([1, 7, 8, 9, 16, 17, 64, 65, 300]))
    n_post = draw(st.sampled_from([1, 8]))
    batch = draw(st.sampled_from([(), (1,), (2, 3)]))
    count = draw(st.integers(0, n_pre))
    kind = draw(st.sampled_from(SPIKE_KINDS))
    float_as_event = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return n_pre, n_post, batch, count, kind, float_as_event, np.random.default_rng(seed)


@twin
@settings(max_examples=settings.default.max_examples * 3 // 5)  # most examples compile anew
@given(dense_problems())
def test_property_exact(problem):
    """For any size, batch, active count and spike kind, the result and the
    weight gradient equal the float64 dense computation exactly."""
    n_pre, n_post, batch, count, kind, float_as_event, rng = problem
    spikes = make_spikes(rng, kind, (*batch, n_pre), count)
    weight = dyadic(rng, (n_pre, n_post))
    vals = values(spikes, float_as_event)
    out = ops.event_matmul(spikes, weight, float_as_event=float_as_event)
    assert_exact(out, vals @ f64(weight))
    g = cotangent(rng, (*batch, n_post))
    grad = grad_weight(spikes, weight, g, float_as_event=float_as_event)
    assert_exact(grad, vals.reshape(-1, n_pre).T @ f64(g).reshape(-1, n_post))
