"""BC-SSL: ConvNeXt with a BatchNorm after every depthwise convolution.

"The Counterattack of CNNs in Self-Supervised Learning: Larger Kernel Size
might be All You Need" (arXiv 2312.05695): the block is
dwconv(k x k) -> BN -> LN -> Linear(4C) -> GELU -> Linear(C) -> layer scale
-> drop path -> residual, with 9x9 kernels by default.

What is reused from mmpretrain's ``ConvNeXt`` (``mmpretrain/models/
backbones/convnext.py``): the stem, the downsampling layers, the output
norms, ``forward``, stage freezing and ``get_layer_depth`` (the ConvNeXt
layer ids of layer-wise LR decay, identical to mmdet 3.3's
``get_layer_id_for_convnext``). What is new: the blocks, because
mmpretrain's block has a fixed 7x7 kernel slot and no norm after it.

Two layout changes keep channels_last inference free of copies (same
values): :class:`LayerNorm2dKeepLayout`, and the pointwise Linears run as
1x1 convolutions on CPU channels_last maps (:func:`_linear_as_conv1x1`).

Parameter names equal vanilla ConvNeXt's (``stages.i.j.depthwise_conv``
...), plus ``stages.i.j.dw_norm`` (and ``small_conv``/``small_norm``), so a
vanilla ConvNeXt checkpoint loads with only the new norms missing.
"""
import copy
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import Sequential
from mmpretrain.models.backbones import ConvNeXt
from mmpretrain.models.backbones.convnext import ConvNeXtBlock
from mmpretrain.models.utils import LayerNorm2d, build_norm_layer
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights

ARCHS = ('tiny', 'small', 'base')


def _fold_bn(conv: nn.Conv2d, bn: _BatchNorm):
    """Weight and bias of ``bn(conv(x))`` as one convolution (eval mode),
    by PyTorch's own fold (``torch.nn.utils.fusion``)."""
    return fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean,
                                bn.running_var, bn.eps, bn.weight, bn.bias)


@MODELS.register_module(name=['LayerNorm2dKeepLayout', 'LN2dKeepLayout'])
class LayerNorm2dKeepLayout(LayerNorm2d):
    """mmpretrain's ``LayerNorm2d`` that returns channels_last input as
    channels_last.

    Registered under its class name and under the short name
    ``'LN2dKeepLayout'`` (after mmpretrain's ``'LN2d'``): a ``norm_cfg``
    naming either builds this class.

    mmpretrain's version ends in ``.contiguous()``, which turns a
    channels_last map into an NCHW one; the next convolution then converts
    it back. In channels_last inference that is two full transposes per
    stem or downsampling norm, 4% of BC-SSL-T's CPU time at batch 32
    (profiled; configs/_base_/models/README.md, "Inference speed"). Values
    are identical; NCHW input is handled exactly as mmpretrain does.
    """

    def forward(self, x: torch.Tensor,
                data_format: str = 'channel_first') -> torch.Tensor:
        if data_format == 'channel_first' and x.dim() == 4 and \
                x.is_contiguous(memory_format=torch.channels_last) and \
                not x.is_contiguous():
            x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape,
                             self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)
        return super().forward(x, data_format)


def _cpu_channels_last(x: torch.Tensor) -> bool:
    return x.device.type == 'cpu' and not x.is_contiguous() and \
        x.is_contiguous(memory_format=torch.channels_last)


def _linear_as_conv1x1(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``linear`` over the channels of a channels_last map, run as a 1x1
    convolution with the same weights.

    On CPU this is oneDNN's convolution, which adds the bias inside the
    GEMM, where ``nn.Linear`` (``addmm``) first copies the bias over its
    whole output, 9% of BC-SSL-T's channels_last CPU time at batch 32
    (profiled; configs/_base_/models/README.md, "Inference speed"). The
    parameters stay ``nn.Linear``'s, so checkpoints and layer ids are
    unchanged. Not used on GPU, where nothing was measured.
    """
    return F.conv2d(x, linear.weight[:, :, None, None], linear.bias)


class BCSSLBlock(ConvNeXtBlock):
    """A ConvNeXt block with a norm after the depthwise conv.

    Args:
        in_channels (int): Channels C.
        kernel_size (int): Odd depthwise kernel size. Defaults to 9.
        dw_norm_cfg (dict, optional): Norm after the depthwise conv; None
            gives the vanilla ConvNeXt block. Defaults to ``dict(type='BN')``.
        small_kernel (int, optional): A parallel depthwise conv of this odd
            size with its own norm, summed with the large branch and merged
            into it by :meth:`switch_to_deploy` (RepLKNet, Ding et al. 2022).
            Defaults to None.
        deploy (bool): Build the folded inference structure directly.
            Defaults to False.
        **kwargs: Passed to mmpretrain's ``ConvNeXtBlock``.
    """

    def __init__(self,
                 in_channels: int,
                 kernel_size: int = 9,
                 dw_norm_cfg: Optional[dict] = dict(type='BN'),
                 small_kernel: Optional[int] = None,
                 deploy: bool = False,
                 **kwargs) -> None:
        super().__init__(
            in_channels,
            dw_conv_cfg=dict(kernel_size=kernel_size,
                             padding=kernel_size // 2),
            **kwargs)
        self.kernel_size = kernel_size
        self.deploy = deploy
        has_norm = dw_norm_cfg is not None and not deploy
        self.dw_norm = build_norm_layer(dw_norm_cfg, in_channels) \
            if has_norm else nn.Identity()
        if small_kernel is not None and has_norm:
            self.small_conv = nn.Conv2d(
                in_channels, in_channels, small_kernel,
                padding=small_kernel // 2, groups=in_channels, bias=False)
            self.small_norm = build_norm_layer(dw_norm_cfg, in_channels)
        else:
            self.small_conv = self.small_norm = None

    def _token_mixer(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dw_norm(self.depthwise_conv(x))
        if self.small_conv is not None:
            out = out + self.small_norm(self.small_conv(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        def _inner_forward(x):
            shortcut = x
            x = self._token_mixer(x)
            if self.linear_pw_conv:
                as_conv = _cpu_channels_last(x)
                x = x.permute(0, 2, 3, 1)  # [N, C, H, W] -> [N, H, W, C]
                x = self.norm(x, data_format='channel_last')
                if as_conv:  # the permutes are views of one NHWC layout
                    x = x.permute(0, 3, 1, 2)
                    x = self.act(_linear_as_conv1x1(x, self.pointwise_conv1))
                    x = _linear_as_conv1x1(x, self.pointwise_conv2)
                else:
                    x = self.pointwise_conv2(
                        self.act(self.pointwise_conv1(x)))
                    x = x.permute(0, 3, 1, 2)  # [N, H, W, C] -> [N, C, H, W]
            else:
                x = self.norm(x, data_format='channel_first')
                x = self.pointwise_conv2(self.act(self.pointwise_conv1(x)))
            if self.gamma is not None:
                x = x.mul(self.gamma.view(1, -1, 1, 1))
            return shortcut + self.drop_path(x)

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, use_reentrant=False)
        return _inner_forward(x)

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold the norm(s) into the depthwise conv: the block becomes a
        vanilla ConvNeXt block with the same eval-mode outputs."""
        if self.deploy or isinstance(self.dw_norm, nn.Identity):
            self.deploy = True
            return
        weight, bias = _fold_bn(self.depthwise_conv, self.dw_norm)
        if self.small_conv is not None:
            w_small, b_small = _fold_bn(self.small_conv, self.small_norm)
            pad = (self.kernel_size - self.small_conv.kernel_size[0]) // 2
            weight = weight + F.pad(w_small, [pad] * 4)  # centred
            bias = bias + b_small
            self.small_conv = self.small_norm = None
        conv = self.depthwise_conv
        if conv.bias is None:
            conv.bias = nn.Parameter(torch.zeros_like(bias))
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        self.dw_norm = nn.Identity()
        self.deploy = True


@MODELS.register_module()
class BCSSL(ConvNeXt):
    """BC-SSL backbone: ConvNeXt + BN after each depthwise conv.

    Args:
        arch (str | dict): ``'tiny'`` (depths 3-3-9-3, channels
            96-192-384-768), ``'small'`` (3-3-27-3, same channels),
            ``'base'`` (3-3-27-3, 128-256-512-1024), or a dict with
            ``depths`` and ``channels``. Defaults to 'tiny'.
        kernel_size (int | Sequence[int]): Odd depthwise kernel size, or one
            per stage. Defaults to 9 (the paper sweeps 3, 5, 7, 9, 15).
        dw_norm_cfg (dict, optional): Norm after each depthwise conv:
            ``dict(type='BN')``, ``dict(type='SyncBN')`` for distributed
            runs, or None for vanilla ConvNeXt (the paper's ablation).
            Defaults to ``dict(type='BN')``.
        small_kernel (int, optional): RepLKNet-style parallel small kernel
            with its own norm, merged in deploy mode; meant for kernels
            beyond 9 (13, 15, 31). Defaults to None.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        layer_scale_init_value (float): Defaults to 1e-6.
        out_indices (int | Sequence[int]): Stages to output, in [-4, 3].
            Defaults to -1.
        frozen_stages (int): Stages (with their downsampling and output
            norms) to freeze; 4 freezes everything. Defaults to 0.
        norm_eval (bool): Keep the BatchNorms in eval mode while training
            (frozen statistics). Defaults to False.
        gap_before_final_norm (bool): Output pooled (N, C) features instead
            of maps. Defaults to True.
        with_cp (bool): Gradient checkpointing. Defaults to False.
        deploy (bool): Build the folded structure (no dw norms) directly,
            e.g. to load a checkpoint saved after :meth:`switch_to_deploy`.
            Defaults to False.
        **kwargs: Passed to mmpretrain's ``ConvNeXt`` (``norm_cfg``, by
            default ``dict(type='LayerNorm2dKeepLayout', eps=1e-6)``,
            ``init_cfg``, ``stem_patch_size``, ...).

    Note:
        A fresh BN is the identity up to ``1 / sqrt(1 + eps)`` (eps 1e-5):
        vanilla ConvNeXt weights loaded here reproduce that network to a
        relative 5e-6, and exactly with ``dw_norm_cfg=None``.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 kernel_size: Union[int, Sequence[int]] = 9,
                 dw_norm_cfg: Optional[dict] = dict(type='BN'),
                 small_kernel: Optional[int] = None,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 out_indices: Union[int, Sequence[int]] = -1,
                 frozen_stages: int = 0,
                 norm_eval: bool = False,
                 gap_before_final_norm: bool = True,
                 with_cp: bool = False,
                 deploy: bool = False,
                 **kwargs) -> None:
        arch = self._check_arch(arch)
        num_stages = len(arch['depths'])
        kernels = self._check_kernels(kernel_size, num_stages)
        out_indices = self._check_out_indices(out_indices, num_stages)
        if small_kernel is not None and (small_kernel % 2 == 0
                                         or small_kernel >= min(kernels)):
            raise ValueError(f'small_kernel must be odd and smaller than '
                             f'every kernel_size {kernels}, got '
                             f'{small_kernel}')
        if not 0 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [0, {num_stages}], '
                             f'got {frozen_stages}')
        self.kernel_sizes = kernels
        self.norm_eval = norm_eval
        self.deploy = deploy
        # mmpretrain's default norm (LN2d, eps 1e-6), keeping channels_last.
        kwargs.setdefault('norm_cfg',
                          dict(type='LayerNorm2dKeepLayout', eps=1e-6))
        # ConvNeXt builds stem, downsampling, norms and 7x7 stages; the
        # stages are rebuilt below with BC-SSL blocks.
        super().__init__(
            arch=arch,
            drop_path_rate=drop_path_rate,
            layer_scale_init_value=layer_scale_init_value,
            out_indices=out_indices,
            frozen_stages=0,
            gap_before_final_norm=gap_before_final_norm,
            with_cp=with_cp,
            **kwargs)
        block_cfg = dict(
            norm_cfg=kwargs['norm_cfg'],
            act_cfg=kwargs.get('act_cfg', dict(type='GELU')),
            linear_pw_conv=kwargs.get('linear_pw_conv', True),
            layer_scale_init_value=layer_scale_init_value,
            with_cp=with_cp)
        dpr = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.stages = nn.ModuleList()
        start = 0
        for i, (depth, channels) in enumerate(zip(self.depths,
                                                  self.channels)):
            self.stages.append(
                Sequential(*[
                    BCSSLBlock(
                        channels,
                        kernel_size=kernels[i],
                        dw_norm_cfg=dw_norm_cfg,
                        small_kernel=small_kernel,
                        deploy=deploy,
                        drop_path_rate=dpr[start + j],
                        **block_cfg) for j in range(depth)
                ]))
            start += depth
        self.frozen_stages = frozen_stages
        self._freeze_stages()

    @staticmethod
    def _check_arch(arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch not in ARCHS:
                raise ValueError(f'arch must be one of {ARCHS} or a dict of '
                                 f'depths/channels, got {arch!r}')
            return copy.deepcopy(ConvNeXt.arch_settings[arch])
        if not (isinstance(arch, dict) and 'depths' in arch
                and 'channels' in arch
                and len(arch['depths']) == len(arch['channels'])):
            raise ValueError('arch dict needs "depths" and "channels" of '
                             f'equal length, got {arch}')
        return dict(depths=list(arch['depths']),
                    channels=list(arch['channels']))

    @staticmethod
    def _check_kernels(kernel_size, num_stages: int) -> List[int]:
        if isinstance(kernel_size, (list, tuple)):
            kernels = list(kernel_size)
        else:
            kernels = [kernel_size] * num_stages
        if len(kernels) != num_stages:
            raise ValueError(f'kernel_size list must have one odd size per '
                             f'stage ({num_stages}), got {kernel_size}')
        if any(not isinstance(k, int) or isinstance(k, bool) or k < 1
               or k % 2 == 0 for k in kernels):
            raise ValueError(f'kernel_size must be an odd integer (3, 5, '
                             f'7, 9, 15, ...), got {kernel_size}')
        return kernels

    @staticmethod
    def _check_out_indices(out_indices, num_stages: int) -> List[int]:
        indices = [out_indices] if isinstance(out_indices,
                                              int) else list(out_indices)
        for i in indices:
            if not -num_stages <= i < num_stages:
                raise ValueError(
                    f'out_indices must lie in [{-num_stages}, '
                    f'{num_stages - 1}], got {out_indices}')
        # ConvNeXt's own conversion assumes 4 stages.
        return [i % num_stages for i in indices]

    def _freeze_stages(self) -> None:
        """Freeze the first ``frozen_stages`` stages (ConvNeXt's rule) and
        also the output norms of frozen stages, so that ``frozen_stages=4``
        leaves nothing trainable (a linear probe), as Swin does."""
        super()._freeze_stages()
        for i in self.out_indices:
            if i < self.frozen_stages and hasattr(self, f'norm{i}'):
                for param in getattr(self, f'norm{i}').parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'BCSSL':
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def switch_to_deploy(self) -> None:
        """Fold every dw norm (and small kernel) into its depthwise conv,
        leaving exactly ConvNeXt's inference graph."""
        for m in self.modules():
            if isinstance(m, BCSSLBlock):
                m.switch_to_deploy()
        self.deploy = True
