"""Sparse random connectivity as brainstate modules.

- :class:`EventFixedProb`: each (pre, post) pair connected with probability p.
- :class:`FixedNumConn`: a fixed number of partners per neuron; dense-equivalent
  product for any float input.
- :class:`EventFixedNumConn`: the same connectivity, event-driven.

All three generate their synapses from ``(seed, sizes, parameters)`` alone
and never build an ``n_pre x n_post`` array. The layer's ``connectivity``
state is a :class:`~eventlib.layers.storage.StoredConnectivity` (the
synapses, by presynaptic row: 4 bytes of index per synapse, plus 4 for
per-synapse weights) or, with ``procedural=True``, a
:class:`~eventlib.layers.storage.ProceduralConnectivity` (the rule that
regenerates them); the layer computes through the state's methods and does
not depend on which it holds.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import NamedTuple

import brainstate
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, _units
from ..connectivity import (
    Connectivity,
    draw_delays,
    fixed_num_per_post,
    fixed_num_per_pre,
    fixed_prob,
    from_indices,
    keep_afferent_rows,
)
from ..ops import check_path
from ._delays import DelayedOutput, DelaySpec
from ._weights import fan_in_block
from .storage import ConnectivityState, ProceduralConnectivity, StoredConnectivity

__all__ = ["EventFixedProb", "FixedNumConn", "EventFixedNumConn", "ConnectivityState"]

# The docstring parts the three layers share; each class docstring names
# them as ``{key}`` and :func:`_compose_doc` fills them in when the class is
# created, so ``help()`` and Sphinx see one complete string per class.
_DOC_PARTS = {
    "sizes": """\
in_size, out_size: ``n_pre`` and ``n_post`` (ints >= 0, or tuples
        whose last entry is the count).""",
    "count_args": """\
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
        (brainstate's default).""",
    "common_args": """\
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
        :func:`eventlib.ops.procedural_event_matmul`).""",
    "event_args": """\
delay: the synaptic delay: a spike at step ``t`` reaches the
        postsynaptic neurons at step ``t + d``. None or 0 (default): no
        delay, and no state. An int number of steps or a brainunit time (a
        whole multiple of brainstate's ``dt`` at construction) for every
        synapse; an array ``(n_synapses,)`` of them, one per synapse in the
        order of :meth:`synapses`; or a distribution drawn per synapse from
        ``(seed, row, position)`` by the connectivity's hash,
        :class:`eventlib.connectivity.UniformDelay` (``low`` to ``high``,
        both included) or :class:`eventlib.connectivity.DelayChoice`
        (``values`` with ``probs``). The layer then keeps a ring buffer
        ``delay_buffer`` ``(*batch, max_delay + 1, n_post)`` and a step
        counter ``delay_step``, brainstate states created by
        ``init_state(batch_size)`` (``brainstate.nn.init_all_states``) and
        emptied by ``reset_state``; per-synapse delays are held in the
        ``connectivity`` state with the indices, so checkpoints restore them.
        A step costs the spikes times their synapses plus one slot of the
        buffer, whatever the delays (:func:`eventlib.ops.csr_event_matmul_delayed`).
        Per-synapse delays need stored connectivity and
        ``deterministic=False``. ``to_dense()`` is the sum over the delays.
      max_delay: the largest delay the buffer holds (steps or time; default:
        the largest delay given). Larger delays are refused.
      float_as_event: if True, every nonzero input counts as one spike
        (brainstate's behaviour, with a straight-through spike gradient);
        default False multiplies float inputs by their weights, as the dense
        product does.
      deterministic: bit-identical outputs from run to run on every
        platform: the product avoids float atomics (see
        :func:`eventlib.ops.csr_event_matmul`); several times slower on a
        GPU. Stored connectivity only.""",
    "tail": """\
Attributes:
      conn_num: the argument as given (brainstate keeps the realised
        per-neuron count there); ``n_synapses`` is the realised total.

    Shapes:
      input ``(..., n_pre)``, any number of leading batch dimensions
      (brainstate accepts 1-D and 2-D only); output ``(..., n_post)``.
      ``in_size`` or ``out_size`` 0 gives an empty layer, as in brainstate:
      an output ``(..., 0)``, or zeros.""",
}


def _compose_doc(cls):
    """Fill the shared parts into the docstring of ``cls`` (a class decorator)."""
    cls.__doc__ = cls.__doc__.format(**_DOC_PARTS)
    return cls


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


class _Plan(NamedTuple):
    """What ``conn_num`` asks for, in both storage forms."""

    build: Callable[[int], tuple[Connectivity, int | None]]  # seed -> (stored form, fan-out or None)
    rule_args: dict  # make_rule's arguments for the procedural form
    init_block: tuple[int, int]  # the shape an initializer is called with


def _fixed_num_plan(n_pre, n_post, conn_num, efferent_target, allow_multi_conn) -> _Plan:
    """``conn_num`` read as a count per neuron (fan-out for ``'post'``, fan-in for ``'pre'``)."""
    distinct = not allow_multi_conn
    if efferent_target == "post":  # every pre neuron has k targets
        k = _count(conn_num, n_post)

        def build(seed):
            return fixed_num_per_pre(n_pre, n_post, k, seed, distinct=distinct), k

        return _Plan(build, {"k": k, "distinct": distinct}, (n_pre, k))
    k = _count(conn_num, n_pre)  # every post neuron receives k inputs

    def build(seed):
        return fixed_num_per_post(n_pre, n_post, k, seed, distinct=distinct), None

    return _Plan(build, {"k": k, "distinct": distinct}, fan_in_block(k, n_pre, n_post))


class _SparseLayer(DelayedOutput, brainstate.nn.Module):
    """Construction, storage, weights and export shared by the sparse layers.

    A subclass says what ``conn_num`` means (:meth:`_plan`) and which product
    :meth:`update` computes; everything else is here, once. The constructor
    has :class:`FixedNumConn`'s public signature (which ``FixedNumConn`` and
    ``EventFixedNumConn`` inherit; :class:`EventFixedProb` states its own
    and forwards). The keyword
    options a layer accepts beyond the shared ones are listed in
    ``_options``: none here, the event-driven product's with
    :class:`_EventDriven`.
    """

    _options: tuple[str, ...] = ()
    _dense_equivalent = False  # True: the product visits every synapse (and needs each one's row)

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
        self._set_options(kwargs)
        self.conn_num = conn_num
        plan = self._plan(conn_num, n_pre, n_post, efferent_target, allow_multi_conn)
        self.efferent_target = _check_target(efferent_target)
        self.allow_multi_conn = bool(allow_multi_conn)
        self.seed = _resolve_seed(seed)
        check_path(path)
        if procedural:
            fixed_count = "k" in plan.rule_args
            ProceduralConnectivity.check_supported(efferent_target, fixed_count, afferent_ratio, self.deterministic)
            if self._delay_spec.per_synapse:
                raise ValueError(
                    "per-synapse delays (an array or a distribution) need stored connectivity, not procedural=True; "
                    "a single delay for every synapse works with both"
                )
            state, weight = ProceduralConnectivity.create(
                n_pre, n_post, self.seed, plan.rule_args, conn_weight, plan.init_block, what=type(self).__name__
            )
        else:
            conn, fan_out = plan.build(self.seed)
            if afferent_ratio != 1.0:
                conn, fan_out = keep_afferent_rows(conn, afferent_ratio, self.seed), None
            state, weight = self._stored_state(conn, conn_weight, plan.init_block, fan_out, self.seed)
        self._install(state, weight, param_type, path)

    def _plan(self, conn_num, n_pre: int, n_post: int, efferent_target: str, allow_multi_conn: bool) -> _Plan:
        """``conn_num`` as a count per neuron (the layers' shared reading)."""
        return _fixed_num_plan(n_pre, n_post, conn_num, efferent_target, allow_multi_conn)

    def _set_options(self, options: dict) -> None:
        unknown = sorted(set(options) - set(self._options))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {unknown}")
        self.float_as_event = bool(options.get("float_as_event", False))
        self.deterministic = bool(options.get("deterministic", False))
        self._delay_spec = DelaySpec(options.get("delay"), options.get("max_delay"))
        if self._delay_spec.per_synapse and self.deterministic:
            raise ValueError("deterministic=True is not available with per-synapse delays (a single delay works)")
        self.max_delay = 0 if self._delay_spec.per_synapse else self._delay_spec.max_delay
        self.delay_steps = self._delay_spec.scalar

    def _stored_state(self, conn, conn_weight, init_block, fan_out, seed, order=None):
        """The stored state and initial weight, with the per-synapse delays
        (an array, reordered by ``order`` when given, or drawn for ``seed``)."""
        spec, delays = self._delay_spec, None
        if spec.array is not None:
            if spec.array.shape != (conn.n_synapses,):
                raise ValueError(
                    f"delay must be a scalar or have shape (n_synapses,) = ({conn.n_synapses},), "
                    f"got shape {spec.array.shape}"
                )
            delays = spec.array if order is None else spec.array[np.asarray(order)]
        elif spec.dist is not None:
            delays = draw_delays(spec.dist, conn, _resolve_seed(seed))
        if delays is not None:
            self.max_delay = spec.stated_max if spec.stated_max is not None else int(delays.max(initial=0))
            if self.max_delay == 0:
                delays = None  # every delay 0: the undelayed product, no state
        return StoredConnectivity.create(
            conn,
            conn_weight,
            init_block,
            fan_out,
            with_pre=self._dense_equivalent,
            what=type(self).__name__,
            delays=delays,
            max_delay=self.max_delay,
        )

    def _install(self, state: ConnectivityState, weight, param_type, path: str) -> None:
        self.n_pre, self.n_post = state.n_pre, state.n_post
        self.in_size, self.out_size = (state.n_pre,), (state.n_post,)
        self.path = check_path(path)
        self.connectivity = state
        self.weight = param_type(weight)

    @property
    def procedural(self) -> bool:
        """True if the layer holds the rule of its connectivity rather than
        its synapses (read-only: chosen at construction)."""
        return self.connectivity.procedural

    @property
    def seed(self):
        """The connectivity seed: for a procedural layer, the one its state
        holds (a restored checkpoint's); None for a layer from
        :meth:`from_synapses`."""
        state = vars(self).get("connectivity")
        held = None if state is None else state.seed
        return self._seed if held is None else held

    @seed.setter
    def seed(self, value):
        self._seed = value

    @property
    def max_row(self) -> int:
        """The longest row, from the connectivity the state holds now (for a
        procedural layer, the typical bound of its rule)."""
        return self.connectivity.max_row

    @property
    def rule(self):
        """The procedural rule for the seed the state holds (procedural layers
        only; rebuilt when a checkpoint or an assignment changed the seed)."""
        return self.connectivity.rule

    @property
    def indptr(self):
        """int32 ``(n_pre + 1,)``: row ``i``'s synapses are positions
        ``indptr[i]`` to ``indptr[i + 1] - 1`` (stored layers only)."""
        return self.connectivity.indptr

    @property
    def indices(self):
        """int32 ``(n_synapses,)``: the postsynaptic target of each synapse
        (stored layers only)."""
        return self.connectivity.indices

    @property
    def n_synapses(self) -> int:
        """Number of synapses (duplicates counted). For a procedural layer
        with a probability this is the expected count
        ``round(n_pre * n_post * prob)``: the realised one is never generated
        as a whole (``stored_connectivity().n_synapses`` builds it)."""
        return self.connectivity.n_synapses

    def stored_connectivity(self):
        """The matrix's synapses as a :class:`~eventlib.connectivity.Connectivity`
        (for a procedural layer, built now in NumPy: memory proportional to
        the synapses)."""
        return self.connectivity.stored_connectivity()

    @property
    def nbytes(self) -> int:
        """Bytes held by the connectivity and its weights."""
        w, _ = _units.split(self.weight.value)
        return int(self.connectivity.nbytes + jnp.asarray(w).nbytes)

    def _weight_vector(self):
        w, unit = _units.split(self.weight.value)
        w = jnp.asarray(w)
        return (w if w.ndim == 0 else w.reshape(-1)), unit

    def synapses(self):
        """``(pre_indices, post_indices)``: one entry per synapse, in the order
        of the per-synapse weights."""
        return self.connectivity.synapses()

    def to_dense(self):
        """The ``(n_pre, n_post)`` matrix this layer represents (duplicate
        synapses add up). For checks and small layers only: it is dense.

        Inside a function traced by ``jax.jit`` the connectivity is a
        constant, so XLA builds this matrix at compile time (slowly, for
        large layers); compute it outside and pass it in as an argument."""
        w, unit = self._weight_vector()
        return _units.attach(self.connectivity.to_dense(w), unit)

    @classmethod
    def from_synapses(cls, pre_indices, post_indices, in_size, out_size, conn_weight, **kwargs):
        """A layer with exactly the synapses ``(pre_indices[s], post_indices[s])``.

        ``conn_weight`` is a scalar, an initializer, or one weight per synapse
        in the order given (it is reordered with the synapses). Remaining
        keyword arguments go to the layer (``float_as_event``, ``path``,
        ``name``, ``param_type``, ``delay``, ``max_delay``); a per-synapse
        ``delay`` array is in the order given, like the weights.
        """
        n_pre, n_post = _checks.size(in_size, "in_size"), _checks.size(out_size, "out_size")
        conn, order = from_indices(pre_indices, post_indices, n_pre, n_post)
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
        layer._set_options(kwargs)
        state, weight = layer._stored_state(conn, conn_weight, None, None, None, order)
        layer._install(state, weight, param_type, path)
        return layer

    def _check_input(self, x, name: str):
        x, unit = _units.split(x)
        x = jnp.asarray(x)
        _checks.spike_dtype(x.dtype, name)
        _checks.spikes_shape(x.shape, self.n_pre, name)
        return x, unit


class _EventDriven:
    """The event-driven product and its options (``float_as_event``,
    ``deterministic``), for the layers that offer them."""

    _options = ("float_as_event", "deterministic", "delay", "max_delay")
    _dense_equivalent = False

    def update(self, spikes):
        """Spikes ``(..., n_pre)`` (bool, integer or float) to ``(..., n_post)``.

        With delays, what arrives at this step (the buffer's slot), after
        this step's spikes are added into the buffer; the step advances."""
        s, s_unit = self._check_input(spikes, "spikes")
        w, w_unit = self._weight_vector()

        def product(x):
            return self.connectivity.event_product(
                x, w, float_as_event=self.float_as_event, path=self.path, deterministic=self.deterministic
            )

        if self.max_delay == 0:
            out = product(s)
        elif getattr(self.connectivity, "delays", None) is None:
            out = self._delayed(product, s, _checks.out_dtype(s.dtype, w.dtype))
        else:

            def per_synapse(buffer, step):
                return self.connectivity.delayed_product(
                    s, w, buffer, step, float_as_event=self.float_as_event, path=self.path
                )

            out = self._delayed(None, s, _checks.out_dtype(s.dtype, w.dtype), per_synapse)
        return _units.attach(out, s_unit, w_unit)


@_compose_doc
class FixedNumConn(_SparseLayer):
    """A fixed number of connections per neuron; dense-equivalent product.

    ``layer(x)`` equals ``x @ layer.to_dense()`` for any float input (rates,
    currents, spikes) at a cost proportional to the number of synapses.

    Args:
      {sizes}
      {count_args}
      {common_args}

    {tail}
    """

    _dense_equivalent = True

    def update(self, x):
        """Input ``x`` of shape ``(..., n_pre)`` (float, integer or bool) to
        ``(..., n_post)``, equal to ``x @ self.to_dense()``."""
        x, x_unit = self._check_input(x, "x")
        w, w_unit = self._weight_vector()
        return _units.attach(self.connectivity.dense_product(x, w, path=self.path), x_unit, w_unit)


@_compose_doc
class EventFixedNumConn(_EventDriven, FixedNumConn):
    """The connectivity of :class:`FixedNumConn`, with an event-driven product.

    For the same arguments and seed it represents the same matrix as
    ``FixedNumConn``; its cost scales with the active inputs.

    Args:
      {sizes}
      {count_args}
      {common_args}
      {event_args}

    {tail}
    """


@_compose_doc
class EventFixedProb(_EventDriven, _SparseLayer):
    """Sparse random connectivity, event-driven.

    With a float ``conn_num = p``, each (pre, post) pair is connected
    independently with probability ``p``: no pair repeats, and in- and
    out-degrees are Binomial(n, p) -- "each post neuron receives ~p of the
    pre neurons". (brainstate's ``EventFixedProb`` instead gives every
    presynaptic neuron exactly ``int(n_post * p)`` targets drawn with
    replacement.) With an int ``conn_num``, every presynaptic neuron has
    exactly that many distinct targets (brainstate's meaning of an int).

    Args:
      {sizes}
      conn_num: float probability in [0, 1] (0.0 gives an empty layer, with
        a warning, as brainstate builds one), or int count per presynaptic
        neuron.
      efferent_target: for an int ``conn_num`` only: ``'post'`` (default,
        fixed fan-out) or ``'pre'`` (fixed fan-in).
      afferent_ratio: keep each presynaptic row with this probability.
      allow_multi_conn: for an int ``conn_num`` only: draw targets with
        replacement (duplicates add up).
      {common_args}
      {event_args}

    {tail}
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
        delay=None,
        max_delay=None,
    ):
        super().__init__(
            in_size,
            out_size,
            conn_num,
            conn_weight,
            efferent_target,
            afferent_ratio,
            allow_multi_conn,
            seed,
            name,
            conn_init,
            param_type,
            path,
            procedural,
            float_as_event=float_as_event,
            deterministic=deterministic,
            delay=delay,
            max_delay=max_delay,
        )

    def _plan(self, conn_num, n_pre: int, n_post: int, efferent_target: str, allow_multi_conn: bool) -> _Plan:
        """A float is a probability (``self.prob``), an int a count per neuron."""
        if isinstance(conn_num, (bool, np.bool_)) or not isinstance(conn_num, numbers.Real):
            raise TypeError(f"conn_num must be a float probability or an int count, got {conn_num!r}")
        if isinstance(conn_num, numbers.Integral):
            self.prob = None
            return super()._plan(conn_num, n_pre, n_post, efferent_target, allow_multi_conn)
        if conn_num == 0.0:  # brainstate builds an empty layer: so does eventlib, with a warning
            self.prob = 0.0
            return _Plan(
                lambda seed: (fixed_num_per_pre(n_pre, n_post, 0, seed), None), {"k": 0, "distinct": True}, (n_pre, 1)
            )
        prob = self.prob = _checks.probability(conn_num, "conn_num")
        # brainstate's layer holds int(n_post * p) weights per presynaptic
        # neuron and calls the initializer with (n_pre, that count); at
        # least one column where its count would be 0.
        return _Plan(
            lambda seed: (fixed_prob(n_pre, n_post, prob, seed), None),
            {"prob": prob},
            (n_pre, max(1, int(n_post * prob))),
        )
