"""Vision Transformer returning the class tokens of its last n blocks (the
DINO linear-probe protocol for ViT)."""
from typing import List, Tuple

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS


@MODELS.register_module()
class VisionTransformerLastBlocks(VisionTransformer):
    """mmpretrain's ``VisionTransformer`` whose output is the concatenation
    of the class tokens of its last ``num_last_blocks`` blocks, each after
    the final norm.

    DINO probes ViT-S this way (``eval_linear.py`` of facebookresearch/dino,
    ``n_last_blocks=4`` and ``avgpool_patchtokens=False`` for ViT-S, with
    ``VisionTransformer.get_intermediate_layers``, which passes each of the
    last blocks' outputs through the final norm). For ViT-S/16 and 4 blocks
    that is 4 x 384 = 1536 channels.

    Same parameters and state-dict keys as ``VisionTransformer``, so the
    backbone extracted from a DINO checkpoint loads unchanged.

    Args:
        num_last_blocks (int): How many blocks, counted from the end.
            Defaults to 4.
        **kwargs: ``VisionTransformer`` arguments; it must have a class
            token and a final norm.
    """

    def __init__(self, num_last_blocks: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 1 <= num_last_blocks <= self.num_layers:
            raise ValueError(f'num_last_blocks must be in [1, '
                             f'{self.num_layers}], got {num_last_blocks}')
        if self.cls_token is None or not self.final_norm:
            raise ValueError('VisionTransformerLastBlocks needs a class '
                             'token and a final norm')
        self.num_last_blocks = num_last_blocks
        self.out_channels = num_last_blocks * self.embed_dims

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        B = x.shape[0]
        x, patch_resolution = self.patch_embed(x)  # [B, L, C]
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed, self.patch_resolution, patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.pre_norm(self.drop_after_pos(x))  # [B, 1 + L, C]

        first = self.num_layers - self.num_last_blocks
        tokens: List[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i >= first:
                tokens.append(self.ln1(x)[:, 0])  # [B, C]
        return (torch.cat(tokens, dim=1), )  # [B, n * C]
