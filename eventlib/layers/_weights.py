"""Initial weights of the layers: from an array, a scalar or an initializer.

Shared by :class:`~eventlib.layers.EventLinear` and the sparse layers, so
neither layer module imports the other's.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from .. import _checks, _units

# Elements of the one initializer call that gives a procedural layer its
# scalar weight: the call builds the whole fan-shaped block.
PROCEDURAL_INIT_LIMIT = 1 << 24


def is_initializer(value) -> bool:
    """True for an initializer: a callable that is not an array."""
    return callable(value) and not hasattr(value, "shape")


def init_param(value, shape, name: str, allowed_shapes):
    """An initial parameter from an array, a scalar or an initializer
    (any callable taking the shape, such as ``braintools.init.KaimingUniform()``).

    Args:
      value: the array, scalar or initializer.
      shape: the shape an initializer is called with.
      name: the argument's name, for error messages.
      allowed_shapes: the shapes the value may have.

    Returns the value (a float array, possibly a brainunit quantity)."""
    if is_initializer(value):
        value = value(shape)
    mantissa, unit = _units.split(value)
    mantissa = jnp.asarray(mantissa)
    if mantissa.dtype == jnp.bool_ or jnp.issubdtype(mantissa.dtype, jnp.integer):
        if mantissa.ndim != 0:
            raise TypeError(f"{name} must hold floating-point values, got an array of dtype {mantissa.dtype}")
        mantissa = mantissa.astype(jnp.zeros(()).dtype)  # a Python int scalar: the default float
    _checks.weight_dtype(mantissa.dtype, name)
    if mantissa.shape not in allowed_shapes:
        shapes = " or ".join(str(s) for s in allowed_shapes)
        raise ValueError(f"{name} must have shape {shapes}, got shape {mantissa.shape}")
    return _units.attach(mantissa, unit)


def fan_in_block(k: int, n_pre: int, n_post: int) -> tuple[int, int]:
    """The initializer shape of fixed fan-in ``k``, which brainstate lacks:
    fan-in the inputs per neuron, fan-out the mean out-degree."""
    return (max(1, k), max(1, round(k * n_post / n_pre)) if n_pre else 1)


def degree_block(n_synapses: int, n_pre: int, n_post: int) -> tuple[int, int]:
    """The initializer shape of arbitrary synapses (``from_synapses``): fan-in
    the mean in-degree, fan-out the mean out-degree."""
    return (max(1, round(n_synapses / n_post)) if n_post else 1, max(1, round(n_synapses / n_pre)) if n_pre else 1)


def draw_weights(init, block: tuple[int, int], n: int):
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


def first_weight(init, block: tuple[int, int]):
    """The first value an initializer gives for ``block``: a procedural
    layer's one weight, with the distribution of the stored layer's."""
    if math.prod(block) > PROCEDURAL_INIT_LIMIT:
        raise ValueError(
            f"conn_weight: an initializer for procedural=True is called with the layer's fan shape {block}, "
            f"which would need {4 * math.prod(block)} bytes; pass a scalar weight (or one per presynaptic row, "
            "shape (n_pre,)) instead"
        )
    value = draw_weights(init, tuple(max(1, d) for d in block), 1)
    mantissa, unit = _units.split(value)
    return _units.attach(jnp.asarray(mantissa).reshape(-1)[0], unit)
