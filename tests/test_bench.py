"""The benchmark command runs end to end and reports what it measured."""

from __future__ import annotations

import json
import sys

import pytest

import eventlib
from eventlib import bench
from eventlib.bench import cpu_core, scale, sharded

# The end-to-end runs of the benchmark commands (each compiles every method it
# measures) run in the newest environment only: the benchmarks are run there,
# against the peer, which needs Python 3.12. The library code they call is
# tested in both environments by the other test files.
end_to_end = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="benchmark commands run end to end in the Python 3.12 environment"
)


@end_to_end
def test_quick_run(tmp_path, capsys):
    """A smoke run writes the JSON, table and figure, every method of every
    case has a time, and every result is within float32 rounding of float64."""
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--no-peer", "--batches", "1", "3", "--rates", "0.05", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["backend"] and result["versions"]["jax"]
    assert result["peer"] is None and "disabled" in result["peer_skipped_because"]
    rows = result["rows"]
    methods = {r["method"] for r in rows}
    assert {"dense (HIGHEST)", "eventlib event_matmul", "eventlib csr_event_matmul"} <= methods
    assert len(rows) == 2 * len(methods)  # two batches, one size, one rate
    for r in rows:
        assert "error" not in r, r
        assert r["ms"] > 0 and r["first_call_s"] > 0 and r["bytes"] > 0
        assert r["speedup_vs_dense"] > 0 and 0 < r["bandwidth_fraction"]
        if "default" not in r["method"]:  # XLA's default precision may be TF32 on GPUs
            assert r["rel_err"] <= 1e-6, r
    assert result["best_dense_read_GBps"] > 0
    assert out.with_suffix(".md").read_text().startswith("| n | batch | rate |")
    assert out.with_suffix(".png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "eventlib event_matmul" in printed and "worst" in printed


def test_which_path_on_other_backends():
    """'auto' means the portable path wherever the kernels are not compiled
    for a supported CUDA GPU; explicit paths are what they say."""
    assert eventlib.which_path(backend="cpu") == "event"
    assert eventlib.which_path(backend="tpu") == "event"
    expected = "kernel" if eventlib.ops.paths.gpu_kernels_supported() else "event"
    assert eventlib.which_path(backend="gpu") == expected
    assert eventlib.which_path("kernel", backend="cpu") == "kernel"  # the interpreter
    with pytest.raises(ValueError, match="path must be one of"):
        eventlib.which_path("fast")


def test_only_selects_methods(tmp_path):
    """``--only`` keeps the methods whose name contains one of the words."""
    out = tmp_path / "bench.json"
    args = ["--quick", "--no-peer", "--batches", "1", "--rates", "0.05", "--only", "csr", "HIGHEST"]
    assert bench.main([*args, "--out", str(out)]) == 0
    methods = {r["method"] for r in json.loads(out.read_text())["rows"]}
    assert methods == {"dense (HIGHEST)", "eventlib csr_event_matmul", "eventlib csr_event_matmul deterministic"}


@end_to_end
def test_scale_script(tmp_path):
    """``benchmarks/scale_gpu.py --quick`` (:mod:`eventlib.bench.scale`) runs every case on this machine:
    procedural equal to stored, the kernel and its deterministic mode equal
    to XLA's scatter, and a table beside the JSON."""
    out = tmp_path / "scale.json"
    scale.run(scale.parse_args(["--quick", "--huge-rates", "0.01", "--big-rates", "0.01", "--out", str(out)]))
    rows = json.loads(out.read_text())["rows"]
    assert {r["case"] for r in rows} == {"procedural 10^10", "procedural vs stored", "stored 10^9"}
    assert all("error" not in r and r["us"] > 0 for r in rows)
    assert [r["same_output_as_stored"] for r in rows if "same_output_as_stored" in r] == [True]
    stored = [r for r in rows if r["case"] == "stored 10^9"]
    assert len(stored) == 3 and all(r["equal_to_xla_scatter"] for r in stored)
    assert "| stored 10^9 | eventlib csr_event_matmul |" in out.with_suffix(".md").read_text()


def test_relaxed_atomics_scoped():
    """Relaxed atomics apply while eventlib's kernels lower, and only then."""
    try:
        from jax._src.pallas.triton import lowering as triton_lowering
    except ImportError:
        pytest.skip("this jax has no Pallas Triton lowering")
    original = triton_lowering._atomic_rmw
    with eventlib.ops._primitive.relaxed_atomics():
        swapped = triton_lowering._atomic_rmw
    assert triton_lowering._atomic_rmw is original
    assert swapped.keywords == {"semantic": triton_lowering.tt_dialect.MemSemantic.RELAXED}
    assert swapped.func is original


@end_to_end
def test_sharded_script(tmp_path):
    """``benchmarks/sharded_gpu.py --quick`` (:mod:`eventlib.bench.sharded`) on the host devices: every case
    runs, one and several devices give the same results, the large case is
    refused on one device only when past int32 positions, and the table
    names the collectives."""
    import jax

    if jax.device_count() < 2:
        pytest.skip("needs two devices")
    out = tmp_path / "sharded.json"
    assert sharded.run(sharded.parse_args(["--quick", "--devices", "1", "2", "--out", str(out)])) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["case"] for r in rows} == {"dense", "csr", "csr-large", "coba", "all-gather"}
    assert all(r["rel_diff_from_first"] <= 1e-6 for r in rows if r["case"] == "dense")
    assert all(r["equal_to_first"] for r in rows if r["case"].startswith("csr"))
    coba = [r for r in rows if r["case"] == "coba"]
    assert [r["devices"] for r in coba] == [1, 2]
    assert all(r["runs_agree"] and r["spikes_equal_to_first"] and r["rate_exc_hz"] > 0 for r in coba)
    # Each step's one collective: an all-gather of the n = 4000 spikes.
    gather = {"op": "all-gather", "dtype": "pred", "shape": [4000], "bytes": 4000}
    assert coba[1]["collectives_per_step"] == [gather]
    assert [r["bytes_gathered_per_step"] for r in coba] == [0, 4000]
    assert "| COBA | 4,000 |" in out.with_suffix(".md").read_text()
    # Past int32 positions one device refuses the stored form (shapes only).
    refused = []
    sharded.bench_csr(None, [1], refused, n=3_000_000, fan=1000, label="csr-large")
    assert refused[0]["synapses"] == 3 * 10**9 and "shard_csr" in refused[0]["refused"]


def test_sharded_block_targets_independent_of_device_count():
    """The benchmark's block-structured connectivity is one matrix whatever
    the number of devices it is split over."""
    import jax
    import numpy as np

    from eventlib import sharding

    if jax.device_count() < 4:
        pytest.skip("needs four devices")
    n, fan = 64, 8
    dense = []
    for d in (1, 2, 4):
        csr = sharded.sharded_block_csr(sharding.post_mesh(d), n_pre=n, n_post=n, fan=fan, seed=3, blocks=4)
        m = np.zeros((n, n), int)
        for k in range(d):
            idx = np.asarray(csr.indices)[k].reshape(n, fan // d) + k * (n // d)
            np.add.at(m, (np.repeat(np.arange(n), fan // d), idx.ravel()), 1)
        dense.append(m)
    assert dense[0].sum() == n * fan
    assert np.array_equal(dense[0], dense[1]) and np.array_equal(dense[0], dense[2])


@end_to_end
def test_cpu_core_quick(tmp_path):
    """``benchmarks/cpu_core.py`` (:mod:`eventlib.bench.cpu_core`) at tiny
    sizes: cases 3 (both layers, batched; cases 1 and 2 run the same code
    at batch 1) and 4 (construction) write rows without errors, results
    equal the float64 references, and nothing is recompiled between rates."""
    out = tmp_path / "cpu_core.json"
    sizes = ["--n-linear", "64", "--n-sparse", "64", "--n-batched", "64", "--batch", "2", "--n-build", "64"]
    timing = ["--min-time", "0", "--min-calls", "2", "--max-calls", "2"]
    argv = ["--quick", "--no-peer", "--cases", "3,4", *sizes, *timing, "--out", str(out)]
    args = cpu_core.parse_args(argv, results=tmp_path)
    assert cpu_core.run(args) == 0
    result = json.loads(out.read_text())
    assert result["meta"]["cases_done"] == ["3", "4"] and result["meta"]["quick"]
    assert not result["peer"]["available"]
    rows = result["rows"]
    assert {r["case"] for r in rows} == {"3a", "3b", "4"}
    assert all("error" not in r for r in rows), [r for r in rows if "error" in r]
    timed = [r for r in rows if "median_ms" in r]
    assert timed and all(r["max_abs_diff"] <= 1e-5 * max(1.0, r["ref_max_abs"]) for r in timed)
    assert not any(r["retraced"] for r in timed)
    assert out.with_suffix(".md").read_text().startswith("# eventlib CPU benchmark (QUICK)")
