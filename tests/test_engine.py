"""The engine as a round plus schedules: one piece changed once shows under every schedule; the round
context reaches strategies, fitters, the learning-rate schedule and metrics; metric plug-ins and
learning-rate schedules from out of tree, through the Python API and the command line."""

import dataclasses
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import aljax
from aljax import seeds, store
from aljax.cli import main
from aljax.config import Config, components
from aljax.fit import Hyper, make_fitter
from aljax.models import make_model
from aljax.round import make_round
from aljax.schedules import make_run, make_seeds_run, make_sequential
from aljax.stream import StreamConfig, make_stream

CFG = Config(strategy="margin", n_initial=4, query_size=5, rounds=3, initial="random", n_classes=3)
KEYS = seeds.seed_keys(0, np.arange(3))


def every_schedule(what, data):
    """{schedule: (state, info)} of 3 seeds under lockstep, sequential and continuous lanes."""
    lockstep = jax.jit(jax.vmap(make_run(what), in_axes=(None, None, 0)))
    return {"lockstep": lockstep(data, Hyper(), KEYS),
            "sequential": jax.jit(make_sequential(what))(data, Hyper(), KEYS),
            "continuous": jax.jit(make_seeds_run(what, lanes=2, batch=1))(data, Hyper(), KEYS)}


def test_a_round_piece_changed_once_shows_under_every_schedule(tiny):
    rnd = make_round(CFG)
    finish = rnd.finish

    def finish_and_mark(data, state, carry, before, ctx):  # one wrapped piece: a column and a halved accuracy
        state, info, logits = finish(data, state, carry, before, ctx)
        info = dataclasses.replace(info, test_accuracy=info.test_accuracy / 2,
                                   extra=info.extra | {"marker": ctx.round * 100 + ctx.n_new})
        return state, info, logits

    marked = dataclasses.replace(rnd, finish=finish_and_mark)
    plain, changed = every_schedule(CFG, tiny), every_schedule(marked, tiny)
    expected_marker = np.array([4, 105, 205, 305])  # round r * 100 + labels the round added
    for name, (state, info) in changed.items():
        np.testing.assert_array_equal(info.extra["marker"], np.broadcast_to(expected_marker, (3, 4)), err_msg=name)
        np.testing.assert_array_equal(info.test_accuracy, plain[name][1].test_accuracy / 2, err_msg=name)
        np.testing.assert_array_equal(state.order, plain["lockstep"][0].order, err_msg=name)  # same acquisitions
    stream_info = make_stream(StreamConfig(base=CFG), marked)(tiny, Hyper(), KEYS[0])[1]
    np.testing.assert_array_equal(stream_info.extra["marker"] // 100, np.arange(4))


def test_builtin_metrics_by_hand(tiny):
    config = dataclasses.replace(CFG, initial="balanced", n_initial=6, metrics="test_nll,ece(bins=10),label_entropy")
    state, info = jax.jit(make_run(config))(tiny, Hyper(), jax.random.key(0))
    assert set(info.extra) == {"test_nll", "ece", "label_entropy"}
    np.testing.assert_allclose(info.extra["label_entropy"][0], np.log(3), rtol=1e-6)  # 2 of each of 3 classes
    targets = np.asarray(state.targets)[6:11]  # round 1's batch
    p = np.bincount(targets, minlength=3) / 5
    np.testing.assert_allclose(info.extra["label_entropy"][1], -np.sum(p[p > 0] * np.log(p[p > 0])), rtol=1e-5)
    logits = components(config).model.apply(state.params, tiny.test.x)
    nll = -np.mean(np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), np.asarray(tiny.test.y)[:, None], 1))
    np.testing.assert_allclose(info.extra["test_nll"][-1], nll, rtol=1e-5)
    assert np.all((info.extra["ece"] >= 0) & (info.extra["ece"] <= 1))
    conf = np.max(np.asarray(jax.nn.softmax(logits)), axis=-1)
    right = np.argmax(np.asarray(logits), -1) == np.asarray(tiny.test.y)
    bins = np.clip(np.ceil(conf * 10).astype(int) - 1, 0, 9)
    ece = sum(abs(np.sum(right[bins == b] - conf[bins == b])) for b in range(10)) / len(conf)
    np.testing.assert_allclose(info.extra["ece"][-1], ece, rtol=1e-4, atol=1e-6)


@aljax.declare.strategy
def round_aware(key, ctx):
    """Lowest pool rows in round 1, highest later: reads ctx.round; budget and labels held are checked."""
    assert ctx.budget == CFG.budget  # static
    index = jnp.arange(ctx.x.shape[0], dtype=jnp.float32)
    return jnp.where((ctx.round == 1) & (ctx.n_labeled == CFG.n_initial), -index, index)


@aljax.declare.schedule
def frozen_after_first(ctx):
    """No learning after round 0: the learning rate times 0."""
    return jnp.where(ctx.round == 0, 1.0, 0.0)


def test_round_context_reaches_strategies_and_the_learning_rate(tiny):
    config = dataclasses.replace(CFG, strategy=round_aware, initial="first")
    state, info = jax.jit(make_run(config))(tiny, Hyper(), jax.random.key(0))
    order = np.asarray(state.order)
    valid = int(tiny.pool.valid.sum())
    assert order[4:9].tolist() == [4, 5, 6, 7, 8]  # round 1: the lowest unlabeled rows
    assert order[9:14].tolist() == list(range(valid - 1, valid - 6, -1))  # later: the highest valid rows
    frozen = dataclasses.replace(CFG, lr_schedule=f"{__name__}:frozen_after_first")
    _, info = jax.jit(make_run(frozen))(tiny, Hyper(), jax.random.key(0))
    _, moving = jax.jit(make_run(CFG))(tiny, Hyper(), jax.random.key(0))
    assert np.all(info.eval_correct[1:] == info.eval_correct[0])  # params never move after round 0
    assert not np.all(moving.eval_correct[1:] == moving.eval_correct[0])


def test_objects_and_specs_alike():
    spec = Config(model="mlp(hidden=4)", fitter="patience", n_classes=3)
    model, fitter = make_model("mlp(hidden=4)", 3), make_fitter("patience")
    import optax
    objects = Config(model=model, fitter=fitter, optimizer=optax.adam, strategy=round_aware, n_classes=3)
    assert components(objects).model is model and components(objects) is components(objects)  # cached
    assert hash(objects) != hash(spec)
    for field, value, text in (("model", 3, "Config.model must be a spec string or an aljax.models.Model, got int"),
                               ("optimizer", optax.adam(0.1), "a function of the learning rate"),
                               ("strategy", [1], "Config.strategy must be a spec string")):
        with pytest.raises(TypeError, match=text) as err:
            Config(**{field: value})
        assert "\n" not in str(err.value)
    from aljax.round_metrics import ece
    plugins = components(Config(metrics=(ece, "test_nll"), lr_schedule=frozen_after_first))
    assert [name for name, _ in plugins.metrics] == ["ece", "test_nll"] and plugins.lr_schedule is frozen_after_first
    with pytest.raises(TypeError, match="Config.lr_schedule must be a spec string, a function"):
        Config(lr_schedule=3)
    with pytest.raises(ValueError, match="metric 'os:getcwd' is not a declared aljax metric"):
        Config(metrics="os:getcwd")
    with pytest.raises(ValueError, match="unknown metric 'tset_nll'; did you mean 'test_nll'"):
        Config(metrics=("tset_nll",))


PLUGIN = '''
import jax.numpy as jnp
import aljax

@aljax.declare.metric
def buffer_share(view):
    """Labels held over the budget, and the round index."""
    return {"held_share": view.context.n_labeled / view.context.budget, "round_index": view.context.round}

@aljax.declare.schedule
def slower(ctx):
    return 0.5 ** ctx.round
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "my_engine_plugin.py").write_text(textwrap.dedent(PLUGIN))
    sys.path.insert(0, str(folder))
    yield "my_engine_plugin"
    sys.path.remove(str(folder))


def blobs(folder):
    from tests.test_cli import blobs_dataset
    return blobs_dataset(folder)


@pytest.mark.parametrize("schedule", ["continuous", "lockstep"])
def test_out_of_tree_metric_and_schedule_from_the_command_line(tmp_path, plugin, schedule, capsys):
    data = blobs(tmp_path / "blobs")
    args = ["run", "--dataset", f"idx:{data}", "--pool-size", "40", "--dev-size", "20", "--budget", "12", "--init",
            "4", "--query-size", "4", "--strategy", "margin", "--seeds", "2", "--chunk-size", "2", "--quiet",
            "--schedule", schedule, "--metrics", f"{plugin}:buffer_share,test_nll",
            "--lr-schedule", f"{plugin}:slower", "--out", str(tmp_path / "run")]
    assert main(args) == 0, capsys.readouterr().err
    metrics = store.read_metrics(tmp_path / "run")
    np.testing.assert_allclose(metrics["held_share"], np.broadcast_to([4 / 12, 8 / 12, 12 / 12], (2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(metrics["round_index"], np.broadcast_to([0, 1, 2], (2, 3)))
    assert np.all(np.isfinite(metrics["test_nll"]))
    assert store.read_toml(tmp_path / "run" / store.CONFIG)["metrics"] == f"{plugin}:buffer_share,test_nll"
    assert main(["plot", str(tmp_path / "run"), "--metric", "held_share", "--out", str(tmp_path / "p.png")]) == 0
    # the same folder with another metric set is another run: refused in one line, before computing
    before = sorted(p.name for p in (tmp_path / "run" / store.CHUNKS).iterdir())
    more = [a if a != "2" or i != args.index("--seeds") + 1 else "4" for i, a in enumerate(args)]
    more[more.index("--metrics") + 1] = "test_nll"
    capsys.readouterr()
    assert main(more) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a different run" in err and "metrics" in err
    assert sorted(p.name for p in (tmp_path / "run" / store.CHUNKS).iterdir()) == before


def test_metrics_from_a_toml_file_are_computed_recorded_and_resumed(tmp_path, capsys):
    """``metrics`` set in a --config file (not on the command line): the columns land in metrics.csv,
    the resolved config.toml records the set, sources.toml says where it came from, and rerunning with
    the run's own config.toml finds the run finished (nothing recomputed)."""
    data = blobs(tmp_path / "blobs")
    config = tmp_path / "my.toml"
    config.write_text(f'dataset = "idx:{data}"\npool_size = 40\ndev_size = 20\nbudget = 12\nn_initial = 4\n'
                      'query_size = 4\nstrategy = "margin"\nseeds = 2\nmetrics = "test_nll,ece(bins=5)"\n')
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--quiet", "--out", str(out)]) == 0, capsys.readouterr().err
    metrics = store.read_metrics(out)
    assert metrics["test_nll"].shape == metrics["ece"].shape == (2, 3)
    assert np.all(np.isfinite(metrics["test_nll"])) and np.all((metrics["ece"] >= 0) & (metrics["ece"] <= 1))
    assert store.read_toml(out / store.CONFIG)["metrics"] == "test_nll,ece(bins=5)"
    assert store.read_toml(out / store.SOURCES)["metrics"] == f"config {config}"
    chunks = {p.name: p.stat().st_mtime_ns for p in (out / store.CHUNKS).iterdir()}
    assert main(["run", "--config", str(out / store.CONFIG), "--quiet", "--out", str(out)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / store.CHUNKS).iterdir()} == chunks


def test_compare_reads_any_metric_column():
    from aljax import compare

    metrics = {"n_labeled": np.array([[4, 8], [4, 8]]), "ece": np.array([[0.2, 0.1], [0.3, 0.1]])}
    labels, values = compare.curve(metrics, "ece")
    assert labels.tolist() == [4, 8] and compare.paired(values[:, -1], values[:, 0])["wins"] == 0.0
    with pytest.raises(ValueError, match="no metric 'nll' in this run \\(columns: n_labeled, ece\\)"):
        compare.curve(metrics, "nll")
