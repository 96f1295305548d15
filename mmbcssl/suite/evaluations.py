"""The evaluations a suite config can name.

Each evaluation is a registered class (``EVALUATIONS``), built from one
entry of the suite config's ``evaluations`` list, e.g.
``dict(type='KNN', data_root='data/imagenet')``. It produces one result
(``results/<name>.json``): the metrics, their protocol fingerprint and the
command that made them. Trained evaluations (the linear probe, Mask R-CNN,
UperNet) and k-NN run as their own ``tools/*.py`` processes, through
``tools/dist_*.sh`` when the suite has several processes, so one failure
does not take the others down and each resumes on its own.
"""
import copy
import os
import os.path as osp
import re
from typing import Any, Dict, List, Optional

from mmengine.registry import Registry

from mmbcssl.evaluation.fingerprint import (REPO_ROOT, checkpoint_record,
                                            file_sha256, make_fingerprint,
                                            model_record)
from mmbcssl.evaluation.robustness import PROTOCOL_CONFIGS
from .context import (EvaluationFailed, EvaluationMissing, SuiteContext,
                      read_json)

EVALUATIONS = Registry('suite evaluation')


def downstream_config(pretrain_config: str, folder: str) -> Optional[str]:
    """The config of ``configs/<folder>`` that starts from
    ``pretrain_config`` (the metafiles' ``Pre-training``); the one with
    published numbers when there are several (the paper's protocol). A
    recipe option (metafile ``Variant Of``) is evaluated with the
    downstream configs of the config it is a variant of."""
    from mmbcssl.evaluation.paper_results import load_entries
    entries = load_entries()
    rel = osp.relpath(osp.abspath(pretrain_config), REPO_ROOT)
    rel = next((e.metadata['Variant Of'] for e in entries
                if e.config == rel and e.metadata.get('Variant Of')), rel)
    found = [
        e for e in entries if e.config.startswith(f'configs/{folder}/')
        and e.metadata.get('Pre-training') == rel
    ]
    found.sort(key=lambda e: (not e.results, e.config))
    return found[0].config if found else None


def _data_options(root: Optional[str], loaders=('train', 'val', 'test'),
                  suffix: str = '') -> List[str]:
    if not root:
        return []
    return [f'{k}_dataloader.dataset.data_root={root}{suffix}'
            for k in loaders]


def _latest_checkpoint(work_dir: str) -> Optional[str]:
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


class Evaluation:
    """One entry of a suite: what it needs, and how it runs.

    Args:
        name (str): The result's name (``results/<name>.json``); defaults
            to the type in lower case.
        **settings: The entry's other keys.
    """
    #: the results of other evaluations this one reads
    needs: tuple = ()

    def __init__(self, name: Optional[str] = None, **settings) -> None:
        self.name = name or type(self).__name__.lower()
        self.settings = settings

    def expand(self) -> List['Evaluation']:
        """The evaluations this entry stands for (itself, by default)."""
        return [self]

    def request(self, ctx: SuiteContext) -> Dict[str, Any]:
        """What makes a result of this evaluation reusable: a re-run with
        the same request skips it."""
        return dict(type=type(self).__name__, name=self.name,
                    settings=self.settings, config=self._rel(ctx.config),
                    config_sha256=file_sha256(ctx.config),
                    checkpoint_sha256=ctx.sha256)

    def run(self, ctx: SuiteContext, done: Dict[str, Dict]) -> Dict:
        """Run; return ``dict(metrics=..., fingerprint=..., command=...)``.

        Raises:
            EvaluationMissing: data or a needed result is absent.
            EvaluationFailed: a launched tool failed.
        """
        raise NotImplementedError

    @staticmethod
    def _rel(path: str) -> str:
        return osp.relpath(osp.abspath(path), REPO_ROOT)

    def _need_dirs(self, *dirs: str, command: str = '') -> None:
        for d in dirs:
            if not osp.isdir(d):
                raise EvaluationMissing(
                    f'{d!r} does not exist (see the README, "Data '
                    'preparation")', command)

    def _needed(self, done: Dict[str, Dict], name: str,
                command: str = '') -> Dict:
        result = done.get(name)
        if not result or result.get('status') != 'ok':
            raise EvaluationMissing(
                f'needs the {name!r} result, which this run does not have',
                command)
        return result

    def _raw(self, ctx: SuiteContext, suffix: str = '.json') -> str:
        os.makedirs(ctx.path('raw'), exist_ok=True)
        return ctx.path('raw', self.name + suffix)


@EVALUATIONS.register_module()
class KNN(Evaluation):
    """Weighted k-NN of the teacher's features (``tools/knn_eval.py``).

    Settings: ``data_root`` (ImageNet layout), ``ks`` (10, 20, 100, 200),
    ``temperature`` (0.07), ``img_size`` (224), ``resize`` (256),
    ``batch_size`` (256), ``num_workers`` (8), ``random_init`` (False: the
    random-init baseline instead of the weights), ``seed`` (0), ``fast``
    (True: BatchNorms folded and the channels-last layout).
    """

    def run(self, ctx, done):
        from mmbcssl.evaluation.features import FeatureTransform
        from mmbcssl.evaluation.knn import KNNProtocol
        p = KNNProtocol()  # the protocol's defaults, stated once
        s = dict(data_root='data/imagenet', ks=p.ks,
                 temperature=p.temperature, img_size=FeatureTransform.crop,
                 resize=FeatureTransform.resize, batch_size=p.batch_size,
                 num_workers=8, random_init=False, seed=0, fast=True,
                 query=None)
        s.update(self.settings)
        out = self._raw(ctx)
        args = [ctx.config, '--data-root', s['data_root'], '--ks',
                *map(str, s['ks']), '--temperature', str(s['temperature']),
                '--img-size', str(s['img_size']), '--resize',
                str(s['resize']), '--batch-size', str(s['batch_size']),
                '--num-workers', str(s['num_workers']), '--seed',
                str(s['seed']), '--out', out, '--overwrite']
        weights = None if s['random_init'] else ctx.backbone_weights()
        if weights:
            args += ['--checkpoint', weights]
        if ctx.feature_cache:
            args += ['--feature-cache', ctx.feature_cache]
        if s['fast']:
            args += ['--deploy', '--channels-last']
        query = list(s['query'] or [])
        args += query
        command = ' '.join(ctx.tool_command('knn_eval.py', args))
        needed = [osp.join(s['data_root'], 'train')]
        needed.append(query[1] if query else osp.join(s['data_root'], 'val'))
        self._need_dirs(*needed, command=command)
        command = ctx.run_tool(self.name, 'knn_eval.py', args)
        result = read_json(out)
        return dict(result, command=command)


@EVALUATIONS.register_module()
class KNNRobustness(Evaluation):
    """k-NN of the robustness sets against the ImageNet train bank, votes
    restricted to each set's classes: robustness without a trained probe,
    on a subset of each set (one result per set, ``knn_robustness.<set>``;
    ImageNet-C one per corruption at one severity).

    Settings: ``roots`` (set -> root, sets among a, r, sketch, c),
    ``corruptions`` (for c; default one of each category), ``severity``
    (3), ``max_queries`` (5000 per set), and the :class:`KNN` settings.
    """

    def expand(self):
        s = dict(roots=dict(a='data/imagenet-a', r='data/imagenet-r',
                            sketch='data/imagenet-sketch',
                            c='data/imagenet-c'),
                 corruptions=('gaussian_noise', 'defocus_blur', 'snow',
                              'jpeg_compression'),
                 severity=3, max_queries=5000)
        s.update(self.settings)
        knn = {k: v for k, v in s.items()
               if k not in ('roots', 'corruptions', 'severity',
                            'max_queries')}
        out = []
        for key, root in s['roots'].items():
            query = ['--query', root, '--max-queries', str(s['max_queries'])]
            if key == 'sketch':
                query += ['--query-prefix', 'sketch']
            if key in ('a', 'r'):  # the official 200-wnid lists
                query += ['--query-classes', f'imagenet-{key}']
            if key != 'c':
                out.append(KNN(name=f'{self.name}.{key}', query=query, **knn))
                continue
            for corruption in s['corruptions']:
                out.append(KNN(
                    name=f'{self.name}.c_{corruption}',
                    query=query + ['--corruption', corruption,
                                   '--severity', str(s['severity'])],
                    **knn))
        return out


class _TrainThenTest(Evaluation):
    """Train a downstream config from the backbone weights (resuming an
    interrupted run), then evaluate its last checkpoint."""
    folder = ''

    def config(self, ctx: SuiteContext) -> str:
        config = self.settings.get('config') or downstream_config(
            ctx.config, self.folder)
        if not config:
            raise EvaluationMissing(
                f'no configs/{self.folder} config starts from '
                f'{self._rel(ctx.config)} (metafile "Pre-training"); name '
                'one with config=... in the suite config')
        return config

    def request(self, ctx):
        req = super().request(ctx)
        try:
            config = self.config(ctx)
        except EvaluationMissing:
            return req
        req.update(downstream=config, downstream_sha256=file_sha256(config))
        return req

    def options(self, ctx: SuiteContext) -> List[str]:
        opts = list(self.settings.get('cfg_options', []))
        weights = ctx.backbone_weights()
        opts.append('model.backbone.init_cfg.checkpoint=' +
                    str(weights) if weights else
                    'model.backbone.init_cfg=None')
        return opts

    def run(self, ctx, done):
        config = self.config(ctx)
        work = ctx.path(self.name)
        train = [config, '--work-dir', work]
        if _latest_checkpoint(work):
            train.append('--resume')
        opts = self.options(ctx)
        self._check_data(ctx, config, opts)
        ctx.run_tool(f'{self.name}-train', 'train.py',
                     train + ['--cfg-options', *opts])
        ckpt = _latest_checkpoint(work)
        result, command = self._test(ctx, config, ckpt, opts)
        return dict(result, command=command, checkpoint=ckpt, config=config)

    def _test(self, ctx: SuiteContext, config: str, ckpt: str,
              opts: List[str], tag: str = '') -> tuple:
        """``tools/test.py`` on one checkpoint: (its result, command)."""
        out = self._raw(ctx, suffix=f'{tag}.json')
        test = [config, ckpt, '--work-dir',
                osp.join(ctx.path(self.name), f'test{tag}'), '--out', out,
                '--overwrite', '--cfg-options', *opts]
        command = ctx.run_tool(f'{self.name}-test{tag}', 'test.py', test)
        return read_json(out), command

    def _check_data(self, ctx, config: str, opts: List[str]) -> None:
        from mmbcssl.utils.data_checks import DataLayoutError, check_data
        from mmbcssl.utils.launch import load_config
        from mmengine.config import DictAction
        cfg = load_config(config)
        parsed = {}
        for opt in opts:
            key, _, value = opt.partition('=')
            parsed[key] = DictAction._parse_iterable(value)
        cfg.merge_from_dict(parsed)
        try:
            check_data(cfg)
        except DataLayoutError as e:
            raise EvaluationMissing(
                str(e), ' '.join(ctx.tool_command('train.py', [config]))
            ) from None


@EVALUATIONS.register_module()
class LinearProbe(_TrainThenTest):
    """The linear probe of the backbone (``configs/linear``): trained
    through ``tools/train.py``, evaluated on the val set at two epochs.

    The result's ``accuracy/*`` are the last epoch's probe;
    ``best_epoch/accuracy/*`` the probe of the epoch with the highest val
    top-1 (the checkpoint hook's ``best_accuracy_top1_epoch_<n>.pth``) and
    ``best_epoch/epoch`` that epoch. The second is the number DINO's
    ``eval_linear.py`` reports (and so the BC-SSL paper's linear column):
    it validates after every epoch and prints the maximum, chosen on the
    val set itself. The robustness evaluations use the last epoch's probe.

    Settings: ``config`` (default: the probe of the backbone's pre-training
    config in ``configs/linear/metafile.yml``), ``data_root``,
    ``cfg_options`` (a list of ``key=value``).
    """
    folder = 'linear'
    #: the file name mmengine's CheckpointHook gives the best epoch's
    #: checkpoint with ``save_best='accuracy/top1'``
    BEST_PATTERN = re.compile(r'best_accuracy_top1_epoch_(\d+)\.pth')

    def options(self, ctx):
        return _data_options(self.settings.get('data_root')) + \
            super().options(ctx)

    def run(self, ctx, done):
        result = super().run(ctx, done)
        best, epoch = self.best_checkpoint(ctx.path(self.name))
        best_result, _ = self._test(ctx, result['config'], best,
                                    self.options(ctx), tag='_best_epoch')
        metrics = dict(result['metrics'])
        metrics.update({f'best_epoch/{k}': v
                        for k, v in best_result['metrics'].items()})
        metrics['best_epoch/epoch'] = epoch
        return dict(result, metrics=metrics, best_epoch_checkpoint=best)

    def best_checkpoint(self, work_dir: str) -> tuple:
        """(path, epoch) of the best epoch's checkpoint in ``work_dir``.

        Raises:
            EvaluationFailed: there is not exactly one.
        """
        found = [(osp.join(work_dir, f), int(m.group(1)))
                 for f in sorted(os.listdir(work_dir))
                 for m in [self.BEST_PATTERN.fullmatch(f)] if m]
        if len(found) != 1:
            raise EvaluationFailed(
                f'{work_dir} holds {len(found)} best_accuracy_top1_epoch_*'
                '.pth files, expected 1: the probe config must validate '
                "every epoch with default_hooks.checkpoint.save_best="
                "'accuracy/top1' (configs/_base_/linear_in1k.py)")
        return found[0]


@EVALUATIONS.register_module()
class Finetune(_TrainThenTest):
    """Mask R-CNN (``task='mask_rcnn'``) or UperNet (``task='upernet'``)
    fine-tuned from the backbone, then box/mask AP or mIoU on val.

    Settings: ``task``, ``config`` (default: from the metafile),
    ``data_root``, ``cfg_options``.
    """

    def __init__(self, name=None, task='mask_rcnn', **settings):
        if task not in ('mask_rcnn', 'upernet'):
            raise ValueError(f"Finetune task must be 'mask_rcnn' or "
                             f"'upernet', got {task!r}")
        super().__init__(name or task, task=task, **settings)
        self.folder = task

    def options(self, ctx):
        root = self.settings.get('data_root')
        opts = []
        if root and self.folder == 'mask_rcnn':
            ann = f'{root}/annotations/instances_val2017.json'
            opts = _data_options(root, suffix='/') + [
                f'val_evaluator.ann_file={ann}',
                f'test_evaluator.ann_file={ann}'
            ]
        elif root:
            opts = _data_options(root)
        return opts + super().options(ctx)


@EVALUATIONS.register_module()
class Robustness(Evaluation):
    """ImageNet-C/Sketch/R/A through the linear probe (``needs`` the
    ``linear`` result), one result per set and protocol.

    Settings: ``sets`` (c, sketch, r, a), ``protocols`` (official and/or
    authors; see configs/robustness/README.md), ``roots`` (set -> data
    root), ``demo`` (the ``*_demo`` configs), ``classes`` (the probe head's
    wnid list), ``probe`` (the linear result's name, 'linear'),
    ``cfg_options``.
    """

    def expand(self):
        s = dict(sets=('c', 'sketch', 'r', 'a'), protocols=('official', ))
        s.update(self.settings)
        out = []
        for key in s['sets']:
            for proto in ('official', 'authors'):
                found = PROTOCOL_CONFIGS.get((key, proto))
                if found and (proto in s['protocols'] or key == 'sketch'):
                    sub = RobustnessSet(
                        name=f'{self.name}.{found[0]}', set=key,
                        config_stem=found[1], **{
                            k: v
                            for k, v in s.items()
                            if k not in ('sets', 'protocols')
                        })
                    if sub.name not in {e.name for e in out}:
                        out.append(sub)
        return out


@EVALUATIONS.register_module()
class RobustnessSet(Evaluation):
    """One robustness evaluation of the linear probe; see
    :class:`Robustness`."""

    def __init__(self, name=None, **settings):
        super().__init__(name, **settings)
        self.needs = (settings.get('probe', 'linear'), )

    def run(self, ctx, done):
        s = self.settings
        stem = s['config_stem'] + ('_demo' if s.get('demo') else '')
        config = osp.join('configs', 'robustness', f'{stem}.py')
        probe = self._needed(done, self.needs[0],
                             'the LinearProbe evaluation of this suite')
        root = (s.get('roots') or {}).get(s['set'])
        opts = list(s.get('cfg_options', []))
        if root:
            opts.append(f'test_dataloader.dataset.data_root={root}')
        if s.get('classes'):
            opts.append(f'test_dataloader.dataset.base_classes='
                        f'{s["classes"]}')
        if s['set'] == 'c':
            top1 = probe['metrics'].get('accuracy/top1')
            if top1 is not None:
                opts.append(f'test_cfg.clean_error={1 - top1 / 100!r}')
            opts.append('test_cfg.pass_results_dir=' +
                        ctx.path('imagenet_c_passes'))
        out = self._raw(ctx)
        args = [config, probe['checkpoint'], '--model-from',
                probe['config'], '--work-dir',
                ctx.path('robustness', self.name), '--out', out,
                '--overwrite']
        if opts:
            args += ['--cfg-options', *opts]
        command = ' '.join(ctx.tool_command('test.py', args))
        if root is None:
            from mmengine.config import Config
            root = Config.fromfile(config).test_dataloader.dataset.data_root
        self._need_dirs(root, command=command)
        command = ctx.run_tool(self.name, 'test.py', args)
        return dict(read_json(out), command=command)


@EVALUATIONS.register_module()
class Transfer(Evaluation):
    """Linear transfer to small data sets (``tools/transfer_linear.py``):
    one result with every set's score and the mean over the preset.

    Settings: ``registry`` (configs/transfer/datasets.py), ``preset`` or
    ``sets``, ``img_size``, ``resize``, ``batch_size``, ``num_workers``.
    """

    def run(self, ctx, done):
        s = dict(registry='configs/transfer/datasets.py', img_size=224,
                 resize=256, batch_size=64, num_workers=4)
        s.update(self.settings)
        out_dir = self._raw(ctx, suffix='')
        model = [ctx.config] + ([ctx.backbone_weights()]
                                if ctx.checkpoint else [])
        args = [s['registry'], '--model', *model, '--name', 'model',
                '--out-dir', out_dir, '--overwrite', '--img-size',
                str(s['img_size']), '--resize', str(s['resize']),
                '--batch-size', str(s['batch_size']), '--num-workers',
                str(s['num_workers'])]
        if s.get('preset'):
            args += ['--preset', s['preset']]
        if s.get('sets'):
            args += ['--sets', *s['sets']]
        if ctx.feature_cache:
            args += ['--feature-cache', ctx.feature_cache]
        command = ctx.run_tool(self.name, 'transfer_linear.py', args,
                               distributed=False)
        data = read_json(osp.join(out_dir, 'results.json'))
        per_set = data['results']['model']
        metrics = {f'{k}/{v["fingerprint"]["protocol"]["metric"]}':
                   v['score'] for k, v in per_set.items()}
        metrics['average'] = data['summary']['average']['model']
        first = next(iter(per_set.values()))['fingerprint']
        protocol = dict(task='transfer-linear', preset=data['preset'],
                        sets={k: v['fingerprint']['protocol']
                              for k, v in per_set.items()})
        fingerprint = make_fingerprint(protocol, first['checkpoint'],
                                       first['model'], first['run'])
        return dict(metrics=metrics, fingerprint=fingerprint,
                    command=command)


@EVALUATIONS.register_module()
class Complexity(Evaluation):
    """Params and FLOPs (multiply-adds) of the backbone as an ImageNet
    classifier (with a 1000-class linear head, as the paper's Table 5
    counts), at ``img_size`` (224)."""

    def run(self, ctx, done):
        import torch
        from mmbcssl.apis import build_from_config, load_model_config
        from mmbcssl.benchmarks.complexity import complexity
        img_size = self.settings.get('img_size', 224)
        cfg = load_model_config(ctx.config)
        body = dict(type='ImageClassifier',
                    backbone=copy.deepcopy(cfg.model.backbone),
                    neck=copy.deepcopy(cfg.model.get('neck')))
        probe = build_from_config(cfg, body).eval()
        with torch.no_grad():
            feat = probe.extract_feat(torch.zeros(1, 3, img_size, img_size))
        dim = (feat[-1] if isinstance(feat, (tuple, list)) else feat)
        dim = dim.flatten(1).shape[1] if dim.dim() == 2 else dim.shape[1]
        body['head'] = dict(type='LinearClsHead', num_classes=1000,
                            in_channels=dim)
        model = build_from_config(cfg, body).eval()
        result = complexity(model, img_size)
        metrics = dict(params_m=result['params_head'],
                       flops_g=result['flops_head'],
                       params_m_backbone=result['params_no_head'],
                       flops_g_backbone=result['flops_no_head'])
        protocol = dict(task='complexity', img_size=img_size,
                        counted='multiply-adds (mmengine FlopAnalyzer), '
                        'with a 1000-class linear head')
        return dict(metrics=metrics, command='(in process)',
                    fingerprint=make_fingerprint(
                        protocol, checkpoint_record(None, 'not needed'),
                        dict(model_record(cfg.model),
                             config=self._rel(ctx.config))))


@EVALUATIONS.register_module()
class Throughput(Evaluation):
    """Inference images per second of the backbone
    (``tools/analysis_tools/benchmark.py``).

    Settings: ``batch_size`` (128), ``img_size`` (224), ``device``
    ('cuda' when available), ``amp``, ``channels_last``, ``repeats`` (5).
    """

    def run(self, ctx, done):
        import torch
        s = dict(batch_size=128, img_size=224, amp=False,
                 channels_last=True, repeats=5,
                 device='cuda' if torch.cuda.is_available() else 'cpu')
        s.update(self.settings)
        out = self._raw(ctx)
        args = [ctx.config, '--batch-size', str(s['batch_size']),
                '--img-size', str(s['img_size']), '--device', s['device'],
                '--repeats', str(s['repeats']), '--out', out]
        if s['amp']:
            args.append('--amp')
        if s['channels_last']:
            args.append('--channels-last')
        command = ctx.run_tool(self.name, 'analysis_tools/benchmark.py',
                               args, distributed=False)
        data = read_json(out)
        (row, ) = data['results'].values()
        protocol = dict(task='throughput', **data['setting'])
        return dict(
            metrics=dict(throughput=row['median']), command=command,
            fingerprint=make_fingerprint(
                protocol, checkpoint_record(None, 'not needed'),
                model_record(_model_cfg(ctx.config)),
                dict(global_batch=s['batch_size'], world_size=1)))


def _model_cfg(config: str):
    from mmengine.config import Config
    return Config.fromfile(config).model
