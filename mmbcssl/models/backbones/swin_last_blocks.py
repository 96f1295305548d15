"""Swin Transformer returning the pooled features of its last n blocks (the
EsViT linear-probe protocol)."""
from typing import List, Tuple

import torch
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS

from .original_swin_transformer import OriginalSwinTransformer


@MODELS.register_module()
class SwinTransformerLastBlocks(OriginalSwinTransformer):
    """``OriginalSwinTransformer`` whose output is the concatenation of
    the token-averaged outputs of its last ``num_last_blocks`` blocks.

    EsViT (Li et al. 2021) evaluates Swin with a linear classifier on this
    concatenation instead of the pooled last stage (``eval_linear.py`` and
    ``SwinTransformer.forward_return_n_last_blocks`` of microsoft/esvit):
    blocks are counted backwards across stages, each block's output is taken
    before the stage's patch merging, the last stage's blocks go through the
    final norm before pooling, the earlier ones are pooled as they are. For
    Swin-T (depths 2, 2, 6, 2) and 4 blocks that is 2 x 384 + 2 x 768 = 2304
    channels.

    Same network, parameters and state-dict keys as
    ``OriginalSwinTransformer``, so the backbone extracted from a DINO/EsViT
    checkpoint loads unchanged and computes what it was trained as.

    Args:
        num_last_blocks (int): How many blocks, counted from the end.
            Defaults to 4.
        **kwargs: ``OriginalSwinTransformer`` arguments; ``out_indices``
            must contain the last stage (its norm is the final norm).
    """

    def __init__(self, num_last_blocks: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)
        last = len(self.stages) - 1
        depths = [len(stage.blocks) for stage in self.stages]
        if not 1 <= num_last_blocks <= sum(depths):
            raise ValueError(f'num_last_blocks must be in [1, {sum(depths)}]'
                             f' (the blocks of depths {depths}), got '
                             f'{num_last_blocks}')
        if last not in self.out_indices:
            raise ValueError(f'out_indices must contain the last stage '
                             f'({last}), whose norm is the final norm; got '
                             f'{self.out_indices}')
        blocks = [(i, j) for i, d in enumerate(depths) for j in range(d)]
        self.taken = set(blocks[-num_last_blocks:])
        self.num_last_blocks = num_last_blocks
        self.out_channels = sum(self.num_features[i] for i, _ in self.taken)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        x, hw_shape = self.patch_embed(x)  # [B, L, C]
        if self.use_abs_pos_embed:
            x = x + resize_pos_embed(
                self.absolute_pos_embed, self.patch_resolution, hw_shape,
                self.interpolate_mode, self.num_extra_tokens)
        x = self.drop_after_pos(x)

        last = len(self.stages) - 1
        pooled: List[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage.blocks):
                x = block(x, hw_shape)  # [B, L, C_i]
                if (i, j) in self.taken:
                    tokens = getattr(self, f'norm{i}')(x) if i == last else x
                    pooled.append(tokens.mean(dim=1))  # [B, C_i]
            if stage.downsample is not None:
                x, hw_shape = stage.downsample(x, hw_shape)
        return (torch.cat(pooled, dim=1), )  # [B, sum of C_i]
