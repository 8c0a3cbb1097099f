"""Download of the archive data sets with a fake fetcher: checksum first, safe unpacking, official entries."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import pytest

from localentropy.data.archives import download_archive
from localentropy.data.errors import DataError
from localentropy.data.sources import ARCHIVES, ArchiveDataset


def tar_gz(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def source(payload, folder="cifar-10-batches-py", archive="x.tar.gz"):
    return ArchiveDataset("fake", ("https://a/x", "https://b/x"), archive, hashlib.md5(payload).hexdigest(),
                          folder, "", "")


def test_the_registry_has_the_published_md5_checksums():
    assert ARCHIVES["cifar-10"].md5 == "c58f30108f718f92721af3b95e74349a"
    assert ARCHIVES["cifar-100"].md5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert ARCHIVES["stl-10"].md5 == "91f7769df0f17e558f3565bffb0c7dfb"
    assert ARCHIVES["tiny-imagenet"].md5 == "90528d7ca1a48142e341f4ef8d21d0de"
    assert ARCHIVES["cifar-10"].urls[0].startswith("https://www.cs.toronto.edu/~kriz/")


def test_a_verified_archive_is_unpacked_and_a_bad_mirror_is_skipped(tmp_path):
    payload = tar_gz({"cifar-10-batches-py/test_batch": b"abc"})
    calls = []

    def fetch(url, timeout):
        calls.append(url)
        return b"corrupted" if url.startswith("https://a") else payload

    folder = download_archive("fake", tmp_path, fetch=fetch, source=source(payload))
    assert (folder / "test_batch").read_bytes() == b"abc" and calls == ["https://a/x", "https://b/x"]
    assert download_archive("fake", tmp_path, fetch=None, source=source(payload)) == folder  # present: no fetch
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_a_checksum_mismatch_on_every_mirror_fails_and_keeps_nothing(tmp_path):
    payload = tar_gz({"cifar-10-batches-py/test_batch": b"abc"})
    with pytest.raises(DataError, match="MD5"):
        download_archive("fake", tmp_path, fetch=lambda u, t: payload + b"x", source=source(payload))
    assert list(tmp_path.iterdir()) == []


def test_an_archive_escaping_its_folder_is_refused(tmp_path):
    payload = tar_gz({"../evil": b"x", "cifar-10-batches-py/a": b"y"})
    with pytest.raises(DataError, match="refused member '../evil'"):
        download_archive("fake", tmp_path / "d", fetch=lambda u, t: payload, source=source(payload))
    assert not (tmp_path / "evil").exists() and not (tmp_path / "d" / "cifar-10-batches-py").exists()


def test_a_zip_archive_is_unpacked(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tiny-imagenet-200/wnids.txt", "n01\n")
    payload = buf.getvalue()
    folder = download_archive("fake", tmp_path, fetch=lambda u, t: payload,
                              source=source(payload, "tiny-imagenet-200", "t.zip"))
    assert (folder / "wnids.txt").read_text() == "n01\n"
