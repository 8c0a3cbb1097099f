"""STL-10 reader on small files in the official binary format (column-major 3×96×96 uint8, labels 1..10)."""

from __future__ import annotations

import numpy as np
import pytest

from localentropy.data.errors import DataError
from localentropy.data.stl10 import read_stl10


def write_split(root, split, images, labels):
    # official layout: each image channel by channel, each channel column-major (Fortran order)
    (root / f"{split}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())
    (root / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())


@pytest.fixture
def stl(tmp_path):
    root = tmp_path / "stl10_binary"
    root.mkdir()
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", 3), ("test", 2)):
        x = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        write_split(root, split, x, y)
        data[split] = (x, y)
    (root / "class_names.txt").write_text("\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse",
                                                     "monkey", "ship", "truck"]) + "\n")
    return root, data


def test_stl10_images_come_back_in_row_major_order_with_labels_from_zero(stl):
    root, data = stl
    ds = read_stl10(root)
    assert np.array_equal(ds.train_images, data["train"][0]) and np.array_equal(ds.train_labels, data["train"][1])
    assert np.array_equal(ds.test_images, data["test"][0]) and ds.test_images.flags.c_contiguous
    assert ds.classes[7] == "monkey"


def test_a_pixel_lands_where_the_column_major_format_puts_it(tmp_path):
    root = tmp_path / "stl10_binary"
    root.mkdir()
    raw = np.zeros(3 * 96 * 96, np.uint8)
    raw[1 * 96 * 96 + 5 * 96 + 2] = 200  # channel 1, column 5, row 2
    (root / "train_X.bin").write_bytes(raw.tobytes())
    (root / "train_y.bin").write_bytes(bytes([10]))
    (root / "test_X.bin").write_bytes(raw.tobytes())
    (root / "test_y.bin").write_bytes(bytes([1]))
    (root / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    ds = read_stl10(root)
    assert ds.train_images[0, 1, 2, 5] == 200 and ds.train_images.sum() == 200
    assert ds.train_labels.tolist() == [9] and ds.test_labels.tolist() == [0]


def test_a_truncated_image_file_is_a_one_line_error_naming_it(stl):
    root, _ = stl
    path = root / "test_X.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError) as err:
        read_stl10(root)
    assert str(path) in str(err.value) and "truncated" in str(err.value) and "\n" not in str(err.value)


def test_labels_that_do_not_match_the_images_are_refused(stl):
    root, _ = stl
    (root / "train_y.bin").write_bytes(bytes([1, 2]))
    with pytest.raises(DataError, match="train_y.bin: 2 bytes, expected 3"):
        read_stl10(root)
    (root / "train_y.bin").write_bytes(bytes([1, 0, 2]))
    with pytest.raises(DataError, match="train_y.bin: labels must lie in 1..10"):
        read_stl10(root)
