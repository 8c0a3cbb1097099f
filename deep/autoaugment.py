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


def random_sign(m, g):
    sign = torch.where(uniform(m.shape, g) < 0.5, -1.0, 1.0).to(m.device)
    return m * sign


def affine_of(name: str, value: torch.Tensor):
    """The affine map of geometric operation ``name`` at signed arguments ``value`` (n,): shear factor,
    translation in pixels or rotation in degrees; returns (matrix (n, 2, 2), shift (n, 2)) in pixel
    units about the image centre (see :func:`localentropy.deep.augment.affine`)."""
    n = value.shape[0]
    mat = torch.eye(2, device=value.device).expand(n, 2, 2).clone()
    shift = torch.zeros(n, 2, device=value.device)
    if name == "ShearX":
        mat[:, 0, 1] = value
    elif name == "ShearY":
        mat[:, 1, 0] = value
    elif name == "TranslateX":
        shift[:, 0] = value
    elif name == "TranslateY":
        shift[:, 1] = value
    elif name == "Rotate":
        a = torch.deg2rad(value)
        c, s = torch.cos(a), torch.sin(a)
        mat = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    else:
        raise DeepError(f"{name} is not a geometric operation")
    return mat, shift


def geometry(name: str, m: torch.Tensor, g, height: int, width: int):
    """The affine map of geometric operation ``name`` at AutoAugment magnitudes ``m`` (n,), random sign."""
    if name in ("ShearX", "ShearY"):
        value = 0.3 * m / 10
    elif name == "TranslateX":
        value = torch.floor(10 * m / 10) * width / 32
    elif name == "TranslateY":
        value = torch.floor(10 * m / 10) * height / 32
    elif name == "Rotate":
        value = torch.floor(30 * m / 10)
    else:
        raise DeepError(f"{name} is not a geometric operation")
    return affine_of(name, random_sign(value, g))


GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def _geometric_op(name):
    def op(x, m, g):
        mat, shift = geometry(name, m, g, x.shape[-2], x.shape[-1])
        return affine(x, mat.to(x.dtype), shift.to(x.dtype), FILL)
    op.__name__ = name
    return op


def _factor(m):
    return 0.1 + 1.8 * m / 10


_CONSTANTS: dict = {}  # small tensors built once per (what, device, dtype): a fresh one per call costs more


def _constant(what, device, dtype):
    key = (what, str(device), dtype)
    if key not in _CONSTANTS:
        values = {"luma": [19595.0, 38470.0, 7471.0], "levels": list(range(256))}[what]
        _CONSTANTS[key] = torch.tensor(values, device=device, dtype=dtype)
    return _CONSTANTS[key]


def luma(x):
    """PIL's integer RGB → L conversion: (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16 (exact in float32)."""
    if x.shape[1] == 1:
        return x
    w = _constant("luma", x.device, x.dtype)
    return torch.floor(((x * w[None, :, None, None]).sum(1, keepdim=True) + 32768.0) / 65536.0)


def pil_blend(x, other, factor):
    """PIL's Image.blend(other, x, factor) as ImageEnhance uses it: other + factor·(x − other) in single
    precision, clipped to [0, 255] and truncated to an integer."""
    return torch.floor((other + factor[:, None, None, None] * (x - other)).clamp_(0, 255))


def color_by(x, factor):
    """PIL's ImageEnhance.Color(x).enhance(factor), factor (n,)."""
    return pil_blend(x, luma(x), factor)


def sharpness_by(x, factor):
    """PIL's ImageEnhance.Sharpness: the ImageFilter.SMOOTH kernel [[1,1,1],[1,5,1],[1,1,1]]/13 on the
    interior, border pixels kept, blended by ``factor`` (n,)."""
    smooth = x.clone()
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]  # exact 3×3 sums of integers; kernel = box + 4·centre
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    smooth[:, :, 1:-1, 1:-1] = torch.round((box + 4 * x[:, :, 1:-1, 1:-1]) / 13)
    return pil_blend(x, smooth, factor)


def color(x, m, g):
    return color_by(x, _factor(m))


def sharpness(x, m, g):
    return sharpness_by(x, _factor(m))


def levels(x):
    """The 256 pixel values, shaped (1, 1, 256) for per-(image, channel) lookup tables."""
    return _constant("levels", x.device, torch.float32)[None, None, :]


# Operations that map each pixel value through a per-(image, channel) table: the table is built from
# the image's statistics on (n, C, 256) values, then applied to all such images of a stage in one gather.
# Each takes images (n, C, H, W) float (only their shape is used by the first four) and returns (n, C, 256).

def posterize_bits_lut(x, bits):
    """PIL's ImageOps.posterize(bits): keep the ``bits`` (n,) high bits of each value."""
    step = torch.pow(2.0, 8 - bits)[:, None, None]
    return (torch.floor(levels(x) / step) * step).expand(x.shape[0], x.shape[1], 256)


def solarize_at_lut(x, threshold):
    """PIL's ImageOps.solarize(threshold): values ≥ ``threshold`` (n,) inverted."""
    v = levels(x)
    return torch.where(v >= threshold[:, None, None], 255 - v, v).expand(x.shape[0], x.shape[1], 256)


def brightness_by_lut(x, factor):
    return torch.floor((factor[:, None, None] * levels(x)).clamp_(0, 255)).expand(x.shape[0], x.shape[1], 256)


def contrast_by_lut(x, factor):
    """PIL's ImageEnhance.Contrast: blend with the image's mean grey level, rounded to an integer."""
    mean = torch.floor(luma(x).mean((1, 2, 3)) + 0.5)[:, None, None]
    out = torch.floor((mean + factor[:, None, None] * (levels(x) - mean)).clamp_(0, 255))
    return out.expand(x.shape[0], x.shape[1], 256)


def posterize_lut(x, m, g):
    return posterize_bits_lut(x, 4 - torch.floor(4 * m / 10))


def solarize_lut(x, m, g):
    return solarize_at_lut(x, 256 - torch.floor(256 * m / 10))


def invert_lut(x, m, g):
    return (255 - levels(x)).expand(x.shape[0], x.shape[1], 256)


def brightness_lut(x, m, g):
    return brightness_by_lut(x, _factor(m))


def contrast_lut(x, m, g):
    return contrast_by_lut(x, _factor(m))


def autocontrast_lut(x, m, g):
    """PIL's ImageOps.autocontrast: each channel's range [lo, hi] stretched to [0, 255], truncated (flat: unchanged)."""
    lo = x.amin((2, 3))[..., None]
    span = x.amax((2, 3))[..., None] - lo
    v = levels(x)
    stretched = torch.floor(((v - lo) * (255.0 / span.clamp_min(1e-12))).clamp_(0, 255))
    return torch.where(span > 0, stretched, v.expand_as(stretched))


def equalize_lut(x, m, g):
    """PIL's ImageOps.equalize per channel: lut[i] = (step//2 + #pixels below i) // step, step = (n − count of
    the top value)//255; a channel with step 0 is unchanged."""
    B, C, H, W = x.shape
    v = x.long().reshape(B * C, H * W)
    rows = torch.arange(B * C, device=x.device)[:, None] * 256
    hist = torch.bincount((v + rows).flatten(), minlength=B * C * 256).reshape(B * C, 256)
    top_count = hist.gather(1, v.max(1).values[:, None])[:, 0]
    step = (H * W - top_count) // 255
    below = torch.cumsum(hist, 1) - hist
    lut = ((step[:, None] // 2 + below) // step.clamp_min(1)[:, None]).clamp(max=255).float()
    lut = torch.where((step > 0)[:, None], lut, levels(x)[0])
    return lut.reshape(B, C, 256)


def apply_lut(x, lut):
    """Pixel values of ``x`` (n, C, H, W), integers in [0, 255], through ``lut`` (n, C, 256)."""
    n, C, H, W = x.shape
    return lut.gather(2, x.long().reshape(n, C, H * W)).reshape(n, C, H, W)


LUTS = {"Posterize": posterize_lut, "Solarize": solarize_lut, "Invert": invert_lut, "Brightness": brightness_lut,
        "Contrast": contrast_lut, "AutoContrast": autocontrast_lut, "Equalize": equalize_lut}
NEEDS_PIXELS = {"Contrast", "AutoContrast", "Equalize"}


def _lut_op(name):
    def op(x, m, g):
        return apply_lut(x, LUTS[name](x, m, g))
    op.__name__ = name
    return op


OPS = {
    **{name: _geometric_op(name) for name in GEOMETRIC}, "Color": color, "Sharpness": sharpness,
    **{name: _lut_op(name) for name in LUTS},
}


def apply_op(name: str, x: torch.Tensor, magnitude, generator) -> torch.Tensor:
    """One operation on uint8 images (all of them), magnitude 0–9 (scalar or per image); returns uint8."""
    check_uint8(x, name)
    if name not in OPS:
        raise DeepError(f"unknown AutoAugment operation {name!r}; known: {', '.join(OPS)}")
    m = torch.as_tensor(magnitude, dtype=torch.float32, device=x.device).expand(x.shape[0]).clone()
    return to_uint8(OPS[name](x.float(), m, generator))


class SubPolicyAugment:
    """A policy of sub-policies applied to a uint8 batch: each image draws one sub-policy uniformly,
    then applies each of its operations in turn with the operation's probability. All geometric
    operations of a stage are one resampling, all lookup-table ones one gather. Subclasses say how
    a magnitude becomes an operation's argument (``_geometry``, ``_lut``, ``_pixels``), the
    operations they know (``known``), the magnitudes' range and the fill of geometric operations."""

    known: tuple = ()
    magnitudes = (0.0, 9.0)
    fill = FILL
    kind = "policy"

    def __init__(self, policy, float_output: bool = False):
        lo, hi = self.magnitudes
        policy = tuple(tuple(tuple(op) for op in sub) for sub in policy)
        if not policy or len({len(sub) for sub in policy}) != 1 or not policy[0]:
            raise DeepError(f"{self.kind}: a policy is a non-empty list of sub-policies of equally many operations")
        for sub in policy:
            for op in sub:
                ok = len(op) == 3 and op[0] in self.known
                if ok:
                    try:
                        ok = 0 <= float(op[1]) <= 1 and lo <= float(op[2]) <= hi
                    except (TypeError, ValueError):
                        ok = False
                if not ok:
                    raise DeepError(f"bad {self.kind} operation {op!r}: (name, probability 0–1, magnitude {lo:g}–{hi:g}), "
                                    f"name one of {', '.join(self.known)}")
        self.policy = policy
        self.stages = len(policy[0])
        self.float_output = bool(float_output)  # float32 images with integer values in [0, 255]: saves a
        # round trip through uint8 when Normalize comes next (the values are the same)
        self.names = sorted({name for sub in self.policy for name, _, _ in sub})
        code = {name: k for k, name in enumerate(self.names)}
        # per stage: (operation code, probability, magnitude) of each sub-policy
        self.table = torch.tensor([[[code[sub[st][0]], float(sub[st][1]), float(sub[st][2])] for sub in self.policy]
                                   for st in range(self.stages)], dtype=torch.float32)
        self._on = {}

    def _table(self, device):
        if device not in self._on:
            self._on[device] = self.table.to(device)
        return self._on[device]

    def _geometry(self, name, m, g, height, width):
        raise NotImplementedError

    def _lut(self, name, pixels, m, g):
        raise NotImplementedError

    def _pixels(self, name, y, m, g):
        raise NotImplementedError

    def __call__(self, x, g):
        check_uint8(x, self.kind)
        B, C, H, W = x.shape
        table = self._table(x.device)
        choice = torch.floor(uniform((B,), g) * len(self.policy)).long()
        y = x.float()
        for stage in range(self.stages):
            op, prob, m = table[stage, choice].unbind(1)
            op = torch.where(uniform((B,), g) < prob, op + 1, torch.zeros_like(op)).long()  # 0: not applied
            order = torch.argsort(op, stable=True)
            counts = torch.bincount(op, minlength=len(self.names) + 1).tolist()
            groups = order.split(counts)
            # all geometric operations of this stage in one resampling: identity for the other images
            mat = torch.eye(2, device=x.device).expand(B, 2, 2).clone()
            shift = torch.zeros(B, 2, device=x.device)
            moved, lut, looked = None, None, None
            for k, sel in enumerate(groups[1:]):
                if not counts[k + 1]:
                    continue
                name = self.names[k]
                if name in GEOMETRIC:  # all geometric operations of the stage in one resampling
                    mat[sel], shift[sel] = self._geometry(name, m[sel], g, H, W)
                    moved = sel if moved is None else torch.cat([moved, sel])
                elif name in LUTS:  # all lookup-table operations of the stage in one gather
                    if lut is None:
                        lut = levels(y).expand(B, C, 256).clone()
                    pixels = y[sel] if name in NEEDS_PIXELS else y.new_empty((sel.numel(), C, 1, 1))
                    lut[sel] = self._lut(name, pixels, m[sel], g)
                    looked = sel if looked is None else torch.cat([looked, sel])
                else:
                    y[sel] = self._pixels(name, y[sel], m[sel], g).round_().clamp_(0, 255)
            if looked is not None:
                y[looked] = apply_lut(y[looked], lut[looked])
            if moved is not None:
                y[moved] = affine(y[moved], mat[moved], shift[moved], self.fill).round_().clamp_(0, 255)
        return y if self.float_output else to_uint8(y)

    def __repr__(self):
        return f"{type(self).__name__}({len(self.policy)} sub-policies)"


class AutoAugment(SubPolicyAugment):
    """Apply an AutoAugment policy (default: CIFAR-10's) to a uint8 batch: one random sub-policy per image."""

    known = tuple(OPS)
    kind = "AutoAugment"

    def __init__(self, policy=CIFAR10_POLICY, float_output: bool = False):
        super().__init__(policy, float_output)

    def _geometry(self, name, m, g, height, width):
        return geometry(name, m, g, height, width)

    def _lut(self, name, pixels, m, g):
        return LUTS[name](pixels, m, g)

    def _pixels(self, name, y, m, g):
        return OPS[name](y, m, g)
