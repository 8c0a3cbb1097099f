"""The AutoAugment CIFAR-10 policy (Cubuk et al. 2018), on batched uint8 tensors.

25 sub-policies of two operations (name, probability, magnitude 0–9), those of the paper's appendix
table "Policy found on reduced CIFAR-10" (the same list as torchvision's ``AutoAugmentPolicy.CIFAR10``).
Each image draws one sub-policy, then applies each of its two operations with its probability.
Magnitudes map to operation arguments as in the authors' released code
(tensorflow/models, research/autoaugment/augmentation_transforms.py, PARAMETER_MAX = 10):
shear ±0.3·m/10, translate ±10·m/10 pixels (for 32 px images, scaled with the width), rotate
±30·m/10 degrees, colour / contrast / brightness / sharpness factor 0.1 + 1.8·m/10, posterize to
4 − ⌊4m/10⌋ bits, solarize above 256 − ⌊256m/10⌋; random sign on the geometric ones. Geometric
operations fill with grey 128 (the released code's fill) and sample the nearest pixel; they act
about the image centre (PIL's transform acts about the top-left corner: a choice, for symmetry).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from localentropy.deep.augment import affine, check_uint8, to_uint8, uniform
from localentropy.deep.errors import DeepError

CIFAR10_POLICY = (
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 8), ("Equalize", 0.6, 4)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 6)),
    (("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1)),
)

FILL = 128.0


def _signed(m, g):
    sign = torch.where(uniform(m.shape, g) < 0.5, -1.0, 1.0).to(m.device)
    return m * sign


def geometry(name: str, m: torch.Tensor, g, height: int, width: int):
    """The affine map of geometric operation ``name`` at magnitudes ``m`` (n,): (matrix (n, 2, 2), shift (n, 2))
    in pixel units about the image centre (see :func:`localentropy.deep.augment.affine`)."""
    n = m.shape[0]
    mat = torch.eye(2, device=m.device).expand(n, 2, 2).clone()
    shift = torch.zeros(n, 2, device=m.device)
    if name == "ShearX":
        mat[:, 0, 1] = _signed(0.3 * m / 10, g)
    elif name == "ShearY":
        mat[:, 1, 0] = _signed(0.3 * m / 10, g)
    elif name == "TranslateX":
        shift[:, 0] = _signed(torch.floor(10 * m / 10) * width / 32, g)
    elif name == "TranslateY":
        shift[:, 1] = _signed(torch.floor(10 * m / 10) * height / 32, g)
    elif name == "Rotate":
        a = torch.deg2rad(_signed(torch.floor(30 * m / 10), g))
        c, s = torch.cos(a), torch.sin(a)
        mat = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    else:
        raise DeepError(f"{name} is not a geometric operation")
    return mat, shift


GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def _geometric_op(name):
    def op(x, m, g):
        mat, shift = geometry(name, m, g, x.shape[-2], x.shape[-1])
        return affine(x, mat.to(x.dtype), shift.to(x.dtype), FILL)
    op.__name__ = name
    return op


def _factor(m):
    return 0.1 + 1.8 * m / 10


def luma(x):
    """PIL's integer RGB → L conversion: (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16 (exact in float32)."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor([19595.0, 38470.0, 7471.0], device=x.device, dtype=x.dtype)
    return torch.floor(((x * w[None, :, None, None]).sum(1, keepdim=True) + 32768.0) / 65536.0)


def pil_blend(x, other, factor):
    """PIL's Image.blend(other, x, factor) as ImageEnhance uses it: other + factor·(x − other) in single
    precision, clipped to [0, 255] and truncated to an integer."""
    return torch.floor((other + factor[:, None, None, None] * (x - other)).clamp_(0, 255))


def color(x, m, g):
    return pil_blend(x, luma(x), _factor(m))


def contrast(x, m, g):
    mean = torch.floor(luma(x).mean((1, 2, 3), keepdim=True) + 0.5)
    return pil_blend(x, mean, _factor(m))


def brightness(x, m, g):
    return pil_blend(x, torch.zeros_like(x), _factor(m))


def sharpness(x, m, g):
    """PIL's ImageFilter.SMOOTH kernel [[1,1,1],[1,5,1],[1,1,1]]/13 on the interior, border pixels kept."""
    smooth = x.clone()
    box = F.avg_pool2d(x, 3, stride=1) * 9  # 3×3 sums; kernel = box + 4·centre
    smooth[:, :, 1:-1, 1:-1] = torch.round((box + 4 * x[:, :, 1:-1, 1:-1]) / 13)
    return pil_blend(x, smooth, _factor(m))


def posterize(x, m, g):
    bits = 4 - torch.floor(4 * m / 10)
    step = torch.pow(2.0, 8 - bits)[:, None, None, None]
    return torch.floor(x / step) * step


def solarize(x, m, g):
    threshold = (256 - torch.floor(256 * m / 10))[:, None, None, None]
    return torch.where(x >= threshold, 255 - x, x)


def invert(x, m, g):
    return 255 - x


def autocontrast(x, m, g):
    """Stretch each channel so its minimum is 0 and its maximum 255 (unchanged where flat)."""
    lo = x.amin((2, 3), keepdim=True)
    hi = x.amax((2, 3), keepdim=True)
    span = hi - lo
    scale = torch.where(span > 0, 255.0 / span.clamp_min(1e-12), torch.ones_like(span))
    offset = torch.where(span > 0, lo, torch.zeros_like(lo))
    return ((x - offset) * scale).clamp_(0, 255)


def equalize(x, m, g):
    """PIL's ImageOps.equalize per channel: lut[i] = (step//2 + #pixels below i) // step, step = (n − count of
    the top value)//255; a channel with step 0 is unchanged."""
    B, C, H, W = x.shape
    v = x.round().long().clamp(0, 255).reshape(B * C, H * W)
    rows = torch.arange(B * C, device=x.device)[:, None] * 256
    hist = torch.bincount((v + rows).flatten(), minlength=B * C * 256).reshape(B * C, 256)
    top = v.max(1).values
    top_count = hist.gather(1, top[:, None])[:, 0]
    step = (H * W - top_count) // 255
    below = torch.cumsum(hist, 1) - hist
    safe = step.clamp_min(1)[:, None]
    lut = ((step[:, None] // 2 + below) // safe).clamp(max=255)
    out = lut.gather(1, v)
    out = torch.where((step > 0)[:, None], out, v)
    return out.reshape(B, C, H, W).to(x.dtype)


OPS = {
    **{name: _geometric_op(name) for name in GEOMETRIC}, "Color": color, "Contrast": contrast, "Brightness": brightness,
    "Sharpness": sharpness, "Posterize": posterize, "Solarize": solarize, "Invert": invert,
    "AutoContrast": autocontrast, "Equalize": equalize,
}


def apply_op(name: str, x: torch.Tensor, magnitude, generator) -> torch.Tensor:
    """One operation on uint8 images (all of them), magnitude 0–9 (scalar or per image); returns uint8."""
    check_uint8(x, name)
    if name not in OPS:
        raise DeepError(f"unknown AutoAugment operation {name!r}; known: {', '.join(OPS)}")
    m = torch.as_tensor(magnitude, dtype=torch.float32, device=x.device).expand(x.shape[0]).clone()
    return to_uint8(OPS[name](x.float(), m, generator))


class AutoAugment:
    """Apply a policy (default: CIFAR-10's) to a uint8 batch: one random sub-policy per image."""

    def __init__(self, policy=CIFAR10_POLICY):
        for sub in policy:
            for name, p, m in sub:
                if name not in OPS or not 0 <= p <= 1 or not 0 <= m <= 9:
                    raise DeepError(f"bad AutoAugment operation {(name, p, m)}")
        self.policy = tuple(policy)
        self.names = sorted({name for sub in self.policy for name, _, _ in sub})
        code = {name: k for k, name in enumerate(self.names)}
        # per stage: (operation code, probability, magnitude) of each sub-policy
        self.table = torch.tensor([[[code[sub[st][0]], sub[st][1], sub[st][2]] for sub in self.policy] for st in (0, 1)],
                                  dtype=torch.float32)
        self._on = {}

    def _table(self, device):
        if device not in self._on:
            self._on[device] = self.table.to(device)
        return self._on[device]

    def __call__(self, x, g):
        check_uint8(x, "AutoAugment")
        B, _, H, W = x.shape
        table = self._table(x.device)
        choice = torch.floor(uniform((B,), g) * len(self.policy)).long()
        y = x.float()
        for stage in range(2):
            op, prob, m = table[stage, choice].unbind(1)
            op = torch.where(uniform((B,), g) < prob, op, torch.full_like(op, -1))  # −1: not applied
            present = torch.unique(op).long().tolist()
            # all geometric operations of this stage in one resampling: identity for the other images
            mat = torch.eye(2, device=x.device).expand(B, 2, 2).clone()
            shift = torch.zeros(B, 2, device=x.device)
            moved = None
            for k in present:
                if k < 0:
                    continue
                name = self.names[k]
                sel = torch.nonzero(op == k).flatten()
                if name in GEOMETRIC:
                    mat[sel], shift[sel] = geometry(name, m[sel], g, H, W)
                    moved = sel if moved is None else torch.cat([moved, sel])
                else:
                    y[sel] = OPS[name](y[sel], m[sel], g).round_().clamp_(0, 255)
            if moved is not None:
                y[moved] = affine(y[moved], mat[moved], shift[moved], FILL).round_().clamp_(0, 255)
        return to_uint8(y)

    def __repr__(self):
        return f"AutoAugment({len(self.policy)} sub-policies)"
