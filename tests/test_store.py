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


def test_open_run_refuses_a_foreign_folder_and_force_deletes_only_its_own_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        store.open_run(tmp_path, CONFIG)
    store.open_run(tmp_path, CONFIG, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


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
    atomic.write_text(tmp_path / store.METRICS, store.metrics_csv(np.array([4, 7]), {"n_labeled": n, "acc": acc}))
    assert store.is_finished(tmp_path)
    back = store.read_metrics(tmp_path)
    np.testing.assert_array_equal(back["acc"], acc)
    np.testing.assert_array_equal(back["seed"][:, 0], [4, 7])
    np.testing.assert_array_equal(back["round"][0], [0, 1, 2])


def test_add_timing_appends_one_entry_per_call(tmp_path):
    store.add_timing(tmp_path, "compile_s", 1.5)
    store.add_timing(tmp_path, "compile_s", 2.5)
    store.add_timing(tmp_path, "run_s", 3.0, append=False)
    assert json.loads((tmp_path / store.TIMINGS).read_text()) == {"compile_s": [1.5, 2.5], "run_s": 3.0}
