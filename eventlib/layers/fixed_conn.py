"""Sparse random connectivity as brainstate modules.

- :class:`EventFixedProb`: each (pre, post) pair connected with probability p.
- :class:`FixedNumConn`: a fixed number of partners per neuron; dense-equivalent
  product for any float input.
- :class:`EventFixedNumConn`: the same connectivity, event-driven.

All three store their synapses once, by presynaptic row (4 bytes of index per
synapse, plus 4 for per-synapse weights), generate them from ``(seed, sizes,
parameters)`` alone, and never build an ``n_pre x n_post`` array.
"""

from __future__ import annotations

import math
import numbers

import brainstate
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, _units
from ..connectivity import stored as conn_lib
from ..ops import check_path
from ..ops.procedural_event import make_rule
from ..ops.sparse_event import coo_matmul, csr_event_matmul, csr_pre_indices, csr_to_dense
from . import procedural as _procedural
from .event_linear import init_param

__all__ = ["EventFixedProb", "FixedNumConn", "EventFixedNumConn", "ConnectivityState"]


def _resolve_seed(seed) -> int:
    # No seed: draw one from NumPy's global generator, which
    # brainstate.random.seed(...) also seeds -- so a notebook that calls
    # brainstate.random.seed(0) gets the same connectivity every run.
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(seed, (jax.Array, np.ndarray, np.generic)) and np.ndim(seed) == 0:
        # brainstate accepts a seed held in a 0-d integer array (JAX or NumPy).
        if np.issubdtype(seed.dtype, np.integer):
            seed = int(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    if not 0 <= seed < 2**32:  # the hash takes 32 bits: a wider seed would alias
        raise ValueError(f"seed must lie in [0, 2**32), got {seed}")
    return int(seed)


def _count(conn_num, n_available: int) -> int:
    """brainstate's reading of ``conn_num`` as a count: an int is the count,
    a float is the fraction ``int(n_available * conn_num)``."""
    if isinstance(conn_num, (bool, np.bool_)):
        raise TypeError(f"conn_num must be an int or a float, got {conn_num!r}")
    if isinstance(conn_num, numbers.Integral):
        if conn_num < 0:
            raise ValueError(f"conn_num must be non-negative, got {conn_num}")
        return int(conn_num)
    if isinstance(conn_num, numbers.Real):
        if conn_num == 0.0:  # a sweep that starts at 0: an empty layer, as in brainstate
            return 0
        return int(n_available * _checks.probability(conn_num))
    raise TypeError(f"conn_num must be an int or a float, got {type(conn_num).__name__}")


def _check_target(efferent_target: str) -> str:
    if efferent_target not in ("pre", "post"):
        raise ValueError(f"efferent_target must be 'pre' or 'post', got {efferent_target!r}")
    return efferent_target


def _fan_in_block(k: int, n_pre: int, n_post: int) -> tuple[int, int]:
    """The initializer shape of fixed fan-in ``k``, which brainstate lacks:
    fan-in the inputs per neuron, fan-out the mean out-degree."""
    return (max(1, k), max(1, round(k * n_post / n_pre)) if n_pre else 1)


def _degree_block(n_synapses: int, n_pre: int, n_post: int) -> tuple[int, int]:
    """The initializer shape of arbitrary synapses (``from_synapses``): fan-in
    the mean in-degree, fan-out the mean out-degree."""
    return (max(1, round(n_synapses / n_post)) if n_post else 1, max(1, round(n_synapses / n_pre)) if n_pre else 1)


def _draw_weights(init, block: tuple[int, int], n: int):
    """``n`` per-synapse weights from an initializer called with ``block``.

    braintools' variance-scaling initializers take their fans from the
    shape, so each call gets the shape whose fans describe the layer, and
    as many calls as needed supply ``n`` values; each value then has the
    distribution it has in brainstate's layer of the same form. A call
    returning a scalar gives that scalar (one shared weight)."""
    parts, unit, got = [], None, 0
    while True:
        mantissa, unit = _units.split(init(block))
        mantissa = jnp.asarray(mantissa)
        if mantissa.ndim == 0:
            return _units.attach(mantissa, unit)
        if mantissa.shape != block:
            raise ValueError(
                f"conn_weight, an initializer, must return shape {block} when called with it, got {mantissa.shape}"
            )
        parts.append(mantissa.reshape(-1))
        got += mantissa.size
        if got >= n or mantissa.size == 0:
            return _units.attach(jnp.concatenate(parts)[:n], unit)


# Elements of the one initializer call that gives a procedural layer its
# scalar weight: the call builds the whole fan-shaped block.
_PROCEDURAL_INIT_LIMIT = 1 << 24


def _first_weight(init, block: tuple[int, int]):
    """The first value an initializer gives for ``block``: a procedural
    layer's one weight, with the distribution of the stored layer's."""
    if math.prod(block) > _PROCEDURAL_INIT_LIMIT:
        raise ValueError(
            f"conn_weight: an initializer for procedural=True is called with the layer's fan shape {block}, "
            f"which would need {4 * math.prod(block)} bytes; pass a scalar weight (or one per presynaptic row, "
            "shape (n_pre,)) instead"
        )
    value = _draw_weights(init, tuple(max(1, d) for d in block), 1)
    mantissa, unit = _units.split(value)
    return _units.attach(jnp.asarray(mantissa).reshape(-1)[0], unit)


def _fixed_num(n_pre, n_post, conn_num, efferent_target, allow_multi_conn, seed):
    if efferent_target == "post":  # every pre neuron has conn_num targets
        k = _count(conn_num, n_post)
        return conn_lib.fixed_num_per_pre(n_pre, n_post, k, seed, distinct=not allow_multi_conn), k
    k = _count(conn_num, n_pre)  # every post neuron receives conn_num inputs
    return conn_lib.fixed_num_per_post(n_pre, n_post, k, seed, distinct=not allow_multi_conn), None


class ConnectivityState(brainstate.State):
    """Everything that defines a layer's matrix, held as a (non-trainable)
    state: the synapse indices of a stored layer, the seed and threshold
    table of a procedural one. brainstate's state tree saves and restores
    it with the weights. Under ``brainstate.transform.jit`` it is passed to
    the compiled function as arguments rather than compiled into it as
    constants, so compile time does not grow with the number of synapses.

    Every concrete value written to it (a restored checkpoint, an assignment)
    is checked against the layer's sizes, and the host-side quantities
    derived from it (``max_row``, ``seed``) are recomputed from it, so a
    layer computes with what the state holds.

    Args:
      value: the dict of arrays.
      layout: what the layer expects: ``('stored', n_pre, n_post, keys)`` or
        ``('procedural', n_pre, n_post, table)``; None checks nothing.
    """

    def __init__(self, value, layout=None, **kwargs):
        self._layout = layout
        super().__init__(self._accept(value), **kwargs)

    def _write_value(self, v) -> None:
        if not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(v)):
            v = self._accept(v)
        super()._write_value(v)

    def _accept(self, value):
        layout = getattr(self, "_layout", None)
        if layout is None:
            return value
        if not isinstance(value, dict):
            raise TypeError(f"the connectivity state holds a dict of arrays, got {type(value).__name__}")
        if layout[0] == "stored":
            value, self.host_max_row = _check_stored(value, *layout[1:])
        else:
            value, self.host_seed = _check_procedural(value, *layout[1:])
        return value


def _check_keys(value, keys):
    if set(value) != set(keys):
        raise ValueError(f"the connectivity state must hold exactly the arrays {sorted(keys)}, got {sorted(value)}")


def _int_array(x, name: str, ndim: int):
    x = np.asarray(x)
    if x.ndim != ndim or not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"connectivity {name!r} must be a {ndim}-D integer array, got {x.dtype} shape {x.shape}")
    return x


def _check_stored(value, n_pre: int, n_post: int, keys):
    """Validate a stored layer's index arrays against its sizes; returns the
    arrays as int32 and the longest row."""
    _check_keys(value, keys)
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
    conn_lib.check_capacity(int(indices.shape[0]), max_row)
    out = {"indptr": jnp.asarray(indptr, jnp.int32), "indices": jnp.asarray(indices, jnp.int32)}
    if "pre" in keys:
        pre = _int_array(value["pre"], "pre", 1)
        expected = np.repeat(np.arange(n_pre), np.diff(indptr))
        if pre.shape != expected.shape or np.any(pre != expected):
            raise ValueError("connectivity 'pre' must hold each synapse's presynaptic row, as 'indptr' gives it")
        out["pre"] = jnp.asarray(pre, jnp.int32)
    return out, max_row


def _check_procedural(value, n_pre: int, n_post: int, table):
    """Validate a procedural layer's seed and table; returns them and the seed."""
    _check_keys(value, ("seed", "table"))
    seed = np.asarray(value["seed"])
    if seed.shape != () or not np.issubdtype(seed.dtype, np.integer) or not 0 <= int(seed) < 2**32:
        raise ValueError(f"connectivity 'seed' must be an integer scalar in [0, 2**32), got {seed!r}")
    got = np.asarray(value["table"])
    if got.shape != table.shape or np.any(got.astype(np.int64) != table.astype(np.int64)):
        raise ValueError(
            "connectivity 'table' must equal the threshold table of this layer's probability and n_post "
            f"(shape {table.shape}); it depends on the construction arguments only, not on the seed"
        )
    return {"seed": jnp.asarray(np.uint32(int(seed))), "table": jnp.asarray(table)}, int(seed)


class _SparseLayer(brainstate.nn.Module):
    """Shared storage, weights and export of the connectivity layers."""

    _dense_equivalent = False  # True for the layer whose product visits every synapse
    procedural = False
    deterministic = False
    _init_block = None  # the initializer's shape; None: from the mean degrees

    def _random_setup(
        self,
        build,
        conn_weight,
        *,
        efferent_target,
        afferent_ratio,
        allow_multi_conn,
        seed,
        procedural=False,
        rule_args=None,
        **kwargs,
    ):
        """Record the common arguments, build the connectivity with
        ``build(seed) -> (connectivity, fan_out or None)``, keep the afferent
        fraction, and set up storage and weights. A procedural layer instead
        keeps the rule ``make_rule(n_pre, n_post, seed, **rule_args)``."""
        self.efferent_target = _check_target(efferent_target)
        self.allow_multi_conn = bool(allow_multi_conn)
        self.seed = _resolve_seed(seed)
        self._rule_args = rule_args
        if procedural:
            if self.deterministic:
                raise ValueError("deterministic=True is available for stored connectivity only, not procedural=True")
            _procedural.check_supported(efferent_target, "k" in rule_args, afferent_ratio)
            if callable(conn_weight) and not hasattr(conn_weight, "shape"):
                conn_weight = _first_weight(conn_weight, self._init_block)
            self.procedural = True
            rule, table = make_rule(*self._sizes, self.seed, **rule_args)
            _procedural.setup(self, rule, table, conn_weight, **kwargs)
            return
        conn, fan_out = build(self.seed)
        if afferent_ratio != 1.0:
            conn, fan_out = conn_lib.keep_afferent_rows(conn, afferent_ratio, self.seed), None
        self._setup(conn, conn_weight, fan_out, **kwargs)

    def _setup(self, conn, conn_weight, fan_out, *, param_type, path):
        self.in_size = (conn.n_pre,)
        self.out_size = (conn.n_post,)
        self.n_pre, self.n_post = conn.n_pre, conn.n_post
        self.path = check_path(path)
        arrays = {"indptr": jnp.asarray(conn.indptr), "indices": jnp.asarray(conn.indices)}
        if self._dense_equivalent:
            # The float product visits every synapse on every call and needs
            # each one's presynaptic row: stored (4 bytes per synapse) rather
            # than recomputed, which costs more than the product itself.
            arrays["pre"] = jnp.asarray(conn.pre_indices())
        # One state for all index arrays: brainstate.transform.jit pays a
        # per-state cost on every call.
        self.connectivity = ConnectivityState(arrays, layout=("stored", conn.n_pre, conn.n_post, tuple(arrays)))
        shapes = [(), (conn.n_synapses,)]
        init_shape = (conn.n_synapses,)
        if fan_out is not None:  # brainstate's per-synapse layout (n_pre, conn_num)
            shapes.append((conn.n_pre, fan_out))
            init_shape = (conn.n_pre, fan_out)
        elif callable(conn_weight) and not hasattr(conn_weight, "shape"):
            block = self._init_block or _degree_block(conn.n_synapses, conn.n_pre, conn.n_post)
            conn_weight = _draw_weights(conn_weight, block, conn.n_synapses)
        self.weight = param_type(init_param(conn_weight, init_shape, "conn_weight", shapes))
        conn_lib.warn_if_empty(conn, type(self).__name__)

    @property
    def seed(self):
        """The connectivity seed: for a procedural layer, the one its state
        holds (a restored checkpoint's); None for a layer from
        :meth:`from_synapses`."""
        if self.procedural and "connectivity" in vars(self):
            return self.connectivity.host_seed
        return self._seed

    @seed.setter
    def seed(self, value):
        self._seed = value

    @property
    def max_row(self) -> int:
        """The longest row, from the connectivity the state holds now (for a
        procedural layer, the typical bound of its rule)."""
        if self.procedural:
            return _procedural.max_row(self)
        return self.connectivity.host_max_row

    @property
    def rule(self):
        """The procedural rule for the seed the state holds (rebuilt when a
        checkpoint or an assignment changed the seed)."""
        if self._rule.seed != self.seed:
            self._rule, _ = make_rule(*self._sizes, self.seed, **self._rule_args)
        return self._rule

    @rule.setter
    def rule(self, value):
        self._rule = value

    def _stored_array(self, name: str):
        if self.procedural:
            raise AttributeError(
                f"a procedural layer stores no synapses, so it has no {name}; "
                "use to_dense(), synapses() or stored_connectivity()"
            )
        return self.connectivity.value[name]

    @property
    def indptr(self):
        """int32 ``(n_pre + 1,)``: row ``i``'s synapses are positions
        ``indptr[i]`` to ``indptr[i + 1] - 1`` (stored layers only)."""
        return self._stored_array("indptr")

    @property
    def indices(self):
        """int32 ``(n_synapses,)``: the postsynaptic target of each synapse
        (stored layers only)."""
        return self._stored_array("indices")

    @property
    def n_synapses(self) -> int:
        """Number of synapses (duplicates counted). For a procedural layer
        with a probability this is the expected count
        ``round(n_pre * n_post * prob)``: the realised one is never generated
        as a whole (``stored_connectivity().n_synapses`` builds it)."""
        if self.procedural:
            return _procedural.n_synapses(self)
        return int(self.indices.shape[0])

    def stored_connectivity(self):
        """The matrix's synapses as a :class:`~eventlib.connectivity.Connectivity`
        (for a procedural layer, built now in NumPy: memory proportional to
        the synapses)."""
        if self.procedural:
            return _procedural.stored(self)
        indptr, indices = np.asarray(self.indptr), np.asarray(self.indices)
        return conn_lib.Connectivity(indptr, indices, self.n_pre, self.n_post)

    @property
    def nbytes(self) -> int:
        """Bytes held by the connectivity and its weights."""
        w, _ = _units.split(self.weight.value)
        index_bytes = sum(a.nbytes for a in self.connectivity.value.values())
        return int(index_bytes + jnp.asarray(w).nbytes)

    def _weight_vector(self):
        w, unit = _units.split(self.weight.value)
        w = jnp.asarray(w)
        return (w if w.ndim == 0 else w.reshape(-1)), unit

    def synapses(self):
        """``(pre_indices, post_indices)``: one entry per synapse, in the order
        of the per-synapse weights."""
        if self.procedural:
            conn = _procedural.stored(self)
            return jnp.asarray(conn.pre_indices()), jnp.asarray(conn.indices)
        return csr_pre_indices(self.indptr, self.n_synapses), self.indices

    def to_dense(self):
        """The ``(n_pre, n_post)`` matrix this layer represents (duplicate
        synapses add up). For checks and small layers only: it is dense.

        Inside a function traced by ``jax.jit`` the connectivity is a
        constant, so XLA builds this matrix at compile time (slowly, for
        large layers); compute it outside and pass it in as an argument."""
        if self.procedural:
            return _procedural.to_dense(self)
        w, unit = self._weight_vector()
        return _units.attach(csr_to_dense(w, self.indptr, self.indices, self.n_post), unit)

    @classmethod
    def from_synapses(cls, pre_indices, post_indices, in_size, out_size, conn_weight, **kwargs):
        """A layer with exactly the synapses ``(pre_indices[s], post_indices[s])``.

        ``conn_weight`` is a scalar, an initializer, or one weight per synapse
        in the order given (it is reordered with the synapses). Remaining
        keyword arguments go to the layer (``float_as_event``, ``path``,
        ``name``, ``param_type``).
        """
        n_pre, n_post = _checks.size(in_size, "in_size"), _checks.size(out_size, "out_size")
        conn, order = conn_lib.from_indices(pre_indices, post_indices, n_pre, n_post)
        mantissa, unit = _units.split(conn_weight)
        if not callable(mantissa) and np.ndim(mantissa) == 1:
            if np.shape(mantissa) != (conn.n_synapses,):
                raise ValueError(
                    f"conn_weight must be a scalar or have shape ({conn.n_synapses},), got shape {np.shape(mantissa)}"
                )
            conn_weight = _units.attach(jnp.asarray(mantissa)[order], unit)
        name = kwargs.pop("name", None)
        path = kwargs.pop("path", "auto")
        param_type = kwargs.pop("param_type", brainstate.ParamState)
        layer = cls.__new__(cls)
        brainstate.nn.Module.__init__(layer, name=name)
        layer.seed = None
        layer._rule_args = None
        layer._configure(**kwargs)
        layer._setup(conn, conn_weight, None, param_type=param_type, path=path)
        return layer

    def _configure(self, float_as_event: bool = False, deterministic: bool = False):
        self.float_as_event = bool(float_as_event)
        self.deterministic = bool(deterministic)

    def _check_input(self, x, name: str):
        x, unit = _units.split(x)
        x = jnp.asarray(x)
        _checks.spike_dtype(x.dtype, name)
        _checks.spikes_shape(x.shape, self.n_pre, name)
        return x, unit

    def _event_update(self, spikes):
        if self.procedural:
            return _procedural.product(self, spikes, self.float_as_event)
        s, s_unit = self._check_input(spikes, "spikes")
        w, w_unit = self._weight_vector()
        out = csr_event_matmul(
            s,
            w,
            self.indptr,
            self.indices,
            self.n_post,
            max_row=self.max_row,
            float_as_event=self.float_as_event,
            path=self.path,
            deterministic=self.deterministic,
        )
        return _units.attach(out, s_unit, w_unit)


class FixedNumConn(_SparseLayer):
    """A fixed number of connections per neuron; dense-equivalent product.

    ``layer(x)`` equals ``x @ layer.to_dense()`` for any float input (rates,
    currents, spikes) at a cost proportional to the number of synapses.

    Args:
      in_size, out_size: ``n_pre`` and ``n_post`` (ints >= 0, or tuples
        whose last entry is the count).
      conn_num: an int ``k``, or a float fraction read as
        ``int(n_available * conn_num)`` (brainstate's reading; 0.0 gives an
        empty layer, with a warning).
      efferent_target: ``'pre'`` (default): every *postsynaptic* neuron
        receives exactly ``k`` distinct presynaptic partners -- fixed fan-in,
        the meaning the tutorial states. ``'post'``: every presynaptic neuron
        has exactly ``k`` targets (fixed fan-out, brainstate's default; its
        ``'pre'`` raises NotImplementedError in brainstate 0.6).
      afferent_ratio: keep each presynaptic row with this probability (rows
        dropped have no synapses), as in brainstate.
      allow_multi_conn: False (default) draws distinct partners; True draws
        with replacement, so a pair may repeat and its weights add up
        (brainstate's default).
      conn_weight: a scalar (one trainable weight shared by all synapses,
        stored 0-d); one weight per synapse, shape ``(n_synapses,)`` in the
        order of :meth:`synapses` (with fixed fan-out also brainstate's
        ``(n_pre, conn_num)``); or an initializer (a callable taking a
        shape, such as ``braintools.init.KaimingNormal()``). An initializer
        is called with the shape whose fans describe the connectivity, as
        brainstate's layers call it, and the weights are the first
        ``n_synapses`` values of as many such calls as needed, so each
        weight has brainstate's distribution: fixed fan-out ``k``:
        ``(n_pre, k)``, kept as the weight's shape; a probability ``p``:
        ``(n_pre, int(n_post * p))`` (brainstate's count; at least 1
        column); fixed fan-in ``k``, which brainstate lacks: fan-in the
        inputs per neuron and fan-out the mean out-degree,
        ``(k, round(k * n_post / n_pre))``; :meth:`from_synapses`: the
        mean in- and out-degree. ``afferent_ratio`` keeps these shapes
        (brainstate 0.6 then calls the initializer with ``(n_synapses,)``).
        A procedural layer takes the first value of one such call.
        brainunit quantities (``0.5 * u.mS``) give outputs in their unit.
      seed: int, or a 0-d integer array (JAX or NumPy); the connectivity is
        a pure function of (seed, sizes, parameters). ``None`` draws a seed
        from NumPy's global generator, which ``brainstate.random.seed``
        seeds.
      name: module name.
      conn_init: accepted for compatibility with brainstate, unused
        (construction is always vectorised).
      param_type: the state class holding the weight (default ``ParamState``).
      path: ``'auto'``, ``'event'``, ``'kernel'`` or ``'dense'`` (see :mod:`eventlib.ops`).
      procedural: if True, store no synapses: the rows of the active inputs
        are regenerated on every call from the same hash that builds the
        stored form, so the matrix is the same for the same seed (memory
        ``O(n_pre + n_post)``, more arithmetic per synaptic event). Needs
        fixed fan-out or a probability, ``afferent_ratio=1``, and a scalar
        ``conn_weight`` or one weight per presynaptic row ``(n_pre,)``;
        ``n_synapses`` is then the expected count for a probability (see
        :func:`eventlib.ops.procedural_event_matmul`).

    Attributes:
      conn_num: the argument as given (brainstate keeps the realised
        per-neuron count there); ``n_synapses`` is the realised total.

    Shapes:
      input ``(..., n_pre)``, any number of leading batch dimensions
      (brainstate accepts 1-D and 2-D only); output ``(..., n_post)``.
      ``in_size`` or ``out_size`` 0 gives an empty layer, as in brainstate:
      an output ``(..., 0)``, or zeros.
    """

    _dense_equivalent = True

    def __init__(
        self,
        in_size,
        out_size,
        conn_num,
        conn_weight,
        efferent_target: str = "pre",
        afferent_ratio: float = 1.0,
        allow_multi_conn: bool = False,
        seed: int | None = None,
        name: str | None = None,
        conn_init=None,
        param_type=brainstate.ParamState,
        path: str = "auto",
        procedural: bool = False,
        **kwargs,
    ):
        super().__init__(name=name)
        n_pre, n_post = _checks.size(in_size, "in_size"), _checks.size(out_size, "out_size")
        self._sizes = (n_pre, n_post)
        self._configure(**kwargs)
        self.conn_num = conn_num
        k = _count(conn_num, n_post if efferent_target == "post" else n_pre)
        self._init_block = (n_pre, k) if efferent_target == "post" else _fan_in_block(k, n_pre, n_post)
        self._random_setup(
            lambda seed: _fixed_num(n_pre, n_post, conn_num, efferent_target, allow_multi_conn, seed),
            conn_weight,
            efferent_target=efferent_target,
            afferent_ratio=afferent_ratio,
            allow_multi_conn=allow_multi_conn,
            seed=seed,
            param_type=param_type,
            path=path,
            procedural=procedural,
            rule_args={"k": k, "distinct": not allow_multi_conn},
        )

    def _configure(self, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {sorted(kwargs)}")
        self.float_as_event = False

    def update(self, x):
        """Input ``x`` of shape ``(..., n_pre)`` (float, integer or bool) to
        ``(..., n_post)``, equal to ``x @ self.to_dense()``."""
        if self.procedural:  # exact for any float input, at a cost per nonzero entry
            return _procedural.product(self, x, float_as_event=False)
        x, x_unit = self._check_input(x, "x")
        w, w_unit = self._weight_vector()
        dtype = _checks.out_dtype(x.dtype, w.dtype)
        out = coo_matmul(x.astype(dtype), w.astype(dtype), self.connectivity.value["pre"], self.indices, self.n_post)
        return _units.attach(out, x_unit, w_unit)


class EventFixedNumConn(FixedNumConn):
    """The connectivity of :class:`FixedNumConn`, with an event-driven product.

    For the same arguments and seed it represents the same matrix as
    ``FixedNumConn``; its cost scales with the active inputs.

    Args:
      in_size, out_size: ``n_pre`` and ``n_post`` (ints >= 0, or tuples
        whose last entry is the count).
      conn_num: an int ``k``, or a float fraction read as
        ``int(n_available * conn_num)`` (brainstate's reading; 0.0 gives an
        empty layer, with a warning).
      efferent_target: ``'pre'`` (default): every *postsynaptic* neuron
        receives exactly ``k`` distinct presynaptic partners -- fixed fan-in,
        the meaning the tutorial states. ``'post'``: every presynaptic neuron
        has exactly ``k`` targets (fixed fan-out, brainstate's default; its
        ``'pre'`` raises NotImplementedError in brainstate 0.6).
      afferent_ratio: keep each presynaptic row with this probability (rows
        dropped have no synapses), as in brainstate.
      allow_multi_conn: False (default) draws distinct partners; True draws
        with replacement, so a pair may repeat and its weights add up
        (brainstate's default).
      conn_weight: a scalar (one trainable weight shared by all synapses,
        stored 0-d); one weight per synapse, shape ``(n_synapses,)`` in the
        order of :meth:`synapses` (with fixed fan-out also brainstate's
        ``(n_pre, conn_num)``); or an initializer (a callable taking a
        shape, such as ``braintools.init.KaimingNormal()``). An initializer
        is called with the shape whose fans describe the connectivity, as
        brainstate's layers call it, and the weights are the first
        ``n_synapses`` values of as many such calls as needed, so each
        weight has brainstate's distribution: fixed fan-out ``k``:
        ``(n_pre, k)``, kept as the weight's shape; a probability ``p``:
        ``(n_pre, int(n_post * p))`` (brainstate's count; at least 1
        column); fixed fan-in ``k``, which brainstate lacks: fan-in the
        inputs per neuron and fan-out the mean out-degree,
        ``(k, round(k * n_post / n_pre))``; :meth:`from_synapses`: the
        mean in- and out-degree. ``afferent_ratio`` keeps these shapes
        (brainstate 0.6 then calls the initializer with ``(n_synapses,)``).
        A procedural layer takes the first value of one such call.
        brainunit quantities (``0.5 * u.mS``) give outputs in their unit.
      seed: int, or a 0-d integer array (JAX or NumPy); the connectivity is
        a pure function of (seed, sizes, parameters). ``None`` draws a seed
        from NumPy's global generator, which ``brainstate.random.seed``
        seeds.
      name: module name.
      conn_init: accepted for compatibility with brainstate, unused
        (construction is always vectorised).
      param_type: the state class holding the weight (default ``ParamState``).
      path: ``'auto'``, ``'event'``, ``'kernel'`` or ``'dense'`` (see :mod:`eventlib.ops`).
      procedural: if True, store no synapses: the rows of the active inputs
        are regenerated on every call from the same hash that builds the
        stored form, so the matrix is the same for the same seed (memory
        ``O(n_pre + n_post)``, more arithmetic per synaptic event). Needs
        fixed fan-out or a probability, ``afferent_ratio=1``, and a scalar
        ``conn_weight`` or one weight per presynaptic row ``(n_pre,)``;
        ``n_synapses`` is then the expected count for a probability (see
        :func:`eventlib.ops.procedural_event_matmul`).
      float_as_event: if True, every nonzero input counts as one spike
        (brainstate's behaviour, with a straight-through spike gradient);
        default False multiplies float inputs by their weights, as the dense
        product does.
      deterministic: bit-identical outputs from run to run on every
        platform: the product avoids float atomics (see
        :func:`eventlib.ops.csr_event_matmul`); several times slower on a
        GPU. Stored connectivity only.

    Attributes:
      conn_num: the argument as given (brainstate keeps the realised
        per-neuron count there); ``n_synapses`` is the realised total.

    Shapes:
      input ``(..., n_pre)``, any number of leading batch dimensions
      (brainstate accepts 1-D and 2-D only); output ``(..., n_post)``.
      ``in_size`` or ``out_size`` 0 gives an empty layer, as in brainstate:
      an output ``(..., 0)``, or zeros.
    """

    _dense_equivalent = False
    # The event-driven options of every sparse layer (FixedNumConn refuses them).
    _configure = _SparseLayer._configure

    def update(self, spikes):
        """Spikes ``(..., n_pre)`` (bool, integer or float) to ``(..., n_post)``."""
        return self._event_update(spikes)


class EventFixedProb(_SparseLayer):
    """Sparse random connectivity, event-driven.

    With a float ``conn_num = p``, each (pre, post) pair is connected
    independently with probability ``p``: no pair repeats, and in- and
    out-degrees are Binomial(n, p) -- "each post neuron receives ~p of the
    pre neurons". (brainstate's ``EventFixedProb`` instead gives every
    presynaptic neuron exactly ``int(n_post * p)`` targets drawn with
    replacement.) With an int ``conn_num``, every presynaptic neuron has
    exactly that many distinct targets (brainstate's meaning of an int).

    Args:
      in_size, out_size: ``n_pre`` and ``n_post`` (ints >= 0, or tuples
        whose last entry is the count).
      conn_num: float probability in [0, 1] (0.0 gives an empty layer, with
        a warning, as brainstate builds one), or int count per presynaptic
        neuron.
      efferent_target: for an int ``conn_num`` only: ``'post'`` (default,
        fixed fan-out) or ``'pre'`` (fixed fan-in).
      afferent_ratio: keep each presynaptic row with this probability.
      allow_multi_conn: for an int ``conn_num`` only: draw targets with
        replacement (duplicates add up).
      conn_weight: a scalar (one trainable weight shared by all synapses,
        stored 0-d); one weight per synapse, shape ``(n_synapses,)`` in the
        order of :meth:`synapses` (with fixed fan-out also brainstate's
        ``(n_pre, conn_num)``); or an initializer (a callable taking a
        shape, such as ``braintools.init.KaimingNormal()``). An initializer
        is called with the shape whose fans describe the connectivity, as
        brainstate's layers call it, and the weights are the first
        ``n_synapses`` values of as many such calls as needed, so each
        weight has brainstate's distribution: fixed fan-out ``k``:
        ``(n_pre, k)``, kept as the weight's shape; a probability ``p``:
        ``(n_pre, int(n_post * p))`` (brainstate's count; at least 1
        column); fixed fan-in ``k``, which brainstate lacks: fan-in the
        inputs per neuron and fan-out the mean out-degree,
        ``(k, round(k * n_post / n_pre))``; :meth:`from_synapses`: the
        mean in- and out-degree. ``afferent_ratio`` keeps these shapes
        (brainstate 0.6 then calls the initializer with ``(n_synapses,)``).
        A procedural layer takes the first value of one such call.
        brainunit quantities (``0.5 * u.mS``) give outputs in their unit.
      seed: int, or a 0-d integer array (JAX or NumPy); the connectivity is
        a pure function of (seed, sizes, parameters). ``None`` draws a seed
        from NumPy's global generator, which ``brainstate.random.seed``
        seeds.
      name: module name.
      conn_init: accepted for compatibility with brainstate, unused
        (construction is always vectorised).
      param_type: the state class holding the weight (default ``ParamState``).
      path: ``'auto'``, ``'event'``, ``'kernel'`` or ``'dense'`` (see :mod:`eventlib.ops`).
      procedural: if True, store no synapses: the rows of the active inputs
        are regenerated on every call from the same hash that builds the
        stored form, so the matrix is the same for the same seed (memory
        ``O(n_pre + n_post)``, more arithmetic per synaptic event). Needs
        fixed fan-out or a probability, ``afferent_ratio=1``, and a scalar
        ``conn_weight`` or one weight per presynaptic row ``(n_pre,)``;
        ``n_synapses`` is then the expected count for a probability (see
        :func:`eventlib.ops.procedural_event_matmul`).
      float_as_event: if True, every nonzero input counts as one spike
        (brainstate's behaviour, with a straight-through spike gradient);
        default False multiplies float inputs by their weights, as the dense
        product does.
      deterministic: bit-identical outputs from run to run on every
        platform: the product avoids float atomics (see
        :func:`eventlib.ops.csr_event_matmul`); several times slower on a
        GPU. Stored connectivity only.

    Attributes:
      conn_num: the argument as given (brainstate keeps the realised
        per-neuron count there); ``n_synapses`` is the realised total.

    Shapes:
      input ``(..., n_pre)``, any number of leading batch dimensions
      (brainstate accepts 1-D and 2-D only); output ``(..., n_post)``.
      ``in_size`` or ``out_size`` 0 gives an empty layer, as in brainstate:
      an output ``(..., 0)``, or zeros.
    """

    def __init__(
        self,
        in_size,
        out_size,
        conn_num,
        conn_weight,
        efferent_target: str = "post",
        afferent_ratio: float = 1.0,
        allow_multi_conn: bool = False,
        seed: int | None = None,
        name: str | None = None,
        conn_init=None,
        param_type=brainstate.ParamState,
        float_as_event: bool = False,
        path: str = "auto",
        procedural: bool = False,
        deterministic: bool = False,
    ):
        super().__init__(name=name)
        n_pre, n_post = _checks.size(in_size, "in_size"), _checks.size(out_size, "out_size")
        self._sizes = (n_pre, n_post)
        self.float_as_event = bool(float_as_event)
        self.deterministic = bool(deterministic)
        self.conn_num = conn_num
        if isinstance(conn_num, (bool, np.bool_)) or not isinstance(conn_num, numbers.Real):
            raise TypeError(f"conn_num must be a float probability or an int count, got {conn_num!r}")
        if isinstance(conn_num, numbers.Integral):
            self.prob = None

            def build(seed):
                return _fixed_num(n_pre, n_post, conn_num, efferent_target, allow_multi_conn, seed)

            fan_out = efferent_target == "post"
            k = _count(conn_num, n_post if fan_out else n_pre)
            rule_args = {"k": k, "distinct": not allow_multi_conn}
            self._init_block = (n_pre, k) if fan_out else _fan_in_block(k, n_pre, n_post)
        elif conn_num == 0.0:  # brainstate builds an empty layer: so does eventlib, with a warning
            self.prob = 0.0

            def build(seed):
                return conn_lib.fixed_num_per_pre(n_pre, n_post, 0, seed), None

            rule_args = {"k": 0, "distinct": True}
            self._init_block = (n_pre, 1)
        else:
            self.prob = _checks.probability(conn_num, "conn_num")

            def build(seed):
                return conn_lib.fixed_prob(n_pre, n_post, self.prob, seed), None

            rule_args = {"prob": self.prob}
            # brainstate's layer holds int(n_post * p) weights per presynaptic
            # neuron and calls the initializer with (n_pre, that count); at
            # least one column where its count would be 0.
            self._init_block = (n_pre, max(1, int(n_post * self.prob)))

        self._random_setup(
            build,
            conn_weight,
            efferent_target=efferent_target,
            afferent_ratio=afferent_ratio,
            allow_multi_conn=allow_multi_conn,
            seed=seed,
            param_type=param_type,
            path=path,
            procedural=procedural,
            rule_args=rule_args,
        )

    def update(self, spikes):
        """Spikes ``(..., n_pre)`` (bool, integer or float) to ``(..., n_post)``."""
        return self._event_update(spikes)
