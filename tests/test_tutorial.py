"""The brainstate event-driven operators tutorial runs unchanged with
``import eventlib as nn`` in place of ``import brainstate.nn as nn``."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

# The code cells of brainstate's "Event-Driven Operators" tutorial, in order,
# with only the import of ``nn`` changed.
TUTORIAL = """
import jax.numpy as jnp

import brainstate
import eventlib as nn
import braintools

brainstate.random.seed(0)
brainstate.__version__

n_pre, n_post = 200, 100
spikes = (brainstate.random.rand(n_pre) < 0.1).astype(float)
print('active inputs:', int(spikes.sum()), 'of', n_pre)

weight = brainstate.random.randn(n_pre, n_post) * 0.1
event_linear = nn.EventLinear(n_pre, n_post, weight=weight)

event_out = event_linear(spikes)
dense_out = spikes @ weight

print('output shape:', event_out.shape)
print('matches dense matmul:', bool(jnp.allclose(event_out, dense_out, atol=1e-5)))

bool_out = event_linear(spikes.astype(bool))
print('boolean spikes give the same result:', bool(jnp.allclose(bool_out, dense_out, atol=1e-5)))

sparse_syn = nn.EventFixedProb(
    n_pre, n_post,
    conn_num=0.2,        # each post neuron receives ~20% of pre neurons
    conn_weight=0.5,
)

sparse_out = sparse_syn(spikes)
print('sparse output shape:', sparse_out.shape)

fixed_syn = nn.FixedNumConn(
    n_pre, n_post,
    conn_num=10,         # exactly 10 connections per neuron
    conn_weight=0.5,
)

fixed_out = fixed_syn(spikes)
print('fixed-fan-in output shape:', fixed_out.shape)
"""


@pytest.fixture(scope="module")
def tutorial():
    """The tutorial run once: its printed lines and its variables."""
    namespace = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(TUTORIAL, "<tutorial>", "exec"), namespace)
    return out.getvalue().splitlines(), namespace


def test_tutorial_prints_the_promised_lines(tutorial):
    """The tutorial's own checks print True, and the shapes it prints."""
    lines, _ = tutorial
    assert "matches dense matmul: True" in lines
    assert "boolean spikes give the same result: True" in lines
    assert "output shape: (100,)" in lines
    assert "sparse output shape: (100,)" in lines
    assert "fixed-fan-in output shape: (100,)" in lines


def test_tutorial_layers_do_what_the_text_says(tutorial):
    """The layers built by the tutorial are the ones its text describes:
    about 20% of pairs connected, exactly 10 inputs per postsynaptic neuron,
    and outputs equal to the dense products."""
    _, ns = tutorial
    spikes = np.asarray(ns["spikes"], np.float64)
    sparse, fixed = ns["sparse_syn"], ns["fixed_syn"]
    assert abs(sparse.n_synapses - 0.2 * 200 * 100) < 6 * np.sqrt(200 * 100 * 0.2 * 0.8)
    fixed_dense = np.asarray(fixed.to_dense(), np.float64)
    np.testing.assert_array_equal((fixed_dense != 0).sum(axis=0), 10)
    for layer, out in ((sparse, ns["sparse_out"]), (fixed, ns["fixed_out"])):
        np.testing.assert_allclose(np.asarray(out), spikes @ np.asarray(layer.to_dense(), np.float64), rtol=1e-6)
