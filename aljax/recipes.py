"""Model recipes: the training settings each model is meant to be run with, which ``aljax run`` uses
for every setting the user did not give (a flag or ``--config``).

A recipe is a mapping from run-setting names (the keys of a run's ``config.toml``: ``fitter``,
``optimizer``, ``learning_rate``, ``patience``, ``initial``, ``dev_size``, ``max_steps``, ...) to values,
plus ``forward_rows_cpu``: the ``forward_rows`` a CPU backend uses (a CNN's eval passes over 10 000
test images hold GBs of activations on XLA:CPU; on a GPU they run whole).

* the registered models' recipes are :data:`RECIPES`, keyed by the factory's registry name;
* a wrapper model (``ensemble``, ``standardized``, ``mc_averaged``) uses its inner model's recipe;
* an out-of-tree model declares its own: ``@declare.model(dropout=True, recipe={"fitter": ...})``.

``softmax_regression``'s recipe is the command line's defaults (the article's: full-batch ``patience``
fitter, TF1 Adam at 0.1, patience 10), so its runs, and the article's table, are unchanged.
"""

from __future__ import annotations

from typing import Any, Mapping

from aljax import declare
from aljax import spec as specs

CPU_ROWS = "forward_rows_cpu"  # a recipe key that is not a run setting: forward_rows on a CPU backend

# Gal, Islam & Ghahramani 2017 as their released Keras scripts train (MC_Dropout_Keras/*_Q10_N1000*.py
# in Riashat/Deep-Bayesian-Active-Learning): re-initialised every round, Keras `fit` for 50 epochs
# (passes over the labeled set, batch 128), no early stopping, the last weights; Adam (Keras' default
# 1e-3); l2(3.5 / N) on the first dense layer's kernel only, Keras' λ·Σw² (no ½); 2 labels per class.
GAL2017_FITTER = ("minibatch(batch_size=128,epoch=passes,keep=last,max_epochs=50,reinit=true,weight_decay=3.5,"
                  "decay_per_label=true,decay_on=Dense_0/kernel,decay_half=false)")
# BatchBALD (Kirsch et al. 2019) as its stored run arguments say (BlackHC/BatchBALD, laaos_results/paper/
# mnist_*_k100_b10_*.py): batch 64, epochs of 5056 samples, at most 30, early stopping with patience 3
# on validation accuracy over 1024 images, the best weights restored; Adam 1e-3; 2 labels per class.
BATCHBALD2019_FITTER = "minibatch(batch_size=64,epoch_points=5056,max_epochs=30,reinit=true)"

RECIPES: dict[str, dict[str, Any]] = {
    "softmax_regression": {"fitter": "patience", "optimizer": "tf1_adam", "learning_rate": 0.1, "patience": 10},
    "mlp": {"fitter": "minibatch(batch_size=64,epoch_points=512,max_epochs=30,reinit=true)", "optimizer": "adam",
            "learning_rate": 0.001, "patience": 3},
    "cnn_gal2017": {"fitter": GAL2017_FITTER, "optimizer": "adam", "learning_rate": 0.001, "initial": "balanced",
                    CPU_ROWS: 500},
    "cnn_batchbald2019": {"fitter": BATCHBALD2019_FITTER, "optimizer": "adam", "learning_rate": 0.001,
                          "patience": 3, "dev_size": 1024, "initial": "balanced", CPU_ROWS: 500},
}
WRAPPERS = ("ensemble", "standardized", "mc_averaged")  # models whose first argument is the inner model


def recipe(model: str | specs.Spec) -> tuple[str, dict[str, Any]]:
    """(the name of the model whose recipe applies, its recipe) for a model spec; ``{}`` for a model
    without one. Wrappers (:data:`WRAPPERS`) defer to their inner model (default ``mlp``)."""
    spec = specs.parse(model)
    if spec.name in WRAPPERS:
        inner = spec.args[0] if spec.args else dict(spec.kwargs).get("model", "mlp")
        return recipe(inner)
    if ":" in spec.name:
        found = declare.declaration(specs.load(spec.name, "model"))
        return spec.name, dict(found.recipe or {}) if found is not None else {}
    return spec.name, dict(RECIPES.get(spec.name, {}))


def for_backend(values: Mapping[str, Any], platform: str) -> dict[str, Any]:
    """A recipe's run settings on ``platform`` (``cpu``, ``gpu``, ``tpu``): ``forward_rows_cpu``
    becomes ``forward_rows`` on a CPU and is dropped elsewhere."""
    out = {k: v for k, v in values.items() if k != CPU_ROWS}
    if platform == "cpu" and CPU_ROWS in values:
        out["forward_rows"] = values[CPU_ROWS]
    return out


def describe(values: Mapping[str, Any]) -> str:
    """One line: ``k=v, ...`` of a recipe (``aljax list``)."""
    return ", ".join(f"{k}={v}" for k, v in values.items())
