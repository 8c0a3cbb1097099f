"""IDX reading and writing, on small files the tests write."""

import gzip
import struct

import numpy as np
import pytest

from localentropy.data.errors import DataError
from localentropy.data.idx import idx_bytes, read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_preserves_values_shape_and_dtype(tmp_path, dtype, compress):
    rng = np.random.default_rng(1)
    arr = (rng.normal(size=(3, 5, 7)) * 50).astype(dtype)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.shape == arr.shape and back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, arr)


def test_idx_header_is_the_published_big_endian_layout():
    raw = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert raw[:4] == b"\x00\x00\x08\x02"
    assert struct.unpack(">II", raw[4:12]) == (2, 3)
    assert raw[12:] == bytes(range(6))


def test_truncated_idx_file_names_the_shortfall(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(idx_bytes(np.zeros((4, 4), np.uint8))[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_trailing_bytes_are_rejected(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(idx_bytes(np.zeros((2, 2), np.uint8)) + b"xx")
    with pytest.raises(DataError, match="trailing"):
        read_idx(path)


def test_wrong_magic_is_not_an_idx_file(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


def test_unknown_type_code_is_rejected(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match="type code"):
        read_idx(path)


def test_corrupt_gzip_stream_gives_a_data_error(tmp_path):
    path = tmp_path / "t.idx.gz"
    payload = gzip.compress(idx_bytes(np.ones((50, 50), np.uint8)))
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(DataError, match="gzip"):
        read_idx(path)


def test_missing_file_gives_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "nope.idx")


def test_expected_rank_is_checked_before_the_sizes(tmp_path):
    """A labels file whose header says 3 dimensions: the rank is the error, not a 'truncated' file whose
    'sizes' are label bytes read as uint32."""
    path = tmp_path / "labels.idx"
    body = bytes(range(10)) * 100
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 1000) + body)
    with pytest.raises(DataError, match=r"declares 3 dimension\(s\), expected 1") as info:
        read_idx(path, dtype=np.uint8, ndim=1)
    assert "truncated" not in str(info.value)
    with pytest.raises(DataError, match="truncated"):  # without an expectation, the sizes are all there is to check
        read_idx(path)


def test_expected_type_is_checked_and_signed_bytes_are_not_unsigned(tmp_path):
    path = tmp_path / "labels.idx"
    write_idx(path, np.arange(10, dtype=np.int8))
    with pytest.raises(DataError, match=r"type code 0x09 \(signed bytes\), expected 0x08 \(unsigned bytes\)"):
        read_idx(path, dtype=np.uint8, ndim=1)
    assert read_idx(path, dtype=np.int8, ndim=1).tolist() == list(range(10))
    # the type is checked before the rank, the rank before the sizes
    path.write_bytes(b"\x00\x00\x0d\x07" + b"\x00" * 3)
    with pytest.raises(DataError, match="type code 0x0d"):
        read_idx(path, dtype=np.uint8, ndim=1)
