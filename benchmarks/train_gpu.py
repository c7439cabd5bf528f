#!/usr/bin/env python
"""Training through eventlib's layers: chapter 05's loop per forced path, and
per-layer forward / backward / Adam-step timings against the dense product.

Runs on whatever device JAX uses (a GPU, or the CPU).

Usage::

    python benchmarks/train_gpu.py train --paths dense kernel event auto --epochs 2   # one process per path
    python benchmarks/train_gpu.py train --paths event --epochs 2 --batch 64 --one     # this process only
    python benchmarks/train_gpu.py layers --batches 1 64 256 --activity 0.01 0.05 0.1 0.3 0.5
    python benchmarks/train_gpu.py grads                                               # event vs dense gradients

``train`` times chapter 05's training loop (``notebooks/05_training_a_snn.ipynb``:
64 -> 128 LIF -> 10 readout, 25 steps, Adam, the per-epoch predictions
included) with ``eventlib.set_default_path(path)``; each path runs in a
fresh process, so each time includes its compilation, as the chapter's
does. ``layers`` times, per layer and batch, the jitted forward product, the
backward pass (the gradients in the weights and the float spikes) and one
Adam step at several activities, for every path and for the plain dense
product ``x @ W`` (``W`` the layer's dense matrix, JAX's default precision),
medians of warm calls. ``grads`` compares the chapter's event-driven
gradients with those of the dense network at JAX's default precision and at
``HIGHEST``. Results: JSON (``--out``), a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import eventlib
from eventlib.bench import harness

N_IN, N_HIDDEN, N_OUT, N_STEPS = 64, 128, 10, 25
PATHS = ("dense", "kernel", "event", "auto")


# -- chapter 05's network and loop ----------------------------------------------


def digits():
    """scikit-learn's digits (1797 images of 64 pixels), split as the chapter
    splits them; a seeded stand-in of the same shape where scikit-learn is
    missing."""
    rng = np.random.default_rng(0)
    try:
        from sklearn.datasets import load_digits

        d = load_digits()
        x_all, y_all = (d.data / 16.0).astype(np.float32), d.target
        source = "sklearn digits"
    except ImportError:
        x_all = rng.random((1797, N_IN), dtype=np.float32) ** 2
        y_all = rng.integers(0, 10, 1797)
        source = "random stand-in (no scikit-learn)"
    order = rng.permutation(len(y_all))
    n_test = 360
    return (x_all[order[n_test:]], y_all[order[n_test:]], x_all[order[:n_test]], y_all[order[:n_test]], source)


def chapter05(seed: int = 0):
    """The chapter's model, loss and training step (brainstate modules)."""
    import brainstate

    decay_hidden, decay_out, slope = float(np.exp(-0.1)), float(np.exp(-0.05)), 10.0

    @jax.custom_jvp
    def spike_fn(v):
        return (v >= 0.0).astype(v.dtype)

    @spike_fn.defjvp
    def _jvp(primals, tangents):
        (v,), (dv,) = primals, tangents
        return spike_fn(v), dv / (1.0 + slope * jnp.abs(v)) ** 2

    def encode(key, x):
        return jax.random.uniform(key, (N_STEPS,) + x.shape) < x

    class SpikingNet(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            init = np.random.default_rng(seed)
            self.fc1 = eventlib.EventFixedProb(
                N_IN,
                N_HIDDEN,
                conn_num=0.5,
                seed=seed,
                conn_weight=lambda shape: init.normal(0.0, 0.25, shape).astype(np.float32),
            )
            self.fc2 = eventlib.EventLinear(
                N_HIDDEN, N_OUT, init.normal(0.0, N_HIDDEN**-0.5, (N_HIDDEN, N_OUT)).astype(np.float32)
            )

        def __call__(self, spikes_in, dense=False):
            def product(layer, x):
                return x.astype(jnp.float32) @ layer.to_dense() if dense else layer(x)

            currents = product(self.fc1, spikes_in)

            def lif(v, current):
                v = decay_hidden * v + current
                s = spike_fn(v - 1.0)
                return v - jax.lax.stop_gradient(s), s

            _, hidden = jax.lax.scan(lif, jnp.zeros(currents.shape[1:]), currents)
            drive = product(self.fc2, hidden)

            def readout(v, current):
                v = decay_out * v + current
                return v, v

            _, pot = jax.lax.scan(readout, jnp.zeros(drive.shape[1:]), drive)
            return pot.mean(axis=0), hidden

    net = SpikingNet()
    params = net.states(brainstate.ParamState)

    def loss_fn(spikes_in, labels, dense=False):
        logits, hidden = net(spikes_in, dense=dense)
        log_p = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1)), (logits, hidden)

    return net, params, loss_fn, encode


def train(epochs: int, batch_size: int) -> dict:
    """Chapter 05's loop (Adam, per-epoch predictions) for ``epochs``: its
    wall time, compilation included, and the final accuracies."""
    import brainstate

    x_train, y_train, x_test, y_test, source = digits()
    net, params, loss_fn, encode = chapter05()
    grad_fn = brainstate.transform.grad(loss_fn, grad_states=params, has_aux=True, return_value=True)
    lr, beta1, beta2, eps = 2e-3, 0.9, 0.999, 1e-8

    @brainstate.transform.jit
    def train_step(key, x, labels, moments, t):
        grads, loss, _ = grad_fn(encode(key, x), labels)
        m, v = moments
        m = {k: beta1 * m[k] + (1 - beta1) * g for k, g in grads.items()}
        v = {k: beta2 * v[k] + (1 - beta2) * g**2 for k, g in grads.items()}
        for k, state in params.items():
            state.value = state.value - lr * (m[k] / (1 - beta1**t)) / (jnp.sqrt(v[k] / (1 - beta2**t)) + eps)
        return loss, (m, v)

    @brainstate.transform.jit
    def predict(key, x):
        logits, hidden = net(encode(key, x))
        return jnp.argmax(logits, axis=-1), hidden.mean()

    key, test_key = jax.random.key(0), jax.random.key(3)
    zeros = {k: jnp.zeros_like(s.value) for k, s in params.items()}
    moments, t, losses = (zeros, dict(zeros)), 0, []
    start = time.perf_counter()
    for epoch in range(epochs):
        perm = np.random.default_rng(100 + epoch).permutation(len(y_train))
        for b in range(len(perm) // batch_size):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            t += 1
            loss, moments = train_step(
                jax.random.fold_in(key, t), jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]), moments, t
            )
            losses.append(float(loss))
        pred_train, _ = predict(jax.random.fold_in(test_key, 1), x_train)
        pred_test, rate = predict(test_key, x_test)
        train_acc = float((np.asarray(pred_train) == y_train).mean())
        test_acc = float((np.asarray(pred_test) == y_test).mean())
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "steps": t,
        "final_loss": losses[-1],
        "train_accuracy": train_acc,
        "test_accuracy": test_acc,
        "hidden_rate": float(rate),
        "data": source,
    }


def grads() -> dict:
    """The chapter's section 5: event-driven vs dense-network gradients on one
    batch, the dense network at JAX's default precision and at HIGHEST."""
    import brainstate

    x_train, y_train, *_ = digits()
    _, params, loss_fn, encode = chapter05()
    spikes_in = encode(jax.random.key(2), jnp.asarray(x_train[:64]))
    labels = jnp.asarray(y_train[:64])
    out = {}
    g_event = brainstate.transform.grad(loss_fn, grad_states=params, has_aux=True)(spikes_in, labels)[0]
    for precision in ("default", "highest"):
        with jax.default_matmul_precision(None if precision == "default" else "highest"):
            fn = brainstate.transform.grad(
                lambda s, y: loss_fn(s, y, dense=True), grad_states=params, has_aux=True
            )  # a new trace per precision
            g_dense = fn(spikes_in, labels)[0]
        for name in g_event:
            a, b = np.asarray(g_event[name], np.float64), np.asarray(g_dense[name], np.float64)
            out[f"{'.'.join(name)} vs dense ({precision})"] = float(np.abs(a - b).max() / np.abs(b).max())
    return out


# -- per-layer timings --------------------------------------------------------------


def layer_cases(seed: int = 0):
    """``(name, n_pre, n_post, fwd(path), dense matrix)`` per layer: the
    chapter's two layers and a larger one of each kind."""
    from eventlib.ops import csr_event_matmul, csr_to_dense, event_matmul

    rng = np.random.default_rng(seed)
    cases = []
    for n_pre, n_post in ((128, 10), (4096, 4096)):
        w = jnp.asarray(rng.normal(0, n_pre**-0.5, (n_pre, n_post)).astype(np.float32))

        def make_linear(path):
            return lambda s, weight: event_matmul(s, weight, path=path)

        cases.append((f"EventLinear {n_pre}x{n_post}", n_pre, n_post, w, make_linear, lambda w: w))
    for n_pre, n_post, p in ((64, 128, 0.5), (4096, 4096, 0.05)):
        layer = eventlib.EventFixedProb(
            n_pre, n_post, conn_num=p, seed=seed, conn_weight=lambda shape: rng.normal(0, 0.1, shape).astype(np.float32)
        )
        indptr, indices, max_row = layer.indptr, layer.indices, layer.max_row
        w = jnp.asarray(layer.weight.value)

        def make(path, indptr=indptr, indices=indices, max_row=max_row, n_post=n_post):
            def fwd(s, weight):
                return csr_event_matmul(s, weight, indptr, indices, n_post, max_row=max_row, path=path)

            return fwd

        def dense(w, indptr=indptr, indices=indices, n_post=n_post):
            return csr_to_dense(w, indptr, indices, n_post)

        cases.append((f"EventFixedProb {n_pre}x{n_post} p={p}", n_pre, n_post, w, make, dense))
    return cases


def _jobs(fwd, n_post):
    """forward, backward and Adam step built on ``fwd(spikes, w)``."""

    def loss(s, w, ct):
        return jnp.sum(fwd(s, w) * ct)

    def forward(s, w, ct):
        return fwd(s, w)

    def backward(s, w, ct):
        return jax.grad(loss, argnums=(0, 1))(s, w, ct)

    def adam(s, w, ct):
        m = v = jnp.zeros_like(w)
        g = jax.grad(loss, argnums=1)(s, w, ct)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        return w - 1e-3 * m / (jnp.sqrt(v) + 1e-8)

    return {"forward": forward, "backward": backward, "adam": adam}


def layers(batches, activities, methods, max_call_s: float = 0.5, save=None) -> list[dict]:
    """The timings (``save(rows)`` is called after each layer and batch, so
    that a run cut short keeps what it measured)."""
    rows = []
    for name, n_pre, n_post, w, make, dense in layer_cases():
        for batch in batches:
            rng = np.random.default_rng(batch)
            inputs = {
                a: [jnp.asarray((rng.random((batch, n_pre)) < a).astype(np.float32)) for _ in range(3)]
                for a in activities
            }
            cts = jnp.asarray(rng.normal(size=(batch, n_post)).astype(np.float32))
            for method in methods:
                if method == "matmul":
                    w_arg = dense(w)
                    fwd = lambda s, w: s @ w  # noqa: E731  JAX's default precision, as a user writes it
                else:
                    w_arg = w
                    fwd = make(method)
                for kind, job in _jobs(fwd, n_post).items():
                    fn = jax.jit(job)
                    t0 = time.perf_counter()
                    jax.block_until_ready(fn(inputs[activities[0]][0], w_arg, cts))
                    compile_s = time.perf_counter() - t0
                    slow = False
                    for a in activities:
                        row = {"layer": name, "batch": batch, "method": method, "kind": kind, "activity": a}
                        if slow:
                            rows.append({**row, "median_ms": None, "note": f"skipped: a call took over {max_call_s} s"})
                            continue
                        call = lambda s, fn=fn, w_arg=w_arg, cts=cts: fn(s, w_arg, cts)  # noqa: E731
                        jax.block_until_ready(call(inputs[a][1]))  # warm
                        t0 = time.perf_counter()
                        jax.block_until_ready(call(inputs[a][2]))
                        if time.perf_counter() - t0 > max_call_s:
                            slow = True
                            stats = harness.time_calls(call, inputs[a], 0.0, 3, 3)
                        else:
                            stats = harness.time_calls(call, inputs[a], 0.05, 10, 100)
                        rows.append({**row, "median_ms": stats["median_ms"], "compile_s": compile_s})
                    harness.log(f"{name} b={batch} {method} {kind}: compile {compile_s:.2f} s")
            if save:
                save(rows)
    return rows


def layer_table(rows) -> str:
    """Ratios to the dense product per (layer, batch, kind, activity)."""
    key = lambda r: (r["layer"], r["batch"], r["kind"], r["activity"])  # noqa: E731
    by = {}
    for r in rows:
        by.setdefault(key(r), {})[r["method"]] = r["median_ms"]
    methods = [m for m in ("matmul", "dense", "auto", "kernel", "event") if any(m in v for v in by.values())]
    head = " | ".join(f"{m} ms" for m in methods)
    lines = [f"| layer | batch | kind | active | {head} | auto / min(dense, matmul) |"]
    lines.append("|" + "---|" * (len(methods) + 5))
    for k, v in by.items():
        base = min(x for x in (v.get("dense"), v.get("matmul")) if x is not None)
        cells = [f"{v[m]:.3f}" if v.get(m) is not None else "-" for m in methods]
        ratio = f"{v['auto'] / base:.2f}" if v.get("auto") is not None else "-"
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]:.0%} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--one", action="store_true", help="run in this process (one path)")
    t.add_argument("--out")
    la = sub.add_parser("layers")
    la.add_argument("--batches", nargs="+", type=int, default=[1, 64, 256])
    la.add_argument("--activity", nargs="+", type=float, default=[0.01, 0.05, 0.1, 0.3, 0.5])
    la.add_argument("--methods", nargs="+", default=["matmul", "dense", "auto", "kernel", "event"])
    la.add_argument("--out")
    g = sub.add_parser("grads")
    g.add_argument("--out")
    args = p.parse_args(argv)

    result = {"environment": harness.environment(), "device": harness.device_name()}
    if args.what == "train" and args.one:
        (path,) = args.paths
        eventlib.set_default_path(path)
        result.update(path=path, which_path=eventlib.which_path(path), **train(args.epochs, args.batch))
        print(json.dumps(result))
        return 0
    if args.what == "train":
        runs = []
        for path in args.paths:
            cmd = [sys.executable, __file__, "train", "--one", "--paths", path, "--epochs", str(args.epochs)]
            cmd += ["--batch", str(args.batch)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                runs.append({"path": path, "error": out.stderr[-3000:]})
            else:
                run = json.loads(out.stdout.strip().splitlines()[-1])
                runs.append({k: v for k, v in run.items() if k != "environment"})
            harness.log(f"train path={path}: {runs[-1].get('seconds', 'failed')}")
            result.update(epochs=args.epochs, batch=args.batch, runs=runs)
            if args.out:  # after each path: a run cut short keeps what it measured
                Path(args.out).write_text(json.dumps(result, indent=1))
        base = next((r["seconds"] for r in runs if r["path"] == "dense" and "seconds" in r), None)
        print("| path | runs as | seconds | / dense | test accuracy |\n|---|---|---|---|---|")
        for r in runs:
            if "seconds" in r:
                ratio = f"{r['seconds'] / base:.2f}" if base else "-"
                print(f"| {r['path']} | {r['which_path']} | {r['seconds']:.2f} | {ratio} | {r['test_accuracy']:.1%} |")
            else:
                print(f"| {r['path']} | failed | - | - | - |")
    elif args.what == "layers":

        def save(rows):
            if args.out:
                Path(args.out).write_text(json.dumps({**result, "rows": rows}, indent=1))

        rows = layers(args.batches, args.activity, args.methods, save=save)
        result.update(rows=rows)
        print(layer_table(rows))
    else:
        result.update(relative_difference=grads())
        for k, v in result["relative_difference"].items():
            print(f"{k}: {v:.2e}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
