"""The peer tests run against eventlib's layers, not brainstate's: the classes
they look up are eventlib's, and they behave as eventlib's do.

With ``EVENTLIB_PEER_PATCH=0`` (the unpatched baseline) the same checks
assert the opposite, so each run shows which classes it tested.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import brainstate
import jax.numpy as jnp
import numpy as np
import pytest

PEER_MODULES = ("brainstate.nn._event_linear_test", "brainstate.nn._event_fixedprob_test")


def test_brainstate_nn_holds_the_tested_classes(peer):
    tested = peer.eventlib if peer.patched else peer.brainstate
    for name in peer.layer_names:
        assert peer.brainstate[name] is not peer.eventlib[name], name
        assert getattr(brainstate.nn, name) is tested[name], name


@pytest.mark.parametrize("module_name", PEER_MODULES)
def test_peer_modules_see_the_tested_classes(peer, module_name):
    """The peer module is the installed wheel's, and the layer names it imported
    from brainstate hold the tested classes while tests run."""
    module = importlib.import_module(module_name)
    assert Path(module.__file__).parent == Path(brainstate.nn.__file__).parent
    tested = peer.eventlib if peer.patched else peer.brainstate
    for name, value in vars(module).items():
        if isinstance(value, type) and value in (*peer.brainstate.values(), *peer.eventlib.values()):
            assert value is tested.get(name, tested["EventFixedNumConn"]), (module_name, name)


def test_peer_tests_observe_eventlib_behaviour(peer):
    """A float input of 0.5 with weight 1: eventlib multiplies (0.5); brainstate
    counts every nonzero input as one event by default (1.0)."""
    fixedprob_test = importlib.import_module("brainstate.nn._event_fixedprob_test")
    x = jnp.asarray([0.5, 0.0])
    expected = 0.5 if peer.patched else 1.0
    np.testing.assert_allclose(np.asarray(brainstate.nn.EventLinear(2, 3, 1.0)(x)), expected)
    # With p = 1 eventlib connects every pair once: 0.5 at each output. brainstate draws 3 targets
    # per row with replacement and counts events, so each output is a whole number.
    out = np.asarray(fixedprob_test.EventFixedProb(2, 3, 1.0, 1.0, seed=0)(x))
    if peer.patched:
        np.testing.assert_allclose(out, 0.5)
    else:
        np.testing.assert_array_equal(out, np.round(out))
