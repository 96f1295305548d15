"""EsViT's Swin Transformer, written from its definition for the tests.

microsoft/esvit ``models/swin_transformer.py`` (also the Swin of the BC-SSL
authors' DINO fork, Shiweiliuiiiiiii/dino ``models/swin_transformer.py``)
as ``get_cls_model`` builds it, in the original key layout (what EsViT
checkpoints hold):

* every LayerNorm has eps 1e-6 (``norm_layer=partial(nn.LayerNorm,
  eps=1e-6)``);
* each block decides its window and shift at build time from its stage's
  map at ``img_size`` (``img_size // patch_size // 2 ** i``): a map no
  larger than the window gives window = map side and no shift; odd blocks
  of the other stages shift by ``window // 2``;
* at run time a map that is not a multiple of the window is zero-padded at
  the bottom/right after ``norm1`` and before the shift; a shifted block
  masks (-100) pairs of tokens from different regions of the padded map
  (the regions split each side at ``Hp - window`` and ``Hp - shift``);
  padded tokens are not masked otherwise;
* patch merging concatenates the 2x2 neighbours as (h0, w0), (h1, w0),
  (h0, w1), (h1, w1), zero-padding an odd map first, then norm and a
  bias-free reduction;
* the output is the final norm of the last stage's tokens, averaged.

An independent implementation (no code shared with mmpretrain, timm or
EsViT), kept short: inputs are square, as EsViT's ``forward`` assumes.
"""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

ESVIT_EPS = 1e-6


def _regions(side: int, window: int, shift: int) -> torch.Tensor:
    """Region label (0, 1, 2) of each row of a padded map of ``side``."""
    pos = torch.arange(side)
    return (pos >= side - window).long() + (pos >= side - shift).long()


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B * nW, w * w, C]``, windows row-major."""
    B, H, W, C = x.shape
    x = x.reshape(B, H // w, w, W // w, w, C).transpose(2, 3)
    return x.reshape(-1, w * w, C)


def _unwindows(x: torch.Tensor, w: int, B: int, H: int) -> torch.Tensor:
    """The inverse of :func:`_windows` for square maps of side ``H``."""
    C = x.shape[-1]
    x = x.reshape(B, H // w, H // w, w, w, C).transpose(2, 3)
    return x.reshape(B, H, H, C)


class Attention(nn.Module):

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.randn((2 * window - 1)**2, heads) * 0.02)
        # index of (dy + w - 1, dx + w - 1) for every pair of positions
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window),
                                indexing='ij')
        ys, xs = ys.flatten(), xs.flatten()
        dy = ys[:, None] - ys[None, :] + window - 1
        dx = xs[:, None] - xs[None, :] + window - 1
        self.register_buffer('relative_position_index',
                             dy * (2 * window - 1) + dx)

    def forward(self, x: torch.Tensor, mask=None) -> torch.Tensor:
        n, N, C = x.shape
        q, k, v = self.qkv(x).reshape(n, N, 3, self.heads, -1).permute(
            2, 0, 3, 1, 4)  # 3 x [n, heads, N, C / heads]
        logits = (q * q.shape[-1]**-0.5) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index]
        logits = logits + bias.permute(2, 0, 1)  # [heads, N, N]
        if mask is not None:  # [nW, N, N], the same for every image
            logits = logits.reshape(-1, mask.shape[0], self.heads, N, N)
            logits = (logits + mask[None, :, None]).reshape(n, -1, N, N)
        out = logits.softmax(-1) @ v  # [n, heads, N, C / heads]
        return self.proj(out.transpose(1, 2).reshape(n, N, C))


class Mlp(nn.Module):

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):

    def __init__(self, dim, heads, window, shift, eps):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, _, C = x.shape  # [B, H, H, C]
        w, s = self.window, self.shift
        pad = -H % w
        y = F.pad(self.norm1(x), (0, 0, 0, pad, 0, pad))  # [B, Hp, Hp, C]
        Hp = H + pad
        mask = None
        if s:
            y = y.roll((-s, -s), dims=(1, 2))
            rows = _regions(Hp, w, s)
            label = (3 * rows[:, None] + rows[None, :]).float()  # [Hp, Hp]
            label = _windows(label[None, :, :, None], w)[..., 0]  # [nW, N]
            mask = (label[:, :, None] != label[:, None, :]).float() * -100.
        y = _unwindows(self.attn(_windows(y, w), mask), w, B, Hp)
        if s:
            y = y.roll((s, s), dims=(1, 2))
        x = x + y[:, :H, :H]
        return x + self.mlp(self.norm2(x))


class Merging(nn.Module):

    def __init__(self, dim, eps):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        H = x.shape[1]
        x = F.pad(x, (0, 0, 0, H % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
                       x[:, 1::2, 1::2]], dim=-1)  # [B, H / 2, H / 2, 4C]
        return self.reduction(self.norm(x))


class Stage(nn.Module):

    def __init__(self, dim, depth, heads, window, side, last, eps):
        super().__init__()
        if side <= window:  # decided here, once, for the map at img_size
            window, shift = side, 0
        else:
            shift = window // 2
        self.blocks = nn.ModuleList(
            Block(dim, heads, window, shift if j % 2 else 0, eps)
            for j in range(depth))
        self.downsample = None if last else Merging(dim, eps)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class PatchEmbed(nn.Module):

    def __init__(self, patch, dim, eps):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x):
        return self.norm(self.proj(x).permute(0, 2, 3, 1))  # [B, h, w, C]


class EsViTSwin(nn.Module):
    """EsViT's Swin; ``forward`` returns the pooled feature ``[B, C]``,
    :meth:`regions` the final-normed last-stage tokens ``[B, L, C]``."""

    def __init__(self,
                 img_size: int = 224,
                 patch_size: int = 4,
                 embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7,
                 eps: float = ESVIT_EPS) -> None:
        super().__init__()
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, embed_dim, eps)
        self.layers = nn.ModuleList(
            Stage(embed_dim * 2**i, d, h, window_size, grid // 2**i,
                  i == len(depths) - 1, eps)
            for i, (d, h) in enumerate(zip(depths, num_heads)))
        self.norm = nn.LayerNorm(embed_dim * 2**(len(depths) - 1), eps=eps)

    def windows(self) -> List[List[tuple]]:
        """``(window, shift)`` of every block, stage by stage."""
        return [[(b.window, b.shift) for b in stage.blocks]
                for stage in self.layers]

    def regions(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x)
        return self.norm(x.flatten(1, 2))  # [B, L, C]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regions(x).mean(1)
