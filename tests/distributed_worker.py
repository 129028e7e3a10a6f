"""One process of the 2-process test in test_distributed.py (also runnable alone, process_id 0 of 1)."""

import argparse

import jax
import numpy as np

from aljax import distributed
from aljax.loop import Config, Hyper
from aljax.sharding import make_mesh


def small_data():
    """A deterministic synthetic problem: 256 pool rows of 16 features, 4 classes from a linear teacher."""
    from aljax.data import Data, make_pool, make_split

    rng = np.random.default_rng(0)
    x = rng.random((288, 16), dtype=np.float32)
    y = (x @ rng.standard_normal((16, 4)).astype(np.float32)).argmax(1)
    split = make_split(x[256:], y[256:])
    return Data(make_pool(x[:256], y[:256]), split, split)


CONFIG = Config(n_initial=4, query_size=4, rounds=3, initial="random", n_classes=4)
N_SEEDS = 4


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--seeds-axis", type=int, default=1, help="mesh size of the seeds axis (rest: pool)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.coordinator:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    mesh = make_mesh(seeds=args.seeds_axis)
    state, info = distributed.run_seeds(CONFIG, small_data(), Hyper(), N_SEEDS, mesh)
    np.savez(args.out, order=state.order, eval_correct=info.eval_correct, devices=jax.device_count())


if __name__ == "__main__":
    main()
