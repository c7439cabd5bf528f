"""``EventLinear``: event-driven dense connectivity as a brainstate module."""

from __future__ import annotations

import brainstate
import jax.numpy as jnp

from .. import _checks, _units
from ..ops import check_path, event_matmul, homogeneous_matmul
from ._delays import DelayedOutput, DelaySpec
from ._weights import init_param

__all__ = ["EventLinear"]


class EventLinear(DelayedOutput, brainstate.nn.Module):
    """Dense connectivity whose product is event-driven.

    ``layer(spikes)`` equals ``spikes @ layer.weight.value`` but reads only the
    weight rows of the inputs that are active, so its cost scales with the
    number of spikes.

    Args:
      in_size: number of presynaptic neurons ``n_pre`` (int, or a tuple whose
        last entry is it).
      out_size: number of postsynaptic neurons ``n_post``.
      weight: an array ``(n_pre, n_post)``; a scalar (every connection has
        this weight; stored as a trainable 0-d parameter and never expanded);
        or an initializer called with ``(n_pre, n_post)``. brainunit
        quantities give outputs in their unit.
      float_as_event: if True, every nonzero input counts as one spike and its
        magnitude is ignored (brainstate's default, with a straight-through
        spike gradient). The default False multiplies float and integer
        inputs by their weights, so the layer equals the dense product for
        any input -- the meaning the event-driven tutorial states.
      block_size: accepted for compatibility with brainstate, unused.
      name: module name.
      param_type: the state class holding the weight (default ``ParamState``).
      path: ``'auto'``, ``'event'``, ``'kernel'`` or ``'dense'`` (see :mod:`eventlib.ops`).
      delay: one synaptic delay for every connection: an int number of steps
        or a brainunit time (a whole multiple of brainstate's ``dt``). None
        or 0 (default): no delay and no state. Otherwise a spike at step
        ``t`` arrives at ``t + delay``: the layer keeps a ring buffer
        ``delay_buffer`` ``(*batch, delay + 1, n_post)`` and a step counter
        ``delay_step``, brainstate states created by ``init_state(batch_size)``
        (``brainstate.nn.init_all_states``) and emptied by ``reset_state``.

    Shapes:
      spikes: bool, integer or float array ``(..., n_pre)``, any number of
      leading batch dimensions (brainstate accepts 1-D and 2-D only);
      output ``(..., n_post)``.
    """

    def __init__(
        self,
        in_size,
        out_size,
        weight,
        float_as_event: bool = False,
        block_size=None,
        name: str | None = None,
        param_type=brainstate.ParamState,
        path: str = "auto",
        delay=None,
    ):
        super().__init__(name=name)
        spec = DelaySpec(delay, per_synapse=False)
        self.max_delay = self.delay_steps = spec.scalar
        self.n_pre = _checks.size(in_size, "in_size")
        self.n_post = _checks.size(out_size, "out_size")
        self.in_size = (self.n_pre,)
        self.out_size = (self.n_post,)
        self.float_as_event = bool(float_as_event)
        self.block_size = block_size
        self.path = check_path(path)
        value = init_param(weight, (self.n_pre, self.n_post), "weight", [(), (self.n_pre, self.n_post)])
        self.weight = param_type(value)

    def update(self, spikes):
        """Spikes ``(..., n_pre)`` (bool, integer or float) to ``(..., n_post)``
        (with a delay: what arrives at this step; the step advances)."""
        s, s_unit = _units.split(spikes)
        s = jnp.asarray(s)
        _checks.spike_dtype(s.dtype)
        _checks.spikes_shape(s.shape, self.n_pre)
        w, w_unit = _units.split(self.weight.value)
        w = jnp.asarray(w)

        def product(x):
            if jnp.ndim(w) == 0:
                return homogeneous_matmul(x, w, self.n_post, float_as_event=self.float_as_event)
            return event_matmul(x, w, float_as_event=self.float_as_event, path=self.path)

        if self.max_delay == 0:
            out = product(s)
        else:
            out = self._delayed(product, s, _checks.out_dtype(s.dtype, w.dtype))
        return _units.attach(out, s_unit, w_unit)

    def to_dense(self):
        """The ``(n_pre, n_post)`` weight matrix the layer represents."""
        w, unit = _units.split(self.weight.value)
        return _units.attach(jnp.broadcast_to(w, (self.n_pre, self.n_post)), unit)
