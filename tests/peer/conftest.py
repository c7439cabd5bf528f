"""brainstate's own tests of its event layers, run against eventlib's layers.

The peer's test modules ship in its wheel (``brainstate/nn/_event_linear_test.py``,
``brainstate/nn/_event_fixedprob_test.py``). Each ``test_brainstate_*.py`` file
here names one of them in ``PEER_MODULE``; ``PeerModule`` collects that module,
imported from the installed wheel by its dotted name, in place of the stub.

Why this way rather than collecting the wheel's file by path (or ``--pyargs``):
a node whose path lies in site-packages makes pytest load ``brainstate/conftest.py``,
which registers a second ``--run-slow`` option (a usage error next to ours) and
asks for 8 CPU devices after the backend has started; ``--pyargs`` needs an
argument on every command line, so ``pytest tests/`` would not run the peer
suite. Here the node ids stay under ``tests/peer/``, the project's conftest and
ini settings apply, and pytest collects the wheel's module object itself --
classes, parametrization, module fixtures and marks exactly as written there.

While a test in this directory runs (the autouse fixture ``peer_settings``),
every attribute of a ``brainstate*`` module that holds one of brainstate's four
layer classes -- ``brainstate.nn.EventLinear``, the names the test modules import
with ``from brainstate.nn._event_fixedprob import ...``, and so on -- holds
eventlib's class of the same name instead. ``test_patch_live.py`` checks that
the peer tests see eventlib's classes and observe eventlib's behaviour.

``EVENTLIB_PEER_PATCH=0`` runs the same tests against brainstate's own classes,
with ``FAILS_ON_BRAINSTATE`` as the expected failures: the baseline that shows
the settings below are ones under which brainstate passes its own tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import brainevent
import brainstate
import jax
import pytest

import eventlib

LAYER_NAMES = ("EventLinear", "EventFixedProb", "EventFixedNumConn", "FixedNumConn")
# brainstate's classes, read before anything is patched.
BRAINSTATE_LAYERS = {name: getattr(brainstate.nn, name) for name in LAYER_NAMES}
EVENTLIB_LAYERS = {name: getattr(eventlib, name) for name in LAYER_NAMES}
PATCHED = os.environ.get("EVENTLIB_PEER_PATCH", "1") != "0"

# ---------------------------------------------------------------------------------------------
# The one list of expected failures, per installed brainstate version: test id (the wheel's
# file name, then the node id inside it) -> (the exception the test fails with, reason). Each
# entry becomes xfail(strict=True, raises=...): a test that starts passing fails the run (remove
# its entry), so does one that fails with another exception, and an entry naming no test of the
# installed wheel is a collection error, so the list cannot rot. Reasons say which kind:
#   "difference: ..."   a deliberate difference (README, "Where eventlib differs from brainstate",
#                       or the project's rule that bad input raises a ValueError naming it);
#   "internals: ..."    the test reads brainstate's internals, which eventlib does not have;
#   "eventlib bug: ..." a bug; remove the entry when its fix lands.
# brainstate 0.5.4 and 0.6.0 ship the same two test modules, with the same results.
# ---------------------------------------------------------------------------------------------
_FP = "_event_fixedprob_test.py::"
_Failed = pytest.fail.Exception  # what pytest.raises raises when nothing was raised
_NO_CONN = "internals: builds its reference from brainstate's (n_pre, conn_num) index array .conn.indices"
_ASSERTS = "difference: eventlib raises a ValueError naming the argument where brainstate asserts"
_FAN_IN = "difference: efferent_target='pre' is eventlib's fixed fan-in (the default); brainstate refuses it"
_NO_PRE_SELECTED = "internals: reads brainstate's .pre_selected row mask (eventlib stores only the synapses)"
_BOTH_VERSIONS = {
    _FP + "TestFixedProbCSR::test_vjp[True]": (AttributeError, _NO_CONN),
    _FP + "TestFixedProbCSR::test_vjp[False]": (AttributeError, _NO_CONN),
    _FP + "TestFixedProbCSR::test_jvp[True]": (AttributeError, _NO_CONN),
    _FP + "TestFixedProbCSR::test_jvp[False]": (AttributeError, _NO_CONN),
    _FP + "TestEventFixedProbAlias::test_event_update_matches_dense_reference": (AttributeError, _NO_CONN),
    _FP + "TestEventFixedProbAlias::test_alias_identity": (
        AssertionError,
        "difference: EventFixedProb (independent pairs) and EventFixedNumConn (fixed count) are two classes",
    ),
    _FP + "TestFixedNumConnConstruction::test_float_conn_num_post_uses_out_size": (
        AssertionError,
        "difference: layer.conn_num is the argument as given (0.25); brainstate stores the count it builds "
        "(int(40 * 0.25)); README, 'Where eventlib differs from brainstate'",
    ),
    _FP + "TestFixedNumConnConstruction::test_invalid_efferent_target_raises": (ValueError, _ASSERTS),
    _FP + "TestFixedNumConnConstruction::test_afferent_ratio_out_of_range_raises": (ValueError, _ASSERTS),
    _FP + "TestFixedNumConnConstruction::test_float_conn_prob_out_of_range_raises": (ValueError, _ASSERTS),
    _FP + "TestFixedNumConnConstruction::test_afferent_ratio_post_csr_branch": (AttributeError, _NO_PRE_SELECTED),
    _FP + "TestFixedNumConnConstruction::test_afferent_ratio_pre_selected_respects_seed": (
        AttributeError,
        _NO_PRE_SELECTED,
    ),
    _FP + "TestFixedNumConnConstruction::test_afferent_ratio_pre_selected_differs_across_seeds": (
        AttributeError,
        _NO_PRE_SELECTED,
    ),
    _FP + "TestFixedNumConnEfferentTargetPreGuard::test_efferent_target_pre_raises_not_implemented": (
        _Failed,
        _FAN_IN,
    ),
    _FP + "TestFixedNumConnEfferentTargetPreGuard::test_efferent_target_pre_afferent_ratio_raises_not_implemented": (
        _Failed,
        _FAN_IN,
    ),
    _FP + "TestFixedNumConnEfferentTargetPreGuard::test_efferent_target_pre_square_also_guarded": (_Failed, _FAN_IN),
}
EXPECTED_FAILURES: dict[str, dict[str, tuple[type[BaseException], str]]] = {
    "0.5.4": _BOTH_VERSIONS,
    "0.6.0": _BOTH_VERSIONS,
}

# Tests that fail on brainstate's own classes under the settings of ``peer_settings``
# (EVENTLIB_PEER_PATCH=0), in the project's environments.
FAILS_ON_BRAINSTATE: dict[str, dict[str, tuple[type[BaseException], str]]] = {
    "0.5.4": {
        "_event_linear_test.py::TestEventLinear::test_homogeneous_matches_dense_nonbinary[True]": (
            AssertionError,
            "brainevent 0.2.1's jax_raw CPU kernel (numba is not installed here) for EventArray @ weight "
            "multiplies float spikes by their values (16.5, not the 6.0 of counting that the test expects)",
        ),
    },
    "0.6.0": {},
}


def _expected(version: str) -> dict[str, tuple[type[BaseException], str]]:
    table = EXPECTED_FAILURES if PATCHED else FAILS_ON_BRAINSTATE
    if version not in table:
        raise pytest.UsageError(
            f"tests/peer/conftest.py has no expected-failure list for brainstate {version} "
            f"({'patched' if PATCHED else 'unpatched'} run): run tests/peer and classify its failures"
        )
    return table[version]


def _test_id(item) -> str:
    """``<wheel file name>::<node id inside the module>``, the key of the expected-failure lists."""
    module = item.getparent(pytest.Module)
    return f"{Path(module.obj.__file__).name}::{item.nodeid.split('::', 1)[1]}"


class PeerModule(pytest.Module):
    """A ``tests/peer`` module; where the file names a ``PEER_MODULE``, the
    installed wheel's module of that name is collected in its place."""

    _peer: str | None = None  # the wheel module's dotted name, once the stub is imported

    def _getobj(self):
        stub = super()._getobj()
        self._peer = getattr(stub, "PEER_MODULE", None)
        if self._peer is None:
            return stub
        return importlib.import_module(self._peer)

    def collect(self):
        obj = self.obj  # imports; sets self._peer
        if self._peer is None:
            return super().collect()
        # Expand a throwaway copy of the tree into items, to check the list against every test
        # of the module whatever -k or a node id selects afterwards.
        ids = set()
        stack = list(super().collect())
        while stack:
            node = stack.pop()
            if isinstance(node, pytest.Item):
                ids.add(_test_id(node))
            else:
                stack.extend(node.collect())
        name = Path(obj.__file__).name
        files = {key.split("::", 1)[0] for key in _expected(brainstate.__version__)}
        listed = {key for key in _expected(brainstate.__version__) if key.split("::", 1)[0] == name}
        # Entries for the other peer modules are checked when those are collected; entries for a
        # file the wheel does not have are checked here.
        stale = sorted(listed - ids) + sorted(f for f in files if not (Path(obj.__file__).parent / f).is_file())
        if stale:
            raise pytest.UsageError(
                f"tests/peer/conftest.py lists tests that brainstate {brainstate.__version__}'s {name} "
                f"does not have: {stale}"
            )
        return super().collect()


def pytest_pycollect_makemodule(module_path, parent):
    """Every module under tests/peer is a ``PeerModule`` (``module_path``: its file)."""
    return PeerModule.from_parent(parent, path=module_path)


def pytest_collection_modifyitems(config, items):
    """Marks the peer modules' tests (among ``items``): eventlib's empty-layer warning
    ignored, and the expected failures of the installed brainstate as strict xfails."""
    expected = None
    for item in items:
        module = item.getparent(pytest.Module)
        if not isinstance(module, PeerModule) or module._peer is None:
            continue
        if expected is None:
            expected = _expected(brainstate.__version__)
        # README: "a UserWarning when no synapse exists", where brainstate builds a silent empty
        # layer. It is eventlib's documented answer, so it fails no peer test.
        item.add_marker(pytest.mark.filterwarnings("ignore:.*realised no synapse at all:UserWarning"))
        entry = expected.get(_test_id(item))
        if entry is not None:
            raises, reason = entry
            item.add_marker(pytest.mark.xfail(reason=reason, raises=raises, strict=True))


def pytest_report_header(config):
    """Which brainstate's tests run, and against which classes."""
    where = Path(brainstate.__file__).parent
    against = "eventlib's layers patched in" if PATCHED else "brainstate's own layers (EVENTLIB_PEER_PATCH=0)"
    return f"peer suite: brainstate {brainstate.__version__} tests from {where}, run against {against}"


def _patch_targets():
    """(module, attribute, eventlib class) for every attribute of a loaded
    ``brainstate*`` module -- the peer's test modules included -- that holds
    one of brainstate's layer classes."""
    originals = {id(cls): cls for cls in BRAINSTATE_LAYERS.values()}
    targets = []
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "brainstate" or module_name.startswith("brainstate.")):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, type) and originals.get(id(value)) is value:
                # brainstate's EventFixedProb is its EventFixedNumConn: the name says which is meant.
                name = attr if attr in EVENTLIB_LAYERS else value.__name__
                targets.append((module, attr, EVENTLIB_LAYERS[name]))
    return targets


@pytest.fixture
def peer():
    """What the patch-live checks compare against: whether eventlib is patched
    in, and brainstate's and eventlib's layer classes by name."""
    return SimpleNamespace(
        patched=PATCHED, layer_names=LAYER_NAMES, brainstate=BRAINSTATE_LAYERS, eventlib=EVENTLIB_LAYERS
    )


@pytest.fixture(autouse=True)
def peer_settings(monkeypatch):
    """The settings brainstate's own conftest gives its tests -- ``brainstate.random``
    seeded with 0 before each test, JAX's default (standard) dtype promotion and
    rank promotion instead of the project's strict ones -- and, unless
    ``EVENTLIB_PEER_PATCH=0``, eventlib's layers in place of brainstate's."""
    brainstate.random.seed(0)
    if PATCHED:
        for module, attr, cls in _patch_targets():
            monkeypatch.setattr(module, attr, cls)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


@pytest.fixture(scope="module", autouse=True)
def brainevent_cpu_backend():
    """brainevent's CPU kernels default to numba, which the oldest environment
    does not install; there brainstate's own layers could not run at all. Where
    numba is missing, every brainevent primitive that has a pure-JAX CPU kernel
    (``'jax_raw'``) uses it for the module's tests, and gets its default back after."""
    if importlib.util.find_spec("numba") is not None:
        yield
        return
    saved = []
    for primitive in brainevent.get_registry().values():
        default = primitive.get_default("cpu")
        try:
            primitive.set_default("cpu", "jax_raw")
        except ValueError:  # no CPU kernel, or no pure-JAX one
            continue
        saved.append((primitive, default))
    yield
    for primitive, default in saved:
        if default is not None:
            primitive.set_default("cpu", default)
