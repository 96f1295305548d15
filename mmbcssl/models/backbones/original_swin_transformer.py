"""Swin Transformer with the windows, shifts and LayerNorms of the reference
implementations (microsoft/Swin-Transformer, microsoft/esvit)."""
from typing import List, Optional, Sequence, Tuple, Union

from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import to_2tuple
from mmpretrain.registry import MODELS


def stage_windows(img_size: Union[int, Tuple[int, int]],
                  patch_size: Union[int, Tuple[int, int]],
                  window_size: int, num_stages: int,
                  windows_at_img_size: bool) -> List[Tuple[int, bool]]:
    """The window size of each stage and whether its odd blocks shift.

    With ``windows_at_img_size``, as ``SwinTransformerBlock.__init__`` of
    microsoft/Swin-Transformer and microsoft/esvit (``models/
    swin_transformer.py``): stage i's map at ``img_size`` is
    ``img_size // patch_size // 2 ** i`` per side, and a stage whose
    smaller side is no larger than the window gets that side as its window
    and no shift (Swin-T at 224 px: the 7 x 7 last stage). Without, every
    stage keeps ``window_size`` and shifts its odd blocks, as the dense
    backbones of Swin (SwinTransformer/Swin-Transformer-Object-Detection
    ``mmdet/models/backbones/swin_transformer.py``), which have no input
    size.

    Returns:
        list: ``(window, shifted)`` per stage.
    """
    img_h, img_w = to_2tuple(img_size)
    patch_h, patch_w = to_2tuple(patch_size)
    grid_h, grid_w = img_h // patch_h, img_w // patch_w
    windows = []
    for i in range(num_stages):
        side = min(grid_h // 2**i, grid_w // 2**i)
        if not windows_at_img_size or side > window_size:
            windows.append((window_size, True))
        elif side >= 1:
            windows.append((side, False))
        else:
            raise ValueError(
                f'img_size {img_size} leaves stage {i} of the Swin '
                f'Transformer without a map (patch {patch_size}, '
                f'{num_stages} stages); use img_size >= '
                f'{max(patch_h, patch_w) * 2**(num_stages - 1)}')
    return windows


@MODELS.register_module()
class OriginalSwinTransformer(SwinTransformer):
    """Swin Transformer whose windows, shifts and LayerNorms are those of
    the reference code, in mmpretrain's ``SwinTransformer`` weight layout.

    Windows and shifts are decided once, at build time: with
    ``windows_at_img_size`` (classification, self-supervised pre-training,
    k-NN, linear probes) as the original Swin and EsViT decide them for
    their ``img_size`` (see :func:`stage_windows`); Swin-T at 224 px has no
    shift in its last stage, at every input size. Without it (detection,
    segmentation) every stage has ``window_size`` and shifting odd blocks,
    as Swin's own dense backbones. At run time a map that is not a multiple
    of its window (96-px crops: 24, 12, 6 and 3 per side) is zero-padded at
    the bottom and right before the shift, and the shifted windows are
    masked on the padded map, as both reference codes do; nothing is
    re-decided from the input size.

    ``norm_cfg`` builds every LayerNorm: the patch embedding, both norms of
    each block, the patch mergings and the output norms. EsViT (and the
    BC-SSL authors' DINO fork, which uses EsViT's Swin) build them with
    ``eps=1e-6`` (``get_cls_model`` in microsoft/esvit
    ``models/swin_transformer.py``); microsoft/Swin-Transformer and timm
    with ``nn.LayerNorm``'s 1e-5.

    Note:
        mmpretrain's ``SwinTransformer`` is not enough for either. Its
        ``ShiftWindowMSA`` decides at run time, from each input's map:
        ``pad_small_map=True`` keeps the shift of a stage whose map equals
        the window (Swin-T's 7 x 7 last stage at 224 px), which the
        references do not; ``pad_small_map=False`` drops it there but
        refuses maps smaller than the window (96-px crops). And its
        ``norm_cfg`` reaches only the output norms: the patch embedding,
        blocks and patch mergings keep eps 1e-5.

    Args:
        arch (str | dict): ``SwinTransformer.arch_zoo`` name, or a dict of
            ``embed_dims``, ``depths`` and ``num_heads``. Defaults to
            'tiny'.
        img_size (int | tuple): The input size windows are decided for
            (with ``windows_at_img_size``). Defaults to 224.
        patch_size (int | tuple): Defaults to 4.
        in_channels (int): Defaults to 3.
        window_size (int): Defaults to 7.
        windows_at_img_size (bool): Decide each stage's window and shift
            from its map at ``img_size`` (True), or keep ``window_size``
            and shifts in every stage (False). Defaults to True.
        norm_cfg (dict): Every LayerNorm. Defaults to ``dict(type='LN')``
            (eps 1e-5).
        drop_rate (float): Dropout after the patch embedding. Defaults
            to 0.
        drop_path_rate (float): Stochastic depth of the last block.
            Defaults to 0.1.
        out_indices (Sequence[int]): Stages whose normed maps are
            returned. Defaults to (3, ).
        out_after_downsample (bool): Defaults to False.
        use_abs_pos_embed (bool): Defaults to False.
        interpolate_mode (str): Defaults to 'bicubic'.
        with_cp (bool): Gradient checkpointing. Defaults to False.
        frozen_stages (int): Stages (and their output norms) to freeze,
            -1 for none. Defaults to -1.
        norm_eval (bool): Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: Union[int, Tuple[int, int]] = 4,
                 in_channels: int = 3,
                 window_size: int = 7,
                 windows_at_img_size: bool = True,
                 norm_cfg: dict = dict(type='LN'),
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (3, ),
                 out_after_downsample: bool = False,
                 use_abs_pos_embed: bool = False,
                 interpolate_mode: str = 'bicubic',
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        # an unknown arch leaves no stages here; SwinTransformer refuses it
        settings = self.arch_zoo.get(arch.lower()) if isinstance(
            arch, str) else arch
        depths = settings.get('depths', []) if isinstance(settings,
                                                          dict) else []
        windows = stage_windows(img_size, patch_size, window_size,
                                len(depths), windows_at_img_size)
        stage_cfgs = [
            dict(
                window_size=window,
                pad_small_map=True,  # pad small maps, decide nothing
                block_cfgs=[
                    dict(shift=shifted and j % 2 == 1, norm_cfg=norm_cfg)
                    for j in range(depth)
                ],
                downsample_cfg=dict(norm_cfg=norm_cfg))
            for depth, (window, shifted) in zip(depths, windows)
        ]
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            in_channels=in_channels,
            window_size=window_size,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            out_indices=out_indices,
            out_after_downsample=out_after_downsample,
            use_abs_pos_embed=use_abs_pos_embed,
            interpolate_mode=interpolate_mode,
            with_cp=with_cp,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            norm_cfg=norm_cfg,
            stage_cfgs=stage_cfgs,
            patch_cfg=dict(norm_cfg=norm_cfg),
            init_cfg=init_cfg)
        self.windows = windows  # (window, shifted) per stage
        self.windows_at_img_size = windows_at_img_size

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              *args, **kwargs):
        # mmpretrain renames keys of old checkpoints only when the class is
        # exactly SwinTransformer; do the same renames here.
        version = local_metadata.get('version', None)
        if version is None or version < 2:
            old, new = prefix + 'norm.', f'{prefix}norm{len(self.stages) - 1}.'
            for k in [k for k in state_dict if k.startswith(old)]:
                state_dict[new + k[len(old):]] = state_dict.pop(k)
        if version is None or version < 3:
            for k in [k for k in state_dict if 'attn_mask' in k]:
                del state_dict[k]
        BaseBackbone._load_from_state_dict(self, state_dict, prefix,
                                           local_metadata, *args, **kwargs)
