"""Data augmentation on batched uint8 image tensors (B, C, H, W), on the tensors' device, no per-image Python.

Each operation is a small callable ``op(x, generator) -> x``: every random draw comes from the
``torch.Generator`` passed in (on the tensors' device), so the same seed gives the same batch.
Geometric and colour operations take and return uint8 (values rounded and clipped into [0, 255]);
:class:`Normalize` turns uint8 into float32, and :class:`Cutout` works on either.

Paper 000, App. C ("standard preprocessing"): per-channel normalisation from the train set, random
crop with zero padding (4 for CIFAR, 8 for Tiny ImageNet), horizontal flip; PyramidNet adds the
AutoAugment CIFAR-10 policy (Cubuk et al. 2018) and Cutout 16 (DeVries and Taylor 2017).
Paper 002, Sec. 5: random-resized crops (60–100 % of the area on CIFAR-10; 8–100 % on STL-10 with
flips, greyscale p = 0.1, colour jitter 0.5 and rotations up to ±π).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from localentropy.deep.errors import DeepError


def uniform(shape, generator, low=0.0, high=1.0):
    """U[low, high) draws of ``shape`` from ``generator``, on the generator's device."""
    u = torch.rand(shape, generator=generator, device=generator.device)
    return low + (high - low) * u


def randint(high, shape, generator):
    """Integers in [0, high) (``high`` a tensor of per-sample bounds or an int)."""
    return torch.floor(uniform(shape, generator) * high).long()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


def check_batch(x: torch.Tensor, what: str) -> None:
    if x.dim() != 4:
        raise DeepError(f"{what} needs a batch of images (B, C, H, W), got shape {tuple(x.shape)}")


def check_uint8(x: torch.Tensor, what: str) -> None:
    check_batch(x, what)
    if x.dtype != torch.uint8:
        raise DeepError(f"{what} works on uint8 images, got {x.dtype}")


# --- geometry --------------------------------------------------------------------------------------------

def affine(x: torch.Tensor, matrix: torch.Tensor, shift: torch.Tensor, fill: float = 0.0, mode: str = "nearest"):
    """Resample float images: output pixel p (pixel units, origin at the image centre) reads input pixel
    ``matrix @ p + shift``; pixels read from outside get ``fill``. matrix (B, 2, 2), shift (B, 2), (x, y) order."""
    B, C, H, W = x.shape
    scale = torch.tensor([2.0 / W, 2.0 / H], device=x.device, dtype=x.dtype)
    theta = torch.empty(B, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, :, :2] = matrix * scale[None, :, None] / scale[None, None, :]
    theta[:, :, 2] = shift * scale
    grid = F.affine_grid(theta, (B, C, H, W), align_corners=False)
    out = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if fill == 0.0:
        return out
    if mode == "nearest":  # the pixels whose nearest source lies outside the image: from the grid, no resampling
        ix = torch.round(((grid[..., 0] + 1) * W - 1) / 2)
        iy = torch.round(((grid[..., 1] + 1) * H - 1) / 2)
        outside = (ix < 0) | (ix > W - 1) | (iy < 0) | (iy > H - 1)
        return out.masked_fill_(outside[:, None], fill)
    ones = torch.ones((B, 1, H, W), device=x.device, dtype=x.dtype)
    return out + fill * (1 - F.grid_sample(ones, grid, mode=mode, padding_mode="zeros", align_corners=False))


class RandomCrop:
    """Pad every side with ``padding`` zeros, then cut a random H×W window (one offset per image)."""

    def __init__(self, padding: int):
        if padding < 0:
            raise DeepError(f"crop padding must be ≥ 0, not {padding}")
        self.padding = int(padding)

    def __call__(self, x, g):
        check_batch(x, "RandomCrop")
        p = self.padding
        if p == 0:
            return x
        B, C, H, W = x.shape
        Wp = W + 2 * p
        padded = F.pad(x, (p, p, p, p)).reshape(B, C, -1)
        dy = randint(2 * p + 1, (B,), g)
        dx = randint(2 * p + 1, (B,), g)
        rows = dy[:, None, None] + torch.arange(H, device=x.device)[None, :, None]
        cols = dx[:, None, None] + torch.arange(W, device=x.device)[None, None, :]
        flat = (rows * Wp + cols).reshape(B, 1, H * W).expand(B, C, H * W)
        return torch.gather(padded, 2, flat).reshape(B, C, H, W)

    def __repr__(self):
        return f"RandomCrop(padding={self.padding})"


class RandomCropFlip:
    """:class:`RandomCrop` then :class:`HorizontalFlip`, fused into one gather (the standard preprocessing's
    two random operations in one pass over the batch): each image is a window of its zero-padded self,
    mirrored with probability ``p``."""

    def __init__(self, padding: int, p: float = 0.5):
        if padding < 0:
            raise DeepError(f"crop padding must be ≥ 0, not {padding}")
        self.padding, self.p = int(padding), float(p)

    def __call__(self, x, g):
        check_batch(x, "RandomCropFlip")
        p = self.padding
        B, C, H, W = x.shape
        Wp = W + 2 * p
        padded = F.pad(x, (p, p, p, p)).reshape(B, C, -1) if p else x.reshape(B, C, -1)
        dy = randint(2 * p + 1, (B,), g)
        dx = randint(2 * p + 1, (B,), g)
        flip = uniform((B,), g) < self.p
        ar = torch.arange(W, device=x.device)
        cols = dx[:, None] + torch.where(flip[:, None], W - 1 - ar, ar)
        rows = dy[:, None] + torch.arange(H, device=x.device)
        flat = (rows[:, :, None] * Wp + cols[:, None, :]).reshape(B, 1, H * W).expand(B, C, H * W)
        return torch.gather(padded, 2, flat).reshape(B, C, H, W)

    def __repr__(self):
        return f"RandomCropFlip(padding={self.padding}, p={self.p})"


class HorizontalFlip:
    """Mirror each image left–right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, x, g):
        check_batch(x, "HorizontalFlip")
        flip = uniform((x.shape[0],), g) < self.p
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    def __repr__(self):
        return f"HorizontalFlip(p={self.p})"


class Resize:
    """Bilinear resize to ``size``×``size`` (EfficientNet-B0 trains CIFAR-100 at 224 px, App. C.1)."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, x, g):
        check_uint8(x, "Resize")
        if x.shape[-1] == self.size and x.shape[-2] == self.size:
            return x
        return to_uint8(F.interpolate(x.float(), size=(self.size, self.size), mode="bilinear",
                                      align_corners=False, antialias=True))

    def __repr__(self):
        return f"Resize({self.size})"


class RandomResizedCrop:
    """Crop a random box of ``scale`` × the image area and aspect ratio in ``ratio`` (log-uniform), resize it
    to ``size`` bilinearly: torchvision's RandomResizedCrop rule (10 tries per image, then the central
    crop), one box per image. Paper 002: scale (0.6, 1) on CIFAR-10, (0.08, 1) on STL-10, ratio (3/4, 4/3)."""

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), tries: int = 10):
        if not (0 < scale[0] <= scale[1] <= 1) or not (0 < ratio[0] <= ratio[1]):
            raise DeepError(f"bad RandomResizedCrop scale {scale} or ratio {ratio}")
        self.size, self.scale, self.ratio, self.tries = int(size), tuple(scale), tuple(ratio), int(tries)

    def boxes(self, B, H, W, g):
        """(top, left, height, width), float tensors of shape (B,)."""
        area = H * W
        target = area * uniform((B, self.tries), g, *self.scale)
        aspect = torch.exp(uniform((B, self.tries), g, math.log(self.ratio[0]), math.log(self.ratio[1])))
        w = torch.round(torch.sqrt(target * aspect))
        h = torch.round(torch.sqrt(target / aspect))
        ok = (w > 0) & (w <= W) & (h > 0) & (h <= H)
        first = torch.argmax(ok.int(), dim=1)
        any_ok = ok.any(dim=1)
        idx = torch.arange(B, device=g.device)
        w, h = w[idx, first], h[idx, first]
        top = torch.floor(uniform((B,), g) * (H - h + 1))
        left = torch.floor(uniform((B,), g) * (W - w + 1))
        # fallback: the central crop with the aspect ratio clamped into ``ratio``
        in_ratio = W / H
        if in_ratio < self.ratio[0]:
            fw, fh = W, round(W / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fh, fw = H, round(H * self.ratio[1])
        else:
            fw, fh = W, H
        w = torch.where(any_ok, w, torch.full_like(w, fw))
        h = torch.where(any_ok, h, torch.full_like(h, fh))
        top = torch.where(any_ok, top, torch.full_like(top, (H - fh) // 2))
        left = torch.where(any_ok, left, torch.full_like(left, (W - fw) // 2))
        return top, left, h, w

    def __call__(self, x, g):
        check_uint8(x, "RandomResizedCrop")
        B, C, H, W = x.shape
        top, left, h, w = self.boxes(B, H, W, g)
        S = self.size
        theta = torch.zeros(B, 2, 3, device=x.device)
        theta[:, 0, 0] = w / W
        theta[:, 0, 2] = (2 * left + w) / W - 1
        theta[:, 1, 1] = h / H
        theta[:, 1, 2] = (2 * top + h) / H - 1
        grid = F.affine_grid(theta, (B, C, S, S), align_corners=False)
        return to_uint8(F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False))

    def __repr__(self):
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio=({self.ratio[0]:.3g}, {self.ratio[1]:.3g}))"


class RandomRotation:
    """Rotate each image by an angle uniform in [−degrees, degrees] about its centre, nearest pixel, zero fill."""

    def __init__(self, degrees: float):
        self.degrees = float(degrees)

    def __call__(self, x, g):
        check_uint8(x, "RandomRotation")
        angle = uniform((x.shape[0],), g, -self.degrees, self.degrees)
        return to_uint8(rotate(x.float(), angle, fill=0.0))

    def __repr__(self):
        return f"RandomRotation({self.degrees:g})"


def rotate(x, degrees, fill=0.0):
    """Rotate float images counter-clockwise by ``degrees`` (B,), nearest pixel."""
    a = torch.deg2rad(degrees.to(x.dtype))
    c, s = torch.cos(a), torch.sin(a)
    # output (x, y) with y downwards reads input R(−a)·(x, y): counter-clockwise on screen
    m = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    return affine(x, m, torch.zeros(x.shape[0], 2, device=x.device, dtype=x.dtype), fill)


# --- colour ---------------------------------------------------------------------------------------------

def grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma (PIL's "L"): 0.299 R + 0.587 G + 0.114 B, shape (B, 1, H, W); one channel is itself."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    return (x * w[None, :, None, None]).sum(1, keepdim=True)


def blend(x, other, factor):
    """other + factor·(x − other), per-image factor (B,): PIL's ImageEnhance rule, clipped to [0, 255]."""
    return (other + factor[:, None, None, None] * (x - other)).clamp_(0, 255)


def rgb_to_hsv(x):
    """RGB (B, 3, H, W), any positive scale → (h, s, v), h and s in [0, 1], v in the input's scale, each
    (B, H, W). Hue from the sector of the largest channel (the first of equals: R, then G, then B):
    (G − B)/Δ, 2 + (B − R)/Δ or 4 + (R − G)/Δ, over 6 (zero where Δ = 0)."""
    r, g_, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g_), b)
    delta = maxc - torch.minimum(torch.minimum(r, g_), b)
    s = delta / maxc.clamp_min(1e-12)
    inv = delta.clamp_min(1e-12).reciprocal_()
    h = torch.where(maxc == r, (g_ - b).mul_(inv),
                    torch.where(maxc == g_, (b - r).mul_(inv).add_(2.0), (r - g_).mul_(inv).add_(4.0)))
    h = torch.remainder(h, 6.0).div_(6.0).masked_fill_(delta <= 0, 0.0)
    return h, s, maxc


def hsv_to_rgb(h, s, v):
    """(h, s, v), h and s in [0, 1] → RGB (B, 3, H, W) in v's scale: channel n = v − v·s·clamp(min(k, 4 − k),
    0, 1), k = (n + 6h) mod 6 for n = 5, 3, 1 (R, G, B): the piecewise-linear hexcone, without branching."""
    n = torch.tensor([5.0, 3.0, 1.0], device=h.device, dtype=h.dtype)[None, :, None, None]
    k = torch.remainder((6.0 * h)[:, None] + n, 6.0)
    ramp = torch.minimum(k, torch.sub(4.0, k)).clamp_(0.0, 1.0)
    return ramp.mul_((v * s)[:, None]).neg_().add_(v[:, None])


def adjust_hue(x, shift):
    """Rotate the hue of float RGB images in [0, 255] by ``shift`` (B,) turns (in place of the hue only:
    saturation and value are kept; hue and saturation do not depend on the scale)."""
    h, s, v = rgb_to_hsv(x)
    h = h.add_(shift[:, None, None]).remainder_(1.0)
    return hsv_to_rgb(h, s, v)


class ColorJitter:
    """Random brightness, contrast, saturation factors in [max(0, 1 − b), 1 + b] and hue shift in [−h, h],
    per image, applied in a random order drawn once per batch (torchvision draws it per image)."""

    def __init__(self, brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5):
        if not 0 <= hue <= 0.5:
            raise DeepError(f"hue jitter must lie in [0, 0.5], not {hue}")
        self.b, self.c, self.s, self.h = float(brightness), float(contrast), float(saturation), float(hue)

    def __call__(self, x, g):
        check_uint8(x, "ColorJitter")
        B = x.shape[0]
        y = x.float()
        fb = uniform((B,), g, max(0.0, 1 - self.b), 1 + self.b)
        fc = uniform((B,), g, max(0.0, 1 - self.c), 1 + self.c)
        fs = uniform((B,), g, max(0.0, 1 - self.s), 1 + self.s)
        fh = uniform((B,), g, -self.h, self.h)
        order = torch.randperm(4, generator=g, device=g.device).tolist()
        for k in order:
            if k == 0 and self.b:  # blend towards black: f·x (what other + f·(x − other) is for other = 0)
                y = (y * fb[:, None, None, None]).clamp_(0, 255)
            elif k == 1 and self.c:
                y = blend(y, grayscale(y).mean((1, 2, 3), keepdim=True), fc)
            elif k == 2 and self.s and y.shape[1] == 3:
                y = blend(y, grayscale(y), fs)
            elif k == 3 and self.h and y.shape[1] == 3:
                y = adjust_hue(y, fh)
        return to_uint8(y)

    def __repr__(self):
        return f"ColorJitter(brightness={self.b}, contrast={self.c}, saturation={self.s}, hue={self.h})"


class RandomGrayscale:
    """Replace an image by its luma in all channels with probability ``p``."""

    def __init__(self, p: float = 0.1):
        self.p = float(p)

    def __call__(self, x, g):
        check_uint8(x, "RandomGrayscale")
        pick = torch.nonzero(uniform((x.shape[0],), g) < self.p).flatten()
        if pick.numel() == 0 or x.shape[1] == 1:
            return x
        out = x.clone()
        out[pick] = to_uint8(grayscale(x[pick].float())).expand(-1, x.shape[1], -1, -1)
        return out

    def __repr__(self):
        return f"RandomGrayscale(p={self.p})"


# --- Cutout and normalisation ------------------------------------------------------------------------------

class Cutout:
    """DeVries and Taylor (2017): zero a ``size``×``size`` square centred at a uniform random pixel of each
    image, clipped at the borders (so near an edge less than size² pixels are zeroed). Applied after
    normalisation, as in their code, so the patch is the data set's mean colour."""

    def __init__(self, size: int = 16):
        self.size = int(size)

    def patches(self, B, H, W, g):
        cy, cx = randint(H, (B,), g), randint(W, (B,), g)
        y0, x0 = (cy - self.size // 2).clamp(0, H), (cx - self.size // 2).clamp(0, W)
        y1, x1 = (cy + self.size - self.size // 2).clamp(0, H), (cx + self.size - self.size // 2).clamp(0, W)
        return y0, y1, x0, x1

    def __call__(self, x, g):
        check_batch(x, "Cutout")
        B, C, H, W = x.shape
        y0, y1, x0, x1 = self.patches(B, H, W, g)
        r = torch.arange(H, device=x.device)[None, :, None]
        c = torch.arange(W, device=x.device)[None, None, :]
        inside = (r >= y0[:, None, None]) & (r < y1[:, None, None]) & (c >= x0[:, None, None]) & (c < x1[:, None, None])
        return x.masked_fill(inside[:, None], 0)

    def __repr__(self):
        return f"Cutout({self.size})"


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of uint8 images (N, C, H, W), in units of 1/255, float64
    accumulation over chunks (no float copy of the whole data set)."""
    check_uint8(images, "channel_stats")
    C = images.shape[1]
    s = torch.zeros(C, dtype=torch.float64, device=images.device)
    s2 = torch.zeros(C, dtype=torch.float64, device=images.device)
    for i in range(0, images.shape[0], chunk):
        x = images[i:i + chunk].to(torch.float64) / 255.0
        s += x.sum((0, 2, 3))
        s2 += (x * x).sum((0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = s / n
    std = torch.sqrt((s2 / n - mean * mean).clamp_min(0))
    return mean.float(), std.float().clamp_min(1e-8)


class Normalize:
    """uint8 → float32: (x/255 − mean)/std per channel, mean and std from the training set (:func:`channel_stats`)."""

    def __init__(self, mean, std):
        self.mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        self.std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if (self.std <= 0).any():
            raise DeepError(f"normalisation std must be positive, got {self.std.tolist()}")

    def __call__(self, x, g=None):
        check_batch(x, "Normalize")
        if x.shape[1] != self.mean.numel():
            raise DeepError(f"Normalize has {self.mean.numel()} channel statistics, the images have {x.shape[1]} channels")
        scale = (1.0 / (255.0 * self.std)).to(x.device)[None, :, None, None]
        shift = (self.mean / self.std).to(x.device)[None, :, None, None]
        return x.float().mul_(scale).sub_(shift)

    def __repr__(self):
        return f"Normalize(mean={[round(v, 4) for v in self.mean.tolist()]}, std={[round(v, 4) for v in self.std.tolist()]})"


class Compose:
    """Apply ``ops`` in order with one generator; ``repr`` lists them."""

    def __init__(self, ops):
        self.ops = list(ops)

    def __call__(self, x, g):
        for op in self.ops:
            x = op(x, g)
        return x

    def __repr__(self):
        return "Compose(" + ", ".join(map(repr, self.ops)) + ")"
