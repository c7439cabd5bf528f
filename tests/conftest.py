"""Shared configuration for the eventlib test suite.

Strict JAX numerics (no implicit rank or dtype promotion, no x64), a
``--run-slow`` flag for the tests marked ``slow``, a reproducible hypothesis
profile, seeded random generators, and four host CPU devices.
"""

from __future__ import annotations

import os
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


def pytest_collection_modifyitems(config, items):
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


@pytest.fixture(scope="module", params=["auto", "kernel"])
def default_path_twin(request):
    """Runs every test of a module twice: once as users call it (``'auto'``),
    once with ``'auto'`` sent to the Pallas kernels -- compiled on a
    supported GPU, run by the Pallas interpreter everywhere else."""
    import eventlib

    saved = eventlib.ops.get_default_path()
    eventlib.set_default_path(request.param)
    # The default path is read when a function is traced: traces cached
    # under the other default must not be reused.
    jax.clear_caches()
    yield request.param
    eventlib.set_default_path(saved)
    jax.clear_caches()
