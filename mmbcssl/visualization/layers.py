"""Which layer of a backbone to look at, and its output as a 2-D map.

Shared by the CAM, ERF and feature-PCA tools. Module names are those of
``backbone.named_modules()``: ``stages.3.2`` is the last block of a
BC-SSL / ConvNeXt, ``layer4.2`` of a ResNet-50, ``stages.3.blocks.1.norm1``
the first norm of Swin-T's last block, ``layers.11.ln1`` that of ViT-S.
"""
import difflib
import math
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn as nn


class LayerError(ValueError):
    """A layer name that a visualisation cannot use."""


class UnknownLayerError(LayerError):
    """A module name that the backbone does not have."""


def _family(backbone: nn.Module) -> str:
    """'convnext' (BC-SSL too), 'resnet', 'swin', 'vit' or ''."""
    from mmpretrain.models.backbones import (ConvNeXt, ResNet,
                                             SwinTransformer,
                                             VisionTransformer)
    for cls, name in ((ConvNeXt, 'convnext'), (ResNet, 'resnet'),
                      (SwinTransformer, 'swin'),
                      (VisionTransformer, 'vit')):
        if isinstance(backbone, cls):
            return name
    return ''


def _no_default(backbone: nn.Module, what: str) -> UnknownLayerError:
    return UnknownLayerError(
        f'no default {what} for a {type(backbone).__name__} backbone; name '
        'one with --target-layer/--layer (a module name of '
        'backbone.named_modules(), e.g. stages.3.2)')


def stage_names(backbone: nn.Module) -> List[str]:
    """The module name of each stage, in order.

    Swin's stages return ``(tokens, hw_shape)``; a ViT has no stages, so
    its layers (transformer blocks) are listed instead.
    """
    family = _family(backbone)
    if family in ('convnext', 'swin'):
        return [f'stages.{i}' for i in range(len(backbone.stages))]
    if family == 'resnet':
        return list(backbone.res_layers)
    if family == 'vit':
        return [f'layers.{i}' for i in range(len(backbone.layers))]
    raise _no_default(backbone, 'stage')


def default_cam_layer(backbone: nn.Module) -> str:
    """The CAM target layer of a backbone, as the paper's Figure 4 takes it.

    CNNs (BC-SSL, ConvNeXt, ResNet): the last block of the last stage.
    Swin and ViT: the first norm of the last block (pytorch-grad-cam's
    recommendation for transformers: after the last block only the class
    token or the pooled tokens reach the head, so the last block's own
    output carries no spatial gradient for a ViT).
    """
    family = _family(backbone)
    if family == 'convnext':
        last = len(backbone.stages) - 1
        return f'stages.{last}.{len(backbone.stages[last]) - 1}'
    if family == 'resnet':
        name = backbone.res_layers[-1]
        return f'{name}.{len(getattr(backbone, name)) - 1}'
    if family == 'swin':
        last = len(backbone.stages) - 1
        blocks = backbone.stages[last].blocks
        return f'stages.{last}.blocks.{len(blocks) - 1}.norm1'
    if family == 'vit':
        # mmpretrain names the first norm of a ViT block ``ln1``
        return f'layers.{len(backbone.layers) - 1}.ln1'
    raise _no_default(backbone, 'CAM target layer')


def get_layer(backbone: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; an error names close matches."""
    modules = dict(backbone.named_modules())
    if name in modules and name:
        return modules[name]
    close = difflib.get_close_matches(name, list(modules), n=3, cutoff=0.5)
    children = [n for n, _ in backbone.named_children()][:8]
    hint = (f'did you mean {", ".join(close)}?' if close else
            f'its top-level modules: {", ".join(children)}')
    raise UnknownLayerError(
        f'{type(backbone).__name__} has no layer {name!r}; {hint}')


def num_extra_tokens(backbone: nn.Module) -> int:
    """Tokens before the patch tokens (a ViT's class token), else 0."""
    return int(getattr(backbone, 'num_extra_tokens', 0) or 0)


def to_feature_map(output: Union[torch.Tensor, Sequence],
                   input_hw: Tuple[int, int],
                   extra_tokens: int = 0) -> torch.Tensor:
    """A layer's output as a ``[N, C, h, w]`` map.

    Args:
        output: A ``[N, C, h, w]`` map, ``[N, L, C]`` tokens in raster order
            (Swin, ViT), or a tuple whose first element is one of these
            (Swin's stages return ``(tokens, hw_shape)``).
        input_hw (tuple): Height and width of the network input, to find
            the token grid (h / w = H / W).
        extra_tokens (int): Leading tokens that are not patches (a ViT's
            class token), dropped. Defaults to 0.

    Returns:
        torch.Tensor: ``[N, C, h, w]``.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise ValueError(f'the layer returned {type(output).__name__}, not '
                         'a tensor')
    if output.dim() == 4:
        return output
    if output.dim() != 3:
        raise ValueError(f'the layer output has shape {tuple(output.shape)};'
                         ' expected [N, C, h, w] or [N, L, C] tokens')
    tokens = output[:, extra_tokens:]  # [N, L, C]
    n, length, c = tokens.shape
    in_h, in_w = input_hw
    h = max(1, round(math.sqrt(length * in_h / in_w)))
    w = length // h
    if h * w != length:
        raise ValueError(
            f'{length} tokens (after {extra_tokens} extra) do not form a '
            f'grid with the input aspect ratio {in_h}:{in_w}')
    # [N, L, C] -> [N, h, w, C] -> [N, C, h, w]
    return tokens.reshape(n, h, w, c).permute(0, 3, 1, 2)


class _Stop(Exception):
    """Raised by a capture hook to end a forward pass early."""


def run_to_layer(model: nn.Module, layer: nn.Module, x: torch.Tensor,
                 stop: bool = True):
    """Run ``model(x)`` and return what ``layer`` output.

    Args:
        model (nn.Module): The network to run.
        layer (nn.Module): One of its submodules.
        x (torch.Tensor): The input.
        stop (bool): End the forward pass once ``layer`` has run (the
            later layers cannot change its output). Defaults to True.
    """
    captured = []

    def hook(module, inputs, output):
        captured.append(output)
        if stop:
            raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise LayerError(
            f'{type(layer).__name__} layer did not run in the forward pass')
    return captured[0]


def _channels_last_layers(backbone: nn.Module) -> dict:
    """Layers of ConvNeXt-style blocks (BC-SSL's too) that work on the
    channels-last ``[N, H, W, C]`` layout, each mapped to its block's name.

    With ``linear_pw_conv`` (the default of mmpretrain's ``ConvNeXtBlock``)
    the block permutes its map after the depthwise conv and norms and
    projects each pixel's channels with ``nn.Linear`` layers.
    """
    from mmpretrain.models.backbones.convnext import ConvNeXtBlock
    found = {}
    for name, module in backbone.named_modules():
        if isinstance(module, ConvNeXtBlock) and module.linear_pw_conv:
            for child in ('norm', 'pointwise_conv1', 'act', 'grn',
                          'pointwise_conv2'):
                if getattr(module, child, None) is not None:
                    found[f'{name}.{child}'] = name
    return found


def _pooled_norms(backbone: nn.Module) -> List[str]:
    """Output norms that see globally pooled features: mmpretrain's
    ConvNeXt (BC-SSL too) with ``gap_before_final_norm`` pools each
    output stage to ``[N, C, 1, 1]`` before its ``norm{i}``."""
    if _family(backbone) != 'convnext' or \
            not getattr(backbone, 'gap_before_final_norm', False):
        return []
    return [f'norm{i}' for i in backbone.out_indices]


def _parent(name: str) -> str:
    return name.rpartition('.')[0]


def _working_neighbours(name: str, shapes: dict, skip) -> List[str]:
    """Up to four layers near ``name`` that ran and gave a tensor: its own
    members (the stages of a ``stages`` list), else its nearest ancestor
    that ran and that ancestor's other children."""

    def usable(n):
        return n and n not in skip and not isinstance(shapes[n], str) \
            and len(shapes[n]) in (3, 4)

    own = [n for n in shapes if _parent(n) == name and usable(n)]
    if own:
        return own[-4:]
    parent = _parent(name)
    while parent and parent not in shapes:
        parent = _parent(parent)
    siblings = [n for n in shapes
                if _parent(n) == parent and n != name and usable(n)]
    return ([parent] if parent else []) + siblings[-3:]


def _near(name: str, shapes: dict, skip) -> str:
    found = _working_neighbours(name, shapes, skip)
    return f'; layers near it that run: {", ".join(found)}' if found else ''


def check_layer(model: nn.Module,
                backbone: nn.Module,
                name: str,
                x: torch.Tensor,
                min_size: int = 1) -> nn.Module:
    """The submodule ``name`` of ``backbone``, checked to give a 2-D map.

    ``model(x)`` is run once (no gradients), recording what each module
    outputs: a layer that is not called, whose output is channels-last or
    pooled, or whose map has fewer than ``min_size`` cells is refused,
    naming layers near it that work.

    Args:
        model (nn.Module): The network that runs ``backbone`` (or it).
        backbone (nn.Module): Where ``name`` is looked up.
        name (str): Module name in ``backbone``.
        x (torch.Tensor): An input batch as the tool will feed it.
        min_size (int): Fewest cells ``h * w`` the map must have (a CAM
            of one cell is blank). Defaults to 1.

    Raises:
        LayerError: the layer does not give a usable map.
    """
    layer = get_layer(backbone, name)
    what = f'{name} ({type(layer).__name__})'
    if name in _pooled_norms(backbone):
        stage = f'stages.{name[len("norm"):]}'
        last_block = f'{stage}.{len(get_layer(backbone, stage)) - 1}'
        raise LayerError(
            f'{what} normalises the globally pooled features '
            '(gap_before_final_norm=True: [N, C, 1, 1]), so it has no '
            f'spatial map; take the stage it pools, {stage}, or its last '
            f'block, {last_block}')
    channels_last = _channels_last_layers(backbone)
    if name in channels_last:
        block = channels_last[name]
        tail = [f'{block}.{c}' for c in ('depthwise_conv', 'dw_norm')
                if hasattr(get_layer(backbone, block), c)]
        how = ' (on CPU, with channels-last maps, the block applies its ' \
            'weights as a 1x1 convolution without calling it)' \
            if isinstance(layer, nn.Linear) else ''
        raise LayerError(
            f'{what} works on the channels-last layout of its ConvNeXt '
            f'block ([N, H, W, C]){how}, so it gives no [N, C, H, W] map; '
            f'take the block, {block}, or its {" / ".join(tail)}')
    names = {m: n for n, m in backbone.named_modules()}
    shapes = {}

    def hook(module, inputs, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        shapes[names[module]] = tuple(out.shape) \
            if isinstance(out, torch.Tensor) else type(out).__name__

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if name not in shapes:
        container = ' (a container: its members are called one by one)' \
            if isinstance(layer, (nn.ModuleList, nn.ModuleDict)) else ''
        raise LayerError(
            f'{what} is never called in the forward pass of this '
            f'{type(backbone).__name__}{container}'
            f'{_near(name, shapes, channels_last)}')
    shape = shapes[name]
    if isinstance(shape, str):
        raise LayerError(
            f'{what} returns a {shape}, not a tensor'
            f'{_near(name, shapes, channels_last)}')
    if isinstance(layer, nn.Linear) and len(shape) == 4:
        raise LayerError(
            f'{what} outputs {list(shape)}, channels last (a Linear maps '
            f'each pixel\'s channels), not an [N, C, H, W] map'
            f'{_near(name, shapes, channels_last)}')
    hw = tuple(x.shape[-2:])
    try:
        # shapes only: a tensor on the meta device holds no data
        fmap = to_feature_map(torch.empty(shape, device='meta'), hw,
                              num_extra_tokens(backbone))
    except ValueError as e:
        raise LayerError(
            f'{what}: {e}, not a spatial map'
            f'{_near(name, shapes, channels_last)}') from None
    if fmap.shape[-2] * fmap.shape[-1] < min_size:
        raise LayerError(
            f'{what} gives a {fmap.shape[-2]} x {fmap.shape[-1]} map at '
            f'{hw[0]} x {hw[1]} px inputs: too small to show; use a larger '
            'image size or an earlier layer')
    return layer
