"""Procedural connectivity: the operator and the layers regenerate the very
matrix that :mod:`eventlib.connectivity` stores for the same seed, on every
path, without anything proportional to the synapses."""

from __future__ import annotations

import dataclasses
import functools

import brainstate
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, assert_exact, dyadic, f64, make_spikes

import eventlib
from eventlib import connectivity
from eventlib.connectivity import hashing
from eventlib.connectivity import procedural as rows
from eventlib.ops import procedural_event as proc

# (name, n_pre, n_post, rule arguments): every row scheme, with rows that
# continue past the probability window and counts near the scheme switch.
RULES = {
    "prob": (40, 300, {"prob": 0.05}),
    "prob_dense": (30, 50, {"prob": 0.8}),
    "prob_one": (9, 17, {"prob": 1.0}),
    "prob_tiny": (20, 30, {"prob": 1e-9}),
    "first": (40, 300, {"k": 20}),
    "first_near_switch": (25, 41, {"k": 10}),
    "multi": (40, 30, {"k": 12, "distinct": False}),
    "smallest": (30, 40, {"k": 10}),
    "smallest_full": (7, 5, {"k": 5}),
    "empty_count": (6, 9, {"k": 0}),
}


@functools.cache
def rule_and_stored(name: str, seed: int = 3):
    n_pre, n_post, args = RULES[name]
    rule, table = proc.make_rule(n_pre, n_post, seed, **args)
    return rule, table, proc.stored_connectivity(rule)


def scheme_of(name):
    return rule_and_stored(name)[0].scheme


def test_rule_names_cover_every_scheme():
    assert {scheme_of(name) for name in RULES} == {"prob", "all", "first", "multi", "smallest"}


# -- the hash in JAX is the hash in NumPy ---------------------------------------------


def test_hash_and_below_match_numpy(rng):
    rule = proc.make_rule(4, 10, seed=2**32 - 5, k=3)[0]
    row, pos = rng.integers(0, 2**31 - 1, 5000), rng.integers(0, 2**32, 5000, dtype=np.uint64).astype(np.uint32)
    bits = np.asarray(rows.hash_bits(rule, jnp.asarray(row, jnp.int32), jnp.asarray(pos)))
    np.testing.assert_array_equal(bits, connectivity.hash_bits(rule.seed, rule.stream, row, pos))
    for n in (1, 3, 2**16 - 1, 2**16, 2**16 + 1, 123_457, 2**31 - 1):
        np.testing.assert_array_equal(np.asarray(rows.below(jnp.asarray(bits), n)), hashing.below(bits, n))


@pytest.mark.parametrize("seed", [0, 1, 2**31, 2**32 - 1])
@pytest.mark.parametrize("stream", [hashing.STREAM_PROB, hashing.STREAM_COUNT, hashing.STREAM_AFFERENT])
def test_hash_numpy_and_jax_agree_on_awkward_inputs(seed, stream):
    """The one definition of the hash gives the same bits evaluated with NumPy
    (the stored builders) and with JAX (the row rule and the kernels), at the
    ends of the uint32 range of seeds, rows and positions, with the seed as an
    int or as a uint32 array (the traced operand of a product)."""
    edges = np.array([0, 1, 2, 2**16 - 1, 2**16, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1], np.uint32)
    rows_, pos = edges[:, None], edges[None, :]
    ref = hashing.hash_bits(seed, stream, rows_, pos)
    assert ref.dtype == np.uint32 and ref.shape == (edges.size, edges.size)
    jax_int = hashing.hash_bits(seed, stream, jnp.asarray(rows_), jnp.asarray(pos), xp=jnp)
    jax_traced = jax.jit(lambda s, r, p: hashing.hash_bits(s, stream, r, p, xp=jnp))(
        jnp.uint32(seed), jnp.asarray(rows_), jnp.asarray(pos)
    )
    np.testing.assert_array_equal(np.asarray(jax_int), ref)
    np.testing.assert_array_equal(np.asarray(jax_traced), ref)
    # Rows as int64 on the host (the builders' chunks) hash as their low 32 bits.
    np.testing.assert_array_equal(hashing.hash_bits(seed, stream, edges.astype(np.int64)[:, None], pos), ref)
    # A row's bits are a bijection of positions: no repeated word in a row.
    assert all(np.unique(r).size == r.size for r in ref)
    for n in (1, 2**16 + 1, 2**31 - 1):
        np.testing.assert_array_equal(np.asarray(hashing.below(jnp.asarray(ref), n, jnp)), hashing.below(ref, n))
        np.testing.assert_array_equal(hashing.below(ref, n), (ref.astype(np.uint64) * n) >> 32)


def test_rule_hash_is_the_builders_hash():
    """The rule's JAX hash, with its own seed or the seed operand's key, is the
    NumPy hash of the builder it regenerates."""
    rule = proc.make_rule(5, 9, seed=2**32 - 1, prob=0.5)[0]
    row, pos = jnp.arange(5, dtype=jnp.int32)[:, None], jnp.arange(2**31 - 4, 2**31 + 4, dtype=jnp.uint32)[None, :]
    ref = connectivity.hash_bits(rule.seed, hashing.STREAM_PROB, np.arange(5)[:, None], np.asarray(pos))
    np.testing.assert_array_equal(np.asarray(rows.hash_bits(rule, row, pos)), ref)
    base = rows.row_key_base(rule, jnp.uint32(rule.seed))
    np.testing.assert_array_equal(np.asarray(rows.hash_bits(rule, row, pos, base)), ref)


def test_geometric_gaps_match_numpy(rng):
    table = connectivity.geometric_table(0.01, 5000)
    bits = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
    bits[:3] = [0, 2**32 - 1, table[7]]  # the ends and an exact threshold
    ref = np.searchsorted(table, bits, side="right")
    np.testing.assert_array_equal(np.asarray(rows.geometric_gaps(jnp.asarray(table), jnp.asarray(bits))), ref)


# -- the same matrix as the stored form -----------------------------------------------


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("path", ["event", "dense", "kernel"])
def test_to_dense_equals_stored(name, path):
    rule, table, conn = rule_and_stored(name)
    eye = jnp.eye(rule.n_pre, dtype=jnp.bool_)
    dense = proc.procedural_event_matmul(eye, jnp.float32(1), rule, table, path=path)
    np.testing.assert_array_equal(np.asarray(dense), conn.to_dense())


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1])
def test_to_dense_equals_stored_across_seeds(seed):
    for args in ({"prob": 0.1}, {"k": 7}):
        rule, table = proc.make_rule(33, 70, seed, **args)
        np.testing.assert_array_equal(
            np.asarray(proc.procedural_to_dense(rule, table)), proc.stored_connectivity(rule).to_dense()
        )


@pytest.mark.parametrize("path", ["event", "kernel"])
def test_rows_longer_than_the_window(monkeypatch, path):
    """A probability row continues past its window in further blocks; with a
    window of 2 draws every row does, and the stored construction's own
    sequential fallback (forced the same way) agrees."""
    rule, table = proc.make_rule(20, 64, 5, prob=0.3)
    monkeypatch.setattr(connectivity.stored, "prob_window", lambda n_post, prob: 2)
    stored = connectivity.fixed_prob(20, 64, 0.3, 5)
    narrow = dataclasses.replace(rule, width=2)
    dense = proc.procedural_event_matmul(jnp.eye(20, dtype=jnp.bool_), jnp.float32(1), narrow, table, path=path)
    np.testing.assert_array_equal(np.asarray(dense), stored.to_dense())
    np.testing.assert_array_equal(stored.to_dense(), proc.stored_connectivity(rule).to_dense())


@pytest.mark.parametrize("path", ["event", "kernel"])
def test_first_distinct_after_redraws(monkeypatch, path):
    """Rows short of k distinct values in the first window are redrawn wider;
    the procedural window is the widest any row needed."""
    monkeypatch.setattr(connectivity.stored, "first_distinct_width", lambda k, n: k)
    rule, table = proc.make_rule(50, 30, 1, k=7)
    assert rule.scheme == "first" and rule.width > rule.k
    stored = connectivity.fixed_num_per_pre(50, 30, 7, 1)
    dense = proc.procedural_event_matmul(jnp.eye(50, dtype=jnp.bool_), jnp.float32(1), rule, table, path=path)
    np.testing.assert_array_equal(np.asarray(dense), stored.to_dense())


def test_first_distinct_stamps_wrap(monkeypatch, rng):
    """The dedupe's per-row stamps restart from zero before they would pass
    int32; with a limit of three rows' stamps they restart every third row."""
    rule, table = proc.make_rule(30, 200, 77, k=20)
    monkeypatch.setattr(rows, "_STAMP_LIMIT", 3 * rule.width)
    spikes = make_spikes(rng, "bool", (4, 30), 12)
    out = proc.procedural_event_matmul(spikes, jnp.float32(1), rule, table, path="event")
    assert_exact(out, f64(spikes) @ proc.stored_connectivity(rule).to_dense().astype(np.float64))


# -- products ---------------------------------------------------------------------------

PRODUCT_CASES = [
    (name, kind, shape, weight_kind)
    for name in ("prob", "first", "multi", "smallest", "prob_one")
    for kind, shape, weight_kind in (("bool", (), "scalar"), ("float", (2, 3), "per_row"), ("int", (4,), "scalar"))
]


@pytest.mark.parametrize("path", ["event", "kernel", "dense"])
@pytest.mark.parametrize("name,kind,shape,weight_kind", PRODUCT_CASES)
def test_product_equals_stored(rng, path, name, kind, shape, weight_kind):
    rule, table, conn = rule_and_stored(name)
    weight = dyadic(rng, () if weight_kind == "scalar" else (rule.n_pre,))
    ref_dense = conn.to_dense().astype(np.float64) * (f64(weight)[:, None] if weight.ndim else f64(weight))
    for count in (0, 1, rule.n_pre // 4, rule.n_pre):
        spikes = make_spikes(rng, kind, (*shape, rule.n_pre), count)
        out = proc.procedural_event_matmul(spikes, weight, rule, table, path=path)
        assert_exact(out, f64(spikes) @ ref_dense)


@pytest.mark.parametrize("path", ["event", "kernel"])
def test_float_as_event(rng, path):
    rule, table, conn = rule_and_stored("first")
    spikes = make_spikes(rng, "float", (3, rule.n_pre), 9)
    out = proc.procedural_event_matmul(spikes, jnp.float32(0.25), rule, table, float_as_event=True, path=path)
    assert_exact(out, (spikes != 0).astype(np.float64) @ (0.25 * conn.to_dense().astype(np.float64)))


def test_jit_and_vmap(rng):
    rule, table, conn = rule_and_stored("prob")
    spikes = make_spikes(rng, "float", (2, 3, rule.n_pre), 7)
    weight = dyadic(rng, (4, rule.n_pre))
    product = functools.partial(proc.procedural_event_matmul, rule=rule, table=table)
    ref = np.einsum("abi,wi,ij->wabj", f64(spikes), f64(weight), conn.to_dense().astype(np.float64))
    out = jax.jit(jax.vmap(jax.vmap(lambda s, w: product(s, w), (0, None)), (None, 0)))(spikes, weight)
    assert_exact(out, ref)


# -- derivatives ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["event", "dense"])
@pytest.mark.parametrize("name", ["prob", "first", "multi"])
@pytest.mark.parametrize("weight_kind", ["scalar", "per_row"])
def test_gradients_match_dense(rng, path, name, weight_kind):
    rule, table, conn = rule_and_stored(name)
    dense = jnp.asarray(conn.to_dense())
    weight = jnp.asarray(rng.uniform(0.5, 1.5, () if weight_kind == "scalar" else (rule.n_pre,)), jnp.float32)
    # Zero entries of the float spikes must get their derivative too.
    spikes = jnp.asarray(make_spikes(rng, "float", (3, rule.n_pre), 6, dyadic=False))
    target = jnp.asarray(rng.normal(size=(3, rule.n_post)), jnp.float32)

    def loss(s, w):
        return jnp.sum((proc.procedural_event_matmul(s, w, rule, table, path=path) - target) ** 2)

    def ref_loss(s, w):
        m = dense * (w[:, None] if w.ndim else w)
        return jnp.sum((jnp.matmul(s, m, precision="highest") - target) ** 2)

    grads, ref_grads = jax.grad(loss, (0, 1))(spikes, weight), jax.grad(ref_loss, (0, 1))(spikes, weight)
    for got, want in zip(grads, ref_grads, strict=True):
        assert_close(got, want, tol=1e-5)
    hess = jax.hessian(loss)(spikes, weight)
    assert_close(hess, jax.hessian(ref_loss)(spikes, weight), tol=1e-5)


def test_forward_mode_in_weight(rng):
    rule, table, conn = rule_and_stored("first")
    spikes = make_spikes(rng, "bool", (rule.n_pre,), 10)
    w, dw = jnp.float32(0.5), jnp.float32(2.0)
    _, tangent = jax.jvp(lambda w: proc.procedural_event_matmul(spikes, w, rule, table), (w,), (dw,))
    assert_exact(tangent, 2.0 * (f64(spikes) @ conn.to_dense().astype(np.float64)))


# -- memory --------------------------------------------------------------------------


def largest_intermediate(jaxpr) -> int:
    """Elements of the largest value a jaxpr holds: its inputs, constants
    and what any equation (at any depth) produces."""
    sizes = [int(np.prod(v.aval.shape, dtype=np.int64)) for v in (*jaxpr.invars, *jaxpr.constvars)]
    biggest = max(sizes, default=0)
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            biggest = max(biggest, int(np.prod(getattr(var.aval, "shape", ()), dtype=np.int64)))
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", None)
                if isinstance(sub, jax.extend.core.Jaxpr):
                    inner = sub
                if inner is not None:
                    biggest = max(biggest, largest_intermediate(getattr(inner, "jaxpr", inner)))
    return biggest


@pytest.mark.parametrize("args", [{"k": 100}, {"k": 100, "distinct": False}, {"k": 700}, {"prob": 0.05}])
@pytest.mark.parametrize("path", ["event", "dense"])
def test_nothing_proportional_to_synapses(args, path):
    """At 2000 x 2000 with ~10^5 synapses, no intermediate of the forward or
    weight-gradient computation has more than 4 * (n_pre + n_post) elements
    (a stored index array alone would have n_synapses); the same check finds
    the index array of the stored operator."""
    n, batch = 2000, 2
    rule, table = proc.make_rule(n, n, 0, **args)
    spikes = jnp.zeros((batch, n), jnp.float32)

    def forward(s, w):
        return proc._impl(s, w, table, jnp.uint32(0), rule=rule, float_as_event=False, path=path, platform=None)

    def weight_grad(s, w):
        return jax.grad(lambda w: jnp.sum(proc.procedural_event_matmul(s, w, rule, table, path=path)))(w)

    bound = 4 * (n + n) + batch * n
    for fn in (forward, weight_grad):
        assert largest_intermediate(jax.make_jaxpr(fn)(spikes, jnp.float32(1)).jaxpr) <= bound
    conn = connectivity.fixed_num_per_pre(n, n, 100, 0)
    stored = jax.make_jaxpr(
        lambda s: eventlib.ops.csr_event_matmul(s, 1.0, conn.indptr, conn.indices, n, path="event")
    )(spikes)
    assert largest_intermediate(stored.jaxpr) >= conn.n_synapses > bound


# -- layers --------------------------------------------------------------------------

LAYERS = {
    "prob": (eventlib.EventFixedProb, {"conn_num": 0.1}),
    "prob_int": (eventlib.EventFixedProb, {"conn_num": 6}),
    "event_num": (eventlib.EventFixedNumConn, {"conn_num": 6, "efferent_target": "post"}),
    "num_float": (eventlib.FixedNumConn, {"conn_num": 0.2, "efferent_target": "post", "allow_multi_conn": True}),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_same_matrix_and_outputs(rng, name):
    cls, kwargs = LAYERS[name]
    stored = cls(60, 45, conn_weight=0.5, seed=11, **kwargs)
    procedural = cls(60, 45, conn_weight=0.5, seed=11, procedural=True, **kwargs)
    assert procedural.procedural and not stored.procedural
    np.testing.assert_array_equal(np.asarray(procedural.to_dense()), np.asarray(stored.to_dense()))
    pre, post = procedural.synapses()
    np.testing.assert_array_equal(np.asarray(pre), np.asarray(stored.synapses()[0]))
    np.testing.assert_array_equal(np.asarray(post), np.asarray(stored.indices))
    for shape in ((60,), (3, 60)):
        x = make_spikes(rng, "float" if name == "num_float" else "bool", shape, 15)
        assert_exact(brainstate.transform.jit(procedural)(x), np.asarray(stored(x)))
    assert procedural.nbytes < stored.nbytes


def test_layer_n_synapses():
    """Exact for fixed fan-out, the expected count for a probability."""
    fixed = eventlib.EventFixedProb(100, 80, conn_num=7, conn_weight=1.0, seed=0, procedural=True)
    assert fixed.n_synapses == 700
    prob = eventlib.EventFixedProb(100, 80, conn_num=0.1, conn_weight=1.0, seed=0, procedural=True)
    assert prob.n_synapses == 800
    assert abs(prob.stored_connectivity().n_synapses - 800) < 6 * np.sqrt(800 * 0.9)


def test_layer_per_row_weight_and_gradient(rng):
    w = dyadic(rng, (30,))
    layer = eventlib.EventFixedProb(30, 20, conn_num=0.3, conn_weight=w, seed=4, procedural=True)
    stored = eventlib.EventFixedProb(30, 20, conn_num=0.3, conn_weight=1.0, seed=4)
    dense = np.asarray(stored.to_dense(), np.float64) * f64(w)[:, None]
    np.testing.assert_array_equal(f64(layer.to_dense()), dense)
    x = make_spikes(rng, "bool", (30,), 8)
    grads = brainstate.transform.grad(lambda: jnp.sum(layer(x)), layer.states(brainstate.ParamState))()
    (g,) = jax.tree_util.tree_leaves(grads)
    np.testing.assert_array_equal(f64(g), f64(x) * dense.astype(bool).sum(axis=1))


def test_layer_errors():
    with pytest.raises(ValueError, match="fixed fan-out.*fan-in"):
        eventlib.EventFixedNumConn(20, 30, conn_num=3, conn_weight=1.0, seed=0, procedural=True)
    with pytest.raises(ValueError, match="fixed fan-out"):
        eventlib.EventFixedProb(20, 30, conn_num=3, conn_weight=1.0, efferent_target="pre", procedural=True)
    with pytest.raises(ValueError, match="afferent_ratio"):
        eventlib.EventFixedProb(20, 30, conn_num=0.1, conn_weight=1.0, afferent_ratio=0.5, procedural=True)
    with pytest.raises(ValueError, match=r"conn_weight must have shape \(\) or \(20,\)"):
        eventlib.EventFixedProb(20, 30, conn_num=3, conn_weight=np.ones(60, np.float32), procedural=True)
    layer = eventlib.EventFixedProb(20, 30, conn_num=0.1, conn_weight=1.0, seed=0, procedural=True)
    with pytest.raises(AttributeError, match="stores no synapses"):
        _ = layer.indices


def test_operator_errors():
    rule, table, _ = rule_and_stored("first")
    spikes = jnp.zeros((rule.n_pre,), jnp.bool_)
    with pytest.raises(ValueError, match="per-synapse weights would have to be stored"):
        proc.procedural_event_matmul(spikes, jnp.ones((rule.n_pre * rule.k,), jnp.float32), rule, table)
    with pytest.raises(TypeError, match="uint32"):
        proc.procedural_event_matmul(spikes, jnp.float32(1), rule, jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="n_pre=40"):
        proc.procedural_event_matmul(jnp.zeros((39,), jnp.bool_), jnp.float32(1), rule, table)


def test_gradients_through_the_kernel(rng):
    """The kernel path's forward and weight tangent, with the portable
    transposes, give the dense product's gradients."""
    rule, table, conn = rule_and_stored("prob")
    dense = jnp.asarray(conn.to_dense())
    spikes = jnp.asarray(make_spikes(rng, "float", (2, rule.n_pre), 5))
    weight = jnp.float32(0.75)

    def loss(s, w):
        return jnp.sum(proc.procedural_event_matmul(s, w, rule, table, path="kernel") ** 2)

    def ref_loss(s, w):
        return jnp.sum(jnp.matmul(s, dense * w, precision="highest") ** 2)

    grads, ref_grads = jax.grad(loss, (0, 1))(spikes, weight), jax.grad(ref_loss, (0, 1))(spikes, weight)
    for got, want in zip(grads, ref_grads, strict=True):
        assert_close(got, want, tol=1e-6)
