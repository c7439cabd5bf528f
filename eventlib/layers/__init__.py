"""The brainstate modules: :class:`EventLinear` (dense weight) and the sparse
connectivity layers :class:`EventFixedProb`, :class:`FixedNumConn` and
:class:`EventFixedNumConn`."""

from .event_linear import EventLinear as EventLinear
from .fixed_conn import EventFixedNumConn as EventFixedNumConn
from .fixed_conn import EventFixedProb as EventFixedProb
from .fixed_conn import FixedNumConn as FixedNumConn

__all__ = ["EventLinear", "EventFixedProb", "FixedNumConn", "EventFixedNumConn"]
