"""Products with stored connectivity (CSR by presynaptic row).

- :func:`csr_event_matmul`: event-driven ``spikes @ M``; only the rows of
  active inputs are read (a primitive with event-driven gradients).
- :func:`coo_matmul`: ``x @ M`` for any float input, one pass over every
  synapse (plain JAX, differentiable as is): the dense-equivalent product.
- :func:`csr_to_dense` / :func:`sparse_matmul_reference`: the dense matrix
  and the product the operators must equal.

``M`` has ``n_synapses`` entries: synapse ``s`` of row ``i`` (positions
``indptr[i] <= s < indptr[i + 1]``) adds ``weight[s]`` (or the scalar
``weight``) to ``M[i, indices[s]]``; duplicates add up.

Cost model: the event path reads ``max_row`` (index, weight) pairs for each
active (batch row, input) pair and scatters them into the output; the
dense-equivalent path touches every synapse once per batch row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.core import ShapedArray
from jax.interpreters import ad, batching

from .. import _checks
from ._dispatch import HIGHEST, active_indices, chunked_loop, make_primitive, which_path
from .dense_event import spike_values

__all__ = ["csr_event_matmul", "coo_matmul", "csr_to_dense", "sparse_matmul_reference", "csr_pre_indices"]


def csr_pre_indices(indptr, n_synapses: int):
    """The presynaptic row of every synapse."""
    n_pre = indptr.shape[0] - 1
    return jnp.repeat(jnp.arange(n_pre, dtype=jnp.int32), jnp.diff(indptr), total_repeat_length=n_synapses)


def coo_matmul(x, weight, pre, post, n_post: int):
    """``x @ M`` for float (or any) input ``x`` of shape ``(..., n_pre)``.

    One gather and one scatter-add over all synapses per batch row;
    differentiable in ``x`` and ``weight`` by JAX's own rules.
    """
    gathered = x[..., pre]  # (..., n_synapses)
    contrib = gathered * jnp.broadcast_to(weight, gathered.shape)
    out = jnp.zeros((*x.shape[:-1], n_post), contrib.dtype)
    return out.at[..., post].add(contrib, mode="drop")


def csr_to_dense(weight, indptr, indices, n_post: int):
    n_pre = indptr.shape[0] - 1
    pre = csr_pre_indices(indptr, indices.shape[0])
    weight = jnp.broadcast_to(jnp.asarray(weight), indices.shape)
    return jnp.zeros((n_pre, n_post), weight.dtype).at[pre, indices].add(weight)


def sparse_matmul_reference(spikes, weight, indptr, indices, n_post: int, *, float_as_event: bool = False):
    """The dense product the operators must equal."""
    dense = csr_to_dense(weight, indptr, indices, n_post)
    dtype = _checks.out_dtype(spikes.dtype, dense.dtype)
    return jnp.matmul(spike_values(spikes, dtype, float_as_event), dense.astype(dtype), precision=HIGHEST)


# -- portable event-driven path ---------------------------------------------


def _chunk_pairs(max_row: int) -> int:
    # Active (batch row, input) pairs per loop step: about 8k synapse slots.
    return max(1, min(256, 8192 // max(max_row, 1)))


def _use_event(count, max_row: int, batch: int, n_synapses: int):
    # Event work: max_row slots per active pair; dense-equivalent work: every
    # synapse once per batch row.
    return count.astype(jnp.float32) * max_row <= float(batch) * float(max(n_synapses, 1))


def _synapses_of(flat, spikes_shape, values, indptr, indices, max_row, n_post):
    """The synapses of the active (batch row, input) pairs ``flat`` (indices
    into the flattened spikes; padding equals ``batch * n_pre``).

    Returns batch rows ``b (c, 1)``, input values ``v (c, 1)``, synapse
    positions ``pos (c, max_row)`` and targets ``tgt (c, max_row)``; padding
    and slots past a row's end get target ``n_post`` (out of bounds, so
    scatters drop them) and position ``n_synapses``.
    """
    batch, n_pre = spikes_shape
    n_syn = indices.shape[0]
    b, i = flat // n_pre, flat % n_pre
    v = values.reshape(-1).at[flat].get(mode="fill", fill_value=0)
    start = indptr[i]
    length = jnp.where(flat < batch * n_pre, indptr[i + 1] - start, 0)
    offset = jnp.arange(max_row, dtype=jnp.int32)
    valid = offset[None, :] < length[:, None]
    # int32 is safe: construction guarantees n_synapses + max_row < 2**31.
    pos = jnp.where(valid, start[:, None] + offset[None, :], n_syn)
    tgt = indices.at[pos].get(mode="fill", fill_value=n_post)
    return b[:, None], v[:, None], pos, tgt


def _check_flat_size(batch: int, n_pre: int, n_post: int) -> None:
    # The event path indexes the flattened spikes with int32.
    if batch * n_pre >= 2**31:
        raise ValueError(
            f"a batch of {batch} rows of {n_pre} inputs is beyond int32 indexing; split the batch into smaller calls"
        )


def _csr_event_portable(spikes, weight, indptr, indices, *, n_post, max_row, float_as_event, path):
    batch, n_pre = spikes.shape
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    values = spike_values(spikes, dtype, float_as_event)
    weight = weight.astype(dtype)
    n_syn = indices.shape[0]
    # A layer called under jit closes over its connectivity as constants; the
    # barrier stops XLA from constant-folding work on them at compile time.
    indptr, indices = lax.optimization_barrier((indptr, indices))

    def dense(values, weight):
        return coo_matmul(values, weight, csr_pre_indices(indptr, n_syn), indices, n_post)

    if path == "dense" or max_row == 0 or batch == 0:
        return dense(values, weight)
    _check_flat_size(batch, n_pre, n_post)
    mask = spikes.reshape(-1).astype(jnp.bool_)
    count = jnp.sum(mask, dtype=jnp.int32)
    chunk = _chunk_pairs(max_row)

    def event(values, weight):
        idx = active_indices(mask, chunk)

        def step(start, out):
            flat = lax.dynamic_slice_in_dim(idx, start, chunk)
            b, v, pos, tgt = _synapses_of(flat, spikes.shape, values, indptr, indices, max_row, n_post)
            w = weight if weight.ndim == 0 else weight.at[pos].get(mode="fill", fill_value=0)
            return out.at[b, tgt].add(v * w, mode="drop")

        return chunked_loop(count, chunk, step, jnp.zeros((batch, n_post), dtype))

    return lax.cond(_use_event(count, max_row, batch, n_syn), event, dense, values, weight)


def _abstract(spikes, weight, indptr, indices, *, n_post, max_row, float_as_event, path):
    return ShapedArray((spikes.shape[0], n_post), _checks.out_dtype(spikes.dtype, weight.dtype))


csr_event_matmat_p = make_primitive("eventlib_csr_event_matmat", _csr_event_portable, _abstract)


# -- derivatives -------------------------------------------------------------


def _spikes_jvp(dspikes, spikes, weight, indptr, indices, *, n_post, **params):
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    pre = csr_pre_indices(indptr, indices.shape[0])
    return coo_matmul(dspikes.astype(dtype), weight.astype(dtype), pre, indices, n_post)


def _weight_jvp(dweight, spikes, weight, indptr, indices, **params):
    return csr_event_matmat_p.bind(spikes, dweight, indptr, indices, **params)


ad.defjvp(csr_event_matmat_p, _spikes_jvp, _weight_jvp, None, None)


def _weight_cotangent(cotangent, spikes, indptr, indices, weight_aval, *, n_post, max_row, float_as_event, path):
    """d(out)/d(weight) applied to ``cotangent``: for synapse s of row i,
    ``sum_b values[b, i] * cotangent[b, indices[s]]`` -- visiting only the
    active rows; a scalar weight gets the sum over all of them."""
    batch, n_pre = spikes.shape
    n_syn = indices.shape[0]
    values = spike_values(spikes, cotangent.dtype, float_as_event)
    scalar = len(weight_aval.shape) == 0

    def dense(values, cotangent):
        pre = csr_pre_indices(indptr, n_syn)
        per_syn = jnp.sum(values[:, pre] * cotangent[:, indices], axis=0)
        return jnp.sum(per_syn) if scalar else per_syn

    if path == "dense" or max_row == 0 or batch == 0:
        return dense(values, cotangent).astype(weight_aval.dtype)
    mask = spikes.reshape(-1).astype(jnp.bool_)
    count = jnp.sum(mask, dtype=jnp.int32)
    chunk = _chunk_pairs(max_row)

    def event(values, cotangent):
        idx = active_indices(mask, chunk)
        ct_padded = jnp.pad(cotangent, ((0, 1), (0, 1)))  # padding slots read zeros

        def step(start, grad):
            flat = lax.dynamic_slice_in_dim(idx, start, chunk)
            b, v, pos, tgt = _synapses_of(flat, spikes.shape, values, indptr, indices, max_row, n_post)
            contrib = v * ct_padded[jnp.minimum(b, batch), tgt]
            if scalar:
                return grad + jnp.sum(contrib)
            return grad.at[pos].add(contrib, mode="drop")

        init = jnp.zeros((), cotangent.dtype) if scalar else jnp.zeros((n_syn,), cotangent.dtype)
        return chunked_loop(count, chunk, step, init)

    out = lax.cond(_use_event(count, max_row, batch, n_syn), event, dense, values, cotangent)
    return out.astype(weight_aval.dtype)


def _transpose(cotangent, spikes, weight, indptr, indices, **params):
    if ad.is_undefined_primal(spikes) or ad.is_undefined_primal(indptr) or ad.is_undefined_primal(indices):
        raise NotImplementedError("csr_event_matmul is linear in the weight only")
    if type(cotangent) is ad.Zero:
        return None, ad.Zero(weight.aval), None, None
    return None, _weight_cotangent(cotangent, spikes, indptr, indices, weight.aval, **params), None, None


ad.primitive_transposes[csr_event_matmat_p] = _transpose


def _batch(args, dims, **params):
    spikes, weight, indptr, indices = args
    s_dim, w_dim, p_dim, i_dim = dims
    if p_dim is not None or i_dim is not None:
        raise NotImplementedError("vmap over the connectivity itself is not supported; build one layer per matrix")
    if w_dim is not None:
        # A batch of weight vectors: the event product for each, in turn.
        n_map = weight.shape[w_dim]
        spikes = batching.bdim_at_front(spikes, s_dim, n_map)
        weight = jnp.moveaxis(weight, w_dim, 0)
        out = lax.map(lambda sw: csr_event_matmat_p.bind(sw[0], sw[1], indptr, indices, **params), (spikes, weight))
        return out, 0
    spikes = jnp.moveaxis(spikes, s_dim, 0)
    n_map, batch, n_pre = spikes.shape
    out = csr_event_matmat_p.bind(spikes.reshape(n_map * batch, n_pre), weight, indptr, indices, **params)
    return out.reshape(n_map, batch, -1), 0


batching.primitive_batchers[csr_event_matmat_p] = _batch


# -- the public operator -----------------------------------------------------


def csr_event_matmul(
    spikes,
    weight,
    indptr,
    indices,
    n_post: int,
    *,
    max_row: int | None = None,
    float_as_event: bool = False,
    path: str = "auto",
):
    """Event-driven ``spikes @ M`` for connectivity stored by presynaptic row.

    Args:
      spikes: bool, integer or float array ``(..., n_pre)``.
      weight: float scalar (every synapse) or array ``(n_synapses,)`` in
        storage order.
      indptr: int32 ``(n_pre + 1,)`` row offsets; indices: int32
        ``(n_synapses,)`` postsynaptic targets.
      n_post: number of postsynaptic neurons.
      max_row: the longest row (static). Computed from ``indptr`` when not
        given, which needs a concrete ``indptr`` (not a tracer).
      float_as_event: count every nonzero input as 1.
      path: ``'auto'``, ``'event'`` or ``'dense'``.

    Returns:
      ``(..., n_post)`` array equal to ``spikes @ M`` to float32 rounding.
    """
    if max_row is None:
        if isinstance(indptr, jax.core.Tracer):
            raise ValueError("max_row must be given when indptr is traced (for example a jit argument)")
        host_indptr = np.asarray(indptr)
        max_row = int(np.max(np.diff(host_indptr))) if host_indptr.shape[0] > 1 else 0
    spikes, weight = jnp.asarray(spikes), jnp.asarray(weight)
    indptr, indices = jnp.asarray(indptr), jnp.asarray(indices)
    _checks.spike_dtype(spikes.dtype)
    _checks.weight_dtype(weight.dtype, "weight")
    n_pre = indptr.shape[0] - 1
    _checks.spikes_shape(spikes.shape, n_pre)
    if weight.ndim != 0 and weight.shape != indices.shape:
        raise ValueError(
            f"weight must be a scalar or have shape (n_synapses,) = {indices.shape}, got shape {weight.shape}"
        )
    lead = spikes.shape[:-1]
    batch = int(np.prod(lead, dtype=np.int64))
    _check_flat_size(batch, n_pre, n_post)
    out = csr_event_matmat_p.bind(
        spikes.reshape(batch, n_pre),
        weight,
        indptr.astype(jnp.int32),
        indices.astype(jnp.int32),
        n_post=int(n_post),
        max_row=int(max_row),
        float_as_event=bool(float_as_event),
        path=which_path(path),
    )
    return out.reshape(*lead, n_post)
