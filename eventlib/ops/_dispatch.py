"""Which computation runs, and the machinery every operator shares.

Paths
-----
``'event'``
    The portable event-driven path in pure JAX: the active inputs are
    compacted at run time and only their rows are read. Runs on every
    backend.
``'kernel'``
    The GPU kernels, written in Pallas (JAX's kernel language, lowered
    through Triton): compiled on a CUDA GPU of compute capability 8.0 or
    newer; run through the Pallas interpreter everywhere else (exact but
    slow -- that is how the kernels are tested without a GPU).
``'dense'``
    The dense-equivalent computation (for a dense weight, the plain matrix
    product; for stored connectivity, one pass over every synapse). Exact,
    never event-driven; useful as a reference and at very high activity.
``'auto'``
    The default: ``'kernel'`` where the computation is compiled for a
    supported GPU, ``'event'`` everywhere else (CPU, TPU, older GPUs). With
    a dense weight it also switches to the dense product when the active
    count measured at run time makes that cheaper (a ``lax.cond`` on the
    count); with stored connectivity it never does. An explicit
    ``'event'`` or ``'kernel'`` never switches.

``'auto'`` is resolved when the operator is compiled, for the platform it is
compiled for, so the same code picks the kernel on a GPU and the portable
path on a CPU. :func:`which_path` tells what a call would run;
:func:`set_default_path` forces a path process-wide, and every operator and
layer takes ``path=``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import warnings

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import mlir

logger = logging.getLogger("eventlib")

PATHS = ("auto", "event", "kernel", "dense")
_default_path = "auto"


def set_default_path(path: str) -> None:
    """Force the path used by every call that passes ``path='auto'``.

    The default is read when a function is traced: a function already
    compiled by ``jax.jit`` keeps the path it was traced with.
    """
    global _default_path
    _default_path = check_path(path)


def get_default_path() -> str:
    """The process-wide default set by :func:`set_default_path` (initially ``'auto'``)."""
    return _default_path


def check_path(path: str) -> str:
    """``path`` if it is one of :data:`PATHS`, else a ValueError.

    Args:
      path: ``'auto'``, ``'event'``, ``'kernel'`` or ``'dense'``.
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    return path


def resolve_default(path: str) -> str:
    """``path`` with ``'auto'`` replaced by the process-wide default (which
    may itself be ``'auto'``, resolved later per platform)."""
    path = check_path(path)
    return _default_path if path == "auto" else path


@functools.cache
def gpu_kernels_supported() -> bool:
    """Whether this process has a CUDA GPU the Pallas kernels compile for
    (compute capability 8.0 or newer: Triton's Ampere-and-newer code paths)."""
    try:
        devices = jax.devices("cuda")
    except RuntimeError:
        return False
    return bool(devices) and all(float(getattr(d, "compute_capability", "0")) >= 8.0 for d in devices)


def resolve_path(path: str, platform: str | None) -> str:
    """The concrete path (``'event'``, ``'kernel'`` or ``'dense'``) for a
    computation compiled for ``platform`` (``'cuda'``, ``'cpu'``, ...)."""
    path = resolve_default(path)
    if path == "auto":
        path = "kernel" if platform == "cuda" and gpu_kernels_supported() else "event"
    return path


def which_path(path: str = "auto", backend: str | None = None) -> str:
    """The concrete path (``'event'``, ``'kernel'`` or ``'dense'``) a call with
    ``path`` runs on ``backend`` (default: JAX's default backend)."""
    backend = backend or jax.default_backend()
    return resolve_path(path, "cuda" if backend in ("gpu", "cuda") else backend)


# ---------------------------------------------------------------------------
# Work proportional to the active count, inside one compiled function.
#
# Shapes are static under jit, the number of spikes is not. The active
# entries are compacted once (one pass over the spikes), then a while loop
# with a run-time trip count visits them in chunks of a static size, so the
# work is ceil(count / chunk) chunks. (A lax.switch over many static
# capacities was tried first: XLA:CPU ran its large branches several times
# slower than the same code outside a conditional.)


def active_indices(mask, chunk: int):
    """Positions of the True entries of 1-D ``mask``, then padding equal to
    ``mask.size`` (out of bounds: gathers read zeros, scatters drop), with
    room for one chunk more so that no chunk slice is ever clamped."""
    n = mask.shape[0]
    # A prefix sum gives each active entry its slot; one scatter writes them.
    # (About twice as fast on CPU as jnp.nonzero(size=...), which sorts.)
    slot = jnp.cumsum(mask, dtype=jnp.int32) - 1
    slot = jnp.where(mask, slot, n + chunk)
    return jnp.full((n + chunk,), n, jnp.int32).at[slot].set(jnp.arange(n, dtype=jnp.int32), mode="drop")


def count_active(mask):
    """Number of True entries of ``mask``, as int32."""
    if mask.size < 2**24:
        # XLA:CPU sums float32 about 6x faster than bool-as-int32 (measured
        # 5 vs 32 us at 20000 entries); float32 counts are exact below 2**24.
        return jnp.sum(mask.astype(jnp.float32)).astype(jnp.int32)
    return jnp.sum(mask, dtype=jnp.int32)


def chunked_loop(count, chunk: int, body, init):
    """``init`` folded through ``body(start, carry)`` for start = 0, chunk,
    2 * chunk, ... below ``count`` (a traced integer)."""
    n_chunks = (count + chunk - 1) // chunk
    return lax.fori_loop(0, n_chunks, lambda j, carry: body(j * chunk, carry), init)


# ---------------------------------------------------------------------------
# Primitives: the operators are JAX primitives so that vmap merges batch
# dimensions into one batched call (a vmapped cond runs both branches, and a
# vmapped loop runs as long as its longest member), gradients use
# event-driven transpose rules, and a backend-specific kernel can later be
# registered as another lowering of the same primitive.


def make_primitive(name: str, impl, abstract_eval) -> Primitive:
    """A primitive computed by ``impl(*args, platform=..., **params)``, lowered
    once for CUDA (where ``path='auto'`` picks the GPU kernels) and once for
    every other platform."""
    prim = Primitive(name)

    @functools.cache
    def jitted(**params):
        # Binding inside jit lets the platform's lowering rule choose.
        return jax.jit(lambda *args: prim.bind(*args, **params))

    def eager(*args, **params):
        return jitted(**params)(*args)

    def lowering(*args, platform, **params):
        logger.debug("%s lowered for %s with %s", name, platform or "the default platform", params)
        return impl(*args, platform=platform, **params)

    prim.def_impl(eager)
    prim.def_abstract_eval(abstract_eval)
    mlir.register_lowering(prim, mlir.lower_fun(functools.partial(lowering, platform=None), multiple_results=False))
    cuda_rule = mlir.lower_fun(functools.partial(lowering, platform="cuda"), multiple_results=False)

    def quiet_cuda_rule(ctx, *args, **params):
        # JAX 0.11+ marks Pallas' Triton lowering as deprecated in favour of
        # Mosaic GPU, which targets Hopper and newer only; the kernels keep
        # Triton for Ampere support (see benchmarks/KERNEL_NOTES.md) and keep
        # the warning out of every user's log.
        with warnings.catch_warnings(), relaxed_atomics():
            warnings.filterwarnings("ignore", "The Pallas Triton backend is deprecated", DeprecationWarning)
            return cuda_rule(ctx, *args, **params)

    mlir.register_lowering(prim, quiet_cuda_rule, platform="cuda")
    return prim


@contextlib.contextmanager
def relaxed_atomics():
    """While eventlib's own kernels are lowered, Pallas' atomic adds are
    emitted with relaxed memory ordering.

    Pallas' Triton lowering gives every atomic acquire-release semantics and
    offers no way to ask for less. The kernels' atomics only accumulate sums
    that nothing reads before the kernel ends, so no ordering is needed, and
    acquire-release makes each one wait on the memory system. The switch
    reaches into a private module of jax; where that module is not as
    expected, nothing changes (the atomics stay acquire-release: correct,
    slower). The switch is process-wide while it lasts: a Pallas kernel of
    another library lowered by another thread at that very moment would get
    relaxed atomics too.
    """
    try:
        from jax._src.pallas.triton import lowering as triton_lowering

        original = triton_lowering._atomic_rmw
        relaxed = triton_lowering.tt_dialect.MemSemantic.RELAXED
        if "semantic" not in inspect.signature(original).parameters:
            raise AttributeError("_atomic_rmw takes no semantic")
    except (ImportError, AttributeError, TypeError, ValueError):
        yield
        return
    triton_lowering._atomic_rmw = functools.partial(original, semantic=relaxed)
    try:
        yield
    finally:
        triton_lowering._atomic_rmw = original


HIGHEST = lax.Precision.HIGHEST


# ---------------------------------------------------------------------------
# Pallas kernels: one place that knows how they are launched.


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
    call first gets a copy of it, which reads and writes the whole output:
    2.7 us per step of the 400000-neuron network on an H200. (An
    optimization barrier does not prevent the merge: XLA removes it first.)
    Here the zero is computed from the first element of the call's own input
    ``tied_to`` (+0 whatever that element is, inf and NaN included), so it
    is a different value in every call, and each call's buffer is its own
    broadcast, written once and never copied."""
    if tied_to.size == 0:
        return jnp.zeros((size,), dtype)
    first = tied_to.reshape(-1)[0]
    zero = jnp.abs(jnp.where(jnp.isfinite(first), first, 0) * 0).astype(dtype)
    return jnp.broadcast_to(zero, (size,))


# The kernels' compaction of active inputs: two passes over the input in
# blocks, with a prefix sum over the (few) block counts in between. Entries
# keep their order, so the kernels sum in the same order on every run.
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


def map_batched(prim: Primitive, args, dims, **params):
    """A batching rule by ``lax.map``: ``prim`` bound once per element of the
    mapped axis, for primitives (or argument combinations) with no merged
    batched form; unmapped arguments are shared by every element."""
    size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
    moved = [None if d is None else jnp.moveaxis(a, d, 0) for a, d in zip(args, dims, strict=True)]

    def one(mapped):
        it = iter(mapped)
        return prim.bind(*[a if m is None else next(it) for a, m in zip(args, moved, strict=True)], **params)

    out = lax.map(one, [m for m in moved if m is not None])
    assert out.shape[0] == size
    return out, 0
