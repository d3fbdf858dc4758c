"""Multi-process searches under `torchrun`: process group set-up, collectives on α, rank-0-only output.

The scheme: w is data-parallel (DistributedDataParallel averages its gradients), and α and λ are
replicated: every rank samples the same path (same Gumbel generator seed, same α), the α gradients are
averaged with one all-reduce per step, so every rank takes the same Adam step and computes the same
argmax-path λ update. α and λ are also broadcast from rank 0 after every epoch, so that no
floating-point drift can ever make the ranks disagree on the architecture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's place in the search: rank, world size, local rank, and whether it owns the group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Only the main rank writes outputs (files, plots, progress)."""
        return self.rank == 0


def rank_device(device: str, ctx: DistContext) -> torch.device:
    """The torch device this process searches on: `cuda` under torchrun is this rank's GPU (made current);
    anything else as given."""
    out = torch.device(f"cuda:{ctx.local_rank}" if device == "cuda" and ctx.active else device)
    if out.type == "cuda":
        torch.cuda.set_device(out)
    return out


def env_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 when unset)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an int, got {os.environ['WORLD_SIZE']!r}") from None


def init_distributed(device: str) -> DistContext:
    """Join the process group torchrun described (gloo on CPU, nccl on CUDA), or use one already set up;
    a single-process context otherwise."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if env_world_size() <= 1:
        return DistContext()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                       owned=True)


def finish(ctx: DistContext) -> None:
    """Tear down the process group if this search created it.

    A barrier first: a rank that destroys its group while another still has gloo traffic in flight can
    abort the other at exit ("terminate called without an active exception").
    """
    if ctx.owned and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def all_reduce_mean_(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """In-place mean over ranks (a no-op in a single process)."""
    if ctx.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(ctx.world)
    return tensor


def broadcast_(tensor: torch.Tensor, ctx: DistContext, src: int = 0) -> torch.Tensor:
    """In-place copy of rank `src`'s tensor to every rank (a no-op in a single process)."""
    if ctx.active:
        dist.broadcast(tensor, src=src)
    return tensor
