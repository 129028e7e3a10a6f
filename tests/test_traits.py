"""Declared traits (aljax.declare) against traced behaviour, over every registry entry; combinator traits;
and the extension points: plot baselines, the tracker hook, out-of-tree datasets."""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import pytest

from aljax import declare
from aljax.models import MODELS, chunked, from_functions, make_model
from aljax.strategies import STRATEGIES, resolve, stateful, traits
from aljax.testing import check_strategy
from traced import convolves, embedding_reads_params, probe_context, reads_key, reads_samples, samples_differ

# ----------------------------------------------------------------------------- declarations vs tracing


def batch_dependent(strategy) -> bool:
    """Whether a strategy's traced program changes with the batch size (a batch-aware one reads it)."""
    pair = stateful(strategy)

    def program(query_size):
        ctx = probe_context(query_size=query_size)
        return str(jax.make_jaxpr(lambda key: pair.score(key, ctx, pair.init(ctx))[0])(jax.random.key(2)))

    return program(2) != program(3)


def traced_traits(strategy) -> dict[str, bool]:
    return {"batch_aware": batch_dependent(strategy), "stochastic": reads_key(strategy),
            "needs_samples": reads_samples(strategy)}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_declares_what_it_does(name):
    assert declare.is_declared(STRATEGIES[name], "strategy")
    assert traits(STRATEGIES[name]) == traced_traits(STRATEGIES[name])


@pytest.mark.parametrize("spec", ["subsample(margin,5)", "subsample(kcenter,5)", "epsilon(margin,0.5)",
                                  "alternate(margin,entropy)", "alternate(kcenter,kmeans)",
                                  "softmax_sampling(bald,2)", "power_sampling(entropy)", "epsilon(bald(samples=3))"])
def test_combinators_derive_their_traits_from_their_arguments(spec):
    derived = traits(resolve(spec))
    traced = traced_traits(resolve(spec))
    assert derived["stochastic"] == traced["stochastic"] and derived["needs_samples"] == traced["needs_samples"]
    assert not derived["batch_aware"] or traced["batch_aware"]  # batch-aware is a guarantee: every round


def test_combinator_traits_by_hand():
    assert traits(resolve("subsample(bald,100)")) == {"batch_aware": False, "stochastic": True, "needs_samples": True}
    assert traits(resolve("epsilon(margin,0.1)"))["stochastic"]
    assert not traits(resolve("epsilon(margin,0)"))["stochastic"]  # reads its key, but never explores
    assert traits(resolve("epsilon(kcenter,0)"))["batch_aware"]
    assert traits(resolve("subsample(kcenter,100)"))["batch_aware"]
    assert not traits(resolve("alternate(kcenter,entropy)"))["batch_aware"]  # entropy's rounds rank no batch
    assert traits(resolve("alternate(kcenter,kmeans)"))["batch_aware"]
    assert not traits(resolve("alternate(margin,entropy)"))["stochastic"]
    assert traits(resolve("bald(samples=5)")) == traits(STRATEGIES["bald"])  # settings keep the declaration


# models: (spec, sample shape) with settings that turn a trait on and off
MODEL_CASES = [("softmax_regression", (6,)), ("mlp", (6,)), ("mlp(hidden=4,dropout=0.5)", (6,)),
               ("cnn_gal2017", (28, 28, 1)), ("cnn_gal2017(filters=2,kernel=2,hidden=4,dropout_conv=0,dropout_dense=0)",
                                             (8, 8, 1)),
               ("cnn_batchbald2019", (28, 28, 1)), ("ensemble", (6,)), ("ensemble(members=1)", (6,)),
               ("ensemble(cnn_gal2017(filters=2,kernel=2,hidden=4),members=2)", (8, 8, 1)),
               ("ensemble(softmax_regression,members=2)", (6,)),
               ("standardized", (6,)), ("standardized(mlp(dropout=0.5))", (6,)), ("standardized(softmax_regression)", (6,)),
               ("mc_averaged", (6,)), ("mc_averaged(cnn_gal2017(filters=2,kernel=2,hidden=4),samples=2)", (8, 8, 1))]


@pytest.mark.parametrize("spec,shape", MODEL_CASES)
def test_every_model_declares_its_dropout_convolutions_and_embedding(spec, shape):
    model = make_model(spec, 3)
    assert model.dropout == samples_differ(model, shape)
    assert model.convolutional == convolves(model, shape)
    assert model.fixed_embedding == (not embedding_reads_params(model, shape))
    rows = chunked(model, 1)  # forward_rows keeps the traits, and the embedding's dependence on the params
    assert rows.fixed_embedding == model.fixed_embedding == (not embedding_reads_params(rows, shape))


def test_every_model_factory_is_declared_as_its_default_model():
    assert {spec for spec, _ in MODEL_CASES} >= set(MODELS)
    for name, factory in MODELS.items():
        model = make_model(name, 3)
        assert declare.traits_of(factory, "model") == {trait: getattr(model, trait) for trait in declare.TRAITS["model"]}


def test_an_out_of_tree_factory_lends_its_declaration_to_its_models():
    from aljax.models import mlp

    @declare.model(dropout=True)
    def my_net(n_classes, *, hidden=4):
        plain = mlp(n_classes, hidden=hidden, dropout=0.5)
        return plain._replace(dropout=None, convolutional=None, fixed_embedding=None)  # it says nothing itself

    MODELS["my_net_for_test"] = my_net
    try:
        model = make_model("my_net_for_test(hidden=5)", 3)
    finally:
        del MODELS["my_net_for_test"]
    assert model.dropout is True and model.convolutional is False and model.fixed_embedding is False


def test_kcenter_recomputes_its_distances_on_a_model_that_does_not_declare_a_fixed_embedding():
    """An out-of-tree model says nothing of its embedding, which reads the params: k-center must not keep
    round 1's distances. Round 1 embeds by the first coordinate, round 2 by the second; labeled: row 0,
    then row 1 (round 1's pick). Recomputed, row 2 is farthest (5 from both); kept, row 2 is 0 from row 0
    in round 1's embedding, so row 3 would win."""
    import jax.numpy as jnp

    from aljax.strategies import kcenter, make_context, select

    x = jnp.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [3.0, 4.0]])
    model = from_functions(lambda key, shape: {"s": jnp.ones(shape)}, lambda p, x: x * p["s"],
                           embed=lambda p, x: x * p["s"])
    assert model.fixed_embedding is None and not declare.traits_of(model, "model")["fixed_embedding"]

    def two_rounds(model):
        order = jnp.array([0, 1])
        ctx = make_context(model, {"s": jnp.array([1.0, 0.0])}, x, jnp.zeros((4, 2)), jnp.arange(4) >= 1, order,
                           jnp.zeros(2, jnp.int32), 1, 1)
        scores, state = kcenter.score(None, ctx, kcenter.init(ctx))
        first = select(scores, ctx.selectable, 1)
        ctx = make_context(model, {"s": jnp.array([0.0, 1.0])}, x, jnp.zeros((4, 2)), jnp.arange(4) >= 2, order,
                           jnp.zeros(2, jnp.int32), 2, 1)
        return first.tolist(), select(kcenter.score(None, ctx, state)[0], ctx.selectable, 1).tolist()

    assert two_rounds(model) == ([1], [2])
    assert two_rounds(model._replace(fixed_embedding=True)) == ([1], [3])  # a false declaration keeps stale ones


def test_check_strategy_reads_the_declaration_and_catches_a_false_one():
    def noisy(key, ctx):
        return jax.random.uniform(key, ctx.selectable.shape)

    with pytest.raises(AssertionError, match="declare it"):
        check_strategy(declare.strategy(noisy))  # declared deterministic: its scores depend on the key
    check_strategy(declare.strategy(stochastic=True)(lambda key, ctx: noisy(key, ctx)))

    def first_rows(key, ctx):  # ranks one row first, not a batch
        return -jax.numpy.arange(ctx.selectable.shape[0], dtype=jax.numpy.float32).at[0].set(0)

    with pytest.raises(AssertionError, match="batch-aware"):
        check_strategy(declare.strategy(batch_aware=True)(lambda key, ctx: first_rows(key, ctx) * 0))


def test_no_private_jax_import_and_no_jaxpr_reading_for_traits():
    root = pathlib.Path(__file__).parents[1] / "aljax"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "jax._src" not in text, path
        assert "dce_jaxpr" not in text and "make_jaxpr" not in text, path


def test_is_stochastic_reads_declarations():
    from aljax.strategies import is_stochastic

    assert is_stochastic("bald") and is_stochastic("subsample(margin)") and is_stochastic("kmeans")
    assert not is_stochastic("margin") and not is_stochastic("kcenter") and not is_stochastic("alternate(margin,entropy)")
    assert dataclasses.is_dataclass(probe_context())


# ----------------------------------------------------------------------------- cluster building blocks


def test_farthest_first_and_nearest_distances_by_hand():
    import jax.numpy as jnp

    from aljax import cluster

    x = jnp.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    d2 = cluster.nearest_sq_distances(x, x[:1], jnp.array([True]))  # one center at 0
    assert d2.tolist() == [0.0, 1.0, 4.0, 100.0, 121.0]
    assert cluster.nearest_sq_distances(x, x[:2], jnp.array([False, False])).tolist() == [jnp.inf] * 5
    batch, after = cluster.farthest_first(x, d2, jnp.array([False, True, True, True, True]), 2)
    assert batch.tolist() == [4, 2]  # 11 is farthest from 0; then 2 (4 from 0) beats 10 (1 from 11)
    assert after.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


# ----------------------------------------------------------------------------- aljax plot --baseline


def write_run(folder: pathlib.Path, strategy: str, accuracy, seeds, seed: int = 0, labels=(10, 20, 30)) -> None:
    """A finished run folder (config.toml, metrics.csv) with per-seed ``accuracy`` (S, R)."""
    import numpy as np

    from aljax import store

    accuracy = np.asarray(accuracy, np.float64)
    folder.mkdir(parents=True)
    (folder / store.CONFIG).write_text(store.to_toml({"strategy": strategy, "dataset": "mnist", "seed": seed,
                                                       "budget": labels[-1]}))
    metrics = {"n_labeled": np.tile(np.asarray(labels, np.float64), (len(seeds), 1)), "test_accuracy": accuracy}
    (folder / store.METRICS).write_text(store.metrics_csv(np.asarray(seeds), metrics))


def test_plot_baseline_pairs_seeds_and_reports_the_difference_and_win_rate(tmp_path, capsys):
    import numpy as np

    from aljax import cli

    base = np.array([[0.5, 0.6, 0.7], [0.4, 0.5, 0.6], [0.5, 0.7, 0.8], [0.3, 0.4, 0.5]])
    write_run(tmp_path / "random", "random", base, seeds=[0, 1, 2, 3])
    better = base + np.array([[0.1], [0.2], [0.0], [-0.1]])  # seed 3 loses, seed 2 ties
    write_run(tmp_path / "margin", "margin", better[[2, 0, 1, 3]], seeds=[2, 0, 1, 3])  # another row order
    png = tmp_path / "cmp.png"
    assert cli.main(["plot", str(tmp_path / "margin"), "--baseline", str(tmp_path / "random"), "--out", str(png)]) == 0
    table = png.with_suffix(".md").read_text()
    # final: differences 0.1, 0.2, 0.0, -0.1 -> mean +0.05, wins 2 of 4
    paired = table.split("Paired difference against random")[1]
    row = next(line for line in paired.splitlines() if line.startswith("| margin | 4 |"))
    assert "+0.0500" in row and "| 50% |" in row
    assert png.read_bytes()[:4] == b"\x89PNG"
    # by legend name, among the runs; the same two runs again
    assert cli.main(["plot", str(tmp_path / "margin"), str(tmp_path / "random"), "--baseline", "random",
                     "--out", str(png)]) == 0


@pytest.mark.parametrize("case,message", [
    ("other base seed", "base seeds differ"), ("disjoint seeds", "share 0 seed(s)"),
    ("other labels", "other label counts"), ("unknown", "names none of the runs")])
def test_plot_baseline_refuses_unpaired_runs_in_one_line(tmp_path, capsys, case, message):
    import numpy as np

    from aljax import cli

    acc = np.full((2, 3), 0.5)
    write_run(tmp_path / "random", "random", acc, seeds=[0, 1])
    kwargs = {"other base seed": {"seed": 1}, "disjoint seeds": {"seeds": [5, 6]},
              "other labels": {"labels": (10, 30, 50)}}.get(case, {})
    write_run(tmp_path / "margin", "margin", acc, **({"seeds": [0, 1]} | kwargs))
    png = tmp_path / "cmp.png"
    baseline = "entropy" if case == "unknown" else str(tmp_path / "random")
    assert cli.main(["plot", str(tmp_path / "margin"), str(tmp_path / "random"), "--baseline", baseline,
                     "--out", str(png)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("aljax: warning")]
    assert len(errors) == 1 and message in errors[0] and not png.exists()


# ----------------------------------------------------------------------------- trackers


def read_events(logdir: pathlib.Path) -> dict[str, dict[int, float]]:
    """Scalars of the TensorBoard event files in ``logdir``: tag -> {step: value} (TFRecord framing:
    length u64, its CRC u32, the Event proto, its CRC u32)."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def test_chunk_rows_and_the_tensorboard_adapter_write_what_they_are_given(tmp_path):
    import numpy as np

    pytest.importorskip("tensorboardX", reason="the tensorboard tracker needs tensorboardX (aljax[tracking])")
    from aljax import tracking

    result = {"n_labeled": np.array([[10, 20], [10, 20]]), "test_accuracy": np.array([[0.5, 0.75], [0.25, 0.625]]),
              "order": np.zeros((2, 20), np.int32)}
    rows = list(tracking.chunk_rows(np.array([4, 5]), result))
    assert rows[1] == {"seed": 4, "round": 1, "n_labeled": 20, "test_accuracy": 0.75} and len(rows) == 4
    saved = []
    with tracking.TensorBoard(tmp_path / "tb") as board:
        tracking.on_chunk(board, then=lambda *args: saved.append(args[0]))(3, np.array([4, 5]), result, 1.0)
    assert saved == [3]
    assert read_events(tmp_path / "tb") == {"test_accuracy/seed_4": {10: 0.5, 20: 0.75},
                                            "test_accuracy/seed_5": {10: 0.25, 20: 0.625}}
    with pytest.raises(tracking.TrackerError, match="unknown tracker"):
        tracking.tracker_opener("wandb:x")


# ----------------------------------------------------------------------------- out-of-tree datasets

PLUGIN = '''
import numpy as np
import aljax
from aljax.data import Raw


@aljax.declare.dataset
def blobs(n=120, classes=3):
    """Gaussian blobs as 4x4 uint8 images, labels 0..classes-1."""
    rng = np.random.default_rng(0)
    def draw(rows):
        y = np.arange(rows) % classes
        x = np.clip(40 + 60 * y[:, None, None] + rng.normal(0, 20, (rows, 4, 4)), 0, 255)
        return x.astype(np.uint8), y
    return Raw(*draw(n), *draw(n // 2), name="blobs")


@aljax.declare.dataset
def floats():
    x = np.zeros((8, 4, 4), np.float32)
    return Raw(x, np.arange(8) % 2, x, np.arange(8) % 2)


@aljax.declare.dataset
def negative():
    x = np.zeros((8, 4, 4), np.uint8)
    return Raw(x, np.arange(8) - 1, x, np.arange(8) % 2)


@aljax.declare.dataset
def one_class():
    x = np.zeros((8, 4, 4), np.uint8)
    return Raw(x, np.zeros(8, int), x, np.zeros(8, int))


@aljax.declare.dataset
def shapes():
    return Raw(np.zeros((8, 4, 4), np.uint8), np.arange(8) % 2, np.zeros((8, 5, 4), np.uint8), np.arange(8) % 2)


def undeclared():
    return blobs()
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "aljax_test_datasets.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "aljax_test_datasets"


@pytest.mark.parametrize("function,message", [
    ("floats", "train_x must be a uint8"), ("negative", "holds the label -1"), ("one_class", "at least 2"),
    ("shapes", "differ in shape"), ("undeclared", "@aljax.declare.dataset"), ("missing", "has no 'missing'"),
    ("blobs(size=3)", "has no setting 'size'")])
def test_an_out_of_tree_dataset_is_checked_in_one_line(plugin, function, message):
    from aljax.data import DataError, load_dataset

    with pytest.raises(DataError, match=message.replace("(", r"\(")) as err:
        load_dataset(f"{plugin}:{function}")
    assert "\n" not in str(err.value)


def test_an_out_of_tree_dataset_runs_from_the_cli_and_toml_with_a_tracker(plugin, tmp_path):
    import numpy as np

    pytest.importorskip("tensorboardX", reason="the tensorboard tracker needs tensorboardX (aljax[tracking])")
    from aljax import cli, store

    raw = __import__("aljax.data", fromlist=["load_dataset"]).load_dataset(f"{plugin}:blobs(n=90)")
    assert raw.train_x.shape == (90, 4, 4) and raw.n_classes == 3
    config = tmp_path / "run.toml"
    config.write_text(f'dataset = "{plugin}:blobs(n=60)"\npool_size = 40\ndev_size = 20\nbudget = 12\n'
                      'n_initial = 4\nquery_size = 4\nseeds = 2\nchunk_size = 1\n')
    out = tmp_path / "run"
    assert cli.main(["run", "--config", str(config), "--tracker", f"tensorboard:{tmp_path / 'tb'}", "--quiet",
                     "--out", str(out)]) == 0
    metrics = store.read_metrics(out)
    events = read_events(tmp_path / "tb")
    for s in range(2):
        curve = events[f"test_accuracy/seed_{s}"]
        assert sorted(curve) == metrics["n_labeled"][s].astype(int).tolist()
        np.testing.assert_allclose(list(curve.values()), metrics["test_accuracy"][s], rtol=1e-6)
    assert cli.main(["run", "--config", str(config), "--tracker", "wandb:x", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
