"""Distributed training: one process per GPU (or CPU process), launched by torchrun, which sets RANK,
WORLD_SIZE and LOCAL_RANK; without them this is a single process."""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self):
        return self.rank == 0


def setup(device):
    """Join the process group when launched by torchrun (NCCL on GPUs, gloo on CPUs); `device` is the
    resolved device type, on CUDA each process takes GPU LOCAL_RANK."""
    if int(os.environ.get('WORLD_SIZE', 1)) == 1:
        return DistInfo(0, 1, device)
    if device.type == 'cuda':
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)))
        torch.cuda.set_device(device)
    dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return DistInfo(dist.get_rank(), dist.get_world_size(), device)


def cleanup():
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values, info):
    """Sum a list of floats over all processes (float64 on the process's device)."""
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    if info.world_size > 1:
        dist.all_reduce(t)
    return t.tolist()


def all_gather(obj, info):
    """The list of `obj` from every process, in rank order."""
    if info.world_size == 1:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def all_min(value, info):
    """The smallest of one number over all processes."""
    if info.world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t.item()


def barrier(info):
    if info.world_size > 1:
        dist.barrier()
