"""Fast AutoAugment: each operation at a level against PIL at the authors' argument for that level,
Cutout against PIL's rectangle, the policy file read without executing it, and its download verified."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from localentropy.cli.main import cli
from localentropy.deep import fastautoaugment as faa
from localentropy.deep.augment import channel_stats, uniform
from localentropy.deep.errors import DeepError
from localentropy.deep.fastautoaugment import (RANGES, FastAutoAugment, cutout, download_policies, load_policy,
                                               parse_policies)
from localentropy.deep.stacks import make_stack


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=6, c=3, side=32, seed=0):
    return torch.randint(0, 256, (n, c, side, side), generator=gen(seed), dtype=torch.uint8)


def pil(x, fn):
    out = [np.asarray(fn(Image.fromarray(img.permute(1, 2, 0).numpy()))) for img in x]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def once(name, level):
    """A policy that applies ``name`` at ``level`` to every image (its second operation never applies)."""
    return FastAutoAugment([[(name, 1.0, level), (name, 0.0, level)]])


def arg(name, level):
    low, high = RANGES[name]
    return level * (high - low) + low


@pytest.mark.parametrize("name,level,fn,tol", [
    ("Invert", 0.3, ImageOps.invert, 0),
    ("Solarize", 0.3, lambda im: ImageOps.solarize(im, arg("Solarize", 0.3)), 0),  # threshold 76.8
    ("Posterize", 0.6, lambda im: ImageOps.posterize(im, int(arg("Posterize", 0.6))), 0),  # 6.4 → 6 bits
    ("Posterize", 0.1, lambda im: ImageOps.posterize(im, 4), 0),
    ("AutoContrast", 0.9, ImageOps.autocontrast, 1),
    ("Equalize", 0.2, ImageOps.equalize, 0),
    ("Brightness", 0.25, lambda im: ImageEnhance.Brightness(im).enhance(arg("Brightness", 0.25)), 1),
    ("Color", 0.8, lambda im: ImageEnhance.Color(im).enhance(arg("Color", 0.8)), 1),
    ("Contrast", 0.4, lambda im: ImageEnhance.Contrast(im).enhance(arg("Contrast", 0.4)), 1),
    ("Sharpness", 0.9, lambda im: ImageEnhance.Sharpness(im).enhance(arg("Sharpness", 0.9)), 1),
])
def test_colour_operations_at_a_level_agree_with_pil_at_the_authors_argument(name, level, fn, tol):
    x = images(4, seed=7)
    x[1] = (x[1] // 3) + 60  # a low-contrast image for AutoContrast / Equalize
    ours = once(name, level)(x, gen()).int()
    ref = pil(x, fn).int()
    diff = (ours - ref).abs()
    assert diff.max() <= tol and (diff > 0).float().mean() < 0.05, (name, diff.max().item())


def test_translation_is_a_fraction_of_the_side_either_way_filled_with_black():
    x = images(64, seed=8, side=32)
    level = (0.25 + 0.45) / 0.9  # argument 0.25 of 32 px: 8 pixels
    y = once("TranslateX", level)(x, gen(1))
    seen = set()
    for i in range(64):
        right = torch.zeros_like(x[i])
        right[..., 8:] = x[i, ..., :-8]
        left = torch.zeros_like(x[i])
        left[..., :-8] = x[i, ..., 8:]
        assert torch.equal(y[i], right) or torch.equal(y[i], left)
        seen.add(torch.equal(y[i], right))
    assert seen == {True, False}  # the random mirror


def test_level_half_of_a_symmetric_range_is_the_identity():
    x = images(8, seed=3)
    for name in ("ShearX", "ShearY", "TranslateY", "Rotate"):
        assert torch.equal(once(name, 0.5)(x, gen(2)), x), name


def test_cutout_paints_what_pils_rectangle_paints_at_the_authors_corners():
    x = images(40, seed=5, side=32).float()
    fraction = torch.full((40,), 0.2)  # side 6.4 px
    fraction[:5] = torch.linspace(0.01, 0.19, 5)
    ours = cutout(x, fraction, gen(9))
    g = gen(9)
    cx, cy = uniform((40,), g, 0.0, 32.0), uniform((40,), g, 0.0, 32.0)  # the draws cutout makes
    for i in range(40):
        v = float(fraction[i]) * 32
        x0, y0 = int(max(0, float(cx[i]) - v / 2.0)), int(max(0, float(cy[i]) - v / 2.0))
        img = Image.fromarray(x[i].permute(1, 2, 0).numpy().astype(np.uint8))
        ImageDraw.Draw(img).rectangle((x0, y0, min(32, x0 + v), min(32, y0 + v)), (125, 123, 114))
        assert torch.equal(ours[i], torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float()), i
    assert torch.equal(cutout(x, torch.zeros(40), gen(9)), x)  # level 0: nothing painted


def test_every_operation_maps_uint8_images_into_range_and_a_seed_fixes_the_result():
    x = images(32, seed=2)
    x[0], x[1] = 0, 255
    policy = [[(name, 0.9, lv), (other, 0.7, 1 - lv)]
              for lv in (0.0, 0.37, 1.0) for name, other in zip(RANGES, reversed(list(RANGES)))]
    aug = FastAutoAugment(policy)
    a, b = aug(x, gen(4)), aug(x, gen(4))
    assert a.dtype == torch.uint8 and a.shape == x.shape and torch.equal(a, b)
    assert (a != x).flatten(1).any(1).float().mean() > 0.5


ARCHIVE = '''# a file in the format of the authors' archive.py
import os

def side_effect():
    p = [[["ShearX", 0.5, 0.5], ["Invert", 0.5, 0.5]]]
    os.system("echo never run")
    return p


def fa_reduced_cifar10():
    p = [[["Posterize", 0.25, 0.5], ["Cutout", 0.75, 0.125]], [["Rotate", 1.0, 0.0], ["Equalize", 0.0, 1.0]]]
    return p


def fa_broken():
    p = [[["Explode", 0.5, 0.5], ["Invert", 0.5, 0.5]]]
    return p


def fa_too_strong():
    p = [[["Rotate", 0.5, 1.5], ["Invert", 0.5, 0.5]]]
    return p
'''


def test_policies_are_read_as_literals_from_an_archive_file_never_executed(tmp_path, capfd):
    path = tmp_path / "archive.py"
    path.write_text(ARCHIVE)
    found = parse_policies(ARCHIVE, "x")
    assert "side_effect" not in found  # three statements: not a policy function
    policy = load_policy("fa_reduced_cifar10", path=path, verify=False)
    assert policy == [[["Posterize", 0.25, 0.5], ["Cutout", 0.75, 0.125]], [["Rotate", 1.0, 0.0], ["Equalize", 0.0, 1.0]]]
    assert "never run" not in capfd.readouterr().out
    with pytest.raises(DeepError, match="not the published"):  # the pinned file's checksum
        load_policy("fa_reduced_cifar10", path=path)
    with pytest.raises(DeepError, match="no policy 'fa_resnet50_rimagenet'"):
        load_policy(faa.IMAGENET_POLICY, path=path, verify=False)
    with pytest.raises(DeepError, match="Explode"):
        load_policy("fa_broken", path=path, verify=False)
    with pytest.raises(DeepError, match="bad FastAutoAugment operation"):
        load_policy("fa_too_strong", path=path, verify=False)
    garbage = tmp_path / "garbage.py"
    garbage.write_bytes(b"def (((\x00")
    with pytest.raises(DeepError, match="garbage.py"):
        load_policy("fa_reduced_cifar10", path=garbage, verify=False)


def test_a_missing_policy_file_names_where_it_was_looked_for_and_how_to_get_it(tmp_path):
    x = images(4)
    mean, std = channel_stats(x)
    with pytest.raises(DeepError, match="deep download fast-autoaugment") as err:
        make_stack("fast-autoaugment", mean, std, 32, data_dir=tmp_path)
    assert str(tmp_path / "fast-autoaugment" / "archive.py") in str(err.value)
    stack = make_stack("fast-autoaugment", mean, std, 32, policy=[[("Invert", 1.0, 0.0), ("Cutout", 1.0, 0.5)]])
    out = stack(x, gen())
    assert out.dtype == torch.float32 and out.shape == x.shape


def test_download_keeps_only_a_file_with_the_pinned_checksum(tmp_path, monkeypatch):
    payload = ARCHIVE.encode()
    monkeypatch.setattr(faa, "SOURCE", faa.PolicySource("https://example.invalid/archive.py",
                                                        hashlib.sha256(payload).hexdigest(), "fast-autoaugment", "archive.py"))
    with pytest.raises(DeepError, match="SHA-256"):
        download_policies(tmp_path, fetch=lambda url, timeout: payload + b"# altered\n")
    assert not (tmp_path / "fast-autoaugment" / "archive.py").exists()
    target = download_policies(tmp_path, fetch=lambda url, timeout: payload)
    assert target.read_bytes() == payload
    assert load_policy("fa_reduced_cifar10", data_dir=tmp_path)[0][0] == ["Posterize", 0.25, 0.5]

    def offline(url, timeout):
        raise OSError("no network")
    assert download_policies(tmp_path, fetch=offline) == target  # verified copy kept, nothing fetched


def test_tiny_imagenet_preset_without_the_policy_is_one_line_and_exit_2(tmp_path):
    res = CliRunner().invoke(cli, ["deep", "train", "--preset", "tinyimagenet-resnet50-sgd", "--data-dir", str(tmp_path),
                                    "--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    assert "Fast AutoAugment policies are not on this machine" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
