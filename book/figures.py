"""Draw the benchmark figure of the book from the committed results.

    python book/figures.py      # writes book/_static/cpu_core.png

Reads benchmarks/results/cpu_core.json (written by benchmarks/cpu_core.py);
rerun after the benchmark results change, and commit both.
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cpu_core.json"
OUT = ROOT / "book" / "_static" / "cpu_core.png"

PANELS = [  # (case, title, methods as (name in the results, label, style))
    (
        "1",
        "EventLinear: dense weight, n = 20000",
        [
            ("dense s@W", "dense product", "k--"),
            ("eventlib EventLinear (layer)", "eventlib", "C0o-"),
            ("peer EventLinear (layer)", "brainstate + brainevent", "C1s-"),
        ],
    ),
    (
        "2",
        "EventFixedProb: p = 0.05, n = 20000",
        [
            ("dense s@M", "dense product", "k--"),
            ("eventlib EventFixedProb (layer)", "eventlib", "C0o-"),
            ("peer EventFixedProb (layer)", "brainstate + brainevent", "C1s-"),
        ],
    ),
]


def main() -> None:
    data = json.loads(RESULTS.read_text())
    rates = data["rates"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, (case, title, methods) in zip(axes, PANELS, strict=True):
        for method, label, style in methods:
            by_rate = {r["rate"]: r["median_ms"] for r in data["rows"] if r["case"] == case and r["method"] == method}
            xs = [100 * rate for rate in rates if rate in by_rate]
            ys = [by_rate[rate] for rate in rates if rate in by_rate]
            ax.plot(xs, ys, style, label=label)
        ax.set(xscale="log", yscale="log", title=title, xlabel="active inputs per call [%]")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("time per call [ms], median")
    axes[0].legend(frameon=False)
    meta = data["meta"]
    fig.suptitle(
        f"{meta['cpu_model']}, {meta['cpu_count']} cores, jax {meta['versions']['jax']}, batch 1",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(OUT, dpi=100)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
