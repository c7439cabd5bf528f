"""Inputs and float64 references shared by the tests.

References are computed on the host in NumPy float64, never with JAX x64.
"Dyadic" weights are multiples of 1/256 with small numerators: every product
and partial sum the operators form is then exactly representable in float32,
so any summation order gives the same bits and results must be equal exactly.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

SPIKE_KINDS = ("bool", "int", "float")
ACTIVITIES = ("none", "one", "few", "quarter", "half", "all")
BATCH_SHAPES = ((), (1,), (3,), (2, 3), (0,))


def n_active(activity: str, n: int) -> int:
    """How many of ``n`` inputs are active at an activity level."""
    return {"none": 0, "one": min(1, n), "few": min(3, n), "quarter": n // 4, "half": n // 2, "all": n}[activity]


def spike_mask(rng, shape, count: int, shared: bool = False) -> np.ndarray:
    """Bool array of ``shape`` with exactly ``count`` True entries in every
    row (along the last axis), at random positions -- the same positions in
    every row when ``shared``."""
    *lead, n = shape
    keys = rng.random((n,) if shared else (*lead, n))
    ranks = np.argsort(np.argsort(keys, axis=-1), axis=-1)
    return np.broadcast_to(ranks < count, shape).copy()


def make_spikes(rng, kind: str, shape, count: int, dyadic: bool = True, shared: bool = False) -> np.ndarray:
    """Spikes with exactly ``count`` nonzero entries per row (at the same
    positions in every row when ``shared``).

    ``bool``: True where active. ``int``: int32 counts in [1, 3] where
    active. ``float``: float32 values where active, dyadic (multiples of 1/4
    in [-2, 2] without 0) or uniform in [0.1, 1) with ``dyadic=False``.
    """
    mask = spike_mask(rng, shape, count, shared)
    if kind == "bool":
        return mask
    if kind == "int":
        return np.where(mask, rng.integers(1, 4, mask.shape), 0).astype(np.int32)
    if kind == "float":
        if dyadic:
            vals = rng.integers(1, 9, mask.shape) * rng.choice([-1, 1], mask.shape) / 4
        else:
            vals = rng.uniform(0.1, 1.0, mask.shape)
        return np.where(mask, vals, 0).astype(np.float32)
    raise ValueError(kind)


def dyadic(rng, shape) -> np.ndarray:
    """float32 weights k / 256 with integer k in [-64, 64]."""
    return (rng.integers(-64, 65, shape) / 256).astype(np.float32)


def f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def events(x) -> np.ndarray:
    """What each input counts as with ``float_as_event``: 1 where nonzero."""
    return (np.asarray(x) != 0).astype(np.float64)


def assert_exact(out, ref) -> None:
    """Bit-for-bit equality (after conversion of the float32 result)."""
    out = np.asarray(out)
    assert out.shape == np.shape(ref), (out.shape, np.shape(ref))
    np.testing.assert_array_equal(f64(out), f64(ref))


def assert_close(out, ref, tol: float = 1e-6) -> None:
    """``||out - ref|| <= tol * ||ref||`` (exact when ``ref`` is all zeros)."""
    out, ref = f64(out), f64(ref)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    err, scale = np.linalg.norm(out - ref), np.linalg.norm(ref)
    assert err <= tol * scale, f"relative error {err / max(scale, 1e-300):.3g} > {tol:g}"


def random_synapses(rng, n_pre: int, n_post: int, mean_row: float = 3.0):
    """Random ``(pre, post)`` lists: uneven and empty rows, repeated pairs."""
    n_syn = max(1, int(rng.poisson(mean_row * n_pre)))
    return rng.integers(0, n_pre, n_syn), rng.integers(0, n_post, n_syn)


def dense_from_synapses(pre, post, weight, n_pre: int, n_post: int) -> np.ndarray:
    """float64 ``(n_pre, n_post)`` matrix; repeated pairs add up."""
    dense = np.zeros((n_pre, n_post))
    np.add.at(dense, (np.asarray(pre), np.asarray(post)), np.broadcast_to(f64(weight), np.shape(pre)))
    return dense


def check_binomial_degrees(degrees, n: int, p: float, n_sd: float = 6.0) -> None:
    """Sample mean and variance of Binomial(n, p) degrees, within ``n_sd``
    standard errors (normal approximations)."""
    m = degrees.size
    mean, var = n * p, n * p * (1 - p)
    assert abs(degrees.mean() - mean) <= n_sd * math.sqrt(var / m), (degrees.mean(), mean)
    assert abs(degrees.var(ddof=1) - var) <= n_sd * var * math.sqrt(2 / (m - 1)), (degrees.var(ddof=1), var)


N_REC = 12


def recurrent_loss(product, weight, xs, remat):
    """A leaky recurrent network run with ``lax.scan`` (optionally with
    ``jax.checkpoint`` on each step): the input of every step mixes external
    spikes with the thresholded state, as in training through time."""

    def step(v, x):
        def update(v, x):
            return 0.5 * v + product(x + (v > 0.1).astype(v.dtype) * v, weight)

        v = (jax.checkpoint(update) if remat else update)(v, x)
        return v, v

    _, vs = jax.lax.scan(step, jnp.zeros(xs.shape[1:-1] + (N_REC,), jnp.float32), xs)
    return jnp.sum(vs**2)


def all_pairs(names: str, **factors) -> tuple[str, list[tuple]]:
    """``(names, cases)`` for ``pytest.mark.parametrize``: a subset of the
    product of ``factors`` (name -> list of levels) in which every pair of
    levels of every two factors still appears together at least once.

    A product of five factors of 2-3 levels has 72 cases, each compiling its
    own functions; all pairs need about 12. Interactions of three factors at
    once are then tested only where a test lists them itself. Greedy and
    deterministic: each case taken is the first one of the product (in
    ``itertools.product`` order) that covers the most pairs not yet seen.

    Args:
      names: the factor names as ``parametrize`` takes them, ``"a,b,c"``, in
        the order of ``factors``.
      **factors: each factor's levels.
    """
    import itertools

    keys = list(factors)
    if [k.strip() for k in names.split(",")] != keys:
        raise ValueError(f"names {names!r} must list the factors in order: {keys}")
    product = list(itertools.product(*factors.values()))

    def pairs(case):
        return {(i, case[i], j, case[j]) for i, j in itertools.combinations(range(len(keys)), 2)}

    uncovered = set().union(*(pairs(c) for c in product))
    cases = []
    while uncovered:
        best = max(product, key=lambda c: len(pairs(c) & uncovered))
        cases.append(best)
        uncovered -= pairs(best)
    return names, cases
