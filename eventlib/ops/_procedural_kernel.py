"""The procedural product as a Pallas kernel (path ``'kernel'``).

Like the stored-connectivity kernel in :mod:`eventlib.ops.sparse_event`, a
1-D grid of programs strides over the compacted active (batch row, input)
pairs, and each program adds its rows into the output with atomic adds --
but instead of loading a row's targets it regenerates them, a block of
``_BLOCK`` draws at a time, from the same uint32 hash as the portable path
(:mod:`eventlib.connectivity.procedural`), so both paths give the same matrix.
Nothing per synapse is read from memory; only the threshold table of a
probability rule is (a binary search per draw).

Per-scheme work for one row, all in registers of one program:

- ``'all'``/``'multi'``: one pass over ``n_post`` columns / ``k`` draws.
- ``'prob'``: blocks of geometric gaps (binary search in the table, prefix
  sum) until the row passes ``n_post``.
- ``'first'``: a draw is kept if no earlier draw has the same value; earlier
  blocks are regenerated and compared (``O(width**2)`` comparisons: there is
  no room for a per-row ``n_post`` scratch in a program).
- ``'smallest'``: the ``k``-th smallest key is found by a 32-step bisection
  of the uint32 range, each step counting keys below it over ``n_post``
  columns; then the columns at or below it are the targets.

Only the Pallas interpreter has run this code (on a CPU, in the tests); its
speed on a GPU is unmeasured.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from ..connectivity import procedural as rows
from ._compact import compact_active, pallas_call, zeros_for_call
from ._primitive import check_flat_size

_BLOCK = 128
_PROGRAMS = 1024


def _binary_gaps(table_ref, bits, n_table: int):
    """Entries of the table ``<= bits`` for a block of draws (a fixed number
    of halvings; lanes already settled load nothing)."""
    from jax.experimental.pallas import triton as plgpu

    lo = jnp.zeros(bits.shape, jnp.int32)
    hi = jnp.full(bits.shape, n_table, jnp.int32)

    def halve(_, bounds):
        lo, hi = bounds
        open_ = lo < hi
        mid = (lo + hi) // 2
        v = plgpu.load(table_ref.at[jnp.where(open_, mid, 0)], mask=open_, other=0)
        right = open_ & (v <= bits)
        return jnp.where(right, mid + 1, lo), jnp.where(open_ & ~right, mid, hi)

    lo, _ = lax.fori_loop(0, rows.search_steps(n_table), halve, (lo, hi))
    return lo


def _any_row(matches):
    # An int32 reduction, the kind the other kernels already use, not a boolean one.
    return jnp.max(matches.astype(jnp.int32), axis=1) > 0


def _row_blocks(rule: rows.Rule, table_ref, n_table: int, row, emit, base):
    """Call ``emit(targets, ok)`` for each block of row ``row``'s targets
    (hashed with ``base``, see :func:`rows.hash_bits`)."""
    lane = jnp.arange(_BLOCK, dtype=jnp.int32)
    n_post, k = rule.n_post, rule.k

    def n_blocks(n):
        return (n + _BLOCK - 1) // _BLOCK

    # Loop bodies hand back their (unused) carry: the Triton lowering cannot
    # yield a Python constant from a loop.
    if rule.scheme == "all":

        def every(c, carry):
            emit(c * _BLOCK + lane, c * _BLOCK + lane < n_post)
            return carry

        lax.fori_loop(0, n_blocks(n_post), every, jnp.int32(0))
    elif rule.scheme == "multi":

        def multi(c, carry):
            pos = c * _BLOCK + lane
            emit(rows.below(rows.hash_bits(rule, row, pos, base), n_post), pos < k)
            return carry

        lax.fori_loop(0, n_blocks(k), multi, jnp.int32(0))
    elif rule.scheme == "first":

        def draws(c):
            pos = c * _BLOCK + lane
            return rows.below(rows.hash_bits(rule, row, pos, base), n_post), pos >= 0

        # Blocks until k distinct targets are found: the rule's width
        # suffices for its own seed, another seed's row may need more.
        def first(state):
            c, kept = state
            cand, valid = draws(c)
            earlier = lane[None, :] < lane[:, None]
            dup = _any_row((cand[:, None] == cand[None, :]) & earlier & valid[None, :])

            def against(e, dup):
                other, other_valid = draws(e)
                return dup | _any_row((cand[:, None] == other[None, :]) & other_valid[None, :])

            dup = lax.fori_loop(0, c, against, dup)
            is_first = valid & ~dup
            rank = kept + jnp.cumsum(is_first.astype(jnp.int32))
            emit(cand, is_first & (rank <= k))
            return c + 1, kept + jnp.sum(is_first.astype(jnp.int32))

        lax.while_loop(lambda state: state[1] < k, first, (jnp.int32(0), jnp.int32(0)))
    elif rule.scheme == "smallest":

        def keys(c):
            col = c * _BLOCK + lane
            return rows.hash_bits(rule, row, col, base), col < n_post

        def count_at_most(t):
            def add(c, n):
                key, ok = keys(c)
                return n + jnp.sum((ok & (key <= t)).astype(jnp.int32))

            return lax.fori_loop(0, n_blocks(n_post), add, jnp.int32(0))

        def bisect(_, bounds):
            lo, hi = bounds
            mid = lo + (hi - lo) // jnp.uint32(2)
            enough = count_at_most(mid) >= k
            return jnp.where(enough, lo, mid + jnp.uint32(1)), jnp.where(enough, mid, hi)

        # The k-th smallest key: the least t with k keys <= t (keys of a row are distinct).
        kth, _ = lax.fori_loop(0, 32, bisect, (jnp.uint32(0), jnp.uint32(0xFFFFFFFF)))

        def pick(c, carry):
            key, ok = keys(c)
            emit(c * _BLOCK + lane, ok & (key <= kth))
            return carry

        if k:
            lax.fori_loop(0, n_blocks(n_post), pick, jnp.int32(0))
    else:  # 'prob'

        def cond(state):
            return state[0] < n_post - 1

        def body(state):
            last, pos = state
            bits = rows.hash_bits(rule, row, pos + lane, base)
            t = last + jnp.cumsum(_binary_gaps(table_ref, bits, n_table) + 1)
            emit(jnp.minimum(t, n_post), t < n_post)
            return jnp.minimum(jnp.max(t), n_post), pos + _BLOCK

        lax.while_loop(cond, body, (jnp.int32(-1), jnp.int32(0)))


def _kernel(
    count_ref,
    pair_ref,
    val_ref,
    w_ref,
    table_ref,
    seed_ref,
    _zeros_ref,
    out_ref,
    *,
    rule,
    n_table,
    scalar,
    masked_atomics,
):
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plgpu

    p, programs = pl.program_id(0), pl.num_programs(0)
    n_pre, n_post = rule.n_pre, rule.n_post
    base = rows.row_key_base(rule, seed_ref[0])

    def one_pair(t, carry):
        j = p + t * programs
        flat = pair_ref[j]
        b = flat // n_pre
        i = flat - b * n_pre
        contrib = val_ref[j] * (w_ref[0] if scalar else w_ref[i])

        def emit(targets, ok):
            add = jnp.broadcast_to(contrib, targets.shape)
            if masked_atomics:
                plgpu.atomic_add(out_ref, b * n_post + targets, add, mask=ok)
            else:
                # The interpreter has no masked atomics and runs programs one
                # at a time: a scatter-add, masked lanes sent to a spare slot.
                slot = jnp.where(ok, b * n_post + targets, out_ref.shape[0] - 1)
                out_ref[...] = out_ref[...].at[slot].add(jnp.where(ok, add, 0))

        _row_blocks(rule, table_ref, n_table, i, emit, base)
        return carry

    n_mine = jnp.maximum(count_ref[0] - p + programs - 1, 0) // programs
    lax.fori_loop(0, n_mine, one_pair, 0)


def procedural_kernel_call(values, weight, table, rule: rows.Rule, platform, seed=None):
    """``values @ (weight * M)`` for float ``values`` of shape (batch, n_pre),
    ``M`` hashed with the uint32 ``seed`` (default the rule's)."""
    from jax.experimental import pallas as pl

    batch, n_pre = values.shape
    check_flat_size(batch, rule.n_post, "outputs", extra=1)
    pairs, vals, count = compact_active(values.reshape(1, -1), _PROGRAMS, platform)
    scalar, n_table = weight.ndim == 0, table.shape[0]
    if n_table == 0:  # Triton refuses zero-sized refs; the table is never read then
        table = jnp.zeros((1,), jnp.uint32)
    size = batch * rule.n_post + 1
    seed = jnp.asarray(rule.seed if seed is None else seed).astype(jnp.uint32)
    kernel = functools.partial(_kernel, rule=rule, n_table=n_table, scalar=scalar, masked_atomics=platform == "cuda")
    out = pallas_call(
        kernel,
        platform=platform,
        grid=(_PROGRAMS,),
        in_specs=[pl.no_block_spec] * 7,
        out_specs=pl.no_block_spec,
        out_shape=jax.ShapeDtypeStruct((size,), values.dtype),
        input_output_aliases={6: 0},
    )(count[None], pairs, vals, weight.reshape(-1), table, seed.reshape(1), zeros_for_call(size, values.dtype, vals))
    return out[:-1].reshape(batch, rule.n_post)
