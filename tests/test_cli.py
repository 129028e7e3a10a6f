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
# A tiny synthetic idx:DIR dataset (written by the fixtures below): no MNIST needed, compiles in seconds.
SMALL = ["--pool-size", "40", "--dev-size", "20", "--budget", "12", "--init", "4", "--query-size", "4",
         "--strategy", "margin", "--seeds", "4", "--chunk-size", "2", "--quiet"]


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


IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.float32): 0x0D}


def write_idx(folder: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> Path:
    """An ``idx:DIR`` dataset in ``folder`` (created) from each split's (images (n, h, w), labels (n,)):
    images of uint8 or float32, labels stored as uint8."""
    folder.mkdir(parents=True)
    for split, (x, y) in (("train", train), ("t10k", test)):
        (folder / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(x, IDX_CODES[x.dtype]))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(np.asarray(y).astype(np.uint8), 0x08))
    return folder


def write_idx_dataset(folder: Path, images: np.ndarray) -> None:
    """A 4-file IDX dataset with float32 ``images`` (n, 2, 2) for both train and test."""
    split = (images.astype(np.float32), np.arange(len(images), dtype=np.uint8) % 2)
    write_idx(folder, split, split)


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
    write_idx_dataset(tmp / "short", np.zeros((8, 2, 2), np.float32))
    (tmp / "short" / "t10k-labels-idx1-ubyte").write_bytes((tmp / "short" / "t10k-labels-idx1-ubyte").read_bytes()[:-1])
    (tmp / "a-file").write_text("")
    (tmp / "bad.toml").write_text('stratgy = "margin"\n')
    return {
        "unknown strategy": (["--strategy", "margn"], "did you mean 'margin'"),
        "unknown dataset": (["--dataset", "minst"], "did you mean 'mnist'"),
        "budget over pool": (["--pool-size", "20", "--budget", "30"], "exceeds the pool of 20"),
        "query over pool": (["--pool-size", "20", "--init", "5", "--query-size", "25", "--budget", "30"],
                            "query size 25 exceeds the pool of 20"),
        "query not positive": (["--query-size", "0"], "--query-size must be at least 1"),
        "init over budget": (["--init", "50", "--budget", "30"], "initial labels (50) exceed the budget (30)"),
        "budget not whole rounds": (["--budget", "35"], "use --budget 30 or 40"),
        "no seeds": (["--seeds", "0"], "--seeds must be at least 1"),
        "missing data": (["--data-dir", tmp / "empty"], "python -m aljax.fetch --dataset mnist --dest"),
        "identical seeds": (["--initial", "first", "--strategy", "margin", "--seeds", "3"], "--initial random"),
        "n_classes below the dataset's": (["--n-classes", "5"], "smaller than the dataset's 10 classes"),
        "zero learning rate": (["--learning-rate", "0"], "--learning-rate must be a positive number"),
        "patience below 1": (["--patience", "0"], "--patience must be at least 1"),
        "max_steps below 1": (["--max-steps", "0"], "--max-steps must be at least 1"),
        "typo inside a combinator": (["--strategy", "subsample(marign)"], "did you mean 'margin'"),
        "bald without dropout": (["--strategy", "power_sampling(bald)"], "has neither, so its scores are 0"),
        "truncated idx file": (["--dataset", f"idx:{tmp / 'short'}"], "must hold the four MNIST-layout IDX files"),
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
    "unwritable out", "unknown config key", "identical seeds", "n_classes below the dataset's", "zero learning rate",
    "patience below 1", "max_steps below 1", "typo inside a combinator", "truncated idx file", "bald without dropout"])
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
    assert "| margin | 3 | 30 |" in png.with_suffix(".md").read_text() and "| margin | 3 | 30 |" in out


def test_progress_bar_ticks_over_chunks_and_rounds():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert Progress(5, stream=io.StringIO()).hook is None  # not a terminal: no bar, no hook
    assert Progress(5, quiet=True, stream=Terminal()).hook is None
    stream = Terminal()
    progress = Progress(5, stream=stream)
    progress.begin(2)
    progress.start_chunk(0, 0, 9)
    progress.hook(np.int32(3))
    assert progress.bar.n == 3
    progress.end_chunk()
    progress.start_chunk(1, 10, 19)
    progress.hook(np.int32(1))
    assert progress.bar.n == 6
    progress.close()
    assert "chunk 2/2 seeds 10-19" in stream.getvalue()


def test_a_resumed_run_numbers_its_chunks_by_their_index():
    stream = io.StringIO()
    progress = Progress(5, stream=stream, chunk_size=4, total_chunks=3)
    progress.begin(1)  # chunks 0 and 1 were finished by an earlier invocation
    progress.start_chunk(0, 8, 11)
    progress.end_chunk()
    assert stream.getvalue().startswith("chunk 3/3 (seeds 8-11) done")


def test_progress_without_a_terminal_prints_a_line_per_chunk_with_an_eta():
    stream = io.StringIO()
    progress = Progress(5, stream=stream)
    progress.begin(3)
    for position in range(3):
        progress.start_chunk(position, 4 * position, 4 * position + 3)
        progress.end_chunk()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("chunk 1/3 (seeds 0-3) done") and "ETA" in lines[0]


# ----------------------------------------------------------------------------- the user's path, hardened


def blobs_dataset(folder: Path, classes: int = 4, side: int = 2, n_train: int = 60, n_test: int = 20) -> Path:
    """An idx:DIR dataset of ``classes`` classes of float images (side x side), class c's pixels around
    c: ``n_train`` training and ``n_test`` test images."""
    rng = np.random.default_rng(0)
    splits = []
    for n in (n_train, n_test):
        y = (np.arange(n) % classes).astype(np.uint8)
        splits.append(((rng.normal(0, 0.3, (n, side, side)) + y[:, None, None]).astype(np.float32), y))
    return write_idx(folder, *splits)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory, env):
    """A finished 4-seed run (chunks of 2) on the blobs dataset, and the arguments that made it."""
    tmp = tmp_path_factory.mktemp("small")
    args = ["--dataset", f"idx:{blobs_dataset(tmp / 'blobs')}", *SMALL]
    rc, _, err = aljax(["run", *args, "--out", tmp / "run"], env)
    assert rc == 0, err
    return tmp, args


def test_bad_input_leaves_a_previous_result_byte_identical(small, env):
    tmp, args = small
    run = tmp / "run"
    (tmp / "zero").mkdir(exist_ok=True)
    before = snapshot(run)
    cases = {  # arguments -> text of the one-line error
        ("run", *args, "--strategy", "subsample(marign)", "--out", run): "did you mean 'margin'",
        ("run", *args, "--learning-rate", "-1", "--out", run): "--learning-rate must be a positive number",
        ("run", *args, "--n-classes", "3", "--out", run): "smaller than the dataset's 4 classes",
        ("run", *args, "--seeds", "2", "--out", run): "holds a different run",  # fewer seeds: not an extension
        ("run", *args, "--chunk-size", "4", "--out", run): "holds a different run",
        ("run", *args, "--initial", "first", "--out", run): "pass --initial random",
        ("plot", run, tmp / "blobs", "--out", run / "curve.png"): "no aljax run",
        ("plot", run, "--metric", "accuracy", "--out", run / "curve.png"): "unknown metric",
        ("list", "--bogus"): "unrecognized arguments: --bogus",
        ("reproduce", "--seeds", "1"): "need 2 <= --auto-seeds <= --seeds",
    }
    procs = {case: start(case, env) for case in cases}
    for case, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (case, err)
        assert err.count("\n") == 1 and cases[case] in err and "Traceback" not in err, (case, err)
    assert snapshot(run) == before


def test_more_seeds_extend_a_finished_run_as_if_run_at_once(small, env):
    tmp, args = small
    grown = tmp / "grown"
    assert aljax(["run", *args, "--out", grown], env)[0] == 0
    kept = {p: p.read_bytes() for p in (grown / store.CHUNKS).glob("chunk-*.npz")}
    rc, _, err = aljax(["run", *args, "--seeds", "7", "--out", grown], env)
    assert rc == 0, err
    assert all(p.read_bytes() == b for p, b in kept.items())  # the 4 finished seeds were not recomputed
    rc, _, err = aljax(["run", *args, "--seeds", "7", "--out", tmp / "at-once"], env)
    assert rc == 0, err
    assert (grown / store.METRICS).read_text() == (tmp / "at-once" / store.METRICS).read_text()
    assert store.read_toml(grown / store.CONFIG)["seeds"] == 7


def test_combinators_run_from_the_command_line_and_list_shows_them(small, env):
    tmp, args = small
    rc, _, err = aljax(["run", *args, "--strategy", "subsample(margin,20)", "--out", tmp / "sub"], env)
    assert rc == 0, err
    proc = subprocess.run(f"{sys.executable} -m aljax list | head -3", shell=True, cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.stderr == "" and len(proc.stdout.splitlines()) == 3  # a closed pipe ends quietly
    rc, out, _ = aljax(["list"], env)
    assert "combinators" in out and "  subsample(...) " in out and "protocols:" in out


def test_plot_names_runs_by_strategy_and_warns_when_they_differ(small, env, tmp_path):
    tmp, args = small
    other = tmp_path / "entropy"
    assert aljax(["run", *args, "--strategy", "entropy", "--budget", "16", "--out", other], env)[0] == 0
    rc, out, err = aljax(["plot", tmp / "run", other, "--out", tmp_path / "cmp.png"], env)
    assert rc == 0, err
    assert "warning: the runs differ in budget (12, 16)" in err and "differ in strategy" not in err
    assert "| margin, budget=12 |" in out and "| entropy, budget=16 |" in out and "runs differ in budget" in out


@pytest.mark.parametrize("delay", [0.3, 2.5])  # while importing; while compiling or running
def test_ctrl_c_ends_the_run_with_130_and_a_rerun_resumes(small, env, tmp_path, delay):
    tmp, args = small
    proc = start(["run", *args, "--out", tmp_path / "run"], env)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err and "Traceback" not in err


def test_an_out_of_tree_strategy_runs_through_the_cli(env, tmp_path):
    """``--strategy mymod:my_margin`` (a copy of margin on PYTHONPATH) acquires as ``--strategy margin``."""
    (tmp_path / "mymod.py").write_text(
        "import jax\nimport jax.numpy as jnp\nimport aljax\n\n"
        "@aljax.declare.strategy\n"
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


def test_a_run_keeps_its_chunk_size_and_schedule_and_old_folders_stay_lockstep(small, env, tmp_path):
    import shutil

    tmp, args = small
    assert store.read_toml(tmp / "run" / store.CONFIG)["schedule"] == "continuous"  # the CPU default
    old = tmp_path / "old"
    shutil.copytree(tmp / "run", old)  # a folder from before schedules (and manifests): no schedule key
    (old / "manifest.json").unlink()
    settings = store.read_toml(old / store.CONFIG)
    del settings["schedule"]
    (old / store.CONFIG).write_text(store.to_toml(settings))
    bare = [a for i, a in enumerate(args) if "--chunk-size" not in args[max(i - 1, 0):i + 1]]  # no --chunk-size
    rc, _, err = aljax(["run", *bare, "--seeds", "6", "--out", old], env)
    assert rc == 0, err
    extended = store.read_toml(old / store.CONFIG)
    assert extended["chunk_size"] == 2 and "schedule" not in extended and extended["seeds"] == 6
    assert set(store.chunk_sizes(old).values()) == {2}
