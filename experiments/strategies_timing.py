"""Wall time of every strategy on the seed protocol: 4000-row MNIST pool, 10 -> 400 labels, 16 seeds
vmapped in one compiled program (``initial='random'`` so seeds differ). Prints one row per strategy:
compile + first run, a second run (wall and process CPU seconds: on a shared machine the CPU time is
the steadier number), and the final test accuracy (mean ± sd over the seeds). Usage:
``python experiments/strategies_timing.py [--seeds S] [name ...]`` (default: the whole registry)."""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

from aljax.data import load_mnist, seed_data
from aljax.loop import Config, Hyper, make_run
from aljax.strategies import STRATEGIES, resolve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="strategies or combinator names (default: the registry)")
    parser.add_argument("--seeds", type=int, default=16, help="seeds vmapped in one program (default 16)")
    args = parser.parse_args(argv)
    names = args.names or list(STRATEGIES)
    for name in names:
        try:
            resolve(name)
        except ValueError as err:
            sys.exit(f"error: {err}")
    data = seed_data(load_mnist())
    keys = jax.random.split(jax.random.key(0), args.seeds)
    header = f"test acc ({args.seeds} seeds)"
    print(f"{'strategy':30s} {'compile+run s':>13s} {'run s':>7s} {'run cpu s':>9s} {header:>20s}", flush=True)
    for name in names:
        run = jax.jit(jax.vmap(make_run(Config(strategy=name, initial="random")), in_axes=(None, None, 0)))
        times = []
        for _ in range(2):
            start, cpu = time.perf_counter(), time.process_time()
            _, info = jax.block_until_ready(run(data, Hyper(), keys))
            times.append((time.perf_counter() - start, time.process_time() - cpu))
        acc = np.asarray(info.test_accuracy[:, -1])
        print(f"{name:30s} {times[0][0]:13.1f} {times[1][0]:7.1f} {times[1][1]:9.1f} {acc.mean():14.4f} ± {acc.std():.4f}", flush=True)


if __name__ == "__main__":
    main()
