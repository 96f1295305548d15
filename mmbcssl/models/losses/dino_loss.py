"""The DINO self-distillation loss (Caron et al. 2021, ``DINOLoss`` in
facebookresearch/dino ``main_dino.py``)."""
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


def teacher_temperature(epoch: int, teacher_temp: float,
                        warmup_teacher_temp: float,
                        warmup_epochs: int) -> float:
    """Linear warm-up from ``warmup_teacher_temp`` to ``teacher_temp`` over
    ``warmup_epochs`` epochs, then constant (the reference's
    ``np.linspace(warmup, temp, warmup_epochs)`` indexed by epoch)."""
    if epoch >= warmup_epochs:
        return teacher_temp
    if warmup_epochs == 1:
        return warmup_teacher_temp
    step = (teacher_temp - warmup_teacher_temp) / (warmup_epochs - 1)
    return warmup_teacher_temp + step * epoch


@MODELS.register_module()
class DINOLoss(BaseModule):
    """Cross-entropy between the centred, sharpened teacher and the student.

    For every global view i the teacher gives ``softmax((t_i - c) / T_t)``;
    every student view v != i gives ``log_softmax(s_v / T_s)``; the loss is
    the cross-entropy averaged over all such (i, v) pairs and the batch.
    The centre ``c`` is an EMA (momentum 0.9) of the batch mean of the
    teacher outputs, all-reduced across processes, updated after the loss.

    Args:
        out_channels (int): Prototypes K.
        num_global_views (int): Views the teacher sees. Defaults to 2.
        student_temp (float): Defaults to 0.1.
        teacher_temp (float): Temperature after warm-up. Defaults to 0.04.
        warmup_teacher_temp (float): Defaults to 0.04.
        warmup_teacher_temp_epochs (int): Defaults to 0 (no warm-up).
        center_momentum (float): Defaults to 0.9.
    """

    def __init__(self,
                 out_channels: int,
                 num_global_views: int = 2,
                 student_temp: float = 0.1,
                 teacher_temp: float = 0.04,
                 warmup_teacher_temp: float = 0.04,
                 warmup_teacher_temp_epochs: int = 0,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        self.num_global_views = num_global_views
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp = warmup_teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.center_momentum = center_momentum
        # A buffer: saved in checkpoints and restored on resume.
        self.register_buffer('center', torch.zeros(1, out_channels))

    def forward(self, student_out: Sequence[torch.Tensor],
                teacher_out: Sequence[torch.Tensor],
                epoch: int) -> torch.Tensor:
        """Loss for one batch; also updates the centre.

        Args:
            student_out (Sequence[Tensor]): One (B, K) output per view, the
                global views first.
            teacher_out (Sequence[Tensor]): One (B, K) output per global
                view.
            epoch (int): Current epoch (0-based), for the temperature.
        """
        temp = teacher_temperature(epoch, self.teacher_temp,
                                   self.warmup_teacher_temp,
                                   self.warmup_teacher_temp_epochs)
        teacher_probs = [
            F.softmax((t.detach() - self.center) / temp, dim=-1)
            for t in teacher_out
        ]
        student_logp = [
            F.log_softmax(s / self.student_temp, dim=-1) for s in student_out
        ]
        total, pairs = 0., 0
        for i, q in enumerate(teacher_probs):
            for v, logp in enumerate(student_logp):
                if v == i:  # a view is never its own target
                    continue
                total = total + (-q * logp).sum(dim=-1).mean()
                pairs += 1
        self.update_center(torch.cat(list(teacher_out)))
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """c <- m c + (1 - m) mean over the global batch of teacher outputs."""
        update_center(self.center, teacher_out, self.center_momentum)


@torch.no_grad()
def update_center(center: torch.Tensor, teacher_out: torch.Tensor,
                  momentum: float) -> None:
    """In place: ``center <- m center + (1 - m) mean`` of the (N, K)
    ``teacher_out`` rows over all processes (all-reduced sum and count)."""
    batch_sum = teacher_out.detach().sum(dim=0, keepdim=True)  # [1, K]
    count = torch.tensor(float(teacher_out.shape[0]),
                         device=teacher_out.device)
    if get_world_size() > 1:
        all_reduce(batch_sum, op='sum')
        all_reduce(count, op='sum')
    center.mul_(momentum).add_(batch_sum / count, alpha=1 - momentum)
