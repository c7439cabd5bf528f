"""Event-driven products and a network step split over several devices.

The postsynaptic neurons are divided over the devices of a 1-D mesh: device
``k`` of ``d`` owns the ``n_post / d`` outputs ``[k * n_local, (k + 1) *
n_local)``. The spikes are replicated, so every device computes its own
outputs with no communication; a network step then all-gathers the new
spikes, the only data that crosses devices.

- :func:`~eventlib.post_mesh`: a 1-D mesh over the first ``d`` devices.
- :func:`~eventlib.shard_dense`: a dense weight ``(n_pre, n_post)`` split by column.
- :func:`~eventlib.shard_csr`: CSR connectivity split into one block per device,
  holding the synapses whose target the device owns (targets re-based to
  local indices), padded to a common size and stacked on a leading axis.
- :func:`~eventlib.sharded_event_matmul`, :func:`~eventlib.sharded_csr_event_matmul`: the
  products, output split over devices or all-gathered (``gather=True``).
- :func:`~eventlib.lif_update`, :func:`~eventlib.network_step`, :func:`~eventlib.sharded_network_step`:
  one step of a recurrent LIF-like network, on one device and split.

Equality with one device: every output element is summed over the active
rows in row order, on any number of devices (the local blocks keep each
row's synapses in storage order, and a column slice of a dense weight keeps
its rows). On the portable event path the results are therefore identical,
bit for bit, to :func:`~eventlib.ops.event_matmul` and
:func:`~eventlib.ops.csr_event_matmul`; so is the CSR dense-equivalent path
(a scatter in storage order). Two cases rest on XLA's dense dot, whose
internal order may change with the number of columns: a dense weight on the
``'dense'`` path (and ``'auto'`` once most inputs are active), equal within
float32 rounding (jax 0.10.2 on CPU differed in the last bits for a batch
on 16 local columns), and the event path for a batch, which sums 64-row
chunks with a dot (identical in the tests on CPU with jax 0.10.2 and 0.12;
within float32 rounding on two H200s with jax 0.11.2). The GPU
kernels: a vector on a dense weight sums rows in order within each column
block (identical under the interpreter); a batch multiplies tiles sized by
the column count (within float32 rounding); the CSR kernel adds with float
atomics on a GPU (run-to-run last-bit differences, as on one device).

Scaling model, for ``d`` devices and ``n_post`` divisible by ``d``:

- memory per device: dense, ``n_pre * n_post / d`` weights; CSR,
  ``n_pad = max_k(synapses whose target device k owns)`` (index, weight)
  pairs plus an ``n_pre + 1`` row-offset array. For targets drawn uniformly
  ``n_pad`` is close to ``n_synapses / d``; clustered targets pad more.
- time per step: ``max_k(local event work) + all-gather``, where the local
  work is the active rows times ``n_post / d`` columns (dense) or the active
  rows' synapses into device ``k`` (CSR), and the all-gather moves
  ``n_post`` spikes (one byte each as bool) in ``latency + n_post * bytes /
  link bandwidth``. The product alone communicates nothing.

The devices in the tests are CPU host devices sharing the same cores: they
check the results, the memory and the communication, not the speed. Timing
on several GPUs is separate work.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import _checks
from .ops import csr_event_matmul, event_matmul

__all__ = [
    "ShardedCSR",
    "post_mesh",
    "shard_dense",
    "shard_csr",
    "sharded_event_matmul",
    "sharded_csr_event_matmul",
    "lif_update",
    "network_step",
    "sharded_network_step",
]


def _shard_map(fn, mesh, in_specs, out_specs):
    # jax >= 0.7 has jax.shard_map (check_vma); older releases only the
    # experimental one (check_rep). The checks are off: eventlib's primitives
    # carry no replication rules, and the specs below are exact by design.
    if hasattr(jax, "shard_map"):
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map

    return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


def post_mesh(n_devices: int | None = None, axis: str = "post") -> Mesh:
    """A 1-D mesh named ``axis`` over the first ``n_devices`` devices of the
    default backend (all of them when ``None``)."""
    devices = jax.devices()
    n_devices = len(devices) if n_devices is None else int(n_devices)
    if not 1 <= n_devices <= len(devices):
        raise ValueError(f"n_devices must be between 1 and {len(devices)}, got {n_devices}")
    return Mesh(np.array(devices[:n_devices]), (axis,))


def _axis(mesh: Mesh) -> str:
    if len(mesh.axis_names) != 1:
        raise ValueError(f"the mesh must be 1-D, got axes {mesh.axis_names}")
    return mesh.axis_names[0]


def _local_size(n_post: int, mesh: Mesh) -> int:
    d = mesh.devices.size
    if n_post % d != 0:
        raise ValueError(f"n_post = {n_post} must be divisible by the number of devices, {d}")
    return n_post // d


def shard_dense(weight, mesh: Mesh):
    """The float weight ``(n_pre, n_post)`` placed with columns split over
    ``mesh``: each device holds ``(n_pre, n_post / d)``."""
    weight = jnp.asarray(weight)
    _checks.weight_dtype(weight.dtype, "weight")
    if weight.ndim != 2:
        raise ValueError(f"weight must have shape (n_pre, n_post), got {weight.shape}")
    _local_size(weight.shape[1], mesh)
    return jax.device_put(weight, NamedSharding(mesh, P(None, _axis(mesh))))


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class ShardedCSR:
    """CSR connectivity split by target over the devices of a mesh.

    Attributes:
      weight: float array ``(d, n_pad)`` of per-synapse weights, or a float
        scalar shared by every synapse (then replicated).
      indptr: int32 ``(d, n_pre + 1)``: row offsets of each device's block.
      indices: int32 ``(d, n_pad)``: local targets in ``[0, n_post / d)``;
        the slots past ``indptr[k, -1]`` are padding: they belong to no row
        and target ``n_post / d`` (out of range).
      n_post: number of postsynaptic neurons, all devices together (static).
      max_row: the longest row of any block (static).
    """

    weight: jax.Array
    indptr: jax.Array
    indices: jax.Array
    n_post: int
    max_row: int

    def tree_flatten(self):
        return (self.weight, self.indptr, self.indices), (self.n_post, self.max_row)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)


def shard_csr(weight, indptr, indices, n_post: int, mesh: Mesh) -> ShardedCSR:
    """Splits CSR connectivity (as taken by :func:`~eventlib.ops.csr_event_matmul`)
    into per-device blocks on ``mesh``. Runs on the host, in NumPy.

    Args:
      weight: float scalar or array ``(n_synapses,)`` in storage order.
      indptr: int ``(n_pre + 1,)`` row offsets.
      indices: int ``(n_synapses,)`` postsynaptic targets in ``[0, n_post)``.
      n_post: number of postsynaptic neurons, divisible by the mesh size.
      mesh: a 1-D mesh (:func:`post_mesh`).
    """
    d, axis = mesh.devices.size, _axis(mesh)
    n_local = _local_size(int(n_post), mesh)
    weight = np.asarray(weight)
    _checks.weight_dtype(weight.dtype, "weight")
    indptr, indices = np.asarray(indptr, np.int64), np.asarray(indices, np.int64)
    n_pre = indptr.shape[0] - 1
    if weight.ndim != 0 and weight.shape != indices.shape:
        raise ValueError(f"weight must be a scalar or have shape {indices.shape}, got {weight.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= n_post):
        raise ValueError(f"indices must lie in [0, n_post = {n_post})")
    pre = np.repeat(np.arange(n_pre), np.diff(indptr))
    owner = indices // n_local
    blocks = []
    for k in range(d):
        # A stable selection: each row keeps its synapses in storage order,
        # which keeps every output's summation order that of one device.
        sel = np.flatnonzero(owner == k)
        counts = np.bincount(pre[sel], minlength=n_pre)
        blocks.append((sel, np.concatenate([[0], np.cumsum(counts)])))
    max_row = max(int(np.max(np.diff(ptr), initial=0)) for _, ptr in blocks)
    # The event path reads each row through a window of max_row slots, so a
    # block needs at least max_row slots (and one, to keep shapes non-empty).
    n_pad = max([max_row, 1] + [sel.size for sel, _ in blocks])
    # Padding targets n_local, out of range: the dense-equivalent path runs
    # over every slot and its scatter drops them (with a scalar weight a
    # padding slot would otherwise add to a real output).
    local_indices = np.full((d, n_pad), n_local, np.int32)
    local_ptr = np.zeros((d, n_pre + 1), np.int32)
    local_weight = np.zeros((d, n_pad), weight.dtype)
    for k, (sel, ptr) in enumerate(blocks):
        local_indices[k, : sel.size] = indices[sel] - k * n_local
        local_ptr[k] = ptr
        if weight.ndim:
            local_weight[k, : sel.size] = weight[sel]
    split = NamedSharding(mesh, P(axis))
    if weight.ndim:
        w = jax.device_put(local_weight, split)
    else:
        w = jax.device_put(jnp.asarray(weight), NamedSharding(mesh, P()))
    return ShardedCSR(w, jax.device_put(local_ptr, split), jax.device_put(local_indices, split), int(n_post), max_row)


def _out_spec(ndim: int, axis: str, gather: bool):
    return P() if gather else P(*([None] * (ndim - 1)), axis)


def _gather(out, axis: str):
    # The local blocks are contiguous column ranges in device order, so a
    # tiled gather along the last axis rebuilds the whole output.
    return lax.all_gather(out, axis, axis=out.ndim - 1, tiled=True)


def _local_csr_product(spikes, csr: ShardedCSR, n_local: int, float_as_event: bool, path: str):
    # Inside shard_map the stacked blocks arrive as (1, ...): this device's.
    weight = csr.weight if csr.weight.ndim == 0 else csr.weight[0]
    return csr_event_matmul(
        spikes,
        weight,
        csr.indptr[0],
        csr.indices[0],
        n_local,
        max_row=csr.max_row,
        float_as_event=float_as_event,
        path=path,
    )


def _weight_spec(conn, mesh: Mesh):
    axis = _axis(mesh)
    if isinstance(conn, ShardedCSR):
        # Blocks built for another mesh size would be split unevenly, and
        # each device would silently use the wrong block.
        if conn.indptr.shape[0] != mesh.devices.size:
            raise ValueError(
                f"the connectivity has {conn.indptr.shape[0]} blocks, the mesh {mesh.devices.size} devices: "
                "build it with shard_csr on the same mesh"
            )
        w = P() if conn.weight.ndim == 0 else P(axis)
        return ShardedCSR(w, P(axis), P(axis), conn.n_post, conn.max_row)
    return P(None, axis)


def _local_product(spikes, conn, mesh: Mesh, float_as_event: bool, path: str):
    if isinstance(conn, ShardedCSR):
        return _local_csr_product(spikes, conn, _local_size(conn.n_post, mesh), float_as_event, path)
    return event_matmul(spikes, conn, float_as_event=float_as_event, path=path)


def _sharded_product(spikes, conn, mesh, gather, float_as_event, path):
    axis = _axis(mesh)
    spikes = jnp.asarray(spikes)

    def local(spikes, conn):
        out = _local_product(spikes, conn, mesh, float_as_event, path)
        return _gather(out, axis) if gather else out

    fn = _shard_map(local, mesh, (P(), _weight_spec(conn, mesh)), _out_spec(spikes.ndim, axis, gather))
    return fn(spikes, conn)


def sharded_event_matmul(
    spikes, weight, mesh: Mesh, *, gather: bool = False, float_as_event: bool = False, path: str = "auto"
):
    """:func:`~eventlib.ops.event_matmul` with the outputs split over ``mesh``.

    Args:
      spikes: bool, integer or float array ``(..., n_pre)``, replicated.
      weight: float ``(n_pre, n_post)``, columns split over the mesh
        (:func:`shard_dense`; other placements are resharded).
      mesh: a 1-D mesh whose size divides ``n_post``.
      gather: all-gather the output to every device (one collective of the
        whole output); otherwise it stays split over ``n_post``.
      float_as_event, path: as for :func:`~eventlib.ops.event_matmul`.

    Returns:
      ``(..., n_post)``, bitwise equal to ``event_matmul(spikes, weight)``.
    """
    _local_size(jnp.shape(weight)[-1], mesh)
    return _sharded_product(spikes, weight, mesh, gather, float_as_event, path)


def sharded_csr_event_matmul(
    spikes, csr: ShardedCSR, mesh: Mesh, *, gather: bool = False, float_as_event: bool = False, path: str = "auto"
):
    """:func:`~eventlib.ops.csr_event_matmul` on connectivity split by
    :func:`shard_csr`.

    Args:
      spikes: bool, integer or float array ``(..., n_pre)``, replicated.
      csr: the per-device blocks, built on the same ``mesh``.
      gather, float_as_event, path: as for :func:`sharded_event_matmul`.

    Returns:
      ``(..., n_post)``, bitwise equal to the one-device product on the
      event and dense-equivalent paths (the GPU kernel adds with atomics).
    """
    return _sharded_product(spikes, csr, mesh, gather, float_as_event, path)


def lif_update(v, current, *, decay: float, v_th: float, v_reset: float):
    """One step of leaky integrate-and-fire neurons (dimensionless units).

    ``v <- decay * v + current``; the neurons at or above ``v_th`` spike and
    are set to ``v_reset``. ``v`` and ``current``: float ``(..., n)``.
    Returns the new ``v`` and the bool spikes, both ``(..., n)``.
    """
    v = decay * v + current
    spikes = v >= v_th
    return jnp.where(spikes, jnp.asarray(v_reset, v.dtype), v), spikes


def network_step(
    v, spikes, drive, conn, *, decay: float, v_th: float, v_reset: float, max_row: int | None = None, path: str = "auto"
):
    """One step of a recurrent network on one device.

    Args:
      v: float ``(n,)`` membrane potentials.
      spikes: bool ``(n,)`` spikes of the previous step.
      drive: float ``(n,)`` external input, added every step.
      conn: float ``(n, n)`` dense weight, or a tuple ``(weight, indptr,
        indices)`` of CSR connectivity as for
        :func:`~eventlib.ops.csr_event_matmul`.
      decay, v_th, v_reset: as for :func:`lif_update`.
      max_row: the longest CSR row; needed when ``indptr`` is traced.
      path: the computation path of the product (see :mod:`eventlib.ops`).

    Returns:
      The new ``v`` and bool ``spikes``, both ``(n,)``.
    """
    if isinstance(conn, tuple):
        weight, indptr, indices = conn
        syn = csr_event_matmul(spikes, weight, indptr, indices, v.shape[-1], max_row=max_row, path=path)
    else:
        syn = event_matmul(spikes, conn, path=path)
    return lif_update(v, syn + drive, decay=decay, v_th=v_th, v_reset=v_reset)


def sharded_network_step(
    v, spikes, drive, conn, mesh: Mesh, *, decay: float, v_th: float, v_reset: float, path: str = "auto"
):
    """:func:`network_step` with the neurons split over ``mesh``.

    Args:
      v, drive: float ``(n,)``, split over the mesh.
      spikes: bool ``(n,)``, replicated.
      conn: a dense weight from :func:`shard_dense` or a :class:`ShardedCSR`.
      mesh: the mesh of :func:`post_mesh`.
      decay, v_th, v_reset: as for :func:`lif_update`.
      path: the computation path of the product (see :mod:`eventlib.ops`).

    Returns:
      The new ``v`` (split) and bool ``spikes`` (replicated), bitwise equal to
      :func:`network_step`. The new spikes are the one collective: an
      all-gather of ``n`` bools.
    """
    axis = _axis(mesh)

    def local(v, spikes, drive, conn):
        syn = _local_product(spikes, conn, mesh, False, path)
        v, new = lif_update(v, syn + drive, decay=decay, v_th=v_th, v_reset=v_reset)
        return v, _gather(new, axis)

    specs = (P(axis), P(), P(axis), _weight_spec(conn, mesh))
    return _shard_map(local, mesh, specs, (P(axis), P()))(v, spikes, drive, conn)
