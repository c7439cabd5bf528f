"""Event-driven product with a dense weight: ``spikes @ weight``.

- :func:`event_matmul`: the operator (a JAX primitive with event-driven
  gradients): a portable pure-JAX path, GPU kernels in Pallas, and the
  dense product, chosen per platform (see :mod:`eventlib.ops.paths`).
- :func:`event_matmul_reference`: the plain ``jnp`` product it must equal.

Cost model: a dense product reads all ``n_pre x n_post`` weights; the event
path reads only the rows of the inputs active in any batch row (``k_union x
n_post``), plus one pass over the spikes to find them.

Sections, in order: the dense reference, the portable event-driven path, the
GPU kernels, the primitive that chooses between them, its derivatives, its
batching, the public operator.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.core import ShapedArray
from jax.interpreters import ad, batching

from .. import _checks
from . import paths
from ._compact import active_indices, chunked_loop, compact_active, count_active, pallas_call
from ._primitive import HIGHEST, make_primitive, map_batched, spikes_batching

__all__ = ["event_matmul", "event_matmul_reference", "spike_values"]


# -- dense reference -----------------------------------------------------------


def spike_values(spikes, dtype, float_as_event: bool):
    """What each input contributes: its value, or 1 where it is nonzero when
    ``float_as_event`` (and always for bool spikes).

    Args:
      spikes: input ``(..., n_pre)``.
      dtype: the float dtype of the result.
      float_as_event: count every nonzero input as one.
    """
    if spikes.dtype == jnp.bool_ or float_as_event:
        return spikes.astype(jnp.bool_).astype(dtype)
    return spikes.astype(dtype)


def event_matmul_reference(spikes, weight, *, float_as_event: bool = False):
    """The dense product the operator must equal (float32, ``HIGHEST``).

    Args:
      spikes, weight, float_as_event: as for :func:`event_matmul`.
    """
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    values = spike_values(spikes, dtype, float_as_event)
    return jnp.matmul(values, weight.astype(dtype), precision=HIGHEST)


# -- portable event-driven path ---------------------------------------------


# A single vector reads its active rows one by one with contiguous dynamic
# slices (a gather of rows is about 2x slower on CPU), _UNROLL rows per loop step.
# A batch gathers _CHUNK rows at a time and multiplies them by the (batch,
# _CHUNK) block of values, sharing every row read across the batch.
_UNROLL = 8
_CHUNK = 64


def _use_event(count, n_pre: int, batch: int):
    # A batch pays for the chunked matmuls; XLA's single dense matmul is more
    # efficient per element, so switch to it earlier.
    return count * (2 if batch == 1 else 4) <= n_pre


def _rows_one_by_one(idx, count, values, weight):
    """``values[0] @ weight`` over the rows ``idx[:count]`` (a vector)."""
    n_pre = weight.shape[0]

    def step(j, acc):
        for u in range(_UNROLL):
            i = idx[j * _UNROLL + u]
            inside = i < n_pre  # the last step's padding
            i = jnp.minimum(i, n_pre - 1)
            row = lax.dynamic_index_in_dim(weight, i, keepdims=False).astype(acc.dtype)
            acc = acc + jnp.where(inside, values[0, i] * row, jnp.zeros((), acc.dtype))
        return acc

    n_steps = (count + _UNROLL - 1) // _UNROLL
    acc = lax.fori_loop(0, n_steps, step, jnp.zeros((weight.shape[1],), values.dtype))
    return acc[None]


def _rows_in_chunks(idx, count, values, weight, chunk: int = _CHUNK):
    """``values @ weight`` over the rows ``idx[:count]`` (a batch; on a GPU
    also a vector), ``chunk`` rows per loop step (``idx`` padded for it)."""

    def step(start, acc):
        rows_idx = lax.dynamic_slice_in_dim(idx, start, chunk)
        # Padding indices point past the end and read zero rows.
        rows = weight.at[rows_idx].get(mode="fill", fill_value=0).astype(values.dtype)
        vals = values.at[:, rows_idx].get(mode="fill", fill_value=0)
        return acc + jnp.matmul(vals, rows, precision=HIGHEST)

    return chunked_loop(count, chunk, step, jnp.zeros((values.shape[0], weight.shape[1]), values.dtype))


# -- GPU kernels (Pallas, lowered through Triton) ------------------------------
#
# Both kernels read only the active rows of the weight, each once, in
# contiguous column slices, and sum in a fixed order: the result is the same
# on every run (no float atomics anywhere).
#
# Vector input: program (c, s) owns the output columns [c * N, (c + 1) * N)
# and every S-th active row from s on; it adds its rows' slices in registers
# and writes one partial row; XLA sums the S partial rows. S > 1 gives the
# GPU enough independent programs when there are few column blocks.
_VEC_BLOCK_N = 1024
_VEC_SPLIT = 16
_VEC_UNROLL = 4  # rows loaded before they are added: more loads in flight
_VEC_STAGES = 1
# Batch: program (c, b) owns a (BB, N) output tile and multiplies the (BB, K)
# values of K active rows by those rows' (K, N) weight tile, K rows at a time.
_MAT_BLOCK_N = 64
_MAT_BLOCK_K = 32
_MAT_MAX_BLOCK_B = 64


def _compensated_add(sums, term):
    """Kahan summation: ``(total, lost low-order bits)`` plus ``term``.

    A kernel adds up to tens of thousands of rows one after another into one
    float32 accumulator; plain addition would lose accuracy as that count
    grows (about 2e-6 relative at 50000 rows), compensated addition keeps it
    at a few float32 roundings whatever the count. The extra arithmetic is
    free in these memory-bound loops.
    """
    total, lost = sums
    term = term - lost
    new_total = total + term
    return new_total, (new_total - total) - term


def _event_rows_kernel(count_ref, idx_ref, val_ref, w_ref, out_ref, *, block_n, split, unroll):
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plgpu

    c, s = pl.program_id(0), pl.program_id(1)
    n_post = w_ref.shape[1]
    count = count_ref[0]
    col_ok = c * block_n + jnp.arange(block_n) < n_post
    n_mine = jnp.maximum(count - s + split - 1, 0) // split

    def step(t, sums):
        rows = []
        for u in range(unroll):
            j = s + (t * unroll + u) * split
            ok = j < count  # idx and values are padded: j is always in bounds
            row = plgpu.load(w_ref.at[idx_ref[j], pl.ds(c * block_n, block_n)], mask=col_ok & ok, other=0.0)
            rows.append(val_ref[j] * row.astype(out_ref.dtype))
        for term in rows:
            sums = _compensated_add(sums, term)
        return sums

    zeros = jnp.zeros((block_n,), out_ref.dtype)
    acc, _ = lax.fori_loop(0, (n_mine + unroll - 1) // unroll, step, (zeros, zeros))
    out_ref[s, pl.ds(c * block_n, block_n)] = acc  # the output is padded to whole blocks


def _event_block_kernel(count_ref, idx_ref, val_ref, w_ref, out_ref, *, block_n, block_k, block_b):
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plgpu

    c, b = pl.program_id(0), pl.program_id(1)
    n_post = w_ref.shape[1]
    count = count_ref[0]
    cols = c * block_n + jnp.arange(block_n)
    col_ok = cols < n_post

    def step(t, sums):
        j0 = t * block_k
        row_ok = j0 + jnp.arange(block_k) < count
        rows = idx_ref[pl.ds(j0, block_k)]
        # A gather of K row slices (row indices from the compacted list).
        w = plgpu.load(w_ref.at[rows[:, None], cols[None, :]], mask=row_ok[:, None] & col_ok[None, :], other=0.0)
        v = val_ref[pl.ds(b * block_b, block_b), pl.ds(j0, block_k)]
        return _compensated_add(sums, jnp.dot(v, w.astype(v.dtype), precision=HIGHEST))

    n_steps = (count + block_k - 1) // block_k
    zeros = jnp.zeros((block_b, block_n), out_ref.dtype)
    acc, _ = lax.fori_loop(0, n_steps, step, (zeros, zeros))
    out_ref[pl.ds(b * block_b, block_b), pl.ds(c * block_n, block_n)] = acc  # padded to whole blocks


def _event_matmat_kernel(values, weight, platform, adaptive: bool):
    """``values @ weight`` reading only the rows active in any batch row, by
    the kernels (the dense product instead when most rows are active)."""
    from jax.experimental import pallas as pl

    batch, n_pre = values.shape
    n_post = weight.shape[1]
    if batch == 1:
        idx, vals, count = compact_active(values, _VEC_UNROLL * _VEC_SPLIT, platform)
        split = max(1, min(_VEC_SPLIT, n_pre))
        block_n = min(_VEC_BLOCK_N, pl.next_power_of_2(n_post))
        n_blocks = pl.cdiv(n_post, block_n)
        # Every program writes its whole block of an output padded to whole
        # blocks, so no output element is left unwritten.
        partial = pallas_call(
            functools.partial(_event_rows_kernel, block_n=block_n, split=split, unroll=_VEC_UNROLL),
            platform=platform,
            num_stages=_VEC_STAGES,
            grid=(n_blocks, split),
            out_shape=jax.ShapeDtypeStruct((split, n_blocks * block_n), values.dtype),
        )(count[None], idx, vals, weight)
        return jnp.sum(partial[:, :n_post], axis=0, keepdims=True)

    def event(values, weight):
        idx, _, count = compact_active(values, _MAT_BLOCK_K, platform)
        block_b = min(_MAT_MAX_BLOCK_B, max(16, pl.next_power_of_2(batch)))
        n_bblocks = pl.cdiv(batch, block_b)
        vals = jnp.where(jnp.arange(idx.shape[0]) < count, values[:, idx], 0)
        vals = jnp.pad(vals, ((0, n_bblocks * block_b - batch), (0, 0)))
        block_n = min(_MAT_BLOCK_N, max(16, pl.next_power_of_2(n_post)))
        n_blocks = pl.cdiv(n_post, block_n)
        out = pallas_call(
            functools.partial(_event_block_kernel, block_n=block_n, block_k=_MAT_BLOCK_K, block_b=block_b),
            platform=platform,
            grid=(n_blocks, n_bblocks),
            out_shape=jax.ShapeDtypeStruct((n_bblocks * block_b, n_blocks * block_n), values.dtype),
        )(count[None], idx, vals, weight)
        return out[:batch, :n_post]

    if not adaptive:
        return event(values, weight)
    # The batched kernel multiplies with CUDA-core float32 FMAs, like the
    # dense product at HIGHEST precision, and also gathers its row tiles, so
    # it breaks even with dense well before every row is active, and earlier
    # for small n (fewer column blocks keep fewer multiprocessors busy); a
    # quarter keeps it within a few percent of dense at n = 10000 and 50000
    # (benchmarks/KERNEL_NOTES.md). The choice counts the rows with one XLA
    # reduction, so the dense product does not wait for the compaction,
    # which at small n costs a sizeable part of the product.
    union = jnp.sum(jnp.any(values != 0, axis=0).astype(jnp.int32))
    return lax.cond(union * 4 <= n_pre, event, _dense_product, values, weight)


# -- the primitive: the path chosen per platform (eventlib.ops.paths) -------------


def _dense_product(values, weight):
    """``values @ weight`` summed in ``values.dtype`` (the accumulation type)
    from the weight's own type, as XLA's dot sums half-precision inputs."""
    return jnp.matmul(values.astype(weight.dtype), weight, precision=HIGHEST, preferred_element_type=values.dtype)


def _event_matmat_impl(spikes, weight, *, float_as_event, path, platform):
    """``(B, n_pre) @ (n_pre, n_post)`` reading only the active rows."""
    batch, n_pre = spikes.shape
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    # Every path sums in float32 for half-precision weights: each weight row
    # is widened as it is read, the result rounded once to ``dtype``.
    values = spike_values(spikes, _checks.accumulation_dtype(dtype), float_as_event)
    weight = weight.astype(dtype)
    choice = paths.resolve(path, platform, "dense", sizes=(batch, n_pre, weight.shape[1]))
    dense = _dense_product

    if choice.run == "dense" or batch == 0 or weight.shape[1] == 0 or n_pre == 0:
        return dense(values, weight).astype(dtype)
    if choice.run == "kernel":
        return _event_matmat_kernel(values, weight, platform, choice.may_switch).astype(dtype)

    # Rows active in any batch row: each is read once and shared by the
    # whole batch (k_union x n_post weights instead of n_pre x n_post).
    active = jnp.any(spikes.astype(jnp.bool_), axis=0)
    count = count_active(active)

    def event(values, weight):
        if choice.vectorised:
            # A GPU: a few large chunks (paths.gpu_chunk_rows), never a step per row.
            chunk = paths.gpu_chunk_rows(n_pre)
            return _rows_in_chunks(active_indices(active, chunk), count, values, weight, chunk)
        if batch == 1:
            return _rows_one_by_one(active_indices(active, _UNROLL), count, values, weight)
        return _rows_in_chunks(active_indices(active, _CHUNK), count, values, weight)

    if not choice.may_switch:
        return event(values, weight).astype(dtype)
    use_event = _use_event(count, n_pre, 64 if choice.vectorised else batch)
    return lax.cond(use_event, event, dense, values, weight).astype(dtype)


def _abstract(spikes, weight, *, float_as_event, path):
    return ShapedArray((spikes.shape[0], weight.shape[1]), _checks.out_dtype(spikes.dtype, weight.dtype))


event_matmat_p = make_primitive("eventlib_event_matmat", _event_matmat_impl, _abstract)


# -- derivatives -------------------------------------------------------------
# The product is linear in the weight; in float spikes its derivative is that
# of the dense product, ``ds @ W`` -- also where a spike is exactly zero, which
# surrogate-gradient training needs. With float_as_event the forward ignores
# the magnitudes and the spike derivative is straight-through (brainstate's
# convention).


def _spikes_jvp(dspikes, spikes, weight, *, float_as_event, path):
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    acc = _checks.accumulation_dtype(dtype)
    return _dense_product(dspikes.astype(acc), weight.astype(dtype)).astype(dtype)


def _weight_jvp(dweight, spikes, weight, *, float_as_event, path):
    return event_matmat_p.bind(spikes, dweight, float_as_event=float_as_event, path=path)


ad.defjvp(event_matmat_p, _spikes_jvp, _weight_jvp)


def _event_outer(spikes, cotangent, *, weight_dtype, float_as_event, path, platform=None):
    """``spikes.T @ cotangent`` written only into the active rows."""
    n_pre, n_post = spikes.shape[1], cotangent.shape[1]
    batch = spikes.shape[0]
    choice = paths.resolve(path, platform, "dense", kernel=False, sizes=(batch, n_pre, n_post))
    values = spike_values(spikes, cotangent.dtype, float_as_event)
    acc = _checks.accumulation_dtype(cotangent.dtype)  # sums over the batch

    def dense(values, cotangent):
        return jnp.matmul(values.T, cotangent, precision=HIGHEST, preferred_element_type=acc)

    if choice.run == "dense" or batch == 0:
        return dense(values, cotangent).astype(weight_dtype)
    active = jnp.any(spikes.astype(jnp.bool_), axis=0)
    count = count_active(active)

    # On a GPU a few large chunks (paths.gpu_chunk_rows), never a step per row.
    chunk = paths.gpu_chunk_rows(n_pre) if choice.vectorised else _CHUNK

    def event(values, cotangent):
        idx = active_indices(active, chunk)

        def step(start, grad):
            rows_idx = lax.dynamic_slice_in_dim(idx, start, chunk)
            vals = values.at[:, rows_idx].get(mode="fill", fill_value=0)
            rows = jnp.matmul(vals.T, cotangent, precision=HIGHEST, preferred_element_type=acc)
            return grad.at[rows_idx].set(rows, mode="drop")  # each row once

        return chunked_loop(count, chunk, step, jnp.zeros((n_pre, n_post), acc))

    if not choice.may_switch:
        return event(values, cotangent).astype(weight_dtype)
    use_event = _use_event(count, n_pre, 64 if choice.vectorised else batch)
    out = lax.cond(use_event, event, dense, values, cotangent)
    return out.astype(weight_dtype)


def _outer_abstract(spikes, cotangent, *, weight_dtype, float_as_event, path):
    return ShapedArray((spikes.shape[1], cotangent.shape[1]), weight_dtype)


# The weight cotangent is a primitive of its own, linear in the cotangent:
# its transpose is the event product again (and the product's is this), so
# derivatives of any order never differentiate the run-time-length loops
# that visit the active rows.
event_outer_p = make_primitive("eventlib_event_outer", _event_outer, _outer_abstract)


def _outer_spikes_jvp(dspikes, spikes, cotangent, *, weight_dtype, **params):
    # The dense form: also exact where a spike is zero (see the comment above).
    return jnp.matmul(dspikes.astype(cotangent.dtype).T, cotangent, precision=HIGHEST).astype(weight_dtype)


def _outer_cotangent_jvp(dcotangent, spikes, cotangent, **params):
    return event_outer_p.bind(spikes, dcotangent, **params)


ad.defjvp(event_outer_p, _outer_spikes_jvp, _outer_cotangent_jvp)


def _outer_transpose(wct, spikes, cotangent, *, weight_dtype, float_as_event, path):
    if ad.is_undefined_primal(spikes):
        raise NotImplementedError("the event-driven weight cotangent is linear in the cotangent only")
    if type(wct) is ad.Zero:
        return None, ad.Zero(cotangent.aval)
    out = event_matmat_p.bind(jnp.asarray(spikes), wct, float_as_event=float_as_event, path=path)
    return None, out.astype(cotangent.aval.dtype)


ad.primitive_transposes[event_outer_p] = _outer_transpose
batching.primitive_batchers[event_outer_p] = functools.partial(map_batched, event_outer_p)


def _transpose(cotangent, spikes, weight, *, float_as_event, path):
    if ad.is_undefined_primal(spikes):
        raise NotImplementedError("event_matmul is not linear in the spikes")
    if type(cotangent) is ad.Zero:
        return None, ad.Zero(weight.aval)
    # In a transpose rule the primal spikes may be a NumPy constant.
    out = event_outer_p.bind(
        jnp.asarray(spikes), cotangent, weight_dtype=weight.aval.dtype, float_as_event=float_as_event, path=path
    )
    return None, out


ad.primitive_transposes[event_matmat_p] = _transpose


# -- batching ----------------------------------------------------------------


def _batch_weights(args, dims, *, float_as_event, path):
    """A batch of weights (rare: per-example weights): the exact dense
    product for each, not event-driven."""
    spikes, weight = args
    s_dim, w_dim = dims
    spikes = batching.bdim_at_front(spikes, s_dim, weight.shape[w_dim])
    weight = jnp.moveaxis(weight, w_dim, 0)
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    values = spike_values(spikes, dtype, float_as_event)
    acc = _checks.accumulation_dtype(dtype)
    out = jnp.einsum("vbi,vij->vbj", values, weight.astype(dtype), precision=HIGHEST, preferred_element_type=acc)
    return out.astype(dtype), 0


batching.primitive_batchers[event_matmat_p] = spikes_batching(event_matmat_p, _batch_weights)


# -- the public operator -----------------------------------------------------


def event_matmul(spikes, weight, *, float_as_event: bool = False, path: str = "auto"):
    """Event-driven ``spikes @ weight``.

    Args:
      spikes: bool, integer or float array of shape ``(..., n_pre)``; any
        number of leading batch dimensions. Float and integer values multiply
        their weight rows, as in the dense product.
      weight: float array ``(n_pre, n_post)``.
      float_as_event: count every nonzero input as 1 (brainstate's
        ``float_as_event=True``); the spike gradient is then straight-through.
      path: ``'auto'``, ``'event'``, ``'kernel'`` or ``'dense'`` (see :mod:`eventlib.ops.paths`).

    Returns:
      Array ``(..., n_post)``, equal to ``spikes @ weight`` up to float32
      rounding (bit-exactly when the weights are small dyadic rationals);
      half-precision weights are summed in float32, then rounded.
    """
    spikes, weight = jnp.asarray(spikes), jnp.asarray(weight)
    _checks.spike_dtype(spikes.dtype)
    _checks.weight_dtype(weight.dtype)
    if weight.ndim != 2:
        raise ValueError(f"weight must have shape (n_pre, n_post), got shape {weight.shape}")
    _checks.spikes_shape(spikes.shape, weight.shape[0])
    lead = spikes.shape[:-1]
    if 0 in weight.shape:  # an empty population: no rows to visit, and the product is all zeros
        return jnp.zeros((*lead, weight.shape[1]), _checks.out_dtype(spikes.dtype, weight.dtype))
    out = event_matmat_p.bind(
        spikes.reshape(int(np.prod(lead, dtype=np.int64)), weight.shape[0]),
        weight,
        float_as_event=bool(float_as_event),
        path=paths.bind_path(path),
    )
    return out.reshape(*lead, weight.shape[1])


def homogeneous_matmul(spikes, weight, n_post: int, *, float_as_event: bool = False):
    """``spikes @ full((n_pre, n_post), weight)`` for a scalar weight: every
    output is ``weight * sum(spikes)``; nothing of size n_pre x n_post exists.

    Args:
      spikes: input ``(..., n_pre)``; weight: a float scalar.
      n_post: the number of postsynaptic neurons (static).
      float_as_event: count every nonzero input as one spike, with a
        straight-through derivative.
    """
    spikes, weight = jnp.asarray(spikes), jnp.asarray(weight)
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    if float_as_event and jnp.issubdtype(spikes.dtype, jnp.floating):
        # Forward counts events; the derivative is straight-through.
        values = spikes.astype(dtype)
        values = values + jax.lax.stop_gradient(spikes.astype(jnp.bool_).astype(dtype) - values)
    else:
        values = spike_values(spikes, dtype, float_as_event)
    total = jnp.sum(values, axis=-1, keepdims=True)
    return jnp.broadcast_to(total * weight.astype(dtype), (*spikes.shape[:-1], n_post))
