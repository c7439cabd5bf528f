"""eventlib: event-driven operators for spiking neural networks in JAX.

The layers are brainstate modules; :mod:`eventlib.ops` holds the same
operators as pure functions on arrays, and :mod:`eventlib.connectivity`
builds sparse connectivity from a seed without dense arrays.
:mod:`eventlib.sharding` splits the products and a network step over
several devices by postsynaptic neuron.
"""

__version__ = "0.1.0"

from . import connectivity as connectivity
from . import ops as ops
from . import sharding as sharding
from .layers import EventFixedNumConn as EventFixedNumConn
from .layers import EventFixedProb as EventFixedProb
from .layers import EventLinear as EventLinear
from .layers import FixedNumConn as FixedNumConn
from .ops import set_default_path as set_default_path
from .ops import which_path as which_path
from .sharding import ShardedCSR as ShardedCSR
from .sharding import lif_update as lif_update
from .sharding import network_step as network_step
from .sharding import post_mesh as post_mesh
from .sharding import shard_csr as shard_csr
from .sharding import shard_dense as shard_dense
from .sharding import sharded_csr_event_matmul as sharded_csr_event_matmul
from .sharding import sharded_event_matmul as sharded_event_matmul
from .sharding import sharded_network_step as sharded_network_step

__all__ = [
    "EventLinear",
    "EventFixedProb",
    "FixedNumConn",
    "EventFixedNumConn",
    "connectivity",
    "ops",
    "set_default_path",
    "which_path",
    *sharding.__all__,
]
