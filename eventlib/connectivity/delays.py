"""Synaptic delays drawn from a distribution, one per synapse.

A delay is a pure function of ``(seed, row, position)`` -- the synapse's
presynaptic row and its place in that row -- through the counter-based hash
(:mod:`eventlib.connectivity.hashing`, stream ``STREAM_DELAY``), like every
other random decision of the connectivity. The distributions are given in
steps or in brainunit time (converted with brainstate's ``dt`` by the
layers, which take them as ``delay=``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .hashing import STREAM_DELAY, below, hash_bits
from .stored import Connectivity

__all__ = ["UniformDelay", "DelayChoice", "draw_delays"]


@dataclasses.dataclass(frozen=True)
class UniformDelay:
    """Every delay from ``low`` to ``high`` (both included) equally likely.

    Attributes:
      low, high: the smallest and largest delay: ints (steps) or brainunit
        times (``1.0 * u.ms``), each a whole multiple of brainstate's ``dt``.
    """

    low: object
    high: object


@dataclasses.dataclass(frozen=True)
class DelayChoice:
    """Delay ``values[k]`` with probability ``probs[k]``.

    Attributes:
      values: a sequence of delays: ints (steps) or brainunit times.
      probs: as many non-negative probabilities, summing to 1 (within 1e-6).
    """

    values: object
    probs: object


def _synapse_bits(conn: Connectivity, seed: int) -> np.ndarray:
    pre = conn.pre_indices().astype(np.int64)
    position = np.arange(conn.n_synapses, dtype=np.int64) - np.asarray(conn.indptr, np.int64)[pre]
    return hash_bits(int(seed), STREAM_DELAY, pre, position)


def choice_table(probs) -> np.ndarray:
    """uint32 thresholds turning 32 random bits into an index into ``probs``:
    ``searchsorted(table, bits, side='right')`` is ``k`` with probability
    ``probs[k]`` (to within 2**-32).

    Args:
      probs: non-negative probabilities summing to 1 (within 1e-6).
    """
    p = np.asarray(probs, np.float64)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1.0) > 1e-6:
        raise ValueError(
            f"probs must be a non-empty 1-D array of non-negative probabilities summing to 1, got {probs!r}"
        )
    cum = np.cumsum(p / p.sum())[:-1]
    return np.minimum(np.ceil(cum * 4294967296.0), 4294967295.0).astype(np.uint32)


def draw_delays(dist, conn: Connectivity, seed: int) -> np.ndarray:
    """One delay per synapse of ``conn`` (storage order), in steps.

    Args:
      dist: a :class:`UniformDelay` or :class:`DelayChoice` whose delays are
        already in steps (non-negative ints).
      conn: the synapses.
      seed: int in ``[0, 2**32)``.

    Returns:
      int32 ``(n_synapses,)``.
    """
    bits = _synapse_bits(conn, seed)
    if isinstance(dist, UniformDelay):
        low, high = int(dist.low), int(dist.high)
        if not 0 <= low <= high:
            raise ValueError(f"UniformDelay needs 0 <= low <= high (in steps), got low={low}, high={high}")
        return (low + below(bits, high - low + 1)).astype(np.int32)
    if isinstance(dist, DelayChoice):
        values = np.asarray(dist.values, np.int64)
        table = choice_table(dist.probs)
        if values.shape != (table.shape[0] + 1,):
            raise ValueError(
                f"DelayChoice needs as many values as probs, got {values.shape[0]} values and "
                f"{table.shape[0] + 1} probs"
            )
        return values[np.searchsorted(table, bits, side="right")].astype(np.int32)
    raise TypeError(f"expected a UniformDelay or DelayChoice, got {type(dist).__name__}")
