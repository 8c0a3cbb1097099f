"""Augmentation on batched tensors: each operation's defining property, PIL as the oracle for the
AutoAugment colour operations, and determinism given a generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from localentropy.deep.augment import (ColorJitter, Cutout, HorizontalFlip, Normalize, RandomCrop, RandomCropFlip,
                                       RandomGrayscale,
                                       RandomResizedCrop, RandomRotation, Resize, adjust_hue, channel_stats,
                                       hsv_to_rgb, rgb_to_hsv, rotate)
from localentropy.deep.autoaugment import CIFAR10_POLICY, OPS, AutoAugment, apply_op
from localentropy.deep.errors import DeepError
from localentropy.deep.stacks import NEEDS_POLICY, Batches, make_stack, stack_names


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=6, c=3, side=32, seed=0, low=0):
    return torch.randint(low, 256, (n, c, side, side), generator=gen(seed), dtype=torch.uint8)


def test_flip_is_an_involution_and_mirrors_or_keeps_each_image():
    x = images(40)
    always = HorizontalFlip(p=1.0)
    assert torch.equal(always(always(x, gen()), gen()), x)
    assert torch.equal(always(x, gen()), x.flip(-1))
    y = HorizontalFlip(0.5)(x, gen(3))
    kinds = [torch.equal(y[i], x[i]) - torch.equal(y[i], x[i].flip(-1)) for i in range(len(x))]
    assert set(kinds) == {1, -1}  # some kept, some mirrored, none anything else


def test_crop_keeps_the_image_inside_its_padding():
    p = 4
    x = images(low=1)  # no zero pixels: zeros in the output can only come from the padding
    y = RandomCrop(p)(x, gen(1))
    assert y.shape == x.shape and y.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    offsets = set()
    for i in range(len(x)):
        hits = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                if torch.equal(y[i], padded[i, :, dy:dy + 32, dx:dx + 32])]
        assert len(hits) == 1
        offsets.add(hits[0])
        zero_rows = (y[i] == 0).all(dim=(0, 2)).sum().item()
        zero_cols = (y[i] == 0).all(dim=(0, 1)).sum().item()
        assert zero_rows == abs(hits[0][0] - p) and zero_cols == abs(hits[0][1] - p)
    assert len(offsets) > 1


def test_fused_crop_and_flip_gives_a_padded_window_or_its_mirror():
    p = 8
    x = images(40, side=64, low=1)
    y = RandomCropFlip(p)(x, gen(2))
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    kinds = []
    for i in range(len(x)):
        hits = [(dy, dx, flip) for dy in range(2 * p + 1) for dx in range(2 * p + 1) for flip in (0, 1)
                if torch.equal(y[i].flip(-1) if flip else y[i], padded[i, :, dy:dy + 64, dx:dx + 64])]
        assert len(hits) == 1
        kinds.append(hits[0][2])
    assert set(kinds) == {0, 1}
    assert torch.equal(RandomCropFlip(0, p=0.0)(x, gen()), x)


def test_cutout_zeroes_exactly_the_patch():
    x = torch.ones(50, 3, 32, 32)
    cut = Cutout(16)
    y = cut(x, gen(2))
    y0, y1, x0, x1 = cut.patches(50, 32, 32, gen(2))  # the same draws
    for i in range(50):
        expected = torch.ones(32, 32)
        expected[y0[i]:y1[i], x0[i]:x1[i]] = 0
        assert torch.equal(y[i], expected.expand(3, 32, 32))
    zeros = (y[:, 0] == 0).sum((1, 2))
    assert zeros.max() == 256 and zeros.min() < 256  # full patch inside; clipped at a border


def test_same_generator_seed_gives_the_same_batch_for_every_stack():
    x = images(8)
    mean, std = channel_stats(x)
    for name in stack_names():
        if name == "efficientnet":
            continue  # 224 px: covered by the pipeline test below with a small batch
        policy = [[("Rotate", 0.5, 0.9), ("Cutout", 0.5, 0.5)], [("Color", 0.5, 0.2), ("Solarize", 0.5, 0.6)]]
        st = make_stack(name, mean, std, 32, policy=policy if name in NEEDS_POLICY else None)
        a, b, c = st(x, gen(5)), st(x, gen(5)), st(x, gen(6))
        assert a.dtype == torch.float32 and torch.equal(a, b), name
        if name != "none":
            assert not torch.equal(a, c), name


def test_normalisation_from_the_train_set_gives_zero_mean_unit_std():
    x = images(64, seed=4)
    x[:, 0] //= 2  # channels with different statistics
    mean, std = channel_stats(x)
    ref = x.double().numpy() / 255
    assert np.allclose(mean.numpy(), ref.mean((0, 2, 3)), atol=1e-6)
    assert np.allclose(std.numpy(), ref.std((0, 2, 3)), atol=1e-6)
    z = Normalize(mean, std)(x)
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    with pytest.raises(DeepError, match="channels"):
        Normalize(mean, std)(images(c=1))


# --- AutoAugment -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(OPS))
def test_every_policy_operation_maps_uint8_images_into_range(name):
    x = images(4)
    x[0] = 0
    x[1] = 255
    for m in range(10):
        y = apply_op(name, x, m, gen(m))
        assert y.dtype == torch.uint8 and y.shape == x.shape


def pil(x, fn):
    """Apply a PIL function image by image (the oracle)."""
    out = [np.asarray(fn(Image.fromarray(img.permute(1, 2, 0).numpy()))) for img in x]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("name,m,fn,tol", [
    ("Invert", 5, ImageOps.invert, 0),
    ("Solarize", 3, lambda im: ImageOps.solarize(im, 256 - 76), 0),
    ("Posterize", 7, lambda im: ImageOps.posterize(im, 2), 0),
    ("AutoContrast", 0, ImageOps.autocontrast, 1),
    ("Equalize", 0, ImageOps.equalize, 0),
    ("Brightness", 7, lambda im: ImageEnhance.Brightness(im).enhance(0.1 + 1.8 * 0.7), 1),
    ("Color", 3, lambda im: ImageEnhance.Color(im).enhance(0.1 + 1.8 * 0.3), 1),
    ("Contrast", 6, lambda im: ImageEnhance.Contrast(im).enhance(0.1 + 1.8 * 0.6), 1),
    ("Sharpness", 9, lambda im: ImageEnhance.Sharpness(im).enhance(0.1 + 1.8 * 0.9), 1),
])
def test_colour_operations_agree_with_pil(name, m, fn, tol):
    x = images(4, seed=7)
    x[1] = (x[1] // 3) + 60  # a low-contrast image for AutoContrast / Equalize
    ours = apply_op(name, x, m, gen()).int()
    ref = pil(x, fn).int()
    diff = (ours - ref).abs()
    assert diff.max() <= tol and (diff > 0).float().mean() < 0.05, (name, diff.max().item())


def test_translate_moves_by_whole_pixels_and_fills_grey():
    x = images(64, seed=8)
    y = apply_op("TranslateX", x, 9, gen(1))  # 9 pixels left or right at 32 px
    for i in range(64):
        right = torch.full_like(x[i], 128)
        right[..., 9:] = x[i, ..., :-9]
        left = torch.full_like(x[i], 128)
        left[..., :-9] = x[i, ..., 9:]
        assert torch.equal(y[i], right) or torch.equal(y[i], left)


def test_rotation_by_90_degrees_is_exact_and_counter_clockwise_as_pil():
    x = images(2, seed=9)
    y = rotate(x.float(), torch.tensor([90.0, -90.0])).round().to(torch.uint8)
    assert torch.equal(y[0], torch.rot90(x[0], 1, dims=(1, 2)))
    assert torch.equal(y[1], torch.rot90(x[1], -1, dims=(1, 2)))
    assert torch.equal(y[0], pil(x[:1], lambda im: im.rotate(90))[0])


def test_the_policy_is_the_25_sub_policies_of_cubuk_et_al():
    assert len(CIFAR10_POLICY) == 25 and all(len(s) == 2 for s in CIFAR10_POLICY)
    assert CIFAR10_POLICY[0] == (("Invert", 0.1, 7), ("Contrast", 0.2, 6))
    x = images(64)
    y = AutoAugment()(x, gen(1))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    changed = (y != x).flatten(1).any(1).float().mean()
    assert 0.3 < changed < 1.0  # some images untouched (probabilities < 1), most changed
    as_float = AutoAugment(float_output=True)(x, gen(1))
    assert as_float.dtype == torch.float32 and torch.equal(as_float, y.float())
    with pytest.raises(DeepError):
        AutoAugment(((("Explode", 0.5, 3), ("Invert", 0.1, 1)),))


# --- paper 002 ---------------------------------------------------------------------------------------------

def test_random_resized_crop_of_the_whole_image_is_the_identity():
    x = images(3)
    assert torch.equal(RandomResizedCrop(32, scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, gen()), x)


def test_random_resized_crop_boxes_lie_inside_the_image_with_the_asked_area_and_ratio():
    rrc = RandomResizedCrop(96, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    top, left, h, w = rrc.boxes(2000, 96, 96, gen(3))
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 96).all() and (left + w <= 96).all()
    area = h * w / 96 ** 2
    assert area.min() > 0.06 and area.max() <= 1.0
    assert ((w / h) > 0.7).all() and ((w / h) < 1.43).all()
    y = rrc(images(4, side=96), gen(4))
    assert y.shape == (4, 3, 96, 96) and y.dtype == torch.uint8


def test_colour_jitter_of_zero_strength_is_the_identity_and_hue_round_trips():
    x = images(4)
    assert torch.equal(ColorJitter(0, 0, 0, 0)(x, gen()), x)
    f = x.float() / 255
    back = hsv_to_rgb(*rgb_to_hsv(f))
    assert torch.allclose(back, f, atol=1e-5)
    shifted = adjust_hue(adjust_hue(x.float(), torch.full((4,), 0.3)), torch.full((4,), -0.3))
    assert torch.allclose(shifted, x.float(), atol=1e-3)


def test_grey_images_are_unchanged_by_saturation_and_hue_jitter():
    grey = images(4, c=1).expand(4, 3, 32, 32).contiguous()
    y = ColorJitter(0, 0, 0.5, 0.5)(grey, gen(2))
    assert (y.int() - grey.int()).abs().max() <= 1
    g = RandomGrayscale(1.0)(images(4), gen())
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])


def test_rotation_keeps_a_centred_disc():
    x = torch.full((8, 3, 33, 33), 200, dtype=torch.uint8)
    y = RandomRotation(180)(x, gen(1))
    r = torch.arange(33) - 16
    disc = (r[:, None] ** 2 + r[None, :] ** 2) <= 15 ** 2
    assert (y[:, :, disc] == 200).all()
    assert (y == 0).any()  # corners rotated out


def test_resize_to_224_for_efficientnet():
    y = Resize(224)(images(2), gen())
    assert y.shape == (2, 3, 224, 224) and y.dtype == torch.uint8


# --- batches -----------------------------------------------------------------------------------------------

def test_one_epoch_visits_every_image_once_and_a_seed_fixes_the_order():
    n = 50
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    y = torch.arange(n)
    stack = make_stack("none", torch.zeros(1), torch.ones(1) / 255, 4)  # (x/255 − 0)/(1/255) = x
    batches = Batches(x, y, 8, stack, gen(0), drop_last=False)
    seen = []
    for xb, yb in batches:
        assert torch.equal(xb[:, 0, 0, 0].round().long(), yb)  # images stay with their labels
        seen += yb.tolist()
    assert sorted(seen) == list(range(n)) and seen != list(range(n)) and len(batches) == 7
    again = [yb.tolist() for _, yb in Batches(x, y, 8, stack, gen(0), drop_last=False)]
    assert sum(again, []) == seen
    assert len(Batches(x, y, 8, stack, gen(0))) == 6
    with pytest.raises(DeepError, match="generator"):
        Batches(x, y, 8, stack, gen(0), device="meta")


def test_efficientnet_stack_gives_224_pixel_float_batches():
    x = images(2)
    mean, std = channel_stats(x)
    out = make_stack("efficientnet", mean, std, 32)(x, gen())
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32


def test_bad_inputs_are_deep_errors():
    with pytest.raises(DeepError, match="unknown augmentation stack"):
        make_stack("fancy", torch.zeros(3), torch.ones(3), 32)
    with pytest.raises(DeepError, match="uint8"):
        AutoAugment()(torch.zeros(2, 3, 8, 8), gen())
    with pytest.raises(DeepError, match="B, C, H, W"):
        HorizontalFlip()(torch.zeros(3, 8, 8), gen())


def test_hue_rotation_matches_pythons_colorsys_pixel_by_pixel():
    """An independent reference: colorsys's hexcone HSV, one pixel at a time."""
    import colorsys

    x = images(2, side=6).float()
    shift = torch.tensor([0.3, -0.45])
    out = adjust_hue(x, shift)
    for i in range(2):
        for r in range(6):
            for c in range(6):
                h, s, v = colorsys.rgb_to_hsv(*(x[i, :, r, c] / 255).tolist())
                want = colorsys.hsv_to_rgb((h + float(shift[i])) % 1.0, s, v)
                assert torch.allclose(out[i, :, r, c], torch.tensor(want) * 255, atol=2e-3), (i, r, c)
