"""What a brainstate user expects from the layers' construction: the same
weight distribution from an initializer as brainstate's layers, empty
layers and zero sizes where brainstate builds them, seeds given as JAX
arrays, and documentation of every public name."""

from __future__ import annotations

import inspect
import re

import brainstate
import braintools
import brainunit as u
import jax.numpy as jnp
import numpy as np
import pytest

import eventlib

# -- weight initializers ---------------------------------------------------------------

FAN_INITS = {
    "KaimingNormal": braintools.init.KaimingNormal,
    "KaimingUniform": braintools.init.KaimingUniform,
    "XavierNormal": braintools.init.XavierNormal,
    "LecunNormal": braintools.init.LecunNormal,
}


def _weights(layer):
    return np.asarray(u.get_mantissa(layer.weight.value)).reshape(-1)


def _std_over_seeds(make, init):
    """Weight std of ``make(init, seed)`` pooled over three seeds of
    brainstate's random state (which the initializers draw from)."""
    values = []
    for seed in range(3):
        brainstate.random.seed(seed)
        values.append(_weights(make(init(), seed)))
    return float(np.concatenate(values).std())


# (eventlib constructor, brainstate constructor) of the same layer form.
N_PRE, N_POST = 1000, 800
SAME_FORM = {
    "EventFixedProb_prob": (
        lambda w, seed: eventlib.EventFixedProb(N_PRE, N_POST, 0.05, w, seed=seed),
        lambda w, seed: brainstate.nn.EventFixedProb(N_PRE, N_POST, 0.05, w, seed=seed),
    ),
    "EventFixedProb_int": (
        lambda w, seed: eventlib.EventFixedProb(N_PRE, N_POST, 30, w, seed=seed),
        lambda w, seed: brainstate.nn.EventFixedProb(N_PRE, N_POST, 30, w, seed=seed),
    ),
    "FixedNumConn_fan_out": (
        lambda w, seed: eventlib.FixedNumConn(N_PRE, N_POST, 30, w, efferent_target="post", seed=seed),
        lambda w, seed: brainstate.nn.FixedNumConn(N_PRE, N_POST, 30, w, seed=seed),
    ),
}


@pytest.mark.parametrize("init", FAN_INITS)
@pytest.mark.parametrize("form", SAME_FORM)
def test_fan_initializers_match_brainstate(form, init):
    """A fan-based initializer gives the weight scale of brainstate's layer
    of the same form (std within 10% over three seeds): brainstate calls it
    with ``(n_pre, conn_num)``, and so must the fans eventlib gives it."""
    if not hasattr(brainstate.nn, "EventFixedProb"):
        pytest.skip("this brainstate has no EventFixedProb")
    ours, theirs = SAME_FORM[form]
    std, ref = _std_over_seeds(ours, FAN_INITS[init]), _std_over_seeds(theirs, FAN_INITS[init])
    assert abs(std / ref - 1.0) < 0.1, (std, ref)


@pytest.mark.parametrize("init", FAN_INITS)
def test_fixed_fan_in_fans(init):
    """Fixed fan-in (no brainstate equivalent): fan-in is the inputs per
    neuron ``k``, fan-out the mean out-degree ``k * n_post / n_pre``."""
    k, n_pre, n_post = 40, 600, 450
    fan_in, fan_out = k, k * n_post // n_pre
    expected = {
        "KaimingNormal": np.sqrt(2.0 / fan_in),
        "KaimingUniform": np.sqrt(2.0 / fan_in),
        "XavierNormal": np.sqrt(2.0 / (fan_in + fan_out)),
        "LecunNormal": np.sqrt(1.0 / fan_in),
    }[init]
    for cls in (eventlib.FixedNumConn, eventlib.EventFixedNumConn):
        std = _std_over_seeds(lambda w, seed, cls=cls: cls(n_pre, n_post, k, w, seed=seed), FAN_INITS[init])
        assert abs(std / expected - 1.0) < 0.1, (cls.__name__, std, expected)


def test_probability_weights_are_blocks_of_brainstate_shape():
    """With a probability, the per-synapse weights are the first
    ``n_synapses`` values of blocks shaped ``(n_pre, int(n_post * p))``
    (at least one column when brainstate's count would be 0), drawn in
    order from brainstate's random state; a brainunit initializer keeps its
    unit."""
    for n_post, prob, width in [(100, 0.2, 20), (100, 0.005, 1)]:
        init = braintools.init.KaimingNormal(unit=u.mS)
        brainstate.random.seed(7)
        layer = eventlib.EventFixedProb(200, n_post, prob, init, seed=3)
        brainstate.random.seed(7)
        blocks = [init((200, width)) for _ in range(-(-layer.n_synapses // (200 * width)))]
        ref = np.concatenate([np.asarray(b.mantissa).reshape(-1) for b in blocks])[: layer.n_synapses]
        assert u.get_unit(layer.weight.value) == u.mS
        assert layer.weight.value.shape == (layer.n_synapses,)
        np.testing.assert_array_equal(_weights(layer), ref)
        assert u.get_unit(layer(jnp.ones(200, bool))) == u.mS


def test_procedural_initializer_draws_from_the_stored_layers_distribution():
    """A procedural layer's scalar weight from an initializer is the first
    value the stored layer of the same arguments gets (same fans)."""
    for conn_num in (0.1, 12):
        brainstate.random.seed(11)
        stored = eventlib.EventFixedProb(300, 200, conn_num, braintools.init.KaimingNormal(), seed=1)
        brainstate.random.seed(11)
        proc = eventlib.EventFixedProb(300, 200, conn_num, braintools.init.KaimingNormal(), seed=1, procedural=True)
        assert proc.weight.value.shape == ()
        assert float(proc.weight.value) == _weights(stored)[0]


def test_from_synapses_fans_from_mean_degrees():
    """from_synapses: fan-in the mean in-degree, fan-out the mean out-degree."""
    rng = np.random.default_rng(0)
    n_pre, n_post, n_syn = 500, 250, 20000  # mean in-degree 80, out-degree 40
    pre, post = rng.integers(0, n_pre, n_syn), rng.integers(0, n_post, n_syn)
    values = []
    for seed in range(3):
        brainstate.random.seed(seed)
        init = braintools.init.XavierNormal()
        values.append(_weights(eventlib.EventFixedProb.from_synapses(pre, post, n_pre, n_post, init)))
    std = np.concatenate(values).std()
    expected = np.sqrt(2.0 / (80 + 40))
    assert abs(std / expected - 1.0) < 0.1, (std, expected)


# -- conn_num and seeds ------------------------------------------------------------------


def test_seed_as_jax_integer_array():
    """A seed given as a 0-d JAX (or NumPy) integer array is that integer."""
    ref = eventlib.EventFixedProb(30, 20, 0.2, 1.0, seed=5).to_dense()
    for seed in (jnp.asarray(5), jnp.asarray(5, jnp.uint32), np.int64(5), np.asarray(5)):
        layer = eventlib.EventFixedProb(30, 20, 0.2, 1.0, seed=seed)
        assert layer.seed == 5 and type(layer.seed) is int
        np.testing.assert_array_equal(np.asarray(layer.to_dense()), np.asarray(ref))


@pytest.mark.filterwarnings("ignore:.*no synapse:UserWarning")
def test_zero_probability_sweep():
    """A sweep over conn_num starting at 0.0 builds every layer; the first is
    empty with zero output, as in brainstate."""
    x = jnp.ones((2, 30), jnp.float32)
    for prob in (0.0, 0.1, 0.5):
        layer = eventlib.EventFixedProb(30, 20, prob, 0.5, seed=0)
        out = layer(x)
        assert out.shape == (2, 20)
        assert (layer.n_synapses == 0) == (prob == 0.0)
        if prob == 0.0:
            np.testing.assert_array_equal(np.asarray(out), np.zeros((2, 20)))


# -- docstrings ----------------------------------------------------------------------


def _public_objects():
    modules = {
        "eventlib": eventlib,
        "eventlib.ops": eventlib.ops,
        "eventlib.connectivity": eventlib.connectivity,
        "eventlib.sharding": eventlib.sharding,
    }
    seen = {}
    for mod_name, module in modules.items():
        names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
        for name in names:
            obj = getattr(module, name)
            if inspect.ismodule(obj) or not (inspect.isclass(obj) or callable(obj)):
                continue  # modules and constants are documented on their own pages
            seen.setdefault(id(obj), (f"{mod_name}.{name}", obj))
    return sorted(seen.values())


def _documented_parameters(obj):
    """The parameters a caller passes: those of the function, or of the
    class's ``__init__`` (a dataclass's fields)."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind not in skip]


PUBLIC = _public_objects()


@pytest.mark.parametrize(("qualname", "obj"), PUBLIC, ids=[q for q, _ in PUBLIC])
def test_public_docstring_names_every_argument(qualname, obj):
    """Every public class and function has its own docstring (so ``help()``
    and the API page show it) and it mentions each argument of the
    signature, alone or in a documented group such as ``in_size, out_size``."""
    doc = obj.__doc__
    assert doc and doc.strip(), f"{qualname} has no docstring"
    if inspect.isclass(obj):
        assert "__doc__" in vars(obj) and vars(obj)["__doc__"], f"{qualname} inherits its docstring"
    missing = [p for p in _documented_parameters(obj) if not re.search(rf"(?<![\w.]){re.escape(p)}\b", doc)]
    assert not missing, f"{qualname}'s docstring does not mention its arguments {missing}"


# -- empty populations in the operators ---------------------------------------------------


@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
@pytest.mark.parametrize("path", eventlib.ops.PATHS)
@pytest.mark.parametrize("sizes", [(0, 6), (5, 0), (0, 0)], ids=["no_pre", "no_post", "neither"])
def test_ops_zero_sizes(sizes, path, deterministic):
    """Every operator takes n_pre = 0 or n_post = 0 on every path: the dense
    reference's (zero) values and (zero) gradients, in the right shapes."""
    import jax

    n_pre, n_post = sizes
    x = jnp.ones((3, n_pre), jnp.float32)
    dense_w = jnp.full((n_pre, n_post), 0.5, jnp.float32)
    conn = eventlib.connectivity.fixed_prob(n_pre, n_post, 0.5, seed=0)
    rule, table = eventlib.ops.make_rule(n_pre, n_post, 0, prob=0.5)
    w_syn = jnp.zeros((conn.n_synapses,), jnp.float32)
    products = {
        "event_matmul": (lambda x, w: eventlib.ops.event_matmul(x, w, path=path), dense_w),
        "csr_event_matmul": (
            lambda x, w: eventlib.ops.csr_event_matmul(
                x, w, conn.indptr, conn.indices, n_post, path=path, deterministic=deterministic
            ),
            w_syn,
        ),
        "csr_scalar": (
            lambda x, w: eventlib.ops.csr_event_matmul(x, w, conn.indptr, conn.indices, n_post, path=path),
            jnp.float32(0.5),
        ),
        "coo_matmul": (
            lambda x, w: eventlib.ops.coo_matmul(x, w, conn.pre_indices(), conn.indices, n_post),
            w_syn,
        ),
        "procedural": (
            lambda x, w: eventlib.ops.procedural_event_matmul(x, w, rule, table, path=path),
            jnp.float32(0.5),
        ),
        "homogeneous": (lambda x, w: eventlib.ops.homogeneous_matmul(x, w, n_post), jnp.float32(0.5)),
    }
    for name, (product, w) in products.items():
        out = product(x, w)
        assert out.shape == (3, n_post), name
        np.testing.assert_array_equal(np.asarray(out), np.zeros((3, n_post)), err_msg=name)
        gx, gw = jax.grad(lambda x, w, f=product: jnp.sum(jax.jit(f)(x, w)) + 1.0, argnums=(0, 1))(x, w)
        assert gx.shape == x.shape and np.shape(gw) == np.shape(w), name
        np.testing.assert_array_equal(np.asarray(gx), np.zeros(x.shape), err_msg=name)
        np.testing.assert_array_equal(np.asarray(gw), np.zeros(np.shape(w)), err_msg=name)
