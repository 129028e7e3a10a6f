import gzip
import hashlib

import numpy as np
import pytest

from aljax.data import REPO_ROOT, DataError, dev_data, features, load_dataset, load_mnist, make_pool, parse_idx, read_idx, seed_data


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_roundtrip():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(a)), a)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_plain_and_gzip_with_checksum(tmp_path, gz):
    a = np.arange(10, dtype=np.uint8)
    raw = idx_bytes(a)
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    np.testing.assert_array_equal(read_idx(path, hashlib.sha256(raw).hexdigest()), a)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"\x01\x02\x03\x04rest", "bad magic"),
        (idx_bytes(np.zeros((5, 5)))[:-3], "truncated or padded"),
        (idx_bytes(np.zeros(3))[:6], "truncated IDX header"),
    ],
)
def test_bad_idx_gives_one_line_error(tmp_path, content, fragment):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert fragment in str(err.value) and "make data" in str(err.value) and "\n" not in str(err.value)


def test_wrong_checksum_and_missing_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(idx_bytes(np.zeros(3)))
    with pytest.raises(DataError, match="checksum"):
        read_idx(path, "0" * 64)
    with pytest.raises(DataError, match="missing; run `make data`"):
        load_mnist(tmp_path / "nowhere")


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(DataError, match="unreadable"):
        read_idx(path)


def test_features_and_padding():
    x = features(np.array([[[0, 255], [51, 102]]], np.uint8))
    assert x.dtype == np.float32 and x.shape == (1, 2, 2, 1)  # the sample shape is kept
    np.testing.assert_array_equal(x.reshape(1, -1), np.float32([[0, 1, 0.2, 0.4]]))
    pool = make_pool(np.ones((3, 2), np.float32), np.array([0, 1, 2]), size=5)
    assert pool.x.shape == (5, 2) and pool.valid.tolist() == [True, True, True, False, False]
    with pytest.raises(DataError, match="NaN"):
        make_pool(np.array([[np.nan]], np.float32), np.array([0]))


@pytest.mark.mnist
def test_mnist_splits(mnist):
    assert mnist.train_x.shape == (60000, 28, 28) and mnist.test_x.shape == (10000, 28, 28)
    seed = seed_data(mnist)
    assert seed.pool.x.shape == (4000, 28, 28, 1) and seed.eval.x.shape == (400, 28, 28, 1) and seed.test is seed.eval
    dev = dev_data(mnist, pool_size=4000, dev_size=1000)
    assert dev.eval.x.shape == (1000, 28, 28, 1) and dev.test.x.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(np.asarray(dev.eval.y), mnist.train_y[-1000:])


def test_load_dataset_by_name(tmp_path):
    images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    for split in ("train", "t10k"):
        (tmp_path / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 0])))
    raw = load_dataset(f"idx:{tmp_path}")
    np.testing.assert_array_equal(raw.train_x, images)
    assert raw.train_y.tolist() == [1, 0] and raw.n_classes == 2
    with pytest.raises(DataError, match="python -m aljax.fetch --dataset fashion_mnist --dest .*nowhere"):
        load_dataset("fashion_mnist", tmp_path / "nowhere")
    if not (REPO_ROOT / "data" / "fashion_mnist").exists():
        with pytest.raises(DataError, match="make data-fashion"):
            load_dataset("fashion_mnist", REPO_ROOT / "data", how="checkout")
    with pytest.raises(DataError, match="or set ALJAX_DATA"):
        load_dataset("fashion_mnist", tmp_path / "nowhere", how="user")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 0]))[:-1])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: .*truncated.*must hold the four MNIST-layout"):
        load_dataset(f"idx:{tmp_path}")
    with pytest.raises(KeyError):
        load_dataset("minst")


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28)), ("fashion_mnist", (28, 28))])
def test_tfds_source_under_mock_data(name, shape):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=7):
        raw = load_dataset(f"tfds:{name}")
    assert raw.train_x.shape == (7, *shape) and raw.train_x.dtype == np.uint8 and raw.test_x.shape == (7, *shape)
    assert raw.train_y.dtype == np.int32 and 0 <= raw.train_y.min() and raw.train_y.max() < 10
    data = dev_data(raw, pool_size=4, dev_size=2)
    assert data.pool.x.shape == (4, 28, 28, 1) and data.eval.x.shape == (2, 28, 28, 1)


def test_tfds_unavailable_dataset_is_a_one_line_error():
    with pytest.raises(DataError, match="unavailable"):
        load_dataset("tfds:no_such_dataset_xyz")


def test_hints_name_real_make_targets_and_load_mnist_looks_where_the_cli_looks(tmp_path, monkeypatch):
    import re

    from aljax.data import MAKE_TARGETS, fetch_hint

    targets = set(re.findall(r"^([\w-]+):", (REPO_ROOT / "Makefile").read_text(), re.M))
    for name in MAKE_TARGETS:
        hint = fetch_hint(name, REPO_ROOT / "data", "checkout")
        assert re.fullmatch(r"run `make ([\w-]+)`", hint).group(1) in targets, hint
    monkeypatch.setenv("ALJAX_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "elsewhere" / "mnist"))):
        load_mnist()
