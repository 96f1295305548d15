"""Synchronised BatchNorm for CPU processes (gloo)."""
from typing import Optional

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from torch.distributed.nn.functional import all_reduce


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the whole global
    batch, on CPU tensors.

    ``torch.nn.SyncBatchNorm`` only runs on GPUs (DDP refuses a CPU module
    that holds one), so a CPU distributed run of a config with
    ``sync_bn='torch'`` would otherwise stop, or, with plain BN, normalise
    each process's share of the batch on its own: other statistics than the
    single-process run of the same global batch, and running statistics of
    one process only. BC-SSL has a BN after every depthwise conv, so the
    difference is in every block.

    Training forward: each process sums its share, one autograd-aware
    all-reduce gives the global mean, a second the global biased variance
    (two passes, as stable as the single-process BN); the gradient flows
    back through both all-reduces, as in torch's CUDA implementation. The
    running statistics are updated with the global mean and the unbiased
    global variance, identically on every process. Evaluation, and
    training on one process, is plain ``F.batch_norm``.

    Args:
        num_features (int): Channels.
        eps (float): Defaults to 1e-5.
        momentum (float, optional): As for ``nn.BatchNorm2d``. Defaults to
            0.1.
        affine (bool): Defaults to True.
        track_running_stats (bool): Defaults to True.
        process_group (optional): Defaults to the whole world.
    """

    def __init__(self,
                 num_features: int,
                 eps: float = 1e-5,
                 momentum: Optional[float] = 0.1,
                 affine: bool = True,
                 track_running_stats: bool = True,
                 process_group=None) -> None:
        super().__init__(num_features, eps, momentum, affine,
                         track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(
                f'expected at least 2D input (got {input.dim()}D input)')

    def _world_size(self) -> int:
        if not (torch_dist.is_available() and torch_dist.is_initialized()):
            return 1
        return torch_dist.get_world_size(self.process_group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self._world_size() == 1:
            return super().forward(x)
        group = self.process_group or torch_dist.group.WORLD
        dims = [0] + list(range(2, x.dim()))  # all but the channels
        shape = [1, -1] + [1] * (x.dim() - 2)  # broadcast per channel
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype)
        # pass 1: global mean
        sums = all_reduce(torch.cat([x.sum(dims), count]), group=group)
        total = sums[-1]
        mean = sums[:-1] / total  # [C]
        centred = x - mean.view(shape)
        # pass 2: global biased variance
        var = all_reduce(centred.square().sum(dims), group=group) / total
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(),
                                       float(total))
        return y

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor,
                              total: float) -> None:
        """As ``F.batch_norm`` does: the unbiased variance, momentum or
        (``momentum=None``) the cumulative average."""
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else \
            1.0 / float(self.num_batches_tracked)
        unbiased = var * total / max(total - 1.0, 1.0)
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """Replace every ``torch.nn.SyncBatchNorm`` in ``module`` by this
        class, keeping the same parameter and buffer tensors (so optimizer
        references and state-dict keys stay valid)."""
        out = module
        if isinstance(module, nn.SyncBatchNorm):
            out = cls(module.num_features, module.eps, module.momentum,
                      module.affine, module.track_running_stats,
                      module.process_group)
            if module.affine:
                out.weight, out.bias = module.weight, module.bias
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.train(module.training)
        for name, child in module.named_children():
            out.add_module(name, cls.convert(child))
        return out
