"""Products with procedural connectivity: no synapse is stored.

- :func:`procedural_event_matmul`: event-driven ``spikes @ M`` where each
  active input's row of ``M`` is regenerated from ``(seed, row, position)``
  by the counter-based hash that :mod:`eventlib.connectivity` builds the
  stored form with; for the same seed it is the same matrix.
- :func:`procedural_to_dense` / :func:`procedural_matmul_reference`: the
  matrix and the product, from the stored construction in NumPy.

``M[i, j]`` is ``weight`` (a scalar, or ``weight[i]`` for a per-row array)
times the number of synapses from ``i`` to ``j`` (0 or 1 unless repeats are
allowed). Memory: the spikes, the output, a threshold table of at most
``n_post`` uint32 (probability rules) and an ``O(n_post)`` scratch -- nothing
proportional to the synapses. Work: per active (batch row, input) pair, the
row's regeneration -- about ``log2(table size)`` integer steps per target for
a probability, a sort-free dedupe of ``width`` draws for distinct fixed
counts, a hash of all ``n_post`` keys when ``k >= n_post / 4``.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.core import ShapedArray
from jax.interpreters import ad, batching

from .. import _checks
from ..connectivity import procedural as rows
from ..connectivity.procedural import Rule, expected_synapses, make_rule, stored_connectivity
from . import paths
from ._compact import active_indices, count_active
from ._primitive import HIGHEST, check_flat_size, make_primitive, map_batched, spikes_batching
from ._procedural_kernel import procedural_kernel_call
from .dense_event import spike_values

# The rule (how rows are drawn) lives in eventlib.connectivity.procedural; its
# names are re-exported here, beside the product that takes it.
__all__ = [
    "procedural_event_matmul",
    "procedural_to_dense",
    "procedural_matmul_reference",
    "make_rule",
    "Rule",
    "expected_synapses",
    "stored_connectivity",
]


def procedural_to_dense(rule: Rule, table, weight=1.0):
    """float32 ``(n_pre, n_post)`` matrix of the rule, regenerated row by row
    in JAX (for checks and small sizes: it is dense).

    Args:
      rule: the :class:`Rule`; table: its threshold table, as for
        :func:`procedural_event_matmul`.
      weight: a scalar, or ``(n_pre,)`` (one weight per presynaptic row).
    """
    weight = jnp.asarray(weight, jnp.float32)
    eye = jnp.eye(rule.n_pre, dtype=jnp.bool_)
    return procedural_event_matmul(eye, weight, rule, table, path="dense")


def procedural_matmul_reference(spikes, weight, conn, *, float_as_event: bool = False):
    """The product the operator must equal, from the stored connectivity
    ``conn`` (a :class:`eventlib.connectivity.Connectivity`, such as
    ``stored_connectivity()`` of a layer): a dense float32 matmul at
    ``HIGHEST``; ``weight`` is a scalar or ``(n_pre,)``.

    Args:
      spikes, float_as_event: as for :func:`procedural_event_matmul`.
      weight: a scalar or ``(n_pre,)``; conn: the stored connectivity.
    """
    spikes, weight = jnp.asarray(spikes), jnp.asarray(weight)
    dense = jnp.asarray(conn.to_dense()) * (weight[:, None] if weight.ndim else weight)
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    return jnp.matmul(spike_values(spikes, dtype, float_as_event), dense.astype(dtype), precision=HIGHEST)


# -- portable paths ----------------------------------------------------------


def _fold_pairs(spikes, values, rule: Rule, table, body, init, every_row: bool, seed):
    """Fold ``body(b, i, value, targets, carry)`` over the (batch row ``b``,
    input ``i``) pairs -- the active ones, or with ``every_row`` all rows once
    (``b = -1``: the body handles every batch row) -- and over each row's
    target blocks, hashed with the uint32 ``seed``."""
    n_pre = rule.n_pre
    base = rows.row_key_base(rule, seed)

    def visit(b, i, value, state):
        carry, scratch = state
        return rows.fold_row(rule, table, i, lambda t, c: body(b, i, value, t, c), carry, scratch, base)

    state = (init, rows.new_scratch(rule))
    if every_row:

        def row(i, s):
            return visit(jnp.int32(-1), i, None if values is None else values[:, i], s)

        carry, _ = lax.fori_loop(0, n_pre, row, state)
        return carry
    mask = spikes.reshape(-1).astype(jnp.bool_)
    flat_idx, count = active_indices(mask, 0), count_active(mask)
    flat_values = values.reshape(-1)

    def step(j, s):
        flat = flat_idx[j]
        return visit(flat // n_pre, flat % n_pre, flat_values[flat], s)

    carry, _ = lax.fori_loop(0, count, step, state)
    return carry


def _row_weight(weight, i):
    return weight if weight.ndim == 0 else weight[i]


def _forward(values, spikes, weight, table, seed, rule: Rule, every_row: bool):
    batch = values.shape[0]

    def add(b, i, value, targets, out):
        w = _row_weight(weight, i)
        if every_row:  # value is the column values[:, i]
            return out.at[:, targets].add((value * w)[:, None], mode="drop")
        if batch == 1:
            return out.at[targets].add(value * w, mode="drop")
        return out.at[b, targets].add(value * w, mode="drop")

    shape = (rule.n_post,) if batch == 1 and not every_row else (batch, rule.n_post)
    out = _fold_pairs(spikes, values, rule, table, add, jnp.zeros(shape, values.dtype), every_row, seed)
    return out.reshape(batch, rule.n_post)


# -- the primitive: the path chosen per platform (eventlib.ops.paths); the
# Pallas kernel is in _procedural_kernel.py ------------------------------------


def _impl(spikes, weight, table, seed, *, rule, float_as_event, path, platform):
    batch, n_pre = spikes.shape
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    # Every path sums in float32 for half-precision weights (a weight per
    # row at most: widening them all is cheap), rounded once to ``dtype``.
    acc = _checks.accumulation_dtype(dtype)
    values = spike_values(spikes, acc, float_as_event)
    weight = weight.astype(dtype).astype(acc)
    choice = paths.resolve(path, platform, "procedural")
    if batch == 0 or rule.n_post == 0:
        return jnp.zeros((batch, rule.n_post), dtype)
    check_flat_size(batch, n_pre)
    if choice.run == "kernel":
        return procedural_kernel_call(values, weight, table, rule, platform, seed).astype(dtype)
    return _forward(values, spikes, weight, table, seed, rule, every_row=choice.run == "dense").astype(dtype)


def _abstract(spikes, weight, table, seed, *, rule, float_as_event, path):
    return ShapedArray((spikes.shape[0], rule.n_post), _checks.out_dtype(spikes.dtype, weight.dtype))


procedural_matmat_p = make_primitive("eventlib_procedural_event_matmat", _impl, _abstract)


# -- derivatives -------------------------------------------------------------


def _spikes_jvp(dspikes, spikes, weight, table, seed, *, rule, float_as_event, path):
    # The tangent is a float input like any other: the same product, exact
    # for every nonzero tangent entry (straight through with float_as_event).
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    return procedural_matmat_p.bind(
        dspikes.astype(dtype), weight, table, seed, rule=rule, float_as_event=False, path=path
    )


def _weight_jvp(dweight, spikes, weight, table, seed, **params):
    return procedural_matmat_p.bind(spikes, dweight, table, seed, **params)


ad.defjvp(procedural_matmat_p, _spikes_jvp, _weight_jvp, None, None)


def _weight_cotangent(values, spikes, cotangent, table, seed, rule: Rule, scalar: bool, every_row: bool):
    """``g[i] = sum_b values[b, i] * sum_{j in row i} cotangent[b, j]``
    visiting the active rows (or all rows); summed over ``i`` for a scalar."""

    def gather(b, i, value, targets, grad):
        if every_row:
            ct = cotangent.at[:, targets].get(mode="fill", fill_value=0)
            s = jnp.sum(value * jnp.sum(ct, axis=1))
        else:
            ct_row = lax.dynamic_index_in_dim(cotangent, b, keepdims=False)
            s = value * jnp.sum(ct_row.at[targets].get(mode="fill", fill_value=0))
        return grad + s if scalar else grad.at[i].add(s)

    init = jnp.zeros((), cotangent.dtype) if scalar else jnp.zeros((rule.n_pre,), cotangent.dtype)
    return _fold_pairs(spikes, values, rule, table, gather, init, every_row, seed)


def _spikes_cotangent(cotangent, weight, table, seed, rule: Rule):
    """``cotangent @ M.T``: every row regenerated once, its targets' cotangent
    summed per batch row (the transpose of the spikes' tangent map)."""

    def gather(b, i, value, targets, grad):
        ct = jnp.sum(cotangent.at[:, targets].get(mode="fill", fill_value=0), axis=1)
        return grad.at[:, i].add(ct * _row_weight(weight, i).astype(ct.dtype))

    init = jnp.zeros((cotangent.shape[0], rule.n_pre), cotangent.dtype)
    return _fold_pairs(None, None, rule, table, gather, init, every_row=True, seed=seed)


# The two cotangent maps are primitives of their own, each linear in every
# float argument, whose transposes are the product or each other: derivatives
# of any order never differentiate the loops that regenerate rows (whose
# trip counts are decided at run time for a probability).


def _wct_impl(spikes, cotangent, table, seed, *, rule, float_as_event, path, weight_dtype, scalar, platform=None):
    values = spike_values(spikes, cotangent.dtype, float_as_event)
    every_row = paths.resolve(path, platform, "procedural", kernel=False).run == "dense"
    return _weight_cotangent(values, spikes, cotangent, table, seed, rule, scalar, every_row).astype(weight_dtype)


def _wct_abstract(spikes, cotangent, table, seed, *, rule, float_as_event, path, weight_dtype, scalar):
    return ShapedArray(() if scalar else (rule.n_pre,), weight_dtype)


weight_cotangent_p = make_primitive("eventlib_procedural_weight_cotangent", _wct_impl, _wct_abstract)


def _wct_spikes_jvp(dspikes, spikes, cotangent, table, seed, **params):
    # Bilinear in (float values, cotangent): the tangent's own nonzeros are
    # visited, so it is exact where a spike is zero; with float_as_event the
    # spike derivative is straight-through.
    params = {**params, "float_as_event": False}
    return weight_cotangent_p.bind(dspikes.astype(cotangent.dtype), cotangent, table, seed, **params)


def _wct_cotangent_jvp(dcotangent, spikes, cotangent, table, seed, **params):
    return weight_cotangent_p.bind(spikes, dcotangent, table, seed, **params)


ad.defjvp(weight_cotangent_p, _wct_spikes_jvp, _wct_cotangent_jvp, None, None)


def _wct_transpose(wct, spikes, cotangent, table, seed, *, rule, float_as_event, path, weight_dtype, scalar):
    fixed = ad.is_undefined_primal(table) or ad.is_undefined_primal(seed)
    if fixed or (ad.is_undefined_primal(spikes) and ad.is_undefined_primal(cotangent)):
        raise NotImplementedError("the procedural weight cotangent is linear in the spikes or the cotangent, not both")
    if ad.is_undefined_primal(spikes):
        # Only the spikes' tangent map (float values, float_as_event off) is transposed here.
        if type(wct) is ad.Zero:
            return ad.Zero(spikes.aval), None, None, None
        out = spikes_cotangent_p.bind(jnp.asarray(cotangent), wct, table, seed, rule=rule, path=path)
        return out.astype(spikes.aval.dtype), None, None, None
    if type(wct) is ad.Zero:
        return None, ad.Zero(cotangent.aval), None, None
    out = procedural_matmat_p.bind(
        jnp.asarray(spikes), wct, table, seed, rule=rule, float_as_event=float_as_event, path=path
    )
    return None, out.astype(cotangent.aval.dtype), None, None


ad.primitive_transposes[weight_cotangent_p] = _wct_transpose


def _sct_impl(cotangent, weight, table, seed, *, rule, path, platform=None):
    return _spikes_cotangent(cotangent, weight, table, seed, rule)


def _sct_abstract(cotangent, weight, table, seed, *, rule, path):
    return ShapedArray((cotangent.shape[0], rule.n_pre), cotangent.dtype)


spikes_cotangent_p = make_primitive("eventlib_procedural_spikes_cotangent", _sct_impl, _sct_abstract)


def _sct_cotangent_jvp(dcotangent, cotangent, weight, table, seed, **params):
    return spikes_cotangent_p.bind(dcotangent, weight, table, seed, **params)


def _sct_weight_jvp(dweight, cotangent, weight, table, seed, **params):
    return spikes_cotangent_p.bind(cotangent, dweight, table, seed, **params)


ad.defjvp(spikes_cotangent_p, _sct_cotangent_jvp, _sct_weight_jvp, None, None)


def _sct_transpose(ct, cotangent, weight, table, seed, *, rule, path):
    fixed = ad.is_undefined_primal(table) or ad.is_undefined_primal(seed)
    if fixed or (ad.is_undefined_primal(cotangent) and ad.is_undefined_primal(weight)):
        raise NotImplementedError("the procedural spikes cotangent is linear in the cotangent or the weight, not both")
    if ad.is_undefined_primal(cotangent):
        if type(ct) is ad.Zero:
            return ad.Zero(cotangent.aval), None, None, None
        out = procedural_matmat_p.bind(ct, jnp.asarray(weight), table, seed, rule=rule, float_as_event=False, path=path)
        return out.astype(cotangent.aval.dtype), None, None, None
    if type(ct) is ad.Zero:
        return None, ad.Zero(weight.aval), None, None
    scalar = len(weight.aval.shape) == 0
    out = weight_cotangent_p.bind(
        ct,
        jnp.asarray(cotangent),
        table,
        seed,
        rule=rule,
        float_as_event=False,
        path=path,
        weight_dtype=weight.aval.dtype,
        scalar=scalar,
    )
    return None, out, None, None


ad.primitive_transposes[spikes_cotangent_p] = _sct_transpose


def _transpose(cotangent, spikes, weight, table, seed, *, rule, float_as_event, path):
    both = ad.is_undefined_primal(spikes) and ad.is_undefined_primal(weight)
    if ad.is_undefined_primal(table) or ad.is_undefined_primal(seed) or both:
        raise NotImplementedError("procedural_event_matmul is linear in the spikes or the weight, not both")
    if ad.is_undefined_primal(spikes):
        # Only the spikes' tangent map (float values, float_as_event off) is transposed here.
        if type(cotangent) is ad.Zero:
            return ad.Zero(spikes.aval), None, None, None
        ct = spikes_cotangent_p.bind(cotangent, jnp.asarray(weight), table, seed, rule=rule, path=path)
        return ct.astype(spikes.aval.dtype), None, None, None
    if type(cotangent) is ad.Zero:
        return None, ad.Zero(weight.aval), None, None
    out = weight_cotangent_p.bind(
        jnp.asarray(spikes),
        cotangent,
        table,
        seed,
        rule=rule,
        float_as_event=float_as_event,
        path=path,
        weight_dtype=weight.aval.dtype,
        scalar=len(weight.aval.shape) == 0,
    )
    return None, out, None, None


ad.primitive_transposes[procedural_matmat_p] = _transpose


# -- batching ----------------------------------------------------------------


def _batch_others(args, dims, **params):
    """A batch of per-row weights: the product for each, in turn; the rule is
    static, so a batch of tables or seeds is refused."""
    if dims[2] is not None or dims[3] is not None:
        raise NotImplementedError(
            "vmap over the threshold table or the seed is not supported; build one layer per matrix"
        )
    return map_batched(procedural_matmat_p, args, dims, **params)


batching.primitive_batchers[procedural_matmat_p] = spikes_batching(procedural_matmat_p, _batch_others)
batching.primitive_batchers[weight_cotangent_p] = functools.partial(map_batched, weight_cotangent_p)
batching.primitive_batchers[spikes_cotangent_p] = functools.partial(map_batched, spikes_cotangent_p)


# -- the public operator -----------------------------------------------------


def procedural_event_matmul(
    spikes, weight, rule: Rule, table, *, seed=None, float_as_event: bool = False, path: str = "auto"
):
    """Event-driven ``spikes @ M`` with ``M`` regenerated from ``rule``.

    Args:
      spikes: bool, integer or float array ``(..., n_pre)``.
      weight: float scalar (every synapse), or ``(n_pre,)``: one weight for
        all synapses of each presynaptic row.
      rule, table: from :func:`make_rule` (the table is uint32, empty unless
        the rule is a probability).
      seed: the connectivity seed, an int in ``[0, 2**32)`` or a uint32
        scalar array (which may be traced: a compiled function then uses
        the seed it is called with); default ``rule.seed``. A layer passes
        the seed held in its state, so a restored seed takes effect.
      float_as_event: count every nonzero input as 1.
      path: ``'auto'``, ``'event'``, ``'kernel'`` or ``'dense'`` (every row
        regenerated once per call; see :mod:`eventlib.ops.paths`).

    Returns:
      ``(..., n_post)`` array equal to ``spikes @ M`` to float32 rounding
      (the kernel adds with float atomics on a GPU; half-precision weights
      are summed in float32, then rounded).
    """
    spikes, weight, table = jnp.asarray(spikes), jnp.asarray(weight), jnp.asarray(table)
    _checks.spike_dtype(spikes.dtype)
    _checks.weight_dtype(weight.dtype, "weight")
    _checks.spikes_shape(spikes.shape, rule.n_pre)
    if weight.ndim != 0 and weight.shape != (rule.n_pre,):
        raise ValueError(
            f"weight must be a scalar or have shape (n_pre,) = ({rule.n_pre},) for procedural connectivity "
            f"(per-synapse weights would have to be stored), got shape {weight.shape}"
        )
    if table.dtype != jnp.uint32 or table.ndim != 1:
        raise TypeError(f"table must be a 1-D uint32 array from make_rule, got {table.dtype} {table.shape}")
    seed = _seed_operand(rule.seed if seed is None else seed)
    lead = spikes.shape[:-1]
    batch = int(np.prod(lead, dtype=np.int64))
    check_flat_size(batch, rule.n_pre)
    if rule.n_pre == 0 or rule.n_post == 0:  # an empty population: no rows to regenerate, all zeros
        return jnp.zeros((*lead, rule.n_post), _checks.out_dtype(spikes.dtype, weight.dtype))
    out = procedural_matmat_p.bind(
        spikes.reshape(batch, rule.n_pre),
        weight,
        table,
        seed,
        rule=rule,
        float_as_event=bool(float_as_event),
        path=paths.bind_path(path),
    )
    return out.reshape(*lead, rule.n_post)


def _seed_operand(seed):
    """The seed as a uint32 scalar array (a Python int is range-checked)."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if not 0 <= int(seed) < 2**32:
            raise ValueError(f"seed must lie in [0, 2**32), got {seed}")
        return jnp.asarray(np.uint32(seed))
    seed = jnp.asarray(seed)
    if seed.shape != () or seed.dtype != jnp.uint32:
        raise TypeError(f"seed must be an int or a uint32 scalar array, got {seed.dtype} {seed.shape}")
    return seed
