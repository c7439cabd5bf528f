"""Delayed products: a spike at step ``t`` reaches its targets at ``t + d``.

- :func:`csr_event_matmul_delayed`: stored connectivity (CSR by presynaptic
  row) with one delay per synapse, or one delay for every synapse.
- :func:`delay_ring_step`: the ring buffer's step for one delay shared by
  every synapse, around any product (a dense weight, procedural rows).

The pending inputs live in a ring buffer ``(..., n_slots, n_post)``, with
``n_slots = max_delay + 1``: slot ``k`` holds what arrives at the steps
``t`` with ``t % n_slots == k``. A step at ``t`` adds each active synapse's
contribution into slot ``(t + d_s) % n_slots``, then returns slot
``t % n_slots`` and zeroes it. The delayed product is the CSR product with a
two-dimensional target, ``slot * n_post + indices[s]``: the slot of a
synapse is computed from its delay only for the synapses of active rows,
inside the loop over them (the portable path and the kernel alike), so a
step costs the spikes times their fan-out plus one slot's read and clear --
never the delays times the neurons.

Paths are those of :func:`~eventlib.ops.csr_event_matmul` (``'event'``,
``'kernel'``, ``'dense'``: one pass over every synapse); the weight
cotangent visits the active rows only, the spike tangent every synapse, as
in the undelayed product. The buffer passes through ``jax.grad`` (gradients
flow back through time under ``lax.scan``), ``jax.vmap`` and ``jax.jit``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.core import ShapedArray
from jax.interpreters import ad, batching

from .. import _checks
from . import paths
from ._primitive import check_flat_size, make_primitive, map_batched
from .dense_event import spike_values
from .sparse_event import (
    _csr_kernel,
    _fold_active_pairs,
    _launch_csr_kernel,
    _rows_fit,
    _window,
    csr_event_matmul,
    csr_pre_indices,
)

__all__ = ["csr_event_matmul_delayed", "delay_ring_step", "delayed_matmul_reference"]


# -- the ring buffer -----------------------------------------------------------


def _read_and_clear(buffer, step):
    """``(buffer[..., step % n_slots, :], buffer with that slot zeroed)``:
    one slot read and one slot written."""
    n_slots = buffer.shape[-2]
    slot = jnp.asarray(step, jnp.int32) % n_slots
    axis = buffer.ndim - 2
    out = lax.dynamic_index_in_dim(buffer, slot, axis, keepdims=False)
    cleared = lax.dynamic_update_index_in_dim(buffer, jnp.zeros_like(out), slot, axis)
    return out, cleared


def delay_ring_step(buffer, step, increment, delay: int):
    """One step of a ring buffer whose inputs all arrive ``delay`` steps late.

    ``increment`` (this step's product, for example ``event_matmul(spikes,
    w)``) is added into slot ``(step + delay) % n_slots``; slot
    ``step % n_slots`` is then returned and zeroed. Cost: two slots of
    ``n_post`` values per batch row, whatever the delay.

    Args:
      buffer: ``(..., n_slots, n_post)`` float array, ``n_slots > delay``.
      step: int scalar (may be traced): the current step.
      increment: ``(..., n_post)``, the buffer's dtype.
      delay: int in ``[0, n_slots)`` (static), in steps.

    Returns:
      ``(out, new_buffer)``: ``out`` of shape ``(..., n_post)`` is what
      arrives at ``step``; ``new_buffer`` has the shape of ``buffer``.
    """
    buffer = jnp.asarray(buffer)
    _check_buffer_rank(buffer, increment.shape[:-1], increment.shape[-1])
    n_slots = buffer.shape[-2]
    delay = _check_static_delay(delay, n_slots)
    slot = (jnp.asarray(step, jnp.int32) + delay) % n_slots
    axis = buffer.ndim - 2
    current = lax.dynamic_index_in_dim(buffer, slot, axis, keepdims=False)
    buffer = lax.dynamic_update_index_in_dim(buffer, current + increment.astype(buffer.dtype), slot, axis)
    return _read_and_clear(buffer, step)


def _check_static_delay(delay, n_slots: int) -> int:
    if isinstance(delay, (bool, np.bool_)) or not isinstance(delay, (int, np.integer)):
        raise TypeError(f"delay must be an int number of steps, got {delay!r}")
    if not 0 <= int(delay) < n_slots:
        raise ValueError(
            f"delay must lie in [0, n_slots) = [0, {n_slots}) (n_slots = buffer.shape[-2] = max_delay + 1), got {delay}"
        )
    return int(delay)


def _check_buffer_rank(buffer, lead, n_post: int) -> None:
    want = (*lead, buffer.shape[-2] if buffer.ndim >= 2 else "n_slots", n_post)
    if buffer.ndim != len(lead) + 2 or tuple(buffer.shape[: len(lead)]) != tuple(lead) or buffer.shape[-1] != n_post:
        raise ValueError(
            f"buffer must have shape (*batch, n_slots, n_post) = {want} for spikes of batch shape {tuple(lead)}, "
            f"got {tuple(buffer.shape)}"
        )
    if buffer.shape[-2] < 1:
        raise ValueError("buffer must have at least one slot (n_slots = max_delay + 1 >= 1)")


# -- the dense reference -------------------------------------------------------


def delayed_matmul_reference(spikes, weight, indptr, indices, delays, n_post: int, *, float_as_event: bool = False):
    """The outputs of every step of a delayed product, from one dense matrix
    per delay: ``out[t] = sum_d spikes[t - d] @ W_d`` (float64 on the host).

    Args:
      spikes: ``(n_steps, ..., n_pre)``: the inputs of consecutive steps,
        starting from an empty buffer.
      weight: a scalar or ``(n_synapses,)``.
      indptr, indices: the CSR connectivity (``(n_pre + 1,)``, ``(n_synapses,)``).
      delays: an int scalar or ``(n_synapses,)``, in steps.
      n_post: the number of postsynaptic neurons.
      float_as_event: count every nonzero input as 1.

    Returns:
      float64 NumPy array ``(n_steps, ..., n_post)``.
    """
    spikes = np.asarray(spikes)
    x = (spikes != 0).astype(np.float64) if float_as_event else spikes.astype(np.float64)
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    n_pre = indptr.shape[0] - 1
    pre = np.repeat(np.arange(n_pre), np.diff(indptr))
    weight = np.broadcast_to(np.asarray(weight, np.float64), indices.shape)
    delays = np.broadcast_to(np.asarray(delays, np.int64), indices.shape)
    out = np.zeros((*x.shape[:-1], n_post))
    for d in np.unique(delays):
        dense = np.zeros((n_pre, n_post))
        sel = delays == d
        np.add.at(dense, (pre[sel], indices[sel]), weight[sel])
        if d < x.shape[0]:
            out[d:] += x[: x.shape[0] - d] @ dense
    return out


# -- the primitive: buffer + every active synapse's weight, at its slot -----------


def _targets(step, delays, indices, n_slots: int, n_post: int):
    """The flat target ``slot * n_post + post`` of synapses (any shape)."""
    return ((step + delays) % n_slots) * n_post + indices


def _add_every_synapse(buf, values, weight, indptr, indices, delays, step, n_slots: int, n_post: int):
    """``buf`` (batch, n_slots * n_post) plus every synapse's contribution:
    one pass over the synapses (the dense path, and rows longer than the
    window). Linear in ``buf`` and ``values``."""
    pre = csr_pre_indices(indptr, indices.shape[0])
    tgt = _targets(step, delays, indices, n_slots, n_post)
    contrib = values[:, pre] * jnp.broadcast_to(weight, indices.shape).astype(values.dtype)[None, :]
    return buf.at[:, tgt].add(contrib.astype(buf.dtype), mode="drop")


def _delayed_impl(
    buffer, spikes, weight, indptr, indices, delays, step, *, n_slots, max_row, float_as_event, path, platform
):
    batch, n_pre = spikes.shape
    width = buffer.shape[1]
    n_post = width // n_slots
    dtype = buffer.dtype
    acc = _checks.accumulation_dtype(dtype)
    values = spike_values(spikes, acc, float_as_event)
    weight = weight.astype(dtype)
    n_syn = indices.shape[0]
    choice = paths.resolve(path, platform, "csr")
    indptr, indices, delays = lax.optimization_barrier((indptr, indices, delays))
    if n_syn == 0 or batch == 0 or n_post == 0:
        return buffer
    step = jnp.asarray(step, jnp.int32) % n_slots
    buf = buffer.astype(acc)  # a no-op for float32 and wider

    if choice.run == "dense":
        return _add_every_synapse(buf, values, weight, indptr, indices, delays, step, n_slots, n_post).astype(dtype)
    max_row = _window(max_row, n_syn)
    check_flat_size(batch, n_pre)
    if choice.run == "kernel":
        out = _delayed_kernel_call(buf, values, weight, indptr, indices, delays, step, n_slots, max_row, platform)
        return out.astype(dtype)

    def add_row(b, value, first, inside, tgt, out):
        # The slot is read for this active row's window only.
        d = lax.dynamic_slice_in_dim(delays, first, max_row)
        dest = jnp.where(inside, _targets(step, d, tgt, n_slots, n_post), width)
        w = (weight if weight.ndim == 0 else lax.dynamic_slice_in_dim(weight, first, max_row)).astype(acc)
        contrib = jnp.broadcast_to(value * w, dest.shape)
        if batch == 1:
            return out.at[dest].add(contrib, mode="drop")
        return out.at[b, dest].add(contrib, mode="drop")

    def event():
        init = buf.reshape(width) if batch == 1 else buf
        out = _fold_active_pairs(spikes, values, indptr, indices, max_row, n_post, add_row, init)
        return out.reshape(batch, width)

    def every_synapse():
        return _add_every_synapse(buf, values, weight, indptr, indices, delays, step, n_slots, n_post)

    return lax.cond(_rows_fit(indptr, max_row), event, every_synapse).astype(dtype)


def _delayed_kernel(val_ref, indptr_ref, indices_ref, w_ref, delays_ref, step_ref, buf_ref, out_ref, *, n_slots, **kw):
    """The stored-connectivity kernel (``sparse_event._csr_kernel``) adding
    into the ring buffer, each synapse at its delay's slot."""
    _csr_kernel(
        val_ref, indptr_ref, indices_ref, w_ref, buf_ref, out_ref, slots=(delays_ref, step_ref[0], n_slots), **kw
    )


def _delayed_kernel_call(buf, values, weight, indptr, indices, delays, step, n_slots, max_row, platform):
    batch, width = values.shape[0], buf.shape[1]
    check_flat_size(batch, width, "outputs", extra=1)
    flat = buf.reshape(-1)
    if platform != "cuda":  # the interpreter's spare element for masked-out slots
        flat = jnp.concatenate([flat, jnp.zeros((1,), flat.dtype)])
    extra = (delays, step.reshape(1))
    out = _launch_csr_kernel(
        _delayed_kernel, values, weight, indptr, indices, extra, flat, width, max_row, platform, n_slots=n_slots
    )
    return (out if platform == "cuda" else out[:-1]).reshape(batch, width)


def _abstract(buffer, spikes, weight, indptr, indices, delays, step, **params):
    return ShapedArray(buffer.shape, buffer.dtype)


csr_delayed_add_p = make_primitive("eventlib_csr_delayed_add", _delayed_impl, _abstract)


# -- derivatives -------------------------------------------------------------
#
# new_buffer = buffer + P(spikes, weight), with P the delayed product: linear
# in (buffer, weight) for fixed spikes. The weight tangent is the primitive
# again (from a zero buffer); the spike tangent one pass over every synapse,
# as in the undelayed product; the transpose gives the buffer the cotangent
# itself and the weight the event-driven weight cotangent.


def _jvp(primals, tangents, *, n_slots, max_row, float_as_event, path):
    params = dict(n_slots=n_slots, max_row=max_row, float_as_event=float_as_event, path=path)
    buffer, spikes, weight, indptr, indices, delays, step = primals
    dbuf, dspikes, dweight = tangents[:3]
    out = csr_delayed_add_p.bind(*primals, **params)
    t = jnp.zeros(buffer.shape, buffer.dtype) if type(dbuf) is ad.Zero else dbuf
    if type(dweight) is not ad.Zero:
        t = csr_delayed_add_p.bind(t, spikes, dweight, indptr, indices, delays, step, **params)
    if type(dspikes) is not ad.Zero:
        width = buffer.shape[1]
        step_mod = jnp.asarray(step, jnp.int32) % n_slots
        w = weight.astype(buffer.dtype)
        t = _add_every_synapse(
            t, dspikes.astype(buffer.dtype), w, indptr, indices, delays, step_mod, n_slots, width // n_slots
        )
    return out, t


ad.primitive_jvps[csr_delayed_add_p] = _jvp


def _weight_cotangent(
    cotangent, spikes, indptr, indices, delays, step, weight_aval, *, n_slots, max_row, float_as_event, path
):
    """d(new_buffer)/d(weight) applied to ``cotangent`` (batch, n_slots * n_post):
    ``sum_b values[b, pre(s)] * cotangent[b, target(s)]``, visiting the
    active rows only (every synapse on the dense path)."""
    choice = paths.resolve(path, None, "csr", kernel=False)
    spikes = jnp.asarray(spikes)
    batch, _ = spikes.shape
    width = cotangent.shape[1]
    n_post = width // n_slots
    n_syn = indices.shape[0]
    scalar = len(weight_aval.shape) == 0
    step = jnp.asarray(step, jnp.int32) % n_slots
    values = spike_values(spikes, cotangent.dtype, float_as_event)

    def dense():
        pre = csr_pre_indices(indptr, n_syn)
        per_syn = jnp.sum(values[:, pre] * cotangent[:, _targets(step, delays, indices, n_slots, n_post)], axis=0)
        return jnp.sum(per_syn) if scalar else per_syn

    if choice.run == "dense" or n_syn == 0 or batch == 0 or n_post == 0:
        return dense().astype(weight_aval.dtype)
    window = _window(max_row, n_syn)

    def gather_row(b, value, first, inside, tgt, grad):
        d = lax.dynamic_slice_in_dim(delays, first, window)
        dest = jnp.where(inside, _targets(step, d, tgt, n_slots, n_post), width)
        ct_row = lax.dynamic_index_in_dim(cotangent, b, keepdims=False)
        contrib = value * ct_row.at[dest].get(mode="fill", fill_value=0)
        if scalar:
            return grad + jnp.sum(contrib)
        pos = jnp.where(inside, first + jnp.arange(window, dtype=jnp.int32), n_syn)
        return grad.at[pos].add(contrib, mode="drop")

    def event():
        init = jnp.zeros((), cotangent.dtype) if scalar else jnp.zeros((n_syn,), cotangent.dtype)
        return _fold_active_pairs(spikes, values, indptr, indices, window, n_post, gather_row, init)

    return lax.cond(_rows_fit(indptr, window), event, dense).astype(weight_aval.dtype)


def _transpose(ct, buffer, spikes, weight, indptr, indices, delays, step, **params):
    if any(ad.is_undefined_primal(x) for x in (spikes, indptr, indices, delays, step)):
        raise NotImplementedError("the delayed product is linear in the buffer and the weight only")
    ct_buffer = ct_weight = None
    if ad.is_undefined_primal(buffer):
        ct_buffer = ad.Zero(buffer.aval) if type(ct) is ad.Zero else ct
    if ad.is_undefined_primal(weight):
        if type(ct) is ad.Zero:
            ct_weight = ad.Zero(weight.aval)
        else:
            ct_weight = _weight_cotangent(ct, spikes, indptr, indices, delays, step, weight.aval, **params)
    return ct_buffer, None, ct_weight, None, None, None, None


ad.primitive_transposes[csr_delayed_add_p] = _transpose


# -- batching ----------------------------------------------------------------


def _batching(args, dims, **params):
    """A mapped buffer and mapped spikes merge into the batch (one call);
    any other mapped operand runs the product once per element."""
    buffer, spikes, *rest = args
    b_dim, s_dim, *rest_dims = dims
    if any(d is not None for d in rest_dims):
        return map_batched(csr_delayed_add_p, args, dims, **params)
    size = buffer.shape[b_dim] if b_dim is not None else spikes.shape[s_dim]
    buffer = jnp.moveaxis(buffer, b_dim, 0) if b_dim is not None else jnp.broadcast_to(buffer, (size, *buffer.shape))
    spikes = jnp.moveaxis(spikes, s_dim, 0) if s_dim is not None else jnp.broadcast_to(spikes, (size, *spikes.shape))
    batch = spikes.shape[1]
    out = csr_delayed_add_p.bind(
        buffer.reshape(size * batch, buffer.shape[-1]), spikes.reshape(size * batch, spikes.shape[-1]), *rest, **params
    )
    return out.reshape(size, batch, -1), 0


batching.primitive_batchers[csr_delayed_add_p] = _batching


# -- the public operator -----------------------------------------------------


def _check_delays(delays, n_syn: int, n_slots: int):
    """Per-synapse delays: an int array ``(n_synapses,)``; values checked
    against ``[0, n_slots)`` where they are concrete."""
    delays = jnp.asarray(delays)
    if not jnp.issubdtype(delays.dtype, jnp.integer):
        raise TypeError(f"delays must be an integer array of steps, got dtype {delays.dtype}")
    if delays.shape != (n_syn,):
        raise ValueError(
            f"delays must be an int scalar or have shape (n_synapses,) = ({n_syn},), got shape {delays.shape}"
        )
    if not isinstance(delays, jax.core.Tracer) and n_syn:
        host = np.asarray(delays)
        if host.min() < 0 or host.max() >= n_slots:
            raise ValueError(
                f"delays must lie in [0, max_delay] = [0, {n_slots - 1}] (the buffer has n_slots = "
                f"max_delay + 1 = {n_slots} slots), got values in [{host.min()}, {host.max()}]"
            )
    return delays.astype(jnp.int32)


def csr_event_matmul_delayed(
    spikes,
    weight,
    indptr,
    indices,
    delays,
    buffer,
    step,
    n_post: int,
    *,
    max_row: int | None = None,
    float_as_event: bool = False,
    path: str = "auto",
):
    """One step of the delayed event-driven product ``spikes @ M``.

    A spike at step ``step`` adds each of its synapses' weights into the
    ring ``buffer`` at slot ``(step + delays[s]) % n_slots``; the function
    then returns slot ``step % n_slots`` (what arrives now) and the buffer
    with that slot zeroed. Over consecutive steps from a zero buffer,
    ``out[t] = sum_d spikes[t - d] @ M_d`` with ``M_d`` the synapses of
    delay ``d`` (:func:`delayed_matmul_reference`). A step costs the active
    inputs times their synapses plus one slot of the buffer (read and
    cleared), whatever the delays; the slot of a synapse is computed only
    when its row is active.

    Args:
      spikes: bool, integer or float array ``(..., n_pre)``.
      weight: float scalar or ``(n_synapses,)`` in storage order.
      indptr: int32 ``(n_pre + 1,)`` row offsets.
      indices: int32 ``(n_synapses,)`` postsynaptic targets.
      delays: one delay per synapse, int ``(n_synapses,)`` in steps, each in
        ``[0, n_slots)``; or an int scalar (every synapse), for which the
        undelayed product runs and is added into one slot
        (:func:`delay_ring_step`). Concrete values are checked; traced ones
        are taken modulo ``n_slots``.
      buffer: ``(..., n_slots, n_post)`` ring buffer of the weight's dtype
        (``n_slots = max_delay + 1``; start from zeros).
      step: int scalar (may be traced), the current step; only
        ``step % n_slots`` matters, so a counter kept modulo ``n_slots``
        never overflows.
      n_post: number of postsynaptic neurons (must equal ``buffer.shape[-1]``).
      max_row, float_as_event, path: as for
        :func:`~eventlib.ops.csr_event_matmul` (``'event'``, ``'kernel'``
        or ``'dense'``; there is no ``deterministic`` form with per-synapse
        delays).

    Returns:
      ``(out, new_buffer)``: ``out`` ``(..., n_post)`` and ``new_buffer``
      of the shape and dtype of ``buffer``. Differentiable in ``spikes``
      (float), ``weight`` and ``buffer``: under ``lax.scan`` gradients flow
      back through the buffer to earlier steps.
    """
    if max_row is None:
        if isinstance(indptr, jax.core.Tracer):
            raise ValueError("max_row must be given when indptr is traced (for example a jit argument)")
        host_indptr = np.asarray(indptr)
        max_row = int(np.max(np.diff(host_indptr))) if host_indptr.shape[0] > 1 else 0
    spikes, weight, buffer = jnp.asarray(spikes), jnp.asarray(weight), jnp.asarray(buffer)
    indptr, indices = jnp.asarray(indptr), jnp.asarray(indices)
    _checks.spike_dtype(spikes.dtype)
    _checks.weight_dtype(weight.dtype, "weight")
    n_pre = indptr.shape[0] - 1
    _checks.spikes_shape(spikes.shape, n_pre)
    lead = spikes.shape[:-1]
    _check_buffer_rank(buffer, lead, int(n_post))
    n_slots = buffer.shape[-2]
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    if buffer.dtype != dtype:
        raise TypeError(f"buffer must have the product's dtype {np.dtype(dtype)}, got {buffer.dtype}")
    if np.ndim(delays) == 0 and not isinstance(delays, jax.core.Tracer):
        increment = csr_event_matmul(
            spikes, weight, indptr, indices, n_post, max_row=max_row, float_as_event=float_as_event, path=path
        )
        return delay_ring_step(buffer, step, increment, int(np.asarray(delays)) if _is_int(delays) else delays)
    delays = _check_delays(delays, indices.shape[0], n_slots)
    if weight.ndim != 0 and weight.shape != indices.shape:
        raise ValueError(
            f"weight must be a scalar or have shape (n_synapses,) = {indices.shape}, got shape {weight.shape}"
        )
    if indices.shape[0] + int(max_row) >= 2**31:
        raise ValueError(f"indices holds {indices.shape[0]} synapses: stored connectivity takes fewer than 2**31")
    step = jnp.asarray(step)
    if step.shape != () or not jnp.issubdtype(step.dtype, jnp.integer):
        raise TypeError(f"step must be an integer scalar, got dtype {step.dtype} shape {step.shape}")
    batch = int(np.prod(lead, dtype=np.int64))
    check_flat_size(batch, n_pre)
    check_flat_size(batch, n_slots * int(n_post), "outputs")
    new = csr_delayed_add_p.bind(
        buffer.reshape(batch, n_slots * int(n_post)),
        spikes.reshape(batch, n_pre),
        weight,
        indptr.astype(jnp.int32),
        indices.astype(jnp.int32),
        delays,
        step.astype(jnp.int32),
        n_slots=int(n_slots),
        max_row=int(max_row),
        float_as_event=bool(float_as_event),
        path=paths.bind_path(path),
    )
    return _read_and_clear(new.reshape(buffer.shape), step)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) or (
        isinstance(x, (np.ndarray, jax.Array)) and jnp.issubdtype(np.asarray(x).dtype, jnp.integer)
    )
