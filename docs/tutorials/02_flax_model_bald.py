"""Bring a flax model with dropout and run BALD with it.

A model is three pure functions (`init`, `apply`, `embed`, `aljax.Model`); `aljax.from_flax` makes
them from a `flax.linen` Module whose `__call__(x, train=False)` returns logits. Declared with
`@aljax.declare.model(dropout=True)`, its factory can be named anywhere a model goes (`Config`,
`--model`, TOML) as `package.module:factory(settings...)`. The declaration matters: BALD reduces K
Monte Carlo dropout samples of the pool's predictions, and aljax refuses a sampled acquisition on a
model whose samples cannot differ (scores of 0 everywhere).

This tutorial:

1. writes a small flax network with dropout and its factory, declared `dropout=True`;
2. runs BALD (Houlsby et al. 2011; Gal et al. 2017) with 10 MC dropout samples against random
   labeling, the minibatch fitter re-initialising the network every round as Gal et al. do, over
   paired seeds in one compiled program each;
3. reports the paired difference in accuracy at the budget.

Run it: `python docs/tutorials/02_flax_model_bald.py` (MNIST with a small CNN, 4 seeds, minutes on a
CPU; `make data` first) or with `--tiny` (synthetic blobs, an MLP, seconds; the test suite runs this).
"""

from __future__ import annotations

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import aljax
from aljax import compare


# 1. The network. Images (n, 28, 28, 1) go through a convolution; flat features skip it.
class DropoutNet(nn.Module):
    n_classes: int
    hidden: int = 64
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.ndim == 4:  # images: one 3x3 convolution and 2x2 max pooling first
            x = nn.max_pool(nn.relu(nn.Conv(16, (3, 3))(x)), (2, 2), (2, 2))
        x = nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)  # on in train mode: MC dropout samples
        return nn.Dense(self.n_classes)(x)  # its input is the embedding (BADGE, k-center, ... use it)


@aljax.declare.model(dropout=True)
def dropout_net(n_classes: int, *, hidden: int = 64, dropout: float = 0.5) -> aljax.Model:
    """``DropoutNet`` as an aljax model: its settings are the factory's keyword arguments."""
    return aljax.from_flax(DropoutNet(n_classes, hidden, dropout))


def blobs(n_pool: int, n_eval: int, features: int = 8, classes: int = 4, seed: int = 0) -> aljax.Data:
    """Gaussian blobs, one mean per class (the same as tutorial 1's)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.5, (classes, features)).astype(np.float32)

    def draw(n):
        y = rng.integers(0, classes, n)
        return (means[y] + rng.normal(0, 1, (n, features))).astype(np.float32), y.astype(np.int32)

    x, y = draw(n_pool)
    ex, ey = draw(n_eval)
    split = aljax.make_split(ex, ey)
    return aljax.Data(pool=aljax.make_pool(x, y), eval=split, test=split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="synthetic data, an MLP, 2 seeds: seconds on a CPU")
    args = parser.parse_args()

    if args.tiny:
        data, n_classes, rounds, n_seeds, epochs = blobs(200, 100), 4, 2, 2, 3
    else:
        from aljax.data import find_data_dir, load_dataset

        data = aljax.dev_data(load_dataset("mnist", *find_data_dir()), pool_size=2000, dev_size=500)
        n_classes, rounds, n_seeds, epochs = 10, 8, 4, 20

    # 2. Out of tree, the model is named `module:factory(settings)`; run as a script, this file's
    #    module is __main__ (in your package: "mypkg.models:dropout_net(hidden=128)").
    fitter = f"minibatch(batch_size=32,epoch_points=256,max_epochs={epochs},reinit=true)"
    accuracy = {}
    for strategy in ("random", "bald(samples=10)"):
        config = aljax.Config(strategy=strategy, model=f"{__name__}:dropout_net(hidden=64,dropout=0.5)",
                              fitter=fitter, optimizer="adam", initial="balanced", n_initial=2 * n_classes,
                              query_size=10, rounds=rounds, n_classes=n_classes, forward_rows=500)
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(n_seeds))  # paired seeds
        run = jax.jit(jax.vmap(aljax.make_run(config), in_axes=(None, None, 0)))
        _, info = run(data, aljax.Hyper(learning_rate=1e-3, patience=3), keys)
        labels, accuracy[strategy] = np.asarray(info.n_labeled[0]), 100 * np.asarray(info.test_accuracy)
        print(f"{strategy}: test accuracy {accuracy[strategy][:, -1].mean():.1f} % at {labels[-1]} labels "
              f"(mean of {n_seeds} seeds)")

    # 3. Paired over seeds: seed i of both runs started from the same labels and initial weights.
    d = compare.paired(accuracy["bald(samples=10)"][:, -1], accuracy["random"][:, -1])
    print(f"BALD - random at {labels[-1]} labels: {d['mean']:+.1f} points [{d['low']:+.1f}, {d['high']:+.1f}], "
          f"wins {d['wins']:.0%} of {d['n']} seeds")


if __name__ == "__main__":
    main()
