"""How a sparse layer holds its connectivity: one state, two implementations.

- :class:`StoredConnectivity`: the synapses, by presynaptic row (CSR:
  ``indptr``, ``indices``, and ``pre`` for the dense-equivalent product).
- :class:`ProceduralConnectivity`: the rule that generates them -- seed,
  sizes, parameters, and for a probability a table of at most ``n_post``
  uint32 thresholds. Its products regenerate the rows of the active inputs
  on every call (:func:`eventlib.ops.procedural_event_matmul`) from the same
  integer hash the stored form is built with, so for the same arguments and
  seed both hold the same matrix. Memory is ``O(n_pre + n_post)`` whatever
  the number of synapses; each call costs more arithmetic per synaptic event
  than reading stored indices.

Both are :class:`ConnectivityState` s and answer the same methods (the
products, ``to_dense``, ``synapses``, ``stored_connectivity``,
``n_synapses``, ``max_row``, ``nbytes``, ``initial_weight``), so a layer
computes the same way whichever it holds.
"""

from __future__ import annotations

import brainstate
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..connectivity import Connectivity, check_capacity, fixed_num_per_pre, warn_if_empty
from ..connectivity.procedural import expected_synapses, max_row_bound, stored_connectivity
from ..ops import (
    coo_matmul,
    csr_event_matmul,
    csr_event_matmul_delayed,
    csr_pre_indices,
    csr_to_dense,
    make_rule,
    procedural_event_matmul,
)
from ._weights import degree_block, draw_weights, first_weight, init_param, is_initializer

__all__ = ["ConnectivityState", "StoredConnectivity", "ProceduralConnectivity"]


class ConnectivityState(brainstate.State):
    """Everything that defines a layer's matrix, held as a (non-trainable)
    state. brainstate's state tree saves and restores it with the weights.
    Under ``brainstate.transform.jit`` it is passed to the compiled function
    as arguments rather than compiled into it as constants, so compile time
    does not grow with the number of synapses.

    Every concrete value written to it (a restored checkpoint, an
    assignment) is checked against the layer's sizes by the subclass, and
    the host-side quantities derived from it (``max_row``, ``seed``) are
    recomputed from it, so a layer computes with what the state holds. This
    base class checks nothing; :class:`StoredConnectivity` and
    :class:`ProceduralConnectivity` are the two implementations.

    Args:
      value: the dict of arrays.
      **kwargs: brainstate state metadata (``name``, ``tag``).
    """

    procedural = False

    def __init__(self, value, **kwargs):
        super().__init__(self._accept(value), **kwargs)

    def _write_value(self, v) -> None:
        # A traced value comes from brainstate's own bookkeeping inside a
        # transformation; only concrete values are the user's to check.
        if not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(v)):
            v = self._accept(v)
        super()._write_value(v)

    def _accept(self, value):
        """The value to hold, validated (the base class accepts anything)."""
        return value

    @property
    def seed(self) -> int | None:
        """The seed the state holds; None where it holds synapses instead."""
        return None

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the state holds."""
        return int(sum(a.nbytes for a in self.value.values()))

    def synapses(self):
        """``(pre_indices, post_indices)``: one entry per synapse, in the order
        of per-synapse weights."""
        conn = self.stored_connectivity()
        return jnp.asarray(conn.pre_indices()), jnp.asarray(conn.indices)


def _check_keys(value, keys) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"the connectivity state holds a dict of arrays, got {type(value).__name__}")
    if set(value) != set(keys):
        raise ValueError(f"the connectivity state must hold exactly the arrays {sorted(keys)}, got {sorted(value)}")


def _int_array(x, name: str, ndim: int):
    x = np.asarray(x)
    if x.ndim != ndim or not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"connectivity {name!r} must be a {ndim}-D integer array, got {x.dtype} shape {x.shape}")
    return x


class StoredConnectivity(ConnectivityState):
    """Synapses stored by presynaptic row: int32 ``indptr`` ``(n_pre + 1,)``
    and ``indices`` ``(n_synapses,)``, plus ``pre`` ``(n_synapses,)`` (each
    synapse's row) where the layer's product is dense-equivalent, and
    ``delays`` ``(n_synapses,)`` (each synapse's delay in steps) where the
    layer has per-synapse delays.

    Args:
      value: ``{'indptr': ..., 'indices': ...[, 'pre': ...][, 'delays': ...]}``;
        the keys given are the keys every later value must have.
      n_pre, n_post: the layer's sizes, which every value is checked against.
      max_delay: the largest delay ``'delays'`` may hold (the layer's ring
        buffer has ``max_delay + 1`` slots).
      **kwargs: brainstate state metadata.
    """

    def __init__(
        self, value, n_pre: int, n_post: int, *, built_max_row: int | None = None, max_delay: int = 0, **kwargs
    ):
        self.n_pre, self.n_post = n_pre, n_post
        self.max_delay = int(max_delay)
        self._keys = tuple(value)
        if built_max_row is None:
            super().__init__(value, **kwargs)
            return
        # Arrays fresh from a connectivity builder are valid by construction:
        # checking them again would copy every synapse back to the host and
        # build an int64 row per synapse, at layer construction. Values
        # written later (restores, assignments) are always checked.
        self.max_row = built_max_row
        brainstate.State.__init__(self, value, **kwargs)

    @classmethod
    def create(
        cls,
        conn: Connectivity,
        conn_weight,
        init_block,
        fan_out,
        *,
        with_pre: bool,
        what: str,
        delays=None,
        max_delay: int = 0,
    ):
        """The state of ``conn`` and the layer's initial weight.

        Args:
          conn: the synapses.
          conn_weight: a scalar, one weight per synapse, brainstate's
            ``(n_pre, fan_out)`` where ``fan_out`` is given, or an initializer.
          init_block: the shape an initializer is called with (None: from
            the mean degrees).
          fan_out: the fixed number of targets per row, or None.
          with_pre: also store each synapse's row (the float product needs it).
          what: the layer's name, for the warning of an empty layer.
          delays: None, or int ``(n_synapses,)``: each synapse's delay in
            steps, in ``[0, max_delay]``.
          max_delay: the largest delay the state may hold.
        """
        arrays = {"indptr": jnp.asarray(conn.indptr), "indices": jnp.asarray(conn.indices)}
        if with_pre:
            # The float product visits every synapse on every call and needs
            # each one's presynaptic row: stored (4 bytes per synapse) rather
            # than recomputed, which costs more than the product itself.
            arrays["pre"] = jnp.asarray(conn.pre_indices())
        if delays is not None:
            arrays["delays"] = jnp.asarray(_delays_array(delays, conn.n_synapses, max_delay))
        # One state for all index arrays: brainstate.transform.jit pays a
        # per-state cost on every call.
        state = cls(arrays, conn.n_pre, conn.n_post, built_max_row=conn.max_row, max_delay=max_delay)
        shapes, init_shape = [(), (conn.n_synapses,)], (conn.n_synapses,)
        if fan_out is not None:  # brainstate's per-synapse layout (n_pre, conn_num)
            shapes.append((conn.n_pre, fan_out))
            init_shape = (conn.n_pre, fan_out)
        elif is_initializer(conn_weight):
            block = init_block or degree_block(conn.n_synapses, conn.n_pre, conn.n_post)
            conn_weight = draw_weights(conn_weight, block, conn.n_synapses)
        weight = init_param(conn_weight, init_shape, "conn_weight", shapes)
        warn_if_empty(conn, what)
        return state, weight

    def _accept(self, value):
        """Validate the index arrays against the sizes; keep them as int32
        and record the longest row."""
        _check_keys(value, self._keys)
        n_pre, n_post = self.n_pre, self.n_post
        indptr = _int_array(value["indptr"], "indptr", 1)
        indices = _int_array(value["indices"], "indices", 1)
        if indptr.shape != (n_pre + 1,):
            raise ValueError(f"connectivity 'indptr' must have shape (n_pre + 1,) = ({n_pre + 1},), got {indptr.shape}")
        if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != indices.shape[0]:
            raise ValueError(
                "connectivity 'indptr' must start at 0, never decrease and end at the number of synapses "
                f"({indices.shape[0]}, the length of 'indices')"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= n_post):
            raise ValueError(f"connectivity 'indices' must lie in [0, n_post) = [0, {n_post})")
        max_row = int(np.max(np.diff(indptr), initial=0))
        check_capacity(int(indices.shape[0]), max_row)
        out = {"indptr": jnp.asarray(indptr, jnp.int32), "indices": jnp.asarray(indices, jnp.int32)}
        if "pre" in self._keys:
            pre = _int_array(value["pre"], "pre", 1)
            expected = np.repeat(np.arange(n_pre, dtype=np.int32), np.diff(indptr))
            if pre.shape != expected.shape or np.any(pre != expected):
                raise ValueError("connectivity 'pre' must hold each synapse's presynaptic row, as 'indptr' gives it")
            out["pre"] = jnp.asarray(pre, jnp.int32)
        if "delays" in self._keys:
            out["delays"] = jnp.asarray(_delays_array(value["delays"], indices.shape[0], self.max_delay))
        self.max_row = max_row
        return out

    @property
    def indptr(self):
        """int32 ``(n_pre + 1,)``: row ``i``'s synapses are positions
        ``indptr[i]`` to ``indptr[i + 1] - 1``."""
        return self.value["indptr"]

    @property
    def indices(self):
        """int32 ``(n_synapses,)``: the postsynaptic target of each synapse."""
        return self.value["indices"]

    @property
    def n_synapses(self) -> int:
        """Number of synapses (duplicates counted)."""
        return int(self.indices.shape[0])

    def event_product(self, spikes, weight, *, float_as_event: bool, path: str, deterministic: bool):
        """Event-driven ``spikes @ M`` (see :func:`eventlib.ops.csr_event_matmul`).

        Args:
          spikes: ``(..., n_pre)`` array (no units).
          weight: a scalar or one weight per synapse (no units).
          float_as_event, path, deterministic: as the operator takes them.
        """
        return csr_event_matmul(
            spikes,
            weight,
            self.indptr,
            self.indices,
            self.n_post,
            max_row=self.max_row,
            float_as_event=float_as_event,
            path=path,
            deterministic=deterministic,
        )

    @property
    def delays(self):
        """int32 ``(n_synapses,)``: each synapse's delay in steps (layers with
        per-synapse delays only; None otherwise)."""
        return self.value.get("delays")

    def delayed_product(self, spikes, weight, buffer, step, *, float_as_event: bool, path: str):
        """One step of the delayed product with the per-synapse delays
        (:func:`eventlib.ops.csr_event_matmul_delayed`).

        Args:
          spikes: ``(..., n_pre)`` array (no units).
          weight: a scalar or one weight per synapse (no units).
          buffer: the ring buffer ``(..., max_delay + 1, n_post)``.
          step: int scalar, the step (modulo ``max_delay + 1``).
          float_as_event, path: as the operator takes them.

        Returns:
          ``(out, new_buffer)``.
        """
        return csr_event_matmul_delayed(
            spikes,
            weight,
            self.indptr,
            self.indices,
            self.value["delays"],
            buffer,
            step,
            self.n_post,
            max_row=self.max_row,
            float_as_event=float_as_event,
            path=path,
        )

    def dense_product(self, x, weight, *, path: str):
        """``x @ M`` for any float input, visiting every synapse
        (:func:`eventlib.ops.coo_matmul`; ``path`` is not used: there is one).

        Args:
          x: ``(..., n_pre)`` array (no units).
          weight: a scalar or one weight per synapse (no units).
          path: the layer's path.
        """
        dtype = _checks.out_dtype(x.dtype, weight.dtype)
        return coo_matmul(x.astype(dtype), weight.astype(dtype), self.value["pre"], self.indices, self.n_post)

    def to_dense(self, weight):
        """The ``(n_pre, n_post)`` matrix for ``weight`` (a scalar or one per synapse)."""
        return csr_to_dense(weight, self.indptr, self.indices, self.n_post)

    def synapses(self):
        """``(pre_indices, post_indices)``: one entry per synapse, in the order
        of per-synapse weights."""
        return csr_pre_indices(self.indptr, self.n_synapses), self.indices

    def stored_connectivity(self) -> Connectivity:
        """The synapses as a :class:`~eventlib.connectivity.Connectivity`."""
        return Connectivity(np.asarray(self.indptr), np.asarray(self.indices), self.n_pre, self.n_post)


def _delays_array(delays, n_syn: int, max_delay: int) -> np.ndarray:
    """Per-synapse delays checked: int ``(n_synapses,)`` in ``[0, max_delay]``, as int32."""
    d = _int_array(delays, "delays", 1)
    if d.shape != (n_syn,):
        raise ValueError(f"connectivity 'delays' must have shape (n_synapses,) = ({n_syn},), got {d.shape}")
    if d.size and (d.min() < 0 or d.max() > max_delay):
        raise ValueError(
            f"connectivity 'delays' must lie in [0, max_delay] = [0, {max_delay}] steps, "
            f"got values in [{d.min()}, {d.max()}]"
        )
    return d.astype(np.int32)


class ProceduralConnectivity(ConnectivityState):
    """The rule that generates a layer's synapses: ``{'seed', 'table'}``.

    The seed and the table travel as state (not compile-time constants),
    like stored indices: a restored seed is the one the product uses.

    Args:
      rule: the :class:`eventlib.ops.Rule` built for the initial seed.
      table: its threshold table (uint32 NumPy array, empty unless a
        probability below 1); it depends on the construction arguments
        only, so every later value must hold the same one.
      rule_args: the keyword arguments of :func:`eventlib.ops.make_rule`
        that built ``rule`` (to rebuild it for another seed).
      **kwargs: brainstate state metadata.
    """

    procedural = True

    def __init__(self, rule, table, rule_args: dict, **kwargs):
        self.n_pre, self.n_post = rule.n_pre, rule.n_post
        self._rule, self._table, self._rule_args = rule, np.asarray(table), dict(rule_args)
        value = {"seed": jnp.asarray(np.uint32(rule.seed)), "table": jnp.asarray(table)}
        super().__init__(value, **kwargs)

    @staticmethod
    def check_supported(efferent_target: str, fixed_count: bool, afferent_ratio: float, deterministic: bool) -> None:
        """Refuse the constructions that rows regenerated by presynaptic
        neuron cannot give.

        Args:
          efferent_target: ``'post'`` (fixed fan-out) or ``'pre'`` (fixed fan-in).
          fixed_count: True for a count per neuron, False for a probability.
          afferent_ratio: the fraction of presynaptic rows kept.
          deterministic: the layer's option of that name.
        """
        if deterministic:
            raise ValueError("deterministic=True is available for stored connectivity only, not procedural=True")
        if fixed_count and efferent_target == "pre":
            raise ValueError(
                "procedural=True needs fixed fan-out (efferent_target='post'): with fixed fan-in each "
                "postsynaptic neuron draws its inputs, so one presynaptic neuron's targets are spread over "
                "every postsynaptic row and regenerating them would mean generating the whole matrix on each call"
            )
        if afferent_ratio != 1.0:
            raise ValueError("procedural=True does not support afferent_ratio != 1.0; use the stored form")

    @classmethod
    def create(cls, n_pre: int, n_post: int, seed: int, rule_args: dict, conn_weight, init_block, *, what: str):
        """The state of the rule ``make_rule(n_pre, n_post, seed, **rule_args)``
        and the layer's initial weight.

        Args:
          n_pre, n_post: the sizes.
          seed: the connectivity seed.
          rule_args: ``prob=`` or ``k=, distinct=`` for :func:`eventlib.ops.make_rule`.
          conn_weight: a scalar, one weight per presynaptic row ``(n_pre,)``,
            or an initializer (its first value for ``init_block`` is taken).
          init_block: the shape an initializer is called with.
          what: the layer's name, for the warning of an empty layer.
        """
        # The initializer comes first: it is refused before any row is generated.
        if is_initializer(conn_weight):
            conn_weight = first_weight(conn_weight, init_block)
        rule, table = make_rule(n_pre, n_post, seed, **rule_args)
        state = cls(rule, table, rule_args)
        weight = init_param(conn_weight, (), "conn_weight", [(), (n_pre,)])
        if rule.scheme in ("multi", "first", "smallest") and rule.k == 0:
            warn_if_empty(fixed_num_per_pre(n_pre, n_post, 0, 0), what)
        return state, weight

    def _accept(self, value):
        """Validate the seed and the table; record the seed on the host."""
        _check_keys(value, ("seed", "table"))
        seed = np.asarray(value["seed"])
        if seed.shape != () or not np.issubdtype(seed.dtype, np.integer) or not 0 <= int(seed) < 2**32:
            raise ValueError(f"connectivity 'seed' must be an integer scalar in [0, 2**32), got {seed!r}")
        table = self._table
        got = np.asarray(value["table"])
        if got.shape != table.shape or np.any(got.astype(np.int64) != table.astype(np.int64)):
            raise ValueError(
                "connectivity 'table' must equal the threshold table of this layer's probability and n_post "
                f"(shape {table.shape}); it depends on the construction arguments only, not on the seed"
            )
        self._seed = int(seed)
        return {"seed": jnp.asarray(np.uint32(int(seed))), "table": jnp.asarray(table)}

    @property
    def seed(self) -> int:
        """The seed the state holds (a restored checkpoint's)."""
        return self._seed

    @property
    def rule(self):
        """The rule for the seed the state holds (rebuilt when a checkpoint
        or an assignment changed the seed)."""
        if self._rule.seed != self._seed:
            self._rule, _ = make_rule(self.n_pre, self.n_post, self._seed, **self._rule_args)
        return self._rule

    @property
    def max_row(self) -> int:
        """The rule's targets per row (typical, not a hard bound, for a probability)."""
        return max_row_bound(self.rule)

    @property
    def n_synapses(self) -> int:
        """Exact for fixed fan-out; the expected ``n_pre * n_post * prob``
        (rounded) for a probability, whose realised count is never generated
        as a whole."""
        return int(round(expected_synapses(self.rule)))

    def _no_synapses(self, name: str):
        raise AttributeError(
            f"a procedural layer stores no synapses, so it has no {name}; "
            "use to_dense(), synapses() or stored_connectivity()"
        )

    @property
    def indptr(self):
        """Not held: a procedural layer stores no synapses (AttributeError)."""
        self._no_synapses("indptr")

    @property
    def indices(self):
        """Not held: a procedural layer stores no synapses (AttributeError)."""
        self._no_synapses("indices")

    def _product(self, spikes, weight, float_as_event: bool, path: str):
        value = self.value
        return procedural_event_matmul(
            spikes, weight, self.rule, value["table"], seed=value["seed"], float_as_event=float_as_event, path=path
        )

    def event_product(self, spikes, weight, *, float_as_event: bool, path: str, deterministic: bool):
        """Event-driven ``spikes @ M``, the rows regenerated
        (:func:`eventlib.ops.procedural_event_matmul`).

        Args:
          spikes: ``(..., n_pre)`` array (no units).
          weight: a scalar or one weight per presynaptic row (no units).
          float_as_event, path: as the operator takes them.
          deterministic: must be False (refused at construction).
        """
        if deterministic:
            raise ValueError("deterministic=True is available for stored connectivity only, not procedural=True")
        return self._product(spikes, weight, float_as_event, path)

    def dense_product(self, x, weight, *, path: str):
        """``x @ M`` for any float input: the procedural product multiplies
        each nonzero input by its weight, at a cost per nonzero entry.

        Args:
          x: ``(..., n_pre)`` array (no units).
          weight: a scalar or one weight per presynaptic row (no units).
          path: the layer's path.
        """
        return self._product(x, weight, False, path)

    def to_dense(self, weight):
        """The ``(n_pre, n_post)`` matrix for ``weight`` (a scalar or one per row)."""
        eye = jnp.eye(self.n_pre, dtype=jnp.bool_)
        one = jnp.ones((), jnp.asarray(weight).dtype)
        dense = self._product(eye, one, False, "dense")
        return dense * (weight if weight.ndim == 0 else weight[:, None])

    def stored_connectivity(self) -> Connectivity:
        """The matrix's synapses in stored form, built now in NumPy (memory
        proportional to the synapses)."""
        return stored_connectivity(self.rule)
