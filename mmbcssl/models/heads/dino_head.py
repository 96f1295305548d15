"""The DINO projection head (Caron et al. 2021).

MLP (Linear-GELU-Linear-GELU-Linear to a 256-d bottleneck) -> L2 normalise
-> weight-normalised Linear(256, 65536, no bias). Facts from the paper and
facebookresearch/dino ``vision_transformer.py`` (``DINOHead``).
"""
import math
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.registry import MODELS


class WeightNormLinear(nn.Module):
    """``Linear(in, out, bias=False)`` with weight = g * v / ||v|| per row.

    Written out rather than taken from ``torch.nn.utils.weight_norm``
    (deprecated in favour of a parametrization whose state-dict keys changed
    between torch versions): this one behaves the same on torch 2.1-2.14
    and keeps the reference DINO's keys, ``weight_g`` (out, 1) and
    ``weight_v`` (out, in), so its checkpoints load.

    Args:
        in_features (int): Input size.
        out_features (int): Output size.
        fix_gain (bool): Keep g at 1 and out of training (DINO's
            ``norm_last_layer=True``). Defaults to True.
    """

    def __init__(self, in_features: int, out_features: int,
                 fix_gain: bool = True) -> None:
        super().__init__()
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_g = nn.Parameter(
            torch.ones(out_features, 1), requires_grad=not fix_gain)
        # v starts as nn.Linear's default weight (kaiming-uniform,
        # U(-1/sqrt(in), 1/sqrt(in))), not trunc-normal 0.02: the reference
        # runs its trunc-normal init *before* creating the last layer, so
        # this layer keeps torch's default. The scale matters although the
        # direction is normalised: Adam's steps are about lr per element, so
        # a smaller v rotates the prototypes faster (by 1.8x at in=256).
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_g * F.normalize(self.weight_v, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


@MODELS.register_module()
class DINOHead(BaseModule):
    """DINO's projection head.

    Args:
        in_channels (int): Backbone feature size (768 for BC-SSL-T).
        out_channels (int): Prototypes K. Defaults to 65536.
        hidden_channels (int): MLP width. Defaults to 2048.
        bottleneck_channels (int): Defaults to 256.
        num_layers (int): Linear layers of the MLP. Defaults to 3.
        use_bn (bool): BatchNorm1d after the hidden linears. Defaults to
            False (the reference's default for all backbones).
        norm_last_layer (bool): Fix the last layer's weight-norm gain to 1.
            Defaults to True.
        init_cfg (dict, optional): Defaults to None (trunc-normal std 0.02,
            zero bias, as the reference).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 65536,
                 hidden_channels: int = 2048,
                 bottleneck_channels: int = 256,
                 num_layers: int = 3,
                 use_bn: bool = False,
                 norm_last_layer: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        dims: List[int] = [in_channels] + [hidden_channels] * (
            num_layers - 1) + [bottleneck_channels]
        layers: List[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(d_in, d_out))
            if i < num_layers - 1:
                if use_bn:
                    layers.append(nn.BatchNorm1d(d_out))
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.last_layer = WeightNormLinear(
            bottleneck_channels, out_channels, fix_gain=norm_last_layer)
        self.out_channels = out_channels

    def init_weights(self) -> None:
        super().init_weights()
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(x)  # [N, bottleneck]
        x = F.normalize(x, dim=-1)
        return self.last_layer(x)  # [N, K]
