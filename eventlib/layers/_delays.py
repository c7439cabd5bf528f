"""Synaptic delays of the layers: reading ``delay=`` and the ring buffer states.

``delay=`` is read once, at construction, into steps (a brainunit time is
divided by brainstate's ``dt``, and must be a whole multiple of it). A layer
with a largest delay ``D > 0`` keeps two brainstate states, created by
``init_state(batch_size=None)`` and reset by ``reset_state``: the ring
buffer ``delay_buffer`` ``(*batch, D + 1, n_post)`` of pending inputs and
``delay_step`` (the step modulo ``D + 1``). Delay 0 (or None) keeps the
undelayed product and no states.
"""

from __future__ import annotations

import numbers

import brainstate
import brainunit as u
import jax.numpy as jnp
import numpy as np

from ..connectivity import DelayChoice, UniformDelay
from ..ops import delay_ring_step

_NO_BATCHING = "INIT_NO_BATCHING"  # brainstate's tag for states every batch element shares


def _dt():
    message = (
        "a delay in time units needs brainstate's dt: set it with brainstate.environ.set(dt=...) "
        "before building the layer, or give the delay in steps (an int)"
    )
    try:
        dt = brainstate.environ.get_dt()
    except KeyError as err:
        raise ValueError(message) from err
    if dt is None:
        raise ValueError(message)
    return dt


def to_steps(value, name: str) -> np.ndarray:
    """``value`` (int steps, integer-valued floats, or a brainunit time that
    is a whole multiple of ``dt``; any shape) as an int64 NumPy array of
    non-negative steps."""
    if isinstance(value, u.Quantity):
        dt = _dt()
        if not isinstance(dt, u.Quantity) or not dt.dim == u.second.dim:
            raise ValueError(f"{name} is a time, but brainstate's dt ({dt!r}) is not a time (such as 0.1 * u.ms)")
        if not value.dim == u.second.dim:
            raise ValueError(f"{name} must be a time (such as 1.0 * u.ms) or steps, got unit {value.unit}")
        steps = np.asarray(u.maybe_decimal(value / dt), np.float64)
        if not np.all(np.isfinite(steps)) or np.any(np.abs(steps - np.round(steps)) > 1e-6 * np.maximum(1, steps)):
            raise ValueError(f"{name} must be a whole multiple of dt = {dt}, got {value}")
        steps = np.round(steps).astype(np.int64)
    else:
        arr = np.asarray(value)
        if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"{name} must be in steps (ints) or a brainunit time, got {value!r}")
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise ValueError(f"{name} in steps must be whole numbers, got {value!r}")
        steps = arr.astype(np.int64)
    if np.any(steps < 0):
        raise ValueError(f"{name} must be non-negative, got {value!r}")
    return steps


class DelaySpec:
    """``delay=`` read into steps: ``scalar`` (one delay for every synapse),
    or per-synapse ``array`` / ``dist`` (drawn later, when the synapses
    exist); ``max_delay`` the buffer's largest delay when known now."""

    def __init__(self, delay, max_delay=None, *, per_synapse: bool = True):
        self.scalar = self.array = self.dist = None
        self.stated_max = None if max_delay is None else _scalar_steps(max_delay, "max_delay")
        if delay is None:
            self.scalar = 0
        elif isinstance(delay, UniformDelay | DelayChoice):
            if not per_synapse:
                raise TypeError(
                    "delay must be one delay for every connection here (an int or a time), not a distribution"
                )
            if isinstance(delay, UniformDelay):
                low, high = _scalar_steps(delay.low, "delay.low"), _scalar_steps(delay.high, "delay.high")
                if low > high:
                    raise ValueError(f"UniformDelay needs low <= high, got {low} and {high} steps")
                self.dist = UniformDelay(low, high)
            else:
                values = to_steps(delay.values, "delay.values")
                if values.ndim != 1:
                    raise ValueError(f"DelayChoice values must be 1-D, got shape {values.shape}")
                self.dist = DelayChoice(tuple(int(v) for v in values), tuple(np.asarray(delay.probs, np.float64)))
        else:
            steps = to_steps(delay, "delay")
            if steps.ndim == 0:
                self.scalar = int(steps)
            elif not per_synapse:
                raise ValueError(f"delay must be a scalar (one delay for every connection), got shape {steps.shape}")
            elif steps.ndim != 1:
                raise ValueError(f"delay must be a scalar or have shape (n_synapses,), got shape {steps.shape}")
            else:
                self.array = steps
        largest = self._largest_known()
        if self.stated_max is not None and largest is not None and largest > self.stated_max:
            raise ValueError(f"delay must be at most max_delay = {self.stated_max} steps, got {largest} steps")

    def _largest_known(self):
        if self.scalar is not None:
            return self.scalar
        if self.array is not None:
            return int(self.array.max(initial=0))
        if isinstance(self.dist, UniformDelay):
            return int(self.dist.high)
        return max(v for v, p in zip(self.dist.values, self.dist.probs, strict=True) if p > 0)

    @property
    def per_synapse(self) -> bool:
        return self.scalar is None

    @property
    def max_delay(self) -> int:
        """The buffer's largest delay: ``max_delay=`` if stated, else the largest delay."""
        return self.stated_max if self.stated_max is not None else self._largest_known()


def _scalar_steps(value, name: str) -> int:
    steps = to_steps(value, name)
    if steps.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {steps.shape}")
    return int(steps)


class DelayedOutput:
    """The ring-buffer states of a layer with delays (a mixin of the
    brainstate modules): ``init_state`` / ``reset_state`` and the step.

    A layer sets ``self.max_delay`` (0: no delay, no states) and ``self.n_post``.
    """

    max_delay = 0

    def init_state(self, batch_size=None, **kwargs):
        """Create the ring buffer ``delay_buffer`` ``(*batch, max_delay + 1,
        n_post)`` (zeros of the weight's dtype) and the step counter
        ``delay_step`` (0), brainstate states; nothing without delays.

        Args:
          batch_size: None (inputs ``(n_pre,)``), an int or a tuple: the
            leading shape of the inputs the layer will be called with.
        """
        if self.max_delay == 0:
            return
        self.delay_buffer = brainstate.ShortTermState(self._empty_buffer(batch_size))
        self.delay_step = brainstate.ShortTermState(jnp.zeros((), jnp.int32), tag=_NO_BATCHING)

    def reset_state(self, batch_size=None, **kwargs):
        """Empty the ring buffer (for ``batch_size``, as in :meth:`init_state`)
        and set the step to 0."""
        if self.max_delay == 0:
            return
        if vars(self).get("delay_buffer") is None:
            self.init_state(batch_size)
            return
        self.delay_buffer.value = self._empty_buffer(batch_size)
        self.delay_step.value = jnp.zeros((), jnp.int32)

    def _empty_buffer(self, batch_size):
        if batch_size is None:
            lead = ()
        elif isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool):
            lead = (int(batch_size),)
        else:
            lead = tuple(int(b) for b in batch_size)
        w = self.weight.value
        dtype = (w.mantissa if isinstance(w, u.Quantity) else jnp.asarray(w)).dtype
        return jnp.zeros((*lead, self.max_delay + 1, self.n_post), dtype)

    def _delay_states(self):
        buffer = vars(self).get("delay_buffer")
        if buffer is None:
            raise RuntimeError(
                f"{type(self).__name__} has delays (max_delay={self.max_delay}): create its ring buffer first with "
                "layer.init_state(batch_size) or brainstate.nn.init_all_states(model)"
            )
        return buffer, self.delay_step

    def _delayed(self, product, spikes, out_dtype, per_synapse_product=None):
        """Advance the buffer by one step: ``product(spikes)`` added
        ``self.delay_steps`` late, or ``per_synapse_product(buffer, step)``
        returning ``(out, new_buffer)``."""
        buffer, step = self._delay_states()
        buf = buffer.value
        if buf.dtype != out_dtype:
            buf = buf.astype(out_dtype)
        if per_synapse_product is None:
            out, new = delay_ring_step(buf, step.value, product(spikes), self.delay_steps)
        else:
            out, new = per_synapse_product(buf, step.value)
        buffer.value = new
        step.value = (step.value + 1) % (self.max_delay + 1)
        return out
