"""Shared configuration for the eventlib test suite.

Strict JAX numerics (no implicit rank or dtype promotion, no x64), a
``--run-slow`` flag for the tests marked ``slow``, a reproducible hypothesis
profile, seeded random generators, four host CPU devices, and the interpreter
twins of the tests marked ``kernel_twin``.

Markers (registered in pyproject.toml):

* ``kernel_twin(where=None)``: the test runs twice, under the default path
  ``'auto'`` and under ``'kernel'`` (the Pallas kernels: compiled on a
  supported GPU, the Pallas interpreter on CPU). ``where(**params)``, when
  given, picks the parameter sets whose kernel twin runs: the interpreter is
  slow, so the twins are a representative subset (every kernel function and
  branch, awkward sizes), not every case.
* ``kernel``: set on every test that runs the kernels (a ``kernel`` twin, or a
  ``path='kernel'`` parameter), so ``-m "not kernel"`` is a quick run.
"""

from __future__ import annotations

import os
import sys
import zlib

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Four CPU host devices for the sharding tests. It must be set before the
# backend starts, so before anything below computes with JAX.
jax.config.update("jax_num_cpu_devices", 4)

# Implicit broadcasting between arrays of different rank, and implicit dtype
# promotion (bool with int, int with float, ...), hide shape and dtype bugs.
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

# The default profile keeps the suite within a few minutes on two cores;
# HYPOTHESIS_PROFILE=thorough runs ten times as many examples.
settings.register_profile(
    "eventlib",
    derandomize=True,  # the same examples on every run and machine
    database=None,
    deadline=None,  # first calls compile
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("eventlib"), max_examples=250)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "eventlib"))


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_generate_tests(metafunc):
    # A test marked ``kernel_twin`` runs twice: as users call it (the default
    # path 'auto') and with 'auto' sent to the Pallas kernels (compiled on a
    # supported GPU, run by the Pallas interpreter on CPU).
    if metafunc.definition.get_closest_marker("kernel_twin") is not None:
        metafunc.parametrize("default_path", ["auto", pytest.param("kernel", marks=pytest.mark.kernel)], indirect=True)


def _params(item) -> dict:
    callspec = getattr(item, "callspec", None)
    return callspec.params if callspec else {}


def pytest_collection_modifyitems(config, items):
    # The interpreter twin of a ``kernel_twin(where=...)`` test runs only for
    # the parameter sets ``where`` accepts: a representative subset (every
    # kernel and branch, awkward sizes) of the cases the portable path runs.
    keep, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("kernel_twin")
        where = marker.kwargs.get("where") if marker else None
        params = _params(item)
        if where is not None and params.get("default_path") == "kernel" and not where(**params):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    for item in items:
        if "kernel" in (_params(item).get("default_path"), _params(item).get("path")):
            item.add_marker(pytest.mark.kernel)
    # Each module's kernel twins after its other tests: the default path
    # (and with it jax's caches, see ``default_path``) changes twice per module.
    order = {}
    for item in items:
        order.setdefault(item.path, len(order))
    items.sort(key=lambda item: (order[item.path], _params(item).get("default_path") == "kernel"))
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng(request):
    """A NumPy generator seeded from the test's id: reproducible, and
    independent between tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def restore_default_path():
    """Restores eventlib's process-wide default path after the test."""
    import eventlib

    saved = eventlib.ops.get_default_path()
    yield
    eventlib.set_default_path(saved)


@pytest.fixture(autouse=True)
def default_path(request):
    """eventlib's process-wide default path for the test: ``'auto'``, or
    ``'kernel'`` for the interpreter twin of a test marked ``kernel_twin``.

    The default path is read when a function is traced, so jax's caches are
    cleared whenever the default changes between two tests (traces cached
    under the other default must not be reused). Collection puts a module's
    kernel twins after its other tests, so this happens about twice per
    module rather than per test."""
    want = getattr(request, "param", "auto")
    eventlib = sys.modules.get("eventlib")
    if eventlib is None and want == "auto":
        return want  # not imported yet, so still at its initial default
    import eventlib

    if eventlib.ops.get_default_path() != want:
        eventlib.set_default_path(want)
        jax.clear_caches()
    return want
