"""The sharded operators and network step against one device, on the four
host CPU devices that conftest.py asks for: identical values, memory per
device, and the collectives of the compiled programs."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import all_pairs

import eventlib
from eventlib import sharding
from eventlib.ops import csr_event_matmul, event_matmul

N_PRE, N_POST = 96, 64
COLLECTIVE = re.compile(
    r"=\s*(\w+)\[([\d,]*)\][^=]*?\b(all-gather|all-reduce|collective-permute|all-to-all|reduce-scatter)(?:-start)?\("
)


def collectives(fn, *args):
    """(op, dtype, shape) of every collective in the compiled ``fn(*args)``."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    return [(op, dtype, tuple(int(x) for x in dims.split(",") if x)) for dtype, dims, op in COLLECTIVE.findall(text)]


def weights(rng, shape, kind):
    if kind == "dyadic":  # exact sums in any order: checks the values alone
        return (rng.integers(-8, 9, shape) / 8).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)  # rounding depends on order


def spikes_of(rng, lead, n, rate):
    return rng.random((*lead, n)) < rate


def random_csr(rng, n_pre, n_post, k):
    """Rows of 0 to 2k targets, repeats allowed, some rows empty."""
    lengths = rng.integers(0, 2 * k + 1, n_pre)
    lengths[:3] = 0
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    indices = rng.integers(0, n_post, indptr[-1]).astype(np.int32)
    return indptr, indices


def mesh_of(d):
    """``post_mesh(d)``, or a skip where the backend has fewer devices (a
    single GPU runs the one-device cases only)."""
    if jax.device_count() < d:
        pytest.skip(f"needs {d} devices, the {jax.default_backend()} backend has {jax.device_count()}")
    return sharding.post_mesh(d)


def test_host_devices():
    if jax.default_backend() != "cpu":
        pytest.skip("the host-device count applies to the CPU backend")
    assert jax.device_count() == 4  # conftest.py's setting took effect


def test_public_names():
    for name in sharding.__all__:
        assert getattr(eventlib, name) is getattr(sharding, name)


# Every pair of levels of two factors appears in some case (helpers.all_pairs):
# each case compiles its own sharded programs, so the full products (72 and
# 36 cases) would cost minutes for interactions of three factors at once.
@pytest.mark.parametrize(
    *all_pairs(
        "d,lead,kind,rate,path",
        d=[1, 2, 4],
        lead=[(), (3,)],
        kind=["dyadic", "random"],
        rate=[0.05, 0.9],
        path=["auto", "event", "dense"],
    )
)
def test_dense_identical(rng, d, lead, kind, rate, path):
    w = weights(rng, (N_PRE, N_POST), kind)
    s = spikes_of(rng, lead, N_PRE, rate)
    mesh = mesh_of(d)
    ws = sharding.shard_dense(w, mesh)
    ref = np.asarray(event_matmul(s, w, path=path))
    out = sharding.sharded_event_matmul(s, ws, mesh, path=path)
    assert out.shape == (*lead, N_POST)
    assert out.sharding.spec == jax.sharding.PartitionSpec(*([None] * len(lead)), "post")
    gathered = sharding.sharded_event_matmul(s, ws, mesh, gather=True, path=path)
    assert gathered.sharding.is_fully_replicated
    for result in (out, gathered):
        if kind == "dyadic" or (path == "event" and (not lead or jax.default_backend() == "cpu")):
            np.testing.assert_array_equal(np.asarray(result), ref)
        else:
            # XLA's dense dot ('dense', 'auto' with most inputs active, and
            # the event path's 64-row chunks for a batch) may block the sum
            # differently for fewer columns (seen with jax 0.10.2 on CPU,
            # and for the batched event path on two H200s): equal within
            # the rounding of a float32 sum.
            bound = 2 * N_PRE * np.finfo(np.float32).eps * (s.astype(np.float32) @ np.abs(w))
            assert np.all(np.abs(np.asarray(result) - ref) <= bound)


def test_dense_float_spikes(rng):
    w = weights(rng, (N_PRE, N_POST), "random")
    s = np.where(rng.random(N_PRE) < 0.3, rng.standard_normal(N_PRE), 0).astype(np.float32)
    mesh = mesh_of(4)
    ws = sharding.shard_dense(w, mesh)
    for fae in (False, True):
        out = sharding.sharded_event_matmul(s, ws, mesh, float_as_event=fae)
        np.testing.assert_array_equal(np.asarray(out), np.asarray(event_matmul(s, w, float_as_event=fae)))


def test_random_weights_expose_order(rng):
    # The "random" cases could tell a different summation order: summing
    # the same rows backwards changes some outputs' last bits.
    w = weights(rng, (N_PRE, N_POST), "random")
    s = spikes_of(rng, (), N_PRE, 0.9)
    ref = np.asarray(event_matmul(s, w, path="event"))
    backwards = np.zeros(N_POST, np.float32)
    for i in np.flatnonzero(s)[::-1]:
        backwards = backwards + w[i]
    assert not np.array_equal(backwards, ref)


@pytest.mark.parametrize(
    *all_pairs(
        "d,lead,kind,path", d=[1, 2, 4], lead=[(), (3,)], kind=["dyadic", "random", "scalar"], path=["auto", "dense"]
    )
)
def test_csr_identical(rng, d, lead, kind, path):
    indptr, indices = random_csr(rng, N_PRE, N_POST, 6)
    w = np.float32(0.375) if kind == "scalar" else weights(rng, indices.shape, kind)
    s = spikes_of(rng, lead, N_PRE, 0.4)
    mesh = mesh_of(d)
    csr = sharding.shard_csr(w, indptr, indices, N_POST, mesh)
    ref = np.asarray(csr_event_matmul(s, w, indptr, indices, N_POST, path=path))
    out = sharding.sharded_csr_event_matmul(s, csr, mesh, path=path)
    assert out.shape == (*lead, N_POST)
    gathered = sharding.sharded_csr_event_matmul(s, csr, mesh, gather=True, path=path)
    # Under jit, with the blocks as arguments.
    jitted = jax.jit(lambda s, c: sharding.sharded_csr_event_matmul(s, c, mesh, path=path))
    for result in (out, gathered, jitted(s, csr)):
        if jax.default_backend() == "cpu" or kind != "random":
            np.testing.assert_array_equal(np.asarray(result), ref)
        else:
            # A GPU adds with float atomics, in an order that changes from
            # run to run: equal within the rounding of a float32 sum.
            np.testing.assert_allclose(np.asarray(result), ref, rtol=1e-5, atol=1e-5)


def test_csr_blocks(rng):
    indptr, indices = random_csr(rng, N_PRE, N_POST, 6)
    w = weights(rng, indices.shape, "random")
    d, n_local = 4, N_POST // 4
    csr = sharding.shard_csr(w, indptr, indices, N_POST, mesh_of(d))
    ptr, idx, wl = np.asarray(csr.indptr), np.asarray(csr.indices), np.asarray(csr.weight)
    pre = np.repeat(np.arange(N_PRE), np.diff(indptr))
    for k in range(d):
        owned = indices // n_local == k
        n = int(owned.sum())
        assert ptr[k, -1] == n
        # The block is the owned synapses, in storage order, re-based.
        np.testing.assert_array_equal(idx[k, :n], indices[owned] - k * n_local)
        np.testing.assert_array_equal(wl[k, :n], w[owned])
        np.testing.assert_array_equal(np.diff(ptr[k]), np.bincount(pre[owned], minlength=N_PRE))
        assert np.all(wl[k, n:] == 0) and np.all(idx[k, n:] == n_local)
    assert csr.max_row == max(int(np.diff(ptr[k]).max()) for k in range(d))


@pytest.mark.parametrize("d", [2, 4])
def test_memory_per_device(rng, d):
    mesh = mesh_of(d)
    w = weights(rng, (N_PRE, N_POST), "random")
    ws = sharding.shard_dense(w, mesh)
    assert [s.data.shape for s in ws.addressable_shards] == [(N_PRE, N_POST // d)] * d
    assert len({s.device for s in ws.addressable_shards}) == d

    n_pre, n_post, k = 400, 400, 50  # uniform targets: padding is small
    indices = rng.integers(0, n_post, n_pre * k).astype(np.int32)
    indptr = np.arange(0, n_pre * k + 1, k).astype(np.int32)
    csr = sharding.shard_csr(weights(rng, indices.shape, "random"), indptr, indices, n_post, mesh)
    owned = np.bincount(indices // (n_post // d), minlength=d)
    for arr in (csr.indices, csr.weight):
        shapes = [s.data.shape for s in arr.addressable_shards]
        assert shapes == [(1, owned.max())] * d
    assert owned.max() <= 1.05 * indices.size / d
    assert [s.data.shape for s in csr.indptr.addressable_shards] == [(1, n_pre + 1)] * d


@pytest.mark.parametrize("gather", [False, True])
@pytest.mark.parametrize("lead", [(), (3,)])
def test_product_communication(rng, gather, lead):
    mesh = mesh_of(4)
    s = jnp.asarray(spikes_of(rng, lead, N_PRE, 0.2))
    ws = sharding.shard_dense(weights(rng, (N_PRE, N_POST), "random"), mesh)
    indptr, indices = random_csr(rng, N_PRE, N_POST, 6)
    csr = sharding.shard_csr(weights(rng, indices.shape, "random"), indptr, indices, N_POST, mesh)
    expected = [("all-gather", "f32", (*lead, N_POST))] if gather else []
    dense = collectives(lambda s, w: sharding.sharded_event_matmul(s, w, mesh, gather=gather), s, ws)
    assert dense == expected
    stored = collectives(lambda s, c: sharding.sharded_csr_event_matmul(s, c, mesh, gather=gather), s, csr)
    assert stored == expected


LIF = dict(decay=0.9, v_th=1.0, v_reset=0.0)


def run_network(step, v, spikes, drive, conn, n_steps):
    """Spikes of every step, ``(n_steps, n)``, from a jitted scan."""

    @jax.jit
    def run(v, spikes, drive, conn):
        def body(carry, _):
            v, spikes = step(*carry, drive, conn)
            return (v, spikes), spikes

        return jax.lax.scan(body, (v, spikes), None, length=n_steps)

    (v, _), raster = run(v, spikes, drive, conn)
    return np.asarray(v), np.asarray(raster)


@pytest.mark.parametrize("d", [1, 2, 4])
@pytest.mark.parametrize("form", ["dense", "csr"])
def test_network_identical(rng, d, form):
    n, n_steps = N_POST, 300
    v0 = rng.random(n).astype(np.float32)
    drive = (0.08 + 0.06 * rng.random(n)).astype(np.float32)
    spikes0 = np.zeros(n, bool)
    mesh = mesh_of(d)
    max_row = None
    if form == "dense":
        w = (0.3 * rng.standard_normal((n, n)) - 0.02).astype(np.float32)
        conn, sconn = jnp.asarray(w), sharding.shard_dense(w, mesh)
    else:
        indptr, indices = random_csr(rng, n, n, 8)
        w = (0.3 * rng.standard_normal(indices.shape) - 0.02).astype(np.float32)
        conn = (jnp.asarray(w), jnp.asarray(indptr), jnp.asarray(indices))
        sconn = sharding.shard_csr(w, indptr, indices, n, mesh)
        max_row = int(np.diff(indptr).max())

    def one(v, s, drive, conn):
        return sharding.network_step(v, s, drive, conn, max_row=max_row, path="event", **LIF)

    def split(v, s, drive, conn):
        return sharding.sharded_network_step(v, s, drive, conn, mesh, path="event", **LIF)

    v_ref, raster_ref = run_network(one, v0, spikes0, drive, conn, n_steps)
    split_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("post"))
    v_s, d_s = jax.device_put(v0, split_sharding), jax.device_put(drive, split_sharding)
    v_out, raster = run_network(split, v_s, spikes0, d_s, sconn, n_steps)
    assert 0.01 < raster_ref.mean() < 0.5  # the network is active, not saturated
    np.testing.assert_array_equal(raster, raster_ref)
    np.testing.assert_array_equal(v_out, v_ref)


@pytest.mark.parametrize("form", ["dense", "csr"])
def test_network_step_communication(rng, form):
    n = N_POST
    mesh = mesh_of(4)
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("post"))
    v = jax.device_put(jnp.zeros(n), split)
    drive = jax.device_put(jnp.full(n, 0.1), split)
    if form == "dense":
        conn = sharding.shard_dense(weights(rng, (n, n), "random"), mesh)
    else:
        indptr, indices = random_csr(rng, n, n, 8)
        conn = sharding.shard_csr(weights(rng, indices.shape, "random"), indptr, indices, n, mesh)

    def step(v, s, drive, conn):
        return sharding.sharded_network_step(v, s, drive, conn, mesh, **LIF)

    # One all-gather of n bools per step, nothing else.
    assert collectives(step, v, jnp.zeros(n, bool), drive, conn) == [("all-gather", "pred", (n,))]


def test_errors(rng):
    mesh = mesh_of(4)
    with pytest.raises(ValueError, match="divisible"):
        sharding.shard_dense(np.zeros((4, 6), np.float32), mesh)
    with pytest.raises(ValueError, match="n_devices"):
        sharding.post_mesh(jax.device_count() + 1)
    with pytest.raises(ValueError, match="1-D"):
        mesh2 = jax.sharding.Mesh(np.array(jax.devices()).reshape(2, 2), ("a", "b"))
        sharding.shard_dense(np.zeros((4, 8), np.float32), mesh2)
    indptr = np.array([0, 2], np.int32)
    with pytest.raises(ValueError, match="indices"):
        sharding.shard_csr(np.float32(1), indptr, np.array([0, 8], np.int32), 8, mesh)
    with pytest.raises(ValueError, match="weight"):
        sharding.shard_csr(np.ones(3, np.float32), indptr, np.array([0, 1], np.int32), 8, mesh)
    with pytest.raises(TypeError, match="floating"):
        sharding.shard_csr(np.ones(2, np.int32), indptr, np.array([0, 1], np.int32), 8, mesh)
    csr = sharding.shard_csr(np.float32(1), indptr, np.array([0, 5], np.int32), 8, mesh_of(2))
    with pytest.raises(ValueError, match="blocks"):
        sharding.sharded_csr_event_matmul(np.ones(1, bool), csr, mesh)


@pytest.mark.parametrize("lead", [(), (3,)])
def test_kernel_path(rng, lead):
    # The Pallas kernels inside shard_map (run by the interpreter on CPU,
    # where the CSR kernel's atomics are sequential, hence exact here).
    mesh = mesh_of(4)
    w = weights(rng, (N_PRE, N_POST), "random")
    s = spikes_of(rng, lead, N_PRE, 0.3)
    out = np.asarray(sharding.sharded_event_matmul(s, sharding.shard_dense(w, mesh), mesh, path="kernel"))
    ref = np.asarray(event_matmul(s, w, path="kernel"))
    if lead:
        # The batch kernel multiplies tiles whose width follows the column
        # count: equal within the rounding of a float32 sum (jax 0.10.2
        # differed in the last bits).
        bound = 2 * N_PRE * np.finfo(np.float32).eps * (s.astype(np.float32) @ np.abs(w))
        assert np.all(np.abs(out - ref) <= bound)
    else:
        np.testing.assert_array_equal(out, ref)
    indptr, indices = random_csr(rng, N_PRE, N_POST, 6)
    wc = weights(rng, indices.shape, "random")
    csr = sharding.shard_csr(wc, indptr, indices, N_POST, mesh)
    out = sharding.sharded_csr_event_matmul(s, csr, mesh, path="kernel")
    ref = csr_event_matmul(s, wc, indptr, indices, N_POST, path="kernel")
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
