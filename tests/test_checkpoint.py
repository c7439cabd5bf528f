"""Checkpoint round trips: a layer restored through brainstate's state tree
(braintools msgpack), assigned a connectivity, deep-copied or given new
weights computes what its state describes -- on every path, eagerly and
under brainstate.transform.jit (also a function compiled before the
restore) -- or refuses with a clear error."""

import copy
import os
import subprocess
import sys
import textwrap

import brainstate
import braintools
import jax.numpy as jnp
import numpy as np
import pytest

import eventlib
from eventlib import connectivity as conn_lib

N_PRE, N_POST = 40, 30


def _from_synapses(seed):
    rng = np.random.default_rng(seed)
    pre = rng.integers(0, N_PRE, 120)
    post = rng.integers(0, N_POST, 120)
    return eventlib.EventFixedNumConn.from_synapses(pre, post, N_PRE, N_POST, jnp.asarray(rng.random(120), jnp.float32))


def _weights(shape):
    return lambda shape_: jnp.asarray(np.random.default_rng(7).random(shape_), jnp.float32)


# Layers whose state has the same shapes for every seed: a checkpoint of
# one seed loads into a model built with another.
FIXED = {
    "linear": lambda seed: eventlib.EventLinear(N_PRE, N_POST, _weights(None)),
    "fixed_num_fan_in": lambda seed: eventlib.FixedNumConn(N_PRE, N_POST, 5, _weights(None), seed=seed),
    "fixed_num_fan_out": lambda seed: eventlib.FixedNumConn(
        N_PRE, N_POST, 4, _weights(None), efferent_target="post", seed=seed
    ),
    "event_fixed_num_fan_in": lambda seed: eventlib.EventFixedNumConn(N_PRE, N_POST, 5, _weights(None), seed=seed),
    "event_fixed_num_det": lambda seed: eventlib.EventFixedNumConn(
        N_PRE, N_POST, 5, _weights(None), seed=seed, deterministic=True
    ),
    "prob_int_fan_out": lambda seed: eventlib.EventFixedProb(N_PRE, N_POST, 4, _weights(None), seed=seed),
    "prob_int_fan_in": lambda seed: eventlib.EventFixedProb(
        N_PRE, N_POST, 4, _weights(None), efferent_target="pre", seed=seed
    ),
    "procedural_prob": lambda seed: eventlib.EventFixedProb(N_PRE, N_POST, 0.15, 0.5, seed=seed, procedural=True),
    "procedural_int": lambda seed: eventlib.EventFixedProb(N_PRE, N_POST, 4, 0.5, seed=seed, procedural=True),
    "procedural_smallest": lambda seed: eventlib.EventFixedProb(N_PRE, N_POST, 12, 0.5, seed=seed, procedural=True),
    "procedural_fixed_num": lambda seed: eventlib.FixedNumConn(
        N_PRE, N_POST, 4, 0.5, efferent_target="post", seed=seed, procedural=True
    ),
    "from_synapses": _from_synapses,
}
# Layers whose number of synapses depends on the seed.
VARIABLE = {
    "prob_stored": lambda seed: eventlib.EventFixedProb(N_PRE, N_POST, 0.15, 0.5, seed=seed),
}


def _model(build, seed):
    brainstate.random.seed(seed)  # EventLinear's weights
    return {"layer": build(seed)}


def _save(model, path):
    braintools.file.msgpack_save(path, brainstate.graph.states(model).to_nest())


def _load(model, path):
    braintools.file.msgpack_load(path, brainstate.graph.states(model).to_nest())


def _spikes():
    rng = np.random.default_rng(3)
    x = (rng.random((3, N_PRE)) < 0.3) * rng.integers(1, 4, (3, N_PRE)) / 4
    return jnp.asarray(x, jnp.float32)


def _results(layer, x):
    """Output, weight gradient and spike gradient of ``sum(layer(x) * c)``."""
    c = jnp.asarray(np.random.default_rng(5).random((x.shape[0], N_POST)), jnp.float32)

    def loss(x):
        return jnp.sum(layer(x) * c)

    grad = brainstate.transform.grad(loss, grad_states=layer.weight, argnums=0)
    g_w, g_x = grad(x)
    return [np.asarray(layer(x)), np.asarray(g_w), np.asarray(g_x)]


def _dense_results(layer, x):
    """The same through ``x @ layer.to_dense()``."""
    c = jnp.asarray(np.random.default_rng(5).random((x.shape[0], N_POST)), jnp.float32)
    dense = np.asarray(layer.to_dense(), np.float64)
    out = np.asarray(x, np.float64) @ dense
    return out, np.asarray(c, np.float64) @ dense.T


def _assert_same(got, want, what):
    for g, w, name in zip(got, want, ("output", "weight gradient", "spike gradient"), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=f"{what}: {name}")


def _set_path(layer, path):
    if path == "deterministic":
        if not isinstance(layer, eventlib.FixedNumConn | eventlib.EventFixedProb) or layer.procedural:
            pytest.skip("deterministic=True is for stored event-driven connectivity")
        if type(layer) is eventlib.FixedNumConn:
            pytest.skip("FixedNumConn has no deterministic option")
        layer.deterministic = True
    else:
        layer.path = path


# On CPU 'auto' is the portable path 'event' (and on a GPU the kernels, which
# test_restore_kernel_path also runs): each computation once.
PATHS = ["auto", "dense", "deterministic"] + (["event"] if eventlib.which_path() != "event" else [])


@pytest.fixture(scope="module")
def saved_checkpoints(tmp_path_factory):
    """One checkpoint (seed 1) per kind and the saved model's output and
    gradients, shared by the cases that restore it on each path."""
    cache = {}

    def get(kind):
        if kind not in cache:
            saved = _model(FIXED[kind], 1)
            file = tmp_path_factory.mktemp(kind) / "ck.msgpack"
            _save(saved, file)
            cache[kind] = file, _results(saved["layer"], _spikes())
        return cache[kind]

    return get


# Every kind on the path users get; the other paths on kinds that cover what
# differs between them (dense weight, stored fan-in and fan-out, user
# synapses, procedural): a path's restore logic is the same for every kind,
# and each case compiles its own functions (the sorted deterministic product
# is slow to compile).
PATH_KINDS = {
    "auto": sorted(FIXED),
    "dense": ["linear", "event_fixed_num_fan_in", "fixed_num_fan_out", "procedural_prob", "from_synapses"],
    "deterministic": ["prob_int_fan_out", "from_synapses"],  # and event_fixed_num_det on every path
    "event": sorted(FIXED),
}
RESTORE_CASES = [pytest.param(kind, path, 2, id=f"{kind}-{path}") for path in PATHS for kind in PATH_KINDS[path]] + [
    pytest.param(kind, "auto", 1, id=f"{kind}-auto-same_seed") for kind in ("event_fixed_num_fan_in", "procedural_int")
]


@pytest.mark.parametrize("kind, path, seed_after", RESTORE_CASES)
def test_restore_matches_saved_model(saved_checkpoints, kind, path, seed_after):
    """Save (seed 1), rebuild (same or another seed), load: outputs and
    gradients equal the saved model's, and x @ to_dense(); eagerly, under a
    jit traced after the load and under one compiled before it."""
    x = _spikes()
    checkpoint, want = saved_checkpoints(kind)

    fresh = _model(FIXED[kind], seed_after)
    layer = fresh["layer"]
    _set_path(layer, path)
    compiled_before = brainstate.transform.jit(lambda x: layer(x))
    compiled_before(x)
    _load(fresh, checkpoint)

    _assert_same(_results(layer, x), want, "eager")
    np.testing.assert_allclose(np.asarray(compiled_before(x)), want[0], rtol=1e-5, atol=1e-5)
    traced_after = brainstate.transform.jit(lambda x: _results_traced(layer, x))
    _assert_same([np.asarray(r) for r in traced_after(x)], want, "jit traced after the load")
    out, g_x = _dense_results(layer, x)
    np.testing.assert_allclose(want[0], out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(want[2], g_x, rtol=1e-5, atol=1e-5)
    if getattr(layer, "procedural", False):
        assert layer.seed == 1


@pytest.mark.parametrize("kind", sorted(FIXED))
def test_jitted_gradients_compiled_before_restore(tmp_path, kind):
    """A jitted gradient compiled before the load uses the restored state."""
    x = _spikes()
    saved = _model(FIXED[kind], 1)
    want = _results(saved["layer"], x)
    _save(saved, tmp_path / "ck.msgpack")
    fresh = _model(FIXED[kind], 2)
    layer = fresh["layer"]
    compiled = brainstate.transform.jit(lambda x: _results_traced(layer, x))
    compiled(x)
    _load(fresh, tmp_path / "ck.msgpack")
    _assert_same([np.asarray(r) for r in compiled(x)], want, "compiled before the load")


def _results_traced(layer, x):
    c = jnp.asarray(np.random.default_rng(5).random((x.shape[0], N_POST)), jnp.float32)

    def loss(x):
        return jnp.sum(layer(x) * c)

    g_w, g_x = brainstate.transform.grad(loss, grad_states=layer.weight, argnums=0)(x)
    return layer(x), g_w, g_x


@pytest.mark.parametrize("kind", ["event_fixed_num_fan_in", "procedural_int", "procedural_prob"])
def test_restore_kernel_path(tmp_path, kind):
    """The Pallas kernels (the interpreter on CPU) after a restore into a
    model of another seed, also compiled before the load."""
    x = _spikes()
    saved = _model(FIXED[kind], 1)
    saved["layer"].path = "kernel"
    want = _results(saved["layer"], x)
    _save(saved, tmp_path / "ck.msgpack")
    fresh = _model(FIXED[kind], 2)
    layer = fresh["layer"]
    layer.path = "kernel"
    compiled = brainstate.transform.jit(lambda x: _results_traced(layer, x))
    compiled(x)
    _load(fresh, tmp_path / "ck.msgpack")
    _assert_same([np.asarray(r) for r in compiled(x)], want, "kernel, compiled before the load")


@pytest.mark.parametrize("kind", sorted(VARIABLE))
def test_restore_other_seed_refused_when_sizes_differ(tmp_path, kind):
    """A connectivity whose synapse count differs from the fresh model's is
    refused (braintools' shape check, or the layer's consistency check when
    mismatches are ignored); with the same seed it round-trips."""
    x = _spikes()
    saved = _model(VARIABLE[kind], 1)
    want = _results(saved["layer"], x)
    _save(saved, tmp_path / "ck.msgpack")
    with pytest.raises(ValueError):
        _load(_model(VARIABLE[kind], 2), tmp_path / "ck.msgpack")
    # With shape mismatches ignored the load either refuses a half-restored
    # connectivity or restores all of it: then it computes the saved matrix.
    other = _model(VARIABLE[kind], 2)
    try:
        braintools.file.msgpack_load(
            tmp_path / "ck.msgpack", brainstate.graph.states(other).to_nest(), mismatch="ignore"
        )
    except ValueError as err:
        assert "indptr" in str(err) or "indices" in str(err)
    else:
        _assert_same(_results(other["layer"], x), want, "shape mismatches ignored")
    same = _model(VARIABLE[kind], 1)
    _load(same, tmp_path / "ck.msgpack")
    _assert_same(_results(same["layer"], x), want, "same seed")


def test_restore_in_another_process(tmp_path):
    """Save in one Python process, load in another (a model built with
    seed=None, as a user's new process would): the outputs agree."""
    script = textwrap.dedent(
        """
        import sys
        import brainstate, braintools, numpy as np
        import eventlib
        path, mode = sys.argv[1], sys.argv[2]
        np.random.seed(int(mode == "load"))
        model = {
            "fan_in": eventlib.EventFixedNumConn(300, 200, 30, 0.5),
            "procedural": eventlib.EventFixedProb(300, 200, 0.05, 0.5, procedural=True),
        }
        x = np.random.default_rng(0).random((2, 300)) < 0.2
        if mode == "load":
            braintools.file.msgpack_load(path + ".msgpack", brainstate.graph.states(model).to_nest())
        outs = np.stack([np.asarray(model[k](x)) for k in sorted(model)])
        np.save(path + "." + mode + ".npy", outs)
        if mode == "save":
            braintools.file.msgpack_save(path + ".msgpack", brainstate.graph.states(model).to_nest())
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    base = str(tmp_path / "ck")
    for mode in ("save", "load"):
        subprocess.run([sys.executable, "-c", script, base, mode], check=True, env=env, cwd=root)
    np.testing.assert_allclose(np.load(base + ".load.npy"), np.load(base + ".save.npy"), rtol=1e-6)


@pytest.mark.parametrize("kind", ["event_fixed_num_fan_in", "event_fixed_num_det", "fixed_num_fan_in"])
def test_assigned_connectivity(kind):
    """A user-built connectivity assigned to the state (longer rows than
    the one built) is what every path, and a function compiled before the
    assignment, computes with."""
    x = _spikes()
    layer = FIXED[kind](1)
    compiled = brainstate.transform.jit(lambda x: _results_traced(layer, x))
    compiled(x)
    conn = conn_lib.fixed_num_per_post(N_PRE, N_POST, 5, 99)
    # Put all synapses of the first 10 rows first: much longer rows.
    pre = np.sort(np.arange(conn.n_synapses) % 10)
    new, _ = conn_lib.from_indices(pre, conn.indices, N_PRE, N_POST)
    value = {"indptr": jnp.asarray(new.indptr), "indices": jnp.asarray(new.indices)}
    if "pre" in layer.connectivity.value:
        value["pre"] = jnp.asarray(new.pre_indices())
    assert new.max_row > layer.max_row
    layer.connectivity.value = value
    assert layer.max_row == new.max_row
    want_out, want_gx = _dense_results(layer, x)
    for got in (_results(layer, x), [np.asarray(r) for r in compiled(x)]):
        np.testing.assert_allclose(got[0], want_out, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[2], want_gx, rtol=1e-5, atol=1e-5)
    fresh = FIXED[kind](2)
    fresh.connectivity.value = value
    _assert_same(_results(layer, x), _results(fresh, x), "assigned")


def test_assigned_procedural_seed():
    """Assigning another seed to a procedural layer's state changes its
    matrix to that seed's, also in a function compiled before."""
    x = _spikes()
    layer, other = FIXED["procedural_int"](1), FIXED["procedural_int"](5)
    compiled = brainstate.transform.jit(lambda x: layer(x))
    compiled(x)
    layer.connectivity.value = dict(layer.connectivity.value, seed=jnp.asarray(np.uint32(5)))
    assert layer.seed == 5
    np.testing.assert_allclose(np.asarray(compiled(x)), np.asarray(other(x)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.to_dense()), np.asarray(other.to_dense()))


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda v: dict(v, indptr=v["indptr"][:-1]), "indptr"),
        (lambda v: dict(v, indices=v["indices"] + N_POST), r"indices.*\[0, n_post\)"),
        (lambda v: dict(v, indices=v["indices"][:-1]), "end at the number of synapses"),
        (lambda v: dict(v, indptr=v["indptr"].astype(jnp.float32)), "integer"),
        (lambda v: dict(v, pre=v["pre"][::-1]), "'pre'"),
    ],
)
def test_bad_assignment_refused(change, match):
    layer = FIXED["fixed_num_fan_in"](1)
    before = layer.connectivity.value
    with pytest.raises((ValueError, TypeError), match=match):
        layer.connectivity.value = change(before)
    assert layer.connectivity.value is before


def test_bad_procedural_assignment_refused():
    layer = FIXED["procedural_prob"](1)
    value = layer.connectivity.value
    with pytest.raises(ValueError, match="table"):
        layer.connectivity.value = dict(value, table=value["table"][::-1])
    with pytest.raises(ValueError, match="seed"):
        layer.connectivity.value = dict(value, seed=jnp.zeros((2,), jnp.uint32))


@pytest.mark.parametrize("kind", sorted(FIXED))
def test_deepcopy_and_new_weights(kind):
    """A deep copy computes what the original does; new weights assigned
    after construction are what both the layer and to_dense use."""
    x = _spikes()
    layer = FIXED[kind](1)
    twin = copy.deepcopy(layer)
    _assert_same(_results(twin, x), _results(layer, x), "deepcopy")
    w = layer.weight.value
    layer.weight.value = jnp.asarray(np.random.default_rng(11).random(np.shape(w)), jnp.float32)
    out, g_x = _dense_results(layer, x)
    got = _results(layer, x)
    np.testing.assert_allclose(got[0], out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[2], g_x, rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.asarray(twin(x)), got[0])
