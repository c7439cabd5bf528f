"""The counter-based hash behind every random connectivity decision.

A draw is a pure function of ``(seed, stream, row, position)`` in 32-bit
unsigned integer arithmetic, so a GPU kernel can regenerate one row without
storing it. Each function here is written once and evaluated with NumPy (the
stored builders, :mod:`eventlib.connectivity.stored`) or with JAX (the row
rule, :mod:`eventlib.connectivity.procedural`, and the kernels): pass
``xp=np`` or ``xp=jax.numpy``. Both evaluate the same uint32 operations, which
wrap identically, so "procedural = stored, bit for bit" rests on this file
alone.

The hash of one draw::

    stream_key = mix32(stream * GOLDEN)                    # host constant
    seed_key   = mix32(seed ^ stream_key)                  # may be traced
    row_key    = mix32(row * GOLDEN + seed_key)
    bits       = mix32(mix32(row_key ^ position * GOLDEN) + row_key)
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "GOLDEN",
    "STREAM_AFFERENT",
    "STREAM_COUNT",
    "STREAM_DELAY",
    "STREAM_PROB",
    "below",
    "hash_bits",
    "mix32",
    "position_bits",
    "row_keys",
    "seed_key",
    "stream_key",
]

# Streams keep the draws of different constructions independent for one seed.
STREAM_PROB = 1  # fixed_prob: geometric gaps
STREAM_COUNT = 2  # fixed counts: targets drawn with or without repeats
STREAM_AFFERENT = 3  # keep_afferent_rows: one draw per row
STREAM_DELAY = 4  # synaptic delays drawn from a distribution: one draw per synapse

#: The 32-bit golden ratio, an odd multiplier that spreads consecutive
#: counters (rows, positions, streams) over the whole word before mixing.
GOLDEN = 0x9E3779B9


def mix32(x, xp=np):
    """A bijective avalanche mix of uint32 words (the 'lowbias32' constants
    found by C. Wellons' hash prospector).

    Args:
      x: uint32 array (NumPy or JAX, matching ``xp``).
      xp: the array module, ``numpy`` or ``jax.numpy``.
    """
    u32 = xp.uint32
    # NumPy warns on overflow of uint32 scalars; the wrap-around is intended.
    with np.errstate(over="ignore"):
        x = x ^ (x >> u32(16))
        x = x * u32(0x7FEB352D)
        x = x ^ (x >> u32(15))
        x = x * u32(0x846CA68B)
        return x ^ (x >> u32(16))


def stream_key(stream: int) -> int:
    """The per-stream constant of the key, a Python int (folded on the host
    so that a kernel never recomputes it).

    Args:
      stream: one of the ``STREAM_*`` constants.
    """
    with np.errstate(over="ignore"):
        return int(mix32(np.uint32(stream) * np.uint32(GOLDEN)))


def seed_key(seed, stream: int, xp=np):
    """The per-(seed, stream) part of every row key, a uint32 scalar.

    Args:
      seed: a Python or NumPy int (taken modulo ``2**32``), or a uint32
        scalar array, which may be traced (the seed operand of a product).
      stream: one of the ``STREAM_*`` constants.
      xp: the array module, ``numpy`` or ``jax.numpy``.
    """
    if isinstance(seed, (int, np.integer)):
        seed = xp.uint32(int(seed) & 0xFFFFFFFF)
    else:
        seed = xp.asarray(seed).astype(xp.uint32)
    return mix32(seed ^ xp.uint32(stream_key(stream)), xp)


def row_keys(base, rows, xp=np):
    """The key of each row: ``rows`` (any integer array, taken modulo
    ``2**32``) mixed with ``base`` from :func:`seed_key`.

    Args:
      base: uint32 scalar from :func:`seed_key`.
      rows: integer array of row numbers.
      xp: the array module, ``numpy`` or ``jax.numpy``.
    """
    with np.errstate(over="ignore"):
        return mix32(xp.asarray(rows).astype(xp.uint32) * xp.uint32(GOLDEN) + base, xp)


def position_bits(keys, positions, xp=np):
    """32 random bits of each (row key, position) pair; the two broadcast.

    For one row the map from position to bits is a bijection, so a row never
    sees the same word twice within ``2**32`` positions.

    Args:
      keys: uint32 row keys from :func:`row_keys`.
      positions: integer array of positions in the row (modulo ``2**32``).
      xp: the array module, ``numpy`` or ``jax.numpy``.
    """
    with np.errstate(over="ignore"):
        x = mix32(keys ^ (xp.asarray(positions).astype(xp.uint32) * xp.uint32(GOLDEN)), xp)
        return mix32(x + keys, xp)


def hash_bits(seed, stream: int, rows, positions, xp=np):
    """32 random bits for each (row, position) pair; ``rows`` and
    ``positions`` broadcast together (pass ``rows[:, None]`` for a table).

    For one row the map from position to bits is a bijection, so a row never
    sees the same word twice within ``2**32`` positions.

    Args:
      seed: int in ``[0, 2**32)`` (or a uint32 scalar array, see :func:`seed_key`).
      stream: one of the ``STREAM_*`` constants.
      rows, positions: integer arrays (taken modulo ``2**32``).
      xp: the array module, ``numpy`` (the default) or ``jax.numpy``.
    """
    return position_bits(row_keys(seed_key(seed, stream, xp), rows, xp), positions, xp)


def below(bits, n: int, xp=np):
    """``(bits * n) >> 32`` as int32: uint32 words mapped onto ``[0, n)`` with
    no modulo bias beyond ``2**-32``.

    The multiply-high is done from 16-bit halves (every partial product fits
    in 32 bits) because JAX has no uint64 without x64; NumPy runs the same
    arithmetic, so both give the same draw.

    Args:
      bits: uint32 array.
      n: the range, ``0 <= n < 2**31``.
      xp: the array module, ``numpy`` or ``jax.numpy``.
    """
    u32 = xp.uint32
    with np.errstate(over="ignore"):
        a_lo, a_hi = bits & u32(0xFFFF), bits >> u32(16)
        b_lo, b_hi = u32(n & 0xFFFF), u32(n >> 16)
        cross = a_hi * b_lo + ((a_lo * b_lo) >> u32(16))
        cross2 = a_lo * b_hi + (cross & u32(0xFFFF))
        return (a_hi * b_hi + (cross >> u32(16)) + (cross2 >> u32(16))).astype(xp.int32)
