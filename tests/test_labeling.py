"""Human-in-the-loop labeling: project state, oracles, CLI round trips, crash safety, bad input."""

from __future__ import annotations

import argparse
import csv
import errno
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax import labeling
from aljax.atomic import write_csv
from aljax.labeling import cli as label_cli, report, session
from aljax.data import Data, make_pool, make_split
from aljax.loop import Config, Hyper, make_run

REPO = Path(__file__).resolve().parents[1]
N, E, D, C = 120, 30, 12, 3  # synthetic pool, holdout, features, classes


@pytest.fixture(scope="module")
def blobs():
    """Gaussian blobs: x (N + E, D) float32, y (N + E,); the last E rows play the eval/holdout set."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, N + E)
    x = (rng.normal(size=(C, D))[y] + rng.normal(size=(N + E, D))).astype(np.float32)
    return x, y


def make_project(tmp: Path, x, y, seed_rows, holdout_rows=()) -> Path:
    np.save(tmp / "x.npy", x)
    with open(tmp / "seed.csv", "w") as f:
        f.write("id,label,holdout\n")
        for i in list(seed_rows) + list(holdout_rows):
            f.write(f"{i},{y[i]},{int(i in holdout_rows)}\n")
    labeling.init_project(tmp / "p", tmp / "x.npy", [str(c) for c in range(C)], seed_labels=tmp / "seed.csv")
    return tmp / "p"


def oracle_for(y) -> labeling.SimulatedOracle:
    return labeling.SimulatedOracle({str(i): str(c) for i, c in enumerate(y)})


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- same as the loop


def test_simulated_oracle_rounds_equal_make_run(tmp_path, blobs):
    """next/add with a SimulatedOracle acquires exactly what make_run acquires: same strategy, the loop's
    eval set as the project's holdout labels, the same buffer length; fits and params bit-identical."""
    x, y = blobs
    rounds, q = 4, 5
    config = Config(strategy="margin", n_initial=6, query_size=q, rounds=rounds, n_classes=C, capacity=N + E)
    data = Data(pool=make_pool(x[:N], y[:N]), eval=make_split(x[N:], y[N:]), test=make_split(x[N:], y[N:]))
    state, info = jax.jit(make_run(config))(data, Hyper(), jax.random.key(0))

    root = make_project(tmp_path, x, y, seed_rows=range(6), holdout_rows=range(N, N + E))
    for _ in range(rounds):
        assert len(labeling.label_round(root, oracle_for(y), n=q, strategy="margin")) == q
    project = labeling.load_project(root)
    fitted = labeling.current_fit(project)

    np.testing.assert_array_equal(project.rows(project.train), np.asarray(state.order)[: int(state.n_labeled)])
    assert [h["holdout_correct"] for h in fitted.history] == np.asarray(info.eval_correct).tolist()
    assert [h["steps"] for h in fitted.history] == np.asarray(info.steps).tolist()
    np.testing.assert_array_equal(fitted.params["W"], np.asarray(state.params["W"]))


# ----------------------------------------------------------------------------- rerun and crash safety


def test_rerun_next_and_crashes_keep_every_label(tmp_path, blobs, monkeypatch, capsys):
    x, y = blobs
    root = make_project(tmp_path, x[:N], y[:N], seed_rows=range(4))
    labeling.label_round(root, oracle_for(y), n=5)
    labels_before = (root / labeling.LABELS).read_bytes()
    batch = labeling.batch_path(labeling.load_project(root))

    # Ctrl-C after the fit is saved, before the proposal is written.
    def interrupted(path, *a, **k):
        if Path(path).parent.name == labeling.BATCHES:
            raise KeyboardInterrupt
        return write_csv(path, *a, **k)

    monkeypatch.setattr(report, "write_csv", interrupted)
    assert label_cli.main(["next", "--project", str(root), "--n", "5"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (root / labeling.FIT).exists() and not batch.exists()
    assert (root / labeling.LABELS).read_bytes() == labels_before
    monkeypatch.undo()

    # Rerunning proposes a batch, and rerunning again (same state) the very same batch.
    assert label_cli.main(["next", "--project", str(root), "--n", "5"]) == 0
    first = [r["id"] for r in read_rows(batch)]
    fit_bytes = (root / labeling.FIT).read_bytes()
    assert label_cli.main(["next", "--project", str(root), "--n", "5"]) == 0
    assert [r["id"] for r in read_rows(batch)] == first
    assert (root / labeling.FIT).read_bytes() == fit_bytes  # no refit without new labels

    # The expert fills the batch; a crash in the middle of saving leaves the old labels file whole.
    rows = read_rows(batch)
    write_csv(batch, labeling.PROPOSAL_COLUMNS,
                       [(r["id"], r["path"], r["predicted"], r["confidence"], y[int(r["id"])]) for r in rows])
    real_replace = os.replace

    def killed(src, dst):
        if Path(dst).name == labeling.LABELS:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    assert label_cli.main(["add", "--project", str(root), str(batch)]) == 130
    monkeypatch.undo()
    assert (root / labeling.LABELS).read_bytes() == labels_before
    capsys.readouterr()

    # Rerun add: the labels arrive; rerunning it again adds nothing and changes nothing.
    assert label_cli.main(["add", "--project", str(root), str(batch)]) == 0
    after = (root / labeling.LABELS).read_bytes()
    assert label_cli.main(["add", "--project", str(root), str(batch)]) == 0
    assert (root / labeling.LABELS).read_bytes() == after
    labels = labeling.load_project(root).labels
    assert len(labels) == 4 + 5 + 5 and [l.id for l in labels[-5:]] == first
    assert all(l.label == str(y[int(l.id)]) for l in labels)

    # A filled proposal is never overwritten before its labels are added.
    project = labeling.load_project(root)
    pending = labeling.batch_path(project)
    write_csv(pending, labeling.PROPOSAL_COLUMNS, [(project.ids[50], "", "", "", y[50])])
    assert label_cli.main(["next", "--project", str(root)]) == 2
    assert "not added yet" in capsys.readouterr().err
    assert len(read_rows(pending)) == 1


# ----------------------------------------------------------------------------- bad input


BAD_CSVS = {
    "unknown id": ("id,label\n0,1\nnope,2\n", "unknown id 'nope'"),
    "unknown class": ("id,label\n0,1\n5,cat\n", "unknown class 'cat'"),
    "duplicate rows": ("id,label\n0,1\n7,2\n7,2\n", "appears twice"),
    "no label column": ("id,guess\n0,1\n", "no 'label' column"),
    "relabel": ("id,label\n1,2\n", "already labeled"),
    "bad holdout": ("id,label,holdout\n0,1,maybe\n", "holdout must be 0 or 1"),
}


@pytest.fixture(scope="module")
def small_project(tmp_path_factory, blobs):
    x, y = blobs
    tmp = tmp_path_factory.mktemp("bad")
    np.save(tmp / "x.npy", x[:20])
    (tmp / "seed.csv").write_text("id,label\n1,1\n")
    labeling.init_project(tmp / "p", tmp / "x.npy", ["0", "1", "2"], seed_labels=tmp / "seed.csv")
    return tmp / "p"


@pytest.mark.parametrize("case", BAD_CSVS)
def test_bad_csv_is_one_line_error_and_changes_nothing(small_project, tmp_path, capsys, case):
    text, message = BAD_CSVS[case]
    (tmp_path / "filled.csv").write_text(text)
    before = {p.name: p.read_bytes() for p in small_project.iterdir() if p.is_file()}
    assert label_cli.main(["add", "--project", str(small_project), str(tmp_path / "filled.csv")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in small_project.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("argv, message", [
    (["status", "--project", "/nonexistent/aljax"], "not a labeling project"),
    (["init", "--data", "/nonexistent/x.npy", "--classes", "a,b", "--project", "{tmp}/p"], "no such file"),
    (["init", "--data", "{tmp}/x.npy", "--classes", "a", "--project", "{tmp}/p"], "at least two"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, argv, message):
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    assert label_cli.main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_init_refuses_to_overwrite_a_project(small_project, capsys):
    labels = (small_project / labeling.LABELS).read_bytes()
    argv = ["init", "--data", str(small_project / labeling.FEATURES), "--classes", "0,1,2", "--project", str(small_project)]
    assert label_cli.main(argv) == 2
    assert "already holds" in capsys.readouterr().err
    assert (small_project / labeling.LABELS).read_bytes() == labels


# ----------------------------------------------------------------------------- pieces


def test_cold_start_picks_distinct_unlabeled_rows(blobs):
    x, _ = blobs
    selectable = np.arange(len(x)) % 3 != 0
    rows = np.asarray(labeling.cold_start(jax.random.key(1), x, selectable, 9))
    assert len(set(rows.tolist())) == 9 and selectable[rows].all()


def test_stopping_criteria_by_hand():
    """The fits' history goes through aljax.stopping.stop_rounds: the first fit where a criterion holds."""
    fits = (dict(min_confidence=0.5, agreement=None), dict(min_confidence=0.95, agreement=0.98),
            dict(min_confidence=0.85, agreement=0.995))
    c = labeling.stopping_criteria(fits, spent=30, budget=30, confidence=0.9, kappa=0.99)
    assert (c["max_confidence"].met, c["max_confidence"].at, c["max_confidence"].value) == (True, 2, 0.85)
    assert (c["stable_predictions"].met, c["stable_predictions"].at) == (True, 3)
    assert c["budget"].met and not labeling.stopping_criteria(fits, spent=29, budget=30)["budget"].met
    assert not labeling.stopping_criteria(fits, 30, None, kappa=0.99, window=2)["stable_predictions"].met
    c = labeling.stopping_criteria((), spent=3, budget=None)
    assert not any(v.met for v in c.values()) and c["max_confidence"].value is None


def test_csv_oracle_reads_the_filled_cells(tmp_path):
    (tmp_path / "f.csv").write_text("id,path,predicted,confidence,label\na,,,,x\nb,,,,\nc,,,, y \n")
    assert labeling.CsvOracle(tmp_path / "f.csv").label(["c", "b", "a", "z"]) == ["y", None, "x", None]


def test_register_adds_the_label_group():
    parser = argparse.ArgumentParser(prog="aljax")
    label_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["label", "next", "--project", "p", "--n", "3", "--strategy", "entropy"])
    assert (args.command, args.label_command, args.n, args.strategy) == ("label", "next", 3, "entropy")
    assert callable(args.func)


# ----------------------------------------------------------------------------- end to end, images


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "aljax", "label", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.mnist
def test_expert_session_on_an_image_folder(tmp_path):
    """The test plays the expert against the CLI in subprocesses, on 60 MNIST digits saved as PNGs."""
    from PIL import Image

    from aljax.data import load_mnist

    raw = load_mnist(REPO / "data" / "mnist")
    (tmp_path / "digits").mkdir()
    truth = {}
    for i in range(60):
        Image.fromarray(raw.train_x[i]).save(tmp_path / "digits" / f"d{i:02d}.png")
        truth[f"d{i:02d}.png"] = str(raw.train_y[i])
    seed = [f"d{i:02d}.png" for i in range(10)]
    (tmp_path / "seed.csv").write_text("id,label,holdout\n" + "".join(
        f"{s},{truth[s]},{int(k >= 6)}\n" for k, s in enumerate(seed)))

    r = cli("init", "--data", "digits", "--classes", ",".join(map(str, range(10))), "--project", "proj",
            "--seed-labels", "seed.csv", "--budget", "30", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "60 items of 784 features, 6 seed labels + 4 holdout" in r.stdout

    def expert_fills(batch: Path, leave_empty: int = 0) -> None:
        rows = read_rows(batch)
        assert list(rows[0]) == list(labeling.PROPOSAL_COLUMNS)
        assert all(r["label"] == "" and r["predicted"] in truth.values() for r in rows)
        assert all(Path(r["path"]).exists() for r in rows)
        write_csv(batch, labeling.PROPOSAL_COLUMNS, [
            (r["id"], r["path"], r["predicted"], r["confidence"], "" if k < leave_empty else truth[r["id"]])
            for k, r in enumerate(rows)])

    for leave_empty in (2, 0):  # round 1 through subprocesses, round 2 in-process (each process imports JAX)
        if leave_empty:
            r = cli("next", "--project", "proj", "--n", "8", cwd=tmp_path)
            assert r.returncode == 0, r.stderr
        else:
            assert label_cli.main(["next", "--project", str(tmp_path / "proj"), "--n", "8"]) == 0
        batch = labeling.batch_path(labeling.load_project(tmp_path / "proj"))
        assert batch.exists() and batch.with_suffix(".png").exists()
        with Image.open(batch.with_suffix(".png")) as sheet:
            assert sheet.size[0] > 5 * 28
        expert_fills(batch, leave_empty)
        if leave_empty:
            r = cli("add", "--project", "proj", str(batch), cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            assert "added 6 labels" in r.stdout
            labeled = {l.id for l in labeling.load_project(tmp_path / "proj").labels}
            assert len(labeled) == 16 and not {r["id"] for r in read_rows(batch)[:2]} & labeled
        else:
            assert label_cli.main(["add", "--project", str(tmp_path / "proj"), str(batch)]) == 0

    project = labeling.load_project(tmp_path / "proj")
    assert len(project.labels) == 10 + 6 + 8 and len(project.holdout) == 4
    assert all(l.label == truth[l.id] for l in project.labels)

    r = cli("status", "--project", "proj", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "labels spent: 24 of a budget of 30 (20 train, 4 holdout)" in r.stdout
    assert "labels changed since" in r.stdout and "estimated accuracy on the holdout" in r.stdout
    assert "agreement (Cohen's kappa) of the last two fits' predictions" in r.stdout

    out = tmp_path / "labeled.npz"
    assert label_cli.main(["export", "--project", str(tmp_path / "proj"), "--out", str(out),
                           "--auto-threshold", "0.9"]) == 0
    with np.load(out) as z:
        expert = z["source"] == "expert"
        assert expert.sum() == 24 and z["x"].shape == (len(z["y"]), 784)
        assert [str(c) for c in z["classes"][z["y"][expert]]] == [truth[i] for i in z["ids"][expert]]
        assert (z["confidence"][~expert] >= 0.9).all() and not set(z["ids"][~expert]) & set(z["ids"][expert])


def test_batch_aware_strategies_get_the_batch_size(blobs):
    """Labeling proposes what the shared strategy picks for the whole batch (k-center: farthest-first)."""
    from aljax.loop import components
    from aljax.strategies import kcenter, make_context, select

    x = jnp.asarray(blobs[0])
    order, targets = jnp.arange(6), jnp.asarray(blobs[1][:6], jnp.int32)
    selectable = jnp.arange(len(x)) >= 6
    config = Config(strategy="kcenter", n_initial=1, query_size=5, rounds=0, n_classes=C)
    model = components(config).model
    params = model.init(jax.random.key(0), x.shape[1:])
    rows = session._select(config, jax.random.key(1), params, x, selectable, order, targets, 6)
    ctx = make_context(model, params, x, model.apply(params, x), selectable, order, targets, 6, 5)
    np.testing.assert_array_equal(rows, select(kcenter(None, ctx), selectable, 5))
    assert len(set(np.asarray(rows).tolist())) == 5


# ----------------------------------------------------------------------------- the package's layout, old projects

FIXTURE = Path(__file__).parent / "fixtures" / "label_project_v0"


def test_package_has_no_import_cycles_and_one_engine_module():
    """Each module imports on its own in a fresh interpreter (a cycle would fail one of them), and
    only session.py imports the engine (models, fitting, strategies, the loop's Config)."""
    code = "; ".join(f"import aljax.labeling.{m}" for m in ("project", "inputs", "session", "report", "cli"))
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    engine = ("aljax.loop", "aljax.models", "aljax.fit", "aljax.strategies", "aljax.optim")
    for path in (REPO / "aljax" / "labeling").glob("*.py"):
        uses = [e for e in engine if f"from {e} import" in path.read_text() or f"import {e}" in path.read_text()]
        assert not uses or path.name == "session.py", (path.name, uses)


def test_a_project_written_by_the_previous_version_loads_and_continues(tmp_path, capsys):
    """tests/fixtures/label_project_v0 was written by the single-module aljax/labeling.py (commit
    08a2913): init from a 16x4 .npy with 4 train + 2 holdout labels, then one `next --n 3`."""
    import shutil

    root = Path(shutil.copytree(FIXTURE, tmp_path / "p"))
    project = labeling.load_project(root)
    assert (len(project.ids), len(project.train), len(project.holdout), project.history) == (16, 4, 2, ())
    fit_bytes = (root / labeling.FIT).read_bytes()
    old_batch = read_rows(root / labeling.BATCHES / "batch_00006.csv")
    assert label_cli.main(["next", "--project", str(root), "--n", "3"]) == 0
    assert (root / labeling.FIT).read_bytes() == fit_bytes  # its fit is current: reused, not refitted
    assert read_rows(root / labeling.BATCHES / "batch_00006.csv") == old_batch  # the same proposal
    assert label_cli.main(["status", "--project", str(root)]) == 0
    assert "labels spent: 6 of a budget of 12 (4 train, 2 holdout)" in capsys.readouterr().out


# ----------------------------------------------------------------------------- fixing a label


def test_fix_is_recorded_and_used_by_the_next_fit(tmp_path, blobs, capsys):
    x, y = blobs
    root = make_project(tmp_path, x[:N], y[:N], seed_rows=range(6), holdout_rows=range(6, 9))
    first = labeling.current_fit(labeling.load_project(root))
    labels_csv = (root / labeling.LABELS).read_bytes()
    wrong = str((y[2] + 1) % C)
    assert label_cli.main(["fix", "--project", str(root), "2", wrong]) == 0
    assert f"fixed 2: {y[2]} -> {wrong}" in capsys.readouterr().out
    assert label_cli.main(["fix", "--project", str(root), "2", wrong]) == 0  # again: nothing to do
    assert "nothing changed" in capsys.readouterr().out
    project = labeling.load_project(root)
    (event,) = project.history
    assert (event["event"], event["id"], event["old"], event["new"]) == ("fix", "2", str(y[2]), wrong) and event["time"]
    assert (root / labeling.LABELS).read_bytes() == labels_csv  # one file written: history.json
    assert [l.label for l in project.labels if l.id == "2"] == [wrong]
    # The next fit trains on the fixed label: the same as a project seeded with it from the start.
    y_fixed = y.copy()
    y_fixed[2] = int(wrong)
    (tmp_path / "ref").mkdir()
    reference = labeling.current_fit(labeling.load_project(make_project(tmp_path / "ref", x[:N], y_fixed,
                                                                        range(6), range(6, 9))))
    refit = labeling.current_fit(project)
    assert len(refit.history) == 2 and refit.digest != first.digest
    assert refit.history[-1]["n_train"] == 6 and reference.digest == refit.digest
    # A later `add` keeps the fix (labels.csv is rewritten with it).
    labeling.add_labels(root, [labeling.Label("50", str(y[50]))])
    assert [l.label for l in labeling.load_project(root).labels if l.id == "2"] == [wrong]


# ----------------------------------------------------------------------------- images that went missing


def write_digits(folder: Path, n: int = 30, seed: int = 0) -> dict[str, str]:
    """n 8x8 grayscale PNGs of three classes (a bright row, column or diagonal); id -> class."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for i in range(n):
        c = i % 3
        img = rng.integers(0, 60, (8, 8)).astype(np.uint8)
        if c == 0:
            img[3] = 255
        elif c == 1:
            img[:, 3] = 255
        else:
            img[np.arange(8), np.arange(8)] = 255
        Image.fromarray(img).save(folder / f"im{i:02d}.png")
        truth[f"im{i:02d}.png"] = "abc"[c]
    return truth


def folder_hash(root: Path) -> str:
    """Every file's and folder's relative path and bytes (hidden ones too)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(p.relative_to(root).as_posix().encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def image_project(tmp: Path, name: str = "p") -> tuple[Path, dict[str, str]]:
    truth = write_digits(tmp / "img")
    (tmp / "seed.csv").write_text("id,label\n" + "".join(f"im{i:02d}.png,{truth[f'im{i:02d}.png']}\n" for i in range(3)))
    labeling.init_project(tmp / name, tmp / "img", ["a", "b", "c"], seed_labels=tmp / "seed.csv", size=(8, 8))
    return tmp / name, truth


def test_missing_image_stops_next_until_relinked_or_dropped(tmp_path, capsys):
    root, _ = image_project(tmp_path)
    (tmp_path / "img" / "im07.png").unlink()
    before = folder_hash(root)
    for _ in range(2):  # the same one line on every rerun, and nothing left behind
        assert label_cli.main(["next", "--project", str(root)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "im07.png" in err and "relink" in err and "--drop-missing" in err
        assert folder_hash(root) == before and not (root / labeling.BATCHES).exists()

    # The folder moved (with the file back in it): relink, and next works.
    write_digits(tmp_path / "moved")
    assert label_cli.main(["relink", "--project", str(root), "--data", str(tmp_path / "moved")]) == 0
    assert "relinked 30 images" in capsys.readouterr().out
    project = labeling.load_project(root)
    assert all(p.startswith(str(tmp_path / "moved")) for p in project.paths)
    assert label_cli.main(["next", "--project", str(root), "--n", "4"]) == 0

    # One is gone for good: --drop-missing drops it (recorded) and never proposes it.
    (tmp_path / "moved" / "im07.png").unlink()
    assert label_cli.main(["next", "--project", str(root), "--n", "30", "--drop-missing"]) == 0
    assert "dropped 1 items whose image files are missing" in capsys.readouterr().out
    project = labeling.load_project(root)
    assert project.dropped == {"im07.png"} and project.history[-1]["count"] == 1
    proposed = [r["id"] for r in read_rows(labeling.batch_path(project))]
    assert len(proposed) == 26 and "im07.png" not in proposed
    assert label_cli.main(["next", "--project", str(root), "--n", "3"]) == 0  # no longer blocks


# ----------------------------------------------------------------------------- failed writes


def test_contact_sheet_shows_item_ids(tmp_path):
    root, _ = image_project(tmp_path)
    project = labeling.load_project(root)
    proposal = labeling.Proposal(np.array([5, 6]), None, None)
    sheet = labeling.contact_sheet(project, proposal)
    draw_calls = []
    from PIL import ImageDraw

    real = ImageDraw.ImageDraw.text
    ImageDraw.ImageDraw.text = lambda self, xy, text, *a, **k: (draw_calls.append(text), real(self, xy, text, *a, **k))
    try:
        labeling.contact_sheet(project, proposal)
    finally:
        ImageDraw.ImageDraw.text = real
    assert sheet.size == (5 * 120, 120 + 26) and draw_calls == ["#1 im05.png", "#2 im06.png"]


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_failed_writes_are_one_line_and_change_nothing(tmp_path, blobs, capsys, monkeypatch, code):
    """A read-only or full file system, simulated: tests run as root, which chmod does not stop.
    EROFS fails when the temp file is created, ENOSPC in the middle of writing it."""
    import aljax.atomic

    root, truth = image_project(tmp_path)
    assert label_cli.main(["next", "--project", str(root), "--n", "3"]) == 0  # a fit and a batch to protect
    batch = labeling.batch_path(labeling.load_project(root))
    rows = read_rows(batch)
    write_csv(tmp_path / "filled.csv", ("id", "label"), [(r["id"], truth[r["id"]]) for r in rows])
    write_digits(tmp_path / "moved")
    capsys.readouterr()
    if code == errno.EROFS:
        def fail(*a, **k):
            raise OSError(code, os.strerror(code))
        monkeypatch.setattr(aljax.atomic.tempfile, "mkstemp", fail)
    else:
        def fail(fd):
            raise OSError(code, os.strerror(code))
        monkeypatch.setattr(aljax.atomic.os, "fsync", fail)
    hint = {errno.EROFS: "read-only", errno.ENOSPC: "disk is full"}[code]
    p = str(root)
    for argv in (["init", "--data", str(tmp_path / "img"), "--classes", "a,b", "--project", str(tmp_path / "new")],
                 ["next", "--project", p, "--n", "5", "--strategy", "entropy"],
                 ["add", "--project", p, str(tmp_path / "filled.csv")],
                 ["fix", "--project", p, "im00.png", "b"],
                 ["relink", "--project", p, "--data", str(tmp_path / "moved")],
                 ["export", "--project", p, "--out", str(tmp_path / "out.npz")]):
        before = folder_hash(tmp_path)
        assert label_cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "could not write" in err and hint in err, (argv, err)
        assert folder_hash(tmp_path) == before, argv


# ----------------------------------------------------------------------------- bad input, every subcommand, as the user runs it

# (argv, what the one line on stderr says). {img}: an image project with labels, a fit and one image
# deleted; {arr}: a project made from a .npy array; {broken}: a project with a damaged config.json.
BAD_INPUTS = [
    (["init", "--data", "{tmp}/none.npy", "--classes", "a,b", "--project", "{tmp}/new"], "none.npy: no such file"),
    (["init", "--data", "{tmp}/img", "--classes", "a,b,c", "--project", "{img}"], "already holds a labeling project"),
    (["init", "--data", "{tmp}/img", "--classes", "a,b", "--project", "{img}/config.json/new"], "could not write"),
    (["next", "--project", "{img}"], "im07.png' is missing"),
    (["next", "--project", "{img}", "--n", "0"], "--n must be at least 1"),
    (["add", "--project", "{img}", "{tmp}/none.csv"], "none.csv: no such file"),
    (["add", "--project", "{img}", "{tmp}/unknown_id.csv"], "unknown id 'im99.png'"),
    (["status", "--project", "{broken}"], "config.json is damaged (it differs from its record in manifest.json)"),
    (["status", "--project", "{img}", "--kappa", "2"], "--kappa must be in [0, 1]"),
    (["export", "--project", "{img}", "--out", "{tmp}/labels.txt"], "must end in .csv or .npz"),
    (["export", "--project", "{img}", "--out", "{tmp}/nodir/labels.csv"], "its folder does not exist"),
    (["fix", "--project", "{img}", "im99.png", "a"], "unknown id 'im99.png'"),
    (["fix", "--project", "{img}", "im00.png", "zebra"], "unknown class 'zebra'"),
    (["fix", "--project", "{img}", "im20.png", "a"], "has no label yet"),
    (["relink", "--project", "{img}", "--data", "{tmp}/nodir"], "no such folder"),
    (["relink", "--project", "{img}", "--data", "{tmp}/some"], "lacks 24 of the images still to label"),
    (["relink", "--project", "{arr}", "--data", "{tmp}/img"], "made from a feature array"),
]


def test_bad_inputs_of_every_subcommand_in_subprocesses(tmp_path):
    """`python -m aljax label ...` on each bad input: exit 2, one line on stderr, no traceback, and
    no file of any project (nor anything else in the folder) changed."""
    from concurrent.futures import ThreadPoolExecutor

    img, truth = image_project(tmp_path, "img_project")
    labeling.label_round(img, labeling.SimulatedOracle(truth), n=3)  # a fit.npz to protect too
    (tmp_path / "img" / "im07.png").unlink()
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32))
    arr = labeling.init_project(tmp_path / "arr", tmp_path / "x.npy", ["a", "b"]).root
    broken = labeling.init_project(tmp_path / "broken", tmp_path / "x.npy", ["a", "b"]).root
    (broken / labeling.CONFIG).write_text("{not json")
    (tmp_path / "unknown_id.csv").write_text("id,label\nim99.png,a\n")
    (tmp_path / "some").mkdir()
    for i in range(3):
        (tmp_path / "some" / f"im{i:02d}.png").write_bytes((tmp_path / "img" / f"im{i:02d}.png").read_bytes())
    before = folder_hash(tmp_path)
    names = dict(tmp=tmp_path, img=img, arr=arr, broken=broken)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda case: cli(*[a.format(**names) for a in case[0]], cwd=tmp_path), BAD_INPUTS))
    for (argv, message), r in zip(BAD_INPUTS, results):
        assert r.returncode == 2, (argv, r.stderr)
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and message in r.stderr, (argv, r.stderr)
        assert r.stderr.startswith(f"aljax label {argv[0]}: error: "), r.stderr
    assert folder_hash(tmp_path) == before


def test_help_has_examples_and_every_init_flag_is_explained():
    parser = argparse.ArgumentParser(prog="aljax")
    group = label_cli.register(parser.add_subparsers(dest="command"))
    assert "a session:\n  aljax label init " in group.format_help()
    subparsers = next(a for a in group._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"init", "next", "add", "fix", "relink", "status", "export"}
    for name, sub in subparsers.choices.items():
        assert f"examples:\n  aljax label {name} " in sub.format_help(), name
    init = subparsers.choices["init"]
    assert all(a.help for a in init._actions), [a.dest for a in init._actions if not a.help]
