"""DINO: self-distillation with no labels (Caron et al. 2021).

Read top to bottom: the student (backbone + neck + DINO head) sees every
view; the teacher, an EMA copy that never receives gradients, sees the 2
global views; the loss is :class:`DINOLoss`. The EMA update itself is
:class:`mmbcssl.engine.hooks.DINOTeacherHook` (a hook, so that it also runs
under DDP, where the wrapper does not call the model's ``train_step``).

Teacher BatchNorm (BC-SSL and ResNet have BN): as in the reference
``main_dino.py``, the teacher runs in train mode, so its BN normalises with
the statistics of the teacher's own batch of global views, and its running
statistics are updated by those forwards (they are buffers, not EMA'd from
the student: only parameters are). The running statistics are what an
extracted teacher backbone uses at evaluation time. Under distributed
training both networks' BNs are SyncBN (``sync_bn='torch'`` in configs).
"""
import copy
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


def _pooled(feats) -> torch.Tensor:
    """The last output of a backbone/neck as an (N, C) feature."""
    x = feats[-1] if isinstance(feats, (tuple, list)) else feats
    if x.dim() == 4:
        raise ValueError('DINO needs pooled (N, C) features: use '
                         'gap_before_final_norm=True or a '
                         'GlobalAveragePooling neck')
    return x


class _Network(nn.Module):
    """backbone -> neck -> head, as one module (the teacher's layout)."""

    def __init__(self, backbone, neck, head) -> None:
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        if self.neck is not None:
            feats = self.neck(feats)
        return self.head(_pooled(feats))


@MODELS.register_module()
class DINO(BaseSelfSupervisor):
    """DINO self-supervised pre-training.

    Args:
        backbone (dict): Backbone config (e.g. ``BCSSL``).
        head (dict): ``DINOHead`` config (the projection head).
        loss (dict): ``DINOLoss`` config.
        neck (dict, optional): Pooling neck for backbones that output maps.
            Defaults to None.
        num_global_views (int): Views that go through the teacher (the
            first ones of the input list). Defaults to 2.
        teacher_drop_path (bool): Keep the student's stochastic depth
            active in the teacher. False (the default) follows DINO: its
            ViT teacher is built without drop path. Defaults to False.
        data_preprocessor (dict, optional): Defaults to None.
        init_cfg (dict, optional): Defaults to None.

    Note:
        ``teacher_drop_path=True`` reproduces the BC-SSL authors' code
        (Shiweiliuiiiiiii/dino, ``main_dino.py``): it builds the SLaK
        teacher with the student's ``drop_path_rate`` (0.1) and never puts
        it in eval mode, so the teacher's residual branches are dropped at
        random in every forward. The paper text does not mention it.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 loss: dict,
                 neck: Optional[dict] = None,
                 num_global_views: int = 2,
                 teacher_drop_path: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.loss_module = MODELS.build(loss)
        self.num_global_views = num_global_views
        self.teacher_drop_path = teacher_drop_path
        self.teacher = self._copy_for_teacher(
            _Network(self.backbone, self.neck, self.head), teacher_drop_path)
        # Counts EMA updates (DINOTeacherHook) and loss calls, to fail
        # loudly if the hook is missing (a teacher that never moves).
        self.register_buffer('teacher_updates',
                             torch.zeros((), dtype=torch.long))
        self._losses_since_update = 0

    @property
    def student(self) -> nn.Module:
        """The student's modules in the teacher's layout (parameters in
        the same order, for the EMA update)."""
        return _Network(self.backbone, self.neck, self.head)

    @staticmethod
    def _copy_for_teacher(student: nn.Module,
                          drop_path: bool = False) -> nn.Module:
        teacher = copy.deepcopy(student)
        for p in teacher.parameters():
            p.requires_grad = False
        if drop_path:  # the authors' code: the student's rates, active
            return teacher
        # DINO's teacher has no stochastic depth; ours is a copy of the
        # student and runs in train mode (for BN), so switch it off.
        for m in teacher.modules():
            if hasattr(m, 'drop_prob'):  # mmcv and timm DropPath
                m.drop_prob = 0.0
        return teacher

    def init_weights(self) -> None:
        super().init_weights()
        # The teacher starts as an exact copy of the initialised student.
        self.teacher.load_state_dict(self.student.state_dict())

    def extract_feat(self, inputs: torch.Tensor):
        feats = self.backbone(inputs)
        return self.neck(feats) if self.neck is not None else feats

    def _student_forward(self, views: Sequence[torch.Tensor]) -> list:
        """Student outputs per view; views of equal size share a forward
        (one pass for the global crops, one for the local crops). A network
        returning a tuple gives a tuple per view."""
        outputs: list = [None] * len(views)
        sizes = []
        for v in views:
            if v.shape[-2:] not in sizes:
                sizes.append(v.shape[-2:])
        for size in sizes:
            idx = [i for i, v in enumerate(views) if v.shape[-2:] == size]
            batch = torch.cat([views[i] for i in idx])  # [len(idx) * B, ...]
            out = self.student(batch)
            if isinstance(out, tuple):
                parts = [o.chunk(len(idx)) for o in out]
                for k, i in enumerate(idx):
                    outputs[i] = tuple(p[k] for p in parts)
            else:
                for i, o in zip(idx, out.chunk(len(idx))):
                    outputs[i] = o  # [B, K]
        return outputs

    def _check_teacher_moves(self) -> None:
        """Fail loudly when no EMA update came between two losses (the
        hook is missing: a teacher that never moves)."""
        if self._losses_since_update > 1:
            raise RuntimeError(
                'the DINO teacher has not been updated for '
                f'{self._losses_since_update} iterations: add '
                "dict(type='DINOTeacherHook') to custom_hooks")
        self._losses_since_update += 1

    def loss(self, inputs: List[torch.Tensor],
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        self._check_teacher_moves()
        epoch = MessageHub.get_current_instance().get_info('epoch', 0)
        # only the global views pass through the teacher
        with torch.no_grad():
            globals_ = torch.cat(inputs[:self.num_global_views])
            teacher_out = self.teacher(globals_).chunk(self.num_global_views)
        student_out = self._student_forward(inputs)
        loss = self.loss_module(student_out, teacher_out, epoch)
        return dict(loss=loss)

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        """teacher <- m * teacher + (1 - m) * student (the paper's m)."""
        for p_s, p_t in zip(self.student.parameters(),
                            self.teacher.parameters()):
            p_t.mul_(momentum).add_(p_s.detach(), alpha=1 - momentum)
        self.teacher_updates += 1
        self._losses_since_update = 0
