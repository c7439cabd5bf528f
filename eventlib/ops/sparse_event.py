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

Sections, in order: the dense reference, the portable event-driven path, the
GPU kernel, the deterministic formulation, the primitive that chooses
between them, its derivatives, its batching, the public operator.
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
from ._compact import active_indices, chunked_loop, count_active, pallas_call, zeros_for_call
from ._primitive import HIGHEST, check_flat_size, make_primitive, map_batched, spikes_batching
from .dense_event import spike_values

__all__ = ["csr_event_matmul", "coo_matmul", "csr_to_dense", "sparse_matmul_reference", "csr_pre_indices"]


# -- dense-equivalent product and dense reference --------------------------------


def csr_pre_indices(indptr, n_synapses: int):
    """The presynaptic row of every synapse.

    Args:
      indptr: int32 ``(n_pre + 1,)`` CSR row offsets.
      n_synapses: the number of synapses (static: the length of the result).

    Returns:
      int32 ``(n_synapses,)``.
    """
    # Mark where each row after the first begins and count the marks: one
    # scatter and one prefix sum (jnp.repeat took several times longer).
    # Empty rows mark the same position twice, which is what they should.
    starts = jnp.zeros((n_synapses,), jnp.int32).at[indptr[1:-1]].add(1, mode="drop")
    return jnp.cumsum(starts, dtype=jnp.int32)


def coo_matmul(x, weight, pre, post, n_post: int):
    """``x @ M`` for float (or any) input ``x`` of shape ``(..., n_pre)``.

    One gather and one scatter-add over all synapses per batch row;
    differentiable in ``x`` and ``weight`` by JAX's own rules. Half-precision
    products are summed in float32 and rounded once to their type.

    Args:
      x: input ``(..., n_pre)``.
      weight: a scalar or one weight per synapse ``(n_synapses,)``.
      pre, post: int ``(n_synapses,)``: the presynaptic row and the
        postsynaptic target of each synapse.
      n_post: the number of postsynaptic neurons (static).
    """
    dtype = jnp.result_type(x, weight)
    acc = _checks.accumulation_dtype(dtype)
    gathered = x[..., pre].astype(acc)  # (..., n_synapses)
    contrib = gathered * jnp.broadcast_to(jnp.asarray(weight).astype(acc), gathered.shape)
    out = jnp.zeros((*x.shape[:-1], n_post), acc)
    return out.at[..., post].add(contrib, mode="drop").astype(dtype)


def csr_to_dense(weight, indptr, indices, n_post: int):
    """The ``(n_pre, n_post)`` matrix the CSR connectivity stands for
    (repeated pairs add up). For tests and small sizes: it is dense.

    Args:
      weight: a scalar or one weight per synapse ``(n_synapses,)``.
      indptr: int32 ``(n_pre + 1,)`` row offsets; indices: int32
        ``(n_synapses,)`` targets.
      n_post: the number of postsynaptic neurons (static).
    """
    n_pre = indptr.shape[0] - 1
    pre = csr_pre_indices(indptr, indices.shape[0])
    weight = jnp.broadcast_to(jnp.asarray(weight), indices.shape)
    return jnp.zeros((n_pre, n_post), weight.dtype).at[pre, indices].add(weight)


def sparse_matmul_reference(spikes, weight, indptr, indices, n_post: int, *, float_as_event: bool = False):
    """The dense product the operators must equal.

    Args:
      spikes, weight, indptr, indices, n_post, float_as_event: as for
        :func:`csr_event_matmul`.
    """
    dense = csr_to_dense(weight, indptr, indices, n_post)
    dtype = _checks.out_dtype(spikes.dtype, dense.dtype)
    return jnp.matmul(spike_values(spikes, dtype, float_as_event), dense.astype(dtype), precision=HIGHEST)


# -- portable event-driven path ---------------------------------------------


def _row_window(i, indptr, indices, max_row: int, n_post: int):
    """Row ``i``'s synapses as one contiguous window of ``max_row`` slots.

    The window starts at the row (moved back where the row ends near the
    array's end, so that it always fits: ``n_synapses >= max_row``). Returns
    the first position, a mask of the slots that belong to row ``i``, and
    the targets with ``n_post`` (out of bounds: scatters drop it) elsewhere.
    One dynamic slice reads it: on CPU, about 3x faster than gathering the
    same slots one by one.
    """
    start, end = indptr[i], indptr[i + 1]
    first = jnp.minimum(start, indices.shape[0] - max_row)
    # int32 is safe: csr_event_matmul refuses n_synapses + max_row >= 2**31.
    pos = first + jnp.arange(max_row, dtype=jnp.int32)
    inside = (pos >= start) & (pos < end)
    tgt = jnp.where(inside, lax.dynamic_slice_in_dim(indices, first, max_row), n_post)
    return first, inside, tgt


def _fold_active_pairs(spikes, values, indptr, indices, max_row: int, n_post: int, body, init):
    """Fold ``body(b, value, first, inside, tgt, carry)`` over the active
    (batch row ``b``, input) pairs, one pair per loop step, where ``first``,
    ``inside`` and ``tgt`` describe the input's row window (:func:`_row_window`).
    (Unrolling several pairs per step did not help on CPU.)"""
    n_pre = spikes.shape[1]
    mask = spikes.reshape(-1).astype(jnp.bool_)
    flat_idx, count = active_indices(mask, 0), count_active(mask)
    flat_values = values.reshape(-1)

    def step(j, carry):
        flat = flat_idx[j]
        first, inside, tgt = _row_window(flat % n_pre, indptr, indices, max_row, n_post)
        return body(flat // n_pre, flat_values[flat], first, inside, tgt, carry)

    return lax.fori_loop(0, count, step, init)


def _window(max_row: int, n_syn: int) -> int:
    """The static window the event paths read per row: ``max_row``, at least
    one slot and at most the stored synapses (a stale ``max_row`` from
    before a restore may exceed them)."""
    return max(1, min(int(max_row), n_syn))


def _rows_fit(indptr, window: int):
    """Whether every row has at most ``window`` synapses: one O(n_pre)
    reduction. ``max_row`` is static, so a function compiled before the
    connectivity was replaced (a restored checkpoint, an assigned state)
    still carries the old one; this check routes such calls to a path that
    handles any row length instead of dropping the synapses past the window."""
    return jnp.max(indptr[1:] - indptr[:-1], initial=0) <= window


# -- the portable path's GPU form and dense products (paths: the GPU rule) ------


def _pair_chunks(spikes, values, indptr, indices, window: int, n_post: int, body, init, dense=None):
    """Fold ``body(b, value, pos, inside, tgt, carry)`` over chunks of the
    active (batch row, input) pairs: ``b`` and ``value`` ``(C,)``, and each
    pair's window of synapse positions ``pos``, the mask ``inside`` of those
    that belong to its row and their targets ``tgt`` (``n_post`` elsewhere),
    ``(C, window)``: the GPU form of :func:`_fold_active_pairs`, whose one
    step per pair costs a launch per spike on a GPU. ``C`` is the smallest
    of :func:`paths.gpu_chunk_pairs` that holds the active pairs (one loop
    step; a few for the largest layers), chosen at run time in one
    ``lax.switch`` together with ``dense``: ``(use_dense, dense_fn)`` or None."""
    batch, n_pre = spikes.shape
    n_flat, n_syn = batch * n_pre, indices.shape[0]
    sizes = paths.gpu_chunk_pairs(n_flat, window)
    mask = spikes.reshape(-1).astype(jnp.bool_)
    flat_idx, count = active_indices(mask, sizes[-1]), count_active(mask)
    flat_values = values.reshape(-1)
    slots = jnp.arange(window, dtype=jnp.int32)

    def step(start, carry, chunk):
        flat = lax.dynamic_slice_in_dim(flat_idx, start, chunk)
        valid = flat < n_flat  # the padding past the active pairs
        flat = jnp.minimum(flat, n_flat - 1)
        b = flat // n_pre
        i = flat - b * n_pre
        value = jnp.where(valid, flat_values[flat], jnp.zeros((), flat_values.dtype))
        start_, end = indptr[i], indptr[i + 1]
        first = jnp.minimum(start_, n_syn - window)  # the window always fits (see _row_window)
        pos = first[:, None] + slots[None, :]
        inside = valid[:, None] & (pos >= start_[:, None]) & (pos < end[:, None])
        tgt = jnp.where(inside, indices[pos], n_post)
        return body(b, value, pos, inside, tgt, carry)

    def loop(chunk):
        def run():
            return chunked_loop(count, chunk, lambda start, carry: step(start, carry, chunk), init)

        return run

    branches = [loop(c) for c in sizes]
    which = jnp.minimum(jnp.sum(jnp.asarray(sizes[:-1], jnp.int32) < count), len(sizes) - 1)
    if dense is not None:
        use_dense, dense_fn = dense
        branches.append(dense_fn)
        which = jnp.where(use_dense, len(sizes), which)
    return lax.switch(which, branches)


def _densify(n_pre: int, n_post: int) -> bool:
    """Whether the dense product on a GPU builds the matrix (at most
    ``paths.GPU_DENSIFY_ELEMENTS`` entries) rather than visiting every synapse."""
    return n_pre * n_post <= paths.GPU_DENSIFY_ELEMENTS


def _gpu_dense_product(values, weight, indptr, indices, n_post: int):
    """``values @ M`` on a GPU: the matrix built and multiplied (float32 at
    ``HIGHEST``) when it is small enough, else one pass over every synapse."""
    n_pre = values.shape[1]
    if not _densify(n_pre, n_post):
        return coo_matmul(values, weight, csr_pre_indices(indptr, indices.shape[0]), indices, n_post)
    dense = csr_to_dense(weight.astype(values.dtype), indptr, indices, n_post)
    return jnp.matmul(values, dense, precision=HIGHEST)


def _gpu_event_cheaper(count, window: int, batch: int, n_pre: int, n_post: int, n_syn: int):
    """Whether the active pairs' synapse slots (``count x window``) cost less
    than the dense product on a GPU (the GPU rule's run-time test)."""
    if _densify(n_pre, n_post):
        dense_s = paths.gpu_dense_seconds(batch, n_pre, n_post)
    else:
        dense_s = batch * n_syn * paths.GPU_SECONDS_PER_SLOT
    # In float32: count x window may pass int32.
    return count.astype(jnp.float32) * (window * paths.GPU_SECONDS_PER_SLOT) <= dense_s


# -- GPU kernel (Pallas, lowered through Triton) -------------------------------
#
# Each program reads a block of ``block`` inputs (flattened (batch row, input)
# pairs) in one load and compacts its active ones in registers (an exclusive
# prefix sum of the activity); it then loops over them ``rows`` at a time, so
# every row of a [rows, chunk] tile of synapse positions belongs to an active
# input, and adds each chunk of those rows' synapses into the output with
# masked atomic adds, up to the tile's longest active row (a run-time trip
# count: short rows cost no chunks, and rows of any length are handled). The
# number of programs is n_flat / block whatever the activity, and an idle
# program costs one load and a prefix sum: cheap at the 0.1-1 % activity of
# spiking networks. With many active rows of thousands of synapses, fewer
# programs share the atomic adds (the trade-off is recorded in
# benchmarks/KERNEL_NOTES.md, stored connectivity, items 5 and 6).
#
# Float atomics make the summation order, and so the last bits of an output
# that receives several events, vary from run to run; sums of small dyadic
# weights are exact in any order. ``deterministic=True`` avoids atomics.
_CSR_TILE = 2048  # rows * chunk: 16 elements per thread with 4 warps
_CSR_BLOCK = 1024  # inputs per program (at most; fewer for small inputs)
_CSR_PROGRAMS = 512  # below this many programs, smaller blocks


def _csr_tiling(n_flat: int, max_row: int) -> tuple[int, int, int]:
    """``(block, rows, chunk)`` for ``n_flat`` pairs and rows of at most
    ``max_row`` synapses: ``rows`` rows by ``chunk`` synapse positions (a
    power of two, 16 to 256), ``_CSR_TILE`` slots in all."""
    from jax.experimental import pallas as pl

    chunk = int(min(256, max(16, pl.next_power_of_2(max_row))))
    rows = _CSR_TILE // chunk
    # The one-hot selection is rows x block elements: keep it at 8192.
    block = min(_CSR_BLOCK, 8192 // rows, pl.next_power_of_2(max(1, -(-n_flat // _CSR_PROGRAMS))))
    return int(max(16, block)), rows, chunk


def _add_rows_chunk(c, value, b, start, end, active, refs, *, chunk, n_post, scalar, masked_atomics, slots=None):
    """Adds synapse positions [c * chunk, (c + 1) * chunk) of a vector of
    rows (``start``/``end`` their ranges, ``active`` which of them count,
    ``value`` their input values, ``b`` their batch rows) into the output.
    ``slots = (delays_ref, step, n_slots)``: the delayed product
    (``delayed_event``), whose output rows are ``n_slots`` slots of
    ``n_post // n_slots`` neurons; synapse ``s`` adds into slot
    ``(step + delays[s]) % n_slots``, read for the active rows only."""
    from jax.experimental.pallas import triton as plgpu

    indices_ref, w_ref, out_ref = refs
    # int32 is safe: csr_event_matmul refuses n_synapses + max_row >= 2**31.
    pos = start[:, None] + (c * chunk + jnp.arange(chunk))[None, :]
    ok = active[:, None] & (pos < end[:, None])
    tgt = plgpu.load(indices_ref.at[pos], mask=ok, other=0)
    if slots is not None:
        delays_ref, step, n_slots = slots
        d = plgpu.load(delays_ref.at[pos], mask=ok, other=0)
        tgt = ((step + d) % n_slots) * (n_post // n_slots) + tgt
    w = w_ref[0] if scalar else plgpu.load(w_ref.at[pos], mask=ok, other=0.0)
    contrib = jnp.broadcast_to(value[:, None] * w.astype(value.dtype), pos.shape)  # summed in the values' type
    dest = b[:, None] * n_post + tgt
    if masked_atomics:
        plgpu.atomic_add(out_ref, dest, contrib, mask=ok)
    else:
        # The interpreter runs programs one after another and has no
        # masked atomics (and its unmasked ones drop repeated targets
        # within a block), so it adds the tile with a plain
        # scatter-add; masked-out slots go to a spare last element.
        sink = out_ref.shape[0] - 1
        out_ref[...] = out_ref[...].at[jnp.where(ok, dest, sink)].add(jnp.where(ok, contrib, 0.0))


def _csr_kernel(
    val_ref,
    indptr_ref,
    indices_ref,
    w_ref,
    _zeros_ref,
    out_ref,
    *,
    n_flat,
    n_pre,
    n_post,
    block,
    rows,
    chunk,
    scalar,
    masked_atomics,
    slots=None,
):
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plgpu

    p = pl.program_id(0)
    refs = (indices_ref, w_ref, out_ref)
    local = jnp.arange(block)
    vals = plgpu.load(val_ref.at[p * block + local], mask=p * block + local < n_flat, other=0)
    act = (vals != 0).astype(jnp.int32)
    position = jnp.cumsum(act) - act  # each active input's place in the compacted list
    count = jnp.sum(act)
    slot = jnp.arange(rows)

    def group(t, carry):
        # Slot r takes the active input at place t * rows + r: a one-hot
        # selection, reduced to that input's index and value (registers
        # only; Triton has no gather from registers).
        hit = ((position[None, :] == t * rows + slot[:, None]) & (act[None, :] == 1)).astype(jnp.int32)
        valid = jnp.max(hit, axis=1) > 0
        flat = p * block + jnp.sum(hit * local[None, :], axis=1)
        value = jnp.sum(jnp.where(hit == 1, vals[None, :], 0), axis=1)
        b = flat // n_pre
        i = flat - b * n_pre
        start = plgpu.load(indptr_ref.at[i], mask=valid, other=0)
        end = plgpu.load(indptr_ref.at[i + 1], mask=valid, other=0)

        def one_chunk(c, carry):
            _add_rows_chunk(
                c,
                value,
                b,
                start,
                end,
                valid,
                refs,
                chunk=chunk,
                n_post=n_post,
                scalar=scalar,
                masked_atomics=masked_atomics,
                slots=slots,
            )
            return carry

        longest = jnp.max(jnp.where(valid, end - start, 0))
        lax.fori_loop(0, (longest + chunk - 1) // chunk, one_chunk, jnp.int32(0))
        return carry

    lax.fori_loop(0, (count + rows - 1) // rows, group, jnp.int32(0))


def _launch_csr_kernel(
    kernel, values, weight, indptr, indices, extra, init, width: int, max_row: int, platform, **static
):
    """One launch of a stored-connectivity kernel over ``values`` (batch, n_pre).

    ``kernel`` is :func:`_csr_kernel` or a wrapper taking the same operands
    with ``extra`` ones before the last: it adds every active synapse's
    contribution into ``init``, the flat ``batch * width`` output (plus the
    interpreter's spare element off the GPU), which is aliased to the result.
    ``static`` goes to the kernel beside the tiling."""
    from jax.experimental import pallas as pl

    batch, n_pre = values.shape
    n_flat = batch * n_pre
    block, rows, chunk = _csr_tiling(n_flat, max_row)
    check_flat_size(batch, n_pre, extra=block)  # the last program's positions stay int32
    kernel = functools.partial(
        kernel,
        n_flat=n_flat,
        n_pre=n_pre,
        n_post=width,
        block=block,
        rows=rows,
        chunk=chunk,
        scalar=weight.ndim == 0,
        masked_atomics=platform == "cuda",
        **static,
    )
    operands = (values.reshape(-1), indptr, indices, weight.reshape(-1), *extra, init)
    return pallas_call(
        kernel,
        platform=platform,
        grid=(pl.cdiv(n_flat, block),),
        in_specs=[pl.no_block_spec] * len(operands),
        out_specs=pl.no_block_spec,
        out_shape=jax.ShapeDtypeStruct(init.shape, init.dtype),
        input_output_aliases={len(operands) - 1: 0},
    )(*operands)


def _csr_event_kernel_call(values, weight, indptr, indices, n_post, max_row, platform):
    batch = values.shape[0]
    check_flat_size(batch, n_post, "outputs", extra=1)
    # The interpreter's scatter-add sends masked-out slots to a spare last
    # element; the GPU's masked atomics need none.
    size = batch * n_post + (0 if platform == "cuda" else 1)
    zeros = zeros_for_call(size, values.dtype, values)
    out = _launch_csr_kernel(_csr_kernel, values, weight, indptr, indices, (), zeros, n_post, max_row, platform)
    # Without the spare element the output is the buffer itself, no slice.
    return (out if size == batch * n_post else out[:-1]).reshape(batch, n_post)


# -- deterministic formulation (no float atomics) ------------------------------
#
# The active pairs are taken a chunk at a time. A chunk's (output, contribution)
# pairs are sorted by output (a stable sort), summed per output by a
# segmented scan, and each output's sum is added once: every addition has a
# fixed place in a fixed order, on every platform, so repeated runs give the
# same bits. Cost: a sort of the chunk's synapse slots, so several times the
# atomic kernel; memory: one chunk of about 2**20 slots.
_SORTED_CHUNK_SLOTS = 2**20


def _segment_sums(start, x):
    """Inclusive scan of ``x`` restarted wherever ``start`` is True."""

    def combine(a, b):
        return a[0] | b[0], jnp.where(b[0], b[1], a[1] + b[1])

    return lax.associative_scan(combine, (start, x))[1]


def _csr_sorted(values, weight, indptr, indices, n_post: int, max_row: int):
    batch, n_pre = values.shape
    n_out = batch * n_post
    flat_values = values.reshape(-1)
    mask = flat_values != 0
    flat_idx, count = active_indices(mask, 0), count_active(mask)
    offsets = jnp.arange(max_row, dtype=jnp.int32)

    def one_chunk(chunk, c, out):
        j = c * chunk + jnp.arange(chunk, dtype=jnp.int32)
        flat = flat_idx.at[j].get(mode="fill", fill_value=mask.shape[0])
        ok_pair = j < count
        b = flat // n_pre
        i = jnp.where(ok_pair, flat - b * n_pre, 0)
        start, end = indptr[i], indptr[i + 1]
        pos = start[:, None] + offsets[None, :]
        ok = ok_pair[:, None] & (pos < end[:, None])
        tgt = indices.at[pos].get(mode="fill", fill_value=0)
        w = weight if weight.ndim == 0 else weight.at[pos].get(mode="fill", fill_value=0)
        value = flat_values.at[flat].get(mode="fill", fill_value=0)
        # Slots that are not synapses get the key n_out: they sort last and
        # are dropped by the final scatter.
        key = jnp.where(ok, b[:, None] * n_post + tgt, n_out).reshape(-1)
        contrib = jnp.where(ok, value[:, None] * w.astype(value.dtype), 0).reshape(-1)
        key, contrib = lax.sort((key, contrib), num_keys=1, is_stable=True)
        new = key[1:] != key[:-1]
        sums = _segment_sums(jnp.concatenate([jnp.ones((1,), bool), new]), contrib)
        last = jnp.where(jnp.concatenate([new, jnp.ones((1,), bool)]), key, n_out)
        # Each output appears at most once in ``last``: no two additions meet.
        return out.at[last].add(sums, mode="drop")

    def in_chunks(chunk):
        def run(out):
            n_chunks = (count + chunk - 1) // chunk
            return lax.fori_loop(0, n_chunks, functools.partial(one_chunk, chunk), out)

        return run

    # A chunk costs a sort of all its slots, used or not: a few chunk sizes,
    # the smallest that holds every active pair chosen at run time (the
    # largest loops over the pairs when they do not fit).
    largest = max(1, min(mask.shape[0], _SORTED_CHUNK_SLOTS // max_row))
    sizes = sorted({max(1, largest >> shift) for shift in (12, 8, 4, 0)})
    which = jnp.minimum(jnp.sum(jnp.asarray(sizes[:-1], jnp.int32) < count), len(sizes) - 1)
    out = lax.switch(which, [in_chunks(c) for c in sizes], jnp.zeros((n_out,), values.dtype))
    return out.reshape(batch, n_post)


def _sorted_every_synapse(values, weight, indptr, indices, n_post: int):
    """The deterministic product for rows of any length (the fallback when
    a row outgrows ``max_row``): every synapse of every batch row, sorted by
    output and summed per output in a fixed order, as :func:`_csr_sorted`
    does with the active rows. Memory: ``batch x n_synapses`` slots."""
    batch = values.shape[0]
    n_syn, n_out = indices.shape[0], batch * n_post
    pre = csr_pre_indices(indptr, n_syn)
    key = (jnp.arange(batch, dtype=jnp.int32)[:, None] * n_post + indices[None, :]).reshape(-1)
    contrib = (values[:, pre] * jnp.broadcast_to(weight, (n_syn,)).astype(values.dtype)[None, :]).reshape(-1)
    key, contrib = lax.sort((key, contrib), num_keys=1, is_stable=True)
    new = key[1:] != key[:-1]
    sums = _segment_sums(jnp.concatenate([jnp.ones((1,), bool), new]), contrib)
    last = jnp.where(jnp.concatenate([new, jnp.ones((1,), bool)]), key, n_out)
    return jnp.zeros((n_out,), values.dtype).at[last].add(sums, mode="drop").reshape(batch, n_post)


# -- the primitive: the path chosen per platform (eventlib.ops.paths) -------------


def _csr_event_impl(spikes, weight, indptr, indices, *, n_post, max_row, float_as_event, path, deterministic, platform):
    batch, n_pre = spikes.shape
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    # Every path sums in float32 for half-precision weights: each weight is
    # widened as it is read, the result rounded once to ``dtype``.
    values = spike_values(spikes, _checks.accumulation_dtype(dtype), float_as_event)
    weight = weight.astype(dtype)
    n_syn = indices.shape[0]
    choice = paths.resolve(path, platform, "csr", deterministic=deterministic, sizes=(batch, n_pre, n_post))
    # A layer called under jit closes over its connectivity as constants; the
    # barrier stops XLA from constant-folding work on them at compile time.
    indptr, indices = lax.optimization_barrier((indptr, indices))

    if n_syn == 0 or batch == 0:
        return jnp.zeros((batch, n_post), dtype)
    max_row = _window(max_row, n_syn)
    fits = _rows_fit(indptr, max_row)
    if choice.run == "sorted":
        check_flat_size(batch, n_pre)
        out = lax.cond(
            fits,
            lambda: _csr_sorted(values, weight, indptr, indices, n_post, max_row),
            lambda: _sorted_every_synapse(values, weight, indptr, indices, n_post),
        )
        return out.astype(dtype)
    if choice.run == "dense":
        if paths.is_gpu(platform):
            return _gpu_dense_product(values, weight, indptr, indices, n_post).astype(dtype)
        return coo_matmul(values.astype(dtype), weight, csr_pre_indices(indptr, n_syn), indices, n_post)
    check_flat_size(batch, n_pre)

    def gpu_dense():
        return _gpu_dense_product(values, weight, indptr, indices, n_post).astype(dtype)

    if choice.may_switch:  # 'auto' on a GPU: the dense product when the active pairs cost more
        count = count_active(spikes.astype(jnp.bool_))
        cheaper = _gpu_event_cheaper(count, max_row, batch, n_pre, n_post, n_syn)
    if choice.run == "kernel":
        # The kernels read each row's length at run time: any length is handled.
        def kernel():
            return _csr_event_kernel_call(values, weight, indptr, indices, n_post, max_row, platform).astype(dtype)

        return lax.cond(cheaper, kernel, gpu_dense) if choice.may_switch else kernel()

    if choice.vectorised:
        # A GPU: chunks of active pairs, gathered and scattered at once (_pair_chunks).
        def add_chunk(b, value, pos, inside, tgt, out):
            w = weight if weight.ndim == 0 else weight[pos]
            contrib = jnp.where(inside, value[:, None] * w.astype(values.dtype), jnp.zeros((), values.dtype))
            dest = jnp.where(inside, b[:, None] * n_post + tgt, batch * n_post)
            return out.at[dest.reshape(-1)].add(contrib.reshape(-1), mode="drop")

        # Rows longer than the window take the dense product (exact for any length).
        use_dense = ~(fits & cheaper) if choice.may_switch else ~fits
        init = jnp.zeros((batch * n_post,), values.dtype)

        def flat_dense():
            return _gpu_dense_product(values, weight, indptr, indices, n_post).astype(values.dtype).reshape(-1)

        out = _pair_chunks(spikes, values, indptr, indices, max_row, n_post, add_chunk, init, (use_dense, flat_dense))
        return out.reshape(batch, n_post).astype(dtype)

    # Each active pair's targets are read as one window and scattered into
    # the output. No switch to the dense-equivalent pass (paths.resolve): one
    # pass over every synapse is slower than this loop even with every input
    # active.
    def add_row(b, value, first, inside, tgt, out):
        w = (weight if weight.ndim == 0 else lax.dynamic_slice_in_dim(weight, first, max_row)).astype(values.dtype)
        if batch == 1:
            return out.at[tgt].add(value * w, mode="drop")
        return out.at[b, tgt].add(value * w, mode="drop")

    def event():
        init = jnp.zeros((n_post,) if batch == 1 else (batch, n_post), values.dtype)
        out = _fold_active_pairs(spikes, values, indptr, indices, max_row, n_post, add_row, init)
        return out.reshape(batch, n_post).astype(dtype)

    def every_synapse():
        # Rows longer than the window: one pass over every synapse, exact for any length.
        return coo_matmul(values.astype(dtype), weight, csr_pre_indices(indptr, n_syn), indices, n_post)

    return lax.cond(fits, event, every_synapse)


def _abstract(spikes, weight, indptr, indices, *, n_post, max_row, float_as_event, path, deterministic):
    return ShapedArray((spikes.shape[0], n_post), _checks.out_dtype(spikes.dtype, weight.dtype))


csr_event_matmat_p = make_primitive("eventlib_csr_event_matmat", _csr_event_impl, _abstract)


# -- derivatives -------------------------------------------------------------


def _spikes_jvp(dspikes, spikes, weight, indptr, indices, *, n_post, **params):
    dtype = _checks.out_dtype(spikes.dtype, weight.dtype)
    pre = csr_pre_indices(indptr, indices.shape[0])
    return coo_matmul(dspikes.astype(dtype), weight.astype(dtype), pre, indices, n_post)


def _weight_jvp(dweight, spikes, weight, indptr, indices, **params):
    return csr_event_matmat_p.bind(spikes, dweight, indptr, indices, **params)


ad.defjvp(csr_event_matmat_p, _spikes_jvp, _weight_jvp, None, None)


def _weight_cotangent_dense(values, cotangent, indptr, indices, scalar: bool):
    """The weight cotangent over every synapse: also the derivative of the
    event-driven one in the spikes (``values`` replaced by their tangents)."""
    pre = csr_pre_indices(indptr, indices.shape[0])
    per_syn = jnp.sum(values[:, pre] * cotangent[:, indices], axis=0)
    return jnp.sum(per_syn) if scalar else per_syn


def _weight_cotangent(
    cotangent, spikes, indptr, indices, weight_aval, *, n_post, max_row, float_as_event, path, deterministic, platform
):
    """d(out)/d(weight) applied to ``cotangent``: for synapse s of row i,
    ``sum_b values[b, i] * cotangent[b, indices[s]]`` -- visiting only the
    active rows; a scalar weight gets the sum over all of them."""
    # In a transpose rule the primal spikes may be a NumPy constant.
    spikes = jnp.asarray(spikes)
    batch, n_pre = spikes.shape
    # Formed the same way whatever deterministic is.
    choice = paths.resolve(path, platform, "csr", kernel=False, sizes=(batch, n_pre, n_post))
    n_syn = indices.shape[0]
    values = spike_values(spikes, cotangent.dtype, float_as_event)
    scalar = len(weight_aval.shape) == 0

    def dense():
        if paths.is_gpu(platform) and _densify(n_pre, n_post):
            # The outer product of the matrix's shape, read at the synapses.
            outer = jnp.matmul(values.T, cotangent, precision=HIGHEST)
            per_syn = outer[csr_pre_indices(indptr, n_syn), indices]
            return jnp.sum(per_syn) if scalar else per_syn
        return _weight_cotangent_dense(values, cotangent, indptr, indices, scalar)

    if choice.run == "dense" or n_syn == 0 or batch == 0:
        return dense().astype(weight_aval.dtype)
    indptr, indices = lax.optimization_barrier((indptr, indices))
    max_row = _window(max_row, n_syn)
    fits = _rows_fit(indptr, max_row)

    if choice.vectorised:
        # A GPU: chunks of active pairs, gathered and scattered at once (_pair_chunks).
        ct_flat = cotangent.reshape(-1)

        def gather_chunk(b, value, pos, inside, tgt, grad):
            at = jnp.where(inside, b[:, None] * n_post + tgt, batch * n_post)
            contrib = value[:, None] * ct_flat.at[at].get(mode="fill", fill_value=0)
            if scalar:
                return grad + jnp.sum(contrib)
            return grad.at[jnp.where(inside, pos, n_syn).reshape(-1)].add(contrib.reshape(-1), mode="drop")

        use = fits
        if choice.may_switch:
            count = count_active(spikes.astype(jnp.bool_))
            use = fits & _gpu_event_cheaper(count, max_row, batch, n_pre, n_post, n_syn)
        init = jnp.zeros((), cotangent.dtype) if scalar else jnp.zeros((n_syn,), cotangent.dtype)
        out = _pair_chunks(spikes, values, indptr, indices, max_row, n_post, gather_chunk, init, (~use, dense))
        return out.astype(weight_aval.dtype)

    def gather_row(b, value, first, inside, tgt, grad):
        ct_row = lax.dynamic_index_in_dim(cotangent, b, keepdims=False)
        contrib = value * ct_row.at[tgt].get(mode="fill", fill_value=0)
        if scalar:
            return grad + jnp.sum(contrib)
        pos = jnp.where(inside, first + jnp.arange(max_row, dtype=jnp.int32), n_syn)
        return grad.at[pos].add(contrib, mode="drop")

    def event():
        init = jnp.zeros((), cotangent.dtype) if scalar else jnp.zeros((n_syn,), cotangent.dtype)
        return _fold_active_pairs(spikes, values, indptr, indices, max_row, n_post, gather_row, init)

    # Rows longer than the window (see _rows_fit): the pass over every synapse.
    return lax.cond(fits, event, dense).astype(weight_aval.dtype)


def _wct_impl(spikes, cotangent, indptr, indices, *, weight_shape, weight_dtype, platform=None, **params):
    aval = ShapedArray(weight_shape, weight_dtype)
    return _weight_cotangent(cotangent, spikes, indptr, indices, aval, platform=platform, **params)


def _wct_abstract(spikes, cotangent, indptr, indices, *, weight_shape, weight_dtype, **params):
    return ShapedArray(weight_shape, weight_dtype)


# The weight cotangent is a primitive of its own, linear in the cotangent:
# its transpose is the event product again (and the product's is this), so
# derivatives of any order never differentiate the run-time-length loop
# over the active pairs.
csr_weight_cotangent_p = make_primitive("eventlib_csr_weight_cotangent", _wct_impl, _wct_abstract)


def _wct_spikes_jvp(dspikes, spikes, cotangent, indptr, indices, *, weight_shape, weight_dtype, **params):
    # The dense form: also exact where a spike is zero.
    values = dspikes.astype(cotangent.dtype)
    return _weight_cotangent_dense(values, cotangent, indptr, indices, len(weight_shape) == 0).astype(weight_dtype)


def _wct_cotangent_jvp(dcotangent, spikes, cotangent, indptr, indices, **params):
    return csr_weight_cotangent_p.bind(spikes, dcotangent, indptr, indices, **params)


ad.defjvp(csr_weight_cotangent_p, _wct_spikes_jvp, _wct_cotangent_jvp, None, None)


def _wct_transpose(wct, spikes, cotangent, indptr, indices, *, weight_shape, weight_dtype, **params):
    if ad.is_undefined_primal(spikes) or ad.is_undefined_primal(indptr) or ad.is_undefined_primal(indices):
        raise NotImplementedError("the event-driven weight cotangent is linear in the cotangent only")
    if type(wct) is ad.Zero:
        return None, ad.Zero(cotangent.aval), None, None
    out = csr_event_matmat_p.bind(jnp.asarray(spikes), wct, indptr, indices, **params)
    return None, out.astype(cotangent.aval.dtype), None, None


ad.primitive_transposes[csr_weight_cotangent_p] = _wct_transpose
batching.primitive_batchers[csr_weight_cotangent_p] = functools.partial(map_batched, csr_weight_cotangent_p)


def _transpose(cotangent, spikes, weight, indptr, indices, **params):
    if ad.is_undefined_primal(spikes) or ad.is_undefined_primal(indptr) or ad.is_undefined_primal(indices):
        raise NotImplementedError("csr_event_matmul is linear in the weight only")
    if type(cotangent) is ad.Zero:
        return None, ad.Zero(weight.aval), None, None
    # In a transpose rule the primal spikes may be a NumPy constant.
    out = csr_weight_cotangent_p.bind(
        jnp.asarray(spikes),
        cotangent,
        indptr,
        indices,
        weight_shape=tuple(weight.aval.shape),
        weight_dtype=weight.aval.dtype,
        **params,
    )
    return None, out, None, None


ad.primitive_transposes[csr_event_matmat_p] = _transpose


# -- batching ----------------------------------------------------------------
#
# A batch of weight vectors or of matrices (one per element, all within the
# static max_row) runs the event product for each, in turn.

batching.primitive_batchers[csr_event_matmat_p] = spikes_batching(csr_event_matmat_p)


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
    deterministic: bool = False,
):
    """Event-driven ``spikes @ M`` for connectivity stored by presynaptic row.

    Args:
      spikes: bool, integer or float array ``(..., n_pre)``.
      weight: float scalar (every synapse) or array ``(n_synapses,)`` in
        storage order.
      indptr: int32 ``(n_pre + 1,)`` row offsets.
      indices: int32 ``(n_synapses,)`` postsynaptic targets.
      n_post: number of postsynaptic neurons.
      max_row: the longest row (static): the window of synapse slots the
        portable and deterministic paths read per active row, and the tile of
        the kernel. Computed from ``indptr`` when not given, which needs a
        concrete ``indptr`` (not a tracer). A value below the longest row
        (for example one compiled in before the connectivity was replaced)
        gives the same result: those paths check the longest row at run time
        (one pass over ``indptr``) and then visit every synapse instead of
        the active rows only, so it costs time, never synapses. Under
        ``jax.vmap`` over ``indptr``/``indices`` (one matrix per element,
        visited in turn) it is the window of every matrix.
      float_as_event: count every nonzero input as 1.
      path: ``'auto'``, ``'event'``, ``'kernel'`` or ``'dense'`` (see
        :mod:`eventlib.ops.paths`).
      deterministic: give bit-identical results from run to run on every
        platform. The product is then formed without float atomics: each
        chunk of active rows' synapses is sorted by target and summed per
        target in a fixed order. It takes precedence over ``path`` and costs
        several times the default GPU kernel (see the benchmarks). On CPU
        every path is already deterministic.

    Returns:
      ``(..., n_post)`` array equal to ``spikes @ M`` to float32 rounding
      (half-precision weights are summed in float32, then rounded).
      By default the GPU kernel and XLA's GPU scatters add with float
      atomics, so an output receiving several events may differ in its last
      bits from run to run (exact for sums of small dyadic weights); the
      derivatives are formed the same way whatever ``deterministic`` is.
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
    if indices.shape[0] + int(max_row) >= 2**31:
        # Synapse positions are int32 in every path (and indptr is int32).
        raise ValueError(
            f"indices holds {indices.shape[0]} synapses: stored connectivity takes fewer than 2**31 - max_row; "
            "split it over devices (eventlib.shard_csr) or use procedural connectivity"
        )
    lead = spikes.shape[:-1]
    batch = int(np.prod(lead, dtype=np.int64))
    check_flat_size(batch, n_pre)
    out = csr_event_matmat_p.bind(
        spikes.reshape(batch, n_pre),
        weight,
        indptr.astype(jnp.int32),
        indices.astype(jnp.int32),
        n_post=int(n_post),
        max_row=int(max_row),
        float_as_event=bool(float_as_event),
        path=paths.bind_path(path),
        deterministic=bool(deterministic),
    )
    return out.reshape(*lead, n_post)
