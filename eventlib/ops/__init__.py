"""Pure functions on arrays: the event-driven operators, their dense
references, and the choice of computation path (:mod:`eventlib.ops.paths`).
No brainstate needed.

The operators accept spikes of shape ``(..., n_pre)`` and work under
``jax.jit``, ``jax.vmap`` (nested), ``jax.grad`` and ``jax.jvp``.

One module per operator family, each laid out as: dense reference, portable
event-driven path, Pallas kernel, the primitive that picks the path, AD
rules, batching, public operator -- ``dense_event`` (a dense weight),
``sparse_event`` (stored connectivity), ``procedural_event`` (procedural
connectivity, kernel in ``_procedural_kernel``), ``delayed_event`` (stored
connectivity with synaptic delays: a ring buffer of pending inputs). Shared: ``paths`` (which
computation runs), ``_primitive`` (primitives, batching rules, size limits),
``_compact`` (finding the active inputs, launching a kernel).
"""

from .delayed_event import csr_event_matmul_delayed as csr_event_matmul_delayed
from .delayed_event import delay_ring_step as delay_ring_step
from .delayed_event import delayed_matmul_reference as delayed_matmul_reference
from .dense_event import event_matmul as event_matmul
from .dense_event import event_matmul_reference as event_matmul_reference
from .dense_event import homogeneous_matmul as homogeneous_matmul
from .dense_event import spike_values as spike_values
from .paths import PATHS as PATHS
from .paths import check_path as check_path
from .paths import get_default_path as get_default_path
from .paths import set_default_path as set_default_path
from .paths import which_path as which_path
from .procedural_event import Rule as Rule
from .procedural_event import make_rule as make_rule
from .procedural_event import procedural_event_matmul as procedural_event_matmul
from .procedural_event import procedural_matmul_reference as procedural_matmul_reference
from .procedural_event import procedural_to_dense as procedural_to_dense
from .sparse_event import coo_matmul as coo_matmul
from .sparse_event import csr_event_matmul as csr_event_matmul
from .sparse_event import csr_pre_indices as csr_pre_indices
from .sparse_event import csr_to_dense as csr_to_dense
from .sparse_event import sparse_matmul_reference as sparse_matmul_reference
