"""Which computation runs: the one place that turns ``path=`` into a computation.

Every operator takes ``path=``, one of :data:`~eventlib.ops.PATHS`. What each value runs, per
operator family (the AD rules ask ``resolve`` too, so the table covers
them):

================  ===========================  ===========================  ===========================
``path``          dense weight                 stored (CSR)                 procedural
                  (``event_matmul``)           (``csr_event_matmul``)       (``procedural_event_matmul``)
================  ===========================  ===========================  ===========================
``'auto'``        ``'kernel'`` on a supported  ``'kernel'`` on a supported  ``'kernel'`` on a supported
                  CUDA GPU, ``'event'``        CUDA GPU, ``'event'``        CUDA GPU, ``'event'``
                  elsewhere; may switch to     elsewhere; never switches    elsewhere; never switches
                  the dense product at run     to dense.                    to dense.
                  time (a ``lax.cond`` on the
                  active count), forward and
                  weight cotangent.
``'event'``       portable pure JAX: reads     portable: reads each active  portable: regenerates each
                  the active rows only;        row's window of ``max_row``  active row; never switches.
                  never switches.              slots (every synapse when a
                                               row outgrows it).
``'kernel'``      the Pallas kernels; never    the Pallas kernel (any row   the Pallas kernel.
                  switches.                    length).
``'dense'``       the plain matrix product.    one pass over every synapse  every row regenerated once
                                               (``coo_matmul``).            per call.
deterministic     --                           ``'sorted'``: sorted         --
                                               per-target sums, no float
                                               atomics, whatever ``path``.
cotangents        no kernel: ``'kernel'``      no kernel: ``'kernel'`` and  no kernel: ``'kernel'`` and
                  and ``'auto'`` run the       ``'auto'`` run the event     ``'auto'`` run the event
                  event form (``'auto'``       form; ``deterministic`` is   form; the spikes cotangent
                  still switches).             ignored.                     visits every row always.
================  ===========================  ===========================  ===========================

``'kernel'`` is compiled through Triton on a CUDA GPU of compute capability
8.0 or newer and runs in the Pallas interpreter everywhere else (exact but
slow: that is how the kernels are tested without a GPU).

The path is settled in two steps, both here. When an operator is traced,
``bind_path`` checks ``path`` and replaces ``'auto'`` by the process-wide
default (:func:`~eventlib.ops.set_default_path`): the default then becomes a parameter of
the primitive, so a compiled function keeps the default it was traced with
and a changed default compiles anew. When the primitive is lowered for a
platform, ``resolve`` turns what remains of ``'auto'`` into a concrete
computation for that platform, so the same code picks the kernel on a GPU
and the portable path on a CPU. :func:`~eventlib.ops.which_path` tells what a call would
run.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax

__all__ = [
    "PATHS",
    "Choice",
    "bind_path",
    "check_path",
    "get_default_path",
    "gpu_kernels_supported",
    "resolve",
    "set_default_path",
    "which_path",
]

PATHS = ("auto", "event", "kernel", "dense")
FAMILIES = ("dense", "csr", "procedural")
_default_path = "auto"


def check_path(path: str) -> str:
    """``path`` itself, if it is one of :data:`~eventlib.ops.PATHS`.

    Args:
      path: the value to check.

    Raises:
      ValueError: for any other value.
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    return path


def set_default_path(path: str) -> None:
    """Force the path used by every call that passes ``path='auto'``.

    The default is read when a function is traced: a function already
    compiled by ``jax.jit`` keeps the path it was traced with.

    Args:
      path: one of :data:`~eventlib.ops.PATHS` (``'auto'`` restores the per-platform choice).
    """
    global _default_path
    _default_path = check_path(path)


def get_default_path() -> str:
    """The process-wide default set by :func:`~eventlib.ops.set_default_path` (initially ``'auto'``)."""
    return _default_path


def bind_path(path: str) -> str:
    """The value an operator binds into its primitive: ``path`` checked, with
    ``'auto'`` replaced by the process-wide default (which may itself be
    ``'auto'``, resolved per platform by ``resolve``).

    Args:
      path: one of :data:`~eventlib.ops.PATHS`.
    """
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


def _concrete(path: str, platform: str | None) -> str:
    """``'event'``, ``'kernel'`` or ``'dense'``: ``path`` after the default,
    with ``'auto'`` settled for ``platform``."""
    path = bind_path(path)
    if path == "auto":
        path = "kernel" if platform == "cuda" and gpu_kernels_supported() else "event"
    return path


class Choice(NamedTuple):
    """A settled path.

    Attributes:
      run: the computation: ``'event'``, ``'kernel'``, ``'dense'`` or
        ``'sorted'`` (the deterministic stored-connectivity product).
      may_switch: the event or kernel computation may take the dense
        product instead when the active count measured at run time makes
        that cheaper (``'auto'`` with a dense weight only).
    """

    run: str
    may_switch: bool


def resolve(
    path: str, platform: str | None, family: str, *, kernel: bool = True, deterministic: bool = False
) -> Choice:
    """What a computation of ``family`` runs for ``path`` on ``platform``
    (the table in this module's docstring).

    Args:
      path: the bound path (``bind_path``), or any of :data:`~eventlib.ops.PATHS`.
      platform: the platform lowered for (``'cuda'``, ``'cpu'``, ...; None
        for the default lowering).
      family: ``'dense'``, ``'csr'`` or ``'procedural'``.
      kernel: whether the computation has a Pallas kernel; the cotangents
        have none, and run the event form where the kernel was asked for.
      deterministic: the stored-connectivity product without float atomics
        (``'sorted'``), taking precedence over ``path``.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if deterministic:
        if family != "csr":
            raise ValueError("deterministic=True applies to stored connectivity only")
        return Choice("sorted", False)
    run = _concrete(path, platform)
    if run == "kernel" and not kernel:
        run = "event"
    # Only the dense weight has a dense product cheap enough to switch to at
    # high activity; the stored and procedural event paths beat their
    # dense-equivalent passes even with every input active.
    may_switch = family == "dense" and run != "dense" and bind_path(path) == "auto"
    return Choice(run, may_switch)


def which_path(path: str = "auto", backend: str | None = None) -> str:
    """The concrete path (``'event'``, ``'kernel'`` or ``'dense'``) a call with
    ``path`` runs on ``backend``.

    Args:
      path: one of :data:`~eventlib.ops.PATHS`.
      backend: ``'cpu'``, ``'gpu'``, ``'cuda'``, ``'tpu'``, ... (default:
        JAX's default backend).
    """
    backend = backend or jax.default_backend()
    return _concrete(path, "cuda" if backend in ("gpu", "cuda") else backend)
