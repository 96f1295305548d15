"""The EsViT loss: DINO's view-level loss plus a region-level loss (Li et al.
2021, "Efficient Self-supervised Vision Transformers for Representation
Learning"; ``DDINOLoss`` in microsoft/esvit ``main_esvit.py``)."""
from typing import Sequence

import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from .dino_loss import DINOLoss, teacher_temperature, update_center


@MODELS.register_module()
class EsViTLoss(DINOLoss):
    """``0.5 * (view loss + region loss)``, each averaged over the (teacher
    global view i, student view v != i) pairs.

    View loss: :class:`DINOLoss` on the pooled outputs (its centre).
    Region loss, for a pair (i, v): every student region r of view v is
    matched to the teacher region j* of view i whose backbone feature is the
    most cosine-similar (``argmax_j cos(f_s[r], f_t[j])``; features, not head
    outputs); the teacher's centred, sharpened region distribution at j* is
    the target of the student's region distribution at r (cross-entropy,
    averaged over regions and images). The region centre is a second EMA
    of the teacher's region outputs, all-reduced, updated after the loss.

    Args:
        *args, **kwargs: Those of :class:`DINOLoss`; ``out_channels`` is K
            of both heads and ``center_momentum`` applies to both centres.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer('region_center',
                             torch.zeros_like(self.center))

    def forward(self, student_out: Sequence[torch.Tensor],
                teacher_out: Sequence[torch.Tensor],
                student_regions: Sequence[torch.Tensor],
                teacher_regions: Sequence[torch.Tensor],
                student_feats: Sequence[torch.Tensor],
                teacher_feats: Sequence[torch.Tensor],
                epoch: int) -> dict:
        """Loss for one batch; also updates both centres.

        Args:
            student_out / teacher_out: (B, K) pooled head outputs per view
                (all views / the global views).
            student_regions / teacher_regions: (B, T_v, K) region head
                outputs per view.
            student_feats / teacher_feats: (B, T_v, C) backbone region
                features per view, for the matching.
            epoch (int): Current epoch (0-based), for the temperature.

        Returns:
            dict: ``loss`` (the total) and its ``view`` and ``region`` terms
            (detached, for the log).
        """
        view = super().forward(student_out, teacher_out, epoch)
        region = self.region_loss(student_regions, teacher_regions,
                                  student_feats, teacher_feats, epoch)
        return dict(loss=0.5 * (view + region), view=view.detach(),
                    region=region.detach())

    def region_loss(self, student_regions, teacher_regions, student_feats,
                    teacher_feats, epoch: int) -> torch.Tensor:
        temp = teacher_temperature(epoch, self.teacher_temp,
                                   self.warmup_teacher_temp,
                                   self.warmup_teacher_temp_epochs)
        targets = [
            F.softmax((t.detach() - self.region_center) / temp, dim=-1)
            for t in teacher_regions
        ]  # [B, T, K] each
        student_logp = [
            F.log_softmax(s / self.student_temp, dim=-1)
            for s in student_regions
        ]  # [B, T_v, K] each
        total, pairs = 0., 0
        for i, (q, f_t) in enumerate(zip(targets, teacher_feats)):
            f_t = F.normalize(f_t.detach(), dim=-1)  # [B, T, C]
            for s, (logp, f_s) in enumerate(zip(student_logp,
                                                student_feats)):
                if s == i:  # a view is never its own target
                    continue
                # the matching is a choice, not a function to differentiate
                sim = F.normalize(f_s.detach(), dim=-1) @ f_t.transpose(
                    1, 2)  # [B, T_v, T]
                match = sim.argmax(dim=2)  # [B, T_v]
                target = q.gather(
                    1, match[..., None].expand(-1, -1, q.shape[-1]))
                total = total + (-target * logp).sum(dim=-1).mean()
                pairs += 1
        update_center(self.region_center,
                      torch.cat([t.flatten(0, 1) for t in teacher_regions]),
                      self.center_momentum)
        return total / pairs
