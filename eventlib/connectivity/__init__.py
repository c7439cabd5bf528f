"""Connectivity as a pure function of (seed, sizes, parameters).

- :mod:`eventlib.connectivity.stored`: NumPy builders of the stored form, CSR
  by presynaptic row (:class:`Connectivity`).
- :mod:`eventlib.connectivity.procedural`: the same rows regenerated in JAX
  (:class:`~eventlib.connectivity.procedural.Rule`), for products that store
  nothing.
- :mod:`eventlib.connectivity.delays`: synaptic delays drawn per synapse
  from the same hash.
- :mod:`eventlib.connectivity.hashing`: the counter-based hash both use,
  written once for NumPy and JAX.
"""

from . import delays as delays
from . import stored as stored
from .delays import DelayChoice as DelayChoice
from .delays import UniformDelay as UniformDelay
from .delays import draw_delays as draw_delays
from .hashing import hash_bits as hash_bits
from .stored import MAX_SYNAPSES as MAX_SYNAPSES
from .stored import Connectivity as Connectivity
from .stored import check_capacity as check_capacity
from .stored import count_scheme as count_scheme
from .stored import first_distinct_width as first_distinct_width
from .stored import fixed_num_per_post as fixed_num_per_post
from .stored import fixed_num_per_pre as fixed_num_per_pre
from .stored import fixed_num_per_pre_window as fixed_num_per_pre_window
from .stored import fixed_prob as fixed_prob
from .stored import from_indices as from_indices
from .stored import geometric_table as geometric_table
from .stored import keep_afferent_rows as keep_afferent_rows
from .stored import prob_window as prob_window
from .stored import warn_if_empty as warn_if_empty

# The package's public API is the stored builders' (the re-exports above keep
# the names other modules and the book use).
__all__ = [*stored.__all__, "UniformDelay", "DelayChoice", "draw_delays"]
