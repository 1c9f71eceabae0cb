"""Data-parallel GAN training on Lightning's DDP processes.

Why G and D are not wrapped in ``DistributedDataParallel``: DDP's reducer all-reduces
gradients in hooks that expect one backward pass per forward over a fixed set of
trainable parameters. A GAN step runs ``n_critic + 1`` backward passes over alternating
halves of the module, with the other half frozen, and gradient penalties differentiate
D's gradient (a double backward): wrapping the LightningModule fails or silently skips
reductions (Lightning issues 20328 and 20866). ganlab keeps Lightning's DDP for what it
does well (process launch, ranks, barriers, rank-zero logging and checkpointing) and
averages each network's gradients itself right before that network's optimizer step: one
all-reduce of a flat buffer per update, exactly the data-parallel update of the full
batch, whatever the schedule of backward passes.

Every rank draws its own data (a disjoint part of each pass, see ``GanDataModule``) and
its own latents and noise (the global RNG is seeded per rank); the networks start from
rank 0's weights and stay identical because every rank applies the same averaged
gradients. BatchNorm statistics are per rank during training and rank 0's are broadcast
before each checkpoint and evaluation, as DDP's ``broadcast_buffers`` would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.ddp import _sync_module_states
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from ganlab.errors import GanlabError


class GANDDPStrategy(DDPStrategy):
    """Lightning's DDP without the DistributedDataParallel wrapper (see the module docstring).

    The LightningModule averages gradients with :func:`average_gradients`.
    """

    def configure_ddp(self) -> None:
        # What DistributedDataParallel's constructor does: every rank starts from rank 0's
        # parameters and buffers.
        _sync_module_states(self.model)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Replace each gradient by its mean over the ranks: one all-reduce of a flat buffer."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    for grad, mean in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
        grad.copy_(mean)


def mean_over_ranks(x: Tensor) -> Tensor:
    """The element-wise mean of ``x`` over the ranks (``x`` itself on one process)."""
    if not is_distributed():
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank."""
    if not is_distributed():
        return
    for buf in module.buffers():
        dist.broadcast(buf, src=0)


def gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]``; ``[obj]`` on one process."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_generated(generate_slice: Callable[[slice], Tensor], n: int) -> Tensor:
    """``n`` samples made by the ranks together: rank r makes its contiguous slice of
    ``range(n)`` with ``generate_slice`` (CPU tensors), and every rank gets all ``n`` in
    order, so a seeded evaluation gives the same samples on any number of processes."""
    if not is_distributed():
        return generate_slice(slice(0, n))
    world, r = dist.get_world_size(), dist.get_rank()
    bounds = [n * i // world for i in range(world + 1)]
    mine = generate_slice(slice(bounds[r], bounds[r + 1]))
    width = max(bounds[i + 1] - bounds[i] for i in range(world))
    device = torch.device("cuda", torch.cuda.current_device()) if (
        dist.get_backend() == "nccl") else torch.device("cpu")
    padded = torch.zeros((width, *mine.shape[1:]), dtype=mine.dtype, device=device)
    padded[: len(mine)] = mine.to(device)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: bounds[i + 1] - bounds[i]].cpu() for i, p in enumerate(parts)])


def fingerprint(module: nn.Module) -> str:
    """A short hash of a module's parameters: equal on every rank while they are in sync."""
    h = hashlib.sha256()
    for p in module.parameters():
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def check_in_sync(named: dict[str, nn.Module]) -> dict[str, str]:
    """Fingerprints of ``named`` modules, raising if any rank's differ from rank 0's."""
    mine = {name: fingerprint(m) for name, m in named.items()}
    for r, theirs in enumerate(gather_objects(mine)):
        bad = [name for name in mine if theirs[name] != mine[name]]
        if bad:
            raise GanlabError(
                f"the {', '.join(bad)} weights of rank {r} differ from rank {rank()}'s: "
                "the processes are out of sync"
            )
    return mine
