"""Deep nets of papers 000 (Table 1) and 002: architectures, datasets, training with entropic optimizers.

- ``localentropy.deep.models``: ``build(name, num_classes=...)``, ``names()``, the published parameter counts.
- ``localentropy.deep.datasets``: ``load_images(name, device=...)``: a data set as uint8 tensors in memory.
- ``localentropy.deep.augment`` / ``autoaugment`` / ``pipeline``: batched augmentation on the device,
  named stacks (``make_stack``), ``Batches`` (shuffled, augmented mini-batches, seeded by a generator).
"""

from localentropy.deep.errors import DeepError

__all__ = ["DeepError"]
