"""The fault table: each command under each fault (bad value, missing file, truncated file, read-only
folder, full disk, Ctrl-C at several moments) ends with its exit status and exactly one line on
stderr, and leaves its files unchanged or recoverable by rerunning the command.

Commands run in-process (``aljax.cli.main``) on a tiny synthetic dataset. Only two runs compile:
the fixture's first run, stopped by a simulated full disk after its first chunk, and its rerun,
which resumes. Every other case damages a copy of that finished run and recovers it without
computing (finished files are rebuilt from the verified chunks). Ctrl-C in-process is the
``KeyboardInterrupt`` the CLI turns into status 130; real SIGINTs are sent to subprocesses at the end.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aljax import atomic, manifest, store
from aljax.cli import main
from aljax.labeling import project as labeling, report
from test_cli import SMALL, blobs_dataset

ROOT = Path(__file__).resolve().parents[1]


def call(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``aljax ARGV`` run in this process."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def failing_after(n_ok: int, error: BaseException):
    """An :func:`aljax.atomic.atomic_write` that writes ``n_ok`` files, then raises ``error`` (before
    anything is renamed into place, as a full disk or a Ctrl-C would)."""
    real, calls = atomic.atomic_write, []

    def write(path, fill, before_replace=None):
        calls.append(path)
        if len(calls) > n_ok:
            raise error
        return real(path, fill, before_replace)

    return write


def enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ----------------------------------------------------------------------------- aljax run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run: its first attempt hits a full disk after chunk 0, the rerun resumes it."""
    tmp = tmp_path_factory.mktemp("faults")
    args = ["run", "--dataset", f"idx:{blobs_dataset(tmp / 'blobs')}", *SMALL, "--out", tmp / "run"]
    monkey = pytest.MonkeyPatch()
    writes = []
    real_save = store.save_chunk

    def save_chunk(run_dir, index, arrays):
        if index == 1:
            raise enospc()
        writes.append(index)
        return real_save(run_dir, index, arrays)

    monkey.setattr(store, "save_chunk", save_chunk)
    status = main([str(a) for a in args])
    monkey.undo()
    first = snapshot(tmp / "run" / store.CHUNKS)
    assert status == 2 and writes == [0] and list(first) == [Path("chunk-00000.npz")]
    assert not store.is_finished(tmp / "run")
    assert main([str(a) for a in args]) == 0  # space is back: the rerun computes chunk 1 only
    assert snapshot(tmp / "run" / store.CHUNKS)[Path("chunk-00000.npz")] == first[Path("chunk-00000.npz")]
    return tmp, [str(a) for a in args]


def test_a_full_disk_is_one_line_naming_the_folder_and_a_rerun_resumes(finished, capsys):
    tmp, args = finished
    assert store.is_finished(tmp / "run")
    assert set(store.chunk_sizes(tmp / "run")) == {0, 1}
    listed = json.loads((tmp / "run" / manifest.MANIFEST).read_text())
    assert listed["schema"] == 1 and set(listed["files"]) == {*store.ALL_FILES, "chunks/chunk-00000.npz",
                                                               "chunks/chunk-00001.npz"}


def evil_module(folder: Path) -> str:
    """A module with an undeclared function that leaves a marker file if it is ever called."""
    (folder / "evil_faults.py").write_text(
        f"def touch(*args, **kwargs):\n    open({str(folder / 'called')!r}, 'w').close()\n")
    return "evil_faults:touch"


def damage(name: str, how: str):
    def apply(run: Path) -> None:
        path = run / name
        if how == "truncate":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif how == "delete":
            path.unlink()
        else:
            path.write_text(how)

    return apply


def seeds_toml(run: Path) -> None:
    (run.parent / "huge.toml").write_text(f"seeds = {10**100}\n")


# case -> (prepare the copy, extra arguments, patch (attribute of atomic, writer) or None, status, text of the
#          one line, what the folder must be afterwards: "unchanged" or "recovered" by a plain rerun)
RUN_FAULTS = {
    "bad value: seeds = 10**100 in a TOML": (seeds_toml, ["--config", "{tmp}/huge.toml"], None, 2,
                                              "a 101-digit number is beyond", "unchanged"),
    "bad value: huge --max-steps": (None, ["--max-steps", str(10**30)], None, 2, "beyond 2147483647", "unchanged"),
    "bad value: a 1 MB strategy name": (None, ["--strategy", "x" * 10**6], None, 2, "characters cut", "unchanged"),
    "bad value: an undeclared out-of-tree strategy": (None, ["--strategy", "{evil}"], None, 2,
                                                       "is not a declared aljax strategy", "unchanged"),
    "bad value: an undeclared out-of-tree model": (None, ["--model", "{evil}(9)"], None, 2,
                                                    "is not a declared aljax model", "unchanged"),
    "missing file: metrics.csv": (damage(store.METRICS, "delete"), [], None, 0, "", "recovered"),
    "truncated file: metrics.csv": (damage(store.METRICS, "truncate"), [], None, 0, "", "recovered"),
    "truncated file: orders.npz": (damage(store.ORDERS, "truncate"), [], None, 0, "", "recovered"),
    "truncated file: config.toml": (damage(store.CONFIG, "truncate"), [], None, 2, "config.toml is damaged",
                                    "unchanged"),
    "unknown layout": (damage(manifest.MANIFEST, '{"schema": 2, "files": {}}'), [], None, 2,
                       "layout 2", "unchanged"),
    "read-only folder": (damage(store.METRICS, "truncate"), [],
                         failing_after(0, OSError(errno.EROFS, os.strerror(errno.EROFS))), 2,
                         "cannot write to", "recovered"),
    "full disk while finishing": (damage(store.SUMMARY, "x"), [], failing_after(1, enospc()), 2,
                                  "No space left on device); finished chunks are kept", "recovered"),
    "Ctrl-C while opening the folder": (damage(store.METRICS, "truncate"), [], failing_after(0, KeyboardInterrupt()),
                                        130, "interrupted", "recovered"),
    "Ctrl-C while finishing": (damage(store.METRICS, "truncate"), [], failing_after(3, KeyboardInterrupt()), 130,
                               "interrupted", "recovered"),
}


@pytest.mark.parametrize("case", list(RUN_FAULTS))
def test_run_fault(finished, tmp_path, monkeypatch, capsys, case):
    tmp, args = finished
    prepare, extra, writer, status, text, after = RUN_FAULTS[case]
    run = tmp_path / "run"
    shutil.copytree(tmp / "run", run)
    good = snapshot(run)
    if prepare is not None:
        prepare(run)
    before = snapshot(run)
    names = {"tmp": tmp_path, "evil": evil_module(tmp_path)}
    monkeypatch.syspath_prepend(str(tmp_path))
    base = args[:-1]
    if "--config" in extra:  # the file's seeds, not the flag's
        at = base.index("--seeds")
        base = base[:at] + base[at + 2:]
    argv = [*base, run, *[a.format(**names) for a in extra]]
    if writer is not None:
        monkeypatch.setattr(atomic, "atomic_write", writer)
    got, _, err = call(capsys, *argv)
    monkeypatch.undo()
    assert got == status, err
    if status:
        assert err.count("\n") == 1 and text in err and "Traceback" not in err and len(err) < 1200, err
    assert not (tmp_path / "called").exists()  # nothing undeclared was called
    if after == "unchanged":
        assert snapshot(run) == before
    else:
        assert not list(run.rglob("*.tmp"))
        assert call(capsys, *args[:-1], run)[0] == 0  # a plain rerun recovers
        assert store.is_finished(run)
        now = snapshot(run)
        assert all(now[Path(name)] == good[Path(name)] for name in (store.METRICS, store.SUMMARY, store.CONFIG))
        with np.load(run / store.ORDERS) as a, np.load(tmp / "run" / store.ORDERS) as b:
            assert all(np.array_equal(a[k], b[k]) for k in b.files)


def test_an_undeclared_name_in_a_toml_config_is_never_called(finished, tmp_path, monkeypatch, capsys):
    tmp, args = finished
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "shared.toml").write_text(f'model = "{evil_module(tmp_path)}(9)"\n')
    got, _, err = call(capsys, *args[:-1], tmp_path / "out", "--config", tmp_path / "shared.toml")
    assert got == 2 and "is not a declared aljax model; decorate it with @aljax.declare.model" in err
    assert not (tmp_path / "called").exists() and not (tmp_path / "out").exists()


def test_force_never_deletes_files_aljax_did_not_write(finished, tmp_path, capsys):
    tmp, args = finished
    mine = tmp_path / "mine"
    shutil.copytree(tmp / "run", mine)
    (mine / manifest.MANIFEST).unlink()  # the user's own folder, with files of aljax's names
    before = snapshot(mine)
    got, _, err = call(capsys, *args[:-1], mine, "--force", "--seed", "5")
    assert got == 2 and "no manifest.json" in err and "choose another --out" in err
    assert snapshot(mine) == before


# ----------------------------------------------------------------------------- aljax plot


def user_file(png: Path) -> None:
    png.with_suffix(".md").write_text("my notes")


# case -> (prepare (run copy, png), extra arguments, patch or None, status, text of the one line)
PLOT_FAULTS = {
    "bad value: unknown metric": (None, ["--metric", "acc"], None, 2, "unknown metric"),
    "missing file: metrics.csv": (lambda run, png: damage(store.METRICS, "delete")(run), [], None, 2,
                                  "unfinished run"),
    "truncated file: metrics.csv": (lambda run, png: damage(store.METRICS, "truncate")(run), [], None, 2,
                                    "metrics.csv is damaged"),
    "a user's file beside --out": (lambda run, png: user_file(png), [], None, 2, "is not a file aljax wrote"),
    "read-only folder": (None, [], failing_after(0, OSError(errno.EROFS, os.strerror(errno.EROFS))), 2,
                         "cannot write"),
    "full disk": (None, [], failing_after(0, enospc()), 2, "cannot write"),
    "Ctrl-C while writing": (None, [], failing_after(0, KeyboardInterrupt()), 130, "interrupted"),
}


@pytest.mark.parametrize("case", list(PLOT_FAULTS))
def test_plot_fault(finished, tmp_path, monkeypatch, capsys, case):
    tmp, _ = finished
    prepare, extra, writer, status, text = PLOT_FAULTS[case]
    run, png = tmp_path / "run", tmp_path / "figures" / "cmp.png"
    shutil.copytree(tmp / "run", run)
    png.parent.mkdir()
    if prepare is not None:
        prepare(run, png)
    before = snapshot(tmp_path)
    if writer is not None:
        monkeypatch.setattr(atomic, "atomic_write", writer)
    got, _, err = call(capsys, "plot", run, "--out", png, *extra)
    monkeypatch.undo()
    assert got == status and err.count("\n") == 1 and text in err and "Traceback" not in err, err
    assert snapshot(tmp_path) == before


def test_plot_replaces_only_what_it_made(finished, tmp_path, capsys):
    tmp, _ = finished
    png = tmp_path / "cmp.png"
    assert call(capsys, "plot", tmp / "run", "--out", png)[0] == 0
    assert call(capsys, "plot", tmp / "run", "--out", png, "--title", "again")[0] == 0  # its own files
    png.with_suffix(".md").write_text("edited by hand")
    got, _, err = call(capsys, "plot", tmp / "run", "--out", png)
    assert got == 2 and "is not a file aljax wrote (or it changed since)" in err
    assert png.with_suffix(".md").read_text() == "edited by hand"


# ----------------------------------------------------------------------------- aljax label


@pytest.fixture
def project(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(12, 3)).astype(np.float32))
    (tmp_path / "seed.csv").write_text("id,label\n0,a\n1,b\n")
    labeling_root = tmp_path / "p"
    from aljax.labeling.inputs import init_project

    init_project(labeling_root, tmp_path / "x.npy", ["a", "b"], seed_labels=tmp_path / "seed.csv")
    (tmp_path / "answers.csv").write_text("id,label\n2,a\n3,b\n")
    return labeling_root


def prepared_fit(root: Path) -> None:
    """A fit.npz recorded in the manifest, then truncated."""
    manifest.write(root, labeling.FIT, atomic.write_npz, root / labeling.FIT, digest=np.array("x"))
    damage(labeling.FIT, "truncate")(root)


# case -> (prepare the project, arguments after `label`, patch or None, status, text of the one line)
LABEL_FAULTS = {
    "bad value: huge --max-steps": (None, ["init", "--project", "{tmp}/new", "--data", "{tmp}/x.npy", "--classes",
                                           "a,b", "--max-steps", str(10**30)], None, 2, "beyond 2147483647"),
    "init over a folder holding labels.csv": (lambda root: (root.parent / "other").mkdir() or
                                              (root.parent / "other" / labeling.LABELS).write_text("mine"),
                                              ["init", "--project", "{tmp}/other", "--data", "{tmp}/x.npy",
                                               "--classes", "a,b"], None, 2, "already holds a labeling project"),
    "missing file: labels.csv": (damage(labeling.LABELS, "delete"), ["status", "--project", "{root}"], None, 2,
                                 "labels.csv"),
    "truncated file: labels.csv": (damage(labeling.LABELS, "truncate"), ["status", "--project", "{root}"], None, 2,
                                   "labels.csv is damaged"),
    "truncated file: fit.npz (status)": (prepared_fit, ["status", "--project", "{root}"], None, 2,
                                         "fit.npz is damaged"),
    "truncated file: fit.npz (next)": (prepared_fit, ["next", "--project", "{root}"], None, 2, "fit.npz is damaged"),
    "unrecorded broken fit.npz": (damage(labeling.FIT, "junk"), ["status", "--project", "{root}"], None, 2,
                                  "not a fit this aljax can continue"),
    "read-only folder": (None, ["add", "--project", "{root}", "{tmp}/answers.csv"],
                         failing_after(0, OSError(errno.EROFS, os.strerror(errno.EROFS))), 2, "read-only"),
    "full disk": (None, ["add", "--project", "{root}", "{tmp}/answers.csv"], failing_after(0, enospc()), 2,
                  "the disk is full"),
    "Ctrl-C while adding": (None, ["add", "--project", "{root}", "{tmp}/answers.csv"],
                            failing_after(0, KeyboardInterrupt()), 130, "labels already added are kept"),
}


@pytest.mark.parametrize("case", list(LABEL_FAULTS))
def test_label_fault(project, monkeypatch, capsys, case):
    prepare, argv, writer, status, text = LABEL_FAULTS[case]
    tmp = project.parent
    if prepare is not None:
        prepare(project)
    before = snapshot(tmp)
    if writer is not None:
        monkeypatch.setattr(atomic, "atomic_write", writer)
    got, _, err = call(capsys, "label", *[a.format(tmp=tmp, root=project) for a in argv])
    monkeypatch.undo()
    assert got == status and err.count("\n") == 1 and text in err and "Traceback" not in err, err
    assert "chunk" not in err
    assert snapshot(tmp) == before


def test_a_dropped_item_cannot_be_labeled(project, capsys):
    labeling.record(labeling.load_project(project), dict(event="drop", ids=["3"], count=1, reason="image file missing"))
    got, _, err = call(capsys, "label", "add", "--project", project, project.parent / "answers.csv")
    assert got == 2 and "id '3' was dropped" in err
    assert [l.id for l in labeling.load_project(project).labels] == ["0", "1"]


def test_spreadsheet_formulas_are_escaped_and_read_back(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.eye(4, dtype=np.float32))
    classes = "=HYPERLINK(1),+cmd,-x,@SUM(A1)"
    assert call(capsys, "label", "init", "--project", tmp_path / "p", "--data", tmp_path / "x.npy",
                "--classes", classes)[0] == 0
    (tmp_path / "a.csv").write_text("id,label\n0,=HYPERLINK(1)\n1,@SUM(A1)\n")
    assert call(capsys, "label", "add", "--project", tmp_path / "p", tmp_path / "a.csv")[0] == 0
    assert call(capsys, "label", "export", "--project", tmp_path / "p")[0] == 0
    text = (tmp_path / "p" / "export.csv").read_text() + (tmp_path / "p" / labeling.LABELS).read_text()
    assert "'=HYPERLINK(1)" in text and "'@SUM(A1)" in text and ",=" not in text and ",@" not in text
    assert [l.label for l in labeling.load_project(tmp_path / "p").labels] == ["=HYPERLINK(1)", "@SUM(A1)"]


def test_a_newline_in_a_file_name_is_drawn_on_one_line():
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (120, 20)))
    assert "\n" not in report._fit_text(draw, "#1 ", "bad\nname.png", 114)


def test_a_decompression_bomb_and_a_huge_npz_are_one_line(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.new("L", (3000, 3000)).save(tmp_path / "img" / "big.png")  # 9 M pixels, a few KB on disk
    got, _, err = call(capsys, "label", "init", "--project", tmp_path / "p", "--data", tmp_path / "img",
                       "--classes", "a,b", "--max-pixels", "1000000")
    assert got == 2 and "more than --max-pixels 1000000" in err and err.count("\n") == 1
    np.savez_compressed(tmp_path / "x.npz", x=np.zeros((1000, 1000), np.float32))  # 4 MB inflated, ~4 KB stored
    got, _, err = call(capsys, "label", "init", "--project", tmp_path / "p", "--data", tmp_path / "x.npz",
                       "--classes", "a,b", "--max-bytes", "1000000")
    assert got == 2 and "more than the cap of 1000000" in err and err.count("\n") == 1
    assert not (tmp_path / "p").exists()


# ----------------------------------------------------------------------------- real SIGINTs


def test_sigint_at_random_early_moments_is_130_or_a_clean_exit_never_a_signal_death():
    """Many light ``python -m aljax`` invocations, each sent SIGINT at a random moment. The children
    start with SIGINT ignored, as Python leaves an inherited ignore alone: a signal before aljax's
    handler is installed is then dropped (the command ends normally, status 2 here) instead of
    landing in the interpreter's own start-up, which no Python code can guard (docs/safety.md).
    From the handler's installation to the process's exit, every SIGINT must give 130 or, once
    the command has returned, its own status: never death by SIGINT (-2)."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    rng = random.Random(0)
    argv = [sys.executable, "-m", "aljax", "run", "--out", "unused", "--strategy", "margn"]
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the children (no preexec_fn: no fork)
    try:
        procs = [(rng.uniform(0, 4), subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                                      stderr=subprocess.PIPE, text=True)) for _ in range(6)]
    finally:
        signal.signal(signal.SIGINT, handler)
    start = time.monotonic()
    for delay, proc in sorted(procs, key=lambda p: p[0]):
        time.sleep(max(0.0, start + delay - time.monotonic()))
        proc.send_signal(signal.SIGINT)
    for _, proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (2, 130), (proc.returncode, err)
        lines = err.splitlines()  # the error's line, and the interrupt's if it came after the error was printed
        assert 1 <= len(lines) <= 2 and all(line.startswith("aljax: ") for line in lines), err


def test_a_sigint_after_the_command_returned_does_not_kill_the_process():
    """Python's finalization resets a Python-level SIGINT handler to the default action; without
    :func:`aljax.interrupt.settle` a Ctrl-C there killed a finished command (-2). The child here
    waits, in its finalization, until the test has sent the signal."""
    code = ("import os, sys\n"
            "class Wait:\n"
            "    def __del__(self, read=os.read, write=os.write):\n"
            "        write(1, b'finalizing\\n'); read(0, 1)\n"
            "keep = Wait()\n"
            "sys.argv = ['aljax', 'run', '--out', 'unused', '--strategy', 'margn']\n"
            "from aljax.__main__ import main\n"
            "sys.exit(main())\n")
    env = os.environ | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"finalizing\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(b"x", timeout=300)
    assert proc.returncode == 2, (proc.returncode, err)
