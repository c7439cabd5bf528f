"""Argument checks shared by the operators and layers.

Every check raises ``ValueError`` or ``TypeError`` naming the argument and
what was expected, at construction or trace time (shapes and dtypes are
static under ``jit``), so bad input never reaches a kernel.
"""

from __future__ import annotations

import numbers

import jax.numpy as jnp
import numpy as np


def size(value, name: str) -> int:
    """A non-negative neuron count given as an int or a tuple whose last
    entry is the count (brainstate's ``in_size``/``out_size`` convention).
    0 is an empty population, which brainstate's layers also accept."""
    if isinstance(value, (tuple, list)):
        if len(value) == 0:
            raise ValueError(f"{name} must be a non-negative int or a non-empty tuple, got {value!r}")
        value = value[-1]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative int, got {value!r} of type {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value}")
    return int(value)


def spike_dtype(dtype, name: str = "spikes") -> None:
    """Spikes may be bool, integer (counts) or real floating point."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_ or jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating):
        return
    raise TypeError(f"{name} must have a bool, integer or real floating dtype, got {dtype}")


def weight_dtype(dtype, name: str = "weight") -> None:
    if not jnp.issubdtype(np.dtype(dtype), jnp.floating):
        raise TypeError(f"{name} must have a real floating dtype (such as float32), got {np.dtype(dtype)}")


def spikes_shape(shape, n_pre: int, name: str = "spikes") -> None:
    if len(shape) == 0:
        raise ValueError(f"{name} must have shape (..., n_pre={n_pre}), got a scalar")
    if shape[-1] != n_pre:
        raise ValueError(
            f"{name} must have shape (..., n_pre={n_pre}): its last dimension is {shape[-1]} "
            f"(full shape {tuple(shape)})"
        )


def out_dtype(spike_dtype, weight_dtype):
    """Result dtype of ``spikes @ weight``: the weight's float type, widened
    by float spikes of a wider type (as the dense product would be)."""
    spike_dtype, weight_dtype = np.dtype(spike_dtype), np.dtype(weight_dtype)
    if jnp.issubdtype(spike_dtype, jnp.floating):
        return jnp.promote_types(spike_dtype, weight_dtype)
    return weight_dtype


def accumulation_dtype(dtype):
    """The type sums of ``dtype`` values are formed in: float32 for narrower
    floats (float16, bfloat16), as XLA's dot product sums them, else
    ``dtype``. Summing hundreds of half-precision terms in half precision
    loses several units of its precision; one rounding at the end loses at
    most half of one."""
    dtype = np.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4:
        return np.dtype(np.float32)
    return dtype


def probability(value, name: str = "conn_num") -> float:
    p = float(value)
    if not (0.0 < p <= 1.0) or not np.isfinite(p):
        raise ValueError(f"{name} as a probability must lie in (0, 1], got {value!r}")
    return p
