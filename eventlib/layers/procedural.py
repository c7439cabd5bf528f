"""Procedural mode of the connectivity layers (``procedural=True``).

A procedural layer keeps the rule that generates its connectivity --
seed, sizes, parameters, and for a probability a table of at most ``n_post``
uint32 thresholds -- instead of the synapses. Its product regenerates the
rows of the active inputs on every call
(:func:`eventlib.ops.procedural_event.procedural_event_matmul`), from the
same integer hash the stored layers are built with, so for the same
arguments and seed a procedural and a stored layer hold the same matrix.
Memory is ``O(n_pre + n_post)`` whatever the number of synapses; each call
costs more arithmetic per synaptic event than reading stored indices.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import _units
from ..connectivity import stored as conn_lib
from ..connectivity.procedural import max_row_bound
from ..ops import check_path
from ..ops.procedural_event import expected_synapses, procedural_event_matmul, stored_connectivity
from .event_linear import init_param


def check_supported(efferent_target: str, fixed_count: bool, afferent_ratio: float) -> None:
    """Procedural mode regenerates rows by presynaptic neuron: refuse the
    constructions it cannot regenerate that way."""
    if fixed_count and efferent_target == "pre":
        raise ValueError(
            "procedural=True needs fixed fan-out (efferent_target='post'): with fixed fan-in each "
            "postsynaptic neuron draws its inputs, so one presynaptic neuron's targets are spread over "
            "every postsynaptic row and regenerating them would mean generating the whole matrix on each call"
        )
    if afferent_ratio != 1.0:
        raise ValueError("procedural=True does not support afferent_ratio != 1.0; use the stored form")


def setup(layer, rule, table, conn_weight, *, param_type, path) -> None:
    """Fill in a procedural layer: sizes, rule, table and weight (a scalar,
    or ``(n_pre,)``: one weight per presynaptic row)."""
    layer.in_size, layer.out_size = (rule.n_pre,), (rule.n_post,)
    layer.n_pre, layer.n_post = rule.n_pre, rule.n_post
    layer.path = check_path(path)
    layer.rule = rule
    # The seed and the table travel as state (not compile-time constants),
    # like stored indices: a restored seed is the one the product uses.
    from .fixed_conn import ConnectivityState

    value = {"seed": jnp.asarray(np.uint32(rule.seed)), "table": jnp.asarray(table)}
    layer.connectivity = ConnectivityState(value, layout=("procedural", rule.n_pre, rule.n_post, np.asarray(table)))
    layer.weight = param_type(init_param(conn_weight, (), "conn_weight", [(), (rule.n_pre,)]))
    if rule.scheme in ("multi", "first", "smallest") and rule.k == 0:
        conn_lib.warn_if_empty(conn_lib.fixed_num_per_pre(rule.n_pre, rule.n_post, 0, 0), type(layer).__name__)


def max_row(layer) -> int:
    """The rule's targets per row (typical, not a hard bound, for a probability)."""
    return max_row_bound(layer.rule)


def n_synapses(layer) -> int:
    """Exact for fixed fan-out; the expected ``n_pre * n_post * prob``
    (rounded) for a probability, whose realised count is never generated as
    a whole."""
    return int(round(expected_synapses(layer.rule)))


def stored(layer) -> conn_lib.Connectivity:
    """The layer's matrix in stored form (built in NumPy: memory
    proportional to the synapses)."""
    return stored_connectivity(layer.rule)


def product(layer, spikes, float_as_event: bool):
    s, s_unit = layer._check_input(spikes, "spikes")
    w, w_unit = layer._weight_vector()
    state = layer.connectivity.value
    rule, table, seed = layer.rule, state["table"], state["seed"]
    out = procedural_event_matmul(s, w, rule, table, seed=seed, float_as_event=float_as_event, path=layer.path)
    return _units.attach(out, s_unit, w_unit)


def to_dense(layer):
    w, unit = layer._weight_vector()
    eye = jnp.eye(layer.n_pre, dtype=jnp.bool_)
    state = layer.connectivity.value
    one = jnp.ones((), jnp.asarray(w).dtype)
    dense = procedural_event_matmul(eye, one, layer.rule, state["table"], seed=state["seed"], path="dense")
    return _units.attach(dense * (w if w.ndim == 0 else w[:, None]), unit)
