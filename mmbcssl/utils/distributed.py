"""Distributed runs without GPUs (the gloo backend).

mmengine 0.10.7 assumes a GPU per process in two places: its pytorch
launcher calls ``torch.cuda.set_device(LOCAL_RANK)``, and the runner wraps
the model in DDP with ``device_ids=[LOCAL_RANK]``, which DDP rejects for a
CPU module. CPU runs matter here: they are how the distributed path is
tested on machines without a GPU. The model wrapper for them is
:class:`mmbcssl.engine.model_wrappers.CPUDistributedDataParallel`.
"""
import os

import torch
import torch.distributed as torch_dist


def init_cpu_process_group(backend: str = 'gloo') -> None:
    """Open the process group from torchrun's environment, without the
    ``torch.cuda.set_device`` call of mmengine's launcher.

    The runner sees an initialised group and skips its own initialisation.
    """
    if torch_dist.is_available() and not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend=backend,
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))


def cpu_only() -> bool:
    return not torch.cuda.is_available()
