"""Reading and writing IDX files (the MNIST / Fashion-MNIST format), gzipped or plain.

Format (LeCun et al.): two zero bytes, a type code, the number of dimensions n, then n big-endian
uint32 sizes, then the data in row-major order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from localentropy.data.atomic import atomic_open
from localentropy.data.errors import DataError

_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _raw_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == _GZIP_MAGIC:
                with gzip.open(fh) as gz:
                    return gz.read()
            return fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError) as exc:  # gzip raises these on truncated or corrupt streams
        raise DataError(f"{path}: corrupt gzip stream ({exc})") from None


_TYPE_NAMES = {0x08: "unsigned bytes", 0x09: "signed bytes", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32",
               0x0E: "float64"}


def parse_idx(buf: bytes, name: str = "<bytes>", *, dtype=None, ndim: int | None = None) -> np.ndarray:
    """Parse the bytes of an IDX file into an array in native byte order, validating every field.

    The header is checked in the order it is laid out, each field before anything that depends on
    it: the two zero bytes, the type code (and, if ``dtype`` is given, that it is that type), the
    number of dimensions (and, if ``ndim`` is given, that it is that number), then the sizes
    against the bytes the file holds. So a labels file whose header says 3 dimensions is reported
    as such, not as a truncated file of absurd sizes read from its data bytes.
    """
    if len(buf) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(buf)} bytes)")
    zero, code, rank = struct.unpack(">HBB", buf[:4])
    if zero != 0:
        raise DataError(f"{name}: not an IDX file (magic starts {buf[:2].hex()}, expected 0000)")
    if code not in _TYPES:
        raise DataError(f"{name}: unknown IDX type code 0x{code:02x}")
    if dtype is not None:
        want = np.dtype(dtype).newbyteorder("=")
        if _TYPES[code].newbyteorder("=") != want:
            want_code = _CODES.get(want)
            want_name = _TYPE_NAMES.get(want_code, str(want))
            raise DataError(f"{name}: IDX type code 0x{code:02x} ({_TYPE_NAMES[code]}), expected "
                            f"{'0x%02x ' % want_code if want_code is not None else ''}({want_name})")
    if rank == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    if ndim is not None and rank != ndim:
        raise DataError(f"{name}: IDX header declares {rank} dimension(s), expected {ndim}")
    header = 4 + 4 * rank
    if len(buf) < header:
        raise DataError(f"{name}: truncated IDX header ({rank} dimension sizes need {header} bytes, file has {len(buf)})")
    shape = struct.unpack(f">{rank}I", buf[4:header])
    dt = _TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    body = len(buf) - header
    if body < expected:
        raise DataError(f"{name}: truncated: header says {shape} ({expected} data bytes), file has {body}")
    if body > expected:
        raise DataError(f"{name}: {body - expected} trailing bytes after the {shape} array")
    arr = np.frombuffer(buf, dtype=dt, count=expected // dt.itemsize, offset=header).reshape(shape)
    return arr.astype(dt.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike, *, dtype=None, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not, detected from its first bytes); ``dtype`` and ``ndim``, if
    given, are required of the header (see `parse_idx`)."""
    path = Path(path)
    return parse_idx(_raw_bytes(path), str(path), dtype=dtype, ndim=ndim)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (uint8, int8, int16, int32, float32 or float64)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise DataError(f"IDX cannot store dtype {array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise DataError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    code = _CODES[native]
    head = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX, gzipped if ``compress`` (default: if the name ends in .gz), atomically."""
    path = Path(path)
    compress = path.suffix == ".gz" if compress is None else compress
    payload = idx_bytes(array)
    if compress:
        payload = gzip.compress(payload, mtime=0)
    atomic_write_bytes(path, payload)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (see `data.atomic`), creating the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        fh.write(payload)
