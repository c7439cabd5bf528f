"""The brainstate modules: :class:`EventLinear` (dense weight) and the sparse
connectivity layers :class:`EventFixedProb`, :class:`FixedNumConn` and
:class:`EventFixedNumConn`, and the two forms their connectivity state takes
(:mod:`eventlib.layers.storage`)."""

from .event_linear import EventLinear as EventLinear
from .fixed_conn import EventFixedNumConn as EventFixedNumConn
from .fixed_conn import EventFixedProb as EventFixedProb
from .fixed_conn import FixedNumConn as FixedNumConn
from .storage import ConnectivityState as ConnectivityState
from .storage import ProceduralConnectivity as ProceduralConnectivity
from .storage import StoredConnectivity as StoredConnectivity

__all__ = [
    "EventLinear",
    "EventFixedProb",
    "FixedNumConn",
    "EventFixedNumConn",
    "ConnectivityState",
    "StoredConnectivity",
    "ProceduralConnectivity",
]
