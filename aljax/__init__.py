"""aljax: pool-based active learning in JAX, one compiled program per experiment, seeds a vmap axis.

The names a user imports::

    import jax, aljax
    data = aljax.seed_data(aljax.load_dataset("mnist"))
    config = aljax.Config(strategy="margin", model="mlp(hidden=256)", initial="random")
    run = jax.jit(jax.vmap(aljax.make_run(config), in_axes=(None, None, 0)))
    state, info = run(data, aljax.Hyper(), jax.random.split(jax.random.key(0), 8))

Submodules load on first use (``aljax.Config`` imports :mod:`aljax.config`), so ``import aljax`` is cheap.
"""

from __future__ import annotations

import importlib
import sys

if "-m" in sys.orig_argv and sys.orig_argv[sys.orig_argv.index("-m") + 1:][:1] == ["aljax"]:
    from aljax import interrupt  # ``python -m aljax``: Ctrl-C ends the command from aljax's first line on

    interrupt.install()

from importlib import metadata
from typing import TYPE_CHECKING

try:  # the one version: pyproject.toml's, through the installed package's metadata
    __version__ = metadata.version("aljax")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# public name -> the module that defines it
_EXPORTS = {
    "aljax.config": ("Config", "Components", "components"),
    "aljax.round": ("State", "RoundInfo", "RoundContext", "Round", "make_round", "init_state", "fit", "context",
                    "acquire"),
    "aljax.schedules": ("make_run", "make_rounds", "make_seeds_run", "make_sequential"),
    "aljax.round_metrics": ("RoundView", "METRICS"),
    "aljax.fit": ("Hyper", "FitResult", "FITTERS", "make_fitter"),
    "aljax.models": ("Model", "MODELS", "make_model", "from_flax", "from_functions"),
    "aljax.optim": ("OPTIMIZERS", "make_optimizer"),
    "aljax.strategies": ("Context", "Strategy", "STRATEGIES", "PER_SAMPLE", "make_context", "resolve", "select",
                         "rank_batch", "per_sample"),
    "aljax.data": ("Data", "Pool", "Split", "Raw", "DataError", "load_dataset", "seed_data", "dev_data",
                   "make_pool", "make_split"),
    "aljax.spec": ("Spec", "SpecError"),
    "aljax.stopping": ("stop_rounds", "stop_at"),
}
if TYPE_CHECKING:  # what the lazy __getattr__ below returns, spelled out for type checkers (make lint)
    from aljax import declare
    from aljax.data import (Data, DataError, Pool, Raw, Split, dev_data, load_dataset, make_pool, make_split,
                            seed_data)
    from aljax.fit import FITTERS, FitResult, Hyper, make_fitter
    from aljax.config import Components, Config, components
    from aljax.round import Round, RoundContext, RoundInfo, State, acquire, context, fit, init_state, make_round
    from aljax.round_metrics import METRICS, RoundView
    from aljax.schedules import make_rounds, make_run, make_seeds_run, make_sequential
    from aljax.models import MODELS, Model, from_flax, from_functions, make_model
    from aljax.optim import OPTIMIZERS, make_optimizer
    from aljax.spec import Spec, SpecError
    from aljax.stopping import stop_at, stop_rounds
    from aljax.strategies import (PER_SAMPLE, STRATEGIES, Context, Strategy, make_context, per_sample, rank_batch,
                                  resolve, select)

_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = ("declare",)  # ``@aljax.declare.strategy`` after a plain ``import aljax``
__all__ = sorted([*_WHERE, *_SUBMODULES, "__version__"])


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"aljax.{name}")
    if name not in _WHERE:
        raise AttributeError(f"module 'aljax' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
