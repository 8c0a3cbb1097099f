"""Tiny ImageNet reader on a small folder in the official layout, and its decoded-once cache."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from localentropy.data.errors import DataError
from localentropy.data.tinyimagenet import CACHE_NAME, read_tinyimagenet

WNIDS = ["n02", "n01", "n03"]  # sorted order decides the class index: n01 → 0, n02 → 1, n03 → 2


def flat_image(value, mode="RGB"):
    return Image.new(mode, (64, 64), value)


@pytest.fixture
def tiny(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for k, w in enumerate(WNIDS):
        folder = root / "train" / w / "images"
        folder.mkdir(parents=True)
        for i in range(2):
            # PNG-quality values survive JPEG only approximately: use flat colours, compare with tolerance
            flat_image((40 * k + 10, 100, 20 * i + 30)).save(folder / f"{w}_{i}.JPEG", quality=95)
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    lines = []
    for i, w in enumerate(["n03", "n01"]):
        name = f"val_{i}.JPEG"
        (flat_image(180) if i == 1 else flat_image((0, 0, 250))).save(root / "val" / "images" / name, quality=95)
        lines.append(f"{name}\t{w}\t0\t0\t63\t63")
    flat_image(128, "L").save(root / "val" / "images" / "val_2.JPEG")  # a greyscale image, as some are
    lines.append("val_2.JPEG\tn02\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_tiny_imagenet_reads_train_and_val_with_sorted_wnid_labels(tiny, tmp_path):
    ds = read_tinyimagenet(tiny, cache_dir=tmp_path / "cache")
    assert ds.train_images.shape == (6, 3, 64, 64) and ds.train_images.dtype == np.uint8
    assert ds.classes == ("n01", "n02", "n03")
    assert ds.train_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.test_labels.tolist() == [2, 0, 1]
    # train/n02/n02_1.JPEG was (40·0 + 10, 100, 50): channel-first, flat colour
    px = ds.train_images[3].reshape(3, -1).mean(axis=1)
    assert np.allclose(px, (10, 100, 50), atol=3)
    assert np.allclose(ds.test_images[2], 128, atol=2)  # greyscale → RGB
    assert np.allclose(ds.test_images[0][2], 250, atol=4) and ds.test_images[0][0].max() < 6


def test_the_cache_is_used_on_the_second_call_and_rebuilt_when_the_files_change(tiny, tmp_path):
    cache_dir = tmp_path / "cache"
    first = read_tinyimagenet(tiny, cache_dir=cache_dir)
    cache = cache_dir / CACHE_NAME
    assert cache.is_file()
    with np.load(cache, allow_pickle=False) as z:  # a plain array file: no pickles inside
        assert z["train_images"].shape == (6, 3, 64, 64)
    # prove the second call reads the cache, not the JPEGs: break every JPEG without changing sizes
    jpegs = sorted(tiny.rglob("*.JPEG"))
    saved = {p: p.read_bytes() for p in jpegs}
    for p in jpegs:
        p.write_bytes(b"\0" * len(saved[p]))
    second = read_tinyimagenet(tiny, cache_dir=cache_dir)
    assert np.array_equal(first.train_images, second.train_images)
    # a new file changes the key: the JPEGs are decoded again (and the broken one is found)
    for p, b in saved.items():
        p.write_bytes(b)
    flat_image((1, 2, 3)).save(tiny / "train" / "n01" / "images" / "n01_9.JPEG")
    third = read_tinyimagenet(tiny, cache_dir=cache_dir)
    assert third.train_images.shape[0] == 7


def test_a_corrupt_jpeg_is_a_one_line_error_naming_it_and_no_cache_is_written(tiny, tmp_path):
    bad = tiny / "train" / "n02" / "images" / "n02_1.JPEG"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated JPEG
    with pytest.raises(DataError) as err:
        read_tinyimagenet(tiny, cache_dir=tmp_path / "cache")
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "cache" / CACHE_NAME).exists()


def test_a_broken_annotation_line_names_the_file_and_line(tiny, tmp_path):
    ann = tiny / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_9.JPEG n04 0 0 1 1\n")
    with pytest.raises(DataError, match="val_annotations.txt:4"):
        read_tinyimagenet(tiny, cache_dir=tmp_path / "cache")


def test_an_image_of_the_wrong_size_is_refused(tiny, tmp_path):
    Image.new("RGB", (32, 32)).save(tiny / "val" / "images" / "val_0.JPEG")
    with pytest.raises(DataError, match="val_0.JPEG: 32×32"):
        read_tinyimagenet(tiny, cache_dir=tmp_path / "cache")


def test_a_corrupt_cache_is_rebuilt(tiny, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / CACHE_NAME).write_bytes(b"garbage")
    ds = read_tinyimagenet(tiny, cache_dir=cache_dir)
    assert ds.train_images.shape == (6, 3, 64, 64)
    with np.load(cache_dir / CACHE_NAME, allow_pickle=False) as z:
        assert z["val_images"].shape == (3, 3, 64, 64)
