"""Write a query strategy out of tree, check it, and compare it with margin over paired seeds.

A strategy is one function `score(key, ctx) -> (N,)`: higher asks first. Declared with
`@aljax.declare.strategy(...)`, it can be named anywhere a strategy goes (`Config`, `--strategy`,
TOML, inside combinators) as `package.module:function`, without editing aljax. This tutorial:

1. writes the *confidence ratio* (p₂ / p₁, the second most probable class over the most probable;
   Settles 2009, §3.1), written for one example and lifted to the pool with `jax.vmap`;
2. checks it with `aljax.testing.check_strategy`, the contract every built-in strategy passes;
3. runs it and margin on the same seeds (seed i starts from the same random initial labels under
   both), in one compiled, seed-vmapped program each, and compares them with `aljax.compare`: the
   paired difference per seed, its mean with a 95 % t-interval, and the fraction of seeds won.

Run it: `python docs/tutorials/01_write_a_strategy.py` (MNIST, 32 seeds; `make data` first) or with
`--tiny` (synthetic blobs, 4 seeds, a few seconds; the test suite runs this).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import aljax
from aljax import compare
from aljax.testing import check_strategy


# 1. The strategy: one example's logits (C,) -> a score, lifted over the pool's rows with vmap.
def _ratio(logits: jax.Array) -> jax.Array:
    top2 = jax.lax.top_k(jax.nn.softmax(logits), 2)[0]
    return top2[1] / top2[0]  # in [0, 1]; 1 when the two best classes tie


@aljax.declare.strategy(stochastic=False, batch_aware=False, needs_samples=False)
def confidence_ratio(key: jax.Array, ctx: aljax.Context) -> jax.Array:
    """Confidence ratio p₂ / p₁ of each pool row, (N,): the closer to 1, the more ambiguous."""
    return jax.vmap(_ratio)(ctx.logits)  # ctx.logits: the pool's logits (N, C) after this round's fit


def blobs(n_pool: int, n_eval: int, features: int = 8, classes: int = 4, seed: int = 0) -> aljax.Data:
    """Gaussian blobs, one mean per class: a pool and an evaluation split a linear model learns fast."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.5, (classes, features)).astype(np.float32)

    def draw(n):
        y = rng.integers(0, classes, n)
        return (means[y] + rng.normal(0, 1, (n, features))).astype(np.float32), y.astype(np.int32)

    x, y = draw(n_pool)
    ex, ey = draw(n_eval)
    split = aljax.make_split(ex, ey)
    return aljax.Data(pool=aljax.make_pool(x, y), eval=split, test=split)


def curves(strategy: str, data: aljax.Data, n_classes: int, rounds: int, n_seeds: int) -> tuple[np.ndarray, ...]:
    """labels (R,) and test accuracy (S, R) of ``strategy`` over seeds 0..n_seeds-1 (one program)."""
    config = aljax.Config(strategy=strategy, initial="random", n_initial=10, query_size=10, rounds=rounds,
                          n_classes=n_classes)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(n_seeds))  # seed i, paired
    run = jax.jit(jax.vmap(aljax.make_run(config), in_axes=(None, None, 0)))
    _, info = run(data, aljax.Hyper(), keys)
    return np.asarray(info.n_labeled[0]), np.asarray(info.test_accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="synthetic data, 4 seeds: seconds on a CPU")
    args = parser.parse_args()

    # 2. The contract: shapes, finiteness, jit == eager, vmap == unbatched, permutation equivariance,
    #    select never picks a labeled or padding row. Raises AssertionError naming what broke.
    check_strategy(confidence_ratio)
    print("check_strategy(confidence_ratio): passed")

    # 3. The comparison. Out of tree, a strategy is named `module:function`; run as a script, this
    #    file's module is __main__ (in your package: "mypkg.mymod:confidence_ratio").
    if args.tiny:
        data, n_classes, rounds, n_seeds = blobs(300, 200), 4, 4, 4
    else:
        from aljax.data import find_data_dir, load_dataset

        data, n_classes, rounds, n_seeds = aljax.dev_data(load_dataset("mnist", *find_data_dir())), 10, 39, 32
    ours = f"{__name__}:confidence_ratio"
    labels, acc_ours = curves(ours, data, n_classes, rounds, n_seeds)
    _, acc_margin = curves("margin", data, n_classes, rounds, n_seeds)

    budget = int(labels[-1])
    for name, a, b in (("accuracy at %d labels" % budget, compare.at_labels(labels, acc_ours, budget),
                        compare.at_labels(labels, acc_margin, budget)),
                       ("AUC (mean accuracy over the budget)", compare.auc(labels, acc_ours),
                        compare.auc(labels, acc_margin))):
        d = compare.paired(100 * a, 100 * b)
        print(f"confidence_ratio - margin, {name}: {d['mean']:+.2f} points "
              f"[{d['low']:+.2f}, {d['high']:+.2f}] over {d['n']} paired seeds, wins {d['wins']:.0%}")


if __name__ == "__main__":
    main()
