"""Finding the active inputs: once in XLA for the portable paths, once in
Pallas for the kernels; and the launch of a Pallas kernel.

Shapes are static under jit, the number of spikes is not. The active entries
are compacted once (one pass over the spikes), then a loop with a run-time
trip count visits them, so the work follows the active count. (A loop,
not a switch over static capacities: XLA:CPU runs the large branches of a
conditional several times slower than the same code outside one.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

# -- portable (XLA) ------------------------------------------------------------


def active_indices(mask, chunk: int):
    """Positions of the True entries of 1-D ``mask``, then padding equal to
    ``mask.size`` (out of bounds: gathers read zeros, scatters drop), with
    room for one chunk more so that no chunk slice is ever clamped."""
    n = mask.shape[0]
    # A prefix sum gives each active entry its slot and one scatter writes
    # them: cheaper on CPU than jnp.nonzero(size=...), which sorts.
    slot = jnp.cumsum(mask, dtype=jnp.int32) - 1
    slot = jnp.where(mask, slot, n + chunk)
    return jnp.full((n + chunk,), n, jnp.int32).at[slot].set(jnp.arange(n, dtype=jnp.int32), mode="drop")


def count_active(mask):
    """Number of True entries of ``mask``, as int32."""
    if mask.size < 2**24:
        # XLA:CPU sums float32 several times faster than bool-as-int32
        # (KERNEL_NOTES.md); float32 counts are exact below 2**24.
        return jnp.sum(mask.astype(jnp.float32)).astype(jnp.int32)
    return jnp.sum(mask, dtype=jnp.int32)


def chunked_loop(count, chunk: int, body, init):
    """``init`` folded through ``body(start, carry)`` for start = 0, chunk,
    2 * chunk, ... below ``count`` (a traced integer)."""
    n_chunks = (count + chunk - 1) // chunk
    return lax.fori_loop(0, n_chunks, lambda j, carry: body(j * chunk, carry), init)


# -- Pallas: how a kernel is launched -----------------------------------------


def pallas_call(kernel, *, platform: str | None, num_warps: int = 4, num_stages: int = 1, **kwargs):
    """``pl.pallas_call`` compiled through Triton on CUDA, interpreted elsewhere."""
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plgpu

    if platform == "cuda":
        return pl.pallas_call(
            kernel, compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=num_stages), **kwargs
        )
    return pl.pallas_call(kernel, interpret=True, **kwargs)


def zeros_for_call(size: int, dtype, tied_to):
    """A zero buffer of ``size`` elements for one kernel call to fill in place
    (``input_output_aliases``).

    XLA merges identical zero broadcasts into one buffer. When several
    kernel calls of one program (a network's unrolled steps) share it, each
    call first gets a copy of it, which reads and writes the whole output
    on every call (KERNEL_NOTES.md, stored connectivity, item 7). An
    optimization barrier does not prevent the merge (XLA removes it first).
    Here the zero is computed from the first element of the call's own input
    ``tied_to`` (+0 whatever that element is, inf and NaN included), so it
    is a different value in every call, and each call's buffer is its own
    broadcast, written once and never copied."""
    if tied_to.size == 0:
        return jnp.zeros((size,), dtype)
    first = tied_to.reshape(-1)[0]
    zero = jnp.abs(jnp.where(jnp.isfinite(first), first, 0) * 0).astype(dtype)
    return jnp.broadcast_to(zero, (size,))


# -- Pallas: the kernels' compaction of active inputs ---------------------------
#
# Two passes over the input in blocks, with a prefix sum over the (few) block
# counts in between. Entries keep their order, so the kernels sum in the same
# order on every run.
_COMPACT_BLOCK = 1024


def _active_block(v_ref, g, rows: int, block: int):
    """Whether each of block ``g``'s columns of ``v_ref`` (rows, m) holds a
    nonzero in any row, and the block's values when ``rows == 1``."""
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plgpu

    m = v_ref.shape[1]
    ok = g * block + jnp.arange(block) < m

    def row(r, active):
        v = plgpu.load(v_ref.at[r, pl.ds(g * block, block)], mask=ok, other=0)
        return active | (v != 0)

    if rows == 1:
        v = plgpu.load(v_ref.at[jnp.int32(0), pl.ds(g * block, block)], mask=ok, other=0)
        return v != 0, v
    return lax.fori_loop(0, rows, row, jnp.zeros((block,), jnp.bool_)), None


def _count_kernel(v_ref, counts_ref, *, rows, block):
    from jax.experimental import pallas as pl

    g = pl.program_id(0)
    active, _ = _active_block(v_ref, g, rows, block)
    counts_ref[g] = jnp.sum(active.astype(jnp.int32))


def _compact_kernel(offsets_ref, v_ref, _idx0_ref, _vals0_ref, idx_ref, vals_ref, *, rows, block):
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plgpu

    g = pl.program_id(0)
    active, v = _active_block(v_ref, g, rows, block)
    local = jnp.cumsum(active.astype(jnp.int32)) - 1
    # Inactive lanes aim at a spare last slot (the interpreter writes masked
    # lanes back in place, which must not land on an active lane's slot).
    slot = jnp.where(active, offsets_ref[g] + local, idx_ref.shape[0] - 1)
    plgpu.store(idx_ref.at[slot], g * block + jnp.arange(block, dtype=jnp.int32), mask=active)
    if v is not None:
        plgpu.store(vals_ref.at[slot], v.astype(vals_ref.dtype), mask=active)


def compact_active(values, pad: int, platform: str | None):
    """The kernels' :func:`active_indices`: for ``values`` of shape (rows, m),
    the columns with a nonzero in any row, in order, as int32 ``idx`` padded
    with zeros to ``m + pad`` entries, their values ``vals`` likewise (for
    ``rows == 1``; else None), and the count."""
    rows, m = values.shape
    block = _COMPACT_BLOCK
    n_blocks = -(-m // block)
    counts = pallas_call(
        functools.partial(_count_kernel, rows=rows, block=block),
        platform=platform,
        grid=(n_blocks,),
        out_shape=jax.ShapeDtypeStruct((n_blocks,), jnp.int32),
    )(values)
    ends = jnp.cumsum(counts)
    count, offsets = ends[-1], ends - counts
    size = m + pad + 1  # + the spare slot
    idx, vals = pallas_call(
        functools.partial(_compact_kernel, rows=rows, block=block),
        platform=platform,
        grid=(n_blocks,),
        out_shape=(jax.ShapeDtypeStruct((size,), jnp.int32), jax.ShapeDtypeStruct((size,), values.dtype)),
        input_output_aliases={2: 0, 3: 1},
    )(offsets, values, jnp.zeros((size,), jnp.int32), jnp.zeros((size,), values.dtype))
    return idx[:-1], (vals[:-1] if rows == 1 else None), count
