"""The brainstate layers: ``layer(x) == x @ layer.to_dense()`` for every
weight kind, the connectivity each layer promises, units, seeds, training
with brainstate, and the transformations."""

from __future__ import annotations

import brainstate
import braintools
import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    SPIKE_KINDS,
    assert_close,
    assert_exact,
    check_binomial_degrees,
    dense_from_synapses,
    dyadic,
    events,
    f64,
    make_spikes,
    random_synapses,
)

import eventlib

N_PRE, N_POST = 40, 30

# Each layer as a function of its weight (and extra keyword arguments).
LAYERS = {
    "EventLinear": lambda w, **kw: eventlib.EventLinear(N_PRE, N_POST, w, **kw),
    "EventFixedProb": lambda w, **kw: eventlib.EventFixedProb(N_PRE, N_POST, 0.2, w, seed=0, **kw),
    "FixedNumConn": lambda w, **kw: eventlib.FixedNumConn(N_PRE, N_POST, 5, w, seed=0, **kw),
    "EventFixedNumConn": lambda w, **kw: eventlib.EventFixedNumConn(N_PRE, N_POST, 5, w, seed=0, **kw),
}
# Fixed fan-out: an initializer gives brainstate's (n_pre, conn_num) weights.
FAN_OUT_LAYERS = {
    "EventFixedProb_int": lambda w, **kw: eventlib.EventFixedProb(N_PRE, N_POST, 5, w, seed=0, **kw),
    "FixedNumConn_post": lambda w, **kw: eventlib.FixedNumConn(
        N_PRE, N_POST, 5, w, efferent_target="post", seed=0, **kw
    ),
}
ALL_LAYERS = {**LAYERS, **FAN_OUT_LAYERS}
EVENT_LAYERS = [name for name in LAYERS if name != "FixedNumConn"]
SPARSE_LAYERS = [name for name in ALL_LAYERS if name != "EventLinear"]
WEIGHT_KINDS = ("scalar", "array", "normal", "kaiming", "quantity", "array_quantity")
EXACT_KINDS = ("scalar", "array", "quantity", "array_quantity")  # dyadic values


def weight_for(name, kind, rng):
    """A weight of ``kind`` for layer ``name``: arrays are dyadic, one per
    synapse (or the full matrix for EventLinear)."""
    if kind in ("scalar", "quantity"):
        w = np.float32(0.25)
    elif kind in ("array", "array_quantity"):
        shape = (N_PRE, N_POST) if name == "EventLinear" else (ALL_LAYERS[name](1.0).n_synapses,)
        w = dyadic(rng, shape)
    elif kind == "normal":
        return braintools.init.Normal(0.0, 0.1)
    else:
        return braintools.init.KaimingUniform()
    return w * u.mS if "quantity" in kind else w


def mantissa(x):
    return np.asarray(u.get_mantissa(x))


def expected_weight_shape(name, kind, layer):
    if kind in ("scalar", "quantity"):
        return ()
    if name == "EventLinear":
        return (N_PRE, N_POST)
    if kind in ("normal", "kaiming") and name in FAN_OUT_LAYERS:
        return (N_PRE, 5)  # brainstate's per-synapse layout for fixed fan-out
    return (layer.n_synapses,)


# -- values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [(name, kind) for name in LAYERS for kind in ("scalar", "array", "array_quantity")]
    + [("EventLinear", "normal"), ("FixedNumConn", "normal"), ("EventFixedProb", "kaiming")]
    + [("EventFixedNumConn", "kaiming"), ("EventLinear", "quantity"), ("EventFixedProb", "quantity")]
    + [(name, "kaiming") for name in FAN_OUT_LAYERS],
)
def test_output_equals_dense(rng, name, kind):
    """``layer(x) == x @ layer.to_dense()`` (exactly for dyadic weights), the
    weight is a ParamState of the promised shape, and quantities give
    outputs in their unit."""
    layer = ALL_LAYERS[name](weight_for(name, kind, rng))
    assert isinstance(layer.weight, brainstate.ParamState)
    assert np.shape(mantissa(layer.weight.value)) == expected_weight_shape(name, kind, layer)
    dense = layer.to_dense()
    assert dense.shape == (N_PRE, N_POST)
    x = make_spikes(rng, "float", (2, 3, N_PRE), 9)
    out = layer(x)
    assert out.shape == (2, 3, N_POST)
    if "quantity" in kind:
        assert u.get_unit(out) == u.mS and u.get_unit(dense) == u.mS
    ref = f64(x) @ f64(mantissa(dense))
    if kind in EXACT_KINDS:
        assert_exact(mantissa(out), ref)
    else:
        assert_close(mantissa(out), ref)


@pytest.mark.parametrize(
    ("kind", "batch"), [(kind, (2, 3)) for kind in SPIKE_KINDS] + [("bool", ())], ids=["bool", "int", "float", "vector"]
)
@pytest.mark.parametrize("name", LAYERS)
def test_spike_kinds_and_batches(rng, name, kind, batch):
    """Bool, integer and float inputs of any batch shape."""
    layer = LAYERS[name](weight_for(name, "array", rng))
    x = make_spikes(rng, kind, (*batch, N_PRE), 7)
    out = layer(x)
    assert out.shape == (*batch, N_POST)
    assert_exact(out, f64(x) @ f64(layer.to_dense()))


@pytest.mark.parametrize(("name", "kind"), [(name, "array") for name in LAYERS] + [("EventLinear", "scalar")])
def test_empty_batch(rng, name, kind):
    """An empty batch gives an empty output of the right shape."""
    layer = LAYERS[name](weight_for(name, kind, rng))
    out = layer(np.zeros((0, N_PRE), bool))
    assert out.shape == (0, N_POST)


def test_event_linear_to_dense(rng):
    """EventLinear's matrix is the weight given (a scalar broadcast)."""
    w = dyadic(rng, (N_PRE, N_POST))
    assert_exact(eventlib.EventLinear(N_PRE, N_POST, w).to_dense(), w)
    assert_exact(eventlib.EventLinear(N_PRE, N_POST, 0.5).to_dense(), np.full((N_PRE, N_POST), 0.5))


@pytest.mark.parametrize("name", EVENT_LAYERS)
@pytest.mark.parametrize("kind", ["scalar", "array"])
def test_float_as_event(rng, name, kind):
    """``float_as_event=True`` counts every nonzero input as one spike."""
    layer = LAYERS[name](weight_for(name, kind, rng), float_as_event=True)
    mask = make_spikes(rng, "bool", (3, N_PRE), 8)
    x = np.where(mask, rng.uniform(-2, 2, mask.shape), 0).astype(np.float32)
    assert_exact(layer(x), events(x) @ f64(layer.to_dense()))


@pytest.mark.parametrize("name", LAYERS)
def test_units(rng, name):
    """Quantity inputs and weights multiply their units; mantissas are the
    plain product."""
    layer = LAYERS[name](weight_for(name, "array_quantity", rng))
    x = make_spikes(rng, "float", (2, N_PRE), 10)
    out = layer(x * u.mV)
    assert u.get_unit(out) == u.uA  # mV * mS
    assert_exact(mantissa(out.to(u.uA)), f64(x) @ f64(mantissa(layer.to_dense().to(u.mS))))
    plain = LAYERS[name](weight_for(name, "array", rng))
    out = plain(x * u.mV)
    assert u.get_unit(out) == u.mV


@pytest.mark.parametrize("path", eventlib.ops.PATHS)
@pytest.mark.parametrize("name", EVENT_LAYERS)
def test_paths(rng, name, path, restore_default_path):
    """``path=`` on a layer, and the process-wide default, give the same
    values."""
    w = weight_for(name, "array", rng)
    x = make_spikes(rng, "bool", (3, N_PRE), 12)
    expected = f64(x) @ f64(LAYERS[name](w).to_dense())
    assert_exact(LAYERS[name](w, path=path)(x), expected)
    eventlib.set_default_path("dense")
    assert_exact(LAYERS[name](w)(x), expected)


# -- connectivity semantics -------------------------------------------------------------


def synapse_pairs(layer):
    pre, post = (np.asarray(a) for a in layer.synapses())
    return pre, post


def test_fixed_prob_semantics():
    """Float ``conn_num = p``: every pair independently with probability p --
    no repeated pairs, Binomial(n, p) in- and out-degrees."""
    n, p = 2000, 0.05
    layer = eventlib.EventFixedProb(n, n, p, 1.0, seed=3)
    pre, post = synapse_pairs(layer)
    assert layer.n_synapses == pre.size == post.size
    assert np.unique(pre.astype(np.int64) * n + post).size == pre.size  # no repeated pair
    check_binomial_degrees(np.bincount(pre, minlength=n), n, p)
    check_binomial_degrees(np.bincount(post, minlength=n), n, p)


@pytest.mark.parametrize("efferent_target", ["post", "pre"])
def test_fixed_prob_int_semantics(efferent_target):
    """Int ``conn_num = k``: exactly k distinct targets per presynaptic neuron
    (``'post'``, default) or k distinct sources per postsynaptic neuron."""
    layer = eventlib.EventFixedProb(60, 50, 7, 1.0, efferent_target=efferent_target, seed=1)
    dense = np.asarray(layer.to_dense())
    assert dense.max() == 1  # distinct
    axis = 1 if efferent_target == "post" else 0
    np.testing.assert_array_equal(dense.sum(axis=axis), 7)


def test_fixed_prob_float_one_and_int_one():
    """``conn_num=1.0`` is the probability 1 (every pair); ``conn_num=1`` is
    one target per presynaptic neuron."""
    full = np.asarray(eventlib.EventFixedProb(7, 5, 1.0, 0.5, seed=0).to_dense())
    np.testing.assert_array_equal(full, np.full((7, 5), 0.5))
    one = np.asarray(eventlib.EventFixedProb(7, 5, 1, 0.5, seed=0).to_dense())
    np.testing.assert_array_equal((one != 0).sum(axis=1), 1)


@pytest.mark.parametrize("cls", [eventlib.FixedNumConn, eventlib.EventFixedNumConn])
def test_fixed_num_semantics(cls):
    """Default: every postsynaptic neuron has exactly k distinct presynaptic
    partners; ``efferent_target='post'``: every presynaptic neuron exactly k
    distinct targets; a float conn_num is the fraction ``int(n * conn_num)``."""
    fan_in = np.asarray(cls(60, 50, 7, 1.0, seed=2).to_dense())
    assert fan_in.max() == 1
    np.testing.assert_array_equal(fan_in.sum(axis=0), 7)
    fan_out = np.asarray(cls(60, 50, 7, 1.0, efferent_target="post", seed=2).to_dense())
    assert fan_out.max() == 1
    np.testing.assert_array_equal(fan_out.sum(axis=1), 7)
    frac = np.asarray(cls(60, 50, 0.1, 1.0, seed=2).to_dense())
    np.testing.assert_array_equal(frac.sum(axis=0), 6)  # int(60 * 0.1)


@pytest.mark.parametrize(
    "make",
    [
        lambda: eventlib.FixedNumConn(100, 8, 8, 1.0, efferent_target="post", allow_multi_conn=True, seed=0),
        lambda: eventlib.FixedNumConn(8, 100, 8, 1.0, allow_multi_conn=True, seed=0),
        lambda: eventlib.EventFixedProb(100, 8, 8, 1.0, allow_multi_conn=True, seed=0),
        lambda: eventlib.FixedNumConn(5, 100, 9, 1.0, allow_multi_conn=True, seed=0),  # k > n_pre
    ],
    ids=["fan_out", "fan_in", "event_prob_int", "more_than_available"],
)
def test_multi_conn(make):
    """``allow_multi_conn=True`` draws with replacement: pairs repeat, and
    ``to_dense`` (and the product) adds their weights."""
    layer = make()
    pre, post = synapse_pairs(layer)
    dense = np.asarray(layer.to_dense())
    assert dense.max() >= 2
    np.testing.assert_array_equal(dense, dense_from_synapses(pre, post, 1.0, layer.n_pre, layer.n_post))
    x = np.ones((layer.n_pre,), np.float32)
    assert_exact(layer(x), f64(x) @ dense)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"efferent_target": "post"}, {"allow_multi_conn": True}, {"conn_num": 0.25}, {"afferent_ratio": 0.5}],
    ids=["default", "fan_out", "multi", "fraction", "afferent"],
)
def test_event_fixed_num_equals_fixed_num(rng, kwargs):
    """EventFixedNumConn and FixedNumConn with the same arguments and seed
    store the same synapses (and give the same outputs)."""
    args = {"conn_num": 6, **kwargs}
    a = eventlib.FixedNumConn(50, 40, conn_weight=0.5, seed=9, **args)
    b = eventlib.EventFixedNumConn(50, 40, conn_weight=0.5, seed=9, **args)
    np.testing.assert_array_equal(np.asarray(a.indptr), np.asarray(b.indptr))
    np.testing.assert_array_equal(np.asarray(a.indices), np.asarray(b.indices))
    if not kwargs:
        assert_exact(a.to_dense(), b.to_dense())
        x = make_spikes(rng, "float", (2, 50), 12)
        assert_exact(a(x), b(x))


@pytest.mark.parametrize("cls", [eventlib.EventFixedProb, eventlib.EventFixedNumConn])
def test_deterministic_layers(rng, cls):
    """``deterministic=True`` keeps the matrix and the values (dyadic
    weights: exact), gives the same bits twice, and is refused where it
    means nothing (procedural layers, the dense-equivalent FixedNumConn)."""
    conn_num = 0.2 if cls is eventlib.EventFixedProb else 6
    weight = dyadic(rng, ())
    plain = cls(50, 40, conn_num, conn_weight=weight, seed=4)
    steady = cls(50, 40, conn_num, conn_weight=weight, seed=4, deterministic=True)
    assert steady.deterministic and not plain.deterministic
    x = make_spikes(rng, "float", (3, 50), 20)
    assert_exact(steady(x), f64(x) @ f64(plain.to_dense()))
    np.testing.assert_array_equal(np.asarray(steady(x)), np.asarray(steady(x)))
    with pytest.raises(ValueError, match="deterministic"):
        cls(50, 40, conn_num, conn_weight=weight, seed=4, deterministic=True, procedural=True)
    with pytest.raises(TypeError, match="deterministic"):
        eventlib.FixedNumConn(50, 40, 6, conn_weight=weight, seed=4, deterministic=True)


@pytest.mark.parametrize("name", ["EventFixedProb", "EventFixedProb_int", "FixedNumConn", "EventFixedNumConn"])
def test_afferent_ratio(name):
    """``afferent_ratio`` keeps whole presynaptic rows of the same matrix,
    each with that probability."""
    make = {
        "EventFixedProb": lambda **kw: eventlib.EventFixedProb(2000, 30, 0.2, 1.0, seed=4, **kw),
        "EventFixedProb_int": lambda **kw: eventlib.EventFixedProb(2000, 30, 5, 1.0, seed=4, **kw),
        "FixedNumConn": lambda **kw: eventlib.FixedNumConn(2000, 30, 5, 1.0, efferent_target="post", seed=4, **kw),
        "EventFixedNumConn": lambda **kw: eventlib.EventFixedNumConn(2000, 30, 5, 1.0, seed=4, **kw),
    }[name]
    full = np.asarray(make().to_dense())
    kept = np.asarray(make(afferent_ratio=0.3).to_dense())
    rows = kept.any(axis=1)
    np.testing.assert_array_equal(kept[rows], full[rows])
    assert not kept[~rows].any()
    n_rows = full.any(axis=1).sum()
    assert abs(rows.sum() - 0.3 * n_rows) <= 6 * np.sqrt(n_rows * 0.3 * 0.7)


SEEDED = {
    "EventFixedProb": lambda seed: eventlib.EventFixedProb(60, 50, 0.2, 1.0, seed=seed),
    "EventFixedProb_int": lambda seed: eventlib.EventFixedProb(60, 50, 5, 1.0, seed=seed),
    "FixedNumConn": lambda seed: eventlib.FixedNumConn(60, 50, 5, 1.0, seed=seed),
    "EventFixedNumConn": lambda seed: eventlib.EventFixedNumConn(60, 50, 5, 1.0, seed=seed),
}


@pytest.mark.parametrize("name", SEEDED)
def test_seeds(name):
    """Same seed, same matrix; another seed, another; ``seed=None`` follows
    ``brainstate.random.seed``."""

    def dense(seed):
        return np.asarray(SEEDED[name](seed).to_dense())

    np.testing.assert_array_equal(dense(1), dense(1))
    assert not np.array_equal(dense(1), dense(2))
    brainstate.random.seed(123)
    first = dense(None)
    brainstate.random.seed(123)
    np.testing.assert_array_equal(dense(None), first)
    brainstate.random.seed(124)
    assert not np.array_equal(dense(None), first)


# -- storage and export ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["scalar", "array", "kaiming"])
@pytest.mark.parametrize("name", SPARSE_LAYERS)
def test_synapses_and_storage(rng, name, kind):
    """``synapses()`` lists each synapse in the order of the per-synapse
    weights; ``n_synapses`` and ``nbytes`` count what is stored."""
    layer = ALL_LAYERS[name](weight_for(name, kind, rng))
    pre, post = synapse_pairs(layer)
    assert pre.shape == post.shape == (layer.n_synapses,)
    value = mantissa(layer.weight.value)
    if value.ndim == 2:  # (n_pre, conn_num): row i holds the weights of neuron i's synapses
        np.testing.assert_array_equal(pre.reshape(value.shape), np.repeat(np.arange(N_PRE)[:, None], 5, axis=1))
    w = np.broadcast_to(value.reshape(-1), pre.shape)
    assert_exact(layer.to_dense(), dense_from_synapses(pre, post, w, N_PRE, N_POST))
    # nbytes is what the layer's states hold: at least the int32 CSR arrays
    # and the float32 weights, and nothing of size n_pre x n_post.
    held = sum(
        np.asarray(mantissa(leaf)).nbytes
        for state in layer.states().values()
        for leaf in jax.tree.leaves(state.value, is_leaf=lambda x: isinstance(x, u.Quantity))
    )
    assert layer.nbytes == held
    weight_bytes = 4 if kind == "scalar" else 4 * layer.n_synapses
    assert 4 * (N_PRE + 1) + 4 * layer.n_synapses + weight_bytes <= layer.nbytes < 4 * N_PRE * N_POST


def test_storage_scales_with_synapses():
    """A 20000 x 20000 layer at p = 0.001 stores a few bytes per synapse,
    not a dense matrix."""
    layer = eventlib.EventFixedProb(20000, 20000, 0.001, 0.1, seed=0)
    assert abs(layer.n_synapses - 4e5) < 6 * np.sqrt(4e5)
    assert layer.nbytes <= 12 * layer.n_synapses + 4 * 20001 + 4


@pytest.mark.parametrize(
    "cls",
    [eventlib.EventFixedProb, eventlib.FixedNumConn, eventlib.EventFixedNumConn],
    ids=lambda c: c.__name__,
)
@pytest.mark.parametrize("kind", ["scalar", "array", "array_quantity", "normal"])
def test_from_synapses(rng, cls, kind):
    """``from_synapses`` holds exactly the synapses given (repeats add up);
    per-synapse weights follow the order given."""
    pre, post = random_synapses(np.random.default_rng(0), 25, 12)  # one list: shared compilations
    if kind == "scalar":
        w, w_dense = 0.5, 0.5
    elif kind == "normal":
        w, w_dense = braintools.init.Normal(0.0, 0.1), None
    else:
        w_dense = dyadic(rng, pre.shape)
        w = w_dense * u.mS if kind == "array_quantity" else w_dense
    layer = cls.from_synapses(pre, post, 25, 12, w)
    assert layer.n_synapses == pre.size
    got_pre, got_post = synapse_pairs(layer)
    assert sorted(zip(got_pre.tolist(), got_post.tolist(), strict=True)) == sorted(
        zip(pre.tolist(), post.tolist(), strict=True)
    )
    dense = mantissa(layer.to_dense())
    if w_dense is not None:
        assert_exact(dense, dense_from_synapses(pre, post, w_dense, 25, 12))
    x = make_spikes(rng, "float", (3, 25), 10)
    out = layer(x)
    if kind == "array_quantity":
        assert u.get_unit(out) == u.mS
    assert_close(mantissa(out), f64(x) @ f64(dense), tol=0 if w_dense is not None else 1e-6)


def test_from_synapses_options(rng):
    """Keyword arguments reach the layer (float_as_event, path)."""
    pre, post = random_synapses(rng, 10, 6)
    layer = eventlib.EventFixedProb.from_synapses(pre, post, 10, 6, 0.5, float_as_event=True, path="dense")
    x = np.where(make_spikes(rng, "bool", (10,), 4), 3.0, 0.0).astype(np.float32)
    assert_exact(layer(x), events(x) @ dense_from_synapses(pre, post, 0.5, 10, 6))


def test_connectivity_is_not_trainable():
    """Only the weight is a ParamState; the connectivity is other state."""
    layer = eventlib.EventFixedProb(30, 20, 0.3, 0.5, seed=0)
    params = layer.states(brainstate.ParamState)
    assert list(params.values()) == [layer.weight]
    assert len(layer.states()) > len(params)


@pytest.mark.parametrize(
    "cls, conn_num",
    [(eventlib.EventFixedProb, 0.3), (eventlib.FixedNumConn, 3), (eventlib.EventFixedNumConn, 3)],
    ids=["EventFixedProb", "FixedNumConn", "EventFixedNumConn"],
)
def test_storage_interface(rng, cls, conn_num):
    """Stored and procedural connectivity are two ConnectivityStates with the
    same methods; the layer's ``procedural`` is read from the state and
    cannot be set; only the event-driven layers take the event options."""
    from eventlib.layers import ConnectivityState, ProceduralConnectivity, StoredConnectivity

    kw = {"efferent_target": "post"}
    stored = cls(30, 20, conn_num, 0.5, seed=2, **kw)
    procedural = cls(30, 20, conn_num, 0.5, seed=2, procedural=True, **kw)
    assert type(stored.connectivity) is StoredConnectivity and not stored.procedural
    assert type(procedural.connectivity) is ProceduralConnectivity and procedural.procedural
    for layer in (stored, procedural):
        state = layer.connectivity
        assert isinstance(state, ConnectivityState)
        w, _ = layer._weight_vector()
        np.testing.assert_array_equal(np.asarray(state.to_dense(w)), np.asarray(layer.to_dense()))
        assert state.max_row == layer.max_row and state.n_synapses == layer.n_synapses
        with pytest.raises(AttributeError):
            layer.procedural = not layer.procedural
    x = make_spikes(rng, "float", (2, 30), 10)
    assert_exact(procedural(x), np.asarray(stored(x)))
    assert issubclass(eventlib.EventFixedNumConn, eventlib.FixedNumConn)
    if cls is eventlib.FixedNumConn:
        for option in ("float_as_event", "deterministic"):
            with pytest.raises(TypeError, match=f"FixedNumConn got unexpected keyword arguments.*{option}"):
                cls(30, 20, conn_num, 0.5, seed=2, **{option: True})
    else:
        procedural.deterministic = True  # set after construction: refused at the call, not ignored
        with pytest.raises(ValueError, match="deterministic"):
            procedural(x)


# -- transformations and training -----------------------------------------------------------


@pytest.mark.parametrize("name", LAYERS)
def test_jit_and_vmap(rng, name):
    """Layers inside ``jax.jit``, ``brainstate.transform.jit`` and
    ``jax.vmap`` give the eager values."""
    layer = LAYERS[name](weight_for(name, "array", rng))
    x = make_spikes(rng, "bool", (4, N_PRE), 6)
    expected = f64(x) @ f64(layer.to_dense())
    assert_exact(jax.jit(lambda x: layer(x))(x), expected)
    assert_exact(brainstate.transform.jit(lambda x: layer(x))(x), expected)
    assert_exact(jax.vmap(layer)(x), expected)


def loss_and_reference(layer, x, y):
    """The loss ``sum((layer(x) - y)^2)`` and its float64 gradients in the
    dense matrix and in the input (exact in float32 for dyadic values)."""
    dense = f64(layer.to_dense())
    err = f64(x) @ dense - f64(y)
    g_out = 2 * err
    return (
        (lambda x: jnp.sum((layer(x) - y) ** 2)),
        f64(x).reshape(-1, N_PRE).T @ g_out.reshape(-1, N_POST),
        g_out @ dense.T,
    )


def reduce_to_weight(layer, g_dense):
    """The weight gradient from the gradient in the dense matrix."""
    w = mantissa(layer.weight.value)
    if isinstance(layer, eventlib.EventLinear):
        return g_dense.sum() if w.ndim == 0 else g_dense
    pre, post = synapse_pairs(layer)
    per_synapse = g_dense[pre, post]
    return per_synapse.sum() if w.ndim == 0 else per_synapse.reshape(w.shape)


@pytest.mark.parametrize(
    ("name", "kind"),
    [(name, "array") for name in LAYERS]
    + [("EventLinear", "scalar"), ("EventFixedProb", "scalar"), ("FixedNumConn_post", "kaiming")],
)
def test_brainstate_grad(rng, name, kind):
    """``brainstate.transform.grad`` over the layer's ParamStates (and the
    input) matches the dense gradient, also at inputs that are zero."""
    layer = ALL_LAYERS[name](weight_for(name, kind, rng))
    x = make_spikes(rng, "float", (3, N_PRE), 10)
    y = (rng.integers(-8, 9, (3, N_POST)) / 8).astype(np.float32)
    loss, g_dense, g_x = loss_and_reference(layer, x, y)
    params = layer.states(brainstate.ParamState)
    grads, gx = brainstate.transform.grad(loss, grad_states=params, argnums=0)(jnp.asarray(x))
    assert set(grads) == set(params)
    (g_w,) = grads.values()
    assert g_w.shape == layer.weight.value.shape
    check = assert_exact if kind in EXACT_KINDS else assert_close
    check(g_w, reduce_to_weight(layer, g_dense))
    check(gx, g_x)


@pytest.mark.parametrize(
    ("name", "kind"), [(name, "array") for name in LAYERS] + [("EventLinear", "scalar"), ("EventFixedProb", "scalar")]
)
def test_training_reduces_loss(rng, name, kind):
    """SGD steps compiled with ``brainstate.transform.jit`` decrease a
    least-squares loss towards targets the layer can reach, at every step
    (the step size is below 1 / curvature)."""
    layer = LAYERS[name](weight_for(name, kind, rng))
    target = LAYERS[name](weight_for(name, kind, rng) if kind == "array" else 0.75)
    x = make_spikes(rng, "float", (8, N_PRE), 10)
    y = target(x)
    # Largest curvature of the loss in the dense matrix (an upper bound for
    # per-synapse weights) or in the shared scalar.
    if kind == "scalar":
        pattern = f64(layer.to_dense()) / 0.25
        curvature = 2 * np.sum((f64(x) @ pattern) ** 2) / y.size
    else:
        curvature = 2 * np.linalg.eigvalsh(f64(x).T @ f64(x)).max() / y.size
    lr = 0.9 / curvature
    params = layer.states(brainstate.ParamState)

    def loss_fn():
        return jnp.mean((layer(x) - y) ** 2)

    @brainstate.transform.jit
    def step():
        grads, loss = brainstate.transform.grad(loss_fn, grad_states=params, return_value=True)()
        for key, g in grads.items():
            params[key].value = params[key].value - lr * g
        return loss

    losses = [float(step()) for _ in range(30)]
    assert losses[0] > 0
    assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < 0.5 * losses[0], losses


def test_per_example_gradients(rng):
    """``vmap`` of ``grad`` through a layer: one weight gradient per example."""
    layer = eventlib.EventFixedProb(N_PRE, N_POST, 0.2, 0.5, seed=0)
    pre, post = (np.asarray(a) for a in layer.synapses())
    w = jnp.full((layer.n_synapses,), 0.5, jnp.float32)
    x = make_spikes(rng, "float", (5, N_PRE), 6)

    def loss(w, x):
        return jnp.sum(eventlib.ops.csr_event_matmul(x, w, layer.indptr, layer.indices, N_POST, max_row=N_POST) ** 2)

    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(w, x)
    dense = dense_from_synapses(pre, post, 0.5, N_PRE, N_POST)
    expected = np.stack([(2 * f64(x[b])[pre] * (f64(x[b]) @ dense)[post]) for b in range(5)])
    assert_close(grads, expected)


# -- large scale ---------------------------------------------------------------------------


@pytest.mark.slow
def test_large_fixed_prob(restore_default_path):
    """10^6 x 10^6 neurons at p = 1e-4 (about 10^8 synapses): a 0.1%-active
    input gives the count of active inputs per target times the weight, as
    the dense-equivalent pass over every synapse does."""
    n = 10**6
    layer = eventlib.EventFixedProb(n, n, conn_num=1e-4, conn_weight=0.1, seed=0)
    assert abs(layer.n_synapses - 1e8) < 6 * np.sqrt(1e8)
    rng = np.random.default_rng(0)
    active = rng.choice(n, size=n // 1000, replace=False)
    x = np.zeros(n, bool)
    x[active] = True
    out = np.asarray(jax.jit(layer)(x))
    indptr, indices = np.asarray(layer.indptr), np.asarray(layer.indices)
    targets = np.concatenate([indices[indptr[i] : indptr[i + 1]] for i in active])
    counts = np.bincount(targets, minlength=n)
    assert_close(out, 0.1 * counts.astype(np.float64), tol=1e-6)
    eventlib.set_default_path("dense")
    dense_path = np.asarray(jax.jit(layer)(x))
    assert_close(dense_path, out, tol=1e-6)


# -- empty populations ----------------------------------------------------------------

ZERO_SIZE_LAYERS = {
    "EventLinear_scalar": lambda a, b, **kw: eventlib.EventLinear(a, b, 0.5, **kw),
    "EventLinear": lambda a, b, **kw: eventlib.EventLinear(a, b, np.full((a, b), 0.5, np.float32), **kw),
    "EventFixedProb": lambda a, b, **kw: eventlib.EventFixedProb(a, b, 0.5, 0.5, seed=0, **kw),
    # A count needs partners to draw from: 0 targets when there are none.
    "EventFixedProb_int": lambda a, b, **kw: eventlib.EventFixedProb(a, b, min(2, b), 0.5, seed=0, **kw),
    "EventFixedProb_procedural": lambda a, b, **kw: eventlib.EventFixedProb(
        a, b, 0.5, 0.5, seed=0, procedural=True, **kw
    ),
    "EventFixedProb_procedural_int": lambda a, b, **kw: eventlib.EventFixedProb(
        a, b, min(2, b), 0.5, seed=0, procedural=True, **kw
    ),
    "FixedNumConn": lambda a, b, **kw: eventlib.FixedNumConn(a, b, 0.5, 0.5, seed=0, **kw),
    "EventFixedNumConn": lambda a, b, **kw: eventlib.EventFixedNumConn(a, b, 0.5, 0.5, seed=0, **kw),
    "EventFixedNumConn_fan_out": lambda a, b, **kw: eventlib.EventFixedNumConn(
        a, b, 0.5, 0.5, efferent_target="post", seed=0, **kw
    ),
}


@pytest.mark.filterwarnings("ignore:.*no synapse:UserWarning")
@pytest.mark.parametrize("path", eventlib.ops.PATHS)
@pytest.mark.parametrize("sizes", [(0, 6), (5, 0), (0, 0)], ids=["no_pre", "no_post", "neither"])
@pytest.mark.parametrize("name", ZERO_SIZE_LAYERS)
def test_zero_sizes(name, sizes, path):
    """in_size=0 or out_size=0 builds a layer, as brainstate does: outputs of
    shape (..., n_post), all zero, and zero gradients of the right shapes."""
    n_pre, n_post = sizes
    layer = ZERO_SIZE_LAYERS[name](n_pre, n_post, path=path)
    assert (layer.n_pre, layer.n_post) == (n_pre, n_post)
    x = np.ones((3, n_pre), np.float32)
    out = layer(x)
    assert out.shape == (3, n_post)
    np.testing.assert_array_equal(np.asarray(out), np.zeros((3, n_post)))
    assert layer.to_dense().shape == (n_pre, n_post)
    weights = brainstate.graph.states(layer, brainstate.ParamState)

    def loss(x):
        return jnp.sum(layer(x) ** 2) + jnp.sum(jax.jit(layer)(x[None])) + 1.0

    gx = jax.grad(loss)(x)
    assert gx.shape == x.shape
    np.testing.assert_array_equal(np.asarray(gx), np.zeros(x.shape))
    gw = brainstate.transform.grad(lambda: loss(x), grad_states=weights)()
    for g in jax.tree_util.tree_leaves(gw):
        np.testing.assert_array_equal(np.asarray(g), np.zeros(np.shape(g)))
