"""eventlib: event-driven operators for spiking neural networks in JAX.

The layers are brainstate modules; :mod:`eventlib.ops` holds the same
operators as pure functions on arrays, and :mod:`eventlib.connectivity`
builds sparse connectivity from a seed without dense arrays.
"""

__version__ = "0.1.0"

from . import connectivity as connectivity
from . import ops as ops
from ._event_linear import EventLinear as EventLinear
from ._fixed_conn import EventFixedNumConn as EventFixedNumConn
from ._fixed_conn import EventFixedProb as EventFixedProb
from ._fixed_conn import FixedNumConn as FixedNumConn
from .ops import set_default_path as set_default_path
from .ops import which_path as which_path

__all__ = [
    "EventLinear",
    "EventFixedProb",
    "FixedNumConn",
    "EventFixedNumConn",
    "connectivity",
    "ops",
    "set_default_path",
    "which_path",
]
