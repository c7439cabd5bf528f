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
    The default: currently ``'event'`` on every backend. The event path itself
    switches to the dense computation when the active count measured at run
    time makes that cheaper, so ``'auto'`` never costs more than dense.

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
# Run-time bucketing of the active count.
#
# Shapes are static under jit, the number of spikes is not. The operators
# compile one branch per capacity (powers of two) and lax.switch picks, at run
# time, the smallest capacity that holds the active inputs; the branch past
# the largest capacity is the dense computation. The work done is thus at most
# twice what the active inputs need, inside one compiled function.


def capacities(total: int, largest_fraction: float = 0.5) -> tuple[int, ...]:
    caps, cap = [], 8
    while cap < total * largest_fraction:
        caps.append(cap)
        cap *= 2
    return tuple(caps)


def switch_on_count(count, caps, event_branch, dense_branch, *operands):
    """Run ``event_branch(cap, *operands)`` for the smallest ``cap >= count``,
    or ``dense_branch(*operands)`` when no capacity holds ``count``."""
    if not caps:
        return dense_branch(*operands)
    index = jnp.searchsorted(jnp.asarray(caps, dtype=jnp.int32), count.astype(jnp.int32), side="left")
    branches = [functools.partial(event_branch, cap) for cap in caps] + [dense_branch]
    return lax.switch(index, branches, *operands)


# ---------------------------------------------------------------------------
# Primitives: the operators are JAX primitives so that vmap merges batch
# dimensions into one batched call (instead of running every switch branch),
# gradients use event-driven transpose rules, and a backend-specific kernel
# can later be registered as another lowering of the same primitive.


def make_primitive(name: str, impl, abstract_eval) -> Primitive:
    prim = Primitive(name)

    @functools.lru_cache(maxsize=None)
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
