"""Which computation runs, and the machinery every operator shares.

Paths
-----
``'event'``
    The portable event-driven path in pure JAX: the active inputs are
    compacted at run time and only their rows are read. Runs on every
    backend.
``'dense'``
    The dense-equivalent computation (for a dense weight, the plain matrix
    product; for stored connectivity, one pass over every synapse). Exact,
    never event-driven; useful as a reference and at very high activity.
``'auto'``
    The default: currently ``'event'`` on every backend. With a dense weight
    the event path itself switches to the dense product when the active count
    measured at run time makes that cheaper (a ``lax.cond`` on the count);
    with stored connectivity it never does, since one pass over every synapse
    measured slower than the event loop even with every input active.

:func:`which_path` tells what a call would run; :func:`set_default_path`
forces a path process-wide, and every operator and layer takes ``path=``.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import mlir

logger = logging.getLogger("eventlib")

PATHS = ("auto", "event", "dense")
_default_path = "auto"


def set_default_path(path: str) -> None:
    """Force the path used by every call that passes ``path='auto'``."""
    global _default_path
    _default_path = check_path(path)


def get_default_path() -> str:
    return _default_path


def check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    return path


def which_path(path: str = "auto", backend: str | None = None) -> str:
    """The concrete path (``'event'`` or ``'dense'``) a call with ``path``
    runs on ``backend`` (default: JAX's default backend)."""
    path = check_path(path)
    if path == "auto":
        path = _default_path
    if path == "auto":
        del backend  # every backend runs the portable event path for now
        path = "event"
    return path


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


def smooth_in_spikes(event_fn, dense_fn):
    """``event_fn(spikes, cotangent)``, linear in the cotangent, with the
    derivative in float spikes of its dense form ``dense_fn(dspikes, cotangent)``.

    An event-driven gradient visits the active inputs only, so left to JAX's
    own rules its derivative in the spikes would miss every spike that is
    exactly zero; second derivatives (``jax.hessian``) would be wrong there.
    """

    @jax.custom_jvp
    def fn(spikes, cotangent):
        return event_fn(spikes, cotangent)

    @fn.defjvp
    def fn_jvp(primals, tangents):
        spikes, cotangent = primals
        dspikes, dcotangent = tangents
        tangent = event_fn(spikes, dcotangent)
        if jnp.issubdtype(spikes.dtype, jnp.floating):
            tangent = tangent + dense_fn(dspikes, cotangent)
        return event_fn(spikes, cotangent), tangent

    return fn


# ---------------------------------------------------------------------------
# Primitives: the operators are JAX primitives so that vmap merges batch
# dimensions into one batched call (a vmapped cond runs both branches, and a
# vmapped loop runs as long as its longest member), gradients use
# event-driven transpose rules, and a backend-specific kernel can later be
# registered as another lowering of the same primitive.


def make_primitive(name: str, impl, abstract_eval) -> Primitive:
    prim = Primitive(name)

    @functools.cache
    def jitted(**params):
        return jax.jit(functools.partial(impl, **params))

    def eager(*args, **params):
        return jitted(**params)(*args)

    def lowering(*args, **params):
        logger.debug("%s lowered with %s", name, params)
        return impl(*args, **params)

    prim.def_impl(eager)
    prim.def_abstract_eval(abstract_eval)
    mlir.register_lowering(prim, mlir.lower_fun(lowering, multiple_results=False))
    return prim


HIGHEST = lax.Precision.HIGHEST
