"""Every setting has a domain, checked before anything compiles (aljax.spec), and no run ends in silent
degeneracy. The registry tests iterate the registries, so a new entry or setting is covered for free,
and a setting declared without a domain fails them."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax import spec as specs
from aljax.cli import main, report
from aljax.fit import FITTERS
from aljax.loop import Config, Hyper, components, init_state
from aljax.round import query
from aljax.metrics import mean_ci
from aljax.models import MODELS, mlp
from aljax.optim import OPTIMIZERS
from aljax.strategies import COMBINATORS, STRATEGIES, StatefulStrategy, resolve, stateful
from aljax.strategies.registry import trial
from conftest import synthetic
from test_cli import blobs_dataset

MARGIN = specs.Spec("margin")


def required_positionals(factory) -> int:
    """Positional parameters without a default (a model's n_classes, an optimiser's learning rate, a
    combinator's inner strategies): filled by the caller, not settings."""
    return sum(p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD
               for p in inspect.signature(factory).parameters.values())


def check_model(spec):
    specs.check(MODELS, spec, "model", 10)


def check_fitter(spec):
    specs.check(FITTERS, spec, "fitter")


def check_optimizer(spec):
    specs.check(OPTIMIZERS, spec, "optimizer", 0.1)


def check_combinator(spec):
    inner = (MARGIN,) * required_positionals(COMBINATORS[spec.name])
    resolve(specs.Spec(spec.name, inner, spec.kwargs))


# (kind, registry, how a spec of it is checked, the factory whose signature holds the settings)
KINDS = {
    "model": (MODELS, check_model),
    "fitter": (FITTERS, check_fitter),
    "optimizer": (OPTIMIZERS, check_optimizer),
    "strategy": (STRATEGIES, resolve),
    "combinator": (COMBINATORS, check_combinator),
}


def factory_of(entry):
    return entry.score if isinstance(entry, StatefulStrategy) else entry


def every_setting():
    for kind, (registry, _) in KINDS.items():
        for name, entry in registry.items():
            for key, setting in specs.domains(factory_of(entry)).items():
                yield pytest.param(kind, name, key, setting, id=f"{kind}-{name}-{key}")


def outside(setting: specs.Setting) -> list:
    """Values outside ``setting``'s domain: the wrong type, and one past each bound it declares."""
    values = ["maybe"] if setting.kind is bool else [True] if setting.kind in (int, float) else [17]
    step = 1 if setting.kind is int else 0.5
    for domain in setting.domains:
        if isinstance(domain, specs.Range):
            if domain.low is not None:
                values.append(domain.low if domain.low_open else domain.low - step)
            if domain.high is not None:
                values.append(domain.high if domain.high_open else domain.high + step)
        elif isinstance(domain, specs.Choice):
            values.append("no_such_choice")
        elif isinstance(domain, specs.SpecOf):
            values.append("no_such_component")
    return values


@pytest.mark.parametrize("kind,name,key,setting", list(every_setting()))
def test_every_registered_setting_has_a_domain_and_refuses_values_outside_it(kind, name, key, setting):
    assert setting.declared, (f"{kind} {name!r}: setting {key} declares no domain; annotate it, e.g. "
                              f"{key}: aljax.spec.Count or Annotated[float, Range(0, 1)]")
    check = KINDS[kind][1]
    for value in outside(setting):
        with pytest.raises(specs.SpecError) as err:
            check(specs.Spec(name, (), ((key, value),)))
        message = str(err.value)
        assert f"setting {key} " in message and f"{kind} {name!r}" in message and "\n" not in message, message


@pytest.mark.parametrize("kind,name,key,setting", list(every_setting()))
def test_every_registered_setting_accepts_its_default(kind, name, key, setting):
    factory = factory_of(KINDS[kind][0][name])
    default = inspect.signature(factory).parameters[key].default
    assert setting.problem(default) is None


def test_the_domain_messages_name_the_setting_and_its_range():
    cases = {
        "mlp(hidden=-3)": "model 'mlp': setting hidden must be an integer >= 1, got -3",
        "mlp(hidden=abc)": "model 'mlp': setting hidden must be an integer >= 1, got 'abc'",
        "mlp(hidden=2.5)": "model 'mlp': setting hidden must be an integer >= 1, got 2.5",
        "mlp(dropout=1.5)": "model 'mlp': setting dropout must be a number in [0, 1), got 1.5",
        "mlp(dropout=nan)": "model 'mlp': setting dropout must be a number in [0, 1), got nan",
        "cnn_gal2017(filters=0)": "model 'cnn_gal2017': setting filters must be an integer >= 1, got 0",
        "ensemble(mlp,members=0)": "model 'ensemble': setting members must be an integer >= 1, got 0",
    }
    for text, message in cases.items():
        with pytest.raises(specs.SpecError) as err:
            check_model(text)
        assert str(err.value) == message
    with pytest.raises(specs.SpecError, match=r"setting model must be a model spec \(unknown model 'mpl'; did you"):
        check_model("ensemble(mpl)")
    with pytest.raises(specs.SpecError, match=r"^combinator 'subsample': setting size must be an integer >= 1, got -5$"):
        resolve("subsample(margin,-5)")
    with pytest.raises(specs.SpecError, match=r"^combinator 'epsilon': setting eps must be a number in \[0, 1\]"):
        resolve("epsilon(margin,1.5)")
    with pytest.raises(specs.SpecError, match=r"^optimizer 'sgd': setting momentum must be a number in \[0, 1\)"):
        check_optimizer("sgd(momentum=abc)")
    with pytest.raises(specs.SpecError, match=r"^strategy 'qbc_kl': setting optimizer must be an optimizer spec"):
        resolve("qbc_kl(optimizer=adm)")
    check_model("ensemble(mlp(dropout=0.5),members=2)")  # nested specs pass when valid
    assert resolve("epsilon(margin,1)") is not None and resolve("bald(samples=1,chunk=64)") is not None


def test_a_plain_annotation_checks_the_type_and_an_unannotated_setting_anything():
    def factory(n_classes, *, width: int = 3, scale: float = 1.0, flag: bool = False, anything=None):
        return None

    declared = specs.domains(factory)
    assert declared["width"].problem("abc") == "must be an integer, got 'abc'"
    assert declared["scale"].problem(float("inf")) == "must be a number, got inf"
    assert declared["flag"].problem(1) == "must be true or false, got 1"
    assert declared["width"].problem(-3) is None and declared["anything"].problem("x") is None
    assert [k for k, s in declared.items() if s.declared] == ["flag"]


# ----------------------------------------------------------------------------- out-of-tree strategies

OUT_OF_TREE = '''
import jax
import jax.numpy as jnp

import aljax.declare as declare
from aljax.spec import Count


@declare.strategy
def margin_like(key, ctx, *, power: Count = 1):
    return -jnp.max(jax.nn.softmax(ctx.logits), axis=-1) ** power


@declare.strategy
def no_ctx(key):
    return key


@declare.strategy
def wrong_shape(key, ctx):
    return ctx.logits


@declare.strategy
def nan_scores(key, ctx):
    return jnp.full(ctx.logits.shape[:1], jnp.nan)


@declare.strategy
def raises(key, ctx):
    raise RuntimeError("boom")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "settings_user.py").write_text(textwrap.dedent(OUT_OF_TREE))
    (tmp_path / "settings_broken.py").write_text("raise RuntimeError('broken at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "settings_user"


def tiny_trial(name: str, query_size: int = 2) -> None:
    model = mlp(3, hidden=4)
    x = jax.random.uniform(jax.random.key(0), (12, 4))
    trial(name, model, x, jnp.arange(12) % 3, query_size)


def test_an_out_of_tree_strategy_is_checked_before_it_compiles(user_module):
    tiny_trial(f"{user_module}:margin_like")
    tiny_trial(f"subsample({user_module}:margin_like(power=2),500)")
    with pytest.raises(specs.SpecError, match=r"setting power must be an integer >= 1, got 0"):
        resolve(f"{user_module}:margin_like(power=0)")
    with pytest.raises(specs.SpecError, match=r"no_ctx' takes \(key\), so it cannot be called as score\(key, ctx\)"):
        resolve(f"{user_module}:no_ctx")
    with pytest.raises(specs.SpecError, match=r"importing 'settings_broken' failed \(RuntimeError: broken at import\)"):
        resolve("settings_broken:anything")
    failures = {
        "wrong_shape": r"returned ArrayImpl of shape \(12, 3\) .* shape \(12,\)",
        "nan_scores": r"scored selectable rows NaN or \+inf",
        "raises": r"failed on a 12-row trial pool \(RuntimeError: boom\)",
    }
    for name, message in failures.items():
        with pytest.raises(specs.SpecError, match=message) as err:
            tiny_trial(f"epsilon({user_module}:{name},0.1)")
        assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- degeneracy


def test_a_query_counts_the_rows_it_took_whose_score_was_not_finite(user_module):
    """A NaN strategy, and a subsample smaller than the query, take rows in pool order: the query's
    ``nonfinite_picks`` (reported per round in ``RoundInfo``) says how many; a sound strategy has none."""
    data = synthetic(n_pool=24, n_eval=12)
    expected = {"margin": 0, f"{user_module}:nan_scores": 3, "subsample(margin,2)": 1}
    for strategy, count in expected.items():
        config = Config(strategy=strategy, n_initial=3, query_size=3, rounds=1, n_classes=3, initial="random")
        parts = components(config)
        state = init_state(config, data, Hyper(), jax.random.key(0))
        after = query(config, stateful(parts.strategy), data, state, parts.model.apply(state.params, data.pool.x), 0)
        assert int(state.nonfinite_picks) == 0 and int(after.nonfinite_picks) == count, strategy
        assert int(after.n_labeled) == 6


def blobs(folder: Path) -> Path:
    """A 3-class idx:DIR dataset of 2x2 float images: 60 training and 12 test images."""
    return blobs_dataset(folder, classes=3, n_test=12)


def run_cli(args, capsys) -> tuple[int, str]:
    status = main(["run", *map(str, args)])
    return status, capsys.readouterr().err


def test_the_command_line_refuses_bad_settings_in_one_line(tmp_path, capsys):
    out = tmp_path / "never"
    cases = {
        ("--model", "mlp(hidden=-3)"): "model 'mlp': setting hidden must be an integer >= 1, got -3",
        ("--model", "cnn_gal2017(filters=0)"): "setting filters must be an integer >= 1, got 0",
        ("--fitter", "minibatch(batch_size=0)"): "fitter 'minibatch': setting batch_size must be an integer >= 1",
        ("--strategy", "subsample(margin,-5)"): "setting size must be an integer >= 1, got -5",
        ("--optimizer", "sgd(momentum=abc)"): "optimizer 'sgd': setting momentum must be a number in [0, 1)",
        ("--strategy", "qbc_kl(members=0)"): "strategy 'qbc_kl': setting members must be an integer >= 1",
        ("--model", "mlp(dropout=1.5)"): "setting dropout must be a number in [0, 1), got 1.5",
        ("--strategy", "bald(samples=0)"): "strategy 'bald': setting samples must be an integer >= 1, got 0",
        ("--strategy", "epsilon(margin,1.5)"): "setting eps must be a number in [0, 1], got 1.5",
        ("--capacity", "100"): "--capacity 100 is below the budget (400 labels)",
        ("--dev-size", "0"): "--dev-size must be at least 1, got 0",
        ("--protocol", "seed", "--test-size", "0"): "--test-size must be at least 1, got 0",
        ("--seed", "-1"): "--seed must be in [0, 4294967296)",
        ("--phases", "40"): "--phases must be between 1 and the number of rounds (39), got 40",
        ("--oracle", "human"): "unknown oracle 'human'",
        ("--max-steps", str(10**100)): "max-steps = a 101-digit number is beyond 2147483647",
        ("--learning-rate", "1e300"): "--learning-rate must be a positive number (a float32), got 1e+300",
    }
    for args, message in cases.items():
        status, err = run_cli([*args, "--seeds", "1", "--quiet", "--out", out], capsys)
        assert status == 2 and message in err and err.count("\n") == 1, (args, err)
    assert not out.exists()


def test_the_command_line_refuses_data_dependent_sizes_and_shapes(tmp_path, capsys):
    data = f"idx:{blobs(tmp_path / 'blobs')}"
    base = ["--dataset", data, "--seeds", "1", "--quiet", "--init", "3", "--query-size", "3", "--budget", "6",
            "--out", tmp_path / "never"]
    cases = {
        ("--protocol", "seed", "--pool-size", "30", "--test-size", "13"): "--test-size 13 exceeds the dataset's 12 test images",
        ("--protocol", "seed", "--pool-size", "61"): "--pool-size 61 exceeds the dataset's 60 training images",
        ("--model", "cnn_gal2017(kernel=5)", "--pool-size", "30", "--dev-size", "20"):
            "model 'cnn_gal2017(kernel=5)' cannot run on samples of shape (2, 2, 1)",
    }
    for args, message in cases.items():
        status, err = run_cli([*base, *args], capsys)
        assert status == 2 and message in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "never").exists()


def test_a_run_whose_strategy_picks_non_finite_scores_ends_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--dataset", f"idx:{blobs(tmp_path / 'blobs')}", "--pool-size", "30", "--dev-size", "20", "--init", "3",
            "--query-size", "3", "--budget", "9", "--seeds", "2", "--max-steps", "5", "--quiet", "--out", out]
    status, err = run_cli([*args, "--strategy", "subsample(margin,2)"], capsys)
    assert status == 2 and err.count("\n") == 1, err
    assert "strategy 'subsample(margin,2)' scored 1 of the rows it picked in round 1 (seed 0) NaN or infinite" in err
    assert not list(out.glob("chunks/*.npz")) and not (out / "metrics.csv").exists()


def test_the_fitter_help_says_which_fitters_train_in_train_mode(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "patience (full batch, eval mode: a model's dropout stays off)" in text
    assert "minibatch(batch_size=64,...) (train mode: dropout on)" in text


def test_printed_accuracy_intervals_stay_inside_0_and_1(tmp_path):
    mean, low, high = mean_ci([0.9, 1.0], bounds=(0.0, 1.0))
    assert mean == pytest.approx(0.95) and high == 1.0 and 0.0 <= low < 0.95
    assert mean_ci([0.9, 1.0])[2] > 1.0  # without bounds: t(0.975, 1) = 12.7 stretches it past 1
    two_seeds = {"n_labeled": np.array([[10, 20], [10, 20]]), "test_accuracy": np.array([[0.5, 0.9], [0.6, 1.0]])}
    table = report({"margin": two_seeds}, tmp_path / "curve.png")
    assert "| margin | 2 | 20 | 0.9500 [0.3147, 1.0000] | 0.7500 |" in table
