"""What every operator shares: its JAX primitive, its batching rule, and its
size limits.

The operators are JAX primitives so that ``vmap`` merges batch dimensions
into one batched call (a vmapped cond runs both branches, and a vmapped loop
runs as long as its longest member), gradients use event-driven transpose
rules, and the Pallas kernels are the CUDA lowering of the same primitive.
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

HIGHEST = lax.Precision.HIGHEST


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


# ---------------------------------------------------------------------------
# FLAGGED: the one place eventlib changes a private function of JAX.
#
# Why: Pallas' Triton lowering gives every atomic acquire-release semantics
# and offers no way to ask for less. The kernels' atomics only accumulate
# sums that nothing reads before the kernel ends, so no ordering is needed,
# and acquire-release makes each atomic wait on the memory system
# (benchmarks/KERNEL_NOTES.md, stored connectivity, item 4).
# Fallback: where the private function is missing or has another signature,
# nothing is patched and the atomics stay acquire-release (correct, slower).
# Scope: only while eventlib's own primitives are lowered for CUDA
# (``quiet_cuda_rule`` above); nothing else in eventlib patches JAX.


@contextlib.contextmanager
def relaxed_atomics():
    """While eventlib's own kernels are lowered, Pallas' atomic adds are
    emitted with relaxed memory ordering.

    The switch is process-wide while it lasts: a Pallas kernel of another
    library lowered by another thread at that very moment would get relaxed
    atomics too.
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


# ---------------------------------------------------------------------------
# Batching rules.


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


def spikes_batching(prim: Primitive, others=None):
    """The batching rule of an operator whose first operand is the spikes
    ``(batch, n_pre)``: a mapped spike axis is merged into the batch (one
    call, every row read once for all of them); when any other operand is
    mapped, ``others(args, dims, **params)`` handles it (default:
    :func:`map_batched`, the operator once per element)."""
    others = others or functools.partial(map_batched, prim)

    def rule(args, dims, **params):
        spikes, *rest = args
        s_dim, *rest_dims = dims
        if any(d is not None for d in rest_dims):
            return others(args, dims, **params)
        spikes = jnp.moveaxis(spikes, s_dim, 0)
        n_map, batch, n_pre = spikes.shape
        out = prim.bind(spikes.reshape(n_map * batch, n_pre), *rest, **params)
        return out.reshape(n_map, batch, -1), 0

    return rule


# ---------------------------------------------------------------------------
# Size limits: positions into flattened (batch, n) arrays are int32.


def check_flat_size(batch: int, n: int, what: str = "inputs", extra: int = 0) -> None:
    """Refuse a batch whose flattened ``batch * n`` positions (plus ``extra``
    slots of padding) do not fit int32.

    Args:
      batch: rows of the batch; n: entries per row.
      what: what the entries are, for the message (``'inputs'``, ``'outputs'``).
      extra: padding slots past the last position.
    """
    if batch * n + extra >= 2**31:
        raise ValueError(
            f"a batch of {batch} rows of {n} {what} is beyond int32 indexing; split the batch into smaller calls"
        )
