"""The benchmark command runs end to end and reports what it measured."""

from __future__ import annotations

import json

import pytest

import eventlib
from eventlib import bench


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
    expected = "kernel" if eventlib.ops._dispatch.gpu_kernels_supported() else "event"
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


def test_scale_script(tmp_path):
    """``benchmarks/scale_gpu.py --quick`` runs every case on this machine:
    procedural equal to stored, the kernel and its deterministic mode equal
    to XLA's scatter, and a table beside the JSON."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "scale_gpu.py"
    spec = importlib.util.spec_from_file_location("scale_gpu", path)
    scale_gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale_gpu)
    out = tmp_path / "scale.json"
    assert scale_gpu.main(["--quick", "--huge-rates", "0.01", "--big-rates", "0.01", "--out", str(out)]) == 0
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
    with eventlib.ops._dispatch.relaxed_atomics():
        swapped = triton_lowering._atomic_rmw
    assert triton_lowering._atomic_rmw is original
    assert swapped.keywords == {"semantic": triton_lowering.tt_dialect.MemSemantic.RELAXED}
    assert swapped.func is original
