"""Tutorial 3: change the experiment, not the engine.

A paper often needs a number the engine does not record and a training recipe that changes from
round to round. Both are plug-ins of the round (docs/engine.md), written here, out of tree, in this
file:

* a **metric**: a pure function of the finished round (a ``RoundView``: model, data, the fitted
  state, the pool logits and the round context) returning named scalars; each lands in
  ``info.extra``, in ``metrics.csv`` and in ``aljax plot --metric NAME``, under every schedule;
* a **learning-rate schedule by round**: a function of the ``RoundContext`` (round index, labels
  held, labels just added, budget) that multiplies the learning rate of that round's fit.

Both are named like any component, ``"module:function"`` (here ``__main__:...``), and declared with
``@aljax.declare.metric`` / ``@aljax.declare.schedule``. The same names work on the command line::

    aljax run --metrics my_pkg.my_mod:wrong_but_sure,ece --lr-schedule my_pkg.my_mod:cool_down ...

Run: ``python docs/tutorials/03_change_the_experiment.py --tiny`` (synthetic data, seconds on a CPU),
or without ``--tiny`` on MNIST (``make data`` first).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import aljax
from aljax.round_metrics import RoundView
from aljax.schedules import make_run, make_seeds_run
from aljax.seeds import seed_keys


@aljax.declare.metric
def wrong_but_sure(view: RoundView) -> dict[str, jax.Array]:
    """Share of test rows the model gets wrong with a max softmax above 0.9 (overconfident errors)."""
    probs = jax.nn.softmax(view.test_logits())
    wrong = jnp.argmax(probs, axis=-1) != view.data.test.y
    return {"wrong_but_sure": jnp.mean(wrong & (jnp.max(probs, axis=-1) > 0.9))}


@aljax.declare.schedule
def cool_down(ctx) -> jax.Array:
    """Full learning rate while labels are few, then down linearly to 20 % at the budget."""
    held = ctx.n_labeled / ctx.budget
    return 1.0 - 0.8 * held


def tiny_data() -> aljax.Data:
    """Gaussian blobs: 3 classes in 6 dimensions, a 200-row pool, 100 evaluation rows."""
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1.5, (3, 6)).astype(np.float32)

    def draw(n):
        y = rng.integers(0, 3, n)
        return (means[y] + rng.normal(0, 1, (n, 6))).astype(np.float32), y

    x, y = draw(200)
    ex, ey = draw(100)
    split = aljax.make_split(ex, ey)
    return aljax.Data(pool=aljax.make_pool(x, y, 200), eval=split, test=aljax.Split(split.x, split.y))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="synthetic data, a few seconds on a CPU")
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args(argv)
    if args.tiny:
        data, n_classes, rounds = tiny_data(), 3, 6
    else:
        data, n_classes, rounds = aljax.seed_data(aljax.load_dataset("mnist")), 10, 39
    config = aljax.Config(strategy="margin", initial="random", n_initial=10, query_size=10, rounds=rounds,
                          n_classes=n_classes, metrics=("__main__:wrong_but_sure", "ece", "label_entropy"),
                          lr_schedule="__main__:cool_down")
    keys = seed_keys(0, np.arange(args.seeds))
    # Two schedules of the same round: seeds in lockstep (a vmap) and continuous lanes. Same numbers.
    _, lockstep = jax.jit(jax.vmap(make_run(config), in_axes=(None, None, 0)))(data, aljax.Hyper(), keys)
    _, lanes = jax.jit(make_seeds_run(config, lanes=2))(data, aljax.Hyper(), keys)
    np.testing.assert_array_equal(lockstep.eval_correct, lanes.eval_correct)
    print(f"{'labels':>6} {'test acc':>8} {'wrong but sure':>14} {'ece':>6} {'batch label entropy':>19}")
    for r in range(config.rounds + 1):
        mean = lambda a: float(np.mean(a[:, r]))  # noqa: E731 - over seeds
        print(f"{int(lockstep.n_labeled[0, r]):>6} {mean(lockstep.test_accuracy):>8.3f} "
              f"{mean(lockstep.extra['wrong_but_sure']):>14.3f} {mean(lockstep.extra['ece']):>6.3f} "
              f"{mean(lockstep.extra['label_entropy']):>19.3f}")
    print("lockstep and continuous lanes agree on every fit: the round is defined once")


if __name__ == "__main__":
    main()
