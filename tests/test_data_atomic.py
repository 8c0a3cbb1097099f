"""Atomic writes: a failed write leaves neither a partial file nor a temporary one, and never clobbers."""

import os
import stat

import pytest

from localentropy.data.atomic import atomic_open


def test_complete_write_appears_whole_with_ordinary_permissions(tmp_path):
    path = tmp_path / "out.csv"
    with atomic_open(path, "w") as fh:
        fh.write("a,b\n")
        assert not path.exists()  # nothing visible until the block ends
    assert path.read_text() == "a,b\n"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as fh:
            fh.write(b"half")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_folder_that_cannot_be_written_is_named_not_the_hidden_temporary_file(tmp_path, monkeypatch):
    import errno
    import tempfile

    import pytest

    from localentropy.data.atomic import atomic_open

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".x.csv.abc.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(OSError) as info:
        with atomic_open(tmp_path / "x.csv", "w") as fh:
            fh.write("never")
    text = str(info.value)
    assert f"cannot write x.csv in folder {tmp_path} (permission denied)" in text and ".tmp" not in text
    assert info.value.errno == errno.EACCES and not (tmp_path / "x.csv").exists()
