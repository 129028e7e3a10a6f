"""Throughput of deep active learning's two inner loops (``make bench-deep``): images per second of

* the TRAINING STEP (forward + backward + Adam, dropout on) of the minibatch fitter, and
* MC-DROPOUT SCORING (K consistent-dropout forward passes over a pool, reduced to BALD),

for one seed, and summed over S seeds run in one program, vmapped or one after another (``lax.map``);
against PyTorch on the same device (CUDA when JAX computes on a GPU and torch sees one, else the CPU)
with the same network (the Gal 2017 CNN, ``cnn_gal2017``) and batch size, if torch is importable
(``pip install -e '.[bench]'``; torch is not a dependency of aljax). From those rates, the seconds
per seed of one full-size round of the Gal protocol (:func:`gal_round`). Numbers go to stdout and to
``--out`` (default results/bench-deep/): ``bench_deep.json`` (with the command and the machine kind) and
``report.md`` (the table and the command that reproduces it). ``--quick``: small sizes, a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # torch shares the GPU: JAX takes memory as needed

import jax
import jax.numpy as jnp
import numpy as np
import optax

import provenance
from aljax import bayesian, forward
from aljax.atomic import write_text
from aljax.fit import softmax_xent
from aljax.models import make_model

SHAPE = (28, 28, 1)


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` (blocked) over ``repeats`` calls, after one warm-up (compilation)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def batched(run, seeds: int, layout: str):
    """``run(key)`` jitted over ``seeds`` keys: vmapped, or one after another (``lax.map``, the CPU
    schedule for convolutional models); ``seeds=0``: one seed, no batching."""
    if not seeds:
        return jax.jit(lambda k: run(k[0]))
    return jax.jit(jax.vmap(run) if layout == "vmap" else lambda k: jax.lax.map(run, k))


def jax_train(spec: str, batch: int, seeds: int, steps: int, repeats: int, layout: str = "vmap") -> float:
    """Images/s of ``steps`` scanned training steps, summed over ``seeds`` seeds batched by ``layout``
    (0: one seed)."""
    model = make_model(spec, 10)
    opt = optax.adam(1e-3)
    x = jax.random.uniform(jax.random.key(0), (batch, *SHAPE))
    y = jnp.arange(batch) % 10

    def run(key):
        params = model.init(key, SHAPE)

        def step(carry, k):
            params, state = carry
            grads = jax.grad(lambda p: jnp.mean(softmax_xent(model.apply(p, x, key=k, train=True), y)))(params)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
        return jax.tree.leaves(params)[0]

    keys = jax.random.split(jax.random.key(1), max(seeds, 1))
    fn = batched(run, seeds, layout)
    seconds = timed(lambda: fn(keys), repeats)
    return steps * batch * max(seeds, 1) / seconds


def jax_score(spec: str, pool: int, k: int, seeds: int, chunk: int | None, repeats: int, layout: str = "vmap") -> float:
    """Images/s of BALD over ``pool`` rows with ``k`` consistent MC dropout passes (image = one forward
    pass of one row), summed over ``seeds`` seeds batched by ``layout`` (0: one seed)."""
    model = make_model(spec, 10)
    x = jax.random.uniform(jax.random.key(0), (pool, *SHAPE))

    def run(key):
        params = model.init(key, SHAPE)
        logits = forward.mc_dropout_logits(model, params, x, key, k, chunk=chunk)
        return jax.vmap(bayesian.bald, in_axes=1)(logits)

    keys = jax.random.split(jax.random.key(1), max(seeds, 1))
    fn = batched(run, seeds, layout)
    seconds = timed(lambda: fn(keys), repeats)
    return pool * k * max(seeds, 1) / seconds


def torch_numbers(batch: int, steps: int, pool: int, k: int, repeats: int) -> dict | None:
    """The same CNN in PyTorch (eager) on JAX's kind of device: CUDA (``cudnn.benchmark``) when JAX
    computes on a GPU and torch sees one, else the CPU on all its cores. Training step and MC dropout
    scoring images/s, or None when torch is not importable."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.manual_seed(0)
    cuda = jax.default_backend() == "gpu" and torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(os.cpu_count() or 1)

    net = nn.Sequential(  # cnn_gal2017's defaults: conv 32 4x4, conv 32 4x4, pool 2, dropout .25, dense 128, .5
        nn.Conv2d(1, 32, 4), nn.ReLU(), nn.Conv2d(32, 32, 4), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(11 * 11 * 32, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10)).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(batch, 1, 28, 28, device=device)
    y = torch.arange(batch, device=device) % 10

    def train():
        net.train()
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()

    def score():  # MC dropout, K passes over the pool in chunks of 512 (torch masks differ per row)
        net.train()
        with torch.no_grad():
            xs = torch.rand(pool, 1, 28, 28, device=device)
            probs = torch.stack([torch.cat([net(c).log_softmax(-1) for c in xs.split(512)]) for _ in range(k)])
            mean = probs.exp().mean(0)
            return -(mean * mean.clamp_min(1e-12).log()).sum(-1) + (probs.exp() * probs).sum(-1).mean(0)

    def med(fn):
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    return {"version": torch.__version__, "device_type": device.type,  # "cuda" or "cpu", as it ran
            "device": str(device) if not cuda else torch.cuda.get_device_name(),
            "threads": torch.get_num_threads(),
            "train_images_per_s": steps * batch / med(train), "score_images_per_s": pool * k / med(score)}


def gal_round(train: dict, score: dict, torch_rates: dict | None) -> dict:
    """Seconds per seed of one round of the Gal 2017 protocol as aljax ran it before its recipes
    (``deep.py --mode gpu``'s ``gal2017_aljax_old`` row: epochs of sampled points, the whole pool), derived
    from the rates measured here: the most a fit can train (max_epochs × epoch_points images, patience
    stops sooner) plus MC scoring of the whole pool (pool rows × MC samples). Rates summed over seeds
    give seconds per seed as work / rate."""
    from deep import MODES
    from aljax import spec

    gal = next(e for e in MODES["gpu"].experiments if e.name == "gal2017_aljax_old")
    fitter = dict(spec.parse(gal.fitter).kwargs)
    pool = 60_000 - gal.dev_size  # MNIST's training images that are not dev
    trained, scored = fitter["max_epochs"] * fitter["epoch_points"], pool * gal.mc_samples
    out = {"train_images": trained, "score_images": scored,
           "aljax_s": {layout: trained / train[layout] + scored / score[layout] for layout in train}}
    if torch_rates:
        out["torch_s"] = trained / torch_rates["train_images_per_s"] + scored / torch_rates["score_images_per_s"]
    return out


def table(res: dict) -> list[str]:
    """The images/s of each way of running, JAX's and PyTorch's, and the Gal round's seconds per seed."""
    gal = (res.get("gal_full_round_per_seed") or {}).get("aljax_s", {})
    lines = [f"{'':<24}{'train images/s':>15}{'score images/s':>15}" + (f"{'Gal round s/seed':>17}" if gal else "")]
    for layout, train in res["jax_train_images_per_s"].items():
        lines.append(f"{'jax, ' + layout:<24}{train:>15,.0f}{res['jax_score_images_per_s'][layout]:>15,.0f}"
                     + (f"{gal[layout]:>17,.1f}" if layout in gal else ""))
    torch = res.get("torch")
    if torch:
        torch_s = (res.get("gal_full_round_per_seed") or {}).get("torch_s")
        lines.append(f"{'torch, 1 seed':<24}{torch['train_images_per_s']:>15,.0f}{torch['score_images_per_s']:>15,.0f}"
                     + (f"{torch_s:>17,.1f}" if torch_s is not None else ""))
    return lines


def torch_words(res: dict) -> str:
    """Where PyTorch ran, in words."""
    torch = res.get("torch")
    if not torch:
        return f"not run ({res.get('torch_note', 'torch not importable')})"
    where = torch.get("device_type", "cuda" if torch.get("device", "cpu") != "cpu" else "cpu")
    return (f"PyTorch {torch['version']} eager on {where}"
            + (f" ({torch['device']})" if where == "cuda" else f" ({torch['threads']} threads)"))


def report(res: dict) -> str:
    """The table in a code block, then the lines that reproduce it (:func:`provenance.reproduce_lines`)."""
    how = (f"`{res['model']}`, batch {res['batch']}: training = {res['steps']} scanned Adam steps with dropout on, "
           f"scoring = BALD over {res['pool']} rows with {res['mc_samples']} consistent MC dropout passes in chunks "
           f"of 512 rows; JAX runs 1 seed unbatched, {res['seeds_vmapped']} seeds as one vmap, and "
           f"{res['seeds_vmapped']} seeds in sequence (`lax.map`) in one program, rates summed over seeds; each "
           f"number the median of the timed calls after one warm-up (compilation); PyTorch: {torch_words(res)}"
           + (", 1 seed, the same network, batch and chunks" if res.get("torch") else ""))
    ran_on = provenance.machine_words(res["ran_on"]) if "ran_on" in res else f"{res['device']}, {res['cpus']} cores"
    lines = ["```", *table(res), "```"] + provenance.reproduce_lines(
        "this table", [res["command"]], ran_on, how=how, elsewhere=provenance.TIMES_DIFFER)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default=None, help="model spec (default cnn_gal2017; --quick: a narrow one); "
                        "PyTorch runs only for cnn_gal2017")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed call")
    parser.add_argument("--pool", type=int, default=2000, help="pool rows scored per timed call")
    parser.add_argument("--samples", type=int, default=20, help="MC dropout samples")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/bench-deep"))
    args = parser.parse_args(argv)
    steps, pool, k, repeats = (4, 256, 4, 2) if args.quick else (args.steps, args.pool, args.samples, args.repeats)
    model = args.model or ("cnn_gal2017(filters=8,hidden=32)" if args.quick else "cnn_gal2017")
    res = {"command": provenance.script("bench_deep.py", sys.argv[1:] if argv is None else argv),
           "ran_on": provenance.machine(), "device": str(jax.devices()[0]), "cpus": os.cpu_count(), "model": model,
           "batch": args.batch,
           "steps": steps, "pool": pool, "mc_samples": k, "seeds_vmapped": args.seeds}
    res["jax_train_images_per_s"] = {"1 seed": jax_train(model, args.batch, 0, steps, repeats),
                                     f"{args.seeds} seeds vmapped": jax_train(model, args.batch, args.seeds, steps, repeats),
                                     f"{args.seeds} seeds in sequence": jax_train(model, args.batch, args.seeds, steps,
                                                                                      repeats, "map")}
    print(json.dumps(res["jax_train_images_per_s"]), flush=True)
    res["jax_score_images_per_s"] = {"1 seed": jax_score(model, pool, k, 0, 512, repeats),
                                     f"{args.seeds} seeds vmapped": jax_score(model, pool, k, args.seeds, 512, repeats),
                                     f"{args.seeds} seeds in sequence": jax_score(model, pool, k, args.seeds, 512, repeats,
                                                                                      "map")}
    print(json.dumps(res["jax_score_images_per_s"]), flush=True)
    res["torch"] = torch_numbers(args.batch, steps, pool, k, repeats) if model == "cnn_gal2017" else None
    if not args.quick:
        res["gal_full_round_per_seed"] = gal_round(res["jax_train_images_per_s"], res["jax_score_images_per_s"],
                                                   res["torch"])
    if res["torch"] is None:
        res["torch_note"] = "torch not importable (pip install -e '.[bench]'), or a non-default model"
    print(json.dumps(res, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "bench_deep.json", json.dumps(res, indent=1))
    write_text(args.out / "report.md", report(res))
    print(report(res), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
