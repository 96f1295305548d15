"""Pre-flight check of the pre-trained backbone weights a config loads.

mmengine's ``Pretrained`` initialiser loads with ``strict=False``: a
checkpoint whose keys do not fit the backbone only logs a warning and the
run trains from random weights, which then shows up weeks later as a bad
table row. Two common mistakes are caught before the runner is built:

* a whole DINO/EsViT checkpoint given where extracted weights are expected
  (with ``prefix='backbone.'`` it would silently load the *student*);
* weights of another backbone (kernel size, arch, BC-SSL vs ConvNeXt).

Keys the checkpoint lacks are an error, except the output norms
``norm{i}`` that dense-prediction backbones add for extra ``out_indices``
(pre-training only has the last one; they start fresh, as in mmdet's own
ConvNeXt and Swin configs). Keys the checkpoint has and the backbone does
not are listed, not fatal.
"""
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from mmbcssl.fileio import safe_torch_load

# Output norms added for dense prediction (mmpretrain ConvNeXt/BCSSL/Swin).
FRESH_KEY = re.compile(r'^norm\d+\.')
EXTRACT_HINT = ('extract the backbone first: python '
                'tools/model_converters/extract_backbone.py <pre-training '
                'checkpoint> <out.pth> (teacher by default, --student for '
                'the student)')


class PretrainedMismatchError(ValueError):
    """The pre-trained weights do not fit the backbone they are meant for."""


def _pretrained_init(backbone: dict) -> Optional[dict]:
    init = backbone.get('init_cfg')
    for item in (init if isinstance(init, (list, tuple)) else [init]):
        if isinstance(item, dict) and item.get('type') == 'Pretrained':
            return item
    return None


def compare_keys(
    given: Dict[str, Tuple[int, ...]],
    expected: Dict[str, Tuple[int, ...]],
    what: str = 'backbone'
) -> Tuple[List[str], List[str], List[str], List[str]]:
    """Missing, shape-mismatched, fresh (allowed missing) and unexpected.

    Args:
        given: checkpoint key -> shape, prefix already removed.
        expected: backbone state-dict key -> shape.
        what: how shape messages name ``expected``.
    """
    missing = sorted(
        k for k in expected if k not in given and not FRESH_KEY.match(k))
    fresh = sorted(
        k for k in expected if k not in given and FRESH_KEY.match(k))
    shapes = sorted(f'{k}: checkpoint {tuple(given[k])} vs {what} '
                    f'{tuple(expected[k])}' for k in expected
                    if k in given and tuple(given[k]) != tuple(expected[k]))
    unexpected = sorted(k for k in given if k not in expected)
    return missing, shapes, fresh, unexpected


def _summary(keys: List[str], n: int = 5) -> str:
    more = f' ... ({len(keys)} in all)' if len(keys) > n else ''
    return ', '.join(keys[:n]) + more


def check_pretrained(cfg: Config, build_backbone=None) -> None:
    """Check ``model.backbone.init_cfg`` (type ``Pretrained``) of ``cfg``.

    Args:
        cfg (Config): A full config (``default_scope`` decides the
            registry the backbone is built from).
        build_backbone (callable, optional): ``dict -> nn.Module``, for
            tests. Defaults to building with the config's default scope.

    Raises:
        PretrainedMismatchError: missing file, a whole pre-training
            checkpoint, no keys under the prefix, keys or shapes that do not
            fit.
    """
    backbone_cfg = cfg.get('model', {}).get('backbone')
    if not isinstance(backbone_cfg, dict):
        return
    init = _pretrained_init(backbone_cfg)
    if init is None or not init.get('checkpoint'):
        return
    path, prefix = init['checkpoint'], init.get('prefix', '')
    where = 'model.backbone.init_cfg.checkpoint'
    if '://' in path:
        return  # remote files are mmengine's business (none reachable here)
    if not osp.isfile(path):
        raise PretrainedMismatchError(
            f'pre-trained backbone {path!r} ({where}) not found; '
            f'{EXTRACT_HINT}, then set MMBCSSL_PRETRAINED=<out.pth> or '
            f'--cfg-options {where}=<out.pth>')
    ckpt = safe_torch_load(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    roots = sorted({k.split('.')[0] for k in state})
    if any(k.startswith(('teacher.', 'module.teacher.')) for k in state):
        raise PretrainedMismatchError(
            f'{path!r} is a whole pre-training checkpoint (top-level keys '
            f'{roots}): prefix {prefix!r} would load the student, not the '
            f'teacher, and skip nothing else; {EXTRACT_HINT}')
    given = {
        k[len(prefix):]: tuple(v.shape)
        for k, v in state.items()
        if k.startswith(prefix) and hasattr(v, 'shape')
    }
    if not given:
        raise PretrainedMismatchError(
            f'{path!r} has no keys starting with {prefix!r} (top-level keys '
            f'{roots}); expected extracted backbone weights; {EXTRACT_HINT}')

    backbone_cfg = ConfigDict(backbone_cfg)
    backbone_cfg.pop('init_cfg', None)
    module = (build_backbone or _default_builder(cfg))(backbone_cfg)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing, shapes, fresh, unexpected = compare_keys(given, expected)
    if missing or shapes:
        parts = []
        if missing:
            parts.append(f'{len(missing)} backbone keys missing '
                         f'({_summary(missing)})')
        if shapes:
            parts.append(f'{len(shapes)} shapes differ ({_summary(shapes)})')
        raise PretrainedMismatchError(
            f'{path!r} does not fit the {backbone_cfg.get("type")} backbone '
            f'of this config: {"; ".join(parts)}. Was it extracted from a '
            'pre-training run of the same backbone (arch, kernel_size, '
            'dw_norm_cfg)? Pick the matching config or re-extract.')
    if unexpected:
        print_log(
            f'pre-trained backbone {path}: {len(unexpected)} keys not '
            f'in the backbone are ignored: {_summary(unexpected, 20)}',
            logger='current',
            level=30)
    if fresh:
        print_log(
            f'pre-trained backbone {path}: output norms start fresh '
            f'(not in pre-training): {_summary(fresh, 12)}',
            logger='current')


def check_load_from(cfg: Config) -> None:
    """Refuse ``load_from=<whole DINO/EsViT checkpoint>`` for a model that
    is not itself a DINO/EsViT model.

    mmengine loads ``load_from`` with ``strict=False`` and only warns about
    the keys that do not fit, so a probe or detector given a whole
    pre-training checkpoint would silently start from the *student*
    backbone (its ``backbone.*`` keys) and drop the teacher. Continuing a
    pre-training run from such a file (same model type) is fine.

    Raises:
        PretrainedMismatchError: with the extraction command.
    """
    path = cfg.get('load_from')
    if not path or '://' in str(path) or not osp.isfile(path):
        return  # a missing file is reported by the runner, naming it
    from mmbcssl.apis import use_config_scope
    from mmbcssl.models.selfsup import DINO
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    kind = cfg.get('model', {}).get('type', '')
    use_config_scope(cfg)
    model_cls = PRETRAIN_MODELS.get(kind) if isinstance(kind, str) else kind
    if isinstance(model_cls, type) and issubclass(model_cls, DINO):
        return
    ckpt = safe_torch_load(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    if any(k.startswith(('teacher.', 'module.teacher.')) for k in state):
        roots = sorted({k.split('.')[0] for k in state})
        raise PretrainedMismatchError(
            f'load_from {path!r} is a whole pre-training checkpoint (top-'
            f'level keys {roots}): it would load the student, not the '
            f'teacher, into this {kind}; {EXTRACT_HINT}, then pass it as '
            'model.backbone.init_cfg.checkpoint (or MMBCSSL_PRETRAINED) '
            'instead of load_from')


def _default_builder(cfg: Config):
    from mmbcssl.apis import build_from_config
    return lambda part: build_from_config(cfg, part)


def check_checkpoint_fits(model, path: str) -> None:
    """Check that the checkpoint ``tools/test.py`` evaluates fills ``model``.

    mmengine loads ``load_from`` with ``strict=False``: a checkpoint of
    another model (a pre-training checkpoint, a probe of another backbone, a
    1000-class head for a 10-class config) only logs a warning, and the
    evaluation reports numbers of a partly random network. Here every key
    must be present with its shape, and no key may be left over.

    Args:
        model (nn.Module): The runner's model (wrappers and TTA models are
            unwrapped, as mmengine does when loading).
        path (str): The checkpoint file.

    Raises:
        PretrainedMismatchError: listing the missing, mis-shaped and
            unexpected keys.
    """
    from mmengine.model import BaseTTAModel, is_model_wrapper
    if is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    ckpt = safe_torch_load(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    # mmengine strips a DDP 'module.' prefix when loading; so do we.
    given = {
        re.sub(r'^module\.', '', k): tuple(v.shape)
        for k, v in state.items() if hasattr(v, 'shape')
    }
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, shapes, fresh, unexpected = compare_keys(given, expected,
                                                      'model')
    missing = sorted(missing + fresh)
    if not (missing or shapes or unexpected):
        return
    parts = []
    if missing:
        parts.append(f'{len(missing)} keys missing ({_summary(missing)})')
    if shapes:
        parts.append(f'{len(shapes)} shapes differ ({_summary(shapes)})')
    if unexpected:
        parts.append(f'{len(unexpected)} keys not in the model '
                     f'({_summary(unexpected)})')
    hint = ''
    if any(k.startswith('teacher.') for k in given):
        hint = (' It is a pre-training checkpoint: evaluate the checkpoint '
                'of a probe or fine-tuning run trained from it.')
    raise PretrainedMismatchError(
        f'checkpoint {path!r} does not fit the model of this config: '
        f'{"; ".join(parts)}.{hint} Evaluate it with the config it was '
        'trained with (for configs/robustness: --model-from '
        'configs/linear/<model>.py).')
