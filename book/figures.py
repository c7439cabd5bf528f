"""Draw the benchmark figures of the book from the committed results.

    python book/figures.py      # writes book/_static/cpu_core.png and benchmarks/results/gpu_h200.png

Reads benchmarks/results/cpu_core.json (written by benchmarks/cpu_core.py) and
benchmarks/results/gpu_h200.json (written by ``python -m eventlib.bench``, which draws the same GPU
figure beside it); rerun after the benchmark results change, and commit both. Both figures use the
book's style (``eventlib.plotting``): drawn at the width the page shows them, so their text is read
at the size it is set.
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from eventlib.bench.operators import plot as plot_gpu  # noqa: E402
from eventlib.plotting import book_style_rc, new_figure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CPU_RESULTS = RESULTS / "cpu_core.json"
CPU_OUT = ROOT / "book" / "_static" / "cpu_core.png"
GPU_RESULTS = RESULTS / "gpu_h200.json"
GPU_OUT = RESULTS / "gpu_h200.png"

PANELS = [  # (case, title, methods as (name in the results, label, style))
    (
        "1",
        "EventLinear (dense weight)",
        [
            ("dense s@W", "dense product", "k--"),
            ("eventlib EventLinear (layer)", "eventlib", "C0o-"),
            ("peer EventLinear (layer)", "brainstate + brainevent", "C1s-"),
        ],
    ),
    (
        "2",
        "EventFixedProb (p = 0.05)",
        [
            ("dense s@M", "dense product", "k--"),
            ("eventlib EventFixedProb (layer)", "eventlib", "C0o-"),
            ("peer EventFixedProb (layer)", "brainstate + brainevent", "C1s-"),
        ],
    ),
]


def draw_cpu() -> None:
    data = json.loads(CPU_RESULTS.read_text())
    rates = data["rates"]
    with plt.rc_context(book_style_rc()):
        fig, axes = new_figure(1, 2, height=3.8, sharey=True)
        for ax, (case, title, methods) in zip(axes, PANELS, strict=True):
            for method, label, style in methods:
                by_rate = {
                    r["rate"]: r["median_ms"] for r in data["rows"] if r["case"] == case and r["method"] == method
                }
                xs = [100 * rate for rate in rates if rate in by_rate]
                ys = [by_rate[rate] for rate in rates if rate in by_rate]
                ax.plot(xs, ys, style, label=label)
            ax.set(xscale="log", yscale="log", title=title, xlabel="active inputs [%]")
            ax.grid(True, which="major", alpha=0.3)
        axes[0].set_ylabel("time per call [ms]")
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
        meta = data["meta"]
        first = next(r for r in data["rows"] if r["case"] == PANELS[0][0])
        fig.suptitle(f"n = {first['n_pre']}, batch {first['batch']}; {meta['cpu_model']}, {meta['cpu_count']} cores")
        fig.savefig(CPU_OUT)
    plt.close(fig)
    print(f"wrote {CPU_OUT}")


def draw_gpu() -> None:
    plot_gpu(json.loads(GPU_RESULTS.read_text()), GPU_OUT)
    print(f"wrote {GPU_OUT}")


def main() -> None:
    draw_cpu()
    draw_gpu()


if __name__ == "__main__":
    main()
