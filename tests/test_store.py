"""The results store: atomic writes, resumable run folders, metrics round trip (no JAX needed)."""

import json

import numpy as np
import pytest

from aljax import store
from aljax import atomic
from aljax.store import StoreError

CONFIG = {"strategy": "margin", "budget": 30, "learning_rate": 0.1, "capacity": None, "quiet_flag": False}


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = atomic.write_text(tmp_path / "a.txt", "old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic.atomic_write(path, fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary file left behind


def test_toml_round_trip_leaves_out_none(tmp_path):
    path = atomic.write_text(tmp_path / "c.toml", store.to_toml(CONFIG))
    assert store.read_toml(path) == {k: v for k, v in CONFIG.items() if v is not None}


def test_open_run_resumes_the_same_config_and_refuses_another(tmp_path):
    run = tmp_path / "run"
    assert store.open_run(run, CONFIG) == []
    store.save_chunk(run, 1, {"seed": np.array([1])})
    assert store.open_run(run, CONFIG) == [1]
    with pytest.raises(StoreError, match="strategy: 'margin' -> 'entropy'"):
        store.open_run(run, CONFIG | {"strategy": "entropy"})
    assert store.open_run(run, CONFIG | {"strategy": "entropy"}, force=True) == []
    assert store.read_toml(run / store.CONFIG)["strategy"] == "entropy"


def test_open_run_refuses_a_foreign_folder_even_with_force(tmp_path):
    names = (store.CONFIG, store.METRICS, store.SUMMARY, "notes.txt")  # a user's files, some with aljax's names
    for name in names:
        (tmp_path / name).write_text("mine")
    (tmp_path / store.CHUNKS).mkdir()
    (tmp_path / store.CHUNKS / "chunk-00000.npz").write_text("mine")
    with pytest.raises(StoreError, match="not valid TOML"):
        store.open_run(tmp_path, CONFIG)
    with pytest.raises(StoreError, match="no manifest.json.*choose another --out"):
        store.open_run(tmp_path, CONFIG, force=True)
    assert all((tmp_path / n).read_text() == "mine" for n in names)
    assert (tmp_path / store.CHUNKS / "chunk-00000.npz").read_text() == "mine"


def test_force_deletes_only_the_files_the_manifest_lists(tmp_path):
    store.open_run(tmp_path, CONFIG)
    store.save_chunk(tmp_path, 0, {"seed": np.array([0])})
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / store.CHUNKS / "chunk-00007.npz").write_text("not listed")
    store.open_run(tmp_path, CONFIG | {"strategy": "entropy"}, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / store.CHUNKS / "chunk-00007.npz").read_text() == "not listed"
    assert not store.chunk_path(tmp_path, 0).exists()
    listed = json.loads((tmp_path / "manifest.json").read_text())
    assert listed["schema"] == 1 and list(listed["files"]) == [store.CONFIG]


def test_force_needs_a_run_in_the_manifest(tmp_path):
    from aljax import manifest

    manifest.write(tmp_path, "cmp.png", atomic.write_text, tmp_path / "cmp.png", "a plot")  # e.g. aljax plot's
    with pytest.raises(StoreError, match="no run in its manifest.json"):
        store.check_run(tmp_path, CONFIG, force=True)
    assert (tmp_path / "cmp.png").read_text() == "a plot"


def test_a_crafted_manifest_cannot_make_force_delete_outside_the_run(tmp_path):
    run = tmp_path / "run"
    store.open_run(run, CONFIG)
    (tmp_path / "precious.txt").write_text("mine")
    listed = json.loads((run / "manifest.json").read_text())
    listed["files"]["../precious.txt"] = {"sha256": "0", "size": 4}
    (run / "manifest.json").write_text(json.dumps(listed))
    store.open_run(run, CONFIG | {"strategy": "entropy"}, force=True)
    assert (tmp_path / "precious.txt").read_text() == "mine"


def test_a_damaged_or_unlisted_chunk_is_not_finished(tmp_path):
    store.open_run(tmp_path, CONFIG)
    for i in range(3):
        store.save_chunk(tmp_path, i, {"seed": np.array([i])})
    data = store.chunk_path(tmp_path, 0).read_bytes()
    store.chunk_path(tmp_path, 0).write_bytes(data[: len(data) // 2])  # truncated
    store.chunk_path(tmp_path, 1).write_bytes(data)  # whole, but not what aljax wrote there
    np.savez(store.chunk_path(tmp_path, 3), seed=np.array([3]))  # never recorded
    assert store.chunk_sizes(tmp_path) == {2: 1}
    assert store.open_run(tmp_path, CONFIG) == [2]


def test_an_unknown_layout_or_a_damaged_config_is_refused_in_one_line(tmp_path):
    store.open_run(tmp_path, CONFIG)
    (tmp_path / store.CONFIG).write_text('strategy = "margin"\nbudget = ')
    with pytest.raises(StoreError, match="config.toml is damaged.*--force"):
        store.check_run(tmp_path, CONFIG)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": 2, "files": {}}))
    for force in (False, True):
        with pytest.raises(StoreError, match="layout 2 .*this one knows layout 1"):
            store.check_run(tmp_path, CONFIG, force=force)


def test_a_folder_from_before_manifests_is_adopted_by_what_reads_back_whole(tmp_path):
    store.open_run(tmp_path, CONFIG)
    for i in range(2):
        store.save_chunk(tmp_path, i, {"seed": np.array([i])})
    store.chunk_path(tmp_path, 1).write_bytes(store.chunk_path(tmp_path, 1).read_bytes()[:40])
    (tmp_path / "manifest.json").unlink()
    assert store.chunk_sizes(tmp_path) == {0: 1}  # legacy rule: readable chunks only
    assert store.open_run(tmp_path, CONFIG) == [0]
    assert set(json.loads((tmp_path / "manifest.json").read_text())["files"]) == {store.CONFIG, "chunks/chunk-00000.npz"}


def test_an_extension_lists_only_real_differences(tmp_path):
    store.open_run(tmp_path, CONFIG | {"seeds": 4, "chunk_size": 4})
    with pytest.raises(StoreError) as err:
        store.check_run(tmp_path, CONFIG | {"seeds": 7, "chunk_size": 2})
    assert "chunk_size: 4 -> 2" in str(err.value) and "seeds" not in str(err.value)


def test_open_run_reports_an_unwritable_folder(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot write"):
        store.open_run(tmp_path / "file" / "run", CONFIG)


def test_chunks_concatenate_in_chunk_order(tmp_path):
    store.open_run(tmp_path, CONFIG)
    store.save_chunk(tmp_path, 1, {"seed": np.array([2]), "x": np.array([[20, 21]])})
    store.save_chunk(tmp_path, 0, {"seed": np.array([0, 1]), "x": np.array([[0, 1], [10, 11]])})
    assert store.finished_chunks(tmp_path) == [0, 1]
    chunks = store.load_chunks(tmp_path, 2)
    np.testing.assert_array_equal(chunks["seed"], [0, 1, 2])
    np.testing.assert_array_equal(chunks["x"][:, 1], [1, 11, 21])


def test_metrics_csv_round_trip_marks_a_finished_run(tmp_path):
    store.open_run(tmp_path, CONFIG)
    with pytest.raises(StoreError, match="unfinished run"):
        store.read_metrics(tmp_path)
    acc = np.array([[0.25, 0.5, 0.875], [0.125, 0.375, 0.625]], np.float32)
    n = np.array([[10, 20, 30]] * 2, np.int32)
    for name in store.FINAL_FILES[:-1]:
        store.write(tmp_path, name, atomic.write_text, "")
    store.write(tmp_path, store.METRICS, atomic.write_text, store.metrics_csv(np.array([4, 7]), {"n_labeled": n, "acc": acc}))
    assert store.is_finished(tmp_path)
    back = store.read_metrics(tmp_path)
    np.testing.assert_array_equal(back["acc"], acc)
    np.testing.assert_array_equal(back["seed"][:, 0], [4, 7])
    np.testing.assert_array_equal(back["round"][0], [0, 1, 2])
    (tmp_path / store.METRICS).write_text((tmp_path / store.METRICS).read_text()[:-9])  # truncated
    assert not store.is_finished(tmp_path)
    with pytest.raises(StoreError, match="metrics.csv is damaged.*rebuild it from its chunks"):
        store.read_metrics(tmp_path)


def test_add_timing_appends_one_entry_per_call(tmp_path):
    store.add_timing(tmp_path, "compile_s", 1.5)
    store.add_timing(tmp_path, "compile_s", 2.5)
    store.add_timing(tmp_path, "run_s", 3.0, append=False)
    assert json.loads((tmp_path / store.TIMINGS).read_text()) == {"compile_s": [1.5, 2.5], "run_s": 3.0}


def test_the_git_commit_is_read_without_refreshing_the_index(monkeypatch):
    seen = []

    def run(argv, **kwargs):
        seen.append(kwargs.get("env", {}).get("GIT_OPTIONAL_LOCKS"))
        raise OSError("no git here")

    monkeypatch.setattr(store.subprocess, "run", run)
    assert store.environment()["git_commit"] is None
    assert seen == ["0"]
