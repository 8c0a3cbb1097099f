"""Deep nets of papers 000 (Table 1) and 002: architectures, datasets, training with entropic optimizers.

- ``localentropy.deep.models``: ``build(name, num_classes=...)``, ``names()``, the published parameter counts.
- ``localentropy.deep.datasets``: ``load_images(name, device=...)``: a data set as uint8 tensors in memory.
- ``localentropy.deep.augment`` / ``autoaugment`` / ``fastautoaugment`` / ``pipeline``: batched augmentation
  on the device, named stacks (``make_stack``), ``Batches`` (shuffled, augmented mini-batches, seeded by a generator).
- ``localentropy.deep.presets``: ``TrainConfig`` (frozen), the registry of Table 1 and paper-002 presets,
  ``get_preset``, ``with_overrides``; ``schedules``: learning-rate and focusing schedules as data.
- ``localentropy.deep.train``: ``train(config, data, out_dir=..., progress=...)``, the loop for every method
  (``methods``: SGD, eSGD, rSGD, rSGD×y, PLA, PLEA, SAM), checkpoints, resume, one process per replica;
  ``metrics``: the CSV / JSONL / TensorBoard writers; ``evidence``: the CPU-scale benchmark on Fashion-MNIST.
"""

from localentropy.deep.errors import DeepError

__all__ = ["DeepError"]
