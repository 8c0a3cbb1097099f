"""Fast AutoAugment (Lim et al. 2019) on batched uint8 tensors, with the authors' published policies.

A policy is a list of sub-policies of two operations (name, probability, level in [0, 1]); each
image draws one sub-policy and applies each operation with its probability. A level becomes the
operation's argument as in the authors' code: argument = low + level·(high − low) over the
operation's range (``RANGES``), then a random sign for the shears, translations and rotation
(their ``random_mirror``); translations are fractions of the image side; Cutout is a square of side
argument·width at a uniform random centre, filled with (125, 123, 114) and drawn as PIL's
rectangle draws it (both corners included, the far one truncated). Geometric operations fill with
0 (PIL's default) and act about the image centre (PIL's transform acts about the top-left corner:
the same choice as in ``autoaugment``).

The policies are the result of the authors' search, published as Python literals in their
repository's ``FastAutoAugment/archive.py``. They are not copied into this package:
:func:`download_policies` fetches that file at a pinned commit and verifies its SHA-256, and
:func:`load_policy` reads one named policy from it with ``ast.literal_eval`` (only the literal is
read: nothing in the file is executed). Paper 000 trains Tiny ImageNet with Fast AutoAugment; its
ImageNet policy is ``fa_resnet50_rimagenet`` (the authors' ``aug: fa_reduced_imagenet``).
"""

from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from localentropy.data.atomic import atomic_open
from localentropy.data.archives import fetch_url
from localentropy.data.locate import RAW_DIR, search_roots
from localentropy.deep.augment import uniform
from localentropy.deep.autoaugment import (GEOMETRIC, LUTS, SubPolicyAugment, affine_of, autocontrast_lut,
                                           brightness_by_lut, color_by, contrast_by_lut, equalize_lut, invert_lut,
                                           posterize_bits_lut, random_sign, sharpness_by, solarize_at_lut)
from localentropy.deep.errors import DeepError

#: argument range (low, high) of each operation: level 0 → low, level 1 → high
RANGES = {
    "ShearX": (-0.3, 0.3), "ShearY": (-0.3, 0.3), "TranslateX": (-0.45, 0.45), "TranslateY": (-0.45, 0.45),
    "Rotate": (-30.0, 30.0), "AutoContrast": (0.0, 1.0), "Invert": (0.0, 1.0), "Equalize": (0.0, 1.0),
    "Solarize": (0.0, 256.0), "Posterize": (4.0, 8.0), "Contrast": (0.1, 1.9), "Color": (0.1, 1.9),
    "Brightness": (0.1, 1.9), "Sharpness": (0.1, 1.9), "Cutout": (0.0, 0.2),
}
CUTOUT_FILL = (125.0, 123.0, 114.0)

IMAGENET_POLICY = "fa_resnet50_rimagenet"
CIFAR10_POLICY = "fa_reduced_cifar10"


@dataclass(frozen=True)
class PolicySource:
    url: str
    sha256: str
    folder: str
    filename: str


#: The authors' archive.py at the last commit that changed it (kakaobrain/fast-autoaugment, MIT licence).
SOURCE = PolicySource(
    url="https://raw.githubusercontent.com/kakaobrain/fast-autoaugment/"
        "5d86146346e7658796e4725fc74f521e4354d8c6/FastAutoAugment/archive.py",
    sha256="b0bbb32853252f7273838cac3017833a4acb3cf06e0f6f6c5f89dfcfa549d723",
    folder="fast-autoaugment",
    filename="archive.py",
)
HOW_TO_GET = "`localentropy deep download fast-autoaugment` (needs internet)"


def argument(name: str, level: torch.Tensor) -> torch.Tensor:
    low, high = RANGES[name]
    return level * (high - low) + low


def cutout_boxes(cx, cy, side, height: int, width: int):
    """The painted rectangle of each image, inclusive pixel bounds (x0, y0, x1, y1), for centres
    (cx, cy) and sides ``side`` (pixels, float): corner max(0, c − side/2) truncated, far corner
    min(size, corner + side) truncated, as the authors' CutoutAbs hands them to PIL's rectangle."""
    x0 = torch.floor(torch.clamp(cx - side / 2, min=0))
    y0 = torch.floor(torch.clamp(cy - side / 2, min=0))
    x1 = torch.floor(torch.minimum(x0 + side, torch.full_like(x0, width)))
    y1 = torch.floor(torch.minimum(y0 + side, torch.full_like(y0, height)))
    return x0, y0, x1, y1


def cutout(y: torch.Tensor, fraction: torch.Tensor, g) -> torch.Tensor:
    """Fast AutoAugment's Cutout on float images (n, C, H, W): a square of side fraction·W (none at 0)."""
    n, C, H, W = y.shape
    cx, cy = uniform((n,), g, 0.0, float(W)).to(y.device), uniform((n,), g, 0.0, float(H)).to(y.device)
    x0, y0, x1, y1 = cutout_boxes(cx, cy, fraction * W, H, W)
    r = torch.arange(H, device=y.device, dtype=y.dtype)[None, :, None]
    c = torch.arange(W, device=y.device, dtype=y.dtype)[None, None, :]
    inside = ((r >= y0[:, None, None]) & (r <= y1[:, None, None]) & (c >= x0[:, None, None]) & (c <= x1[:, None, None])
              & (fraction > 0)[:, None, None])
    fill = torch.tensor(CUTOUT_FILL[:C] if C == 3 else CUTOUT_FILL[:1] * C, device=y.device, dtype=y.dtype)
    return torch.where(inside[:, None], fill[None, :, None, None], y)


def _lut(name, pixels, value):
    if name == "Solarize":
        return solarize_at_lut(pixels, value)
    if name == "Posterize":
        return posterize_bits_lut(pixels, torch.floor(value))
    if name == "Brightness":
        return brightness_by_lut(pixels, value)
    if name == "Contrast":
        return contrast_by_lut(pixels, value)
    return {"AutoContrast": autocontrast_lut, "Invert": invert_lut, "Equalize": equalize_lut}[name](pixels, value, None)


class FastAutoAugment(SubPolicyAugment):
    """Apply a Fast AutoAugment policy (a list of sub-policies, e.g. from :func:`load_policy`) to a uint8 batch."""

    known = tuple(RANGES)
    magnitudes = (0.0, 1.0)
    fill = 0.0
    kind = "FastAutoAugment"

    def _geometry(self, name, m, g, height, width):
        value = argument(name, m)
        if name == "TranslateX":
            value = value * width
        elif name == "TranslateY":
            value = value * height
        return affine_of(name, random_sign(value, g))

    def _lut(self, name, pixels, m, g):
        return _lut(name, pixels, argument(name, m))

    def _pixels(self, name, y, m, g):
        value = argument(name, m)
        if name == "Color":
            return color_by(y, value)
        if name == "Sharpness":
            return sharpness_by(y, value)
        if name == "Cutout":
            return cutout(y, value, g)
        raise DeepError(f"{name} is not a Fast AutoAugment pixel operation")


assert set(RANGES) == set(GEOMETRIC) | set(LUTS) | {"Color", "Sharpness", "Cutout"}


# --- the published policies ---------------------------------------------------------------------------------

def policy_candidates(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where the policy file is looked for: --data-dir alone when given, else $LOCALENTROPY_DATA, data/raw."""
    return [root / SOURCE.folder / SOURCE.filename for root in search_roots(data_dir)]


def find_policy_file(data_dir: str | os.PathLike | None = None) -> Path:
    searched = policy_candidates(data_dir)
    for path in searched:
        if path.is_file():
            return path
    raise DeepError("the Fast AutoAugment policies are not on this machine "
                    f"(looked for {', '.join(map(str, searched))}); "
                    f"to get them: {HOW_TO_GET}")


def parse_policies(text: str, where: str) -> dict:
    """Every ``def name(): p = [...]; return p`` policy literal of an archive.py text, by function name,
    read with ``ast.literal_eval`` (nothing is executed)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as exc:
        raise DeepError(f"{where}: not a readable Fast AutoAugment archive ({exc.__class__.__name__})") from None
    found = {}
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and len(fn.body) == 2 and isinstance(fn.body[0], ast.Assign) \
                and isinstance(fn.body[1], ast.Return) and isinstance(fn.body[0].value, ast.List):
            try:
                found[fn.name] = ast.literal_eval(fn.body[0].value)
            except ValueError:
                continue
    return found


def load_policy(name: str = IMAGENET_POLICY, path: str | os.PathLike | None = None, data_dir=None,
                verify: bool = True) -> list:
    """The named policy from the authors' archive.py (``path``, or found as :func:`find_policy_file` does).
    ``verify``: the file must be the pinned one (its SHA-256); a policy from another file needs verify=False."""
    path = Path(path) if path is not None else find_policy_file(data_dir)
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise DeepError(f"{path}: cannot read the Fast AutoAugment policies ({exc.strerror or exc})") from None
    if verify and hashlib.sha256(payload).hexdigest() != SOURCE.sha256:
        raise DeepError(f"{path}: not the published Fast AutoAugment archive (SHA-256 differs); "
                        f"delete it and run {HOW_TO_GET}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise DeepError(f"{path}: not a text file") from None
    policies = parse_policies(text, str(path))
    if name not in policies:
        raise DeepError(f"{path}: no policy {name!r}; it has {', '.join(sorted(policies)) or 'none'}")
    policy = policies[name]
    FastAutoAugment(policy)  # validated: a DeepError names a bad operation
    return policy


def download_policies(dest: str | os.PathLike | None = None, timeout: float = 60.0,
                      progress: Callable[[str], None] | None = None,
                      fetch: Callable[[str, float], bytes] = fetch_url) -> Path:
    """Fetch the authors' archive.py into ``dest``/fast-autoaugment/ (default data/raw/), verify its
    SHA-256 and write it atomically; a verified copy already there is kept. Needs internet."""
    target = (Path(dest) if dest is not None else RAW_DIR) / SOURCE.folder / SOURCE.filename
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == SOURCE.sha256:
        if progress:
            progress(f"{target}: present and verified")
        return target
    try:
        payload = fetch(SOURCE.url, timeout)
    except Exception as exc:  # network errors of every kind
        raise DeepError(f"could not download the Fast AutoAugment policies from {SOURCE.url}: {exc}") from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != SOURCE.sha256:
        raise DeepError(f"{SOURCE.url}: SHA-256 {digest[:12]}… is not the pinned {SOURCE.sha256[:12]}…; "
                        "nothing written")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target, "wb") as fh:
        fh.write(payload)
    if progress:
        progress(f"{target}: downloaded from {SOURCE.url}, SHA-256 verified")
    return target
