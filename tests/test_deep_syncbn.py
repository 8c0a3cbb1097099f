"""deep.syncbn.DistributedBatchNorm: with the batch split over two gloo processes, the output, the input
gradients, the parameter gradients (summed) and the running statistics are those of one BatchNorm on
the whole batch."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from localentropy.deep.syncbn import DistributedBatchNorm, convert


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(12, 3, 5, 5, generator=g, dtype=torch.float64) * 2 + 1, \
        torch.randn(12, 3, 5, 5, generator=g, dtype=torch.float64)


def _bn():
    torch.manual_seed(1)
    bn = nn.BatchNorm2d(3, momentum=0.3).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    return bn


def _worker(rank, world, path, out):
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world)
    try:
        x, w = _batch()
        bn = convert(_bn())
        assert isinstance(bn, DistributedBatchNorm)
        part = x.chunk(world)[rank].clone().requires_grad_()
        y = bn(part)
        (y * w.chunk(world)[rank]).sum().backward()
        grads = [bn.weight.grad.clone(), bn.bias.grad.clone()]
        for g in grads:
            dist.all_reduce(g)
        torch.save({"y": y.detach(), "gx": part.grad, "gw": grads[0], "gb": grads[1],
                    "rm": bn.running_mean, "rv": bn.running_var, "n": bn.num_batches_tracked}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_processes_compute_what_one_batchnorm_computes_on_the_whole_batch(tmp_path):
    world = 2
    mp.spawn(_worker, args=(world, str(tmp_path / "rdzv"), str(tmp_path / "out")), nprocs=world, join=True)
    parts = [torch.load(f"{tmp_path / 'out'}.{r}", weights_only=True) for r in range(world)]
    x, w = _batch()
    bn = _bn()
    xx = x.clone().requires_grad_()
    y = bn(xx)
    (y * w).sum().backward()
    assert torch.allclose(torch.cat([p["y"] for p in parts]), y.detach(), atol=1e-12)
    assert torch.allclose(torch.cat([p["gx"] for p in parts]), xx.grad, atol=1e-12)
    for p in parts:
        assert torch.allclose(p["gw"], bn.weight.grad, atol=1e-12) and torch.allclose(p["gb"], bn.bias.grad, atol=1e-12)
        assert torch.allclose(p["rm"], bn.running_mean, atol=1e-12) and torch.allclose(p["rv"], bn.running_var, atol=1e-12)
        assert int(p["n"]) == 1
    # a plain BatchNorm per slice would not: its statistics differ between the slices
    assert not torch.allclose(x.chunk(world)[0].mean((0, 2, 3)), x.chunk(world)[1].mean((0, 2, 3)), atol=1e-3)


def test_without_a_process_group_it_is_batchnorm_and_keeps_its_state_dict():
    bn = _bn()
    conv = convert(nn.Sequential(nn.Conv2d(3, 3, 1).double(), _bn()))
    assert isinstance(conv[1], DistributedBatchNorm)
    assert conv[1].state_dict().keys() == bn.state_dict().keys()
    x, _ = _batch()
    assert torch.allclose(conv[1](x), bn(x), atol=1e-12)
    assert torch.allclose(conv[1].running_var, bn.running_var, atol=1e-12)
    conv.eval(), bn.eval()
    assert torch.allclose(conv[1](x), bn(x), atol=1e-12)


def _net():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(36, 2)).double()


def _steps():
    g = torch.Generator().manual_seed(5)
    return [(torch.randn(8, 3, 5, 5, generator=g, dtype=torch.float64), torch.randint(0, 2, (8,), generator=g))
            for _ in range(4)]


def _ddp_worker(rank, world, path, out):
    from torch.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world)
    try:
        model = convert(_net())
        net = DDP(model)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for x, t in _steps():
            opt.zero_grad()
            nn.functional.cross_entropy(net(x.chunk(world)[rank]), t.chunk(world)[rank]).backward()
            opt.step()
        torch.save(model.state_dict(), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_data_parallel_training_with_batchnorm_follows_the_one_process_run(tmp_path):
    """DistributedDataParallel over 2 gloo processes, each on its half of the same global batches: the
    weights and running statistics after 4 SGD steps are the one-process run's (as deep.train wires it)."""
    world = 2
    mp.spawn(_ddp_worker, args=(world, str(tmp_path / "rdzv"), str(tmp_path / "out")), nprocs=world, join=True)
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, t in _steps():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), t).backward()
        opt.step()
    for r in range(world):
        got = torch.load(f"{tmp_path / 'out'}.{r}", weights_only=True)
        for k, v in model.state_dict().items():
            assert torch.allclose(got[k].to(v.dtype), v, atol=1e-10), k
