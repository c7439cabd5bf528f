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
                  elsewhere; may switch to     elsewhere; on a GPU, may     elsewhere; never switches
                  the dense product at run     switch to the dense product  to dense.
                  time (a ``lax.cond`` on the  at run time like the dense
                  active count), forward and   weight; on CPU never
                  weight cotangent.            switches.
``'auto'`` on a   the dense product outright   the dense product outright   as above.
GPU, small        (no run-time choice) when    when small (same rule).
(trace time)      ``gpu_dense_seconds`` is
                  under ``GPU_SMALL_SECONDS``
``'event'``       portable pure JAX: reads     portable: reads each active  portable: regenerates each
                  the active rows only;        row's window of ``max_row``  active row; never switches.
                  never switches.              slots (every synapse when a
                                               row outgrows it).
``'event'`` form  CPU: a loop over the active  CPU: one loop step per       one loop step per active
by platform       rows (8 per step) or over    active (batch row, input)    pair on every platform.
                  chunks of 64 rows. GPU:      pair. GPU: chunks of up to
                  chunks of at least           ``GPU_CHUNK_SLOTS`` synapse
                  ``n_pre / GPU_MAX_CHUNKS``   slots (three sizes, the
                  rows: at most                smallest that holds the
                  ``GPU_MAX_CHUNKS`` steps.    active pairs chosen at run
                                               time), gathered and
                                               scattered at once: one step
                                               for most layers.
``'kernel'``      the Pallas kernels; never    the Pallas kernel (any row   the Pallas kernel.
                  switches.                    length).
``'dense'``       the plain matrix product.    one pass over every synapse  every row regenerated once
                                               (``coo_matmul``); on a GPU,  per call.
                                               the matrix built and
                                               multiplied when it has at
                                               most
                                               ``GPU_DENSIFY_ELEMENTS``
                                               entries.
deterministic     --                           ``'sorted'``: sorted         --
                                               per-target sums, no float
                                               atomics, whatever ``path``.
cotangents        no kernel: ``'kernel'``      no kernel: ``'kernel'`` and  no kernel: ``'kernel'`` and
                  and ``'auto'`` run the       ``'auto'`` run the event     ``'auto'`` run the event
                  event form (``'auto'``       form (``'auto'`` switches    form; the spikes cotangent
                  still switches); the         and takes the dense form     visits every row always.
                  spikes cotangent is the      when small on a GPU, as
                  dense product.               forward); ``deterministic``
                                               is ignored.
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

**The GPU rule.** On a GPU a loop whose trip count is decided at run time
costs one round of kernel launches and a device-to-host copy of the loop
condition per step, so the CPU's formulations (one step per active input or
active pair) would cost a launch per spike. There the portable path
(``'event'``, and the cotangents of ``'kernel'``) gathers the active inputs
in fixed-size chunks sized at trace time so that the loop has a few steps at
most (:func:`~eventlib.ops.paths.gpu_chunk_rows`, :func:`~eventlib.ops.paths.gpu_chunk_pairs`), and ``'auto'``
decides by size at trace time and by activity at run time:

1. **small** (:func:`~eventlib.ops.paths.gpu_small`): when the dense product would take under
   ``GPU_SMALL_SECONDS`` by its byte and flop count
   (:func:`~eventlib.ops.paths.gpu_dense_seconds`, at ``GPU_BYTES_PER_SECOND`` and
   ``GPU_FLOPS``), nothing event-driven can beat it (a few launches and one
   run-time choice cost about as much): ``'auto'`` runs the dense product,
   forward and cotangents, with no run-time choice;
2. **otherwise** the event (or kernel) computation runs, inside a
   ``lax.cond`` that takes the dense product instead when the active count
   measured at run time makes that cheaper: a quarter of the rows for a
   dense weight; for stored connectivity when the active pairs' synapse
   slots times ``GPU_SECONDS_PER_SLOT`` exceed :func:`~eventlib.ops.paths.gpu_dense_seconds`.

On CPU nothing changes: the loops are the fastest formulation there
(``_compact.py``), and the stored and procedural event paths never switch.
:func:`~eventlib.ops.which_path` with ``family`` and the sizes tells what ``'auto'`` runs.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax

__all__ = [
    "GPU_BYTES_PER_SECOND",
    "GPU_CHUNK_SLOTS",
    "GPU_DENSIFY_ELEMENTS",
    "GPU_FLOPS",
    "GPU_MAX_CHUNKS",
    "GPU_SECONDS_PER_SLOT",
    "GPU_SMALL_SECONDS",
    "PATHS",
    "Choice",
    "bind_path",
    "check_path",
    "get_default_path",
    "gpu_chunk_pairs",
    "gpu_chunk_rows",
    "gpu_dense_seconds",
    "gpu_kernels_supported",
    "gpu_small",
    "is_gpu",
    "resolve",
    "set_default_path",
    "which_path",
]

PATHS = ("auto", "event", "kernel", "dense")
FAMILIES = ("dense", "csr", "procedural")
_default_path = "auto"

# -- the GPU rule's constants (module docstring) ----------------------------------
GPU_PLATFORMS = ("cuda", "rocm", "gpu")
#: Rates the dense product's time is estimated with: conservative for an
#: A100/H100 (float32 at ``HIGHEST`` runs on the CUDA cores, not TF32).
GPU_BYTES_PER_SECOND = 2e12
GPU_FLOPS = 2e13
#: Below this estimated dense time ``'auto'`` runs the dense product outright.
GPU_SMALL_SECONDS = 2e-4
#: Estimated cost of one synapse slot of the stored event path (a gather and
#: an atomic scatter-add) against which the dense product is chosen.
GPU_SECONDS_PER_SLOT = 5e-11
#: The portable dense-weight path on a GPU visits its active rows in at most
#: this many chunks.
GPU_MAX_CHUNKS = 8
#: Synapse slots (active pairs x window) the stored path gathers per chunk.
GPU_CHUNK_SLOTS = 2**24
#: Stored connectivity's dense product on a GPU builds the matrix when it has
#: at most this many entries (else one pass over every synapse).
GPU_DENSIFY_ELEMENTS = 2**26


def is_gpu(platform: str | None) -> bool:
    """Whether ``platform`` (a lowering platform or a backend name) is a GPU."""
    return platform in GPU_PLATFORMS


def gpu_dense_seconds(batch: int, n_pre: int, n_post: int) -> float:
    """The dense product's time on a GPU estimated from its bytes (the weight
    read once) and flops (``2 batch n_pre n_post``), the larger of the two."""
    return max(4.0 * n_pre * n_post / GPU_BYTES_PER_SECOND, 2.0 * batch * n_pre * n_post / GPU_FLOPS)


def gpu_small(batch: int, n_pre: int, n_post: int) -> bool:
    """Whether the dense product is so cheap on a GPU that ``'auto'`` runs it
    outright (:func:`~eventlib.ops.paths.gpu_dense_seconds` under ``GPU_SMALL_SECONDS``)."""
    return gpu_dense_seconds(batch, n_pre, n_post) < GPU_SMALL_SECONDS


def gpu_chunk_rows(n_pre: int) -> int:
    """Rows per chunk of the portable dense-weight path on a GPU: a power of
    two of at least 64 and ``n_pre / GPU_MAX_CHUNKS``, at most ``n_pre``
    rounded up to one."""
    want = max(64, -(-n_pre // GPU_MAX_CHUNKS))
    chunk = 1 << (want - 1).bit_length()
    return max(1, min(chunk, 1 << max(0, (n_pre - 1).bit_length())))


def gpu_chunk_pairs(n_pairs: int, window: int) -> tuple[int, ...]:
    """The chunk sizes (active (batch row, input) pairs per loop step, in
    increasing order) of the portable stored path on a GPU: the largest holds
    every pair when their ``window`` slots fit in ``GPU_CHUNK_SLOTS``, else as
    many as fit (each step then large enough to outweigh its launches); the
    others are an eighth and a 64th of it. The smallest size that holds the
    active pairs is chosen at run time (the largest loops when none does),
    so the work follows the activity to within a factor of eight."""
    largest = max(1, min(n_pairs, GPU_CHUNK_SLOTS // max(1, window)))
    return tuple(sorted({max(1, largest >> shift) for shift in (6, 3, 0)}))


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
        that cheaper (``'auto'``: with a dense weight on every platform,
        with stored connectivity on a GPU).
      vectorised: the portable event computation takes its GPU form
        (chunks of active inputs in a loop of a few steps), not one loop
        step per active input.
    """

    run: str
    may_switch: bool
    vectorised: bool = False


def resolve(
    path: str,
    platform: str | None,
    family: str,
    *,
    kernel: bool = True,
    deterministic: bool = False,
    sizes: tuple[int, int, int] | None = None,
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
      sizes: ``(batch, n_pre, n_post)`` of the product, for the GPU rule's
        size test (:func:`~eventlib.ops.paths.gpu_small`); None skips it.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if deterministic:
        if family != "csr":
            raise ValueError("deterministic=True applies to stored connectivity only")
        return Choice("sorted", False)
    run = _concrete(path, platform)
    gpu = is_gpu(platform)
    auto = bind_path(path) == "auto"
    if auto and gpu and family != "procedural" and sizes is not None and gpu_small(*sizes):
        return Choice("dense", False, True)
    if run == "kernel" and not kernel:
        run = "event"
    # On CPU only the dense weight has a dense product cheap enough to switch
    # to at high activity (the stored and procedural event loops beat their
    # dense-equivalent passes even with every input active); on a GPU stored
    # connectivity switches too (the module docstring).
    may_switch = run != "dense" and auto and (family == "dense" or (gpu and family == "csr"))
    return Choice(run, may_switch, gpu and family != "procedural")


def which_path(
    path: str = "auto",
    backend: str | None = None,
    *,
    family: str = "dense",
    batch: int | None = None,
    n_pre: int | None = None,
    n_post: int | None = None,
) -> str:
    """The concrete path (``'event'``, ``'kernel'`` or ``'dense'``) a call with
    ``path`` runs on ``backend``.

    Without sizes, the per-platform choice of ``'auto'``; with ``batch``,
    ``n_pre`` and ``n_post`` also the GPU rule's size test (the module
    docstring): a small product runs dense on a GPU. (A run-time switch to
    the dense product, decided by the active count, is not reported.)

    Args:
      path: one of :data:`~eventlib.ops.PATHS`.
      backend: ``'cpu'``, ``'gpu'``, ``'cuda'``, ``'tpu'``, ... (default:
        JAX's default backend).
      family: ``'dense'``, ``'csr'`` or ``'procedural'`` (the operator family).
      batch, n_pre, n_post: the product's sizes (rows of spikes, inputs,
        outputs); all three or none.
    """
    backend = backend or jax.default_backend()
    platform = "cuda" if backend in ("gpu", "cuda") else backend
    given = [v is not None for v in (batch, n_pre, n_post)]
    if any(given) and not all(given):
        raise ValueError("which_path takes batch, n_pre and n_post together, or none of them")
    sizes = (int(batch), int(n_pre), int(n_post)) if all(given) else None
    return resolve(path, platform, family, sizes=sizes).run
