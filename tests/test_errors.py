"""Bad input fails early, with ValueError or TypeError naming the argument --
at construction, or at trace time (also under ``jax.jit``)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eventlib
from eventlib import connectivity, ops

CONN = connectivity.fixed_prob(10, 6, 0.5, seed=0)


def layers(n_pre=10, n_post=6):
    """One layer of each class, ``n_pre`` inputs."""
    return [
        eventlib.EventLinear(n_pre, n_post, 0.5),
        eventlib.EventLinear(n_pre, n_post, np.ones((n_pre, n_post), np.float32)),
        eventlib.EventFixedProb(n_pre, n_post, 0.5, 0.5, seed=0),
        eventlib.FixedNumConn(n_pre, n_post, 2, 0.5, seed=0),
        eventlib.EventFixedNumConn(n_pre, n_post, 2, 0.5, seed=0),
    ]


LAYER_IDS = ["EventLinear_scalar", "EventLinear", "EventFixedProb", "FixedNumConn", "EventFixedNumConn"]


# -- input shape and dtype ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(9,), (3, 11), ()], ids=str)
@pytest.mark.parametrize("index", range(5), ids=LAYER_IDS)
def test_layer_input_shape(index, shape):
    """A last input dimension other than n_pre fails, eagerly and under jit;
    the message names n_pre."""
    layer = layers()[index]
    x = np.ones(shape, np.float32)
    message = r"(spikes|x) must have shape \(\.\.\., n_pre=10\)"
    with pytest.raises(ValueError, match=message):
        layer(x)
    with pytest.raises(ValueError, match=message):
        jax.jit(lambda x: layer(x))(x)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_op_input_shape(jit):
    wrap = jax.jit if jit else (lambda f: f)
    with pytest.raises(ValueError, match="n_pre=10"):
        wrap(ops.event_matmul)(np.ones((2, 9), bool), np.ones((10, 4), np.float32))
    with pytest.raises(ValueError, match="n_pre=10"):
        wrap(lambda s: ops.csr_event_matmul(s, 0.5, CONN.indptr, CONN.indices, 6, max_row=CONN.max_row))(
            np.ones((9,), bool)
        )


def test_op_weight_shape():
    with pytest.raises(ValueError, match="weight"):
        ops.event_matmul(np.ones(4, bool), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="weight"):
        ops.csr_event_matmul(np.ones(10, bool), np.ones(CONN.n_synapses + 1, np.float32), CONN.indptr, CONN.indices, 6)


@pytest.mark.parametrize("index", range(5), ids=LAYER_IDS)
def test_complex_input(index):
    """Complex inputs are refused (their dtype is named)."""
    with pytest.raises(TypeError, match="complex64"):
        layers()[index](jnp.ones(10, jnp.complex64))


def test_complex_spikes_ops():
    with pytest.raises(TypeError, match="spikes"):
        ops.event_matmul(jnp.ones(4, jnp.complex64), np.ones((4, 2), np.float32))
    with pytest.raises(TypeError, match="spikes"):
        ops.csr_event_matmul(jnp.ones(10, jnp.complex64), 0.5, CONN.indptr, CONN.indices, 6)


def test_integer_weights_ops():
    """Integer weight arrays are refused: the products are float."""
    with pytest.raises(TypeError, match="weight"):
        ops.event_matmul(np.ones(4, bool), np.ones((4, 2), np.int32))
    with pytest.raises(TypeError, match="weight"):
        ops.csr_event_matmul(np.ones(10, bool), np.ones(CONN.n_synapses, np.int32), CONN.indptr, CONN.indices, 6)


def test_csr_batch_beyond_int32():
    """A batch whose flat spike positions pass int32 is refused (checked on
    shapes only: nothing is allocated)."""
    spikes = jax.ShapeDtypeStruct((2**21, 1024), jnp.bool_)
    conn = connectivity.fixed_prob(1024, 8, 0.1, seed=0)
    with pytest.raises(ValueError, match="int32"):
        jax.eval_shape(
            lambda s: ops.csr_event_matmul(s, 0.5, conn.indptr, conn.indices, 8, max_row=conn.max_row), spikes
        )


def test_csr_synapses_beyond_int32():
    """Stored connectivity of 2**31 synapses or more is refused with the ways
    out named (checked on shapes only)."""
    n = 3 * 10**6
    with pytest.raises(ValueError, match=r"indices holds 3000000000 synapses.*shard_csr.*procedural"):
        jax.eval_shape(
            lambda s, ip, ix: ops.csr_event_matmul(s, 1.0, ip, ix, n, max_row=1000),
            jax.ShapeDtypeStruct((n,), jnp.bool_),
            jax.ShapeDtypeStruct((n + 1,), jnp.int32),
            jax.ShapeDtypeStruct((n * 1000,), jnp.int32),
        )


# -- layer construction -------------------------------------------------------------------

CONSTRUCTORS = {
    "EventLinear": lambda n_pre, n_post: eventlib.EventLinear(n_pre, n_post, 0.5),
    "EventFixedProb": lambda n_pre, n_post: eventlib.EventFixedProb(n_pre, n_post, 0.5, 0.5, seed=0),
    "FixedNumConn": lambda n_pre, n_post: eventlib.FixedNumConn(n_pre, n_post, 1, 0.5, seed=0),
    "EventFixedNumConn": lambda n_pre, n_post: eventlib.EventFixedNumConn(n_pre, n_post, 1, 0.5, seed=0),
}


@pytest.mark.parametrize(("bad", "error"), [(-3, ValueError), ((), ValueError)], ids=str)
@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_negative_sizes(name, bad, error):
    """Sizes are non-negative (0 is an empty population, as in brainstate)."""
    with pytest.raises(error, match="in_size"):
        CONSTRUCTORS[name](bad, 5)
    with pytest.raises(error, match="out_size"):
        CONSTRUCTORS[name](5, bad)


@pytest.mark.parametrize("bad", [2.5, 4.0, "4", True, None], ids=repr)
@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_non_integer_sizes(name, bad):
    with pytest.raises(TypeError, match="in_size"):
        CONSTRUCTORS[name](bad, 5)
    with pytest.raises(TypeError, match="out_size"):
        CONSTRUCTORS[name](5, bad)


def test_tuple_sizes():
    """brainstate's tuple sizes: the last entry is the count."""
    layer = eventlib.EventLinear((3, 10), (6,), 0.5)
    assert (layer.n_pre, layer.n_post) == (10, 6)


@pytest.mark.parametrize("prob", [0.0, -0.1, 1.5, math.nan, math.inf], ids=repr)
def test_probability_range(prob):
    """A probability outside (0, 1] is refused, naming the argument (a
    layer's conn_num may be 0.0: an empty layer, as in brainstate)."""
    if prob != 0.0:
        with pytest.raises(ValueError, match="conn_num"):
            eventlib.EventFixedProb(10, 6, prob, 0.5, seed=0)
    with pytest.raises(ValueError, match="prob"):
        connectivity.fixed_prob(10, 6, prob, seed=0)
    with pytest.raises(ValueError, match="afferent_ratio"):
        eventlib.EventFixedProb(10, 6, 0.5, 0.5, afferent_ratio=prob, seed=0)
    if prob != 0.0:  # a zero fraction is a valid conn_num of 0 partners
        with pytest.raises(ValueError, match="conn_num"):
            eventlib.FixedNumConn(10, 6, prob, 0.5, seed=0)


@pytest.mark.parametrize("conn_num", [True, "3", None, [3]], ids=repr)
def test_conn_num_type(conn_num):
    with pytest.raises(TypeError, match="conn_num"):
        eventlib.EventFixedProb(10, 6, conn_num, 0.5, seed=0)
    with pytest.raises(TypeError, match="conn_num"):
        eventlib.FixedNumConn(10, 6, conn_num, 0.5, seed=0)


def test_negative_conn_num():
    with pytest.raises(ValueError, match="conn_num"):
        eventlib.EventFixedProb(10, 6, -1, 0.5, seed=0)
    with pytest.raises(ValueError, match="conn_num"):
        eventlib.FixedNumConn(10, 6, -1, 0.5, seed=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: eventlib.FixedNumConn(5, 10, 6, 0.5, seed=0, **kw),  # fan-in 6 of 5
        lambda **kw: eventlib.FixedNumConn(10, 5, 6, 0.5, efferent_target="post", seed=0, **kw),  # fan-out 6 of 5
        lambda **kw: eventlib.EventFixedNumConn(5, 10, 6, 0.5, seed=0, **kw),
        lambda **kw: eventlib.EventFixedProb(10, 5, 6, 0.5, seed=0, **kw),
        lambda **kw: eventlib.EventFixedProb(5, 10, 6, 0.5, efferent_target="pre", seed=0, **kw),
    ],
    ids=["fan_in", "fan_out", "event_fan_in", "prob_int", "prob_int_pre"],
)
def test_conn_num_above_partners(make):
    """More distinct partners than exist is refused -- unless repeats are
    allowed."""
    with pytest.raises(ValueError, match="conn_num"):
        make()
    assert make(allow_multi_conn=True).n_synapses > 0


@pytest.mark.parametrize("cls", [eventlib.EventFixedProb, eventlib.FixedNumConn, eventlib.EventFixedNumConn])
def test_bad_efferent_target(cls):
    with pytest.raises(ValueError, match="efferent_target"):
        cls(10, 6, 2, 0.5, efferent_target="both", seed=0)


@pytest.mark.parametrize(
    "seed", [1.5, "0", True, np.float32(2.0), jnp.asarray(2.0), jnp.asarray([1, 2]), jnp.asarray(True)], ids=repr
)
def test_bad_seed(seed):
    with pytest.raises(TypeError, match="seed"):
        eventlib.EventFixedProb(10, 6, 0.5, 0.5, seed=seed)


@pytest.mark.parametrize("seed", [-1, 2**32, 2**40])
def test_seed_out_of_range(seed):
    """Seeds are 32-bit: a wider one would silently alias a smaller one."""
    with pytest.raises(ValueError, match="seed"):
        eventlib.EventFixedProb(10, 10, 0.5, 1.0, seed=seed)


def test_unexpected_keyword():
    """FixedNumConn has no float_as_event (its product is dense-equivalent)."""
    with pytest.raises(TypeError, match="float_as_event"):
        eventlib.FixedNumConn(10, 6, 2, 0.5, seed=0, float_as_event=True)


# -- weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(10, 5), (6, 10), (10,), (1, 10, 6)], ids=str)
def test_event_linear_weight_shape(shape):
    with pytest.raises(ValueError, match="weight"):
        eventlib.EventLinear(10, 6, np.ones(shape, np.float32))


def test_event_linear_weight_dtype():
    with pytest.raises(TypeError, match="weight"):
        eventlib.EventLinear(10, 6, np.ones((10, 6), np.int32))
    with pytest.raises(TypeError, match="weight"):
        eventlib.EventLinear(10, 6, np.ones((10, 6), bool))


@pytest.mark.parametrize(
    "make",
    [
        lambda w: eventlib.EventFixedProb(10, 6, 0.5, w, seed=0),
        lambda w: eventlib.FixedNumConn(10, 6, 2, w, seed=0),
        lambda w: eventlib.EventFixedNumConn(10, 6, 2, w, seed=0),
    ],
    ids=["EventFixedProb", "FixedNumConn", "EventFixedNumConn"],
)
def test_conn_weight_shape_and_dtype(make):
    """Per-synapse weights must match the synapse count and be float."""
    n_syn = make(0.5).n_synapses
    for shape in [(n_syn + 1,), (n_syn - 1,), (10, 6), (1, n_syn)]:
        with pytest.raises(ValueError, match="conn_weight"):
            make(np.ones(shape, np.float32))
    with pytest.raises(TypeError, match="conn_weight"):
        make(np.ones(n_syn, np.int32))


def test_from_synapses_bad_input():
    with pytest.raises(ValueError, match="conn_weight"):
        eventlib.EventFixedProb.from_synapses([0, 1], [1, 0], 2, 2, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="post_indices"):
        eventlib.EventFixedProb.from_synapses([0, 1], [1, 2], 2, 2, 0.5)
    with pytest.raises(ValueError, match="pre_indices"):
        eventlib.EventFixedProb.from_synapses([-1, 1], [1, 0], 2, 2, 0.5)
    with pytest.raises(TypeError, match="pre_indices"):
        eventlib.EventFixedProb.from_synapses([0.0, 1.0], [1, 0], 2, 2, 0.5)
    with pytest.raises(ValueError, match="pre_indices"):
        eventlib.EventFixedProb.from_synapses([0, 1, 1], [1, 0], 2, 2, 0.5)


# -- paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["gpu", "", "Dense", None])
def test_bad_path(path, restore_default_path):
    """Unknown paths are refused everywhere a path is taken."""
    with pytest.raises(ValueError, match="path"):
        ops.event_matmul(np.ones(4, bool), np.ones((4, 2), np.float32), path=path)
    with pytest.raises(ValueError, match="path"):
        ops.csr_event_matmul(np.ones(10, bool), 0.5, CONN.indptr, CONN.indices, 6, path=path)
    with pytest.raises(ValueError, match="path"):
        eventlib.EventLinear(4, 2, 0.5, path=path)
    with pytest.raises(ValueError, match="path"):
        eventlib.EventFixedProb(4, 2, 0.5, 0.5, seed=0, path=path)
    with pytest.raises(ValueError, match="path"):
        eventlib.set_default_path(path)
    with pytest.raises(ValueError, match="path"):
        eventlib.which_path(path)


# -- warnings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: eventlib.EventFixedProb(5, 4, 1e-9, 0.5, seed=0),
        lambda: eventlib.FixedNumConn(5, 4, 0, 0.5, seed=0),
        lambda: eventlib.EventFixedProb.from_synapses(np.zeros(0, int), np.zeros(0, int), 5, 4, 0.5),
        lambda: eventlib.EventFixedProb(5, 4, 0.0, 0.5, seed=0),
        lambda: eventlib.EventFixedProb(5, 4, 0.0, 0.5, seed=0, procedural=True),
        lambda: eventlib.FixedNumConn(5, 4, 0.0, 0.5, seed=0),
        lambda: eventlib.EventFixedNumConn(5, 4, 0.0, 0.5, efferent_target="post", seed=0),
    ],
    ids=["tiny_prob", "zero_count", "no_synapses", "zero_prob", "zero_procedural", "zero_fraction", "zero_fan_out"],
)
def test_empty_layer_warns(make):
    """A layer without any synapse warns (its output is always zero), and
    still works."""
    with pytest.warns(UserWarning, match="no synapse"):
        layer = make()
    assert layer.n_synapses == 0
    np.testing.assert_array_equal(np.asarray(layer(np.ones(5, np.float32))), np.zeros(4))


@pytest.mark.parametrize(
    "make",
    [
        lambda: eventlib.EventFixedProb(7, 10, 10**9, 0.5, allow_multi_conn=True, seed=0),
        lambda: eventlib.FixedNumConn(10, 7, 10**9, 0.5, allow_multi_conn=True, seed=0),
        lambda: connectivity.fixed_num_per_pre(7, 10, 10**9, 0, distinct=False),
        lambda: connectivity.fixed_num_per_post(10, 7, 10**9, 0, distinct=False),
    ],
    ids=["fan_out", "fan_in", "fixed_num_per_pre", "fixed_num_per_post"],
)
def test_huge_conn_num_refused_before_allocating(make):
    """A count whose synapses pass the int32 index range is refused before
    anything is allocated, with the bytes it would need and the way out."""
    with pytest.raises(ValueError, match=r"conn_num.*\d+ bytes.*split") as info:
        make()
    assert "7000000000 synapses" in str(info.value)


def test_procedural_initializer_too_large():
    """A procedural layer's initializer call builds the whole fan-shaped
    block; one too large for memory is refused, naming conn_weight and the
    bytes, instead of allocating it."""
    import braintools

    with pytest.raises(ValueError, match=r"conn_weight.*\(20000, 1000\).*80000000 bytes"):
        eventlib.EventFixedProb(
            20000, 3000, 1000, braintools.init.KaimingNormal(), allow_multi_conn=True, seed=0, procedural=True
        )
