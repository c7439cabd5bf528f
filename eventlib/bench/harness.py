"""What every benchmark shares: the timing loop, the environment record, the
optional peer (brainstate >= 0.6 with brainevent >= 0.3) and the
description of one measured method."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from .. import __version__

__all__ = [
    "Method",
    "Progress",
    "call_times",
    "cpu_model",
    "device_name",
    "environment",
    "load_peer",
    "log",
    "major_minor",
    "median_seconds",
    "time_calls",
    "timed",
    "version",
    "versions",
]

DISTRIBUTIONS = ("eventlib", "jax", "jaxlib", "numpy", "brainstate", "brainevent", "brainunit", "saiunit", "braintools")


@dataclasses.dataclass
class Method:
    """One measured way of computing a product.

    Args:
        name: the label in tables and result files.
        family: what it is compared within: ``'dense'`` or ``'sparse'`` (the
            matrix it multiplies) in ``python -m eventlib.bench``, the library
            (``'dense'``, ``'eventlib'``, ``'peer'``, ``'jax.sparse'``) in the
            CPU benchmark.
        fn: ``fn(spikes, *operands)``, for methods timed in one compiled
            program (:func:`eventlib.bench.operators.measure`).
        operands: the arrays passed to ``fn`` as arguments (never closed over:
            a closed-over array becomes a constant of the program).
        note: a remark for the report.
        build: ``build() -> (call, bytes_held)``, for methods built only when
            measured (the CPU benchmark); ``call(spikes)`` is compiled.
        reference: ``reference(spikes) -> expected output`` (float64, host).
        wrapper: how ``call`` is compiled, for the report.
        counter: a one-element list counting traces of ``call``.
    """

    name: str
    family: str
    fn: Callable | None = None
    operands: tuple = ()
    note: str = ""
    build: Callable[[], tuple[Callable, int]] | None = None
    reference: Callable[[np.ndarray], np.ndarray] | None = None
    wrapper: str = "jax.jit"
    counter: list = dataclasses.field(default_factory=lambda: [0])


# -- timing ----------------------------------------------------------------------


def call_times(call, inputs: Sequence, *, min_calls: int, min_time: float = 0.0, max_calls: int | None = None):
    """Wall seconds of single calls of ``call(x)``, each waited for, cycling
    through ``inputs``: at least ``min_calls`` calls and ``min_time``
    seconds, at most ``max_calls`` calls. ``call`` must already be compiled.

    Args:
        call: a function of one input; its result is waited for.
        inputs: the inputs, used in turn.
        min_calls: calls at least.
        min_time: seconds of calls at least (0: ``min_calls`` decides).
        max_calls: calls at most (None: no limit but ``min_time``).

    Returns:
        a NumPy array of the per-call times in seconds.
    """
    times = []
    start = time.perf_counter()
    while True:
        x = inputs[len(times) % len(inputs)]
        t0 = time.perf_counter()
        jax.block_until_ready(call(x))
        times.append(time.perf_counter() - t0)
        if max_calls is not None and len(times) >= max_calls:
            break
        if len(times) >= min_calls and time.perf_counter() - start >= min_time:
            break
    return np.asarray(times)


def median_seconds(fn, *args, reps: int) -> float:
    """Median wall time of ``reps`` calls of ``fn(*args)``, each waited for;
    ``fn`` must already be compiled and warm.

    Args:
        fn: the compiled function.
        *args: its arguments, the same on every call.
        reps: the number of timed calls.
    """
    return statistics.median(call_times(lambda _: fn(*args), [None], min_calls=reps, max_calls=reps).tolist())


def time_calls(call, inputs: Sequence, min_time: float, min_calls: int, max_calls: int) -> dict:
    """:func:`call_times` summarised in milliseconds: ``calls``,
    ``median_ms``, ``p10_ms``, ``p90_ms``, ``min_ms``.

    Args:
        call, inputs, min_time, min_calls, max_calls: as for :func:`call_times`.
    """
    ms = call_times(call, inputs, min_calls=min_calls, min_time=min_time, max_calls=max_calls) * 1e3
    return {
        "calls": int(ms.size),
        "median_ms": float(np.median(ms)),
        "p10_ms": float(np.percentile(ms, 10)),
        "p90_ms": float(np.percentile(ms, 90)),
        "min_ms": float(ms.min()),
    }


def timed(fn):
    """``(fn(), seconds)``: one call of ``fn`` with no arguments, waited for."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t0


def log(msg: str, file=None) -> None:
    """``msg`` with the time of day, on stderr (or ``file``), flushed."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=file or sys.stderr, flush=True)


class Progress:
    """Progress on stderr: a tqdm bar when tqdm is importable (it is never a
    dependency), else one line per step.

    Args:
        total: the number of steps.
        desc: what is counted, shown before the count.
    """

    def __init__(self, total: int, desc: str = ""):
        self.total, self.done, self.desc = total, 0, desc
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False) if tqdm else None

    def step(self, label: str) -> None:
        """One step done; ``label`` says which."""
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(label[:60])
            self.bar.update(1)
        else:
            print(f"  [{self.desc} {self.done}/{self.total}] {label}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Removes the bar."""
        if self.bar is not None:
            self.bar.close()


# -- environment -----------------------------------------------------------------


def version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def major_minor(v: str | None) -> tuple[int, int]:
    """``(major, minor)`` of a version string (zeros where missing)."""
    nums = [int(x) for x in re.findall(r"\d+", v or "")[:2]]
    return tuple(nums + [0] * (2 - len(nums)))  # type: ignore[return-value]


def versions(dists: Sequence[str] = DISTRIBUTIONS) -> dict:
    """Python's version, the imported eventlib's, and each of ``dists``
    (None where not installed)."""
    out = {"python": platform.python_version(), "eventlib (imported)": __version__}
    out.update({dist: version(dist) for dist in dists})
    return out


def device_name() -> str:
    """``'<platform>: <device kind>'`` of JAX's first device."""
    device = jax.devices()[0]
    return f"{device.platform}: {getattr(device, 'device_kind', '') or platform.processor() or platform.machine()}"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` where there is one)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args) -> str | None:
    root = Path(__file__).resolve().parent.parent.parent
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment(dists: Sequence[str] = DISTRIBUTIONS, env_vars: Sequence[str] = ("XLA_FLAGS", "JAX_PLATFORMS")) -> dict:
    """Where and with what a benchmark ran: the command, the UTC date, the
    CPU, JAX's backend and devices, the environment variables ``env_vars``,
    the versions of ``dists`` and eventlib's git commit (with whether its
    sources differ from it). Each script keeps the fields its result files
    have always had.

    Args:
        dists: the distributions whose versions are recorded.
        env_vars: the environment variables recorded.
    """
    try:
        usable = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        usable = list(range(os.cpu_count() or 1))
    commit = _git("rev-parse", "HEAD")
    return {
        "command": shlex.join([sys.executable, *sys.argv]),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(usable),
        "cores_used": usable,
        "platform": platform.platform(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_device_kinds": [f"{d} ({d.device_kind})" for d in jax.devices()],
        "env": {k: os.environ.get(k) for k in env_vars},
        "versions": versions(dists),
        "git_commit": commit,
        "eventlib_dirty": bool(_git("status", "--porcelain", "--", "eventlib")) if commit else None,
    }


def load_peer(disabled: bool = False):
    """``(brainevent, None)`` when the peer (brainstate >= 0.6 with
    brainevent >= 0.3) can run here, else ``(None, why not)``. On the CPU
    the peer's kernels need numba as well.

    Args:
        disabled: True skips the peer (``--no-peer``).
    """
    if disabled:
        return None, "disabled with --no-peer"
    bs_v, be_v = version("brainstate"), version("brainevent")
    if be_v is None:
        return None, "brainevent is not installed (the peer needs brainstate>=0.6 + brainevent>=0.3, Python>=3.12)"
    if major_minor(bs_v) < (0, 6) or major_minor(be_v) < (0, 3):
        return None, (
            f"installed brainstate {bs_v} / brainevent {be_v}; the peer measured here is "
            "brainstate>=0.6 + brainevent>=0.3 (Python>=3.12)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # brainstate 0.6 uses deprecated brainevent names
            import brainevent

            if jax.default_backend() == "cpu":
                import numba  # noqa: F401  (brainevent's CPU backend)
    except Exception as exc:  # noqa: BLE001 - any failure means no peer, and the reason is reported
        return None, f"peer import failed: {type(exc).__name__}: {exc}"
    return brainevent, None
