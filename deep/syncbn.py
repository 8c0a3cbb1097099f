"""BatchNorm whose training statistics cover the whole global mini-batch of a data-parallel run, on any
device and process-group backend (torch's ``SyncBatchNorm`` runs on GPUs only).

In a DistributedDataParallel run each process holds a slice of the global mini-batch. Plain BatchNorm
normalises every slice by its own mean and variance, so the trajectory differs from the one-process run on
the same global batches. ``DistributedBatchNorm`` sums the slices' statistics over the processes (two
all-reduces, synchronous and differentiable, so gradients flow through them: the mean, then the sum of
squared deviations from it, the one-process two-pass arithmetic) and normalises with those, updating the
running statistics as ``nn.BatchNorm`` does (unbiased variance over the global batch). Outside training,
or without an initialised process group, it is ``nn.BatchNorm``. Its parameters and buffers keep
BatchNorm's names, so state dicts are interchangeable.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class _AllReduceSum(torch.autograd.Function):
    """Σ over the processes, synchronous; its gradient is the Σ of the gradients (every process's output
    depends on every process's input)."""

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class DistributedBatchNorm(_BatchNorm):
    """A BatchNorm (any dimension) with statistics over every process's slice of the batch."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (batch, channels, …), got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([float(x.numel() // x.shape[1])], dtype=x.dtype, device=x.device)
        dist.all_reduce(count)
        mean = _AllReduceSum.apply(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply(centred.square().sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                n = float(count)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1.0, 1.0)), alpha=m)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm replaced by a DistributedBatchNorm holding its parameters and
    buffers (in place where possible; returns the module)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, DistributedBatchNorm):
        ref = next((t for t in (module.weight, module.running_mean) if t is not None), None)
        kw = {} if ref is None else {"device": ref.device, "dtype": ref.dtype}
        new = DistributedBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats, **kw)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert(child))
    return module


__all__ = ["DistributedBatchNorm", "convert"]
