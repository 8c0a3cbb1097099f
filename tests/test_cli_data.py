"""The `localentropy data` commands and the CLI's handling of bad input."""

import numpy as np
from click.testing import CliRunner

from localentropy.cli.main import cli
from localentropy.data import write_idx


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_help_lists_the_data_group():
    res = run("--help")
    assert res.exit_code == 0 and "data" in res.output


def test_data_info_summarises_the_embedded_subset():
    res = run("data", "info")
    assert res.exit_code == 0, res.output
    assert "train: 500 patterns x 784 pixels, Dress(+1) 250, Coat(-1) 250" in res.output


def test_missing_data_dir_is_one_line_and_exit_2(tmp_path):
    res = run("data", "prepare", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x.npz"))
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and res.output.startswith("localentropy: error: fashion-mnist not found")
    assert not (tmp_path / "x.npz").exists()


def test_corrupt_subset_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    res = run("data", "info", str(bad))
    assert res.exit_code == 2 and "bad.npz" in res.output and "Traceback" not in res.output


def test_prepare_from_small_files_writes_atomically(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 40)):
        level = rng.integers(60, 190, size=n)
        imgs = np.clip(level[:, None, None] + rng.integers(-30, 31, size=(n, 28, 28)), 0, 255).astype(np.uint8)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", imgs)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.where(rng.random(n) < 0.5, 3, 4).astype(np.uint8))
    out = tmp_path / "sub.npz"
    res = run("data", "prepare", "--data-dir", str(tmp_path), "--out", str(out))
    # 500 training patterns need 250 of each class; 300 images are too few: clear error, nothing written
    assert res.exit_code == 2 and "usable images" in res.output and not out.exists()


def test_unknown_dataset_name_is_a_usage_error():
    res = run("data", "download", "cifar-11")
    assert res.exit_code == 2


def _raw_files(folder, labels_train=None):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 40)):
        level = rng.integers(60, 190, size=n)
        imgs = np.clip(level[:, None, None] + rng.integers(-30, 31, size=(n, 28, 28)), 0, 255).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", imgs)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.where(rng.random(n) < 0.5, 3, 4).astype(np.uint8))
    if labels_train is not None:
        (folder / "train-labels-idx1-ubyte").write_bytes(labels_train)


def test_prepare_names_a_labels_file_of_the_wrong_rank_or_type(tmp_path):
    import struct

    body = bytes([3, 4]) * 150
    cases = {
        "rank": (b"\x00\x00\x08\x03" + struct.pack(">I", 300) + body, "declares 3 dimension(s), expected 1"),
        "signed": (b"\x00\x00\x09\x01" + struct.pack(">I", 300) + body, "0x09 (signed bytes)"),
        "class": (b"\x00\x00\x08\x01" + struct.pack(">I", 300) + bytes([3, 12]) * 150, "classes 0..9"),
    }
    for name, (payload, words) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        _raw_files(folder, payload)
        out = folder / "sub.npz"
        res = run("data", "prepare", "--data-dir", str(folder), "--out", str(out))
        assert res.exit_code == 2, res.output
        assert res.output.count("\n") == 1 and "train-labels-idx1-ubyte" in res.output and words in res.output, \
            res.output
        assert "truncated" not in res.output and not out.exists()
