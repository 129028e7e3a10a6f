"""Model recipes: `aljax run` takes every setting the user did not give from the model's recipe, says
where each came from, and an out-of-tree model can declare its own."""

import sys
import types

import pytest

import aljax.declare as declare
from aljax import recipes
from aljax.cli import CliError, build_parser, resolve


def resolved(*flags: str):
    return resolve(build_parser().parse_args(["run", "--out", "unused", *flags]))


def test_softmax_regression_keeps_the_command_lines_defaults():
    settings, sources = resolved()
    assert (settings["fitter"], settings["optimizer"], settings["learning_rate"], settings["patience"]) == (
        "patience", "tf1_adam", 0.1, 10)
    assert settings["initial"] == "random" and sources["initial"] == "default"


def test_a_cnn_gets_its_recipe_and_flags_win(tmp_path):
    settings, sources = resolved("--model", "cnn_gal2017", "--learning-rate", "0.002")
    assert settings["fitter"] == recipes.GAL2017_FITTER and "keep=last" in settings["fitter"]
    assert settings["optimizer"] == "adam" and settings["initial"] == "balanced"
    assert sources["fitter"] == "recipe cnn_gal2017" and sources["optimizer"] == "recipe cnn_gal2017"
    assert settings["learning_rate"] == 0.002 and sources["learning_rate"] == "flag"
    assert settings["forward_rows"] == 500  # a CPU backend (the tests run on one)
    config = tmp_path / "c.toml"
    config.write_text('fitter = "minibatch(batch_size=32)"\n')
    settings, sources = resolved("--model", "cnn_batchbald2019", "--config", str(config))
    assert settings["fitter"] == "minibatch(batch_size=32)" and sources["fitter"] == f"config {config}"
    assert settings["dev_size"] == 1024 and settings["patience"] == 3


def test_wrappers_use_their_inner_models_recipe():
    assert recipes.recipe("mc_averaged(standardized(cnn_batchbald2019),samples=100)")[0] == "cnn_batchbald2019"
    assert recipes.recipe("ensemble(cnn_gal2017,members=3)")[0] == "cnn_gal2017"


def test_an_out_of_tree_model_declares_its_recipe(monkeypatch):
    from aljax.models import mlp

    module = types.ModuleType("my_recipe_models")
    module.net = declare.model(dropout=True, recipe={"optimizer": "sgd", "learning_rate": 0.05})(
        lambda n_classes: mlp(n_classes, dropout=0.5))
    module.bad = declare.model(recipe={"nonsense": 1})(lambda n_classes: mlp(n_classes))
    monkeypatch.setitem(sys.modules, "my_recipe_models", module)
    settings, sources = resolved("--model", "my_recipe_models:net")
    assert settings["optimizer"] == "sgd" and sources["optimizer"] == "recipe my_recipe_models:net"
    with pytest.raises(CliError, match="'my_recipe_models:bad'.s recipe: unknown key 'nonsense'"):
        resolved("--model", "my_recipe_models:bad")
    module.typo = declare.model(recipe={"learning_rate": "fast"})(lambda n_classes: mlp(n_classes))
    with pytest.raises(CliError, match="learning_rate must be float, got 'fast'"):
        resolved("--model", "my_recipe_models:typo")
    with pytest.raises(ValueError, match="only a model declares a recipe"):
        declare.strategy(recipe={"fitter": "patience"})
