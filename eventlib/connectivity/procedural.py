"""Rows of random connectivity regenerated in JAX, bit for bit as
:mod:`eventlib.connectivity.stored` builds them in NumPy.

A :class:`Rule` (from :func:`~eventlib.ops.make_rule`) says how the rows of one
connectivity are drawn; ``fold_row`` regenerates one row in JAX, and
``stored_connectivity`` builds the same matrix in NumPy. Everything that
decides a target is uint32 arithmetic shared with the NumPy builders (the
hash and the multiply-high of :mod:`eventlib.connectivity.hashing`, integer
comparisons against a threshold table), so a row is the same on every
backend, in a vectorised loop or a kernel, whatever the blocking.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from jax import lax

from . import hashing
from . import stored as conn_lib

__all__ = [
    "Rule",
    "below",
    "expected_synapses",
    "fold_row",
    "geometric_gaps",
    "hash_bits",
    "make_rule",
    "max_row_bound",
    "new_scratch",
    "row_key_base",
    "search_steps",
    "stored_connectivity",
]

_U32 = jnp.uint32
_STAMP_LIMIT = 2**31 - 1  # the largest stamp of the 'first' dedupe (lowered by a test)


@dataclasses.dataclass(frozen=True)
class Rule:
    """How the rows of one connectivity are drawn (hashable: a static
    parameter of the primitive).

    Attributes:
      scheme: ``'prob'`` (geometric skipping over a threshold table),
        ``'all'`` (probability 1), or a fixed count's ``'multi'``,
        ``'first'``, ``'smallest'`` (as ``eventlib.connectivity.count_scheme`` picks).
      n_pre, n_post: population sizes.
      seed: the connectivity seed the width was found for, and the default
        seed of the product (which takes the seed as an operand).
      k: targets per row (fixed counts), else 0.
      width: draws generated at once: the window of
        :func:`eventlib.connectivity.fixed_prob` (a
        row continues in further windows), or for ``'first'`` the draws that
        suffice for every row of ``seed`` (a row of another seed continues
        in further windows).
      prob: the connection probability (``'prob'`` only).
    """

    scheme: str
    n_pre: int
    n_post: int
    seed: int
    k: int = 0
    width: int = 0
    prob: float = 0.0

    @property
    def block(self) -> int:
        """Draws per step of the ``'prob'`` loop: the window, shortened where
        ``block * (n_post + 1)`` (the largest partial sum) would pass int32."""
        return max(1, min(self.width, (2**31 - 1 - self.n_post) // (self.n_post + 1)))

    @property
    def stream(self) -> int:
        """The hash stream of the rule's draws (that of the NumPy builder)."""
        return hashing.STREAM_PROB if self.scheme == "prob" else hashing.STREAM_COUNT

    @property
    def row_key_base(self) -> int:
        """The per-(seed, stream) part of the row key, folded on the host."""
        return int(hashing.seed_key(self.seed, self.stream))


def make_rule(n_pre: int, n_post: int, seed: int, *, prob: float | None = None, k: int = 0, distinct: bool = True):
    """The :class:`Rule` of a connectivity and its threshold table.

    Args:
      n_pre, n_post: population sizes.
      seed: int in ``[0, 2**32)``.
      prob: a connection probability in (0, 1] (as
        :func:`eventlib.connectivity.fixed_prob`); or
      k, distinct: ``k`` targets per presynaptic neuron, distinct or with
        repeats (as :func:`eventlib.connectivity.fixed_num_per_pre`). For
        distinct targets this generates every row once, without storing
        it, to find the draws that suffice (time proportional to the
        synapses, memory to one chunk).

    Returns:
      ``(rule, table)``: the hashable rule and a uint32 NumPy array of at
      most ``n_post`` geometric thresholds (empty unless a probability
      below 1).
    """
    empty = np.zeros((0,), np.uint32)
    if prob is not None:
        if prob == 1.0:
            return Rule("all", n_pre, n_post, seed), empty
        table = conn_lib.geometric_table(prob, n_post)
        return Rule("prob", n_pre, n_post, seed, width=conn_lib.prob_window(n_post, prob), prob=prob), table
    width = conn_lib.fixed_num_per_pre_window(n_pre, n_post, k, seed, distinct)
    return Rule(conn_lib.count_scheme(k, n_post, distinct), n_pre, n_post, seed, k=k, width=width), empty


def stored_connectivity(rule: Rule) -> conn_lib.Connectivity:
    """The stored (CSR) form of the rule's matrix, built in NumPy by the
    builder the rule regenerates.

    Args:
      rule: the :class:`Rule` (its own seed is used).
    """
    if rule.scheme == "all":
        return conn_lib.fixed_prob(rule.n_pre, rule.n_post, 1.0, rule.seed)
    if rule.scheme == "prob":
        return conn_lib.fixed_prob(rule.n_pre, rule.n_post, rule.prob, rule.seed)
    return conn_lib.fixed_num_per_pre(rule.n_pre, rule.n_post, rule.k, rule.seed, distinct=rule.scheme != "multi")


def expected_synapses(rule: Rule) -> float:
    """The number of synapses of the rule's matrix: exact for fixed counts
    and probability 1; ``n_pre * n_post * prob`` (the mean) for a probability.

    Args:
      rule: the :class:`Rule`.
    """
    if rule.scheme == "all":
        return float(rule.n_pre * rule.n_post)
    if rule.scheme == "prob":
        return float(rule.n_pre * rule.n_post * rule.prob)
    return float(rule.n_pre * rule.k)


def row_key_base(rule: Rule, seed):
    """:attr:`Rule.row_key_base` for a uint32 ``seed`` that may be traced:
    the seed is an operand of the product, so a compiled function uses the
    seed it is called with (a restored checkpoint's), not one compiled in.

    Args:
      rule: the :class:`Rule` (its stream is used, not its seed).
      seed: a uint32 scalar array (or an int).
    """
    return hashing.seed_key(seed, rule.stream, jnp)


def hash_bits(rule: Rule, row, positions, base=None):
    """uint32 bits of ``(row, positions)``: equal to
    :func:`eventlib.connectivity.hash_bits` for the rule's stream and seed.

    Args:
      rule: the :class:`Rule`.
      row, positions: integer arrays that broadcast together.
      base: the row key base of another seed, from :func:`row_key_base`;
        default the rule's own.
    """
    base = _U32(rule.row_key_base) if base is None else base
    return hashing.position_bits(hashing.row_keys(base, row, jnp), positions, jnp)


def below(bits, n: int):
    """``(bits * n) >> 32`` as int32 (:func:`eventlib.connectivity.hashing.below`
    on JAX arrays).

    Args:
      bits: uint32 array; n: the range, ``0 <= n < 2**31``.
    """
    return hashing.below(bits, n, jnp)


def geometric_gaps(table, bits):
    """Entries of ``table`` that are ``<= bits``: int32 gaps in ``[0, len(table)]``.

    Args:
      table: the uint32 threshold table of the rule
        (:func:`eventlib.connectivity.geometric_table`).
      bits: uint32 draws from :func:`hash_bits`.
    """
    if table.shape[0] == 0:
        return jnp.zeros(bits.shape, jnp.int32)
    return jnp.searchsorted(table, bits, side="right").astype(jnp.int32)


def new_scratch(rule: Rule):
    """Working memory the row generator threads through a loop: for
    ``'first'``, one int32 stamp per target (``O(n_post)``, reused for every
    row) and the number of rows stamped so far.

    Args:
      rule: the :class:`Rule`.
    """
    if rule.scheme == "first":
        return jnp.zeros((rule.n_post,), jnp.int32), jnp.int32(0)
    return jnp.zeros((0,), jnp.int32), jnp.int32(0)


def fold_row(rule: Rule, table, row, fn, carry, scratch, base=None):
    """Fold ``fn(targets, carry)`` over the blocks of row ``row``'s targets
    (hashed with ``base``, see :func:`hash_bits`).

    ``targets`` is int32 ``(block,)``; entries equal to ``n_post`` are not
    synapses (out of bounds: scatters drop them, filled gathers read 0).
    Repeated targets (``'multi'``) are separate synapses. Returns
    ``(carry, scratch)``.

    Args:
      rule, table: the :class:`Rule` and its threshold table.
      row: the presynaptic row, an int32 scalar (may be traced).
      fn: ``fn(targets, carry) -> carry``, called once per block.
      carry: the initial value folded over.
      scratch: from :func:`new_scratch`, threaded from row to row.
      base: the row key base of the seed operand (:func:`row_key_base`);
        default the rule's own seed.
    """
    n_post = rule.n_post
    if rule.scheme == "all":
        return fn(jnp.arange(n_post, dtype=jnp.int32), carry), scratch
    if rule.scheme == "multi":
        return fn(below(hash_bits(rule, row, jnp.arange(rule.k), base), n_post), carry), scratch
    if rule.scheme == "smallest":
        if rule.k == 0:
            return carry, scratch
        # The k smallest keys are the k largest complements (keys of one row are distinct).
        keys = hash_bits(rule, row, jnp.arange(n_post), base)
        _, targets = lax.top_k(~keys, rule.k)
        return fn(targets.astype(jnp.int32), carry), scratch
    if rule.scheme == "first":
        if rule.k == 0:
            return carry, scratch
        pos = jnp.arange(rule.width, dtype=jnp.int32)
        cand = below(hash_bits(rule, row, pos, base), n_post)
        # The first draw of each value: the r-th row stamps r * width - pos
        # with a scatter-max (its earliest draw of a value wins, and every
        # stamp of an earlier row is smaller), then reads its stamps back.
        # No reset between rows; only when the stamps would pass int32.
        stamps, r = scratch
        r = r + 1
        stamps, r = lax.cond(
            r > _STAMP_LIMIT // rule.width, lambda: (jnp.zeros_like(stamps), jnp.int32(1)), lambda: (stamps, r)
        )
        value = r * rule.width - pos
        stamps = stamps.at[cand].max(value)
        first = stamps[cand] == value
        keep = first & (jnp.cumsum(first, dtype=jnp.int32) <= rule.k)
        carry = fn(jnp.where(keep, cand, n_post), carry)
        # The width suffices for every row of the rule's seed; with another
        # seed (the operand) a row may have fewer than k distinct draws in
        # it and continues, a window at a time, as the NumPy builder's
        # wider redraw does. This row's stamps all lie above ``floor``.
        floor = (r - 1) * rule.width

        def more(state):
            found, start, stamps, carry = state
            cand = below(hash_bits(rule, row, start + pos, base), n_post)
            seen = stamps[cand] > floor
            stamps = stamps.at[jnp.where(seen, n_post, cand)].max(value, mode="drop")
            new = ~seen & (stamps[cand] == value)
            keep = new & (found + jnp.cumsum(new, dtype=jnp.int32) <= rule.k)
            carry = fn(jnp.where(keep, cand, n_post), carry)
            return found + jnp.sum(new, dtype=jnp.int32), start + rule.width, stamps, carry

        found = jnp.sum(first, dtype=jnp.int32)
        state = (found, jnp.int32(rule.width), stamps, carry)
        _, _, stamps, carry = lax.while_loop(lambda st: st[0] < rule.k, more, state)
        return carry, (stamps, r)

    # 'prob': blocks of geometric gaps until the row passes n_post. Partial
    # sums stay below 2**31 because gaps are at most n_post (see Rule.block).
    block = rule.block

    def body(state):
        last, pos, carry = state
        bits = hash_bits(rule, row, pos + jnp.arange(block, dtype=jnp.int32), base)
        t = last + jnp.cumsum(geometric_gaps(table, bits) + 1, dtype=jnp.int32)
        carry = fn(jnp.where(t < n_post, t, n_post), carry)
        return jnp.minimum(t[-1], n_post), pos + block, carry

    state = (jnp.int32(-1), jnp.int32(0), carry)
    _, _, carry = lax.while_loop(lambda s: s[0] < n_post - 1, body, state)
    return carry, scratch


def max_row_bound(rule: Rule) -> int:
    """Targets one row can have at most (the ``'prob'`` window is a typical
    bound, not a hard one: rows continue).

    Args:
      rule: the :class:`Rule`.
    """
    return {"all": rule.n_post, "prob": rule.width}.get(rule.scheme, rule.k)


def search_steps(n: int) -> int:
    """Halvings a binary search over ``n`` entries needs to finish.

    Args:
      n: the number of entries searched.
    """
    return max(1, math.ceil(math.log2(n + 1)))
