"""Connectivity as a pure function of (seed, sizes, parameters).

Every random decision is a counter-based hash of ``(seed, stream, row,
position)`` in 32-bit unsigned integer arithmetic
(:mod:`eventlib.connectivity.hashing`) -- the kind of function a GPU kernel
can evaluate to regenerate one row without storing it. Nothing
here depends on global random state, on the backend or on the process, and
nothing ever allocates an ``n_pre x n_post`` array: time and memory grow with
the number of synapses (rows are generated in bounded chunks).

The result is a :class:`Connectivity`: compressed sparse rows ordered by
presynaptic neuron (``indptr``, ``indices``), so that an active input finds
all of its targets in one contiguous run.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from .. import _checks
from .hashing import STREAM_AFFERENT, STREAM_COUNT, STREAM_PROB, below, hash_bits

__all__ = [
    "Connectivity",
    "fixed_prob",
    "fixed_num_per_pre",
    "fixed_num_per_post",
    "from_indices",
    "geometric_table",
    "MAX_SYNAPSES",
]

#: Indices and row offsets are int32 (JAX's default without x64). A
#: connectivity whose flat synapse positions would pass this bound is refused
#: with a clear error instead of silently overflowing.
MAX_SYNAPSES = 2**31 - 1

_CHUNK_ELEMENTS = 1 << 22  # elements generated at once: bounds peak memory


def _uniform_open(bits: np.ndarray) -> np.ndarray:
    """Uniform doubles in (0, 1) from 32-bit words."""
    return (bits.astype(np.float64) + 0.5) * (1.0 / 4294967296.0)


@dataclasses.dataclass(frozen=True, eq=False)
class Connectivity:
    """Synapses stored by presynaptic row (CSR).

    Attributes:
      indptr: int32 array ``(n_pre + 1,)``; row ``i``'s synapses are
        ``indices[indptr[i]:indptr[i + 1]]``.
      indices: int32 array ``(n_synapses,)`` of postsynaptic targets, ascending
        within each row. Duplicates (when allowed) are separate synapses whose
        weights add up.
      n_pre, n_post: the sizes of the two populations.
    """

    indptr: np.ndarray
    indices: np.ndarray
    n_pre: int
    n_post: int

    def __post_init__(self):
        if self.indptr.shape != (self.n_pre + 1,):
            raise ValueError(f"indptr must have shape ({self.n_pre + 1},), got {self.indptr.shape}")
        check_capacity(int(self.indices.shape[0]), self.max_row)

    @property
    def n_synapses(self) -> int:
        """Number of stored synapses (repeated pairs count once each)."""
        return int(self.indices.shape[0])

    @property
    def row_lengths(self) -> np.ndarray:
        """Synapses of each presynaptic neuron (its out-degree), shape ``(n_pre,)``."""
        return np.diff(self.indptr)

    @property
    def max_row(self) -> int:
        """Length of the longest row, which is the static window an
        event-driven gather reads."""
        return int(self.row_lengths.max()) if self.n_pre else 0

    @property
    def nbytes(self) -> int:
        """Bytes of the stored index arrays (``indptr`` and ``indices``)."""
        return int(self.indptr.nbytes + self.indices.nbytes)

    def pre_indices(self) -> np.ndarray:
        """The presynaptic neuron of each synapse, in storage order."""
        return np.repeat(np.arange(self.n_pre, dtype=np.int32), self.row_lengths)

    def in_degrees(self) -> np.ndarray:
        """Synapses onto each postsynaptic neuron (its in-degree), shape ``(n_post,)``."""
        return np.bincount(self.indices, minlength=self.n_post)

    def to_dense(self, weight=1.0) -> np.ndarray:
        """The ``(n_pre, n_post)`` matrix; duplicate synapses add up."""
        dense = np.zeros((self.n_pre, self.n_post), np.result_type(np.asarray(weight).dtype, np.float32))
        np.add.at(dense, (self.pre_indices(), self.indices), weight)
        return dense


def check_capacity(n_synapses: int, max_row: int) -> None:
    """Refuse a connectivity whose synapse positions pass the int32 range.

    Args:
      n_synapses: the number of stored synapses.
      max_row: the length of the longest row.

    Raises:
      ValueError: ``n_synapses + max_row`` exceeds :data:`MAX_SYNAPSES`.
    """
    # An event-driven gather reads a window of max_row positions from any row
    # start, so the last window must also stay inside int32.
    if n_synapses + max_row > MAX_SYNAPSES:
        raise ValueError(
            f"connectivity with {n_synapses} synapses (longest row {max_row}) exceeds the "
            f"int32 index range used by eventlib (at most {MAX_SYNAPSES} synapse positions); "
            "split the population into several layers"
        )


def _from_rows(n_pre: int, n_post: int, counts: np.ndarray, targets: np.ndarray) -> Connectivity:
    check_capacity(int(counts.sum()), int(counts.max()) if counts.size else 0)
    indptr = np.zeros(n_pre + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Connectivity(indptr.astype(np.int32), targets.astype(np.int32), n_pre, n_post)


def _row_chunks(n_rows: int, width: int):
    step = max(1, _CHUNK_ELEMENTS // max(width, 1))
    for start in range(0, n_rows, step):
        yield np.arange(start, min(n_rows, start + step), dtype=np.int64)


def geometric_table(prob: float, n_post: int) -> np.ndarray:
    """Integer thresholds that turn 32 random bits into a geometric gap.

    ``gap(bits) = searchsorted(table, bits, side='right')`` (the number of
    entries ``<= bits``) satisfies ``P(gap >= m) = 1 - table[m - 1] / 2**32
    ~= (1 - prob)**m``: the number of pairs skipped before the next
    connected one. The table is computed once in float64 on the host; every
    draw afterwards is a uint32 comparison, so NumPy here and JAX or a GPU
    kernel regenerating a row agree bit for bit. Gaps of ``n_post`` or more
    all end a row, so the table stops there: at most ``n_post`` entries.

    Returns: uint32 array ``(min(n_post, ~22.2 / prob),)``, nondecreasing.
    """
    # Entries beyond ~log(2**-32) / log(1 - prob) would be 2**32 (never reached).
    n = min(n_post, int(math.ceil(-32 * math.log(2) / math.log1p(-prob))) + 2) if prob < 1.0 else 0
    m = np.arange(1, n + 1, dtype=np.float64)
    # -expm1 keeps 1 - (1 - p)**m accurate for tiny p.
    thresholds = np.ceil(-np.expm1(m * math.log1p(-prob)) * 4294967296.0)
    return thresholds[thresholds < 4294967296.0].astype(np.uint32)


def _gaps(bits: np.ndarray, table: np.ndarray) -> np.ndarray:
    return np.searchsorted(table, bits, side="right").astype(np.int64)


def _bernoulli_row_targets(seed: int, row: int, n_cols: int, table: np.ndarray, stream: int) -> np.ndarray:
    """One row generated sequentially to the end (the rare row that outgrows
    the vectorised window)."""
    targets, last, pos, block = [], -1, 0, 256
    while True:
        bits = hash_bits(seed, stream, np.int64(row), np.arange(pos, pos + block))
        t = last + np.cumsum(_gaps(bits, table) + 1)
        targets.append(t[t < n_cols])
        if t[-1] >= n_cols:
            return np.concatenate(targets)
        last, pos = int(t[-1]), pos + block


def prob_window(n_post: int, prob: float) -> int:
    """Draws generated at once for one row of :func:`fixed_prob`: the mean
    number of targets plus 7 standard deviations (a longer row is rare and
    continues in further windows)."""
    mean, sd = n_post * prob, math.sqrt(n_post * prob * (1.0 - prob))
    return int(min(n_post, math.ceil(mean + 7.0 * sd + 16)))


def fixed_prob(n_pre: int, n_post: int, prob: float, seed: int) -> Connectivity:
    """Each (pre, post) pair connected independently with probability ``prob``.

    Row ``i`` is generated by geometric skipping: the gap before each next
    target is drawn from the hash of ``(seed, i, position)`` by integer
    thresholds (:func:`geometric_table`), which visits the pairs a per-pair
    Bernoulli(prob) draw would keep (to within 2**-32 in probability), in
    time proportional to the synapses. No pair appears twice; in- and
    out-degrees are Binomial(n, prob).

    Args:
      n_pre, n_post: the sizes of the two populations.
      prob: the connection probability, in (0, 1].
      seed: int in ``[0, 2**32)``.
    """
    prob = _checks.probability(prob, "prob")
    if n_pre == 0 or n_post == 0:  # an empty population: no pair to connect
        return _from_rows(n_pre, n_post, np.zeros(n_pre, np.int64), np.zeros(0, np.int32))
    if prob == 1.0:
        counts = np.full(n_pre, n_post, np.int64)
        return _from_rows(n_pre, n_post, counts, np.tile(np.arange(n_post, dtype=np.int32), n_pre))
    table = geometric_table(prob, n_post)
    width = prob_window(n_post, prob)
    all_counts, all_targets = [], []
    positions = np.arange(width, dtype=np.uint32)
    for rows in _row_chunks(n_pre, width):
        bits = hash_bits(seed, STREAM_PROB, rows[:, None], positions)
        t = np.cumsum(_gaps(bits, table) + 1, axis=1) - 1  # gaps <= n_post: int64 cannot overflow
        keep = t < n_post
        counts = keep.sum(axis=1)
        # A row whose window ends before n_post may have more targets; with a
        # 7-sigma window this is rare, and such a row is finished on its own.
        unfinished = np.flatnonzero(t[:, -1] < n_post - 1) if width < n_post else np.array([], int)
        if unfinished.size:
            row_targets = [t[r][keep[r]] for r in range(len(rows))]
            for r in unfinished:
                row_targets[r] = _bernoulli_row_targets(seed, int(rows[r]), n_post, table, STREAM_PROB)
                counts[r] = row_targets[r].size
            all_targets.append(np.concatenate(row_targets).astype(np.int32))
        else:
            all_targets.append(t[keep].astype(np.int32))
        all_counts.append(counts)
    counts = np.concatenate(all_counts)
    return _from_rows(n_pre, n_post, counts, np.concatenate(all_targets))


def count_scheme(k: int, n_range: int, distinct: bool) -> str:
    """How the rows of a fixed count are drawn: ``'multi'`` (the first ``k``
    hashed values, repeats allowed), ``'smallest'`` (the ``k`` partners with
    the smallest hash keys, used when ``k`` is a large fraction of
    ``n_range``) or ``'first'`` (the first ``k`` distinct hashed values)."""
    if not distinct:
        return "multi"
    return "smallest" if 4 * k >= n_range else "first"


def first_distinct_width(k: int, n_range: int) -> int:
    """The first window of draws searched for ``k`` distinct values: room for
    the expected repeats (a row short of ``k`` is redrawn twice as wide)."""
    return k + 8 + int(2 * k * k / n_range)


def _fixed_count_rows(
    seed: int, n_rows: int, n_range: int, k: int, distinct: bool, stream: int, store: bool = True
) -> tuple[np.ndarray, int]:
    """``(n_rows, k)`` partners in ``[0, n_range)``, ascending within a row,
    and the number of draws that sufficed for every row.

    With ``distinct``, a row's partners are the first ``k`` distinct values of
    its hashed sequence (or, when ``k`` is a large fraction of ``n_range``,
    the ``k`` partners with the smallest hash keys): a pure function of the
    arguments either way. Without, the first ``k`` values, repeats included.
    ``store=False`` only measures the draws needed (memory stays bounded by
    one chunk: how a procedural layer learns its static window).
    """
    out = np.empty((n_rows, k) if store else (0, k), np.int32)
    scheme = count_scheme(k, n_range, distinct)
    if k == 0 or (not store and scheme != "first"):
        return out, (n_range if scheme == "smallest" else k)
    if not distinct:
        pos = np.arange(k, dtype=np.uint32)
        for rows in _row_chunks(n_rows, k):
            out[rows] = np.sort(below(hash_bits(seed, stream, rows[:, None], pos), n_range), axis=1)
        return out, k
    if scheme == "smallest":
        cols = np.arange(n_range, dtype=np.uint32)
        for rows in _row_chunks(n_rows, n_range):
            keys = hash_bits(seed, stream, rows[:, None], cols)
            out[rows] = np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)
        return out, n_range
    # Rejection: draw a window with room for the expected repeats, keep the
    # first occurrence of each value, and redraw wider for the rare short rows.
    width = first_distinct_width(k, n_range)
    pending = np.arange(n_rows, dtype=np.int64)
    used = width
    while pending.size:
        used = width
        pos = np.arange(width, dtype=np.uint32)
        short = []
        for chunk in _row_chunks(pending.size, width):
            rows = pending[chunk]
            cand = below(hash_bits(seed, stream, rows[:, None], pos), n_range)
            order = np.argsort(cand, axis=1, kind="stable")
            ranked = np.take_along_axis(cand, order, axis=1)
            first = np.ones_like(ranked, dtype=bool)
            first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
            keep = np.empty_like(first)
            np.put_along_axis(keep, order, first, axis=1)
            n_kept = np.cumsum(keep, axis=1)
            ok = n_kept[:, -1] >= k
            sel = keep & (n_kept <= k) & ok[:, None]
            if store:
                out[rows[ok]] = np.sort(cand[sel].reshape(-1, k), axis=1)
            short.append(rows[~ok])
        pending = np.concatenate(short)
        width *= 2
    return out, used


def fixed_num_per_pre_window(n_pre: int, n_post: int, k: int, seed: int, distinct: bool = True) -> int:
    """The draws per row that :func:`fixed_num_per_pre` needs for every row
    (for the ``'first'`` scheme, found by generating each row once without
    storing it; time proportional to the synapses, memory to one chunk)."""
    _fixed_count_check(k, n_post, distinct, "conn_num", "postsynaptic")
    return _fixed_count_rows(seed, n_pre, n_post, k, distinct, STREAM_COUNT, store=False)[1]


def _fixed_count_check(k: int, n_range: int, distinct: bool, name: str, side: str) -> None:
    if k < 0:
        raise ValueError(f"{name} must be non-negative, got {k}")
    if k > 0 and n_range == 0:
        raise ValueError(f"{name}={k} partners cannot be drawn from 0 {side} neurons; pass {name}=0")
    if distinct and k > n_range:
        raise ValueError(
            f"{name}={k} is larger than the {n_range} distinct {side} partners available; "
            "lower it or pass allow_multi_conn=True"
        )


def _check_count_capacity(n_rows: int, k: int, name: str) -> None:
    """Refuse a fixed count whose synapses pass the int32 index range before
    anything of that size is allocated, saying what storing them would take."""
    n_synapses = n_rows * k
    if n_synapses + k > MAX_SYNAPSES:
        needed = 8 * n_synapses + 4 * (n_rows + 1)  # int32 index and float32 weight per synapse, row offsets
        raise ValueError(
            f"{name}={k} for {n_rows} neurons gives {n_synapses} synapses, beyond the int32 index range "
            f"eventlib uses (at most {MAX_SYNAPSES} synapse positions); storing them would need {needed} bytes. "
            f"Lower {name}, split the population into several layers, or (fixed fan-out) pass "
            "procedural=True, which stores no synapses"
        )


def _checked_count_rows(seed: int, n_rows: int, n_range: int, k: int, distinct: bool, side: str) -> np.ndarray:
    """The flat ``(n_rows * k,)`` partners of a fixed count, after the checks
    both directions share (``side`` names the partners in messages)."""
    _fixed_count_check(k, n_range, distinct, "conn_num", side)
    _check_count_capacity(n_rows, k, "conn_num")
    return _fixed_count_rows(seed, n_rows, n_range, k, distinct, STREAM_COUNT)[0].reshape(-1)


def fixed_num_per_pre(n_pre: int, n_post: int, k: int, seed: int, distinct: bool = True) -> Connectivity:
    """Every presynaptic neuron has exactly ``k`` targets (fixed fan-out).

    Args:
      n_pre, n_post: the sizes of the two populations.
      k: targets per presynaptic neuron.
      seed: int in ``[0, 2**32)``.
      distinct: True draws ``k`` distinct targets; False draws with
        replacement (a pair may repeat).
    """
    targets = _checked_count_rows(seed, n_pre, n_post, k, distinct, "postsynaptic")
    return _from_rows(n_pre, n_post, np.full(n_pre, k, np.int64), targets)


def fixed_num_per_post(n_pre: int, n_post: int, k: int, seed: int, distinct: bool = True) -> Connectivity:
    """Every postsynaptic neuron receives exactly ``k`` inputs (fixed fan-in).

    Generated per postsynaptic row, then stored by presynaptic row.

    Args:
      n_pre, n_post: the sizes of the two populations.
      k: inputs per postsynaptic neuron.
      seed: int in ``[0, 2**32)``.
      distinct: True draws ``k`` distinct inputs; False draws with
        replacement (a pair may repeat).
    """
    sources = _checked_count_rows(seed, n_post, n_pre, k, distinct, "presynaptic")
    post = np.repeat(np.arange(n_post, dtype=np.int32), k)
    conn, _ = from_indices(sources, post, n_pre, n_post)
    return conn


def keep_afferent_rows(conn: Connectivity, ratio: float, seed: int) -> Connectivity:
    """Keep each presynaptic row with probability ``ratio`` (brainstate's
    ``afferent_ratio``); the rows dropped lose all their synapses."""
    ratio = _checks.probability(ratio, "afferent_ratio")
    if ratio == 1.0:
        return conn
    bits = hash_bits(seed, STREAM_AFFERENT, np.arange(conn.n_pre), np.zeros(conn.n_pre, np.uint32))
    keep_row = _uniform_open(bits) < ratio
    counts = np.where(keep_row, conn.row_lengths, 0)
    keep_syn = np.repeat(keep_row, conn.row_lengths)
    return _from_rows(conn.n_pre, conn.n_post, counts, conn.indices[keep_syn])


def from_indices(pre, post, n_pre: int, n_post: int) -> tuple[Connectivity, np.ndarray]:
    """Connectivity from user-supplied synapse lists.

    Returns the connectivity and the permutation ``order`` such that synapse
    ``s`` of the result is input synapse ``order[s]`` (reorder per-synapse
    weights with ``weights[order]``). Repeated pairs are kept as separate
    synapses.

    Args:
      pre, post: integer arrays ``(n_synapses,)``: the presynaptic and
        postsynaptic neuron of each synapse.
      n_pre, n_post: the sizes of the two populations.
    """
    pre, post = np.asarray(pre), np.asarray(post)
    if pre.size == 0 and post.size == 0:  # an empty list is float64 to NumPy
        pre, post = pre.astype(np.int64), post.astype(np.int64)
    if pre.ndim != 1 or post.shape != pre.shape:
        raise ValueError(
            f"pre_indices and post_indices must be 1-D arrays of equal length, got shapes {pre.shape} and {post.shape}"
        )
    for name, arr, n in (("pre_indices", pre, n_pre), ("post_indices", post, n_post)):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise ValueError(f"{name} must lie in [0, {n}), got values in [{arr.min()}, {arr.max()}]")
    order = np.lexsort((post, pre))  # by pre row, ascending targets within a row
    counts = np.bincount(pre, minlength=n_pre).astype(np.int64)
    return _from_rows(n_pre, n_post, counts, post[order]), order


def warn_if_empty(conn: Connectivity, what: str) -> None:
    """Warn (``UserWarning``) when ``conn`` realised no synapse at all.

    Args:
      conn: the connectivity just built.
      what: the name of the layer that built it, for the message.
    """
    if conn.n_synapses == 0:
        warnings.warn(
            f"{what} realised no synapse at all (n_pre={conn.n_pre}, n_post={conn.n_post}): "
            "its output will always be zero; raise the probability or the sizes",
            UserWarning,
            stacklevel=3,
        )
