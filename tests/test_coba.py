"""The network of eventlib.bench.coba at a tiny size: it spikes, every
event-driven formulation gives the spikes of the dense product, and the rates
are computed from the spikes it made. No timing."""

from __future__ import annotations

import numpy as np
import pytest

from eventlib.bench import coba as coba_module


@pytest.fixture(scope="module")
def coba():
    return coba_module


N, SEED, DURATION = 200, 3, 0.03


def run(coba, p, synapses, conn):
    state = coba.initial_state(p, SEED)
    _, counts, raster = coba.simulate(p, synapses, conn, state, n_steps=p.steps(DURATION), record=True)
    return np.asarray(counts), np.asarray(raster)


@pytest.fixture(scope="module")
def dense_run(coba):
    # Dyadic jumps (multiples of 1/4): every conductance sum is exact in
    # float32 in any order, so the spikes must agree exactly.
    p = coba.Coba(n=N, w_e=6.25, w_i=66.75)
    return p, run(coba, p, *coba.dense_synapses(p, SEED))


@pytest.mark.parametrize("formulation", ["fused", "layers"])
def test_event_spikes_equal_dense(coba, dense_run, formulation):
    p, (dense_counts, dense_raster) = dense_run
    counts, raster = run(coba, p, *coba.event_synapses(p, SEED, formulation))
    assert raster.shape == (p.steps(DURATION), N) and raster.dtype == np.bool_
    np.testing.assert_array_equal(raster, dense_raster)
    np.testing.assert_array_equal(counts, dense_counts)


def test_network_spikes_and_synapses_matter(coba, dense_run):
    p, (counts, raster) = dense_run
    # Both populations fire (how much depends on the drawn connectivity).
    assert raster[:, : p.n_exc].sum() > 5 and raster[:, p.n_exc :].sum() > 5
    _, alone = run(coba, p, coba.NoSynapses(N), {})
    assert alone.any(axis=0).all()  # the drive alone brings every neuron to threshold within 30 ms
    assert not np.array_equal(raster, alone)  # the recurrent input changes the spikes
    assert alone.sum() > raster.sum()  # and, inhibition-dominated, lowers the rate


def test_refractory_period(coba, dense_run):
    p, (_, raster) = dense_run
    for neuron in range(N):
        gaps = np.diff(np.flatnonzero(raster[:, neuron]))
        assert (gaps >= p.refractory_steps).all()


def test_rates_from_counts(coba, dense_run):
    p, (counts, raster) = dense_run
    assert counts.tolist() == [int(raster[:, : p.n_exc].sum()), int(raster[:, p.n_exc :].sum())]
    rates = coba.rates_hz(p, counts, DURATION)
    assert rates["exc"] == pytest.approx(raster[:, : p.n_exc].sum() / (p.n_exc * DURATION), rel=1e-12)
    assert rates["inh"] == pytest.approx(raster[:, p.n_exc :].sum() / (p.n_inh * DURATION), rel=1e-12)
    assert rates["all"] == pytest.approx(raster.sum() / (N * DURATION), rel=1e-12)
    # a known case: 4 excitatory and 1 inhibitory spike in 0.5 s of 10 neurons (8 E, 2 I)
    assert coba.rates_hz(coba.Coba(n=10), [4, 1], 0.5) == {"exc": 1.0, "inh": 1.0, "all": 1.0}


def test_connectivity_size(coba):
    p = coba.Coba(n=N)
    _, conn = coba.event_synapses(p, SEED, "fused")
    n_syn = conn["indices"].shape[0]
    assert abs(n_syn - 80 * N) < 6 * np.sqrt(80 * N)  # Binomial(N * N, 80 / N)
    assert int(np.asarray(conn["indices"]).max()) < 2 * N


def test_peer_runs(coba):
    p = coba.Coba(n=N)
    try:
        net = coba.make_peer(p, SEED)
    except ImportError as e:  # brainstate < 0.6 or no brainevent
        pytest.skip(str(e))
    import jax.numpy as jnp

    counts = np.asarray(coba.peer_runner(net, 1)(jnp.arange(p.steps(DURATION), dtype=jnp.int32)))
    assert counts[0] > 10 and counts[1] > 10


def test_benchmark_run(coba, tmp_path):
    """``benchmarks/coba.py``'s run at a tiny size writes its JSON and table:
    every formulation and the neurons alone, the best one marked, the
    environment recorded."""
    import json

    out = tmp_path / "coba.json"
    args = coba.parse_args(["--sizes", "200", "--duration", "0.02", "--unrolls", "1", "--no-peer"])
    args.neurons_only, args.out = True, out
    rows, checks = coba.run(args, brian_script=tmp_path / "unused.py")
    assert checks == []
    result = json.loads(out.read_text())
    assert [r["variant"] for r in result["rows"]] == ["fused, unroll 1", "layers, unroll 1", "unroll 1"]
    assert sum(bool(r.get("best_for_size")) for r in result["rows"]) == 1
    assert result["environment"]["versions"]["eventlib"] and result["environment"]["seed"] == 1
    assert "| eventlib | fused, unroll 1 | 200 |" in out.with_suffix(".md").read_text()
    assert coba.table(rows).startswith("| simulator |")
