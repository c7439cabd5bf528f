"""``eventlib.connectivity``: CSR structure, the statistics each construction
promises, determinism (seed, chunking), and the int32 guard."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from helpers import check_binomial_degrees, dense_from_synapses
from hypothesis import given
from hypothesis import strategies as st

import eventlib
from eventlib import connectivity
from eventlib.connectivity import stored


def assert_valid_csr(conn, distinct=True):
    """int32 row offsets and targets, targets in range and ascending within
    each row (strictly when no pair may repeat)."""
    assert conn.indptr.dtype == np.int32 and conn.indices.dtype == np.int32
    assert conn.indptr.shape == (conn.n_pre + 1,)
    assert conn.indptr[0] == 0 and conn.indptr[-1] == conn.n_synapses == conn.indices.shape[0]
    assert np.all(np.diff(conn.indptr) >= 0)
    if conn.n_synapses:
        assert conn.indices.min() >= 0 and conn.indices.max() < conn.n_post
    steps = np.diff(conn.indices.astype(np.int64))
    starts = conn.indptr[:-1]
    within_row = np.ones(conn.n_synapses, bool)
    within_row[starts[starts < conn.n_synapses]] = False  # the first synapse of each row
    within_row = within_row[1:]
    assert np.all(steps[within_row] > 0) if distinct else np.all(steps[within_row] >= 0)


def pairs(conn):
    return set(zip(conn.pre_indices().tolist(), conn.indices.tolist(), strict=True))


# -- fixed probability -------------------------------------------------------------


@pytest.mark.parametrize("prob", [0.001, 0.05, 0.3, 0.9, 1.0])
def test_fixed_prob_structure(prob):
    """Valid CSR without repeated pairs; ``prob=1`` connects every pair."""
    conn = connectivity.fixed_prob(300, 170, prob, seed=1)
    assert_valid_csr(conn, distinct=True)
    assert (conn.n_pre, conn.n_post) == (300, 170)
    if prob == 1.0:
        assert conn.n_synapses == 300 * 170
        assert np.all(conn.to_dense() == 1)


@pytest.mark.parametrize("prob", [0.05, 0.5])
def test_fixed_prob_degree_statistics(prob):
    """Out- and in-degrees have the mean ``n p`` and variance ``n p (1 - p)``
    of Binomial(n, p), and targets are uniform over the columns."""
    n = 2000
    conn = connectivity.fixed_prob(n, n, prob, seed=7)
    check_binomial_degrees(conn.row_lengths, n, prob)
    check_binomial_degrees(conn.in_degrees(), n, prob)
    # Uniformity over column blocks: a chi-square with 9 degrees of freedom
    # stays below 40 with probability 1 - 2e-5.
    counts = np.bincount(conn.indices // (n // 10), minlength=10)
    expected = conn.n_synapses / 10
    assert np.sum((counts - expected) ** 2 / expected) < 40


def test_fixed_prob_seeds_independent():
    """Two seeds share a pair with probability ``p`` given one has it (not
    more), and no two rows of one matrix coincide."""
    n, p = 1000, 0.05
    a, b = connectivity.fixed_prob(n, n, p, seed=0), connectivity.fixed_prob(n, n, p, seed=1)
    shared = len(pairs(a) & pairs(b))
    expected = a.n_synapses * p
    assert abs(shared - expected) <= 6 * math.sqrt(expected), (shared, expected)
    rows = {tuple(a.indices[a.indptr[i] : a.indptr[i + 1]]) for i in range(n)}
    assert len(rows) == n


def test_fixed_prob_tiny_probability():
    """A probability so small that nothing is drawn gives a valid empty matrix."""
    conn = connectivity.fixed_prob(20, 30, 1e-9, seed=0)
    assert conn.n_synapses == 0 and conn.max_row == 0
    assert_valid_csr(conn)


# -- fixed number ------------------------------------------------------------------


@pytest.mark.parametrize(("n_post", "k"), [(1000, 10), (40, 3), (20, 10), (20, 20), (20, 0), (1, 1)])
def test_fixed_num_per_pre(n_post, k):
    """Every presynaptic neuron has exactly ``k`` distinct targets."""
    conn = connectivity.fixed_num_per_pre(300, n_post, k, seed=3)
    assert_valid_csr(conn, distinct=True)
    assert np.all(conn.row_lengths == k)


@pytest.mark.parametrize(("n_pre", "k"), [(1000, 10), (40, 3), (20, 10), (20, 20), (20, 0), (1, 1)])
def test_fixed_num_per_post(n_pre, k):
    """Every postsynaptic neuron has exactly ``k`` distinct presynaptic
    partners; stored as valid CSR by presynaptic row."""
    conn = connectivity.fixed_num_per_post(n_pre, 300, k, seed=3)
    assert_valid_csr(conn, distinct=True)
    assert np.all(conn.in_degrees() == k)
    dense = conn.to_dense()
    assert dense.max(initial=0) <= 1


@pytest.mark.parametrize("k", [10, 150])
def test_fixed_num_targets_uniform(k):
    """Fixed fan-out targets are uniform: each column's in-degree is
    Binomial(n_pre, k / n_post)."""
    n_pre, n_post = 3000, 200
    conn = connectivity.fixed_num_per_pre(n_pre, n_post, k, seed=11)
    check_binomial_degrees(conn.in_degrees(), n_pre, k / n_post)


def test_fixed_num_with_repeats():
    """``distinct=False`` draws with replacement: exactly ``k`` synapses per
    row (or column), repeated pairs appear and add up in ``to_dense``, and
    ``k`` may exceed the number of partners."""
    conn = connectivity.fixed_num_per_pre(200, 10, 10, seed=0, distinct=False)
    assert_valid_csr(conn, distinct=False)
    assert np.all(conn.row_lengths == 10)
    dense = conn.to_dense()
    assert dense.max() >= 2  # some pair repeats
    np.testing.assert_array_equal(dense.sum(axis=1), 10)
    more = connectivity.fixed_num_per_post(7, 50, 12, seed=0, distinct=False)
    assert np.all(more.in_degrees() == 12)
    np.testing.assert_array_equal(more.to_dense().sum(axis=0), 12)


# -- from_indices --------------------------------------------------------------------


def test_from_indices(rng):
    """Synapse lists become CSR by presynaptic row; ``order`` maps each stored
    synapse to its input position; repeated pairs are kept; empty rows too."""
    pre = rng.integers(0, 12, 80)
    post = rng.integers(0, 5, 80)
    pre[pre == 3] = 4  # row 3 is empty
    w = rng.standard_normal(80)
    conn, order = connectivity.from_indices(pre, post, 12, 5)
    assert_valid_csr(conn, distinct=False)
    assert conn.n_synapses == 80 and conn.row_lengths[3] == 0
    np.testing.assert_array_equal(np.sort(order), np.arange(80))
    np.testing.assert_array_equal(conn.pre_indices(), pre[order])
    np.testing.assert_array_equal(conn.indices, post[order])
    np.testing.assert_allclose(conn.to_dense(w[order]), dense_from_synapses(pre, post, w, 12, 5), rtol=1e-12)


@pytest.mark.parametrize("empty", [np.zeros(0, np.int64), []], ids=["int_array", "list"])
def test_from_indices_empty(empty):
    """No synapses at all, given as empty integer arrays or empty lists."""
    conn, order = connectivity.from_indices(empty, empty, 3, 4)
    assert conn.n_synapses == 0 and order.shape == (0,)
    assert_valid_csr(conn)
    np.testing.assert_array_equal(conn.to_dense(), np.zeros((3, 4)))


# -- the Connectivity object -------------------------------------------------------


def test_connectivity_accessors():
    """Sizes, degrees, bytes and the dense export agree with each other."""
    conn = connectivity.fixed_prob(50, 30, 0.2, seed=5)
    assert conn.n_synapses == conn.indices.size == conn.row_lengths.sum() == conn.in_degrees().sum()
    assert conn.max_row == conn.row_lengths.max()
    assert conn.nbytes == 4 * (50 + 1) + 4 * conn.n_synapses
    dense = conn.to_dense(0.5)
    assert dense.shape == (50, 30)
    np.testing.assert_array_equal(dense.sum(axis=1), 0.5 * conn.row_lengths)
    np.testing.assert_array_equal((dense != 0).sum(axis=0), conn.in_degrees())


def test_connectivity_checks_shape():
    with pytest.raises(ValueError, match="indptr"):
        connectivity.Connectivity(np.zeros(3, np.int32), np.zeros(0, np.int32), n_pre=5, n_post=2)


# -- determinism ------------------------------------------------------------------------

BUILDERS = {
    "prob": lambda seed: connectivity.fixed_prob(300, 257, 0.07, seed),
    "prob_dense": lambda seed: connectivity.fixed_prob(100, 40, 0.8, seed),
    "per_pre": lambda seed: connectivity.fixed_num_per_pre(300, 500, 9, seed),
    "per_pre_large_k": lambda seed: connectivity.fixed_num_per_pre(300, 30, 20, seed),
    "per_pre_repeats": lambda seed: connectivity.fixed_num_per_pre(300, 30, 20, seed, distinct=False),
    "per_post": lambda seed: connectivity.fixed_num_per_post(400, 300, 7, seed),
}


def same(a, b):
    return (
        (a.n_pre, a.n_post) == (b.n_pre, b.n_post)
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
    )


@pytest.mark.parametrize("name", BUILDERS)
def test_seed_determines_matrix(name):
    """The same seed gives the same matrix; another seed another one."""
    build = BUILDERS[name]
    assert same(build(42), build(42))
    assert not same(build(42), build(43))


@pytest.mark.parametrize("chunk", [1, 7, 1000])
@pytest.mark.parametrize("name", BUILDERS)
def test_independent_of_chunk_size(monkeypatch, name, chunk):
    """Rows are generated in chunks to bound memory; the matrix does not
    depend on the chunk size."""
    expected = BUILDERS[name](5)
    monkeypatch.setattr(stored, "_CHUNK_ELEMENTS", chunk)
    assert same(BUILDERS[name](5), expected)


def test_memory_proportional_to_synapses():
    """10^5 x 10^5 at p = 1e-4 (10^6 synapses) is built without anything of
    size n_pre x n_post (a dense bool mask alone would take 10 GB)."""
    tracemalloc.start()
    try:
        conn = connectivity.fixed_prob(10**5, 10**5, 1e-4, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(conn.n_synapses - 10**6) < 6 * 10**3
    assert peak < 500e6, f"peak {peak / 1e6:.0f} MB"


# -- int32 guard ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: connectivity.fixed_prob(50, 50, 0.5, seed=0),
        lambda: connectivity.fixed_prob(20, 20, 1.0, seed=0),
        lambda: connectivity.fixed_num_per_pre(30, 10, 5, seed=0),
        lambda: connectivity.fixed_num_per_post(10, 30, 5, seed=0),
        lambda: connectivity.from_indices(np.zeros(101, int), np.zeros(101, int), 2, 2),
        lambda: eventlib.EventFixedProb(50, 50, 0.5, 0.5, seed=0),
        lambda: eventlib.FixedNumConn(10, 30, 5, 0.5, seed=0),  # 30 x fan-in 5
    ],
    ids=["prob", "prob_full", "per_pre", "per_post", "from_indices", "EventFixedProb", "FixedNumConn"],
)
def test_int32_guard(monkeypatch, build):
    """Beyond the int32 synapse range construction fails with a clear error
    (here with the bound lowered to 100)."""
    monkeypatch.setattr(stored, "MAX_SYNAPSES", 100)
    with pytest.raises(ValueError, match="int32"):
        build()


def test_int32_guard_allows_small(monkeypatch):
    monkeypatch.setattr(stored, "MAX_SYNAPSES", 100)
    conn = connectivity.fixed_num_per_pre(10, 10, 5, seed=0)  # 50 synapses, longest row 5
    assert conn.n_synapses == 50


# -- properties ---------------------------------------------------------------------------

sizes = st.integers(1, 60)
seeds = st.integers(0, 2**32 - 1)


@given(sizes, sizes, st.floats(0.01, 1.0), seeds)
def test_property_fixed_prob(n_pre, n_post, prob, seed):
    """Any sizes, probability and seed: valid CSR without repeated pairs,
    the same for the same seed."""
    conn = connectivity.fixed_prob(n_pre, n_post, prob, seed)
    assert_valid_csr(conn, distinct=True)
    assert same(conn, connectivity.fixed_prob(n_pre, n_post, prob, seed))


@given(sizes, sizes, st.data(), seeds, st.booleans())
def test_property_fixed_num(n_pre, n_post, data, seed, distinct):
    """Any sizes, count and seed: exactly k partners per row (fixed fan-out)
    or per column (fixed fan-in), distinct when asked."""
    k_out = data.draw(st.integers(0, n_post if distinct else 2 * n_post))
    k_in = data.draw(st.integers(0, n_pre if distinct else 2 * n_pre))
    fan_out = connectivity.fixed_num_per_pre(n_pre, n_post, k_out, seed, distinct=distinct)
    assert_valid_csr(fan_out, distinct=distinct)
    assert np.all(fan_out.row_lengths == k_out)
    fan_in = connectivity.fixed_num_per_post(n_pre, n_post, k_in, seed, distinct=distinct)
    assert_valid_csr(fan_in, distinct=False)
    assert np.all(fan_in.in_degrees() == k_in)
    if distinct:
        assert fan_in.to_dense().max(initial=0) <= 1


@given(sizes, sizes, st.data())
def test_property_from_indices(n_pre, n_post, data):
    """Any synapse lists: CSR by presynaptic row that holds exactly the
    synapses given, ``order`` mapping stored to given positions."""
    n_syn = data.draw(st.integers(0, 3 * n_pre))
    pre = np.array(data.draw(st.lists(st.integers(0, n_pre - 1), min_size=n_syn, max_size=n_syn)), np.int64)
    post = np.array(data.draw(st.lists(st.integers(0, n_post - 1), min_size=n_syn, max_size=n_syn)), np.int64)
    conn, order = connectivity.from_indices(pre, post, n_pre, n_post)
    assert_valid_csr(conn, distinct=False)
    np.testing.assert_array_equal(np.sort(order), np.arange(n_syn))
    np.testing.assert_array_equal(conn.pre_indices(), pre[order])
    np.testing.assert_array_equal(conn.indices, post[order])
