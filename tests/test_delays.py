"""Delayed event-driven products: ``csr_event_matmul_delayed``,
``delay_ring_step`` and the layers' ``delay=``.

Every case runs many steps from an empty buffer and compares each step's
output with ``out[t] = sum_d spikes[t - d] @ W_d`` built from one dense
matrix per delay (float64, NumPy): bit-exact with dyadic weights, for bool,
int and float spikes, batches, the paths 'event' (the default on CPU),
'kernel' (the interpreter twins) and 'dense', under jit, vmap and scan;
gradients through time against the same transform of the dense form.
Shapes are shared across cases to keep the compilations few.
"""

import brainstate
import braintools
import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, assert_exact, dyadic, make_spikes

import eventlib
from eventlib.connectivity import DelayChoice, UniformDelay, draw_delays
from eventlib.ops import csr_event_matmul_delayed, delay_ring_step, delayed_matmul_reference

N_PRE, N_POST, N_STEPS, MAX_DELAY = 9, 7, 10, 3


def _csr(rng):
    """Uneven rows (an empty one, a long one), repeated pairs."""
    lengths = rng.integers(0, 5, N_PRE)
    lengths[2], lengths[5] = 0, 8
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    indices = rng.integers(0, N_POST, indptr[-1]).astype(np.int32)
    delays = rng.integers(0, MAX_DELAY + 1, indptr[-1]).astype(np.int32)
    return indptr, indices, delays


def _run(spikes, weight, indptr, indices, delays, path, float_as_event=False):
    """Every step's output, by lax.scan under jit."""
    lead = spikes.shape[1:-1]

    def step(carry, x):
        buffer, t = carry
        out, buffer = csr_event_matmul_delayed(
            x, weight, indptr, indices, delays, buffer, t, N_POST, max_row=8, float_as_event=float_as_event, path=path
        )
        return (buffer, t + 1), out

    floating = jnp.issubdtype(spikes.dtype, jnp.floating)
    dtype = jnp.promote_types(spikes.dtype, weight.dtype) if floating else weight.dtype
    init = (jnp.zeros((*lead, MAX_DELAY + 1, N_POST), dtype), jnp.int32(0))
    return jax.jit(lambda s, w: jax.lax.scan(step, init, s)[1])(spikes, weight)


def _kernel_subset(kind, batch, path, **_):
    return path == "auto" and (kind, batch) in (("bool", (2,)), ("float", ()))


# Each case compiles its own scan: a representative set rather than the
# full product of spike kinds, batch shapes and paths.
# (The dense path with a batch also runs in test_gradients_through_time.)
CASES = [
    ("bool", (2,), "auto"),
    ("int", (2,), "auto"),
    ("float", (), "auto"),
    ("float", (2,), "auto"),
    ("int", (), "dense"),
]


@pytest.mark.kernel_twin(where=_kernel_subset)
@pytest.mark.parametrize("kind, batch, path", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_operator_exact_over_steps(rng, kind, batch, path):
    indptr, indices, delays = _csr(rng)
    weight = jnp.asarray(dyadic(rng, indices.shape))
    spikes = make_spikes(rng, kind, (N_STEPS, *batch, N_PRE), 3)
    out = _run(jnp.asarray(spikes), weight, indptr, indices, delays, path)
    assert_exact(out, delayed_matmul_reference(spikes, weight, indptr, indices, delays, N_POST))


@pytest.mark.kernel_twin
def test_scalar_weight_float_as_event_and_scalar_delay(rng):
    """A scalar weight; float_as_event; one delay for every synapse (the
    undelayed product added into one slot)."""
    indptr, indices, delays = _csr(rng)
    spikes = make_spikes(rng, "float", (N_STEPS, 2, N_PRE), 3)
    w = jnp.float32(0.375)
    out = _run(jnp.asarray(spikes), w, indptr, indices, delays, "auto", float_as_event=True)
    assert_exact(out, delayed_matmul_reference(spikes, w, indptr, indices, delays, N_POST, float_as_event=True))
    out = _run(jnp.asarray(spikes), w, indptr, indices, 2, "auto")
    assert_exact(out, delayed_matmul_reference(spikes, w, indptr, indices, 2, N_POST))


def test_vmap_matches_batch(rng):
    """vmap over independent sequences (buffer and spikes mapped together)
    equals the batched call; an unmapped buffer is shared."""
    indptr, indices, delays = _csr(rng)
    weight = jnp.asarray(dyadic(rng, indices.shape))
    spikes = jnp.asarray(make_spikes(rng, "int", (N_STEPS, 2, N_PRE), 3))
    want = delayed_matmul_reference(spikes, weight, indptr, indices, delays, N_POST)
    got = jax.vmap(lambda s: _run(s, weight, indptr, indices, delays, "auto"), in_axes=1, out_axes=1)(
        spikes[:, :, None, :]
    )
    assert_exact(got[:, :, 0], want)
    buffer = jnp.asarray(dyadic(rng, (MAX_DELAY + 1, N_POST)))
    one = jax.vmap(
        lambda s: csr_event_matmul_delayed(s, weight, indptr, indices, delays, buffer, 5, N_POST)[0], in_axes=0
    )(spikes[0])
    shared = jnp.broadcast_to(buffer, (2, *buffer.shape))
    ref = csr_event_matmul_delayed(spikes[0], weight, indptr, indices, delays, shared, 5, N_POST)[0]
    assert_exact(one, np.asarray(ref))


def _dense_loss(weight, spikes, c, indptr, indices, delays, quadratic=True):
    """The loss through per-delay dense matrices (differentiable by JAX)."""
    pre = np.repeat(np.arange(N_PRE), np.diff(indptr))
    out = jnp.zeros((N_STEPS, *spikes.shape[1:-1], N_POST), jnp.float32)
    for d in range(MAX_DELAY + 1):
        w_d = jnp.zeros((N_PRE, N_POST), jnp.float32).at[pre, indices].add(jnp.where(delays == d, weight, 0))
        out = out.at[d:].add(jnp.matmul(spikes[: N_STEPS - d], w_d, precision=jax.lax.Precision.HIGHEST))
    return jnp.sum(out * c) + (jnp.sum(out[-1] ** 2) if quadratic else 0.0)


@pytest.mark.parametrize("path, scalar", [("auto", False), ("auto", True), ("dense", False)])
def test_gradients_through_time(rng, path, scalar):
    """Gradients w.r.t. the weight (per synapse, or one scalar summed over
    its synapses) and float spikes through the buffer (lax.scan) equal those
    of the dense per-delay form. (The cotangents have no kernel: a kernel
    twin would run the same backward pass.)"""
    indptr, indices, delays = _csr(rng)
    weight = jnp.float32(0.375) if scalar else jnp.asarray(dyadic(rng, indices.shape))
    spikes = jnp.asarray(make_spikes(rng, "float", (N_STEPS, 2, N_PRE), 4))
    c = jnp.asarray(dyadic(rng, (N_STEPS, 2, N_POST)))

    def loss(w, s):
        out = _run(s, w, indptr, indices, delays, path)
        return jnp.sum(out * c) + jnp.sum(out[-1] ** 2)

    def dense(w, s):
        return _dense_loss(jnp.broadcast_to(w, indices.shape), s, c, indptr, indices, delays)

    got = jax.grad(loss, argnums=(0, 1))(weight, spikes)
    want = jax.jit(jax.grad(dense, argnums=(0, 1)))(weight, spikes)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, 1e-6)


def test_ring_step_and_errors(rng):
    buffer = jnp.zeros((2, MAX_DELAY + 1, N_POST), jnp.float32)
    inc = jnp.asarray(dyadic(rng, (2, N_POST)))
    out, buffer = delay_ring_step(buffer, 0, inc, 2)
    assert_exact(out, np.zeros((2, N_POST)))
    out, buffer = delay_ring_step(buffer, 1, jnp.zeros_like(inc), 2)
    out, buffer = delay_ring_step(buffer, 2, jnp.zeros_like(inc), 2)
    assert_exact(out, np.asarray(inc))
    assert not np.any(np.asarray(buffer))
    with pytest.raises(ValueError, match=r"delay must lie in \[0, n_slots\)"):
        delay_ring_step(buffer, 0, inc, MAX_DELAY + 1)
    with pytest.raises(TypeError, match="delay must be an int"):
        delay_ring_step(buffer, 0, inc, 1.5)
    indptr, indices, delays = _csr(rng)
    x = np.zeros((2, N_PRE), bool)
    buf = jnp.zeros((2, MAX_DELAY + 1, N_POST), jnp.float32)
    w = jnp.float32(1.0)
    with pytest.raises(ValueError, match=r"delays must lie in \[0, max_delay\] = \[0, 3\]"):
        csr_event_matmul_delayed(x, w, indptr, indices, delays + 1, buf, 0, N_POST)
    with pytest.raises(ValueError, match=r"delays must lie in \[0, max_delay\]"):
        csr_event_matmul_delayed(x, w, indptr, indices, delays - 1, buf, 0, N_POST)
    with pytest.raises(ValueError, match=r"delays must be an int scalar or have shape \(n_synapses,\)"):
        csr_event_matmul_delayed(x, w, indptr, indices, delays[:-1], buf, 0, N_POST)
    with pytest.raises(TypeError, match="delays must be an integer array"):
        csr_event_matmul_delayed(x, w, indptr, indices, delays.astype(np.float32), buf, 0, N_POST)
    with pytest.raises(ValueError, match=r"buffer must have shape \(\*batch, n_slots, n_post\)"):
        csr_event_matmul_delayed(x, w, indptr, indices, delays, buf[0], 0, N_POST)
    with pytest.raises(TypeError, match="buffer must have the product's dtype"):
        csr_event_matmul_delayed(x, w, indptr, indices, delays, buf.astype(jnp.bfloat16), 0, N_POST)


# -- the layers -------------------------------------------------------------------


def _layer_outputs(layer, spikes):
    return np.stack([np.asarray(u.get_mantissa(layer(spikes[t]))) for t in range(spikes.shape[0])])


def _layer_reference(layer, spikes, delays):
    w = np.asarray(layer.weight.value).reshape(-1)
    return delayed_matmul_reference(spikes, w if w.size > 1 else w[0], layer.indptr, layer.indices, delays, N_POST)


@pytest.fixture
def dt():
    with brainstate.environ.context(dt=0.1 * u.ms):
        yield


def test_layers_per_synapse_delays(rng, dt):
    """A distribution (steps or time), an array (from_synapses, in the order
    given), batches through init_state(batch_size); reset_state empties."""
    spikes = make_spikes(rng, "bool", (6, 2, N_PRE), 3)
    uniform = eventlib.EventFixedProb(N_PRE, N_POST, 0.4, 0.25, seed=3, delay=UniformDelay(0.1 * u.ms, 0.3 * u.ms))
    choice = eventlib.EventFixedNumConn(
        N_PRE, N_POST, 3, jnp.asarray(dyadic(rng, (21,))), seed=4, delay=DelayChoice([0, 3], [0.5, 0.5])
    )
    pre, post = rng.integers(0, N_PRE, 30), rng.integers(0, N_POST, 30)
    given = rng.integers(0, MAX_DELAY + 1, 30)
    listed = eventlib.EventFixedNumConn.from_synapses(pre, post, N_PRE, N_POST, 0.5, delay=given)
    d = np.asarray(uniform.connectivity.delays)
    assert uniform.max_delay == d.max() == 3 and d.min() == 1
    assert set(np.asarray(choice.connectivity.delays)) <= {0, 3}
    for layer in (uniform, choice, listed):
        brainstate.nn.init_all_states(layer, batch_size=2)
        assert layer.delay_buffer.value.shape == (2, layer.max_delay + 1, N_POST)
        want = _layer_reference(layer, spikes, layer.connectivity.delays)
        assert_exact(_layer_outputs(layer, spikes), want)
        layer.reset_state(batch_size=2)
        assert_exact(_layer_outputs(layer, spikes), want)
    # from_synapses keeps each delay with its (pre, post) pair.
    got_pre, got_post = (np.asarray(a) for a in listed.synapses())
    ref = {}
    for p, q, dd in zip(pre, post, given, strict=True):
        ref.setdefault((p, q), []).append(dd)
    got = {}
    for p, q, dd in zip(got_pre, got_post, np.asarray(listed.connectivity.delays), strict=True):
        got.setdefault((p, q), []).append(dd)
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in ref.items()}


def test_layers_scalar_delay(rng, dt):
    """One delay for every synapse: EventLinear (a time), a stored and a
    procedural sparse layer (steps); weights with units."""
    spikes = make_spikes(rng, "int", (6, N_PRE), 3)
    w = dyadic(rng, (N_PRE, N_POST))
    linear = eventlib.EventLinear(N_PRE, N_POST, jnp.asarray(w) * u.mS, delay=0.2 * u.ms)
    stored = eventlib.EventFixedProb(N_PRE, N_POST, 3, 0.5, seed=1, delay=2)
    procedural = eventlib.EventFixedProb(N_PRE, N_POST, 3, 0.5, seed=1, delay=2, procedural=True)
    for layer in (linear, stored, procedural):
        layer.init_state()
        assert layer.delay_buffer.value.shape == (3, N_POST)
    out = _layer_outputs(linear, spikes)
    want = np.zeros((6, N_POST))
    want[2:] = spikes[:-2].astype(np.float64) @ w
    assert_exact(out, want)
    assert u.get_unit(linear(spikes[0])) == u.mS
    ref = delayed_matmul_reference(spikes, 0.5, stored.indptr, stored.indices, 2, N_POST)
    assert_exact(_layer_outputs(stored, spikes), ref)
    assert_exact(_layer_outputs(procedural, spikes), ref)


def test_no_delay_keeps_todays_path(rng):
    """delay=None and delay=0 build no state and trace the same computation
    as a layer without the argument."""
    x = jnp.asarray(make_spikes(rng, "bool", (2, N_PRE), 3))
    plain = eventlib.EventFixedProb(N_PRE, N_POST, 0.4, 0.5, seed=1)
    for layer in (eventlib.EventFixedProb(N_PRE, N_POST, 0.4, 0.5, seed=1, delay=d) for d in (None, 0)):
        brainstate.nn.init_all_states(layer)
        assert "delay_buffer" not in vars(layer)
        assert set(brainstate.graph.states(layer).to_nest()) == set(brainstate.graph.states(plain).to_nest())
        assert str(jax.make_jaxpr(lambda x, layer=layer: layer(x))(x)) == str(jax.make_jaxpr(lambda x: plain(x))(x))
    linear = eventlib.EventLinear(N_PRE, N_POST, 0.5, delay=0)
    linear.init_state()
    assert "delay_buffer" not in vars(linear)


def test_layer_gradients_through_for_loop(rng):
    """brainstate.transform.grad of a loss accumulated by
    brainstate.transform.for_loop: the weight gradient through the buffer."""
    given = rng.integers(0, MAX_DELAY + 1, 30)
    pre, post = rng.integers(0, N_PRE, 30), rng.integers(0, N_POST, 30)
    w0 = dyadic(rng, (30,))
    layer = eventlib.EventFixedNumConn.from_synapses(pre, post, N_PRE, N_POST, jnp.asarray(w0), delay=given)
    spikes = jnp.asarray(make_spikes(rng, "float", (N_STEPS, 2, N_PRE), 4))
    c = jnp.asarray(dyadic(rng, (N_STEPS, 2, N_POST)))

    def loss():
        layer.reset_state(batch_size=2)
        outs = brainstate.transform.for_loop(layer, spikes)
        return jnp.sum(outs * c)

    brainstate.nn.init_all_states(layer, batch_size=2)
    grads = brainstate.transform.grad(loss, grad_states=layer.weight)()
    indptr, indices = np.asarray(layer.indptr), np.asarray(layer.indices)
    delays = np.asarray(layer.connectivity.delays)

    def dense(w):
        pre_s = np.repeat(np.arange(N_PRE), np.diff(indptr))
        out = jnp.zeros((N_STEPS, 2, N_POST), jnp.float32)
        for d in range(MAX_DELAY + 1):
            w_d = jnp.zeros((N_PRE, N_POST), jnp.float32).at[pre_s, indices].add(jnp.where(delays == d, w, 0))
            out = out.at[d:].add(jnp.matmul(spikes[: N_STEPS - d], w_d, precision=jax.lax.Precision.HIGHEST))
        return jnp.sum(out * c)

    assert_close(grads, jax.jit(jax.grad(dense))(layer.weight.value), 1e-6)


def test_checkpoint_restores_delays_and_buffer(tmp_path, rng):
    """Save mid-run (connectivity with its delays, the buffer, the step);
    restore into a model of another seed, under a jit compiled before the
    load: the next steps equal the saved model's."""
    spikes = make_spikes(rng, "bool", (N_STEPS, N_PRE), 4)

    def build(seed):
        return {"layer": eventlib.EventFixedNumConn(N_PRE, N_POST, 3, 0.5, seed=seed, delay=UniformDelay(0, 3))}

    saved = build(1)
    brainstate.nn.init_all_states(saved)
    for t in range(4):
        saved["layer"](spikes[t])
    path = tmp_path / "ck.msgpack"
    braintools.file.msgpack_save(path, brainstate.graph.states(saved).to_nest())
    want = _layer_outputs(saved["layer"], spikes[4:])
    fresh = build(2)
    brainstate.nn.init_all_states(fresh)
    assert not np.array_equal(np.asarray(fresh["layer"].connectivity.delays), saved["layer"].connectivity.delays)
    step = brainstate.transform.jit(lambda x: fresh["layer"](x))
    step(spikes[0])  # compiled before the load: the delays are state, not constants
    braintools.file.msgpack_load(path, brainstate.graph.states(fresh).to_nest())
    assert_exact(np.stack([np.asarray(step(x)) for x in spikes[4:]]), want)


def test_distributions_are_reproducible():
    conn = eventlib.connectivity.fixed_num_per_pre(200, 100, 50, 0)
    a = draw_delays(UniformDelay(2, 5), conn, 7)
    assert np.array_equal(a, draw_delays(UniformDelay(2, 5), conn, 7))
    assert not np.array_equal(a, draw_delays(UniformDelay(2, 5), conn, 8))
    assert set(np.unique(a)) == {2, 3, 4, 5}
    counts = np.bincount(a - 2) / a.size
    assert np.all(np.abs(counts - 0.25) < 0.02)
    b = draw_delays(DelayChoice([1, 4, 9], [0.2, 0.0, 0.8]), conn, 7)
    assert set(np.unique(b)) == {1, 9} and abs(np.mean(b == 1) - 0.2) < 0.02


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"delay": -1}, ValueError, "delay must be non-negative"),
        ({"delay": 1.5}, ValueError, "delay in steps must be whole numbers"),
        ({"delay": 0.25 * u.ms}, ValueError, r"delay must be a whole multiple of dt = 0\.1"),
        ({"delay": 1.0 * u.mV}, ValueError, "delay must be a time"),
        ({"delay": True}, TypeError, "delay must be in steps"),
        ({"delay": np.zeros((2, 3), np.int32)}, ValueError, r"delay must be a scalar or have shape \(n_synapses,\)"),
        ({"delay": np.ones(5, np.int32)}, ValueError, r"shape \(n_synapses,\) = \(27,\), got shape \(5,\)"),
        ({"delay": 4, "max_delay": 3}, ValueError, "delay must be at most max_delay = 3 steps, got 4"),
        ({"delay": UniformDelay(0, 5), "max_delay": 3}, ValueError, "at most max_delay = 3"),
        ({"delay": UniformDelay(3, 1)}, ValueError, "UniformDelay needs low <= high"),
        ({"delay": DelayChoice([1, 2], [0.5, 0.6])}, ValueError, "probs must be"),
        ({"delay": UniformDelay(0, 2), "procedural": True}, ValueError, "per-synapse delays .* need stored"),
        ({"delay": UniformDelay(0, 2), "deterministic": True}, ValueError, "deterministic=True is not available"),
    ],
)
def test_bad_delays(dt, kwargs, error, match):
    with pytest.raises(error, match=match):
        eventlib.EventFixedNumConn(N_PRE, N_POST, 3, 0.5, efferent_target="post", seed=1, **kwargs)


def test_bad_delay_states_and_assignments(rng):
    with pytest.raises(ValueError, match="needs brainstate's dt"):
        with brainstate.environ.context(dt=None):
            eventlib.EventLinear(N_PRE, N_POST, 0.5, delay=1.0 * u.ms)
    with pytest.raises(ValueError, match="one delay for every connection"):
        eventlib.EventLinear(N_PRE, N_POST, 0.5, delay=np.ones(3, np.int32))
    layer = eventlib.EventFixedProb(N_PRE, N_POST, 3, 0.5, seed=1, delay=UniformDelay(0, 2))
    x = np.zeros((N_PRE,), bool)
    with pytest.raises(RuntimeError, match="init_state"):
        layer(x)
    layer.init_state()
    with pytest.raises(ValueError, match="buffer must have shape"):
        layer(np.zeros((2, N_PRE), bool))
    value = layer.connectivity.value
    with pytest.raises(ValueError, match=r"'delays' must lie in \[0, max_delay\] = \[0, 2\]"):
        layer.connectivity.value = dict(value, delays=value["delays"] + 3)
    with pytest.raises(ValueError, match=r"'delays' must have shape \(n_synapses,\)"):
        layer.connectivity.value = dict(value, delays=value["delays"][:-1])
    with pytest.raises(TypeError, match="'delays' must be a 1-D integer array"):
        layer.connectivity.value = dict(value, delays=value["delays"].astype(jnp.float32))
