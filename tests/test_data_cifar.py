"""CIFAR-10/100 readers on small files in the official format (Python 2 pickles), and the restricted unpickler."""

from __future__ import annotations

import io
import os
import pickle
import struct

import numpy as np
import pytest

from localentropy.data.cifar import read_batch, read_cifar10, read_cifar100, safe_unpickle
from localentropy.data.errors import DataError


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official batches: protocol 2, byte strings as
    SHORT_BINSTRING/BINSTRING (not _codecs.encode), numpy's array rebuilder as numpy.core.multiarray."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", None)
        qual = name or obj.__qualname__
        if module == "numpy._core.multiarray":
            module = "numpy.core.multiarray"
        self.write(pickle.GLOBAL + f"{module}\n{qual}\n".encode())
        self.memoize(obj)

    dispatch[type] = save_global
    dispatch[type(len)] = save_global


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def batch(n, classes, seed, label_key=b"labels"):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, classes, n)]
    return {b"batch_label": b"training batch", label_key: labels, b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


@pytest.fixture
def cifar10(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = batch(4, 10, i)
    batches["test_batch"] = batch(3, 10, 9)
    for name, b in batches.items():
        (root / name).write_bytes(py2_pickle(b))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (root / "batches.meta").write_bytes(py2_pickle({b"label_names": names, b"num_cases_per_batch": 4, b"num_vis": 3072}))
    return root, batches


def test_the_test_writer_makes_python2_style_pickles_without_codecs(cifar10):
    root, _ = cifar10
    raw = (root / "data_batch_1").read_bytes()
    assert b"numpy.core.multiarray\n_reconstruct" in raw and b"_codecs" not in raw


def test_cifar10_reads_every_batch_in_order_as_uint8_nchw(cifar10):
    root, batches = cifar10
    ds = read_cifar10(root)
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (3, 3, 32, 32)
    first = batches["data_batch_1"]
    # row layout: 1024 red values, then green, then blue, each row-major
    assert np.array_equal(ds.train_images[0, 1].ravel(), first[b"data"][0, 1024:2048])
    assert np.array_equal(ds.train_images[4], batches["data_batch_2"][b"data"][0].reshape(3, 32, 32))
    assert ds.train_labels.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert ds.classes[0] == "airplane" and len(ds.classes) == 10


def test_cifar100_reads_fine_and_coarse_labels(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    for split, n, seed in (("train", 5, 1), ("test", 2, 2)):
        b = batch(n, 100, seed, label_key=b"fine_labels")
        b[b"coarse_labels"] = [v // 5 for v in b[b"fine_labels"]]
        (root / split).write_bytes(py2_pickle(b))
    (root / "meta").write_bytes(py2_pickle({b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                                            b"coarse_label_names": [f"s{i}".encode() for i in range(20)]}))
    fine = read_cifar100(root)
    coarse = read_cifar100(root, labels="coarse")
    assert fine.train_images.shape == (5, 3, 32, 32) and len(fine.classes) == 100
    assert np.array_equal(coarse.train_labels, fine.train_labels // 5) and len(coarse.classes) == 20


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_asking_for_os_system_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": Evil(marker)}, protocol=2)
    assert b"system" in payload
    path = tmp_path / "data_batch_1"
    path.write_bytes(payload)
    with pytest.raises(DataError) as err:
        read_batch(path)
    assert not marker.exists()  # the command never ran
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "refused" in msg and "system" in msg
    pickle.loads(payload)  # the ordinary unpickler *does* run it: the test's payload is live
    assert marker.exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps(eval, protocol=2),  # builtins.eval
    b"cbuiltins\nexec\n(S'print(1)'\ntR.",  # protocol 0 GLOBAL + REDUCE
    pickle.dumps(np.load, protocol=4),  # a numpy global that is not an array rebuilder
])
def test_any_other_global_is_refused(payload):
    with pytest.raises(DataError, match="refused"):
        safe_unpickle(payload, "evil.pkl")


def test_a_truncated_batch_is_a_one_line_error_naming_the_file_and_nothing_is_returned(cifar10):
    root, _ = cifar10
    path = root / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError) as err:
        read_cifar10(root)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_batch_with_the_wrong_content_is_refused(cifar10):
    root, _ = cifar10
    bad = batch(4, 10, 1)
    bad[b"data"] = bad[b"data"][:, :3000]
    (root / "data_batch_2").write_bytes(py2_pickle(bad))
    with pytest.raises(DataError, match="data_batch_2.*3072"):
        read_cifar10(root)
    bad = batch(4, 10, 1)
    bad[b"labels"] = bad[b"labels"][:3]
    (root / "data_batch_2").write_bytes(py2_pickle(bad))
    with pytest.raises(DataError, match="4 images but 3 labels"):
        read_cifar10(root)
    bad = batch(4, 10, 1)
    bad[b"labels"][0] = 10
    (root / "data_batch_2").write_bytes(py2_pickle(bad))
    with pytest.raises(DataError, match="label 10 outside"):
        read_cifar10(root)


def test_the_folder_is_found_inside_a_data_dir(cifar10):
    root, _ = cifar10
    assert read_cifar10(data_dir=root.parent).train_images.shape == (20, 3, 32, 32)


def test_a_missing_folder_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DataError, match="cifar-10 not found.*download"):
        read_cifar10(data_dir=tmp_path)
    with pytest.raises(DataError, match="no such file"):
        read_cifar10(tmp_path)
