"""The protocol fingerprint that every result file carries.

A number is only comparable with another one made the same way. Each result
JSON therefore records, beside its metrics, a ``fingerprint``:

* ``checkpoint``: the file, its SHA-256, and whose weights they are
  (``teacher``/``student`` of a pre-training run, or the whole model);
* ``code``: ``git describe`` of the checkout, ``unknown`` outside one;
* ``model``: backbone, features and pooling; for features extracted by
  the project (k-NN, transfer), also the ``input`` the backbone was fed
  (mean, std, channel order of the config's ``data_preprocessor``): a
  property of the model, so not part of ``protocol_id``;
* ``protocol``: what makes numbers of one kind comparable: the task and
  data set, the test transform (resize, crop, interpolation), k and T of a
  k-NN, the class restriction, the corruption list and its normalisation,
  the number of images evaluated, and for trained evaluations their
  schedule;
* ``run``: global batch, world size and seed;
* ``data`` (suite results): the data root and whether it is the built-in
  demo data (:func:`data_record`);
* ``pretraining`` (suite results): the pre-training config, whether the
  weights are a run of this code or a converted published checkpoint, and
  the recipe with where it departs from the paper's text
  (:func:`pretraining_record`).

``protocol_id`` hashes ``protocol`` alone: cells of one column of a table
(one metric over several models) must share it. Model, checkpoint and code
are expected to differ from row to row and are not part of it.
"""
import hashlib
import json
import os
import os.path as osp
import subprocess
from typing import (Any, Dict, Hashable, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)

_SHA_CACHE: Dict[tuple, str] = {}
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) in-process."""
    st = os.stat(path)
    key = (osp.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(chunk), b''):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def code_version(root: str = REPO_ROOT) -> str:
    """``git describe --always --dirty`` of the checkout holding the
    package, or ``'unknown'`` outside a git checkout."""
    try:
        out = subprocess.run(
            ['git', 'describe', '--always', '--dirty', '--tags'],
            cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() \
        else 'unknown'


def checkpoint_record(path: Optional[str],
                      weights: Optional[str] = None) -> Dict[str, Any]:
    """What weights a result was made with.

    Args:
        path (str, optional): The checkpoint file; None for a randomly
            initialised network, or for a result that needs no weights
            (then ``weights`` says so: ``'not needed'``).
        weights (str, optional): ``'teacher'``, ``'student'`` or
            ``'model'``. When not given, read from the file's ``meta``,
            with the published file a converted checkpoint holds
            (``converted_from``, see :func:`converted_from`).
    """
    if path is None:
        return dict(file=None, sha256=None, weights=weights or 'random init')
    record = dict(file=path, sha256=file_sha256(path), weights=weights)
    if weights is None:
        ckpt = _load(path)
        record['weights'] = _part_of(ckpt)
        source = _converted_source(ckpt)
        if source:
            record['converted_from'] = source
    return record


def _load(path: str) -> Optional[Mapping]:
    """The checkpoint as a dict, or None when it cannot be read (an
    unreadable file is reported where it is used)."""
    from mmbcssl.fileio import safe_torch_load
    try:
        ckpt = safe_torch_load(path, map_location='cpu')
    except Exception:
        return None
    return ckpt if isinstance(ckpt, dict) else None


def _meta(ckpt: Optional[Mapping]) -> Mapping:
    meta = (ckpt or {}).get('meta') or {}
    return meta if isinstance(meta, Mapping) else {}


def _part_of(ckpt: Optional[Mapping]) -> Optional[str]:
    """The part a file holds (teacher/student): ``meta.part`` of a file
    written by extract_backbone.py, ``meta.weights`` of one written by the
    converters, ``teacher`` for a whole pre-training checkpoint (whose
    teacher is evaluated), else None."""
    if ckpt is None:
        return None
    meta = _meta(ckpt)
    for key in ('part', 'weights'):
        if meta.get(key):
            return str(meta[key])
    state = ckpt.get('state_dict', ckpt)
    if isinstance(state, dict) and any(k.startswith('teacher.')
                                       for k in state):
        return 'teacher'
    return None


def _converted_source(ckpt: Optional[Mapping]) -> Optional[str]:
    meta = _meta(ckpt)
    if meta.get('converted_by') and meta.get('source'):
        return osp.basename(str(meta['source']))
    return None


def converted_from(path: Optional[str]) -> Optional[str]:
    """The published file whose weights a checkpoint holds, or None.

    The rule: a file is a converted published checkpoint when the
    converters wrote it (:func:`mmbcssl.converters.save_backbone` marks
    its ``meta`` with ``converted_by`` and the ``source`` file); the
    published file is named by the base name of that source (e.g.
    ``dino_resnet50_pretrain.pth``). Whole pre-training checkpoints and
    backbones extracted from them (``meta.part``) are runs of this code:
    None.
    """
    return None if path is None else _converted_source(_load(path))


# The pre-training recipe as the BC-SSL paper's text gives it (arXiv
# 2312.05695): section 3.2, "the vanilla 100-epoch training configuration
# used in DINO" (teacher temperature 0.04, last layer weight-normalised),
# and section 4.1 for 300 epochs; global batch 512 in both, DINO's teacher
# without stochastic depth.
PAPER_RECIPES: Dict[int, Dict[str, Any]] = {
    100: dict(global_batch=512, teacher_temp='0.04',
              norm_last_layer=True, teacher_drop_path=False),
    300: dict(global_batch=512, teacher_temp='0.04 -> 0.07 over 30 epochs',
              norm_last_layer=False, teacher_drop_path=False),
}


def recipe_record(cfg) -> Dict[str, Any]:
    """The settings of a DINO/EsViT pre-training config that the BC-SSL
    paper's rows depend on and its text or the authors' code set
    differently: epochs, global batch (the one the lr is scaled for,
    ``auto_scale_lr.base_batch_size``), teacher temperature schedule,
    last-layer normalisation, stochastic depth in the teacher. Empty for a
    config that is not a DINO-style pre-training."""
    model = cfg.get('model') or {}
    loss, head = model.get('loss'), model.get('head')
    if not loss or not head or 'teacher_temp' not in loss:
        return {}
    final = loss['teacher_temp']
    start = loss.get('warmup_teacher_temp', final)
    epochs = loss.get('warmup_teacher_temp_epochs', 0)
    temp = (f'{final:g}' if not epochs or start == final else
            f'{start:g} -> {final:g} over {epochs} epochs')
    return dict(
        epochs=(cfg.get('train_cfg') or {}).get('max_epochs'),
        global_batch=(cfg.get('auto_scale_lr') or {}).get('base_batch_size'),
        teacher_temp=temp,
        norm_last_layer=head.get('norm_last_layer', True),
        teacher_drop_path=bool(model.get('teacher_drop_path', False)))


def recipe_variant(recipe: Mapping) -> List[str]:
    """Where a recipe departs from the paper's text for its schedule, one
    ``setting=value (paper text: value)`` each; [] for the paper's own."""
    if not recipe:
        return []
    paper = PAPER_RECIPES.get(recipe.get('epochs'))
    if paper is None:
        return [f'epochs={recipe.get("epochs")} (paper text: '
                f'{" or ".join(map(str, PAPER_RECIPES))})']
    return [f'{k}={recipe.get(k)} (paper text: {v})'
            for k, v in paper.items() if recipe.get(k) != v]


def pretraining_record(config: str,
                       checkpoint: Optional[str]) -> Dict[str, Any]:
    """How the evaluated weights were made: the pre-training config, the
    weights' provenance and, for a run of this code, the config's recipe
    and where it departs from the paper's text.

    ``weights`` is ``'random init'``, ``'converted from <published
    file>'`` (see :func:`converted_from`: the recipe of the config then
    says nothing about them) or ``'a run of this code'``.
    """
    from mmengine.config import Config
    rel = osp.relpath(osp.abspath(config), REPO_ROOT)
    if checkpoint is None:
        return dict(config=rel, weights='random init')
    source = converted_from(checkpoint)
    if source:
        return dict(config=rel, weights=f'converted from {source}')
    recipe = recipe_record(Config.fromfile(config))
    return dict(config=rel, weights='a run of this code', recipe=recipe,
                variant=recipe_variant(recipe))


def _short(cfg: Mapping, keys: Sequence[str]) -> str:
    parts = [f'{k}={cfg[k]}' for k in keys if k in cfg]
    return f'{cfg.get("type")}({", ".join(parts)})'


# Backbone arguments that change the features (not the training recipe).
_BACKBONE_KEYS = ('arch', 'depth', 'kernel_size', 'dw_norm_cfg',
                  'num_last_blocks', 'out_type', 'patch_size', 'img_size',
                  'window_size', 'gap_before_final_norm', 'out_indices')


def model_record(model_cfg: Mapping) -> Dict[str, Any]:
    """Backbone, features and pooling of a model config (a classifier, a
    DINO/EsViT model or a backbone + neck)."""
    backbone = dict(model_cfg.get('backbone') or {})
    neck = model_cfg.get('neck')
    kind = str(backbone.get('type', ''))
    if 'LastBlocks' in kind:
        n = backbone.get('num_last_blocks', 4)
        what = ('class tokens' if 'VisionTransformer' in kind else
                'token averages')
        features = f'{what} of the last {n} blocks, concatenated'
    elif neck and dict(neck).get('type') == 'GlobalAveragePooling':
        features = 'last stage, global average pooling'
    elif 'VisionTransformer' in kind:
        features = f'last block, {backbone.get("out_type", "cls_token")}'
    elif backbone.get('gap_before_final_norm', True) and 'BCSSL' in kind:
        features = 'last stage, global average pooling, then the final norm'
    else:
        features = 'backbone output, averaged over space if a map'
    return dict(backbone=_short(backbone, _BACKBONE_KEYS), features=features)


def transform_record(pipeline: Iterable[Mapping]) -> List[str]:
    """The deterministic test transform, one entry per geometric step
    (loading and packing are left out)."""
    out = []
    for t in pipeline:
        t = dict(t)
        kind = t.get('type', '')
        if kind in ('ResizeEdge', 'Resize', 'RandomResize'):
            extra = {k: t[k] for k in ('scale', 'edge', 'interpolation',
                                       'backend', 'keep_ratio',
                                       'scale_factor') if k in t}
            out.append(f'{kind}({json.dumps(extra, sort_keys=True)})')
        elif kind in ('CenterCrop', 'RandomCrop', 'RandomResizedCrop'):
            out.append(f'{kind}({t.get("crop_size", t.get("scale"))})')
        elif kind not in ('LoadImageFromFile', 'LoadImageFromFileSafe',
                          'PackInputs', 'PackDetInputs', 'PackSegInputs',
                          'LoadAnnotations'):
            out.append(kind)
    return out


def protocol_id(protocol: Mapping) -> str:
    """A short hash of a protocol record (sorted JSON)."""
    text = json.dumps(protocol, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def make_fingerprint(protocol: Mapping,
                     checkpoint: Optional[Mapping] = None,
                     model: Optional[Mapping] = None,
                     run: Optional[Mapping] = None) -> Dict[str, Any]:
    """The fingerprint of one result (see the module docstring).

    Args:
        protocol (Mapping): Task, data set, transform, metric settings and
            number of images; must contain ``task``.
        checkpoint (Mapping, optional): :func:`checkpoint_record`.
        model (Mapping, optional): :func:`model_record`.
        run (Mapping, optional): ``global_batch``, ``world_size``,
            ``seed``.
    """
    if 'task' not in protocol:
        raise ValueError('a protocol record needs its task')
    protocol = dict(protocol)
    return dict(protocol=protocol, protocol_id=protocol_id(protocol),
                checkpoint=dict(checkpoint or {}), model=dict(model or {}),
                run=dict(run or {}), code=code_version())


def protocol_differences(fingerprints: Sequence[Mapping]) -> List[str]:
    """The protocol fields on which ``fingerprints`` disagree (empty when
    they may share a column)."""
    protocols = [dict(fp.get('protocol', {})) for fp in fingerprints if fp]
    keys = sorted({k for p in protocols for k in p})
    return [
        k for k in keys
        if len({json.dumps(p.get(k), sort_keys=True, default=str)
                for p in protocols}) > 1
    ]


def flag_mixed(
        cells: Mapping[Hashable, Optional[Mapping]]) -> Dict[Hashable, str]:
    """For one table column (row key -> fingerprint; a key that names one
    row, such as its position, since two rows may share a label), the
    rows whose
    protocol differs from the column's most common one, each with the
    differing fields. A column whose cells all agree gives ``{}``."""
    present = {k: fp for k, fp in cells.items() if fp}
    if len(present) < 2:
        return {}
    ids = [fp['protocol_id'] for fp in present.values()]
    common = max(set(ids), key=ids.count)
    reference = next(fp for fp in present.values()
                     if fp['protocol_id'] == common)
    return {
        row: ', '.join(protocol_differences([reference, fp]))
        for row, fp in present.items() if fp['protocol_id'] != common
    }


def data_record(data_root: str) -> Dict[str, Any]:
    """Where a result's images came from: the data root and, for the
    built-in demo data (:func:`mmbcssl.datasets.demo.demo_data_holding`:
    the root or a folder above it holds the demo manifest), the demo's
    ``demo_version``. The suite stores it with each result
    (``fingerprint.data``), so that the report knows demo numbers even
    after the demo data was deleted."""
    from mmbcssl.datasets.demo import demo_data_holding
    root = osp.abspath(data_root)
    record: Dict[str, Any] = dict(root=root)
    found = demo_data_holding(root)
    if found is not None:
        record['demo_version'] = found[1].get('version')
    return record


def result_data(fingerprint: Mapping) -> Optional[Dict[str, Any]]:
    """The :func:`data_record` of a result: the one stored with it, else
    made now from its data root (``run.data_root``, relative to the
    current folder or else the repository) for a result written before
    it was stored; None when the result names no data root (complexity,
    throughput)."""
    if fingerprint.get('data'):
        return dict(fingerprint['data'])
    root = (fingerprint.get('run') or {}).get('data_root')
    if not root:
        return None
    root = str(root)
    if not osp.isabs(root) and not osp.exists(root):
        root = osp.join(REPO_ROOT, root)  # the tools' usual folder
    return data_record(root)


def _step_text(step: str) -> Tuple[str, Any]:
    """A :func:`transform_record` step in words, and the size it leaves
    (None: it does not set one)."""
    kind, _, arg = step.partition('(')
    arg = arg[:-1] if arg.endswith(')') else arg
    try:
        value = json.loads(arg) if arg else None
    except ValueError:
        value = arg
    if kind == 'CenterCrop':
        size = value[0] if isinstance(value, list) and len(set(
            value)) == 1 else value
        if isinstance(size, list):
            size = 'x'.join(map(str, size))
        return f'centre crop {size}', size
    if kind in ('ResizeEdge', 'Resize') and isinstance(value, Mapping) \
            and 'scale' in value:
        scale = value['scale']
        size = ('x'.join(map(str, scale)) if isinstance(scale, list) else
                scale)
        how = [value[k] for k in ('interpolation', ) if k in value]
        how += ['keep ratio'] if value.get('keep_ratio') else []
        return f'resize {size}' + (f' ({", ".join(how)})' if how
                                   else ''), size
    return step, None


def comparable_protocol(fingerprint: Mapping) -> Dict[str, Any]:
    """The protocol of a measured cell in the words of a published
    number's protocol record (:func:`mmbcssl.evaluation.paper_results.
    published_protocol`): ``data`` (only for demo data, which the data
    root's manifest names; a real data set is known by its size alone),
    ``images`` evaluated, ``img_size`` (the size the test transform leaves),
    ``transform`` in words and the k-NN ``temperature``; a field the
    fingerprint does not record is left out."""
    protocol = fingerprint.get('protocol') or {}
    out: Dict[str, Any] = {}
    data = result_data(fingerprint)
    if data and 'demo_version' in data:
        out['data'] = f'demo {osp.basename(data["root"].rstrip("/"))}'
    images = protocol.get('images')
    if isinstance(images, Mapping):  # a k-NN: train bank and queries
        images = images.get('val', images.get('query'))
    if isinstance(images, int):
        out['images'] = images
    steps = protocol.get('transform')
    if isinstance(steps, list) and steps:
        texts, size = [], None
        for step in steps:
            text, made = _step_text(str(step))
            texts.append(text)
            size = made if made is not None else size
        out['transform'] = ' + '.join(texts)
        if size is not None:
            out['img_size'] = size
    elif 'img_size' in protocol:  # params and FLOPs: the input counted
        out['img_size'] = protocol['img_size']
    if 'temperature' in protocol:
        out['temperature'] = protocol['temperature']
    return out


def published_differences(published: Mapping,
                          measured: Sequence[Mapping]) -> List[str]:
    """Where a published number's protocol record differs from the
    :func:`comparable_protocol` of the measured cells it sits beside, one
    ``field published vs measured`` each (the measured values that differ,
    in order); empty when every field they record agrees."""
    out = []
    for key, value in published.items():
        seen = []
        for m in measured:
            if key in m and m[key] != value and m[key] not in seen:
                seen.append(m[key])
        if seen:
            out.append(f'{key} {value} vs {", ".join(map(str, seen))}')
    return out


def _evaluators(cfg) -> List[Mapping]:
    ev = cfg.get('test_evaluator') or []
    return [ev] if isinstance(ev, Mapping) else list(ev)


def _dataset_name(dataset: Mapping) -> str:
    parts = [str(dataset.get('type', ''))]
    for key in ('split', 'data_prefix', 'ann_file'):
        value = dataset.get(key)
        if isinstance(value, Mapping):
            value = value.get('img_path') or value.get('img')
        if value:
            parts.append(f'{key}={osp.basename(str(value).rstrip("/"))}')
    return ' '.join(parts)


def test_protocol(cfg, runner) -> Dict[str, Any]:
    """The protocol record of a ``tools/test.py`` run, from its config and
    its runner (after ``runner.test()``)."""
    dataset = dict(cfg.test_dataloader.dataset)
    loop = runner.test_loop
    scope = cfg.get('default_scope', 'mmpretrain')
    protocol: Dict[str, Any] = dict(
        dataset=_dataset_name(dataset),
        transform=transform_record(dataset.get('pipeline', [])))
    evaluators = _evaluators(cfg)
    kinds = [str(e.get('type')) for e in evaluators]
    if hasattr(loop, 'plan'):  # ImageNetCTestLoop
        protocol.update(
            task='imagenet-c',
            corruptions=list(loop.corruptions),
            evaluated=[f'{c}/{s}' for c, s in loop.plan],
            normalisation='CE: divided by AlexNet\'s error (Hendrycks & '
            'Dietterich 2019); mean error: unnormalised',
            images=int(loop.images_evaluated))
    else:
        protocol['images'] = len(runner.test_dataloader.dataset)
        if scope == 'mmdet':
            protocol['task'] = 'coco-detection'
            protocol['metrics'] = sorted(
                str(m) for e in evaluators
                for m in ([e.get('metric')] if isinstance(
                    e.get('metric'), str) else e.get('metric') or []))
        elif scope == 'mmseg':
            protocol['task'] = 'semantic-segmentation'
            protocol['inference'] = dict(cfg.model.get('test_cfg') or {})
        else:
            protocol['task'] = 'classification'
    if 'SubsetAccuracy' in kinds:
        sub = next(e for e in evaluators if e.get('type') == 'SubsetAccuracy')
        meta = runner.test_dataloader.dataset.metainfo
        n = len(meta.get('class_indices') or [])
        protocol['class_restriction'] = (
            f'logits restricted to the {n} classes of the set'
            if sub.get('restrict_to_subset', True) else
            'argmax over all the model\'s classes')
        if dataset.get('type') == 'ImageNetSubset':
            # a fixed class list (ImageNet-A/R), or whatever folders exist
            protocol['class_list'] = str(
                dataset.get('subset_classes') or 'the folders found')
    elif protocol['task'] == 'classification':
        protocol['class_restriction'] = 'none'
    if cfg.get('tta_model') and cfg.model.get('type') == cfg.tta_model.get(
            'type'):
        protocol['tta'] = True
    return protocol


def trained_from(checkpoint: str) -> Optional[Dict[str, Any]]:
    """The pre-trained backbone a trained model (a linear probe, a
    detector) started from, as its training config recorded it: mmengine
    keeps the run's config in every checkpoint it saves (``meta.cfg``),
    with the ``--cfg-options`` of the run merged in, so its
    ``model.backbone.init_cfg`` names the weights actually loaded.

    Returns:
        dict | None: :func:`checkpoint_record` of that file (``random
        init`` when the run had no ``init_cfg``), with ``named_by``; None
        when the checkpoint holds no training config or the file it names
        is gone.
    """
    from mmengine.config import Config
    text = _meta(_load(checkpoint)).get('cfg')
    if not isinstance(text, str):
        return None
    try:
        model = Config.fromstring(text, '.py').get('model') or {}
    except Exception:  # a config of other code: no record to read
        return None
    model = model.get('module', model)
    init = (model.get('backbone') or {}).get('init_cfg')
    source = init.get('checkpoint') if isinstance(init, Mapping) else None
    if source is None:
        return dict(checkpoint_record(None), named_by='training config')
    if not (isinstance(source, str) and osp.isfile(source)):
        return None
    return dict(checkpoint_record(source), named_by='training config')


def test_fingerprint(cfg, runner, checkpoint: str,
                     backbone_from: Optional[str] = None) -> Dict[str, Any]:
    """The fingerprint of a ``tools/test.py`` result.

    Its ``checkpoint.backbone_source`` names the pre-trained backbone the
    evaluated model was trained from: ``backbone_from`` when the caller
    knows it (the suite, which trained the probe), else what the
    checkpoint's training config recorded (:func:`trained_from`), never
    the test config's default ``init_cfg`` (another file than the one the
    model was trained from, for any but the config's own weights).
    """
    from mmengine import dist
    model_cfg = cfg.model.get('module', cfg.model)  # unwrap a TTA model
    world = dist.get_world_size()
    run = dict(global_batch=cfg.test_dataloader.get('batch_size', 1) * world,
               world_size=world, seed=runner.seed,
               data_root=cfg.test_dataloader.dataset.get('data_root'))
    ckpt = checkpoint_record(checkpoint, 'model')
    source = (dict(checkpoint_record(backbone_from), named_by='caller')
              if backbone_from else trained_from(checkpoint))
    if source:
        ckpt['backbone_source'] = source
    return make_fingerprint(test_protocol(cfg, runner), ckpt,
                            model_record(model_cfg), run)
