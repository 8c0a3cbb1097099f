"""Augmentation stacks by name, and mini-batches drawn from in-memory uint8 tensors.

A stack is a :class:`~localentropy.deep.augment.Compose` of uint8 operations, then
:class:`~localentropy.deep.augment.Normalize` (train-set statistics), then float operations
(Cutout). :class:`Batches` shuffles with a ``torch.Generator`` on the data's device, gathers a
batch by indexing, and augments it on the device: the whole pipeline is a few tensor operations per
batch, and the same seed gives the same sequence of batches.
"""

from __future__ import annotations

import math

import torch

from localentropy.deep.augment import (ColorJitter, Compose, Cutout, HorizontalFlip, Normalize, RandomCropFlip,
                                       RandomGrayscale, RandomResizedCrop, RandomRotation, Resize)
from localentropy.deep.autoaugment import AutoAugment
from localentropy.deep.errors import DeepError
from localentropy.deep.fastautoaugment import IMAGENET_POLICY, FastAutoAugment, load_policy


def crop_padding(side: int) -> int:
    """App. C: zero padding 4 for CIFAR (32 px), 8 for Tiny ImageNet (64 px): side/8."""
    return max(1, side // 8)


def _standard(side):
    return [RandomCropFlip(crop_padding(side))]  # RandomCrop + HorizontalFlip in one gather


STACKS = {
    "none": ("normalisation only (test sets; paper 002's MLPs)", lambda side: ([], [])),
    "standard": ("App. C standard preprocessing: zero-padded random crop (side/8), flip, normalisation",
                 lambda side: (_standard(side), [])),
    "autoaugment": ("standard + AutoAugment CIFAR-10 policy + Cutout 16 (PyramidNet, App. C.1)",
                    lambda side: (_standard(side) + [AutoAugment(float_output=True)], [Cutout(16)])),
    "efficientnet": ("resize to 224, random crop with padding 32, flip, AutoAugment CIFAR-10 policy (App. C.1)",
                     lambda side: ([Resize(224), RandomCropFlip(32), AutoAugment(float_output=True)], [])),
    "fast-autoaugment": ("Fast AutoAugment ImageNet policy (authors' fa_resnet50_rimagenet, downloaded), then "
                         "standard crop and flip (Tiny ImageNet, App. C)",
                         lambda side, policy: ([FastAutoAugment(policy, float_output=True)] + _standard(side), [])),
    "pla-cifar": ("paper 002 CIFAR-10: random-resized crop 60-100 % of the area, ratio 3/4-4/3",
                  lambda side: ([RandomResizedCrop(side, (0.6, 1.0), (3 / 4, 4 / 3))], [])),
    "pla-stl": ("paper 002 STL-10: random-resized crop 8-100 %, flip, greyscale p 0.1, colour jitter 0.5, rotation ±180°",
                lambda side: ([RandomResizedCrop(side, (0.08, 1.0), (3 / 4, 4 / 3)), HorizontalFlip(),
                               RandomGrayscale(0.1), ColorJitter(0.5, 0.5, 0.5, 0.5), RandomRotation(180)], [])),
}


def stack_names() -> list[str]:
    return list(STACKS)


class Stack:
    """uint8 ops → Normalize → float ops; ``stack(x_uint8, generator)`` returns a float32 batch."""

    def __init__(self, uint8_ops, normalize: Normalize, float_ops=()):
        self.uint8_ops = Compose(uint8_ops)
        self.normalize = normalize
        self.float_ops = Compose(float_ops)

    def __call__(self, x, g):
        return self.float_ops(self.normalize(self.uint8_ops(x, g)), g)

    def __repr__(self):
        return f"Stack({self.uint8_ops!r}, {self.normalize!r}, {self.float_ops!r})"


#: stacks built from a policy file that is downloaded, not shipped (found through the data folder)
NEEDS_POLICY = {"fast-autoaugment"}


def stack_policy(name: str, data_dir=None):
    """The downloaded policy a stack of ``NEEDS_POLICY`` is built from, read and verified (a DeepError if it
    is missing or altered, so that a run can fail before any work); None for the other stacks."""
    return load_policy(IMAGENET_POLICY, data_dir=data_dir) if name in NEEDS_POLICY else None


def make_stack(name: str, mean, std, side: int, data_dir=None, policy=None) -> Stack:
    """The named stack for images of ``side`` pixels, normalised with the train set's ``mean`` and ``std``.
    A stack of ``NEEDS_POLICY`` takes ``policy`` (a list of sub-policies) or reads the published one,
    looked for under ``data_dir`` as :func:`~localentropy.deep.fastautoaugment.find_policy_file` does."""
    if name not in STACKS:
        raise DeepError(f"unknown augmentation stack {name!r}; known: {', '.join(STACKS)}")
    if name in NEEDS_POLICY:
        uint8_ops, float_ops = STACKS[name][1](side, policy if policy is not None else stack_policy(name, data_dir))
    else:
        uint8_ops, float_ops = STACKS[name][1](side)
    return Stack(uint8_ops, Normalize(mean, std), float_ops)


class Batches:
    """Shuffled mini-batches ``(inputs float32, targets int64)`` of ``images`` (uint8, N×C×H×W) through ``stack``.

    One epoch per iteration over the object; ``drop_last`` drops the incomplete final batch. Inputs
    land on ``device`` (default: the images' own); shuffling and augmentation draw from
    ``generator`` (a ``torch.Generator`` on that device).
    """

    def __init__(self, images, labels, batch_size: int, stack, generator: torch.Generator, shuffle: bool = True,
                 drop_last: bool = True, device=None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DeepError(f"Batches needs uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise DeepError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        if batch_size < 1:
            raise DeepError(f"batch size must be ≥ 1, not {batch_size}")
        self.images, self.labels = images, labels
        self.batch_size, self.stack, self.generator = int(batch_size), stack, generator
        self.shuffle, self.drop_last = shuffle, drop_last
        self.device = torch.device(device) if device is not None else images.device
        gdev = torch.device(generator.device)
        if (self.device.type, self.device.index or 0) != (gdev.type, gdev.index or 0):
            raise DeepError(f"the generator is on {generator.device}, the batches on {self.device}")

    def __len__(self):
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batch(self, index: torch.Tensor):
        """The augmented batch of the given sample indices."""
        idx = index.to(self.images.device)
        x = self.images[idx].to(self.device, non_blocking=True)
        y = self.labels[idx].to(self.device, non_blocking=True)
        return self.stack(x, self.generator), y

    def __iter__(self):
        n = self.images.shape[0]
        order = (torch.randperm(n, generator=self.generator, device=self.generator.device) if self.shuffle
                 else torch.arange(n, device=self.device))
        for k in range(len(self)):
            yield self.batch(order[k * self.batch_size:(k + 1) * self.batch_size])
