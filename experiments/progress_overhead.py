"""Measure what the progress bar costs: the same chunk of seeds with and without the round hook.

The bar's hook is a ``jax.debug.callback`` at the start of every round of the scan (see
aljax/progress.py). Both programs are compiled first; then runs alternate (hook, plain, hook, ...)
so that load from other processes hits all alike; minima and medians are compared. Three programs:
the bar's hook, an empty callback (the mechanism alone), and no hook.

    PYTHONPATH=$PWD .venv/bin/python experiments/progress_overhead.py [--seeds 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import jax
import numpy as np

from aljax.cli import chunk_outputs
from aljax.data import load_mnist, seed_data
from aljax.loop import Config, Hyper, make_run
from aljax.seeds import chunk_program
from aljax.progress import Progress


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, so the bar is enabled and really drawn (into memory)."""

    def isatty(self) -> bool:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--strategy", default="margin")
    args = parser.parse_args()

    data = seed_data(load_mnist())
    config = Config(strategy=args.strategy, initial="random", rounds=39)
    hyper, key, seeds = Hyper(), jax.random.key(0), np.arange(args.seeds)
    progress = Progress(config.rounds, stream=FakeTerminal())
    progress.begin(args.repeats)
    assert progress.hook is not None
    hooks = {"bar": progress.hook, "empty callback": lambda i: None, "no hook": None}
    programs = {name: chunk_program(make_run(config, hook), chunk_outputs).lower(data, hyper, key, seeds).compile()
                for name, hook in hooks.items()}
    times = {name: [] for name in programs}
    cpu = {name: [] for name in programs}  # process CPU seconds (all threads): robust to other processes' load
    results = {}
    for r in range(args.repeats):
        progress.start_chunk(r, 0, args.seeds - 1)
        for name in list(programs)[:: 1 if r % 2 == 0 else -1]:  # alternate the order too
            t, c = time.perf_counter(), time.process_time()
            results[name] = jax.block_until_ready(programs[name](data, hyper, key, seeds))
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
        progress.end_chunk()
    progress.close()
    plain = results["no hook"]
    same = all(np.array_equal(res[k], plain[k]) for res in results.values() for k in plain)
    print(f"device: {jax.devices()[0].device_kind}; {args.seeds} seeds x {config.rounds} rounds, "
          f"strategy {args.strategy}, {args.repeats} alternating repeats; bit-identical results: {same}")
    base_min, base_med = min(times["no hook"]), statistics.median(times["no hook"])
    base_cpu = statistics.median(cpu["no hook"])
    for name, ts in times.items():
        lo, med = min(ts), statistics.median(ts)
        print(f"  {name:15} min {lo:.3f} s ({100 * (lo / base_min - 1):+.1f} %)  median {med:.3f} s "
              f"({100 * (med / base_med - 1):+.1f} %)  CPU median {statistics.median(cpu[name]):.3f} s "
              f"({100 * (statistics.median(cpu[name]) / base_cpu - 1):+.1f} %)  wall all: {', '.join(f'{t:.2f}' for t in ts)}")
    print(f"  bar ticks drawn: {progress.bar.n} of {progress.bar.total}")


if __name__ == "__main__":
    main()
