"""The public API as a user writes it, for the type checker (`make lint` runs mypy over this file and
aljax/__init__.py; it is not a test module and is never run). A signature change that breaks this
usage is a type error here."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import aljax

version: str = aljax.__version__

raw: aljax.Raw = aljax.Raw(np.zeros((8, 4), np.float32), np.zeros(8, np.int32), np.zeros((4, 4), np.float32),
                           np.zeros(4, np.int32), name="toy")
data: aljax.Data = aljax.seed_data(raw, pool_size=8, test_size=4)
honest: aljax.Data = aljax.dev_data(raw, pool_size=6, dev_size=2)
config: aljax.Config = aljax.Config(strategy="margin", n_initial=2, query_size=2, rounds=2, n_classes=2)
parts: aljax.Components = aljax.components(config)
hyper: aljax.Hyper = aljax.Hyper()
run = aljax.make_run(config)
state, info = run(data, hyper, jax.random.key(0))
first: aljax.State = aljax.init_state(config, data, hyper, jax.random.key(1))
model: aljax.Model = aljax.make_model("mlp(hidden=8)", 2)
test_time: aljax.Model = model._replace(predict=lambda params, x: model.apply(params, x))  # the optional hook
spec: aljax.Spec = aljax.Spec("subsample", ("margin", 500))
strategy = aljax.resolve("margin")


@aljax.declare.strategy(stochastic=False)
def least_margin(key: jax.Array, ctx: aljax.Context) -> jax.Array:
    """(N,) scores: minus the gap between the two largest logits."""
    top2 = jax.lax.top_k(ctx.logits, 2)[0]
    return -(top2[:, 0] - top2[:, 1])


stops: dict[str, jax.Array] = aljax.stop_rounds(info, budget=4)
names: list[str] = sorted(aljax.STRATEGIES) + sorted(aljax.MODELS) + sorted(aljax.FITTERS) + sorted(aljax.OPTIMIZERS)
zero = jnp.zeros(())
