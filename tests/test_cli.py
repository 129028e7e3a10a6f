"""The command line, run as a subprocess (`python -m aljax ...`): errors, a tiny run, resume, plot.

Validation errors must come before any compilation, so those subprocesses are fast; they are all
started at once. The end-to-end runs are tiny (500-image pool, 30 labels) and share a persistent
compilation cache.
"""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aljax import store
from aljax.data import MNIST_SHA256
from aljax.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte").exists(), reason="needs data/mnist")
TINY = ["--pool-size", "500", "--dev-size", "500", "--budget", "30", "--init", "10", "--query-size", "10",
        "--initial", "random", "--strategy", "margin", "--seeds", "3", "--chunk-size", "1", "--quiet"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax-cache")
    return os.environ | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache)}


def start(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "aljax", *map(str, args)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def aljax(args, env):
    proc = start(args, env)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    head = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_dataset(folder: Path, images: np.ndarray) -> None:
    """A 4-file IDX dataset with float32 ``images`` (n, 2, 2) for both train and test."""
    folder.mkdir(parents=True)
    labels = np.arange(len(images), dtype=np.uint8) % 2
    for split in ("train", "t10k"):
        (folder / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(images.astype(np.float32), 0x0D))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 0x08))


def error_cases(tmp: Path) -> dict[str, tuple[list, str]]:
    """name -> (arguments, text the one-line error must contain); each also gets ``--out tmp/name``."""
    (tmp / "empty").mkdir()
    corrupt = tmp / "corrupt" / "mnist"
    corrupt.mkdir(parents=True)
    for stem in MNIST_SHA256:
        if stem == "train-labels-idx1-ubyte":
            (corrupt / stem).write_bytes((MNIST / stem).read_bytes()[:-7])
        else:
            (corrupt / stem).symlink_to(MNIST / stem)
    nan_images = np.zeros((4000, 2, 2), np.float32)
    nan_images[3, 1, 1] = np.nan
    write_idx_dataset(tmp / "nan", nan_images)
    (tmp / "a-file").write_text("")
    (tmp / "bad.toml").write_text('stratgy = "margin"\n')
    return {
        "unknown strategy": (["--strategy", "margn"], "did you mean 'margin'"),
        "unknown dataset": (["--dataset", "minst"], "did you mean 'mnist'"),
        "budget over pool": (["--pool-size", "20", "--budget", "30"], "exceeds the pool of 20"),
        "query over pool": (["--pool-size", "20", "--init", "5", "--query-size", "25", "--budget", "30"],
                            "query size 25 exceeds the pool of 20"),
        "query not positive": (["--query-size", "0"], "--query-size must be positive"),
        "init over budget": (["--init", "50", "--budget", "30"], "initial labels (50) exceed the budget (30)"),
        "budget not whole rounds": (["--budget", "35"], "use --budget 30 or 40"),
        "no seeds": (["--seeds", "0"], "--seeds must be positive"),
        "missing data": (["--data-dir", tmp / "empty"], "make data"),
        "corrupt data": (["--data-dir", tmp / "corrupt"], "wrong SHA-256 checksum"),
        "nan features": (["--dataset", f"idx:{tmp / 'nan'}", "--pool-size", "100"], "NaN"),
        "unwritable out": (["--out", tmp / "a-file" / "run"], "cannot write to output folder"),
        "unknown config key": (["--config", tmp / "bad.toml"], "did you mean 'strategy'"),
    }


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory, env):
    tmp = tmp_path_factory.mktemp("errors")
    cases = error_cases(tmp)
    procs = {name: start(["run", "--out", tmp / "out" / name, *args], env) for name, (args, _) in cases.items()}
    return tmp, cases, {name: (p.wait(timeout=300), *p.communicate()) for name, p in procs.items()}


@needs_mnist
@pytest.mark.parametrize("case", [
    "unknown strategy", "unknown dataset", "budget over pool", "query over pool", "query not positive",
    "init over budget", "budget not whole rounds", "no seeds", "missing data", "corrupt data", "nan features",
    "unwritable out", "unknown config key"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(error_runs, case):
    tmp, cases, runs = error_runs
    rc, out, err = runs[case]
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("aljax: error: "), err
    assert cases[case][1] in err
    assert "Traceback" not in err
    assert not (tmp / "out" / case).exists()


def test_unknown_flag_and_help(env):
    rc, _, err = aljax(["run", "--out", "x", "--stratgey", "margin"], env)
    assert rc == 2 and "unrecognized arguments: --stratgey" in err
    procs = [start([*command, "--help"], env) for command in ([], ["run"], ["list"], ["plot"], ["reproduce"])]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "examples:" in out


def test_list_names_every_strategy_and_protocol(env):
    from aljax.data import PROTOCOLS
    from aljax.strategies import STRATEGIES

    rc, out, _ = aljax(["list"], env)
    assert rc == 0
    for name in [*STRATEGIES, *PROTOCOLS, "mnist", "fashion_mnist"]:
        assert f"  {name} " in out


@pytest.fixture(scope="module")
def finished(tmp_path_factory, env):
    """An uninterrupted tiny run; its settings come partly from a config file that flags override."""
    tmp = tmp_path_factory.mktemp("finished")
    (tmp / "base.toml").write_text('strategy = "entropy"\nseeds = 3\nlearning_rate = 0.1\n')
    out = tmp / "run"
    rc, _, err = aljax(["run", "--config", tmp / "base.toml", *TINY, "--out", out], env)
    assert rc == 0, err
    return out


@needs_mnist
def test_a_finished_run_folder_describes_itself(finished):
    config = store.read_toml(finished / store.CONFIG)
    assert config["strategy"] == "margin" and config["budget"] == 30 and config["n_classes"] == 10
    names = {p.name for p in finished.iterdir()}
    assert set(store.ALL_FILES) <= names and not any(n.endswith(".tmp") for n in names)
    metrics = store.read_metrics(finished)
    np.testing.assert_array_equal(metrics["n_labeled"], [[10, 20, 30]] * 3)
    assert ((metrics["test_accuracy"] > 0.1) & (metrics["test_accuracy"] < 1)).all()
    with np.load(finished / store.ORDERS) as orders:
        assert orders["order"].shape == (3, 30)
        assert all(len(set(row)) == 30 for row in orders["order"])  # no pool row labeled twice
    env_info = json.loads((finished / store.ENVIRONMENT).read_text())
    assert {"jax", "jaxlib", "optax", "python", "git_commit", "device"} <= env_info.keys()
    assert "| run | 3 | 30 |" in (finished / store.SUMMARY).read_text()


@needs_mnist
def test_rerunning_a_finished_run_changes_nothing_and_another_config_needs_force(finished, env):
    before = {p: p.stat().st_mtime_ns for p in finished.rglob("*")}
    rc, out, _ = aljax(["run", *TINY, "--out", finished], env)
    assert rc == 0
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*")} == before
    rc, _, err = aljax(["run", *TINY, "--strategy", "entropy", "--out", finished], env)
    assert rc == 2 and "--force" in err
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*")} == before


@needs_mnist
def test_a_killed_run_resumes_to_the_same_result(finished, env, tmp_path):
    out = tmp_path / "run"
    proc = start(["run", *TINY, "--out", out], env)
    first = store.chunk_path(out, 0)
    while not first.exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert first.exists() and not store.is_finished(out), "the run was not interrupted after its first chunk"
    kept = {p: p.stat().st_mtime_ns for p in (out / store.CHUNKS).glob("chunk-*.npz")}
    rc, _, err = aljax(["run", *TINY, "--out", out], env)
    assert rc == 0, err
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished chunks were not recomputed
    assert (out / store.METRICS).read_text() == (finished / store.METRICS).read_text()
    assert not list(out.rglob("*.tmp"))  # a temporary file of the killed run is cleaned up
    with np.load(out / store.ORDERS) as a, np.load(finished / store.ORDERS) as b:
        np.testing.assert_array_equal(a["order"], b["order"])


@needs_mnist
def test_plot_draws_several_runs_on_one_figure(finished, env, tmp_path):
    png = tmp_path / "cmp.png"
    rc, out, err = aljax(["plot", finished, finished.parent, "--out", png], env)
    assert rc == 2 and "no aljax run" in err  # the parent folder is not a run
    rc, out, err = aljax(["plot", finished, "--out", png], env)
    assert rc == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "| run | 3 | 30 |" in png.with_suffix(".md").read_text() and "| run | 3 | 30 |" in out


def test_progress_bar_ticks_over_chunks_and_rounds():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert Progress(2, 5, stream=io.StringIO()).hook is None  # not a terminal: no bar, no hook
    assert Progress(2, 5, quiet=True, stream=Terminal()).hook is None
    stream = Terminal()
    progress = Progress(2, 5, stream=stream)
    progress.start_chunk(0, 0, 9, 2)
    progress.hook(np.int32(3))
    assert progress.bar.n == 3
    progress.end_chunk()
    progress.start_chunk(1, 10, 19, 2)
    progress.hook(np.int32(1))
    assert progress.bar.n == 6
    progress.close()
    assert "chunk 2/2 seeds 10-19" in stream.getvalue()


def test_an_out_of_tree_strategy_runs_through_the_cli(env, tmp_path):
    """``--strategy mymod:my_margin`` (a copy of margin on PYTHONPATH) acquires as ``--strategy margin``."""
    (tmp_path / "mymod.py").write_text(
        "import jax\nimport jax.numpy as jnp\n\n"
        "def my_margin(key, ctx):\n"
        "    def one(logits):\n"
        "        p = jax.nn.softmax(logits)\n"
        "        first = jnp.argmax(p)\n"
        "        return jnp.max(jnp.where(jnp.arange(p.shape[0]) == first, -jnp.inf, p)) - p[first]\n"
        "    return jax.vmap(one)(ctx.logits)\n"
    )
    write_idx_dataset(tmp_path / "tiny", np.random.default_rng(0).uniform(size=(400, 2, 2)))
    env = env | {"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    args = ["run", "--dataset", f"idx:{tmp_path / 'tiny'}", "--pool-size", "200", "--dev-size", "100", "--budget",
            "40", "--init", "10", "--query-size", "10", "--initial", "random", "--seeds", "2", "--chunk-size", "2",
            "--quiet"]
    procs = {s: start([*args, "--strategy", s, "--out", tmp_path / s.replace(":", "_")], env)
             for s in ("margin", "mymod:my_margin")}
    for proc in procs.values():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    with np.load(tmp_path / "margin" / store.ORDERS) as a, np.load(tmp_path / "mymod_my_margin" / store.ORDERS) as b:
        np.testing.assert_array_equal(a["order"], b["order"])
    rc, _, err = aljax([*args, "--strategy", "subsample(mymod:my_margn)", "--out", tmp_path / "bad"], env)
    assert rc == 2 and "has no 'my_margn'" in err and err.count("\n") == 1
